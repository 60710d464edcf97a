"""Every command the engine prints for the operator works exactly as printed: scanned from the
output of failed, interrupted, parked and locked runs, and run (abandon and unlock, whose reason the
operator fills in, on a copy of the state home with a reason typed in)."""

from __future__ import annotations

import re
import shlex
import shutil
import signal
from pathlib import Path

from helpers import copy_project, invoke, kill_with_commands, spawn, wait_for

COMMAND = re.compile(r"invoke [a-z_.]+(?: (?:--[a-z-]+|'[^']*'|[A-Za-z0-9._:/@-]+))*")


def printed(text: str) -> list[str]:
    return sorted(set(COMMAND.findall(text)))


def run_printed(command: str, root: Path, home: Path, tmp: Path) -> tuple[int, str]:
    """Run one printed command as the operator would (a reason typed in for the dots), on a copy of
    the state home: the printed commands are alternatives, each must work from the state printed."""
    copy = tmp / f"home-{abs(hash(command))}"
    shutil.copytree(home, copy)
    home = copy
    command = command.replace("'...'", "'checked with the team, safe to close'")
    argv = shlex.split(command)
    assert argv[0] == "invoke"
    result = invoke(*argv[1:], root=root, home=home)
    return result.returncode, result.stdout + result.stderr


def check_all(text: str, root: Path, home: Path, tmp: Path, expect: set[str]) -> None:
    commands = printed(text)
    tasks = {c.split()[1] for c in commands}
    assert expect <= tasks, (expect - tasks, text)
    for command in commands:
        code, out = run_printed(command, root, home, tmp)
        assert "No idea what" not in out and "did not receive" not in out, (command, out)
        assert "Traceback" not in out, (command, out)
        assert code in (0, 1, 4), (command, code, out)     # it ran: the run's own outcome, not a usage error


def test_commands_printed_by_a_failed_and_a_parked_run_work_as_printed(tmp_path: Path) -> None:
    root = copy_project("runtime", tmp_path)
    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    failed = invoke("runbook", "effects", "--param", f"dir={work}", root=root, home=home,
                    env={"RUNBOOK_FAIL_AT": "plain.write"})
    assert failed.returncode == 1
    check_all(failed.stdout + failed.stderr, root, home, tmp_path,
              {"runbook.resume", "runbook.abandon", "audit.show", "audit.verify"})
    parked = invoke("runbook", "gates", "--non-interactive", root=root, home=home)
    assert parked.returncode == 4
    check_all(parked.stdout + parked.stderr, root, home, tmp_path, {"runbook.resume", "audit.verify"})


def test_commands_printed_for_an_interrupted_run_and_a_stale_lock_work_as_printed(tmp_path: Path) -> None:
    root = copy_project("runtime", tmp_path)
    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    first = spawn("runbook", "sleeper", "--param", f"dir={work}", "--param", "seconds=30", root=root, home=home)
    wait_for(lambda: (work / "marker.txt").exists())
    first.send_signal(signal.SIGINT)
    out, err = first.communicate(timeout=60)
    assert first.returncode == 130, out + err
    check_all(out + err, root, home, tmp_path, {"runbook.resume"})
    [run_id] = [p.name for p in (home / "runs").iterdir()]
    assert invoke("runbook.resume", "--run-id", run_id, root=root, home=home).returncode == 0
    # a stale lock: the holder was killed; another run is refused, naming what to type
    second = spawn("runbook", "sleeper", "--param", f"dir={work}", "--param", "seconds=30", root=root, home=home)
    wait_for(lambda: (work / "marker.txt").read_text().count("started") >= 2)
    kill_with_commands(second, home)
    refused = invoke("runbook", "sleeper", "--param", f"dir={work}", root=root, home=home)
    assert refused.returncode == 3, refused.stdout + refused.stderr
    check_all(refused.stderr, root, home, tmp_path, {"runbook.resume", "runbook.abandon", "runbook.unlock"})
