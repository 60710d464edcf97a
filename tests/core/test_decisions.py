"""Format 1.1 decisions: structured conditions, ``end:`` and the author's ``probe:``, run with the real
Runner (in-process) and, for crashes, as a separate process killed at the crash point."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.harness import of_type, world
from helpers import invoke
from runbook import conditions
from runbook.errors import ExitCode
from runbook.state import Status


@pytest.fixture(autouse=True)
def _operator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNBOOK_OPERATOR", "tester@example.com")
    monkeypatch.delenv("RUNBOOK_FAIL_AT", raising=False)


def test_end_succeeded_on_the_no_work_path_runs_nothing_after_it(tmp_path: Path) -> None:
    w = world(tmp_path)
    assert w.run("decisions", params={"count": 0}) == ExitCode.OK
    recs = w.records()
    assert w.lines("made.txt") == [] and w.lines("last.txt") == []
    assert recs[-1]["type"] == "run.succeeded"
    assert recs[-1]["data"]["ended_at"] == "none-left"
    assert recs[-1]["data"]["reason"] == "ended at step none-left: Nothing to do"
    assert not of_type(recs, "step.started", step="create")
    assert w.state(w.last()).status is Status.SUCCEEDED


def test_comparisons_decide_and_a_covered_condition_reads_the_conditional_output(tmp_path: Path) -> None:
    w = world(tmp_path)
    assert w.run("decisions", params={"count": 2, "severity": "SEV-2"}) == ExitCode.OK
    assert w.lines("made.txt") == ["made-1"] and w.lines("used.txt") == ["made-1"]
    assert w.lines("loud.txt") == ["loud", "again after told"]        # loud-sev1: not SEV-2 is false
    recs = w.records()
    skipped = of_type(recs, "step.finished", step="loud-sev1", status="skipped")
    assert skipped and "is false" in skipped[0]["data"]["reason"] and "SEV-2" in skipped[0]["data"]["reason"]
    assert of_type(recs, "step.finished", step="handover", status="skipped")
    assert w.lines("last.txt") == ["last"]


def test_a_false_comparison_skips_with_the_condition_in_words(tmp_path: Path) -> None:
    w = world(tmp_path)
    assert w.run("decisions", params={"count": 1, "severity": "SEV-2"}) == ExitCode.OK
    assert w.lines("loud.txt") == []
    reason = of_type(w.records(), "step.finished", step="loud")[0]["data"]["reason"]
    assert reason.startswith('when: ${params.count} > 1 and ${params.severity} in ["SEV-1", "SEV-2"] is false')


def test_end_failed_exits_1_with_the_title_and_runs_nothing_after_it(tmp_path: Path) -> None:
    w = world(tmp_path)
    assert w.run("decisions", params={"count": 2, "severity": "SEV-1"}) == ExitCode.FAILED
    recs = w.records()
    assert recs[-1]["type"] == "run.failed" and recs[-1]["data"]["ended_at"] == "handover"
    assert "SEV-1: hand over to the incident commander" in recs[-1]["data"]["reason"]
    assert w.lines("loud.txt") == ["loud", "again after told", "sev1 after told"]
    assert w.lines("last.txt") == []
    # an end: is the runbook's decision: the run is over, there is nothing to resume
    exc = w.expect_error(resume=w.last())
    assert "nothing to resume" in str(exc) and "the runbook ended it" in str(exc)
    assert w.lines("last.txt") == [] and w.lines("made.txt") == ["made-1"]


@pytest.mark.parametrize("point", ["after-effect", "after-intent"])
def test_a_crash_around_the_action_is_recovered_by_its_probe_never_repeated(tmp_path: Path, point: str) -> None:
    w = world(tmp_path)
    crashed = invoke("runbook", "decisions", "--param", f"dir={w.work}", "--non-interactive", root=w.root,
                     home=w.home, env={"RUNBOOK_CRASH_AT": f"create.make:{point}"})
    assert crashed.returncode != 0
    assert w.lines("made.txt") == (["made-1"] if point == "after-effect" else [])
    run_id = w.last()
    resumed = invoke("runbook.resume", "--run-id", run_id, "--non-interactive", root=w.root, home=w.home)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert w.lines("made.txt") == ["made-1"]                # made once, whatever the crash point
    assert w.lines("used.txt") == ["made-1"]                # the action's output, from the probe or the action
    result = of_type(w.records(run_id), "item.result", step="create", item="make")[-1]["data"]
    if point == "after-effect":
        assert result["recovered"] == "probe" and result["outputs"]["stdout"] == "made-1"
        assert result["summary"].startswith("recovered by probe shell.check")
    else:
        assert "recovered" not in result                    # the probe found nothing: the action ran


def test_a_probe_that_cannot_look_leaves_the_effect_unknown(tmp_path: Path) -> None:
    w = world(tmp_path)
    (w.root / "runbooks" / "probed.yaml").write_text(
        "name: probed\ntitle: t\nparams:\n  dir: {type: string}\nsteps:\n"
        "  - id: write\n    title: Write\n    do:\n"
        "      - id: line\n        uses: shell.run\n"
        "        with: {cwd: \"${params.dir}\", argv: [sh, -c, 'echo one >> out.txt; echo one >> count.txt']}\n"
        "        probe: {uses: effects.has_line, with: {file: \"${params.dir}/out.txt\", line: one}}\n")
    crashed = invoke("runbook", "probed", "--param", f"dir={w.work}", "--non-interactive", root=w.root,
                     home=w.home, env={"RUNBOOK_CRASH_AT": "write.line:after-effect"})
    assert crashed.returncode != 0 and w.lines("count.txt") == ["one"]
    (w.work / "out.txt").unlink()
    (w.work / "out.txt").mkdir()         # the probe raises: not "absent", it cannot tell
    resumed = invoke("runbook.resume", "--run-id", w.last(), "--non-interactive", root=w.root, home=w.home)
    assert resumed.returncode == ExitCode.PARKED, resumed.stdout + resumed.stderr   # a person must look
    assert w.lines("count.txt") == ["one"]                  # the action did not run a second time
    assert "whether it took effect is unknown" in resumed.stdout + resumed.stderr


def test_conditions_evaluate_and_refuse_what_cannot_be_compared() -> None:
    ev = conditions.evaluate
    assert ev({"equals": [1, 1.0]}) and not ev({"equals": [True, 1]}) and not ev({"equals": ["1", 1]})
    assert ev({"not_equals": ["a", "b"]}) and ev({"in": ["b", ["a", "b"]]}) and not ev({"in": [1, ["1"]]})
    assert ev({"gt": [2, 1]}) and ev({"ge": [1, 1]}) and ev({"lt": [0.5, 1]}) and ev({"le": [1, 1]})
    assert ev({"matches": ["release/v1.2.3", r"^release/v\d"]}) and not ev({"matches": ["x", "^y"]})
    assert ev({"all": [True, {"not": False}]}) and not ev({"any": [False, {"all": [True, False]}]})
    for bad in ({"gt": ["2", 1]}, {"in": ["a", "abc"]}, {"matches": [1, "1"]}, {"bogus": [1, 2]}, "yes"):
        with pytest.raises(conditions.ConditionError):
            ev(bad)
    assert conditions.text({"all": [{"gt": ["${params.n}", 1]}, {"not": "${params.dry}"}]}) == \
        "${params.n} > 1 and not ${params.dry}"
    assert conditions.covers({"when": {"all": [{"equals": ["${x}", 1]}, True]}}, ("when", {"equals": ["${x}", 1]}))
    assert conditions.covers({"when": {"all": [{"not": "${d}"}]}}, ("unless", "${d}"))
    assert not conditions.covers({"when": {"any": [{"equals": ["${x}", 1]}]}}, ("when", {"equals": ["${x}", 1]}))


def test_a_condition_that_cannot_be_decided_at_run_time_fails_the_step(tmp_path: Path) -> None:
    w = world(tmp_path)
    (w.root / "runbooks" / "undecided.yaml").write_text(
        "name: undecided\ntitle: t\nparams:\n  dir: {type: string}\nsteps:\n"
        "  - id: look\n    title: Look\n    verify:\n"
        "      - id: out\n        uses: effects.echo\n        with: {value: hello}\n"
        "  - id: act\n    title: Act\n    when: {gt: [\"${steps.look.out.value}\", 1]}\n"
        "    do:\n      - uses: shell.run\n        with: {cwd: \"${params.dir}\", argv: [touch, acted]}\n")
    assert w.run("undecided") == ExitCode.FAILED
    failed = of_type(w.records(), "run.failed")[0]["data"]["reason"]
    assert "cannot be decided" in failed and "must both be numbers" in failed
    assert not (w.work / "acted").exists()


def test_an_include_given_an_outer_steps_output_reads_the_outer_step(tmp_path: Path) -> None:
    """``include: part`` with ``with: {v: "${steps.look.out.value}"}``: the value is the including runbook's
    step output, not a step of the included runbook (which has none by that name)."""
    w = world(tmp_path)
    (w.root / "runbooks" / "part.yaml").write_text(
        "name: part\ntitle: p\nparams:\n  v: {type: string}\n  dir: {type: string}\nsteps:\n"
        "  - id: own\n    title: Own\n    verify:\n      - id: out\n        uses: effects.echo\n        with: {value: inner}\n"
        "  - id: write\n    title: Write\n    do:\n      - uses: shell.run\n"
        "        with: {cwd: \"${params.dir}\", argv: [sh, -c, 'echo \"$0 $1\" >> got.txt', \"${params.v}\","
        " \"${steps.own.out.value}\"]}\n")
    (w.root / "runbooks" / "outer.yaml").write_text(
        "name: outer\ntitle: o\nparams:\n  dir: {type: string}\nsteps:\n"
        "  - id: look\n    title: Look\n    verify:\n      - id: out\n        uses: effects.echo\n        with: {value: outer}\n"
        "  - id: inc\n    include: part\n    with: {v: \"${steps.look.out.value}\", dir: \"${params.dir}\"}\n")
    assert w.run("outer") == ExitCode.OK
    assert w.lines("got.txt") == ["outer inner"]


def test_a_step_title_naming_an_earlier_output_is_recorded_with_the_value(tmp_path: Path) -> None:
    w = world(tmp_path)
    (w.root / "runbooks" / "titled.yaml").write_text(
        "name: titled\ntitle: t\nparams:\n  dir: {type: string}\nsteps:\n"
        "  - id: look\n    title: Look\n    verify:\n      - id: out\n        uses: effects.echo\n        with: {value: v1.2.0}\n"
        "  - id: tag\n    title: Tag rollback/${steps.look.out.value}\n    verify:\n"
        "      - uses: effects.echo\n        with: {value: x}\n")
    assert w.run("titled") == ExitCode.OK
    assert of_type(w.records(), "step.started", step="tag")[0]["data"]["title"] == "Tag rollback/v1.2.0"
