"""Guards that hold (issue 23.7): the engine killed while an action's command runs. The command
runs in its own process group and its pid is journaled; the resume finds it still running and
waits for it (or stops it, when the operator says so) before probing its effect."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from runbook import proc

from helpers import copy_project, invoke, spawn, wait_for, write_answers


def records(home: Path) -> list[dict]:
    [run] = sorted((home / "runs").iterdir())
    return [json.loads(line) for line in (run / "journal.jsonl").read_text().splitlines()]


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def killed_mid_command(tmp_path: Path, seconds: str) -> tuple[Path, Path, Path, int]:
    """guard-child started, SIGKILLed once its command is running; the command's pid."""
    root = copy_project("runtime", tmp_path)
    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    engine = spawn("runbook", "guard-child", "--param", f"dir={work}", "--param", f"seconds={seconds}",
                   root=root, home=home)
    wait_for(lambda: (work / "started.txt").exists() and (home / "runs").is_dir()
             and any(r["type"] == "item.process" for r in records(home)))
    os.kill(engine.pid, signal.SIGKILL)
    engine.communicate(timeout=30)
    assert engine.returncode == -signal.SIGKILL
    [running] = [r["data"] for r in records(home) if r["type"] == "item.process"]
    assert running["state"] == "running" and os.getpgid(running["pid"]) == running["pid"]   # its own group
    assert proc.group_alive(running["pid"], running["started"])                # it outlived the engine
    return root, home, work, running["pid"]


def test_the_resume_waits_for_the_command_the_killed_engine_left_running(tmp_path: Path) -> None:
    root, home, work, pid = killed_mid_command(tmp_path, "3")
    assert lines(work / "restored.txt") == []                       # still restoring when the resume starts
    resumed = invoke("runbook", "guard-child", "--resume", root=root, home=home)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert lines(work / "restored.txt") == ["restored"]             # once: the probe saw the first run's effect
    assert lines(work / "started.txt") == ["started"]
    assert lines(work / "after.txt") == ["after"]
    states = [r["data"]["state"] for r in records(home) if r["type"] == "item.process"]
    assert states == ["running", "waited"]
    [result] = [r["data"] for r in records(home) if r["type"] == "item.result" and r["data"]["item"] == "restore"]
    assert result["recovered"] == "probe"


def test_the_operator_may_stop_it_instead_and_the_action_runs_again(tmp_path: Path) -> None:
    root, home, work, pid = killed_mid_command(tmp_path, "60")
    answers = write_answers(tmp_path / "answers.yaml", "guard-child", {"work.restore.running": {"done": False}})
    (work / "fast").touch()                                          # the command run again is quick
    resumed = invoke("runbook", "guard-child", "--resume", "--answers", str(answers), root=root, home=home)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert not proc.group_alive(pid)                                  # stopped, not left running for a minute
    assert lines(work / "started.txt") == ["started", "started"]     # the probe found no effect: run again
    assert lines(work / "restored.txt") == ["restored"]
    assert [r["data"]["state"] for r in records(home) if r["type"] == "item.process"] == ["running", "stopped",
                                                                                          "running"]


def test_a_timeout_stops_the_whole_process_group(tmp_path: Path) -> None:
    """The command and what it started: nothing of a timed-out command keeps running."""
    code = ("import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
            "print('spawned', flush=True); time.sleep(60)")
    pids: list[int] = []
    done = proc.run(["python3", "-c", code], timeout=2, on_start=pids.append)
    assert done.timed_out and done.exit_code == 124
    [pid] = pids
    wait_for(lambda: not proc.group_alive(pid))          # the grandchild was in the group too


def test_a_dead_command_its_stopped_parent_has_not_reaped_is_not_running(tmp_path: Path) -> None:
    """A zombie (the engine that started it is stopped, so nobody reaps it) has ended: a resume on
    the team backend must not wait for it for ever."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
    try:
        stat = Path(f"/proc/{child.pid}/stat")
        wait_for(lambda: stat.read_text().split(")")[-1].split()[0] == "Z")
        assert not proc.group_alive(child.pid, proc.start_time(child.pid))
    finally:
        child.wait()
