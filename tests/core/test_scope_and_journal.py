"""Templates at run time (``templates.Scope``), the journal's chain and group commit, the prompt ids
of the typed step model: below the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runbook import templates
from runbook.errors import CheckFailed
from runbook.journal import ChainedFile, verify_chain
from runbook.steps import Step


def scope(outputs: dict[str, dict] | None = None) -> templates.Scope:
    outs = outputs or {}
    return templates.Scope({"version": "v1.2.0", "replicas": 3, "token": "s3cret"},
                           {"ecs": {"cluster": "production"}, "vars": {"ctx": "k8s-prod"}},
                           {"id": "R1", "operator": "op", "checkout": "/tmp/c"},
                           {"build", "inc.inner"}, lambda s, i: outs.get(f"{s}.{i}"), lambda s: False)


def test_a_whole_template_keeps_its_type_and_a_longer_string_reads_as_text() -> None:
    s = scope({"build.make": {"count": 2, "tags": ["a", "b"]}})
    assert s.resolve("${params.replicas}") == 3
    assert s.resolve("n=${params.replicas}") == "n=3"
    assert s.resolve({"k": ["${env.ecs.cluster}", "${run.id}"]}) == {"k": ["production", "R1"]}
    assert s.resolve("${steps.build.make.count}") == 2
    assert s.resolve("${steps.build.make.tags.1}") == "b"
    assert s.resolve("${env.vars.ctx}") == "k8s-prod"


@pytest.mark.parametrize("text,why", [
    ("${params.nope}", "parameter has no value"),
    ("${env.ecs.nope}", "not in the environment"),
    ("${steps.build.make.count}", "has no outputs"),
    ("${steps.ghost.x.y}", "no such step"),
])
def test_a_reference_without_a_value_is_a_failed_check_naming_it(text: str, why: str) -> None:
    with pytest.raises(CheckFailed, match=why):
        scope().resolve(text)
    assert scope().text(f"see {text}") == f"see {text}"       # for people: shown as written


def test_included_step_outputs_resolve_by_their_namespaced_id() -> None:
    assert scope({"inc.inner.w": {"id": 7}}).resolve("${steps.inc.inner.w.id}") == 7


def test_group_commit_chains_records_and_verification_finds_an_edit(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    journal = ChainedFile(path, durable=False)
    written = journal.append([{"type": "a", "data": {"n": 1}}, {"type": "b", "data": {"n": 2}}])
    assert [r["seq"] for r in written] == [0, 1] and journal.length == 2
    journal.append([{"type": "c", "data": {}}])
    problems, length, _ = verify_chain(path, "journal")
    assert not problems and length == 3
    lines = path.read_bytes().splitlines(keepends=True)
    edited = json.loads(lines[1])
    edited["data"]["n"] = 3
    lines[1] = (json.dumps(edited, separators=(",", ":")) + "\n").encode()
    path.write_bytes(b"".join(lines))
    problems, _, _ = verify_chain(path, "journal")
    assert problems and any(f"record {n}" in str(problems[0]) for n in (2, 3))


def test_prompt_ids_come_from_the_typed_step() -> None:
    step = Step.of({"id": "swap", "kind": "task", "title": "Swap", "confirm": "Go?",
                    "requires": [{"id": "ready", "uses": "file.contains"}],
                    "do": [{"id": "stop", "uses": "shell.run"}, {"id": "tick", "manual": "Tick it"}],
                    "verify": [{"uses": "core.equals"}], "on_failure": "retry", "retry": {"attempts": 2}})
    assert [p.id for p in step.prompts()] == ["swap.ready.on_fail", "swap.confirm", "swap.stop.running", "swap.stop.on_fail", "swap.tick",
                                              "swap.verify-0.on_fail", "swap.on_fail"]
    assert step.retry.attempts == 2 and step.always_runs
    gate = Step.of({"id": "approve", "approval": {"source": "prompt"}})
    assert [p.id for p in gate.prompts()] == ["approve.approval", "approve.on_fail"]


def test_shell_outputs_and_a_failing_commands_summary(tmp_path: Path) -> None:
    """stdout/stderr without the final newline, stdout_lines, exit_code; a failure quotes the last lines of
    stderr (redacted) and says where the full output is."""
    from runbook.plugins import Context, load
    from runbook.redact import Redactor

    registry = load(None)
    redactor = Redactor(["hunter2-secret"])
    blobs: list[bytes] = []

    def ctx(argv: list[str]) -> Context:
        return Context(args={"argv": argv}, env={}, root=tmp_path, redact=redactor.text,
                       store_blob=lambda data: (blobs.append(data), "ab" * 32)[1])

    ok = registry["shell.check"].func(ctx(["python3", "-c", "print('a'); print('b')"]))
    assert ok.passed and ok.outputs == {"exit_code": 0, "stdout": "a\nb", "stderr": "", "stdout_lines": ["a", "b"]}
    script = ("import sys\nfor i in range(40): print('noise', i, file=sys.stderr)\n"
              "print('token hunter2-secret rejected', file=sys.stderr)\nprint('fatal: cannot push', file=sys.stderr)\n"
              "sys.exit(3)")
    bad = registry["shell.run"].func(ctx(["python3", "-c", script]))
    assert not bad.passed
    assert "expected exit 0, found 3; last lines of stderr: noise 37 | noise 38 | noise 39 | token [REDACTED] " \
           "rejected | fatal: cannot push" in bad.summary
    assert "full stderr in the evidence (stderr_sha256 abababababab)" in bad.summary
    assert "hunter2" not in bad.summary and b"hunter2" not in b"".join(blobs)


def test_text_from_runbooks_and_plugins_is_never_rich_markup() -> None:
    """Titles, summaries and progress shown by rich keep their brackets: `[bold]` and `[#####.....]`."""
    import io

    from runbook.console import Console

    from rich.console import Console as RichConsole

    out = io.StringIO()
    console = Console(out=out, plain=False)
    console._rich = RichConsole(file=out, force_terminal=True, width=200, highlight=False)
    console.event({"type": "step.started", "run": "R", "data": {"step": "s", "title": "Deploy [bold]now[/bold]"}})
    console.event({"type": "item.result", "run": "R", "data": {"item": "bar", "passed": True,
                                                               "summary": "window [#####.....] 5/10"}})
    from helpers import wait_for

    with console.waiting("waiting [#####.....] for [red]x[/red]") as update:
        wait_for(lambda: "waiting [#####.....] for [red]x[/red]" in out.getvalue())    # rendered by rich's refresh
        update("still [#####.....]")
        wait_for(lambda: "still [#####.....]" in out.getvalue())
    text = out.getvalue()
    assert "waiting [#####.....] for [red]x[/red]" in text and "still [#####.....]" in text
    assert "Deploy [bold]now[/bold]" in text and "window [#####.....] 5/10" in text
