"""The typed step (``runbook.steps.Step``) and the resolved plan (``runbook.plan``): retries,
conditions, item keys, the prompt list an answers file is checked against, and the digest
that decides whether a run may resume."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

import pytest

from core.harness import World, world
from runbook import plugins
from runbook.model import OnFailure, Section, StepKind
from runbook.params import Params
from runbook.plan import Plan, Resolver, digest, load_environment
from runbook.project import Project
from runbook.steps import Retry, Step

# -- Step.of -------------------------------------------------------------------------------


@pytest.mark.parametrize("data,retry", [
    ({"on_failure": "retry"}, Retry(3, 0.0)),
    ({"on_failure": "retry", "retry": {"attempts": 5, "delay": 2}}, Retry(5, 2.0)),
    ({"retry": {"attempts": 5, "delay": 2}}, Retry(1, 2.0)),
    ({"on_failure": "continue", "retry": {"attempts": 5}}, Retry(1, 0.0)),
    ({}, Retry(1, 0.0)),
])
def test_a_step_retries_automatically_only_under_on_failure_retry(data: dict[str, Any], retry: Retry) -> None:
    assert Step.of({"id": "s", **data}).retry == retry


def test_conditions_keep_the_text_as_written_and_add_the_includes_own() -> None:
    step = Step.of({"id": "inc.s", "when": True, "unless": "${params.dry}",
                    "source": {"when": "${params.go}", "unless": "${params.dry}"},
                    "parent_conditions": [{"when": "${params.outer}"}, {"unless": False}]})
    assert [(c.key, c.value, c.written) for c in step.conditions] == [
        ("when", True, "${params.go}"), ("unless", "${params.dry}", "${params.dry}"),
        ("when", "${params.outer}", "${params.outer}"), ("unless", False, False)]
    assert not step.always_runs


@pytest.mark.parametrize("data,always", [
    ({}, True), ({"on_failure": "retry"}, True), ({"on_failure": "continue"}, False), ({"when": True}, False),
    ({"parent_conditions": [{"unless": False}]}, False),
])
def test_a_step_always_runs_without_conditions_or_continue(data: dict[str, Any], always: bool) -> None:
    step = Step.of({"id": "s", **data})
    assert step.always_runs is always and step.continues is (data.get("on_failure") == "continue")


def test_items_are_keyed_by_id_else_section_and_index_in_section_order() -> None:
    step = Step.of({"id": "s", "verify": [{"uses": "core.equals"}, {"id": "named", "uses": "core.equals"}],
                    "do": [{"uses": "effects.append"}, {"id": "tick", "manual": "Tick", "evidence": "link"}],
                    "requires": [{"uses": "file.contains"}, "not an item"]})
    assert [(i.section, i.key) for i in step.items] == [
        (Section.REQUIRES, "requires-0"), (Section.DO, "do-0"), (Section.DO, "tick"),
        (Section.VERIFY, "verify-0"), (Section.VERIFY, "named")]
    act, tick = step.section(Section.DO)
    assert act.is_action and not tick.is_action and tick.manual == "Tick" and tick.evidence == "link"
    assert act.evidence == "none" and act.uses == "effects.append"
    assert [i.key for i in step.automated(Section.DO)] == ["do-0"]


def test_an_items_arguments_are_a_copy() -> None:
    step = Step.of({"id": "s", "do": [{"uses": "effects.append", "with": {"file": "f"}}]})
    step.items[0].with_["file"] = "changed"
    assert step.items[0].with_ == {"file": "f"}


@pytest.mark.parametrize("data,kind", [
    ({"approval": {"source": "prompt"}}, StepKind.APPROVAL), ({"run": {"runbook": "x"}}, StepKind.RUN),
    ({"do": []}, StepKind.TASK), ({"kind": "task", "approval": {"source": "prompt"}}, StepKind.TASK),
])
def test_the_kind_comes_from_the_plan_else_from_the_keys(data: dict[str, Any], kind: StepKind) -> None:
    assert Step.of({"id": "s", **data}).kind is kind


def test_typed_fields() -> None:
    step = Step.of({"id": "s", "title": "T", "timeout": 90, "on_failure": "continue", "instructions": None})
    assert (step.title, step.timeout, step.on_failure, step.instructions) == ("T", 90.0, OnFailure.CONTINUE, "")
    assert Step.of({"id": "s"}).timeout is None


# -- Step.prompts --------------------------------------------------------------------------

@pytest.mark.parametrize("data,ids", [
    ({"approval": {"source": "github-pr", "pr": 1}}, ["s.approval", "s.approval.timeout", "s.on_fail"]),
    ({"approval": {"source": "prompt"}}, ["s.approval", "s.on_fail"]),
    ({"run": {"runbook": "x"}, "confirm": "Start it?"}, ["s.confirm", "s.on_fail"]),
    ({"run": {"runbook": "x"}}, ["s.on_fail"]),
    ({"verify": [{"id": "m", "manual": "Look"}]}, ["s.m"]),                       # nothing acts: no STEP.on_fail
    ({"confirm": "Go?", "do": [{"id": "m", "manual": "Tick"}, {"uses": "effects.append"}]},
     ["s.confirm", "s.m", "s.do-1.on_fail", "s.on_fail"]),
])
def test_the_prompts_of_each_kind_of_step(data: dict[str, Any], ids: list[str]) -> None:
    assert [p.id for p in Step.of({"id": "s", **data}).prompts()] == ids


def test_an_interrupted_action_and_a_failed_check_are_asked_in_different_words() -> None:
    step = Step.of({"id": "s", "requires": [{"uses": "file.contains"}], "do": [{"uses": "effects.append"}]})
    check, action, _ = step.prompts()
    assert "file.contains failed" in check.text and "effects.append was interrupted" in action.text


def test_the_confirm_of_a_step_without_actions_comes_before_its_verify_items() -> None:
    step = Step.of({"id": "s", "requires": [{"uses": "file.contains"}], "confirm": "Go?",
                    "verify": [{"id": "looked", "manual": "Looked"}]})
    assert [p.id for p in step.prompts()] == ["s.requires-0.on_fail", "s.confirm", "s.looked"]


# -- plans -------------------------------------------------------------------------------

INNER = """\
name: inner
title: Inner
params: {dir: {type: string}, n: {type: integer, default: 2}}
steps:
  - id: make
    title: Make ${params.n}
    do: [{id: w, uses: effects.append, with: {file: "${params.dir}/made.txt", line: "n=${params.n}"}}]
  - id: use
    verify: [{uses: core.equals, with: {actual: "${steps.make.w.count}", expected: 1}}]
"""
OUTER = """\
name: outer
title: Outer
emergency: true
params: {dir: {type: string}, go: {type: boolean, default: true}, token: {type: string, secret: true}}
on_failure: {runbook: cleanup, with: {source: "${run.id}", dir: "${params.dir}"}}
steps:
  - id: inc
    when: "${params.go}"
    include: inner
    with: {dir: "${params.dir}"}
  - id: go
    title: Go
    confirm: Go with ${params.token}?
    do: [{id: tick, manual: Tick}]
  - id: linked
    title: A linked run
    run: {runbook: cleanup, with: {source: "${run.id}", dir: "${params.dir}"}}
"""

MakePlan = Callable[..., Plan]


@pytest.fixture
def w(tmp_path: Path) -> World:
    w = world(tmp_path)
    (w.root / "runbooks" / "inner.yaml").write_text(INNER)
    (w.root / "runbooks" / "outer.yaml").write_text(OUTER)
    return w


@pytest.fixture
def make_plan(w: World) -> MakePlan:
    """A plan of NAME, made afresh (a new project, so edited files are read again)."""
    def make(name: str = "outer", env: str | None = None, **values: Any) -> Plan:
        project = Project(w.root)
        params = Params(values={"dir": "/work", **values}, secrets={"token": "hunter2"})
        return Resolver(project, plugins.load(w.root)).plan(
            project.runbook_path(name), load_environment(project, env) if env else None, params)
    return make


def test_an_include_is_inlined_with_namespaced_ids_and_its_own_params(make_plan: MakePlan) -> None:
    plan = make_plan(go=False)
    inc_make, inc_use = plan.steps[:2]
    assert [s.id for s in plan.steps] == ["inc.make", "inc.use", "go", "linked"]
    assert inc_make.title == "Make 2" and inc_make.items[0].with_ == {"file": "/work/made.txt", "line": "n=2"}
    assert inc_use.items[0].with_["actual"] == "${steps.inc.make.w.count}"    # its own step, namespaced
    assert inc_make.data["included_from"] == "inc"
    assert [(c.key, c.value) for c in inc_use.conditions] == [("when", False)]
    assert set(plan.includes) == {"inner"}


def test_templates_known_now_are_resolved_and_the_rest_kept(make_plan: MakePlan) -> None:
    plan = make_plan()
    go = plan.steps[2]
    assert go.confirm == "Go with ${params.token}?"                          # a secret stays a template
    assert plan.on_failure == {"runbook": "cleanup", "with": {"source": "${run.id}", "dir": "/work"}}
    assert "hunter2" not in str(plan.to_dict())


@pytest.mark.parametrize("lock,env,key", [(None, "local", "local"), (None, None, "outer"), ("none", None, None),
                                          ('"db-${params.dir}"', None, "db-/work")])
def test_the_lock_key(w: World, make_plan: MakePlan, lock: str | None, env: str | None, key: str | None) -> None:
    if lock is not None:
        path = w.root / "runbooks" / "outer.yaml"
        path.write_text(path.read_text().replace("emergency: true\n", f"emergency: true\nlock: {lock}\n"))
    assert make_plan(env=env).lock == key


def test_plan_prompts_come_in_the_order_they_would_be_asked(make_plan: MakePlan) -> None:
    assert [p.id for p in make_plan(env="prod-like").prompts()] == [
        "run.environment",
        "inc.make.w.on_fail", "inc.make.on_fail", "inc.use.verify-0.on_fail",
        "go.confirm", "go.tick",
        "linked.on_fail",
        "linked/clean.do-0.on_fail", "linked/clean.on_fail",
        "run.on_failure/clean.do-0.on_fail", "run.on_failure/clean.on_fail",
        "run.force", "run.takeover", "run.on_failure"]


def test_an_unprotected_environment_is_not_typed(make_plan: MakePlan) -> None:
    assert "run.environment" not in [p.id for p in make_plan(env="local").prompts()]


# -- the digest ------------------------------------------------------------------------------

def test_the_digest_is_the_same_for_the_same_inputs(make_plan: MakePlan) -> None:
    first = make_plan()
    assert first.digest == make_plan().digest == digest(first) and len(first.digest) == 64


def test_the_digest_changes_when_an_included_file_changes(w: World, make_plan: MakePlan) -> None:
    before = make_plan().digest
    inner = w.root / "runbooks" / "inner.yaml"
    inner.write_text(inner.read_text() + "# a comment is a change of the included file\n")
    assert make_plan().digest != before


def test_the_digest_changes_when_a_plugin_version_changes(make_plan: MakePlan) -> None:
    plan = make_plan()
    assert plan.plugins.keys() == {"effects.append", "core.equals"}
    newer = dataclasses.replace(plan, plugins={**plan.plugins, "effects.append": "0" * 16})
    assert digest(newer) != plan.digest


@pytest.mark.parametrize("change", ["params", "environment"])
def test_the_digest_changes_with_the_parameters_and_the_environment(make_plan: MakePlan, change: str) -> None:
    base = make_plan(env="local")
    other = make_plan(env="local", dir="/elsewhere") if change == "params" else make_plan(env="prod-like")
    assert other.digest != base.digest


def test_the_digest_ignores_where_a_step_is_written(make_plan: MakePlan) -> None:
    plan = make_plan()
    moved = [Step.of({**s.data, "source": {**s.data["source"], "line": s.data["source"]["line"] + 10}})
             for s in plan.steps]
    assert [s.data["source"] for s in moved] != [s.data["source"] for s in plan.steps]
    assert digest(dataclasses.replace(plan, steps=moved)) == plan.digest


def test_the_digest_covers_a_secrets_name_but_never_its_value(make_plan: MakePlan) -> None:
    plan = make_plan()
    other = dataclasses.replace(plan, params=Params(values=plan.params.values, secrets={"token": "other"}))
    assert digest(other) == plan.digest
    none = dataclasses.replace(plan, params=Params(values=plan.params.values))
    assert digest(none) != plan.digest
