"""The reliability figures: one function per figure, each returning a :class:`Figure`.

Every figure drives the real engine: ``python -m invoke`` subprocesses where a process
must die (crashes) or race (locks), the engine's own functions in-process where speed
matters (hostile input, tampering). A figure counts what it *tried*, what *held* (the
engine behaved as DESIGN.md says) and what *failed*, with a note per failure.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from .common import PROJECT, REPO, Figure, project_copy, state_home, timed, verify_home  # noqa: F401

if str(REPO / "tests") not in sys.path:
    sys.path.insert(0, str(REPO / "tests"))

from helpers import Server, invoke  # noqa: E402  (the tests' own helpers, reused)

OPERATOR = "tester@example.com"
CRASH_TARGETS = ["prep.a", "badprobe.w", "plainverify.w", "noverify.w", "cont.w", "retrying.w", "inc.inner.w",
                 "cstep.w"]
POINTS = ["before-intent", "after-intent", "after-effect"]
EFFECT_FILES = ["prep", "badprobe", "plain", "noverify", "cont", "retrying", "inc", "child"]
EFFECT_OF = dict(zip(CRASH_TARGETS, EFFECT_FILES))
FILE_LINE_COL = re.compile(r"^(?:\S.*?:\d+:\d+|<command line>|<environment>|RUNBOOK_PARAM_\w+): \S")


def lines_of(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


# -- 1. crashes at every point -------------------------------------------------------------------

def _crash_once(root: Path, base: Path, target: str, point: str) -> tuple[str, str, int, bool]:
    """Crash at TARGET:POINT, resume; returns (target:point, problem or '', repeated effects, chain ok)."""
    tag = f"{target}:{point}"
    case = base / tag.replace(":", "_").replace(".", "_")
    work = case / "work"
    work.mkdir(parents=True)
    home = case / "home"
    answers = str(root / "answers.yaml")
    first = invoke("runbook", "crashy", "--param", f"dir={work}", "--answers", answers, "--non-interactive",
                   root=root, home=home, env={"RUNBOOK_CRASH_AT": tag}, timeout=60)
    if first.returncode != -signal.SIGKILL:
        return tag, f"the crash point was not reached (exit {first.returncode})", 0, False
    # Asked about an effect the engine cannot see (no probe, no verify), the operator looks, as
    # the prompt tells them to: skip when the effect is there, retry when it is not.
    looked = case / "answers.yaml"
    there = bool(lines_of(work / f"{EFFECT_OF[target]}.txt"))
    looked.write_text(Path(answers).read_text().replace(
        f"{target}.on_fail: {{choice: retry}}",
        f"{target}.on_fail: {{choice: skip, reason: looked - the effect is there}}" if there else
        f"{target}.on_fail: {{choice: retry}}"))
    second = invoke("runbook", "crashy", "--resume", "--answers", str(looked), "--non-interactive", root=root,
                    home=home, timeout=60)
    problem = ""
    if second.returncode != 0:
        problem = f"resume exited {second.returncode}: {(second.stdout + second.stderr)[-300:]}"
    repeated = 0
    for name in EFFECT_FILES:
        n = len(lines_of(work / f"{name}.txt"))
        repeated += max(0, n - 1)
        if n == 0 and not problem:
            problem = f"effect {name} never happened"
        elif n > 1 and not problem:
            problem = f"effect {name} happened {n} times"
    code, out = verify_home(root, home)
    if "Traceback" in first.stderr + second.stderr and not problem:
        problem = "a traceback was printed"
    return tag, problem, repeated, code == 0


def crash_points(short: bool = True) -> Figure:
    """Kill the process at every point of every action; resume; count repeats; verify the chains."""
    fig = Figure("crash at every point")
    with timed(fig), tempfile.TemporaryDirectory(prefix="rel-crash-") as tmp:
        base = Path(tmp)
        root = project_copy(base)
        cases = [(t, p) for t in CRASH_TARGETS for p in POINTS]
        with ThreadPoolExecutor(max_workers=2) as pool:
            results = list(pool.map(lambda tp: _crash_once(root, base, *tp), cases))
        completed = repeated = chains = 0
        for tag, problem, reps, chain in results:
            repeated += reps
            chains += chain
            if problem or not chain:
                fig.bad(f"{tag}: {problem or 'audit.verify failed'}")
            else:
                completed += 1
                fig.ok()
        fig.notes.insert(0, f"{len(cases)} points ({len(CRASH_TARGETS)} actions x 3), {completed} runs completed "
                            f"after resume, {repeated} side effects repeated, {chains}/{len(cases)} chains verify "
                            "(an action with neither probe nor verify is the operator's to judge: they look)")
    return fig


# -- 2. torn writes ------------------------------------------------------------------------------

def torn_writes(short: bool = True) -> Figure:
    """A half-written last journal line: reported precisely, cut off and kept on resume."""
    fig = Figure("torn journal writes")
    with timed(fig), tempfile.TemporaryDirectory(prefix="rel-torn-") as tmp:
        base = Path(tmp)
        root = project_copy(base)
        answers = str(root / "answers.yaml")
        work0 = base / "work0"
        work0.mkdir()
        home0 = base / "home0"
        first = invoke("runbook", "crashy", "--param", f"dir={work0}", "--answers", answers, "--non-interactive",
                       root=root, home=home0, env={"RUNBOOK_CRASH_AT": "prep.a:after-intent"})
        if first.returncode != -signal.SIGKILL:
            fig.bad(f"setup: the crash point was not reached (exit {first.returncode})")
            return fig
        snapshot = base / "work0-at-crash"
        shutil.copytree(work0, snapshot)
        run = sorted((home0 / "runs").iterdir())[0].name
        record = (home0 / "runs" / run / "journal.jsonl").read_bytes().splitlines(keepends=True)[-1]
        every = sorted(set(range(1, len(record), 23)) | {len(record) - 1})
        cuts = [1, len(record) // 2, len(record) - 1] if short else every
        for cut in cuts:
            case = base / f"cut{cut}"
            home = case / "home"
            shutil.copytree(home0, home)
            shutil.rmtree(work0)                 # the run's parameters name work0: start it from the crash again
            shutil.copytree(snapshot, work0)
            path = home / "runs" / run / "journal.jsonl"
            complete = path.read_bytes()
            path.write_bytes(complete + record[:cut])
            code, out = verify_home(root, home)
            wanted = f"torn tail: {cut} bytes without an ending newline at byte {len(complete)}"
            if code != 1 or wanted not in out:
                fig.bad(f"cut at {cut}: audit.verify said {out.strip()[:200]!r}")
                continue
            resumed = invoke("runbook", "crashy", "--resume", "--answers", answers, "--non-interactive", root=root,
                             home=home)
            kept = (path.parent / f"journal.jsonl.torn-at-{len(complete)}")
            if resumed.returncode != 0:
                fig.bad(f"cut at {cut}: resume exited {resumed.returncode}: {(resumed.stdout + resumed.stderr)[-300:]}")
            elif not path.read_bytes().startswith(complete) or not kept.exists() or kept.read_bytes() != record[:cut]:
                fig.bad(f"cut at {cut}: the torn bytes were not cut off and kept beside the journal")
            elif verify_home(root, home)[0] != 0:
                fig.bad(f"cut at {cut}: the repaired journal does not verify")
            else:
                fig.ok()
        fig.notes.insert(0, f"{len(cuts)} cut points in a {len(record)}-byte record; each: verify names the torn "
                            "tail and its byte offset, resume continues from the last complete record")
    return fig


# -- 3. lock races -------------------------------------------------------------------------------

RACE_PROCS = 20
RACE_PAUSED_LEASE = 1.0     # seconds: the paused holder's lease on the AWS backend (it runs out while stopped)


def _race_stopped(pid: int, timeout: float = 30.0) -> bool:
    """Wait until process ``pid`` is stopped (SIGSTOP: state T in /proc/PID/stat); False when it is not."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            return False
        if state in (b"T", b"t"):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)


def _race_worker(i: int, env: dict[str, Any] | None, home: str, rounds: int, paused: int, procs: int,
                 barriers: Any, queue: Any) -> None:
    """One of the racing processes (module level, so `spawn` can start it).

    A race round: every process tries to take the key at once; the one granted it writes (a fence)
    straight away; every other one makes a fenced write and releases the key under its own run id (both
    must be refused); the holder checks the key still names it, tries to unlock it (live: refused),
    releases it and writes again (refused). A paused-holder round: one process takes the key and stops
    itself (SIGSTOP; on the AWS backend its lease runs out meanwhile). The others each try to take the key
    for a new run (a live or stale holder's key is not free: refused), then take it over: on the AWS
    backend all of them at once resume the stopped run (one may win the next epoch), locally one takes it
    over (the emergency path). The new holder writes; the stopped one is continued (SIGCONT) and writes
    with its old epoch: refused, and the key still names the new holder.
    """
    from runbook.backends import open_store
    from runbook.errors import LockHeld, UsageError
    from runbook.locks import Fenced

    everyone, others = barriers
    store = open_store(env, Path(home))
    locks = store.locks

    def writes(key: str, run: str, epoch: int) -> bool:
        """A fenced write: True when it was accepted."""
        try:
            locks.check(key, run, epoch)
            return True
        except Fenced:
            return False

    for r in range(rounds):
        run = f"r{r}-w{i}"
        everyone.wait(timeout=120)
        try:
            locks.acquire("race", run, "race", f"w{i}@example.com")
            won = True
        except LockHeld:
            won = False
        wrote = won and writes("race", run, 1)   # the holder's first write, straight after taking the key
        queue.put(("acquire", r, i, won, wrote))
        everyone.wait(timeout=120)
        if not won:
            stale = writes("race", run, 1)       # a write by a process that does not hold the lock
            locks.release("race", run)           # a wrong-id unlock
            queue.put(("loser", r, i, stale))
        everyone.wait(timeout=120)
        if won:
            current = locks.read("race")
            kept = current is not None and current.run_id == run
            try:
                locks.unlock("race")             # unlocking a live holder's key
                unlocked = True
            except UsageError:
                unlocked = False
            locks.release("race", run)
            stale = writes("race", run, 1)       # the former holder writes after releasing
            queue.put(("winner", r, i, kept, unlocked, stale))
        everyone.wait(timeout=120)

    leased = hasattr(locks, "lease")             # the AWS backend: leases that run out
    for p in range(paused):
        holder, waker = p % procs, (p + 1) % procs
        run = f"p{p}-w{holder}"
        everyone.wait(timeout=120)
        if i == holder:
            default = locks.lease if leased else None
            if leased:
                locks.lease = RACE_PAUSED_LEASE
            try:
                locks.acquire("paused", run, "race", f"w{i}@example.com")
                won = True
            except LockHeld:
                won = False
            everyone.wait(timeout=120)
            if won:
                os.kill(os.getpid(), signal.SIGSTOP)   # paused, heartbeat and all, until the waker continues it
            stale = won and writes("paused", run, 1)   # its next write, with the epoch it had
            after = locks.read("paused")
            queue.put(("paused", p, i, won, stale, (after.run_id, after.epoch, after.pid) if after else None))
            if leased:
                locks.lease = default
            everyone.wait(timeout=120)
            everyone.wait(timeout=120)
            continue
        everyone.wait(timeout=120)
        current = locks.read("paused")
        pid = current.pid if current is not None and current.run_id == run else 0
        stopped = bool(pid) and _race_stopped(pid)
        deadline = time.monotonic() + 30
        while stopped and leased and time.monotonic() < deadline:
            current = locks.read("paused")
            if current is None or current.is_stale():  # the stopped holder's lease ran out
                break
            time.sleep(0.05)
        others.wait(timeout=120)
        try:
            locks.acquire("paused", f"p{p}-w{i}", "race", f"w{i}@example.com")
            refused = False
        except LockHeld:
            refused = True
        others.wait(timeout=120)
        mine: tuple[str, int] | None = None
        if leased:                                   # AWS: every one resumes the stopped run at once
            try:
                mine = (run, locks.reclaim("paused", run, "race", f"w{i}@example.com").epoch)
            except LockHeld:
                pass
        elif i == waker:                             # local: one emergency takeover
            taken, _ = locks.take_over("paused", f"p{p}-w{i}", "race", f"w{i}@example.com")
            mine = (taken.run_id, taken.epoch)
        wrote = mine is not None and writes("paused", *mine)
        queue.put(("taker", p, i, stopped, refused, mine is not None, wrote, os.getpid()))
        others.wait(timeout=120)
        if i == waker and pid:
            _race_stopped(pid, 10)
            os.kill(pid, signal.SIGCONT)
        everyone.wait(timeout=120)                   # the continued holder has made its write by now
        if mine is not None:
            locks.release("paused", mine[0])
        everyone.wait(timeout=120)


def _race(backend: str, env: dict[str, Any] | None, home: Path, rounds: int, procs: int, fig: Figure,
          paused: int = 0) -> None:
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    barriers = (ctx.Barrier(procs), ctx.Barrier(procs - 1))
    queue = ctx.Queue()
    workers = [ctx.Process(target=_race_worker, args=(i, env, str(home), rounds, paused, procs, barriers, queue),
                           daemon=True)
               for i in range(procs)]
    for w in workers:
        w.start()
    messages: list[tuple[Any, ...]] = []
    expected = rounds * (procs * 2) + paused * procs   # race: acquire + (loser or winner); paused: one each
    deadline = time.monotonic() + 60 + rounds * 10 + paused * 20
    try:
        while len(messages) < expected and time.monotonic() < deadline:
            try:
                messages.append(queue.get(timeout=5))
            except Exception:
                if not any(w.is_alive() for w in workers):
                    break
    finally:
        for w in workers:
            w.join(timeout=10)
            if w.is_alive():
                os.kill(w.pid, signal.SIGCONT)   # a holder left stopped
                w.kill()
    stale_total = live_unlocks = lost = granted_total = 0
    for r in range(rounds):
        attempts = [m for m in messages if m[0] == "acquire" and m[1] == r]
        winners = [m for m in attempts if m[3]]
        losers = [m for m in messages if m[0] == "loser" and m[1] == r]
        held = [m for m in messages if m[0] == "winner" and m[1] == r]
        stale = sum(m[3] for m in losers) + sum(m[5] for m in held)
        unlocked = sum(m[4] for m in held)
        gone = sum(not m[3] for m in held)
        stale_total += stale
        live_unlocks += unlocked
        lost += gone
        granted_total += len(winners)
        if len(attempts) != procs or len(losers) + len(held) != procs:
            fig.bad(f"{backend} round {r}: {len(attempts)} of {procs} processes reported")
        elif len(winners) != 1:
            fig.bad(f"{backend} round {r}: {len(winners)} processes were granted the lock (workers "
                    f"{[m[2] for m in winners]}; their first write accepted: {[m[2] for m in winners if m[4]]}; "
                    f"the key named afterwards: {[m[2] for m in held if m[3]]}; stale writes accepted: {stale})")
        elif not winners[0][4] or gone:
            fig.bad(f"{backend} round {r}: the holder's own write was refused or its key was taken "
                    f"(first write accepted: {winners[0][4]}, key still its own: {not gone})")
        elif stale or unlocked:
            fig.bad(f"{backend} round {r}: {stale} stale writes accepted, {unlocked} unlocks of a live key succeeded")
        else:
            fig.ok()
    note = (f"{backend}: {rounds} rounds x {procs} processes on one key, {granted_total} grants, "
            f"{stale_total} stale writes accepted, {live_unlocks} wrong-id or live-key unlocks succeeded "
            f"({lost} holders' keys lost)")
    if not paused:
        fig.notes.append(note)
        return
    stale_total = 0
    for p in range(paused):
        holders = [m for m in messages if m[0] == "paused" and m[1] == p]
        takers = [m for m in messages if m[0] == "taker" and m[1] == p]
        new = [m for m in takers if m[5]]
        if len(holders) != 1 or len(takers) != procs - 1:
            fig.bad(f"{backend} paused round {p}: {len(holders) + len(takers)} of {procs} processes reported")
            continue
        _, _, _, won, stale, after = holders[0]
        stale_total += stale
        if not won or not all(m[3] for m in takers):
            fig.bad(f"{backend} paused round {p}: the holder did not take the free key or was not seen stopped")
        elif not all(m[4] for m in takers):
            fig.bad(f"{backend} paused round {p}: {sum(not m[4] for m in takers)} processes took the paused "
                    "holder's key for a new run")
        elif len(new) != 1:
            fig.bad(f"{backend} paused round {p}: {len(new)} processes took the key over (workers "
                    f"{[m[2] for m in new]}; their write accepted: {[m[2] for m in new if m[6]]})")
        elif not new[0][6]:
            fig.bad(f"{backend} paused round {p}: the new holder's write was refused")
        elif stale:
            fig.bad(f"{backend} paused round {p}: the paused holder's write was accepted after it continued")
        elif after is None or after[1:] != (2, new[0][7]):
            fig.bad(f"{backend} paused round {p}: after the paused holder continued the key names {after}, "
                    f"not the new holder (epoch 2, pid {new[0][7]})")
        else:
            fig.ok()
    how = f"stopped past its lease, {procs - 1} resume its run at once" if env else "stopped, one takes over"
    fig.notes.append(f"{note}; {paused} paused-holder rounds (SIGSTOP: {how}), {stale_total} stale writes "
                     "accepted")


def lock_races(short: bool = True) -> Figure:
    """20 processes race for one key, round after round, and take over a paused holder's key;
    on the local and on the AWS backend (moto on loopback, one request at a time as AWS applies them)."""
    fig = Figure("lock races")
    with timed(fig), tempfile.TemporaryDirectory(prefix="rel-locks-") as tmp:
        rounds, paused = (5, 2) if short else (50, 10)
        _race("local", None, Path(tmp) / "local", rounds, RACE_PROCS, fig, paused)
        from test_backend_contract import endpoint, team_env   # the moto stand-in the contract tests use

        _race("aws", team_env(endpoint()), Path(tmp) / "aws", rounds, RACE_PROCS, fig, paused)
    return fig


# -- 4. hostile input ----------------------------------------------------------------------------

VALID = (PROJECT / "runbooks" / "crashy.yaml").read_text()
MARK = "/tmp/runbook-reliability-pwned"

HANDWRITTEN_RUNBOOKS: list[tuple[str, str]] = [
    ("syntax-colon", "name: x\ntitle: [unclosed\nsteps: []\n"),
    ("syntax-tab", "name: x\n\ttitle: t\n"),
    ("syntax-quote", 'name: "x\ntitle: t\n'),
    ("empty", ""),
    ("only-comment", "# nothing\n"),
    ("list-top", "- a\n- b\n"),
    ("scalar-top", "just a string\n"),
    ("alias-bomb", "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\n"
                   "c: &c [*b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c]\n"),
    ("merge-key", "base: &b {title: t}\nname: x\n<<: *b\nsteps: []\n"),
    ("deep-nesting", "name: x\ntitle: t\nsteps: " + "[" * 200 + "]" * 200 + "\n"),
    ("deep-mapping", "name: x\ntitle: t\ndescription: " + "{a: " * 100 + "1" + "}" * 100 + "\n"),
    ("huge-scalar", "name: x\ntitle: " + "t" * 2_000_000 + "\nsteps: []\n"),
    ("huge-key", "name: x\ntitle: t\n" + "k" * 100_000 + ": 1\nsteps: []\n"),
    ("duplicate-top", "name: x\ntitle: t\ntitle: u\nsteps: []\n"),
    ("duplicate-step-key", "name: x\ntitle: t\nsteps:\n  - id: a\n    id: b\n    title: t\n"),
    ("wrong-type-steps", "name: x\ntitle: t\nsteps: {a: 1}\n"),
    ("wrong-type-title", "name: x\ntitle: [1, 2]\nsteps: []\n"),
    ("wrong-type-timeout", "name: x\ntitle: t\nsteps:\n  - id: a\n    title: t\n    timeout: soon\n"),
    ("integer-key", "name: x\ntitle: t\n1: one\nsteps: []\n"),
    ("unknown-top", "name: x\ntitle: t\nstepz: []\n"),
    ("unknown-plugin", "name: x\ntitle: t\nsteps:\n  - id: a\n    title: t\n    do:\n      - uses: shell.rnu\n"
                       "        with: {argv: [true]}\n"),
    ("unknown-param-ref", "name: x\ntitle: t\nsteps:\n  - id: a\n    title: t\n    verify:\n      - uses: core.equals\n"
                          "        with: {actual: '${params.nope}', expected: 1}\n"),
    ("private-ref-dunder", "name: x\ntitle: t\nsteps:\n  - id: a\n    title: t\n    verify:\n"
                           "      - uses: core.equals\n"
                           "        with: {actual: '${params.__class__}', expected: 1}\n"),
    ("private-ref-attr", "name: x\ntitle: t\nsteps:\n  - id: a\n    title: t\n    verify:\n      - uses: core.equals\n"
                         "        with: {actual: '${run.__init__.__globals__}', expected: 1}\n"),
    ("expression", "name: x\ntitle: t\nsteps:\n  - id: a\n    title: t\n    verify:\n      - uses: core.equals\n"
                   "        with: {actual: '${__import__(\"os\").system(\"touch " + MARK + "\")}', expected: 1}\n"),
    ("env-ref-unknown", "name: x\ntitle: t\nsteps:\n  - id: a\n    title: t\n    verify:\n      - uses: core.equals\n"
                        "        with: {actual: '${env.nope.deeper}', expected: 1}\n"),
    ("later-step-ref", "name: x\ntitle: t\nsteps:\n  - id: a\n    title: t\n    verify:\n      - uses: core.equals\n"
                       "        with: {actual: '${steps.b.w.count}', expected: 1}\n  - id: b\n    title: t\n    do:\n"
                       "      - id: w\n        uses: rel.append\n        with: {file: f, line: l}\n"),
    ("id-slash", "name: x\ntitle: t\nsteps:\n  - id: ../../etc\n    title: t\n"),
    ("id-dotdot", "name: x\ntitle: t\nsteps:\n  - id: ..\n    title: t\n"),
    ("id-nul", "name: x\ntitle: t\nsteps:\n  - id: \"a\\0b\"\n    title: t\n"),
    ("id-upper", "name: x\ntitle: t\nsteps:\n  - id: A/B\n    title: t\n"),
    ("name-path", "name: ../x\ntitle: t\nsteps: []\n"),
    ("include-path", "name: x\ntitle: t\nsteps:\n  - id: a\n    title: t\n    include: ../../../etc/passwd\n"),
    ("include-abs", "name: x\ntitle: t\nsteps:\n  - id: a\n    title: t\n    include: /etc/passwd\n"),
    ("git-upload-pack", "name: x\ntitle: t\nsteps:\n  - id: a\n    title: t\n    do:\n      - uses: git.create_branch\n"
                        "        with: {name: '--upload-pack=touch " + MARK + "', from: develop}\n"),
    ("git-option-from", "name: x\ntitle: t\nsteps:\n  - id: a\n    title: t\n    do:\n      - uses: git.create_branch\n"
                        "        with: {name: ok, from: '--exec=touch " + MARK + "'}\n"),
    ("argv-string", "name: x\ntitle: t\nsteps:\n  - id: a\n    title: t\n    do:\n      - uses: shell.run\n"
                    "        with: {argv: 'touch " + MARK + "; rm -rf /'}\n"),
    ("python-object", "name: x\ntitle: !!python/object/apply:os.system ['touch " + MARK + "']\nsteps: []\n"),
    ("python-name", "name: !!python/name:os.system x\ntitle: t\nsteps: []\n"),
    ("python-module", "name: x\ntitle: t\nsteps: !!python/module:os\n"),
    ("custom-tag", "name: x\ntitle: !secret t\nsteps: []\n"),
    ("multi-doc", "name: x\ntitle: t\nsteps: []\n---\nname: y\n"),
    ("binary", "name: x\ntitle: \x00\x01\x02\nsteps: []\n"),
    ("bad-utf8", "name: x\ntitle: t\udcff\nsteps: []\n"),
    ("bad-regex", "name: x\ntitle: t\nparams:\n  v: {type: string, pattern: '([a-'}\nsteps: []\n"),
    ("redos-default", "name: x\ntitle: t\nparams:\n  v: {type: string, pattern: '^v1$', default: '--upload-pack=x'}\n"
                      "steps: []\n"),
    ("when-expression", "name: x\ntitle: t\nsteps:\n  - id: a\n    title: t\n    when: '${params.a} and True'\n"),
    ("retry-negative", "name: x\ntitle: t\nsteps:\n  - id: a\n    title: t\n    on_failure: retry\n"
                       "    retry: {attempts: -1, delay: -5}\n"),
    ("approval-min-zero", "name: x\ntitle: t\nsteps:\n  - id: a\n    title: t\n"
                          "    approval: {source: prompt, min: 0}\n"),
    ("lock-template-bad", "name: x\ntitle: t\nlock: '${steps.a.b.c}'\nsteps: []\n"),
]

HANDWRITTEN_ENVS: list[tuple[str, str]] = [
    ("env-syntax", "name: local\napi: {base_url: [\n"),
    ("env-wrong-type", "name: local\nprotected: maybe\n"),
    ("env-unknown-key", "name: local\nfoo: 1\n"),
    ("env-backend-string", "name: local\nbackend: aws\n"),
    ("env-python", "name: !!python/object/apply:os.system ['touch " + MARK + "']\n"),
    ("env-alias", "name: &n local\nx: *n\n"),
    ("env-dup", "name: local\nname: local\n"),
    ("env-git-option", "name: local\ngit: {remote: '--upload-pack=touch " + MARK + "'}\n"),
    ("env-deep", "name: local\napi: " + "{a: " * 80 + "1" + "}" * 80 + "\n"),
    ("env-huge", "name: local\ndescription: " + "x" * 1_200_000 + "\n"),
]

HANDWRITTEN_PARAMS: list[list[str]] = [
    ["dir"], ["=x"], ["go=maybe"], ["dir=x", "dir=y"], ["nope=1"], ["dir=x", "go=2"], ["go=yes please"],
    ["dir=x", "__class__=1"], ["dir=x", "go="], ["go=" + "1" * 10000],
]

HANDWRITTEN_ANSWERS: list[tuple[str, str]] = [
    ("ans-syntax", "runbook: crashy\nanswers: {\n"),
    ("ans-unknown-id", "runbook: crashy\nanswers:\n  nope.confirm: true\n"),
    ("ans-wrong-shape", "runbook: crashy\nanswers:\n  prep.confirm: [1, 2]\n"),
    ("ans-wrong-runbook", "runbook: other\nanswers: {}\n"),
    ("ans-python", "runbook: crashy\nanswers: !!python/object/apply:os.system ['touch " + MARK + "']\n"),
    ("ans-alias", "runbook: crashy\na: &x {prep.confirm: true}\nanswers: *x\n"),
    ("ans-dup", "runbook: crashy\nanswers: {}\nanswers: {}\n"),
    ("ans-bad-choice", "runbook: crashy\nanswers:\n  noverify.w.on_fail: {choice: explode}\n"),
    ("ans-param-type", "runbook: crashy\nparams: {go: [1]}\nanswers: {}\n"),
    ("ans-list", "- runbook\n"),
    ("ans-approvers-type", "runbook: crashy\nanswers:\n  gate.approval: {approvers: alice}\n"),
    ("ans-deep", "runbook: crashy\nanswers: " + "[" * 100 + "]" * 100 + "\n"),
]


@dataclass
class _Hostile:
    root: Path
    home: Path
    fig: Figure
    timings: list[tuple[float, str]] = field(default_factory=list)
    rejected: int = 0
    accepted: int = 0
    cache_files: set[str] = field(default_factory=set)

    def check(self, label: str, call: Callable[[], int], expect_invalid: bool = True) -> None:
        """Call the engine; exit 2 with FILE:LINE:COL lines (or a clean exit 0 for a valid mutation)."""
        from runbook import cli
        from runbook.errors import RunbookError

        start = time.monotonic()
        problem = ""
        with state_home(self.home):
            try:
                code = call()
                lines: list[str] = []
            except RunbookError as exc:
                err = io.StringIO()
                code = cli.report_error(exc, err)
                lines = err.getvalue().splitlines()
            except BaseException as exc:  # anything else would be a traceback for the user
                code = -1
                lines = []
                import traceback

                frame = traceback.extract_tb(exc.__traceback__)[-1]
                problem = (f"traceback: {type(exc).__name__}: {str(exc)[:160]} "
                           f"({Path(frame.filename).name}:{frame.lineno})")
        took = time.monotonic() - start
        self.timings.append((took, label))
        if not problem:
            if code == 2:
                bad = [ln for ln in lines if not FILE_LINE_COL.match(ln)]
                if not lines or bad:
                    problem = f"exit 2 without a FILE:LINE:COL line: {(bad or ['(nothing)'])[0][:160]!r}"
                else:
                    self.rejected += 1
            elif code == 0 and not expect_invalid:
                self.accepted += 1
            else:
                problem = f"exit {code}, expected 2: {' | '.join(lines)[:200]}"
        written = sorted(str(p.relative_to(self.home)) for p in self.home.rglob("*") if p.is_file()) \
            if self.home.exists() else []
        self.cache_files.update(w for w in written if w.startswith("cache/"))
        written = [w for w in written if not w.startswith("cache/")]
        if not problem and written:
            problem = f"wrote into the state home: {written[:3]}"
        shutil.rmtree(self.home, ignore_errors=True)
        if not problem and os.path.exists(MARK):
            problem = "code was executed (the marker file exists)"
            os.unlink(MARK)
        if problem:
            self.fig.bad(f"{label}: {problem}")
        else:
            self.fig.ok()

    def runbook(self, label: str, text: str, expect_invalid: bool = True, name: str = "x") -> None:
        from runbook import cli

        path = self.root / "generated" / f"{name}.yaml"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(text.encode("utf-8", "surrogateescape"))
        self.check(label, lambda: cli.validate(self.root, [str(path)], out=io.StringIO()), expect_invalid)
        path.unlink()

    def environment(self, label: str, text: str) -> None:
        from runbook import cli

        path = self.root / "environments" / "local.yaml"
        saved = path.read_bytes()
        path.write_bytes(text.encode("utf-8", "surrogateescape"))
        try:
            self.check(label, lambda: cli.validate(self.root, [str(path)], out=io.StringIO()))
            self.check(label + " (dry run)", lambda: cli.dry_run(self.root, "crashy", "local", ["dir=/tmp/x"], None,
                                                                 out=io.StringIO()))
        finally:
            path.write_bytes(saved)

    def params(self, label: str, given: list[str]) -> None:
        from runbook import cli

        self.check(label, lambda: cli.dry_run(self.root, "crashy", None, given, None, out=io.StringIO()))

    def answers(self, label: str, text: str) -> None:
        from runbook import cli

        path = self.root / "bad-answers.yaml"
        path.write_bytes(text.encode("utf-8", "surrogateescape"))
        self.check(label, lambda: cli.dry_run(self.root, "crashy", None, ["dir=/tmp/x"], str(path), out=io.StringIO()))


def _generated(h: _Hostile, count: int) -> None:
    """Hypothesis-generated mutations of a valid runbook: text edits and values of the wrong type."""
    import yaml
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st

    valid = yaml.safe_load(VALID)
    tokens = list(":{}[]-&*!|>'\"#%@`\t\n ,?$.\\/") + ["a", "1", "${", "!!python/", "\x00", "\u2028"]
    junk = st.lists(st.sampled_from(tokens), min_size=1, max_size=8).map("".join)
    values = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True)
                          | st.text(max_size=30), lambda inner: st.lists(inner, max_size=4)
                          | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
    names = st.sampled_from(["name", "title", "params", "steps", "lock", "emergency", "on_failure", "id", "uses",
                             "with", "do", "verify", "requires", "when", "unless", "retry", "timeout", "approval",
                             "include", "run", "confirm", "manual", "evidence", "wait", "type", "pattern", "__x__"])

    def paths(doc: Any, data: Any) -> list[Any]:
        path: list[Any] = []
        cur = doc
        for _ in range(data.draw(st.integers(0, 5))):
            if isinstance(cur, dict) and cur:
                key = data.draw(st.sampled_from(sorted(cur)))
            elif isinstance(cur, list) and cur:
                key = data.draw(st.integers(0, len(cur) - 1))
            else:
                break
            path.append(key)
            cur = cur[key]
        return path

    n = [0]

    @settings(max_examples=count, database=None, deadline=None, derandomize=True, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(st.data())
    def generated(data: Any) -> None:
        n[0] += 1
        kind = data.draw(st.sampled_from(["text", "value", "key"]))
        if kind == "text":
            pos = data.draw(st.integers(0, len(VALID)))
            text = VALID[:pos] + data.draw(junk) + VALID[pos + data.draw(st.integers(0, 3)):]
        else:
            doc = json.loads(json.dumps(valid))
            path = paths(doc, data)
            parent: Any = doc
            for key in path[:-1]:
                parent = parent[key]
            if kind == "value" and path:
                parent[path[-1]] = data.draw(values)
            else:
                target = parent[path[-1]] if path else doc
                if isinstance(target, dict):
                    target[data.draw(names)] = data.draw(values)
                elif isinstance(target, list):
                    target.append(data.draw(values))
            text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
        h.runbook(f"generated #{n[0]} ({kind})", text, expect_invalid=False, name="crashy")

    generated()


def hostile_input(short: bool = True) -> Figure:
    """Hostile runbooks, environments, answers and parameters: exit 2, one located line each, nothing written."""
    fig = Figure("hostile input")
    with timed(fig), tempfile.TemporaryDirectory(prefix="rel-hostile-") as tmp:
        base = Path(tmp)
        root = project_copy(base)
        h = _Hostile(root, base / "home", fig)
        for label, text in HANDWRITTEN_RUNBOOKS:
            h.runbook(label, text.replace("name: x\n", "name: x\n", 1))
        for label, text in HANDWRITTEN_ENVS:
            h.environment(label, text)
        for given in HANDWRITTEN_PARAMS:
            h.params("params " + " ".join(given)[:40], given)
        for label, text in HANDWRITTEN_ANSWERS:
            h.answers(label, text)
        handwritten = fig.tried
        _generated(h, 240 if short else 1500)
        shell = _metacharacters(root, base, fig)
        procs = _subprocess_hostile(root, base, fig)
        times = sorted(t for t, _ in h.timings)
        slowest = max(h.timings) if h.timings else (0.0, "")
        fig.notes.insert(0, f"{handwritten} handwritten + {fig.tried - handwritten - shell - procs} generated "
                            f"(hypothesis) in-process, {shell} shell-metacharacter runs, {procs} invoke subprocesses; "
                            f"{h.rejected} rejected with exit 2, {h.accepted} generated mutations still valid "
                            f"(accepted, nothing written); per input median {1000 * times[len(times) // 2]:.1f} ms, "
                            f"max {1000 * slowest[0]:.0f} ms ({slowest[1]})")
        if h.cache_files:
            fig.notes.insert(1, f"note: validation writes speed caches into the state home "
                                f"({', '.join(sorted(h.cache_files))}); no run state is written")
    return fig


METACHARS = ["a;touch " + MARK, "$(touch " + MARK + ")", "`touch " + MARK + "`", "a|touch " + MARK,
             "a && touch " + MARK, "a\ttouch " + MARK, "--upload-pack=touch " + MARK, "'\"$HOME*?[]{}<>~!#"]


def _metacharacters(root: Path, base: Path, fig: Figure) -> int:
    """Values full of shell metacharacters that pass a pattern reach the command as one literal argument."""
    rb = root / "runbooks" / "meta.yaml"
    rb.write_text("name: meta\ntitle: t\nlock: none\n"
                  "params:\n  v: {type: string, pattern: '^.+$'}\n  out: {type: string}\n"
                  "steps:\n  - id: a\n    title: t\n    do:\n      - id: w\n        uses: shell.run\n        with:\n"
                  "          argv: [python3, -c, 'import json, sys; open(sys.argv[1], \"w\").write(json.dumps("
                  "sys.argv[2:]))', '${params.out}', '${params.v}']\n")
    tried = 0
    for i, value in enumerate(METACHARS):
        out = base / f"meta{i}.json"
        env = {"RUNBOOK_PARAM_V": value}
        result = invoke("runbook", "meta", "--param", f"out={out}", root=root, home=base / f"mhome{i}", env=env)
        tried += 1
        got = json.loads(out.read_text()) if out.exists() else None
        if result.returncode != 0 or got != [value] or os.path.exists(MARK):
            fig.bad(f"metacharacters {value!r}: exit {result.returncode}, argv {got!r}")
            if os.path.exists(MARK):
                os.unlink(MARK)
        else:
            fig.ok()
    rb.unlink()
    return tried


def _subprocess_hostile(root: Path, base: Path, fig: Figure) -> int:
    """A few hostile inputs through real `python -m invoke`: exit 2, no traceback, nothing written."""
    named = dict(HANDWRITTEN_RUNBOOKS)
    cases = [(label, named[label]) for label in ("alias-bomb", "python-object", "git-upload-pack", "deep-nesting")]
    for label, text in cases:
        path = root / "runbooks" / "x.yaml"
        path.write_text(text)
        home = base / "phome"
        result = invoke("runbook.validate", "--path", str(path), root=root, home=home, timeout=60)
        err = result.stdout + result.stderr
        written = [p for p in home.rglob("*") if p.is_file() and "cache" not in p.parts] if home.exists() else []
        if result.returncode != 2 or "Traceback" in err or written or not any(
                FILE_LINE_COL.match(ln) for ln in err.splitlines()):
            fig.bad(f"invoke {label}: exit {result.returncode}: {err[-200:]!r}")
        else:
            fig.ok()
        path.unlink()
    given = invoke("runbook", "crashy", "--param", "go=--upload-pack=touch " + MARK, "--param", "dir=x", root=root,
                   home=base / "phome", timeout=60)
    written = [p for p in (base / "phome").rglob("*") if p.is_file() and "cache" not in p.parts]
    if given.returncode != 2 or "Traceback" in given.stderr or written:
        fig.bad(f"invoke bad parameter: exit {given.returncode}: {given.stderr[-200:]!r}")
    else:
        fig.ok()
    return len(cases) + 1


# -- 5. tampering --------------------------------------------------------------------------------

def _mutations(lines: list[bytes], k: int) -> Iterator[tuple[str, list[bytes]]]:
    n = len(lines)
    line = lines[k]
    mid = len(line) // 2
    flipped = line[:mid] + bytes([line[mid] ^ 0x01 if line[mid] not in (0x0a, 0x22, 0x5c) else 0x41]) + line[mid + 1:]
    yield "edit", lines[:k] + [flipped] + lines[k + 1:]
    yield "delete", lines[:k] + lines[k + 1:]
    yield "duplicate", lines[:k + 1] + [line] + lines[k + 1:]
    if k + 1 < n:
        yield "reorder", lines[:k] + [lines[k + 1], line] + lines[k + 2:]
    other = lines[(k + 2) % n]
    if other != line:
        yield "insert", lines[:k] + [other] + lines[k:]
    if k > 0:
        yield "cut-tail", lines[:k]


def _flip(byte: int) -> int:
    return byte ^ 0x01 if byte not in (0x0a, 0x22, 0x5c) else 0x41


def _detected(root: Path, home: Path, label: str, what: str, fig: Figure) -> None:
    """The home as it is now must fail audit.verify, naming the journal or the ledger record."""
    code, out = verify_home(root, home)
    first = out.splitlines()[0] if out else ""
    named = ("ledger" in first) if label == "ledger" else f"run {label}" in first
    if code != 1 or not named:
        fig.bad(f"{label[:24]} {what}: exit {code}, {first[:160]!r}")
    else:
        fig.ok()


def _sweep(root: Path, home: Path, files: list[tuple[str, Path]], fig: Figure, kinds: dict[str, int]) -> None:
    """Every single-record mutation of each file; then every byte of the ledger's newest
    record, the one no later ledger record points at."""
    for label, path in files:
        original = path.read_bytes()
        lines = original.splitlines(keepends=True)
        try:
            for k in range(len(lines)):
                for how, mutated in _mutations(lines, k):
                    path.write_bytes(b"".join(mutated))
                    kinds[how] = kinds.get(how, 0) + 1
                    _detected(root, home, label, f"record {k + 1} {how}", fig)
            if label == "ledger":
                newest = len(original) - len(lines[-1])
                for at in range(newest, len(original) - 1):
                    path.write_bytes(original[:at] + bytes([_flip(original[at])]) + original[at + 1:])
                    kinds["edit (every byte of the newest)"] = kinds.get("edit (every byte of the newest)", 0) + 1
                    _detected(root, home, label, f"record {len(lines)} byte {at - newest}", fig)
        finally:
            path.write_bytes(original)


def tampering(short: bool = True) -> Figure:
    """Every single-record mutation of real journals and of the ledger is detected and named.

    Twice: when the ledger's newest record is a finished run's anchor, and when it is the
    start of a run killed before its first anchor.
    """
    fig = Figure("tampering")
    with timed(fig), tempfile.TemporaryDirectory(prefix="rel-tamper-") as tmp:
        base = Path(tmp)
        root = project_copy(base)
        home = base / "home"
        answers = str(root / "answers.yaml")

        def crashy(i: int, crash: str | None = None, resume: bool = False) -> None:
            work = base / f"work{i}"
            work.mkdir()
            invoke("runbook", "crashy", "--param", f"dir={work}", "--answers", answers, "--non-interactive",
                   root=root, home=home, env={"RUNBOOK_CRASH_AT": crash} if crash else {})
            if resume:
                invoke("runbook", "crashy", "--resume", "--answers", answers, "--non-interactive", root=root,
                       home=home)

        kinds: dict[str, int] = {}
        journals = 0
        for stage in ("finished", "killed"):
            if stage == "finished":
                crashy(0, "badprobe.w:after-effect", resume=True)
                crashy(1)
            else:
                crashy(2, "prep.a:before-intent")     # killed: the ledger's newest record is its start
            code, out = verify_home(root, home)
            if code != 0:
                fig.bad(f"setup ({stage}): the untouched home does not verify: {out[:200]}")
                return fig
            files = [(p.parent.name, p) for p in sorted((home / "runs").glob("*/journal.jsonl"))]
            files = (files[:1] if short else files) if stage == "finished" else []
            journals += len(files)
            _sweep(root, home, files + [("ledger", home / "ledger.jsonl")], fig, kinds)
        fig.notes.insert(0, f"{journals} journal(s) and the ledger twice (newest record an anchor, then a start), "
                            "every record: " + ", ".join(f"{v} {k}" for k, v in sorted(kinds.items())))
    return fig


# -- 6. secrets ----------------------------------------------------------------------------------

TOKEN = "Zq9-tok/en+4471=secret"
PATTERN_SECRETS = [
    "AKIAIOSFODNN7EXAMPLE", "ASIAY34FZKBOKMUTVV7A", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "ghp_0123456789abcdefghijABCDEFGHIJ012345", "gho_abcdefghijklmnopqrstuvwxyz0123",
    "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "abcdef0123456789.bearer-xyz", "hunter2hunter2", "pa55w0rd-db", "MIIEowIBAAKCAQEAsecretkeymaterial",
]
PATTERN_LINES = [
    "aws AKIAIOSFODNN7EXAMPLE and ASIAY34FZKBOKMUTVV7A",
    "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "ghp_0123456789abcdefghijABCDEFGHIJ012345 gho_abcdefghijklmnopqrstuvwxyz0123",
    "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
    "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "Authorization: Bearer abcdef0123456789.bearer-xyz",
    "password=hunter2hunter2 and postgres://admin:pa55w0rd-db@db.internal/x",
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAsecretkeymaterial\n-----END RSA PRIVATE KEY-----",
]


def _encodings(secret: str) -> dict[str, str]:
    """The forms a step prints, each exactly as printed; and the part of each that encodes only the secret."""
    raw = secret.encode()
    out = {"plain": secret, "url": urllib.parse.quote(secret, safe=""),
           "json": json.dumps(secret + '"\\')[1:-1], "url-plus": urllib.parse.quote_plus(secret)}
    for offset in range(3):
        enc = base64.b64encode(b"\0" * offset + raw).decode()
        core = enc[{0: 0, 1: 2, 2: 3}[offset]: ((offset + len(raw)) // 3) * 4]
        out[f"base64+{offset}"] = core
        out[f"base64url+{offset}"] = core.replace("+", "-").replace("/", "_")
    return out


def secrets_kept_out(short: bool = True) -> Figure:
    """Known secrets in every encoding and a corpus of pattern secrets never reach disk or console."""
    fig = Figure("secrets kept out")
    with timed(fig), tempfile.TemporaryDirectory(prefix="rel-secrets-") as tmp:
        base = Path(tmp)
        root = project_copy(base)
        encodings = _encodings(TOKEN)
        script = ("import base64, json, sys, time, urllib.parse\n"
                  "tok = sys.argv[1]\n"
                  "print('plain', tok)\n"
                  "for off in range(3):\n"
                  "    enc = base64.b64encode(b'\\0' * off + tok.encode()).decode()\n"
                  "    print('b64', off, enc, enc.replace('+', '-').replace('/', '_'))\n"
                  "print('url', urllib.parse.quote(tok, safe=''), urllib.parse.quote_plus(tok))\n"
                  "print('json', json.dumps({'t': tok + '\"\\\\'}))\n"
                  "sys.stdout.write('split ' + tok[:9]); sys.stdout.flush(); time.sleep(0.2)\n"
                  "sys.stdout.write(tok[9:] + '\\n'); sys.stdout.flush()\n"
                  "print('stderr', tok, file=sys.stderr)\n"
                  "print(" + repr("\n".join(PATTERN_LINES)) + ")\n")
        body = {"token": TOKEN, "b64": base64.b64encode(TOKEN.encode()).decode(), "lines": PATTERN_LINES}
        server = Server({"/api": (200, body)})
        try:
            (root / "runbooks" / "leaks.yaml").write_text(json.dumps({
                "name": "leaks", "title": "Steps that leak", "lock": "none",
                "params": {"token": {"type": "string", "secret": True}, "url": {"type": "string"}},
                "steps": [
                    {"id": "print", "title": "Print secrets", "do": [
                        {"id": "out", "uses": "shell.run", "with": {"argv": ["python3", "-c", script,
                                                                             "${params.token}"]}},
                        {"id": "note", "manual": "Paste whatever", "evidence": "note"}]},
                    {"id": "http", "title": "A body with secrets", "verify": [
                        {"id": "get", "uses": "http.request", "keep_body": True,
                         "with": {"url": "${params.url}", "json": {"token": TOKEN}}}]}]}))
            answers = base / "answers.yaml"
            answers.write_text(json.dumps({"runbook": "leaks", "answers": {"print.note": {
                "done": True, "note": f"token {TOKEN} and {PATTERN_LINES[2]} and {PATTERN_LINES[6]}",
            }}}))
            home = base / "home"
            result = invoke("runbook", "leaks", "--param", f"url={server.url}/api", "--answers", str(answers),
                            "--non-interactive", root=root, home=home, env={"RUNBOOK_PARAM_TOKEN": TOKEN})
        finally:
            server.close()
        console = result.stdout + result.stderr
        if result.returncode not in (0, 1):
            fig.bad(f"the leaking run exited {result.returncode}: {console[-300:]}")
        exports = base / "exports"
        exports.mkdir()
        run = sorted((home / "runs").iterdir())[0].name if (home / "runs").exists() else ""
        for fmt in ("md", "json", "html"):
            done = invoke("audit.export", run, "--format", fmt, "--output", str(exports / f"r.{fmt}"), root=root,
                          home=home)
            console += done.stdout + done.stderr
        shown = invoke("audit.show", run, root=root, home=home)
        console += shown.stdout + shown.stderr
        sinks = {
            "state home": "\n".join(p.read_bytes().decode("utf-8", "replace") for p in home.rglob("*") if p.is_file()),
            "exports": "\n".join(p.read_bytes().decode("utf-8", "replace") for p in exports.rglob("*") if p.is_file()),
            "console": console,
        }
        if "[REDACTED]" not in sinks["state home"]:
            fig.bad("nothing was redacted in the state home (did the leaking step run?)")
        needles = {f"token {k}": v for k, v in encodings.items()} | {f"pattern {s[:12]}": s for s in PATTERN_SECRETS}
        for sink, text in sinks.items():
            for label, needle in needles.items():
                if needle in text:
                    fig.bad(f"{label} found in the {sink}")
                else:
                    fig.ok()
        fig.notes.insert(0, f"{len(encodings)} encodings of a known secret (plain, base64 at each offset, base64url, "
                            f"URL, JSON-escaped, split across two writes, stderr) and {len(PATTERN_SECRETS)} pattern "
                            "secrets, printed by a step, in an HTTP body kept as evidence and in an answer; "
                            f"looked for in {', '.join(sinks)}")
    return fig


# -- 7. approvals --------------------------------------------------------------------------------

APPROVAL_TESTS = {
    "short": ["tests/test_prompts.py", "tests/test_backend_approvals.py", "tests/test_github.py"],
    "full": ["tests/test_prompts.py", "tests/test_backend_approvals.py", "tests/test_github.py"],
}


def approvals(short: bool = True, through_pytest: bool = True) -> Figure:
    """Forged approvals are refused and the refusal journaled: own runs, plus the approval tests through pytest."""
    fig = Figure("forged approvals")
    with timed(fig), tempfile.TemporaryDirectory(prefix="rel-approve-") as tmp:
        base = Path(tmp)
        root = project_copy(base)
        forged = [  # label, runbook, environment, approvers, exit code (4: refused, parked), refusal journaled
            ("self-approval", "gated", "team", [OPERATOR, "bob@example.com"], 4, True),
            ("duplicate reviewer", "gated", "team", ["bob@example.com", "bob@example.com"], 4, True),
            ("missing role", "gated", "team", ["alice@example.com", "carol@example.com"], 4, True),
            ("too few approvers", "gated", "team", ["alice@example.com"], 4, True),
            ("prompt approval on a protected environment", "gated", "guarded",
             ["alice@example.com", "bob@example.com"], 2, False),
        ]
        for label, runbook, env_name, approvers, wanted, journaled in forged:
            work = base / label.replace(" ", "-")
            work.mkdir()
            home = work / "home"
            answers = work / "a.yaml"
            answers.write_text(json.dumps({"runbook": runbook, "answers": {"gate.approval": {"approvers": approvers}}}))
            result = invoke("runbook", runbook, "--env", env_name, "--param", f"dir={work}", "--answers", str(answers),
                            "--non-interactive", root=root, home=home)
            journal = "".join(p.read_text() for p in home.glob("runs/*/journal.jsonl"))
            refused = '"refused"' in journal and '"kind":"approval"' in journal
            ran = (work / "after.txt").exists()
            if result.returncode != wanted or refused != journaled or ran or "Traceback" in result.stderr:
                fig.bad(f"{label}: exit {result.returncode} (wanted {wanted}), refusal journaled: {refused}, "
                        f"the gated effect ran: {ran}")
            else:
                fig.ok()
        files = APPROVAL_TESTS["short" if short else "full"] if through_pytest else []
        xml = base / "junit.xml"
        if not files:
            fig.notes.insert(0, f"{len(forged)} forged prompt approvals run end to end")
            return fig
        keyword = ["-k", "approv or refus or self or stale or change or protected or forged or blocking or role"] \
            if short else []
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *files, *keyword,
                               f"--junitxml={xml}"], cwd=REPO, capture_output=True, text=True, timeout=900)
        if xml.exists():
            import xml.etree.ElementTree as ET

            for case in ET.parse(xml).getroot().iter("testcase"):
                name = f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}"
                if case.find("skipped") is not None:
                    continue
                if case.find("failure") is not None or case.find("error") is not None:
                    fig.bad(f"pytest {name}")
                else:
                    fig.ok()
        else:
            fig.bad(f"pytest did not run: {proc.stdout[-300:]}{proc.stderr[-300:]}")
        fig.notes.insert(0, f"{len(forged)} forged prompt approvals run end to end (refused and journaled, or "
                            f"refused before the run starts on a protected environment; nothing behind the gate ran)"
                            f" + the approval checks of {', '.join(Path(f).name for f in files)} through pytest")
    return fig


from .fail_resume import fail_then_resume, sandbox_fail_then_resume  # noqa: E402
from .sandbox_kills import sandbox_kills  # noqa: E402

# fail, then resume beside the crash sweep; its sandbox figure beside the sandbox kill points
FIGURES: list[Callable[[bool], Figure]] = [crash_points, fail_then_resume, torn_writes, lock_races, hostile_input,
                                           tampering, secrets_kept_out, approvals, sandbox_fail_then_resume,
                                           sandbox_kills]
