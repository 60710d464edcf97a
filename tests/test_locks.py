"""Locks: one holder per key, stale locks taken back by their run, emergency takeover fences."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from helpers import copy_project, invoke, kill_with_commands, spawn, wait_for, write_answers


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_second_start_exits_3_naming_the_holder_then_stale_lock_is_taken_back(tmp_path: Path) -> None:
    root = copy_project("runtime", tmp_path)
    home = tmp_path / "home"
    work = tmp_path / "work"
    work.mkdir()
    first = spawn("runbook", "sleeper", "--param", f"dir={work}", "--param", "seconds=60", root=root, home=home)
    wait_for(lambda: lines(work / "marker.txt") == ["started"])
    second = invoke("runbook", "sleeper", "--param", f"dir={tmp_path}", root=root, home=home)
    assert second.returncode == 3, second.stderr
    assert f"tester@example.com on {os.uname().nodename} (pid {first.pid}) holds lock 'sleeper'" in second.stderr
    assert "for run 2" in second.stderr and "Traceback" not in second.stderr
    status = invoke("runbook.status", root=root, home=home)
    assert "sleeper" in status.stdout and "[live]" in status.stdout
    kill_with_commands(first, home)
    third = invoke("runbook", "sleeper", "--param", f"dir={tmp_path}", root=root, home=home)
    assert third.returncode == 3
    assert "is stale" in third.stderr and "invoke runbook.resume" in third.stderr
    resumed = invoke("runbook", "sleeper", "--resume", root=root, home=home)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert lines(work / "after.txt") == ["after"]
    assert not list((home / "locks").glob("*.json"))    # released on success


def test_wait_lock_queues_until_the_holder_finishes(tmp_path: Path) -> None:
    root = copy_project("runtime", tmp_path)
    home = tmp_path / "home"
    work = tmp_path / "work"
    work.mkdir()
    first = spawn("runbook", "sleeper", "--param", f"dir={work}", "--param", "seconds=1", root=root, home=home)
    wait_for(lambda: lines(work / "marker.txt") == ["started"])
    other = tmp_path / "other"
    other.mkdir()
    second = invoke("runbook", "sleeper", "--param", f"dir={other}", "--param", "seconds=0", "--wait-lock", "60s",
                    root=root, home=home)
    first.communicate()
    assert first.returncode == 0
    assert second.returncode == 0, second.stderr


def test_emergency_runbook_takes_over_and_the_holder_is_fenced(tmp_path: Path) -> None:
    root = copy_project("runtime", tmp_path)
    home = tmp_path / "home"
    work = tmp_path / "work"
    work.mkdir()
    holder = spawn("runbook", "sleeper", "--env", "local", "--param", f"dir={work}", "--param", "seconds=4",
                   root=root, home=home)
    wait_for(lambda: lines(work / "marker.txt") == ["started"])
    plain = invoke("runbook", "effects", "--env", "local", "--param", f"dir={work}", root=root, home=home)
    assert plain.returncode == 3                             # a normal runbook is refused
    answers = write_answers(tmp_path / "a.yaml", "emergency", {"run.takeover": {"reason": "prod is down, rolling back"}})
    taken = invoke("runbook", "emergency", "--env", "local", "--param", f"dir={work}", "--answers", str(answers),
                   "--non-interactive", root=root, home=home)
    assert taken.returncode == 0, taken.stdout + taken.stderr
    assert "took over lock 'local'" in taken.stdout
    out, err = holder.communicate(timeout=60)
    assert holder.returncode == 3, out + err
    assert "no longer holds lock 'local'" in err
    assert lines(work / "after.txt") == []                   # the fenced holder did nothing more
    assert lines(work / "emergency.txt") == ["emergency"]
    ledger = (home / "ledger.jsonl").read_text()
    assert '"type":"lock.takeover"' in ledger and "prod is down" in ledger


def test_emergency_takeover_needs_a_reason(tmp_path: Path) -> None:
    root = copy_project("runtime", tmp_path)
    home = tmp_path / "home"
    work = tmp_path / "work"
    work.mkdir()
    holder = spawn("runbook", "sleeper", "--env", "local", "--param", f"dir={work}", "--param", "seconds=30",
                   root=root, home=home)
    try:
        wait_for(lambda: lines(work / "marker.txt") == ["started"])
        refused = invoke("runbook", "emergency", "--env", "local", "--param", f"dir={work}", "--non-interactive",
                         root=root, home=home)
        assert refused.returncode == 3
        assert "needs a typed reason (run.takeover)" in refused.stderr
    finally:
        holder.send_signal(signal.SIGTERM)
        holder.communicate()


def test_unlock_frees_a_stale_lock_with_a_reason(tmp_path: Path) -> None:
    root = copy_project("runtime", tmp_path)
    home = tmp_path / "home"
    work = tmp_path / "work"
    work.mkdir()
    first = spawn("runbook", "sleeper", "--param", f"dir={work}", "--param", "seconds=60", root=root, home=home)
    wait_for(lambda: lines(work / "marker.txt") == ["started"])
    live = invoke("runbook.unlock", "sleeper", "--reason", "x", root=root, home=home)
    assert live.returncode == 2 and "is live" in live.stderr
    kill_with_commands(first, home)                 # the machine was lost: the engine and its command
    freed = invoke("runbook.unlock", "sleeper", "--reason", "host rebooted", root=root, home=home)
    assert freed.returncode == 0, freed.stderr
    assert '"type":"lock.unlock"' in (home / "ledger.jsonl").read_text()
    again = invoke("runbook", "sleeper", "--param", f"dir={tmp_path}", "--param", "seconds=0", root=root, home=home)
    assert again.returncode == 0


def test_two_takeovers_at_once_get_different_epochs(tmp_path: Path, monkeypatch) -> None:
    """Take-overs read and replace the lock file under a file lock: two at once cannot both
    read epoch N and both write N + 1."""
    import threading

    from runbook.locks import LockStore

    store = LockStore(tmp_path, durable=False)
    store.acquire("prod", "run-0", "rb", "op")
    real_read = LockStore.read

    def slow_read(self, key):
        found = real_read(self, key)
        time.sleep(0.2)                    # widen the read-then-replace window (slowness, not a wait for time)
        return found

    monkeypatch.setattr(LockStore, "read", slow_read)
    epochs: list[int] = []

    def take(i: int) -> None:
        epochs.append(store.take_over("prod", f"run-{i}", "rb", "op")[0].epoch)
    threads = [threading.Thread(target=take, args=(i,)) for i in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(epochs) == [2, 3]


def test_a_fenced_holder_never_frees_its_successors_lock(tmp_path: Path) -> None:
    from runbook.locks import LockStore

    store = LockStore(tmp_path, durable=False)
    first = store.acquire("prod", "run-1", "rb", "op")
    store.take_over("prod", "run-1", "rb", "op")          # the same run id, a new epoch (a resumed takeover)
    store.release("prod", "run-1", first.epoch)           # the fenced one, late
    assert store.read("prod") is not None and store.read("prod").epoch == first.epoch + 1
    store.release("prod", "run-1", first.epoch + 1)
    assert store.read("prod") is None


def test_a_fenced_holder_stops_within_a_heartbeat_and_ends_rolled_back(tmp_path: Path) -> None:
    """rollback-immediate during a rollout: the release it fenced notices within one heartbeat (not at
    its next write, 60 s later), stops, and ends rolled-back (naming the run that took over) once that
    run succeeded; every command agrees on both runs' status and nothing stale is left."""
    import json

    root = copy_project("runtime", tmp_path)
    home = tmp_path / "home"
    work = tmp_path / "work"
    work.mkdir()
    holder = spawn("runbook", "sleeper", "--env", "local", "--param", f"dir={work}", "--param", "seconds=60",
                   root=root, home=home)
    wait_for(lambda: lines(work / "marker.txt") == ["started"])
    answers = write_answers(tmp_path / "a.yaml", "emergency", {"run.takeover": {"reason": "prod is down"}})
    taken = invoke("runbook", "emergency", "--env", "local", "--param", f"dir={work}", "--answers", str(answers),
                   "--non-interactive", root=root, home=home)
    assert taken.returncode == 0, taken.stdout + taken.stderr
    out, err = holder.communicate(timeout=30)              # bounded well below its 60 s sleep: it stopped early
    assert holder.returncode == 3 and "no longer holds lock 'local'" in err, out + err
    assert lines(work / "after.txt") == []
    listing = json.loads(invoke("audit.list", "--json", root=root, home=home).stdout)
    status = {r["runbook"]: r["status"] for r in listing}
    assert status == {"sleeper": "rolled-back", "emergency": "succeeded"}
    sleeper = next(r["run"] for r in listing if r["runbook"] == "sleeper")
    emergency = next(r["run"] for r in listing if r["runbook"] == "emergency")
    shown = invoke("audit.show", sleeper, root=root, home=home).stdout
    assert "status: rolled-back" in shown and emergency in shown
    assert invoke("runbook.status", root=root, home=home).stdout.strip() == "No unfinished runs and no locks held."
    assert invoke("audit.verify", root=root, home=home).returncode == 0
    again = invoke("runbook", "effects", "--env", "local", "--param", f"dir={work}", root=root, home=home)
    assert again.returncode == 0, again.stdout + again.stderr     # the next run needs no cleanup
