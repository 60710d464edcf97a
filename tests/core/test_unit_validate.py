"""Validation rules in-process (``RunbookValidator``) that tests/scenarios/bad does not cover yet:
each runbook is written into a copy of the runtime scenario project and checked there."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Callable

import pytest

from core.harness import world
from runbook import plugins
from runbook.project import Project
from runbook.params import param_problem
from runbook.validate import RunbookValidator

Check = Callable[[str, str], list[str]]


@pytest.fixture
def check(tmp_path: Path) -> Check:
    """Write ``runbooks/NAME.yaml`` (name and a title added) and return every diagnostic as a line."""
    w = world(tmp_path)
    registry = plugins.load(w.root)

    def run(name: str, body: str) -> list[str]:
        text = textwrap.dedent(body)
        head = f"name: {name}\n" + ("" if text.lstrip().startswith("title:") else "title: T\n")
        path = w.root / "runbooks" / f"{name}.yaml"
        path.write_text(head + text)
        _, diags = RunbookValidator(Project(w.root), registry).check(path)
        return [str(d) for d in diags]
    return run


ACT = "do: [{id: w, uses: effects.append, with: {file: f, line: l}}]"


@pytest.mark.parametrize("body,line", [
    ("""
     params: {n: {type: integer, pattern: '^1'}}
     steps: [{id: a, title: A}]
     """, "4:38: a pattern applies to string parameters, not integer (at params.n.pattern)"),
    ("""
     params: {n: {type: integer, secret: true}}
     steps: [{id: a, title: A}]
     """, "4:37: only string parameters can be secret (at params.n.secret)"),
    ("""
     steps:
       - id: a
         approval: {source: prompt}
         run: {runbook: cleanup, with: {source: x, dir: y}}
     """, "7:5: a step is one of approval, include or run; this one has approval and run (at steps[0].run)"),
    ("""
     steps:
       - id: a
         with: {x: 1}
         verify: [{uses: core.equals, with: {actual: 1, expected: 1}}]
     """, "6:5: 'with:' on a step belongs to 'include:' (items and 'run:' have their own) (at steps[0].with)"),
    ("""
     steps:
       - id: a
         do: [{id: m, manual: Do it, wait: {timeout: 5}}]
     """, "6:33: 'wait:' belongs to automated items ('uses:'), not manual ones (at steps[0].do[0].wait)"),
    ("""
     steps:
       - id: a
         approval: {source: prompt, pr: 3}
     """, "6:32: 'pr:' belongs to github-pr approvals (at steps[0].approval.pr)"),
    ("""
     steps:
       - id: a
         approval: {source: github-pr, pr: "PR ${run.id}"}
     """, "6:39: 'PR ${run.id}': the pull request is a number or one ${...} resolving to one "
        "(at steps[0].approval.pr)"),
], ids=["pattern-on-integer", "secret-integer", "two-kinds", "with-on-a-task", "wait-on-manual", "pr-on-prompt",
        "pr-as-text"])
def test_a_rule_reports_its_line_column_and_path(check: Check, body: str, line: str) -> None:
    assert check("r", body) == [f"runbooks/r.yaml:{line}"]


def test_a_value_git_would_read_as_an_option_is_refused(check: Check) -> None:
    lines = check("r", """
        steps:
          - id: a
            do: [{uses: git.create_branch, with: {name: --upload-pack=evil, from: develop}}]
        """)
    assert any("'--upload-pack=evil' starts with '-': git would read it as an option; use a plain name "
               "(at steps[0].do[0].with.name)" in x for x in lines)


@pytest.mark.parametrize("ref,message", [
    ("${params.v.x}", "${params.v.x}: parameters are plain values; nothing below 'v'"),
    ("${steps.a}", "${steps.a}: name the item and output, like ${steps.a.ITEM.OUTPUT}"),
    ("${steps.a.w}", "${steps.a.w}: name the output of a.w, one of count"),
    ("${steps.a.w.size}", "${steps.a.w.size}: a.w has no output 'size'"),
    ("${steps.a.v.count}", "${steps.a.v.count}: step 'a' has no item 'v' with outputs (automated items need an "
                           "'id' to be referenced)"),
    ("${steps.b.x.count}", "${steps.b.x.count}: refers to its own step 'b'; only outputs of earlier steps are known"),
    ("${run.host}", "${run.host}: run has run.id, run.operator, run.checkout"),
    ("${env.ecs.clustr}", "${env.ecs.clustr}: environments have no 'clustr' (did you mean 'cluster'?) "
                          "(see schemas/environment.schema.json)"),
])
def test_a_reference_that_cannot_resolve_says_why(check: Check, ref: str, message: str) -> None:
    lines = check("r", f"""
        params: {{v: {{type: string}}}}
        steps:
          - id: a
            {ACT}
          - id: b
            {ACT}
            verify: [{{uses: core.equals, with: {{actual: "{ref}", expected: 1}}}}]
        """)
    assert len(lines) == 1 and message in lines[0] and lines[0].endswith("(at steps[1].verify[0].with.actual)")


def test_a_reference_to_an_earlier_step_that_always_runs_is_fine(check: Check) -> None:
    assert check("r", f"""
        steps:
          - id: a
            {ACT}
          - id: b
            title: "After ${{steps.a.w.count}} lines"
            confirm: "Go on after ${{steps.a.w.count}}?"
            verify: [{{uses: core.equals, with: {{actual: "${{steps.a.w.count}}", expected: 1}}}}]
        """) == []


def test_step_outputs_are_not_known_in_the_runbooks_title(check: Check) -> None:
    assert check("r", f"""
        title: "Run ${{steps.a.w.count}}"
        steps:
          - id: a
            {ACT}
        """) == ["runbooks/r.yaml:3:8: ${steps.a.w.count}: step outputs are not known here (only params and env are) "
                 "(at title)"]


def test_a_secret_parameter_cannot_be_passed_to_an_include(check: Check) -> None:
    lines = check("r", """
        steps:
          - id: a
            include: secretive
            with: {token: x, dir: /tmp}
        """)
    assert lines == ["runbooks/r.yaml:7:12: include 'secretive': secret parameter 'token' cannot be passed in a "
                     "runbook; it is asked for or read from its environment variable (at steps[0].with.token)"]


def test_an_included_steps_outputs_are_referenced_by_their_namespaced_id(check: Check) -> None:
    assert check("inner", f"""
        steps:
          - id: make
            {ACT}
        """) == []
    assert check("outer", """
        steps:
          - id: inc
            include: inner
          - id: use
            verify: [{uses: core.equals, with: {actual: "${steps.inc.make.w.count}", expected: 1}}]
        """) == []


def test_an_included_step_under_a_condition_may_not_be_referenced(check: Check) -> None:
    check("inner", f"""
        steps:
          - id: make
            {ACT}
        """)
    lines = check("outer", """
        params: {go: {type: boolean, default: true}}
        steps:
          - id: inc
            include: inner
            when: "${params.go}"
          - id: use
            verify: [{uses: core.equals, with: {actual: "${steps.inc.make.w.count}", expected: 1}}]
        """)
    assert len(lines) == 1 and "step 'inc.make' may not run (it has 'when:')" in lines[0]


def test_every_problem_is_reported_at_once_in_file_order(check: Check) -> None:
    lines = check("r", """
        params: {n: {type: integer, secret: true}}
        steps:
          - id: a
            with: {x: 1}
            do: [{id: m, manual: Do it, wait: {timeout: 5}}]
        """)
    assert [x.split(": ", 1)[0] for x in lines] == [
        "runbooks/r.yaml:4:37", "runbooks/r.yaml:7:5", "runbooks/r.yaml:8:33"]


def test_a_file_is_checked_once_per_validator(check: Check, tmp_path: Path) -> None:
    check("r", "steps: [{id: a, title: A}]\n")
    root = tmp_path / "runtime"
    validator = RunbookValidator(Project(root), plugins.load(root))
    path = root / "runbooks" / "r.yaml"
    first = validator.check(path)
    path.write_text("name: r\n")                      # changed on disk: the validator's answer stands
    assert validator.check(path) is first


def test_a_verify_item_may_use_the_outputs_of_its_own_steps_actions(check: Check) -> None:
    assert check("r", f"""
        steps:
          - id: a
            {ACT}
            verify: [{{uses: core.equals, with: {{actual: "${{steps.a.w.count}}", expected: 1}}}}]
        """) == []


@pytest.mark.parametrize("spec,value,problem", [
    ({"type": "integer"}, True, "True is not an integer"),
    ({"type": "number"}, 1, None),
    ({"type": "number"}, "1", "'1' is not a number"),
    ({"type": "string", "choices": ["a", "b"]}, "c", "'c' is not one of 'a', 'b'"),
    ({"type": "integer", "minimum": 2}, 1, "1 is below the minimum 2"),
    ({"type": "number", "maximum": 1.5}, 2, "2 is above the maximum 1.5"),
    ({"type": "string", "pattern": "["}, "x", None),          # a bad pattern is reported where it is written
])
def test_param_problem(spec: dict, value: object, problem: str | None) -> None:
    assert param_problem(spec, value) == problem


def test_a_file_found_to_fit_the_schema_is_remembered_and_an_edit_is_checked_afresh(
        check: Check, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The runbook schema is checked once per content (the step loop's cost, issue #25): the same
    file again is not checked, an edited one is, and a problem is never remembered."""
    from runbook import schemas, validate

    monkeypatch.setenv("RUNBOOK_CACHE", str(tmp_path / "cache"))
    calls: list[int] = []
    real = schemas.validate

    def counted(doc, instance, schema, *args, **kwargs):  # type: ignore[no-untyped-def]
        if schema is schemas.load_schema("runbook"):          # the document's check (plugin arguments aside)
            calls.append(1)
        return real(doc, instance, schema, *args, **kwargs)

    monkeypatch.setattr(validate, "schema_validate", counted)
    good = "steps: [{id: a, title: A, verify: [{uses: core.equals, with: {actual: 1, expected: 1}}]}]\n"
    assert check("cached", good) == [] and len(calls) == 1
    assert check("cached", good) == [] and len(calls) == 1           # the same content: remembered
    bad = good.replace("title: A, ", "title: A, colour: red, ")
    first = check("cached", bad)
    assert first and "colour" in " ".join(first) and len(calls) == 2  # edited: checked afresh, and it fails
    assert check("cached", bad) == first and len(calls) == 3          # a problem is never remembered
