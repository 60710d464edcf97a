"""Resume never walks past a failed step (DESIGN, Resume), tested in-process with the real Runner,
a LocalStore in a temp folder, real plugins and a scripted person or an answers file."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.harness import of_type, world
from runbook.errors import ExitCode, InputError
from runbook.faults import NONE, Faults
from runbook.state import Status

OPERATOR = "tester@example.com"


@pytest.fixture(autouse=True)
def _operator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNBOOK_OPERATOR", OPERATOR)
    monkeypatch.delenv("RUNBOOK_FAIL_AT", raising=False)


ANSWERS = {"swap.confirm": True, "approve.approval": {"approvers": ["bob@example.com"]}}


def test_a_guard_that_still_fails_fails_again_and_its_action_never_runs(tmp_path: Path) -> None:
    w = world(tmp_path)
    assert w.run("guarded", answers=ANSWERS) == ExitCode.FAILED
    run_id = w.last()
    assert w.lines("first.txt") == ["first"] and w.lines("stopped.txt") == []

    # resumed without the fix: the guard is checked again, fails again, the guarded action never runs
    assert w.run(resume=run_id, answers=ANSWERS) == ExitCode.FAILED
    recs = w.records(run_id)
    assert len(of_type(recs, "item.result", step="swap", item="volume-ready", passed=False)) == 2
    assert w.lines("stopped.txt") == [] and w.lines("started.txt") == []
    assert w.state(run_id).status is Status.FAILED
    assert of_type(recs, "step.started", step="swap", restart=True)

    # fixed: the guard passes, the confirm is asked again, the actions run once, the rest follows
    (w.work / "volume.txt").write_text("ready\n")
    (w.work / "attach-ok").write_text("")
    assert w.run(resume=run_id, answers=ANSWERS) == ExitCode.OK
    assert w.lines("first.txt") == ["first"]                # a step that succeeded is never repeated
    assert w.lines("stopped.txt") == ["stopped"] and w.lines("attached.txt") == ["attached"]
    assert w.lines("started.txt") == ["started"]
    assert w.state(run_id).status is Status.SUCCEEDED and not w.state(run_id).deviations


def test_a_failed_action_runs_again_and_one_that_succeeded_never_does(tmp_path: Path) -> None:
    w = world(tmp_path)
    (w.work / "volume.txt").write_text("ready\n")
    assert w.run("guarded", answers=ANSWERS) == ExitCode.FAILED        # attach fails: nobody to ask
    run_id = w.last()
    assert w.lines("stopped.txt") == ["stopped"]
    assert w.run(resume=run_id, answers=ANSWERS) == ExitCode.FAILED     # still failing: fails again
    assert w.lines("stopped.txt") == ["stopped"]                        # stop succeeded once: never repeated
    recs = w.records(run_id)
    assert len(of_type(recs, "item.intent", step="swap", item="attach")) == 2
    assert len(of_type(recs, "prompt.answered", id="swap.confirm")) == 2   # the confirm is asked again
    (w.work / "attach-ok").write_text("")
    assert w.run(resume=run_id, answers=ANSWERS) == ExitCode.OK
    assert w.lines("stopped.txt") == ["stopped"] and w.lines("attached.txt") == ["attached"]


def test_the_only_way_past_a_failed_action_is_a_typed_skip_counted_as_a_deviation(tmp_path: Path) -> None:
    w = world(tmp_path)
    (w.work / "volume.txt").write_text("ready\n")
    assert w.run("guarded", answers=ANSWERS) == ExitCode.FAILED
    run_id = w.last()
    skip = {**ANSWERS, "swap.on_fail": {"choice": "skip", "reason": "volume attached by hand in the console"}}
    assert w.run(resume=run_id, answers=skip) == ExitCode.OK
    state = w.state(run_id)
    assert state.steps["swap"].status.value == "skipped"
    assert [d["kind"] for d in state.deviations] == ["failed step skipped"]
    assert "attached by hand" in state.deviations[0]["detail"]
    assert w.lines("started.txt") == ["started"]


def test_in_a_terminal_a_failed_action_offers_retry_skip_abort(tmp_path: Path) -> None:
    w = world(tmp_path)
    (w.work / "volume.txt").write_text("ready\n")
    script = {"swap.confirm": True, "swap.on_fail": [{"choice": "retry"}, {"choice": "abort"}]}
    assert w.run("guarded", script=script) == ExitCode.FAILED
    recs = w.records()
    assert len(of_type(recs, "item.intent", step="swap", item="attach")) == 2     # retried once, then aborted
    assert w.lines("stopped.txt") == ["stopped"]
    assert w.state(w.last()).status is Status.FAILED


def test_a_refused_approval_is_asked_again_in_a_terminal(tmp_path: Path) -> None:
    w = world(tmp_path)
    (w.work / "volume.txt").write_text("ready\n")
    (w.work / "attach-ok").write_text("")
    script = {"swap.confirm": True,
              "approve.approval": [{"approvers": [OPERATOR]}, {"approvers": ["bob@example.com"]}],
              "approve.on_fail": {"choice": "retry"}}
    assert w.run("guarded", script=script) == ExitCode.OK
    recs = w.records()
    answers = of_type(recs, "prompt.answered", id="approve.approval")
    assert "cannot approve their own run" in answers[0]["data"]["refused"]
    assert answers[1]["data"]["answer"] == {"approvers": ["bob@example.com"]} and "refused" not in answers[1]["data"]
    assert w.lines("started.txt") == ["started"]


def test_a_refused_approval_parks_without_a_terminal_and_is_asked_again_on_resume(tmp_path: Path) -> None:
    w = world(tmp_path)
    (w.work / "volume.txt").write_text("ready\n")
    (w.work / "attach-ok").write_text("")
    refused = {**ANSWERS, "approve.approval": {"approvers": [OPERATOR]}}
    assert w.run("guarded", answers=refused) == ExitCode.PARKED
    run_id = w.last()
    assert w.lines("started.txt") == []
    assert w.run(resume=run_id, answers=refused) == ExitCode.PARKED      # still refused: never walked past
    assert w.lines("started.txt") == []
    assert w.run(resume=run_id, answers=ANSWERS) == ExitCode.OK
    assert w.lines("started.txt") == ["started"] and w.lines("stopped.txt") == ["stopped"]


def test_an_abort_at_the_confirm_is_asked_again_on_resume(tmp_path: Path) -> None:
    w = world(tmp_path)
    (w.work / "volume.txt").write_text("ready\n")
    (w.work / "attach-ok").write_text("")
    assert w.run("guarded", answers={**ANSWERS, "swap.confirm": False}) == ExitCode.FAILED
    run_id = w.last()
    assert w.lines("stopped.txt") == []
    assert w.run(resume=run_id, script={"swap.confirm": True, **{"approve.approval": ANSWERS["approve.approval"]}}) \
        == ExitCode.OK
    assert "swap.confirm" in w.asked and w.lines("stopped.txt") == ["stopped"]


def test_an_undone_manual_item_succeeds_with_one_deviation(tmp_path: Path) -> None:
    w = world(tmp_path)
    answers = {"confirm-it.confirm": True, "confirm-it.tick": {"done": False, "reason": "ticket system down"},
               "evidence.link": {"done": True, "link": "https://dash.example/1"},
               "approve.approval": {"approvers": ["bob@example.com", "carol@example.com"]}}
    assert w.run("gates", answers=answers) == ExitCode.OK
    from runbook.review import view

    run = view(w.records())
    assert run.status == "succeeded" and run.outcome == "succeeded with 1 deviation(s)"
    assert run.summary()["deviations"] == 1 and run.summary()["outcome"] == "succeeded with 1 deviation(s)"
    assert [d["kind"] for d in run.deviations] == ["item not done"]
    assert "ticket system down" in run.deviations[0]["detail"]


def test_what_is_not_a_deviation(tmp_path: Path) -> None:
    """Retries, condition skips and accepted rollback offers are not deviations."""
    w = world(tmp_path)
    assert w.run("flow", params={"fail_after": "true"}, answers={"run.on_failure": True}) == ExitCode.FAILED
    state = w.state(w.runs()[0])
    # the only deviation: the step that failed under on_failure: continue
    assert [d["kind"] for d in state.deviations] == ["step failed (on_failure: continue)"]


def test_on_failure_continue_runs_the_rest_of_the_step(tmp_path: Path) -> None:
    w = world(tmp_path)
    (w.root / "runbooks" / "assess.yaml").write_text("""\
name: assess
title: A failing check does not end a step under on_failure continue
params: {dir: {type: string}}
steps:
  - id: assess
    title: Assess
    on_failure: continue
    verify:
      - id: health
        uses: core.equals
        with: {actual: down, expected: up}
      - id: rate
        uses: core.equals
        with: {actual: 1, expected: 1}
      - id: severity
        manual: Severity decided
        evidence: note
  - id: act
    title: Act
    do:
      - id: write
        uses: effects.append
        with: {file: "${params.dir}/acted.txt", line: acted}
""")
    assert w.run("assess", answers={"assess.severity": {"done": True, "note": "SEV2"}}) == ExitCode.OK
    recs = w.records()
    assert of_type(recs, "item.result", item="rate", passed=True)                 # the next check still ran
    assert of_type(recs, "item.result", item="severity", passed=True)             # the manual item was asked
    finished = of_type(recs, "step.finished", step="assess")[0]["data"]
    assert finished["status"] == "failed" and finished["continued"] is True
    assert w.lines("acted.txt") == ["acted"]


def test_a_failed_guard_under_continue_does_not_act(tmp_path: Path) -> None:
    w = world(tmp_path)
    (w.root / "runbooks" / "soft-guard.yaml").write_text("""\
name: soft-guard
title: A failed guard never lets its step act, even under on_failure continue
params: {dir: {type: string}}
steps:
  - id: guarded
    title: Guarded
    on_failure: continue
    requires:
      - uses: core.equals
        with: {actual: 1, expected: 2}
    do:
      - id: write
        uses: effects.append
        with: {file: "${params.dir}/acted.txt", line: acted}
""")
    assert w.run("soft-guard") == ExitCode.OK
    assert w.lines("acted.txt") == []


def test_rolled_back_is_final_frees_the_lock_and_the_next_run_needs_no_cleanup(tmp_path: Path) -> None:
    w = world(tmp_path)
    assert w.run("flow", params={"fail_after": "true"}, answers={"run.on_failure": True}) == ExitCode.FAILED
    flow_id = w.runs()[0]
    state = w.state(flow_id)
    assert state.status is Status.ROLLED_BACK
    assert of_type(w.records(flow_id), "run.rolled-back")[0]["data"]["by_run"] == w.runs()[1]
    assert w.store.locks.all() == []
    err = w.expect_error(resume=flow_id)
    assert "rolled-back; there is nothing to resume" in str(err)
    assert w.run("flow") == ExitCode.OK                                 # no runbook.abandon needed


def test_a_failed_rollback_leaves_the_parent_failed_and_resuming_it_resumes_the_rollback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    w = world(tmp_path)
    w.faults = Faults(fail_at=("clean.do-0",))
    assert w.run("flow", params={"fail_after": "true"}, answers={"run.on_failure": True}) == ExitCode.FAILED
    flow_id, cleanup_id = w.runs()
    assert w.state(flow_id).status is Status.FAILED and w.state(cleanup_id).status is Status.FAILED
    assert w.store.locks.all()                                           # the chain keeps its lock
    w.faults = NONE
    assert w.run(resume=flow_id, answers={"run.on_failure": True}) == ExitCode.FAILED   # rolled-back exits 1
    assert w.state(cleanup_id).status is Status.SUCCEEDED
    assert w.state(flow_id).status is Status.ROLLED_BACK
    recs = w.records(flow_id)
    assert len(of_type(recs, "step.started", step="late-fail")) == 1     # the failed step never ran again
    assert w.lines("cleanup.txt") == [f"cleanup after {flow_id}"]
    assert w.store.locks.all() == []


def test_resume_is_guarded_like_a_start_on_a_protected_environment(tmp_path: Path) -> None:
    w = world(tmp_path)
    (w.work / "volume.txt").write_text("ready\n")
    (w.work / "attach-ok").write_text("")
    typed = {"run.environment": {"choice": "prod-like"}}
    assert w.run("effects", env="prod-like", answers={**typed}) == ExitCode.OK
    (w.root / "runbooks" / "confirmed.yaml").write_text("""\
name: confirmed
title: Parks at a confirmation
params: {dir: {type: string}}
steps:
  - id: change
    title: Change production
    confirm: Change it?
    do:
      - id: write
        uses: effects.append
        with: {file: "${params.dir}/changed.txt", line: changed}
""")
    assert w.run("confirmed", env="prod-like", answers=typed) == ExitCode.PARKED
    run_id = w.last()
    before = (w.home / "runs" / run_id / "journal.jsonl").read_bytes()
    err = w.expect_error(resume=run_id, yes=True)
    assert isinstance(err, InputError) and "--yes is refused on protected environment 'prod-like'" in str(err)
    err = w.expect_error(resume=run_id)                                  # nobody to type the name
    assert isinstance(err, InputError) and "needs its name typed" in str(err)
    assert (w.home / "runs" / run_id / "journal.jsonl").read_bytes() == before
    assert w.lines("changed.txt") == []
    assert w.run(resume=run_id, answers={**typed, "change.confirm": True}) == ExitCode.OK
    assert w.lines("changed.txt") == ["changed"]


LINKED = """\
name: parent
title: A linked run that fails, and an included step
params: {dir: {type: string}}
steps:
  - id: inc
    include: child
    with: {dir: "${params.dir}"}
  - id: linked
    title: Run the child as its own run
    run: {runbook: child, with: {dir: "${params.dir}"}}
  - id: after
    title: Afterwards
    do:
      - id: write
        uses: effects.append
        with: {file: "${params.dir}/after.txt", line: after}
"""
CHILD = """\
name: child
title: One action that may fail
params: {dir: {type: string}}
steps:
  - id: act
    title: Act
    do:
      - id: write
        uses: effects.append
        with: {file: "${params.dir}/child.txt", line: "child-${run.id}"}
"""


def test_a_failed_linked_run_is_resumed_by_its_parent_and_never_walked_past(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    w = world(tmp_path)
    (w.root / "runbooks" / "parent.yaml").write_text(LINKED)
    (w.root / "runbooks" / "child.yaml").write_text(CHILD)
    w.faults = Faults(fail_at=("act.write",))          # the linked run's action fails
    assert w.run("parent") == ExitCode.FAILED
    parent_id, child_id = w.runs()
    assert w.state(child_id).status is Status.FAILED
    assert w.run(resume=parent_id) == ExitCode.FAILED                   # without the fix: fails again
    assert w.lines("after.txt") == []
    assert len(of_type(w.records(child_id), "item.intent", step="act", item="write")) == 2
    w.faults = NONE
    assert w.run(resume=parent_id) == ExitCode.OK
    assert w.runs() == [parent_id, child_id]                            # the same linked run, resumed
    assert w.lines("child.txt") == [f"child-{parent_id}", f"child-{child_id}"] and w.lines("after.txt") == ["after"]
    assert w.state(child_id).status is Status.SUCCEEDED


def test_a_failed_included_step_starts_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    w = world(tmp_path)
    (w.root / "runbooks" / "parent.yaml").write_text(LINKED)
    (w.root / "runbooks" / "child.yaml").write_text(CHILD)
    w.faults = Faults(fail_at=("inc.act.write",))
    assert w.run("parent") == ExitCode.FAILED
    run_id = w.last()
    assert w.run(resume=run_id) == ExitCode.FAILED
    assert w.lines("child.txt") == [] and len(w.runs()) == 1
    w.faults = NONE
    assert w.run(resume=run_id) == ExitCode.OK
    assert w.lines("child.txt")[0] == f"child-{run_id}" and w.lines("after.txt") == ["after"]


def test_recovery_by_verify_needs_every_verify_check_to_pass(tmp_path: Path) -> None:
    """An action cut off after its intent, without a probe: one verify check passing is not enough."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from helpers import invoke

    w = world(tmp_path)
    (w.root / "runbooks" / "half.yaml").write_text("""\
name: half
title: An action whose verify checks only half pass
params: {dir: {type: string}}
steps:
  - id: act
    title: Act
    do:
      - id: write
        uses: shell.run
        with: {argv: [python3, -c, "import sys; open(sys.argv[1], 'a').write('written\\\\n')", "${params.dir}/w.txt"]}
    verify:
      - id: written
        uses: file.contains
        with: {path: "${params.dir}/w.txt", pattern: written}
      - id: other
        uses: core.equals
        with: {actual: 1, expected: 2}
""")
    crashed = invoke("runbook", "half", "--param", f"dir={w.work}", root=w.root, home=w.home,
                     env={"RUNBOOK_CRASH_AT": "act.write:after-effect"})
    assert crashed.returncode == -9, crashed.stdout + crashed.stderr
    assert w.lines("w.txt") == ["written"]
    assert w.run(resume=w.last()) == ExitCode.PARKED          # unknown effect: a person must look
    recs = w.records()
    assert not of_type(recs, "item.result", step="act", item="write", recovered="verify")
    assert w.lines("w.txt") == ["written"]


def test_a_guard_that_passed_before_is_checked_again_on_resume(tmp_path: Path) -> None:
    w = world(tmp_path)
    (w.work / "volume.txt").write_text("ready\n")
    assert w.run("guarded", answers=ANSWERS) == ExitCode.FAILED        # the guard passed, attach failed
    run_id = w.last()
    (w.work / "volume.txt").unlink()                                     # the world changed since
    (w.work / "attach-ok").write_text("")
    assert w.run(resume=run_id, answers=ANSWERS) == ExitCode.FAILED     # the guard is checked again: fails
    assert w.lines("attached.txt") == [] and w.lines("started.txt") == []
    assert len(of_type(w.records(run_id), "item.result", step="swap", item="volume-ready")) == 2


def test_a_verify_item_reads_its_own_steps_action_outputs_at_run_time(tmp_path: Path) -> None:
    w = world(tmp_path)
    (w.root / "runbooks" / "own.yaml").write_text("""\
name: own
title: A step checks what its own action returned
params: {dir: {type: string}}
steps:
  - id: a
    title: Append, then check the count it returned
    do:
      - id: w
        uses: effects.append
        with: {file: "${params.dir}/own.txt", line: one}
    verify:
      - uses: core.equals
        with: {actual: "${steps.a.w.count}", expected: 1}
""")
    assert w.run("own") == ExitCode.OK
    assert of_type(w.records(), "item.result", step="a", item="verify-0", passed=True)


def test_a_parked_rollback_parks_its_release_and_resuming_finishes_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The accepted on_failure run waits for a person (a refused approval): the failed run parks too (exit 4,
    saying so), and resuming it resumes the rollback, which ends it rolled-back."""
    w = world(tmp_path)
    (w.root / "runbooks" / "cleanup.yaml").write_text("""\
name: cleanup
title: Offered when flow fails after its mark, with an approval
params: {source: {type: string}, dir: {type: string}}
steps:
  - id: approve
    title: A second person approves the cleanup
    approval: {source: prompt, min: 1}
  - id: clean
    title: Clean up
    do:
      - uses: effects.append
        with: {file: "${params.dir}/cleanup.txt", line: "cleanup after ${params.source}"}
""")
    refused = {"run.on_failure": True, "run.on_failure/approve.approval": {"approvers": ["tester@example.com"]}}
    assert w.run("flow", params={"fail_after": "true"}, answers=refused) == ExitCode.PARKED
    flow_id, cleanup_id = w.runs()
    assert w.state(flow_id).status is Status.PARKED and "is parked" in w.state(flow_id).reason
    assert w.run(resume=flow_id, answers=refused) == ExitCode.PARKED
    ok = {"run.on_failure": True, "run.on_failure/approve.approval": {"approvers": ["bob@example.com"]}}
    assert w.run(resume=flow_id, answers=ok) == ExitCode.FAILED            # rolled-back exits 1
    assert w.state(flow_id).status is Status.ROLLED_BACK
    assert "expected 'fine', found 'late'" in w.state(flow_id).reason      # the failure, not the wait
    assert w.lines("cleanup.txt") == [f"cleanup after {flow_id}"]
