"""Crashes and signals at every point of an action: resume completes, nothing happens twice."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from helpers import copy_project, invoke, spawn, wait_for, write_answers


def journal(home: Path) -> list[dict]:
    runs = sorted((home / "runs").iterdir())
    assert len(runs) == 1
    return [json.loads(line) for line in (runs[0] / "journal.jsonl").read_text().splitlines()]


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.parametrize("target", ["probed.write", "plain.write"])
@pytest.mark.parametrize("point", ["before-intent", "after-intent", "after-effect"])
def test_fault_hook_then_resume(tmp_path: Path, target: str, point: str) -> None:
    root = copy_project("runtime", tmp_path)
    home = tmp_path / "home"
    work = tmp_path / "work"
    work.mkdir()
    # when an effect's outcome is unknown (no probe, verify failing), the answers file says retry
    answers = write_answers(tmp_path / "a.yaml", "effects", {"plain.write.on_fail": {"choice": "retry"}})
    first = invoke("runbook", "effects", "--param", f"dir={work}", "--answers", str(answers), root=root, home=home,
                   env={"RUNBOOK_CRASH_AT": f"{target}:{point}"})
    assert first.returncode == -signal.SIGKILL, first.stdout + first.stderr
    second = invoke("runbook", "effects", "--resume", "--answers", str(answers), root=root, home=home)
    assert second.returncode == 0, second.stdout + second.stderr
    assert lines(work / "probed.txt") == ["probed-effect"]
    assert lines(work / "plain.txt") == ["plain-effect"]
    records = journal(home)
    finished = [r["data"]["step"] for r in records if r["type"] == "step.finished"]
    assert finished == ["probed", "plain", "last"]          # no finished step repeated
    sessions = [r for r in records if r["type"] == "session.started"]
    assert [s["data"]["resume"] for s in sessions] == [False, True]
    if point == "after-effect":
        recovered = [r["data"].get("recovered") for r in records if r["type"] == "item.result"
                     and r["data"]["item"] == "write" and r["data"]["step"] == target.split(".")[0]]
        assert recovered == ["probe" if target == "probed.write" else "verify"]
    assert invoke("audit.verify", root=root, home=home).returncode == 0


def _interrupt(tmp_path: Path, sig: int) -> tuple[Path, Path, Path]:
    root = copy_project("runtime", tmp_path)
    home = tmp_path / "home"
    work = tmp_path / "work"
    work.mkdir()
    proc = spawn("runbook", "sleeper", "--param", f"dir={work}", root=root, home=home)
    wait_for(lambda: "started" in "".join(lines(work / "marker.txt")))
    # mid-action: the command runs and the engine has journaled it (an event, not a fixed wait)
    wait_for(lambda: (home / "runs").is_dir() and any(r["type"] == "item.process" for r in journal(home)))
    os.kill(proc.pid, sig)
    out, err = proc.communicate(timeout=30)
    expected = -signal.SIGKILL if sig == signal.SIGKILL else 130
    assert proc.returncode == expected, out + err
    if sig != signal.SIGKILL:
        assert "interrupted by " + signal.Signals(sig).name in out + err
        assert journal(home)[-1]["type"] == "run.interrupted"
    return root, home, work


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGHUP], ids=lambda s: signal.Signals(s).name)
def test_signal_mid_action_then_resume(tmp_path: Path, sig: int) -> None:
    root, home, work = _interrupt(tmp_path, sig)
    # after SIGKILL the command outlived the engine: the operator stops it (else the resume waits its 30 s)
    answers = write_answers(tmp_path / "stop.yaml", "sleeper", {"work.sleep.running": {"done": False}})
    resumed = invoke("runbook", "sleeper", "--resume", "--answers", str(answers), root=root, home=home)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert lines(work / "marker.txt") == ["started"]        # the long action was not run again
    assert lines(work / "after.txt") == ["after"]
    assert invoke("audit.verify", root=root, home=home).returncode == 0
