"""The AWS team backend end to end: racing processes, resume from another home, Object Lock, lease loss."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from helpers import REPO, copy_project, invoke, processes_with, spawn, wait_for, write_answers
from test_backend_contract import AWS_KEYS, endpoint, event, team_env

RACERS = 20

RACE_SCRIPT = """
import json, os, sys, time
from pathlib import Path
from runbook.backends import open_store
from runbook.errors import LockHeld
env, home, meet, racers = json.loads(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])

def everyone(stage):                          # a barrier: each racer says it reached STAGE, then waits for all
    (meet / stage).mkdir(parents=True, exist_ok=True)
    (meet / stage / str(os.getpid())).touch()
    end = time.monotonic() + 300
    while len(os.listdir(meet / stage)) < racers and time.monotonic() < end:
        time.sleep(0.005)

store = open_store(env, home)
store.locks.read("race")                      # connected before the start line
everyone("ready")
try:
    holder = store.locks.acquire("race", "run-" + str(os.getpid()), "race", "op-" + str(os.getpid()))
    sys.stdout.write("won " + holder.run_id)
except LockHeld as exc:
    sys.stdout.write("held " + str(exc))
sys.stdout.flush()
everyone("tried")                             # the winner holds the lease until every racer has tried
"""

def project(tmp_path: Path, env: dict[str, Any]) -> Path:
    """The backend scenario project, its environment pointed at this test's table and bucket."""
    root = copy_project("backend", tmp_path, base_url=env["aws"]["endpoint_url"])
    path = root / "environments" / "team.yaml"
    path.write_text(path.read_text().replace("BUCKET", env["backend"]["bucket"])
                    .replace("TABLE", env["backend"]["table"]))
    return root


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def aws_store(env: dict[str, Any], home: Path) -> Any:
    from runbook.backends import open_store

    return open_store(env, home)


def test_twenty_processes_race_for_one_lease(tmp_path: Path) -> None:
    import json

    env = team_env(endpoint())
    procs = [subprocess.Popen([sys.executable, "-c", RACE_SCRIPT, json.dumps(env), str(tmp_path / f"h{i}"),
                               str(tmp_path / "meet"), str(RACERS)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, **AWS_KEYS})
             for i in range(RACERS)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outs if err]
    won = [out for out, _ in outs if out.startswith("won ")]
    held = [out for out, _ in outs if out.startswith("held ")]
    assert len(won) == 1 and len(held) == RACERS - 1
    winner = won[0].split()[1]
    assert all(f"for run {winner} of race" in h for h in held)
    assert aws_store(env, tmp_path / "h0").locks.read("race").run_id == winner


def test_twenty_invocations_one_runs_nineteen_exit_3(tmp_path: Path) -> None:
    env = team_env(endpoint())
    root = project(tmp_path, env)
    procs = []
    for i in range(RACERS):
        work = tmp_path / f"work{i}"
        work.mkdir()
        procs.append((work, spawn("runbook", "sleeper", "--env", "team", "--param", f"dir={work}",
                                  "--param", "seconds=120", root=root, home=tmp_path / f"home{i}", env=AWS_KEYS)))
    losers = []
    for work, proc in procs:
        wait_for(lambda: proc.poll() is not None or lines(work / "marker.txt") == ["started"], timeout=180)
    running = [(w, p) for w, p in procs if p.poll() is None]
    assert len(running) == 1
    for work, proc in procs:
        if proc.poll() is not None:
            out, err = proc.communicate()
            losers.append((proc.returncode, err))
    assert [rc for rc, _ in losers] == [3] * (RACERS - 1)
    winner = running[0][1]
    assert all(f"(pid {winner.pid}) holds lock 'team'" in err and "Traceback" not in err for _, err in losers)
    winner.send_signal(signal.SIGTERM)
    out, err = winner.communicate(timeout=60)
    assert winner.returncode == 130, out + err
    assert sum(1 for w, _ in procs if lines(w / "marker.txt")) == 1      # one run acted


def test_killed_run_resumes_from_another_home_and_verifies(tmp_path: Path) -> None:
    from runbook.audit import verify

    env = team_env(endpoint())
    root = project(tmp_path, env)
    work = tmp_path / "work"
    work.mkdir()
    first = spawn("runbook", "sleeper", "--env", "team", "--param", f"dir={work}", "--param", "seconds=60",
                  root=root, home=tmp_path / "laptop-a", env=AWS_KEYS)
    wait_for(lambda: lines(work / "marker.txt") == ["started"], timeout=60)
    first.kill()
    first.communicate()
    refused = invoke("runbook", "sleeper", "--env", "team", "--param", f"dir={work}", root=root,
                     home=tmp_path / "laptop-b", env=AWS_KEYS)
    assert refused.returncode == 3 and "is stale" in refused.stderr, refused.stderr
    # the killed engine's 60 s command still runs on this machine: the operator stops it (else the resume waits)
    stop = write_answers(tmp_path / "stop.yaml", "sleeper", {"work.sleep.running": {"done": False}})
    resumed = invoke("runbook", "sleeper", "--env", "team", "--resume", "--answers", str(stop), root=root,
                     home=tmp_path / "laptop-b", env=AWS_KEYS)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert lines(work / "after.txt") == ["after"]
    store = aws_store(env, tmp_path / "reviewer")
    [run_id] = store.run_ids()
    records = store.records(run_id)
    assert [r["data"]["resume"] for r in records if r["type"] == "session.started"] == [False, True]
    assert {seg["epoch"] for seg in store.segments(run_id)} == {1, 2}      # the resumed session's epoch
    report = verify(store)
    assert report.ok, [str(p) for p in report.problems]
    assert report.runs == 1 and report.records == len(records)
    assert store.locks.read("team") is None                                # released on success


def _one_segment_run(env: dict[str, Any], home: Path) -> tuple[Any, str, dict[str, Any]]:
    store = aws_store(env, home)
    store.create_run("r1")
    store.ledger.append({"type": "run.start", "run": "r1"})
    journal = store.journal("r1")
    journal.append([event(0), event(1)])
    journal.append([event(2)])
    store.ledger.append({"type": "run.anchor", "run": "r1", "length": journal.length, "head": journal.head})
    return store, "r1", store.segments("r1")[0]


def test_object_lock_refuses_overwrite_and_delete_and_verify_reports_versions(tmp_path: Path) -> None:
    from runbook.audit import verify
    from runbook.backends.awsio import Conflict
    from runbook.errors import ExternalError

    env = team_env(endpoint())
    store, run_id, seg = _one_segment_run(env, tmp_path / "home")
    assert verify(store).ok
    head = store.io.call("s3", "head_object", "t", Bucket=store.bucket, Key=seg["key"])
    assert head["ObjectLockMode"] == "COMPLIANCE"
    with pytest.raises(Conflict):
        store.put_once(seg["key"], b"rewritten\n")
    with pytest.raises(ExternalError, match="AccessDenied"):
        store.io.call("s3", "delete_object", "t", Bucket=store.bucket, Key=seg["key"], VersionId=seg["version"])
    store.io.call("s3", "put_object", "t", Bucket=store.bucket, Key=seg["key"], Body=b"forged\n")
    problems = [str(p) for p in verify(aws_store(env, tmp_path / "other")).problems]
    assert problems == [f"run r1 object {seg['key']}: 2 versions: it was written again after the segment was "
                        "recorded"]
    assert [r["data"]["n"] for r in store.records(run_id)] == [0, 1, 2]   # the recorded version is still read


def test_verify_reports_orphans_gaps_and_deleted_segments(tmp_path: Path) -> None:
    from runbook.audit import verify
    from runbook.backends.awsio import to_item

    env = team_env(endpoint(), object_lock=False)
    store, run_id, seg = _one_segment_run(env, tmp_path / "home")
    store.put_once(f"runs/{run_id}/journal/000009-000000099.jsonl", b"stray\n")
    store.io.call("dynamodb", "delete_item", "t", TableName=store.table, Key=to_item({"pk": "run#r1", "sk": seg["sk"]}))
    problems = [str(p) for p in verify(aws_store(env, tmp_path / "other")).problems]
    assert "run r1 record 1: gap: the segment list jumps from record 0 to 2" in problems
    assert any("000009-000000099.jsonl: orphan" in p for p in problems)
    assert any(f"{seg['key']}: orphan" in p for p in problems)
    assert any("chain broken" in p for p in problems)


def test_expired_lease_is_reported_stale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from runbook import clock
    from runbook.errors import LockHeld

    monkeypatch.setenv("RUNBOOK_LEASE_SECONDS", "30")
    env = team_env(endpoint())
    with clock.installed(clock.VirtualClock()) as virtual:
        holder_store = aws_store(env, tmp_path / "a")
        holder_store.locks.acquire("prod", "r1", "deploy", "alice@example.com")
        holder_store.locks._stop("prod", "r1")          # the holder's process froze: no more heartbeats
        virtual.advance(31)                              # past its lease, without waiting for it
        other = aws_store(env, tmp_path / "b")
        with pytest.raises(LockHeld, match=r"is stale: run r1 .*its lease .* expired"):
            other.locks.acquire("prod", "r2", "deploy", "bob@example.com")
        assert other.locks.unlock("prod").run_id == "r1"


def test_heartbeat_keeps_a_live_lease(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from runbook.errors import LockHeld

    monkeypatch.setenv("RUNBOOK_LEASE_SECONDS", "1.5")         # renewed every 0.5 s
    env = team_env(endpoint())
    store = aws_store(env, tmp_path / "a")
    first = store.locks.acquire("prod", "r1", "deploy", "alice@example.com")
    assert first.expires_at is not None
    # the event: time has passed the lease's first end, and the heartbeat has renewed it to end well after now
    wait_for(lambda: time.time() > first.expires_at + 0.1
             and (store.locks.read("prod").expires_at or 0) > time.time() + 0.5, timeout=60)
    with pytest.raises(LockHeld, match="is held: alice@example.com"):
        aws_store(env, tmp_path / "b").locks.acquire("prod", "r2", "deploy", "bob@example.com")


def test_stopped_holder_past_its_lease_writes_nothing_after_it_continues(tmp_path: Path) -> None:
    from runbook.audit import verify

    env = team_env(endpoint())
    root = project(tmp_path, env)
    work = tmp_path / "work"
    work.mkdir()
    lease = {**AWS_KEYS, "RUNBOOK_LEASE_SECONDS": "2"}
    first = spawn("runbook", "sleeper", "--env", "team", "--param", f"dir={work}", "--param", "seconds=3",
                  root=root, home=tmp_path / "laptop-a", env=lease)
    wait_for(lambda: lines(work / "marker.txt") == ["started"], timeout=60)
    os.kill(first.pid, signal.SIGSTOP)
    try:
        store = aws_store(env, tmp_path / "reviewer")
        wait_for(lambda: time.time() > (store.locks.read("team").expires_at or 0) + 0.1, timeout=60)  # past its lease
        [run_id] = store.run_ids()
        before = len(store.records(run_id))
        resumed = invoke("runbook", "sleeper", "--env", "team", "--resume", root=root, home=tmp_path / "laptop-b",
                         env=lease)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        # the stopped holder's shell step (its own process group, not stopped) has finished meanwhile
        wait_for(lambda: not processes_with(str(work / "marker.txt")), timeout=60)
    finally:
        os.kill(first.pid, signal.SIGCONT)
    out, err = first.communicate(timeout=60)
    assert first.returncode == 3, out + err
    assert "no longer holds lock 'team'" in err
    assert lines(work / "after.txt") == ["after"]         # the side effect happened once, by the new holder
    records = store.records(run_id)
    assert len(records) > before and records[-1]["type"] == "run.succeeded"
    epochs = [seg["epoch"] for seg in store.segments(run_id)]
    assert epochs == sorted(epochs) and epochs[-1] == 2   # nothing from epoch 1 after the takeover
    report = verify(store)
    assert report.ok, [str(p) for p in report.problems]


def test_a_retried_conditional_put_that_was_applied_is_ours(tmp_path: Path) -> None:
    """The SDK retries a call whose response was lost; a lock put applied the first time is then refused
    by its own condition: the lease store recognises its own item instead of reporting itself as the holder."""
    from runbook import aws
    from runbook.errors import LockHeld

    env = team_env(endpoint())
    store = aws_store(env, tmp_path / "a")
    seen: list[int] = []

    def lost_response(attempts: int, **_: Any) -> float | None:
        seen.append(attempts)
        return 0 if attempts == 1 else None      # the first attempt's response "lost": botocore retries it

    events = aws.client(store.locks.io.env, "dynamodb").meta.events
    events.register_first("needs-retry.dynamodb.PutItem", lost_response, unique_id="test-lost-response")
    try:
        holder = store.locks.acquire("prod", "r1", "deploy", "alice@example.com")
        assert seen[:2] == [1, 2]                        # applied, then retried (and refused by its condition)
        assert store.locks.read("prod") == holder
        store.locks.check("prod", "r1", holder.epoch)
        again = store.locks.reclaim("prod", "r1", "deploy", "alice@example.com")
        assert again.epoch == holder.epoch + 1 and store.locks.read("prod") == again
        taken, previous = store.locks.take_over("prod", "r2", "rollback", "bob@example.com")
        assert previous == again and taken.epoch == again.epoch + 1   # taken from r1, not from itself
    finally:
        events.unregister("needs-retry.dynamodb.PutItem", unique_id="test-lost-response")
    with pytest.raises(LockHeld, match="for run r2 of rollback"):       # a real refusal is still one
        aws_store(env, tmp_path / "b").locks.acquire("prod", "r3", "deploy", "carol@example.com")
    store.locks.release("prod", "r2")


def test_the_stand_in_applies_one_request_at_a_time() -> None:
    """moto checks a condition and writes the item with no lock between (two racing conditional puts can both
    succeed, issue #9); the stand-in runs each request whole, one at a time, as DynamoDB applies each write."""
    import threading

    from runbook.standins.moto_server import OneRequestAtATime

    inside: list[int] = []
    most = [0]

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        inside.append(1)
        most[0] = max(most[0], len(inside))
        time.sleep(0.02)
        start_response("200 OK", [])
        yield b"re"
        inside.pop()
        yield b"ply"

    served = OneRequestAtATime(app)
    bodies: list[Any] = []
    threads = [threading.Thread(target=lambda: bodies.append(served({}, lambda *a: None))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most[0] == 1 and bodies == [[b"reply"]] * 8


def test_a_failed_guard_is_never_walked_past_on_resume_on_the_team_backend(tmp_path: Path) -> None:
    """DESIGN (Resume) on the team backend: resumed from another machine, a guard that still fails
    fails again and its action never runs; fixed, the run finishes there and its lock is released."""
    from runbook.audit import verify

    env = team_env(endpoint())
    root = project(tmp_path, env)
    work = tmp_path / "work"
    work.mkdir()
    answers = tmp_path / "a.yaml"
    answers.write_text("runbook: guarded\nanswers:\n  swap.confirm: true\n"
                       "  approve.approval: {approvers: [bob@example.com]}\n")
    first = invoke("runbook", "guarded", "--env", "team", "--param", f"dir={work}", "--answers", str(answers),
                   root=root, home=tmp_path / "laptop-a", env=AWS_KEYS)
    assert first.returncode == 1, first.stdout + first.stderr
    again = invoke("runbook", "guarded", "--env", "team", "--resume", "--answers", str(answers), root=root,
                   home=tmp_path / "laptop-b", env=AWS_KEYS)
    assert again.returncode == 1, again.stdout + again.stderr
    assert lines(work / "stopped.txt") == []
    (work / "volume.txt").write_text("ready\n")
    (work / "attach-ok").write_text("")
    fixed = invoke("runbook", "guarded", "--env", "team", "--resume", "--answers", str(answers), root=root,
                   home=tmp_path / "laptop-b", env=AWS_KEYS)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert lines(work / "stopped.txt") == ["stopped"] and lines(work / "started.txt") == ["started"]
    store = aws_store(env, tmp_path / "reviewer")
    [run_id] = store.run_ids()
    guard = [r for r in store.records(run_id) if r["type"] == "item.result" and r["data"]["item"] == "volume-ready"]
    assert [g["data"]["passed"] for g in guard] == [False, False, True]
    assert verify(store).ok and store.locks.read("team") is None
