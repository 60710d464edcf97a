"""for_each and list parameters (DESIGN, Format 1.1), in-process with the real Runner: each value
runs as its own iteration STEP[i] with its own ids, records and prompts; concurrency, max_failures,
resume per value, answers for one iteration or all of them, and the prompt ids runbook.show lists."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from core import harness
from core.harness import of_type, world
from runbook import cli
from runbook.errors import ExitCode, InputError
from runbook.prompts import ScriptedPrompter
from runbook.state import Status

OPERATOR = "tester@example.com"


@pytest.fixture(autouse=True)
def _operator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNBOOK_OPERATOR", OPERATOR)
    monkeypatch.delenv("RUNBOOK_FAIL_AT", raising=False)
    monkeypatch.delenv("RUNBOOK_PARAM_NODES", raising=False)


def test_serial_for_each_runs_each_value_in_order_with_its_own_ids_and_records(tmp_path: Path) -> None:
    w = world(tmp_path)
    assert w.run("fleet", params={"nodes": "[a, b, c]"}) == ExitCode.OK
    assert w.lines("drained.txt") == ["0:a", "1:b", "2:c"]
    assert w.lines("after.txt") == ["after"]
    recs = w.records()
    assert [r["data"]["values"] for r in of_type(recs, "step.values", step="drain")] == [["a", "b", "c"]]
    # each iteration: its own step id, item keys, and records carrying its index and value
    started = [r["data"]["step"] for r in of_type(recs, "step.started")]
    assert started == ["drain", "drain[0]", "drain[1]", "drain[2]", "after"]
    for i, v in enumerate("abc"):
        [result] = of_type(recs, "item.result", step=f"drain[{i}]", item="mark")
        assert result["data"]["each"] == {"index": i, "value": v} and result["data"]["passed"]
        assert of_type(recs, "item.result", step=f"drain[{i}]", item="marked", passed=True)
    state = w.state(w.last())
    assert {sid: s.status.value for sid, s in state.steps.items()} == {
        "drain": "succeeded", "drain[0]": "succeeded", "drain[1]": "succeeded", "drain[2]": "succeeded",
        "after": "succeeded"}
    assert state.steps["drain"].values == ["a", "b", "c"] and not state.deviations


def test_a_list_parameter_from_the_command_line_a_variable_and_a_prompt(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    w = world(tmp_path)
    assert w.run("fleet", params={"nodes": "[x, y-2]"}) == ExitCode.OK            # a YAML flow list
    assert w.lines("drained.txt") == ["0:x", "1:y-2"]
    assert w.state(w.last()).params["nodes"] == ["x", "y-2"]

    monkeypatch.setenv("RUNBOOK_PARAM_NODES", "[p, q]")
    assert w.run("fleet") == ExitCode.OK
    assert w.lines("drained.txt")[2:] == ["0:p", "1:q"]
    monkeypatch.delenv("RUNBOOK_PARAM_NODES")

    # at a prompt: comma-separated (fleet-checks' nodes have no default, so a person is asked)
    (w.work / "started-seed").write_text("")        # lets one iteration pass the barrier alone
    assert w.run("fleet-checks", script={"params.nodes": "m, n", "check[0].looked": True,
                                          "check[1].looked": True}) == ExitCode.OK
    assert w.state(w.last()).params["nodes"] == ["m", "n"]

    # each value is checked against items; the error names the source
    err = w.expect_error("fleet", params={"nodes": "[ok, Not-OK]"})
    assert isinstance(err, InputError)
    assert "<command line>: value [1]: 'Not-OK' does not match '^[a-z0-9-]+$' (at params.nodes)" in str(err)
    monkeypatch.setenv("RUNBOOK_PARAM_NODES", "[]")
    err = w.expect_error("fleet")
    assert "RUNBOOK_PARAM_NODES: [] has 0 value(s), fewer than min_items 1 (at params.nodes)" in str(err)
    monkeypatch.setenv("RUNBOOK_PARAM_NODES", "a, b")
    err = w.expect_error("fleet")
    assert "RUNBOOK_PARAM_NODES: 'a, b' is not a list: write a YAML flow list like '[a, b]' (at params.nodes)" \
        in str(err)


class _OneAtATime(ScriptedPrompter):
    """A scripted person who notices when two questions are asked at once."""

    active = 0
    overlap = 0
    lock = threading.Lock()

    def answer(self, prompt: Any) -> Any:
        with _OneAtATime.lock:
            _OneAtATime.active += 1
            _OneAtATime.overlap = max(_OneAtATime.overlap, _OneAtATime.active)
        try:
            time.sleep(0.15)
            return super().answer(prompt)
        finally:
            with _OneAtATime.lock:
                _OneAtATime.active -= 1


def test_concurrency_two_runs_both_values_at_once_and_asks_one_prompt_at_a_time(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(harness, "ScriptedPrompter", _OneAtATime)
    w = world(tmp_path)
    # each iteration's action waits for the other one to have started: serially it fails
    assert w.run("fleet-checks", params={"nodes": "[a, b]"},
                 script={"check[0].looked": True, "check[1].looked": True}) == ExitCode.OK
    assert _OneAtATime.overlap == 1                    # the two manual items were asked one after the other
    assert sorted(w.asked) == ["check[0].looked", "check[1].looked"]
    recs = w.records()
    assert len(of_type(recs, "item.result", item="start", passed=True)) == 2
    starts = [r["seq"] for r in recs if r["type"] == "step.started" and r["data"]["step"].startswith("check[")]
    first_done = min(r["seq"] for r in of_type(recs, "step.finished") if r["data"]["step"].startswith("check["))
    assert len(starts) == 2 and max(starts) < first_done      # both started before either finished
    assert {r["data"]["each"]["value"] for r in of_type(recs, "prompt.answered")} == {"a", "b"}


def test_a_failure_within_max_failures_is_a_deviation_and_the_step_goes_on(tmp_path: Path) -> None:
    w = world(tmp_path)
    assert w.run("fleet", params={"nodes": "[a, bad-1, c]"}) == ExitCode.OK
    assert w.lines("drained.txt") == ["0:a", "1:bad-1", "2:c"] and w.lines("after.txt") == ["after"]
    state = w.state(w.last())
    assert state.steps["drain"].status.value == "succeeded"
    assert state.steps["drain[1]"].status.value == "failed"
    assert [(d["kind"], d["step"]) for d in state.deviations] == [
        ("for_each iteration failed (within max_failures)", "drain[1]")]
    assert state.status is Status.SUCCEEDED


def test_one_failure_more_than_max_failures_fails_the_step_and_starts_no_more(tmp_path: Path) -> None:
    w = world(tmp_path)
    assert w.run("fleet", params={"nodes": "[a, bad-1, bad-2, d]"}) == ExitCode.FAILED
    assert w.lines("drained.txt") == ["0:a", "1:bad-1", "2:bad-2"]        # d never started
    assert w.lines("after.txt") == []
    state = w.state(w.last())
    assert state.steps["drain"].status.value == "failed" and "drain[3]" not in state.steps
    assert "2 iteration(s) failed, more than max_failures 1" in state.reason
    assert not state.deviations

    # fixed: a resume runs the failed values and the one never started; a is never done again
    (w.work / "fixed").write_text("")
    assert w.run(resume=w.last()) == ExitCode.OK
    assert w.lines("drained.txt") == ["0:a", "1:bad-1", "2:bad-2", "3:d"]   # marks of bad-* are not repeated
    recs = w.records()
    assert len(of_type(recs, "step.started", step="drain[0]")) == 1
    assert [len(of_type(recs, "item.intent", step=f"drain[{i}]", item="check")) for i in range(4)] == [1, 2, 2, 1]
    assert w.state(w.last()).status is Status.SUCCEEDED and w.lines("after.txt") == ["after"]


def test_a_crash_in_the_middle_resumes_with_the_values_not_done(tmp_path: Path) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from helpers import invoke

    w = world(tmp_path)
    crashed = invoke("runbook", "fleet", "--param", f"dir={w.work}", "--param", "nodes=[a, b, c]",
                     root=w.root, home=w.home, env={"RUNBOOK_CRASH_AT": "drain[1].mark:after-effect"})
    assert crashed.returncode == -9, crashed.stdout + crashed.stderr
    assert w.lines("drained.txt") == ["0:a", "1:b"]
    run_id = w.last()
    assert w.run(resume=run_id) == ExitCode.OK
    assert w.lines("drained.txt") == ["0:a", "1:b", "2:c"]        # a and b are never done twice
    recs = w.records(run_id)
    assert len(of_type(recs, "step.values")) == 1                 # the list is fixed at the first start
    assert len(of_type(recs, "step.started", step="drain[0]")) == 1  # the value that succeeded is not repeated
    assert of_type(recs, "item.result", step="drain[1]", item="mark", recovered="probe")
    assert len(of_type(recs, "item.intent", step="drain[2]", item="mark")) == 1
    assert w.state(run_id).status is Status.SUCCEEDED


def test_answers_may_answer_every_iteration_and_one_iteration_wins(tmp_path: Path) -> None:
    w = world(tmp_path)
    (w.work / "started-seed").write_text("")
    answers = {"check[*].looked": True, "check[1].looked": {"done": False, "reason": "b is down for repair"}}
    assert w.run("fleet-checks", params={"nodes": "[a, b, c]"}, answers=answers) == ExitCode.OK
    state = w.state(w.last())
    assert {i: state.steps[f"check[{i}]"].items["looked"].result["passed"] for i in range(3)} == {
        0: True, 1: False, 2: True}
    assert [(d["kind"], d["step"]) for d in state.deviations] == [("item not done", "check[1]")]
    # an iteration that does not exist is refused before anything runs
    err = w.expect_error("fleet-checks", params={"nodes": "[a, b]"}, answers={"check[5].looked": True})
    assert "no prompt 'check[5].looked'" in str(err)


def test_show_lists_iteration_prompt_ids_known_or_not(tmp_path: Path) -> None:
    w = world(tmp_path)
    out = io.StringIO()
    cli.show(w.root, "fleet-checks", params=["nodes=[a, b]"], out=out)
    ids = [line.split()[0] for line in out.getvalue().split("prompt ids", 1)[1].splitlines()[1:]]
    assert [i for i in ids if i.startswith("check")] == [
        "check[0].start.running", "check[0].start.on_fail", "check[0].looked", "check[0].on_fail",
        "check[1].start.running", "check[1].start.on_fail", "check[1].looked", "check[1].on_fail", "check.on_fail"]
    out = io.StringIO()
    cli.show(w.root, "fleet-checks", out=out)            # nodes asked at run time: one id for every value
    assert "    check[*].looked  (manual)" in out.getvalue() and "check[0]" not in out.getvalue()


def test_for_each_over_a_list_output_runs_an_include_per_value(tmp_path: Path) -> None:
    w = world(tmp_path)
    assert w.run("fleet-include") == ExitCode.OK
    assert w.lines("cordoned.txt") == ["n1", "n2"]
    recs = w.records()
    assert [r["data"]["values"] for r in of_type(recs, "step.values", step="drain")] == [["n1", "n2"]]
    started = [r["data"]["step"] for r in of_type(recs, "step.started")]
    assert started == ["find", "drain", "drain[0].cordon", "drain[0].evict", "drain[1].cordon", "drain[1].evict"]
    assert of_type(recs, "item.result", step="drain[1].cordon", item="mark", passed=True)[0]["data"]["each"] == {
        "index": 1, "value": "n2"}


def test_a_for_each_run_step_starts_one_linked_run_per_value_and_console_lines_carry_the_value(
        tmp_path: Path) -> None:
    from runbook.console import Console

    w = world(tmp_path)
    (w.root / "runbooks" / "fleet-runs.yaml").write_text("""\
name: fleet-runs
title: One linked cleanup run per source (for_each over a literal list, on a run step)
params: {dir: {type: string}}
steps:
  - id: each
    title: Clean up after each source
    for_each: [red, blue]
    run: {runbook: cleanup, with: {source: "${each.value}", dir: "${params.dir}"}}
""")
    assert w.run("fleet-runs") == ExitCode.OK
    assert w.lines("cleanup.txt") == ["cleanup after red", "cleanup after blue"]
    state = w.state(w.runs()[0] if w.state(w.runs()[0]).runbook == "fleet-runs" else w.runs()[-1])
    assert sorted(state.children) == ["each[0]", "each[1]"]
    assert all(c["status"] == "succeeded" for c in state.children.values())

    out = io.StringIO()
    console = Console(out=out, plain=True)
    for rec in w.records(state.run_id):
        console.event(rec)
    assert "> each[1] (blue): Clean up after each source" in out.getvalue()


def test_a_condition_of_one_included_step_skips_that_step_in_each_iteration_not_the_for_each(
        tmp_path: Path) -> None:
    w = world(tmp_path)
    (w.root / "runbooks" / "drain-node.yaml").write_text("""\
name: drain-node
title: Drain one node; cordon only when asked to
params:
  dir: {type: string}
  node: {type: string}
  cordon: {type: boolean, default: false}
steps:
  - id: cordon
    title: Cordon the node
    when: "${params.cordon}"
    do:
      - id: mark
        uses: effects.append
        with: {file: "${params.dir}/cordoned.txt", line: "${params.node}"}
  - id: evict
    title: Evict its pods
    do:
      - id: evict
        uses: effects.append
        with: {file: "${params.dir}/evicted.txt", line: "${params.node}"}
""")
    assert w.run("fleet-include") == ExitCode.OK
    state = w.state(w.last())
    assert [state.steps[f"drain[{i}].{s}"].status.value for i in (0, 1) for s in ("cordon", "evict")] == [
        "skipped", "succeeded", "skipped", "succeeded"]
    assert w.lines("evicted.txt") == ["n1", "n2"] and w.lines("cordoned.txt") == []
