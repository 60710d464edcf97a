"""Kill points over the shipped runbooks in the sandbox (the short sample of `invoke reliability`).

The figure's helpers are checked on their own first (fast): kill points and waits come from a
journal, not from a list; the world comparison counts repeats and missing effects. Then the short
figure itself: every sampled kill (the engine's hook and a real SIGKILL) resumed to the clean
run's ending, nothing repeated in moto, the origin or the GitHub stand-in, every chain verified.
"""

from __future__ import annotations

import pytest

import json

from reliability import sandbox_kills as sk
from reliability import suite

from helpers import processes_with

pytestmark = pytest.mark.sweep          # the slow tier: `python -m pytest -q -m slow` (or -m sweep)


def _rec(seq: int, kind: str, time: str, **data: object) -> dict:
    return {"seq": seq, "type": kind, "time": f"2026-01-01T00:00:{time}Z", "run": "", "data": data}


def _runs() -> tuple[list[sk.Run], list[dict]]:
    parent = sk.Run("P", "production-release", None, [
        _rec(0, "run.started", "00.000000", runbook="production-release"),
        _rec(1, "step.started", "00.100000", step="merge"),
        _rec(2, "item.intent", "00.200000", step="merge", item="merge", uses="github.merge_pr"),
        _rec(3, "item.result", "00.300000", step="merge", item="merge"),
        _rec(4, "step.finished", "00.400000", step="merge", status="succeeded"),
        _rec(5, "step.started", "00.500000", step="tag"),
        _rec(6, "item.intent", "00.600000", step="tag", item="tag", uses="git.tag_create"),
        _rec(7, "item.result", "00.700000", step="tag", item="tag"),
        _rec(8, "step.finished", "05.700000", step="tag", status="failed"),
        _rec(9, "run.failed", "05.800000"),
    ])
    child = sk.Run("C", "rollback-fast", {"run": "P", "step": "run.on_failure"}, [
        _rec(0, "run.started", "06.000000", runbook="rollback-fast"),
        _rec(1, "step.started", "06.100000", step="tag"),
        _rec(2, "item.intent", "06.200000", step="tag", item="tag", uses="git.tag_create"),   # the parent's id
        _rec(3, "item.result", "06.300000", step="tag", item="tag"),
        _rec(4, "item.intent", "06.400000", step="tag", item="push", uses="git.push"),
        _rec(5, "item.result", "06.500000", step="tag", item="push"),
        _rec(6, "step.finished", "09.100000", step="tag", status="succeeded"),
        _rec(7, "run.succeeded", "09.200000"),
    ])
    ledger = [{"type": "run.anchor", "run": "P", "length": 5}, {"type": "run.anchor", "run": "P", "length": 10},
              {"type": "run.anchor", "run": "C", "length": 7}, {"type": "run.anchor", "run": "C", "length": 8}]
    return [parent, child], ledger


def test_kill_points_come_from_the_journal_and_belong_to_the_run_that_reaches_them_first() -> None:
    runs, ledger = _runs()
    release, rollback = sk.FLOWS
    assert sk.kill_points(runs, ledger, release) == [
        "merge.merge:before-intent", "merge.merge:after-intent", "merge.merge:after-effect",
        "tag.tag:before-intent", "tag.tag:after-intent", "tag.tag:after-effect",
        "anchor:step.finished", "anchor:run.failed"]
    # tag.tag and step.finished fire in the parent first: only what the linked run reaches first is its
    assert sk.kill_points(runs, ledger, rollback) == [
        "tag.push:before-intent", "tag.push:after-intent", "tag.push:after-effect", "anchor:run.succeeded"]
    assert sk._prefix(runs[1], {r.run_id: r for r in runs}) == "run.on_failure/"


def test_real_kills_land_in_the_longest_steps_after_a_record_on_disk() -> None:
    runs, _ = _runs()
    release, rollback = sk.FLOWS
    longest = sk.waits(runs, release)[0]
    assert (longest.runbook, longest.step, round(longest.seconds, 1)) == ("production-release", "tag", 5.2)
    assert longest.mark == "step.finished merge."           # the step's own start is committed with its end
    assert longest.delay == 2.6 and round(longest.left, 1) == 8.7
    assert (sk.waits(runs, rollback)[0].runbook, sk.waits(runs, rollback)[0].step) == ("rollback-fast", "tag")


def test_spread_is_even_and_ends_with_the_last_point() -> None:
    assert sk.spread(list(range(75)), 3) == [24, 49, 74]
    assert sk.spread(list(range(4)), 10) == [0, 1, 2, 3]
    picked = sk.spread(list(range(75)), 20)
    assert len(set(picked)) == 20 and picked[-1] == 74 and max(b - a for a, b in zip(picked, picked[1:])) <= 4


def test_compare_counts_repeats_and_missing_effects() -> None:
    clean = {"github: pull requests": 2, "moto: SNS messages published": 1, "origin: tags": 4}
    found = {"github: pull requests": 2, "moto: SNS messages published": 2, "origin: tags": 3, "github: issues": 1}
    repeated, missing = sk.compare(clean, found)
    assert repeated == {"moto: SNS messages published": 1, "github: issues": 1}
    assert missing == {"origin: tags": 1}


def test_a_resume_that_runs_steps_the_clean_run_never_ran_is_caught() -> None:
    clean = {"production-release verification.endpoints": "failed", "rollback-fast tag": "succeeded"}
    found = {"production-release verification.endpoints": "failed", "production-release monitoring": "failed",
             "rollback-fast tag": "running"}
    assert sk.step_changes(clean, found) == ["ran production-release monitoring (failed)",
                                             "rollback-fast tag succeeded -> running"]
    assert sk.step_changes(clean, dict(clean)) == []


def test_the_figure_is_in_the_sweep() -> None:
    assert suite.FIGURES[-1] is sk.sandbox_kills


def test_short_sample_survives_every_kill_and_repeats_nothing() -> None:
    fig = sk.sandbox_kills(True)
    report = "\n".join(fig.notes)
    assert fig.tried >= 4 and fig.failed == 0 and fig.held == fig.tried, report
    assert "SIGKILL" in report and "rollback-fast" in report and " 0 side effects repeated" in report, report
    assert json.dumps(fig.as_tuple())           # printable as the sweep prints it
    left = processes_with("rel-sandbox-kills-")        # every sandbox stopped, no engine process left behind
    assert not left, left
