"""The Runner in-process (``runbook.engine`` through ``core.harness.World``): condition skips and
their reasons, automatic retries, evidence a manual item needs, a declined linked run, and the cap
on retries an answers file can ask for. Plugins here never start a process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.harness import World, of_type, world
from runbook.errors import ExitCode
from runbook.faults import Faults
from runbook.state import Status

COUNTING = '''\
"""A check that fails until it has been called ``pass_at`` times (a counter file per ``name``)."""

from pathlib import Path

from runbook.plugins import Context, Outcome, check


@check("count.until", args={"properties": {"file": {"type": "string"}, "pass_at": {"type": "integer"}},
                            "required": ["file", "pass_at"]})
def until(ctx: Context) -> Outcome:
    path = Path(ctx.args["file"])
    n = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(n))
    if n >= ctx.args["pass_at"]:
        return Outcome.ok(f"call {n} passed")
    return Outcome.fail(f"call {n} of {ctx.args['pass_at']}")
'''


@pytest.fixture
def w(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    monkeypatch.setenv("RUNBOOK_OPERATOR", "tester@example.com")
    monkeypatch.delenv("RUNBOOK_FAIL_AT", raising=False)
    w = world(tmp_path)
    (w.root / "checks" / "counting.py").write_text(COUNTING)
    return w


def runbook(w: World, name: str, body: str) -> str:
    """Write runbooks/NAME.yaml (name, title and a ``dir`` parameter added); returns the name."""
    (w.root / "runbooks" / f"{name}.yaml").write_text(f"name: {name}\ntitle: {name}\n" + body)
    return name


def finished(w: World, step: str) -> dict[str, Any]:
    [rec] = of_type(w.records(), "step.finished", step=step)
    return rec["data"]


# -- conditions ------------------------------------------------------------------------------

CONDITIONS = """\
params:
  dir: {type: string}
  go: {type: boolean, default: true}
  dry: {type: boolean, default: false}
steps:
  - id: when-go
    title: Runs when go
    when: "${params.go}"
    do: [{id: w, uses: effects.append, with: {file: "${params.dir}/when.txt", line: ran}}]
  - id: unless-dry
    title: Runs unless dry
    unless: "${params.dry}"
    do: [{id: w, uses: effects.append, with: {file: "${params.dir}/unless.txt", line: ran}}]
  - id: inc
    when: "${params.go}"
    include: child
    with: {dir: "${params.dir}"}
  - id: always
    title: Always
    do: [{id: w, uses: effects.append, with: {file: "${params.dir}/always.txt", line: ran}}]
"""
CHILD = """\
params: {dir: {type: string}}
steps:
  - id: act
    title: Act
    do: [{id: w, uses: effects.append, with: {file: "${params.dir}/child.txt", line: ran}}]
"""


@pytest.fixture
def conditional(w: World) -> World:
    runbook(w, "child", CHILD)
    runbook(w, "conditional", CONDITIONS)
    return w


def test_steps_whose_conditions_hold_run(conditional: World) -> None:
    assert conditional.run("conditional") == ExitCode.OK
    for name in ("when", "unless", "child", "always"):
        assert conditional.lines(f"{name}.txt") == ["ran"]
    assert not of_type(conditional.records(), "step.finished", status="skipped")


@pytest.mark.parametrize("params,step,reason", [
    ({"go": "false"}, "when-go", "when: ${params.go} is false"),
    ({"dry": "true"}, "unless-dry", "unless: ${params.dry} is true"),
])
def test_a_condition_skips_its_step_with_the_condition_as_written(
        conditional: World, params: dict[str, str], step: str, reason: str) -> None:
    assert conditional.run("conditional", params=params) == ExitCode.OK
    assert finished(conditional, step) == {"step": step, "status": "skipped", "reason": reason}
    assert conditional.lines("always.txt") == ["ran"]
    state = conditional.state(conditional.last())
    assert state.status is Status.SUCCEEDED and state.deviations == [] and state.finished(step)


def test_an_includes_condition_skips_every_step_it_brings(conditional: World) -> None:
    assert conditional.run("conditional", params={"go": "false"}) == ExitCode.OK
    assert finished(conditional, "inc.act")["status"] == "skipped"
    assert conditional.lines("child.txt") == [] and conditional.lines("when.txt") == []
    assert not of_type(conditional.records(), "item.intent", step="inc.act")


def test_an_includes_skip_reason_shows_the_condition_as_written(conditional: World) -> None:
    assert conditional.run("conditional", params={"go": "false"}) == ExitCode.OK
    assert finished(conditional, "inc.act")["reason"] == "when: ${params.go} is false"


# -- automatic retries --------------------------------------------------------------------------

RETRYING = """\
params: {dir: {type: string}, pass_at: {type: integer}}
steps:
  - id: flaky
    title: Passes on a later attempt
    on_failure: retry
    retry: {attempts: 3, delay: 0}
    verify: [{id: up, uses: count.until, with: {file: "${params.dir}/calls", pass_at: "${params.pass_at}"}}]
  - id: after
    title: After
    do: [{id: w, uses: effects.append, with: {file: "${params.dir}/after.txt", line: ran}}]
"""


@pytest.mark.parametrize("pass_at,code,calls", [(1, ExitCode.OK, 1), (3, ExitCode.OK, 3), (4, ExitCode.FAILED, 3)])
def test_on_failure_retry_tries_a_failed_check_up_to_its_attempts(
        w: World, pass_at: int, code: int, calls: int) -> None:
    assert w.run(runbook(w, "retrying", RETRYING), params={"pass_at": pass_at}) == code
    results = of_type(w.records(), "item.result", step="flaky", item="up")
    assert [r["data"]["passed"] for r in results] == [False] * (calls - 1) + [code == ExitCode.OK]
    state = w.state(w.last())
    assert state.deviations == []                                   # a retry is not a deviation
    assert w.lines("after.txt") == (["ran"] if code == ExitCode.OK else [])


def test_without_on_failure_retry_a_failed_check_is_tried_once(w: World) -> None:
    body = RETRYING.replace("    on_failure: retry\n    retry: {attempts: 3, delay: 0}\n", "")
    assert w.run(runbook(w, "once", body), params={"pass_at": 2}) == ExitCode.FAILED
    assert len(of_type(w.records(), "item.result", item="up")) == 1
    assert w.state(w.last()).reason == "up: call 1 of 2"


def test_a_failed_check_skipped_by_the_answers_file_is_a_deviation(w: World) -> None:
    body = RETRYING.replace("    on_failure: retry\n    retry: {attempts: 3, delay: 0}\n", "")
    answers = {"flaky.up.on_fail": {"choice": "skip", "reason": "known flake, dashboard green"}}
    assert w.run(runbook(w, "skipping", body), params={"pass_at": 9}, answers=answers) == ExitCode.OK
    state = w.state(w.last())
    assert [(d["kind"], d["detail"]) for d in state.deviations] == [
        ("failed check skipped", "up: known flake, dashboard green")]
    assert w.lines("after.txt") == ["ran"]


# -- the cap on retries from an answers file ---------------------------------------------------------

def test_an_answers_files_retry_of_a_failed_check_stops_after_three(w: World) -> None:
    body = RETRYING.replace("    on_failure: retry\n    retry: {attempts: 3, delay: 0}\n", "")
    answers = {"flaky.up.on_fail": {"choice": "retry"}}
    assert w.run(runbook(w, "stubborn", body), params={"pass_at": 99}, answers=answers) == ExitCode.FAILED
    assert len(of_type(w.records(), "item.result", item="up")) == 4              # the first try and three retries
    assert len(of_type(w.records(), "prompt.answered", id="flaky.up.on_fail")) == 4
    assert "still failing after 3 retries from answers-file:" in w.state(w.last()).reason


def test_an_answers_files_retry_of_a_failed_step_stops_after_three(
        w: World, monkeypatch: pytest.MonkeyPatch) -> None:
    w.faults = Faults(fail_at=("after.w",))
    body = RETRYING.replace("    on_failure: retry\n    retry: {attempts: 3, delay: 0}\n", "")
    assert w.run(runbook(w, "stuck", body), params={"pass_at": 1},
                 answers={"after.on_fail": {"choice": "retry"}}) == ExitCode.FAILED
    records = w.records()
    assert len(of_type(records, "item.intent", step="after", item="w")) == 4
    assert len(of_type(records, "step.started", step="after", restart=True)) == 3
    assert "still failing after 3 retries from answers-file:" in finished(w, "after")["reason"]


# -- evidence -----------------------------------------------------------------------------------------

EVIDENCE = """\
params: {dir: {type: string}}
steps:
  - id: evidence
    title: Evidence needed
    do:
      - id: link
        manual: Link the dashboard
        evidence: link
"""


@pytest.mark.parametrize("how", ["answers", "yes"])
def test_a_manual_item_whose_evidence_is_missing_parks_without_a_person(w: World, how: str) -> None:
    name = runbook(w, "evidenced", EVIDENCE)
    code = w.run(name, answers={"evidence.link": True}) if how == "answers" else w.run(name, yes=True)
    assert code == ExitCode.PARKED
    state = w.state(w.last())
    assert state.status is Status.PARKED and "evidence.link" in state.reason and "link" in state.reason
    assert not of_type(w.records(), "item.result", item="link")


def test_a_person_is_asked_for_the_missing_evidence(w: World) -> None:
    name = runbook(w, "evidenced", EVIDENCE)
    assert w.run(name, script={"evidence.link": [True, {"value": "https://dash.example/42"}]}) == ExitCode.OK
    [result] = of_type(w.records(), "item.result", item="link")
    assert result["data"]["outputs"]["link"] == "https://dash.example/42"
    assert w.asked == ["evidence.link", "evidence.link"]


def test_evidence_given_in_the_answers_file_is_enough(w: World) -> None:
    name = runbook(w, "evidenced", EVIDENCE)
    assert w.run(name, answers={"evidence.link": {"done": True, "link": "https://dash.example/1"}}) == ExitCode.OK
    assert "(https://dash.example/1)" in of_type(w.records(), "item.result", item="link")[0]["data"]["summary"]


def test_a_parked_item_is_asked_again_on_resume(w: World) -> None:
    name = runbook(w, "evidenced", EVIDENCE)
    assert w.run(name, answers={"evidence.link": True}) == ExitCode.PARKED
    run_id = w.last()
    assert w.run(resume=run_id, answers={"evidence.link": {"done": True, "link": "https://d.example/2"}}) == \
        ExitCode.OK
    assert w.state(run_id).status is Status.SUCCEEDED and w.runs() == [run_id]


# -- a declined linked run ------------------------------------------------------------------------------

OFFERED = """\
params: {dir: {type: string}}
steps:
  - id: offer
    title: Offer the child run
    confirm: Start the child run?
    run: {runbook: child, with: {dir: "${params.dir}"}}
  - id: after
    title: After
    do: [{id: w, uses: effects.append, with: {file: "${params.dir}/after.txt", line: ran}}]
"""


def test_a_declined_linked_run_skips_its_step_and_is_not_a_deviation(w: World) -> None:
    runbook(w, "child", CHILD)
    assert w.run(runbook(w, "offered", OFFERED), answers={"offer.confirm": False}) == ExitCode.OK
    assert finished(w, "offer") == {"step": "offer", "status": "skipped", "reason": "declined: Start the child run?"}
    assert w.runs() == [w.last()] and w.lines("child.txt") == [] and w.lines("after.txt") == ["ran"]
    state = w.state(w.last())
    assert state.deviations == [] and state.children == {}


def test_an_accepted_linked_run_is_its_own_run_linked_both_ways(w: World) -> None:
    runbook(w, "child", CHILD)
    assert w.run(runbook(w, "offered", OFFERED), answers={"offer.confirm": True}) == ExitCode.OK
    parent_id, child_id = w.runs()
    assert w.state(parent_id).children == {"offer": {"run": child_id, "status": "succeeded", "runbook": "child"}}
    assert w.state(child_id).parent == {"run": parent_id, "step": "offer"}
    assert w.lines("child.txt") == ["ran"] and w.lines("after.txt") == ["ran"]


def test_a_confirm_declined_on_a_task_step_fails_the_run(w: World) -> None:
    body = OFFERED.replace("    run: {runbook: child, with: {dir: \"${params.dir}\"}}\n",
                           "    do: [{id: w, uses: effects.append, with: {file: \"${params.dir}/x.txt\", line: x}}]\n")
    assert w.run(runbook(w, "confirmed", body), answers={"offer.confirm": False}) == ExitCode.FAILED
    assert finished(w, "offer")["status"] == "failed" and w.lines("x.txt") == [] and w.lines("after.txt") == []


# -- outputs between steps ------------------------------------------------------------------------------

def test_an_actions_outputs_feed_a_later_step(w: World) -> None:
    body = """\
params: {dir: {type: string}}
steps:
  - id: write
    title: Write twice
    do:
      - {id: first, uses: effects.append, with: {file: "${params.dir}/out.txt", line: one}}
      - {id: second, uses: effects.append, with: {file: "${params.dir}/out.txt", line: two}}
  - id: check
    title: Check the count
    verify: [{id: count, uses: core.equals, with: {actual: "${steps.write.second.count}", expected: 2}}]
"""
    assert w.run(runbook(w, "outputs", body)) == ExitCode.OK
    assert w.state(w.last()).outputs("write", "second") == {"count": 2}
    assert of_type(w.records(), "item.result", item="count", passed=True)
