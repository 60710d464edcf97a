"""The figures of `invoke bench`: one function per figure group, each returning ``Figure`` rows.

Every figure is printed with a baseline measured in the same run and the ratio the goal is
stated in (or an absolute goal where the issue gives one). Timings of commands are wall
times of ``python -m invoke ...`` subprocesses with ``RUNBOOK_ROOT``/``RUNBOOK_HOME`` set,
medians of several runs, so a busy machine shows up as spread, not as a wrong answer.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, TextIO

ROOT = Path(__file__).resolve().parent.parent
FIXTURE_VERSION = 2
AWS_LIKE = ("aws.", "git.", "github.", "http.")


@dataclass
class Figure:
    name: str
    value: float | None
    baseline: float | None = None
    ratio: float | None = None
    goal: str = ""
    ok: bool | None = None
    note: str = ""
    unit: str = "s"


def _ratio(name: str, value: float, baseline: float, limit: float, note: str = "", unit: str = "s") -> Figure:
    ratio = value / baseline if baseline else None
    return Figure(name, value, baseline, ratio, f"<= {limit:g}x", ratio is not None and ratio <= limit, note, unit)


def _under(name: str, value: float, limit: float, baseline: float | None = None, note: str = "",
           unit: str = "s") -> Figure:
    ratio = value / baseline if baseline else None
    goal = f"< {limit * 1000:.0f} ms" if unit == "s" and limit < 1 else f"< {limit:g} {unit}"
    return Figure(name, value, baseline, ratio, goal, value < limit, note, unit)


# -- helpers ---------------------------------------------------------------------------------

PYCACHE = Path(tempfile.gettempdir()) / "runbook-bench-pycache"


def env_for(home: Path | str, root: Path | str = ROOT, **extra: str) -> dict[str, str]:
    """The environment of a measured command: this project, a state home, and compiled
    modules cached (outside the checkout) as on an ordinary install, even where the
    calling shell sets PYTHONDONTWRITEBYTECODE."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    env.update({"RUNBOOK_ROOT": str(root), "RUNBOOK_HOME": str(home), "RUNBOOK_OPERATOR": "bench@example.com",
                "RUNBOOK_CACHE": str(Path(home).parent / "cache")})
    env.update(extra)
    return env


def invoke(args: list[str], env: dict[str, str] | None = None, cwd: Path | str = ROOT,
           check: bool = True) -> tuple[float, subprocess.CompletedProcess]:
    """Wall time of one ``python -m invoke ARGS`` and its result."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "invoke", *args], cwd=str(cwd), env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    took = time.perf_counter() - t0
    if check and proc.returncode != 0:
        raise RuntimeError(f"invoke {' '.join(args)} exited {proc.returncode}:\n{proc.stdout[-2000:]}\n"
                           f"{proc.stderr[-2000:]}")
    return took, proc


def median_of(fn: Callable[[], float], repeat: int) -> tuple[float, list[float]]:
    samples = [fn() for _ in range(repeat)]
    return statistics.median(samples), samples


def spread(samples: list[float]) -> str:
    return f"min {min(samples) * 1000:.0f} / max {max(samples) * 1000:.0f} ms over {len(samples)}"


def empty_tasks_dir(base: Path) -> Path:
    folder = base / "empty-tasks"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tasks.py").write_text("from invoke import task\n\n\n@task\ndef noop(c):\n    pass\n")
    return folder


def durable_write_time(folder: Path, count: int = 200) -> tuple[float, list[float]]:
    """One atomic durable write: temporary file, fsync, rename, folder fsync (the engine's own helper)."""
    from runbook.journal import atomic_write

    folder.mkdir(parents=True, exist_ok=True)
    data = b"x" * 200
    samples = []
    for n in range(count):
        t0 = time.perf_counter()
        atomic_write(folder / f"f{n % 10}", data, durable=True)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples), samples


# -- start-up ------------------------------------------------------------------------------

def startup(ctx: "Ctx") -> list[Figure]:
    base = empty_tasks_dir(ctx.tmp)
    home = ctx.tmp / "home-startup"
    env = env_for(home)
    n = ctx.repeat
    invoke(["--list"], env, ROOT)                       # warm the page cache and .pyc files
    invoke(["--list"], env, base)
    invoke(["runbook.validate"], env, ROOT)
    rows: dict[str, list[float]] = {"base": [], "list": [], "rb.list": [], "validate": []}
    for _ in range(n):                                   # interleaved, so noise hits all alike
        rows["base"].append(invoke(["--list"], env, base)[0])
        rows["list"].append(invoke(["--list"], env, ROOT)[0])
        rows["rb.list"].append(invoke(["runbook.list"], env, ROOT)[0])
        rows["validate"].append(invoke(["runbook.validate"], env, ROOT)[0])
    cold = [invoke(["runbook.validate"], env_for(home, RUNBOOK_CACHE=tempfile.mkdtemp(prefix="cache-", dir=ctx.tmp)),
                   ROOT)[0] for _ in range(ctx.size.few)]
    med = {k: statistics.median(v) for k, v in rows.items()}
    note = f"baseline `invoke --list` on a one-empty-task tasks.py, {spread(rows['base'])}"
    c = statistics.median(cold)
    return [
        _ratio("startup: invoke --list", med["list"], med["base"], 1.3, note),
        _ratio("startup: invoke runbook.list", med["rb.list"], med["base"], 2.0, spread(rows["rb.list"])),
        _ratio("startup: invoke runbook.validate", med["validate"], med["base"], 2.0,
               f"{spread(rows['validate'])}; a verdict is remembered in the cache folder (RUNBOOK_CACHE) by the digest of "
               f"every file it depends on"),
        Figure("startup: invoke runbook.validate, nothing remembered", c, med["base"], c / med["base"], "(reported)",
               None, f"a fresh state home: every schema meta-checked, every file validated; {spread(cold)}"),
    ]


# -- per-step overhead -----------------------------------------------------------------------

def steps_project(base: Path, counts: Iterable[int]) -> Path:
    root = base / "steps-project"
    (root / "runbooks").mkdir(parents=True, exist_ok=True)
    (root / "environments").mkdir(exist_ok=True)
    for count in counts:
        lines = [f"name: steps{count}", f"title: {count} steps of core.equals", "lock: none", "steps:"]
        for i in range(count):
            lines += [f"  - id: s{i:05d}", f"    title: step {i}", "    verify:",
                      "      - uses: core.equals", "        with: {actual: 1, expected: 1}"]
        (root / "runbooks" / f"steps{count}.yaml").write_text("\n".join(lines) + "\n")
    return root


def per_step(ctx: "Ctx") -> list[Figure]:
    big = ctx.size.steps
    root = steps_project(ctx.tmp, [1, big])
    repeat = max(ctx.size.few, ctx.repeat // 2)

    def one(count: int) -> float:
        home = Path(tempfile.mkdtemp(prefix="home-", dir=ctx.tmp))
        took, _ = invoke(["runbook", f"steps{count}", "--non-interactive"], env_for(home, root), ROOT)
        shutil.rmtree(home, ignore_errors=True)
        return took

    one(1)
    small, big_t = [], []
    for _ in range(repeat):
        small.append(one(1))
        big_t.append(one(big))
    per = (statistics.median(big_t) - statistics.median(small)) / (big - 1)
    write, samples = durable_write_time(Path(tempfile.mkdtemp(prefix="writes-", dir=ctx.tmp)),
                                        ctx.size.writes)
    note = (f"{big}-step run {statistics.median(big_t):.2f} s, 1-step {statistics.median(small) * 1000:.0f} ms "
            f"(medians of {repeat}); baseline: median of {len(samples)} atomic durable writes "
            f"(tmp, fsync, rename, folder fsync), {spread(samples)}")
    return [_ratio(f"per step ({big}-step core.equals, durable)", per, write, 3.0, note)]


# -- the journal at scale ------------------------------------------------------------------

def _run_records(run_id: str, start: datetime, rng: random.Random, per_run: int) -> list[dict[str, Any]]:
    """One run as the engine journals it: started, session, steps of intent/result, finished."""
    op = f"op{rng.randrange(20)}@example.com"
    t = start

    def rec(kind: str, data: dict[str, Any]) -> dict[str, Any]:
        nonlocal t
        t += timedelta(seconds=rng.uniform(0.2, 6))
        return {"time": t.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "run": run_id, "operator": op, "type": kind,
                "data": data}

    runbook = rng.choice(["production-release", "rollback-fast", "hotfix", "production-verification"])
    env = rng.choice(["production", "staging", "sandbox"])
    out = [rec("run.started", {"runbook": runbook, "title": runbook.replace("-", " "), "file": f"runbooks/{runbook}.yaml",
                               "environment": env, "digest": hashlib.sha256(run_id.encode()).hexdigest(),
                               "params": {"version": f"v1.{rng.randrange(40)}.{rng.randrange(10)}"},
                               "secret_hashes": {}, "lock": env, "lock_owner": run_id, "lock_epoch": 1,
                               "parent": None, "plugins": {}, "overlay": {}, "includes": {}}),
           rec("session.started", {"resume": False, "host": "bench", "pid": 4242, "operator": op})]
    step = 0
    while len(out) < per_run - 1:
        sid = f"step-{step}"
        out.append(rec("step.started", {"step": sid, "title": f"Step {step}", "instructions": ""}))
        out.append(rec("item.intent", {"step": sid, "item": "act", "uses": "aws.ecs_update_service",
                                       "args": {"cluster": "production", "service": "menotime-api"}}))
        out.append(rec("item.result", {"step": sid, "item": "act", "uses": "aws.ecs_update_service",
                                       "kind": "action", "passed": True, "summary": "service updated",
                                       "evidence": {"taskDefinition": "menotime-api-prod:3"}, "outputs": {},
                                       "duration_s": 0.12}))
        out.append(rec("step.finished", {"step": sid, "status": "succeeded"}))
        step += 1
    out = out[:per_run - 1]
    out.append(rec("run.succeeded", {}))
    return out


def build_fixture(folder: Path, runs: int, events: int, progress: TextIO | None = None) -> dict[str, Any]:
    """A state home of RUNS runs and EVENTS events written with the engine's ChainedFile and Ledger
    layout, durability off (no fsync) to build it in seconds; cached by its size."""
    from runbook.journal import ZERO, ChainedFile, ledger_fields
    from runbook.store import LocalStore

    marker = folder / "fixture.json"
    want = {"version": FIXTURE_VERSION, "runs": runs, "events": events}
    if marker.exists():
        info = json.loads(marker.read_text())
        if {k: info.get(k) for k in want} == want:
            return info
    if folder.exists():
        shutil.rmtree(folder)
    home = folder / "home"
    store = LocalStore(home, durable=False)
    ledger = ChainedFile(store.ledger.path, durable=False)
    rng = random.Random(7)
    per_run = events // runs
    end = datetime.now(timezone.utc).replace(microsecond=0)
    span = timedelta(days=60)
    t0 = time.perf_counter()
    newest = None
    for n in range(runs):
        start = end - span + span * n / runs
        run_id = start.strftime("%Y%m%dT%H%M%S.%fZ") + f"-{n:06x}"
        store.create_run(run_id)
        records = _run_records(run_id, start, rng, per_run)
        journal = store.journal(run_id)
        ledger.append([{"time": records[0]["time"], "type": "run.start", "run": run_id,
                        "runbook": records[0]["data"]["runbook"], "environment": records[0]["data"]["environment"],
                        "operator": records[0]["operator"], "parent": None}])
        records[0]["data"] = {"ledger": {"seq": ledger.length - 1, "hash": ledger.head}, **records[0]["data"]}
        anchors = []
        done = 0
        for i, rec in enumerate(records):         # group commit at step boundaries, as the engine does
            if rec["type"] in ("step.finished", "run.succeeded", "session.started"):
                journal.append(records[done:i + 1])
                done = i + 1
                anchors.append(ledger_fields({"type": "run.anchor", "run": run_id, "length": journal.length,
                                              "head": journal.head}))
        journal.append(records[done:])
        ledger.append(anchors)
        newest = records[-1]["time"]
        if progress is not None and n and n % max(1, runs // 10) == 0:
            progress.write(f"  fixture: {n}/{runs} runs ({time.perf_counter() - t0:.0f} s)\n")
    info = {**want, "home": str(home), "newest": newest, "build_s": round(time.perf_counter() - t0, 1),
            "ledger_records": ledger.length, "zero": ZERO == ZERO}
    marker.write_text(json.dumps(info))
    return info


def journal_scale(ctx: "Ctx") -> list[Figure]:
    from runbook.audit import verify
    from runbook.review import INDEX_VERSION, Index  # noqa: F401
    from runbook.store import LocalStore

    runs, events = ctx.size.runs, ctx.size.events
    folder = Path(ctx.fixture) if ctx.fixture else Path(tempfile.gettempdir()) / "runbook-bench-fixture"
    folder = folder / f"{runs}-{events}"
    t0 = time.perf_counter()
    info = build_fixture(folder, runs, events, ctx.progress)
    built = time.perf_counter() - t0
    home = Path(info["home"])
    store = LocalStore(home)
    paths = [store.journal_path(r) for r in store.run_ids()] + [store.ledger.path]

    def baseline() -> float:
        t = time.perf_counter()
        n = 0
        for p in paths:
            with open(p, "rb") as fh:
                for line in fh:
                    hashlib.sha256(line).hexdigest()
                    n += 1
        return time.perf_counter() - t

    def verify_all() -> float:
        t = time.perf_counter()
        report = verify(LocalStore(home))
        took = time.perf_counter() - t
        if not report.ok:
            raise RuntimeError(f"fixture does not verify: {report.problems[:3]}")
        return took

    repeat = ctx.size.few
    base_s, vals = [], []
    for _ in range(repeat):
        base_s.append(baseline())
        vals.append(verify_all())
    fixture_note = (f"{runs:,} runs, {events:,} events, {info['ledger_records']:,} ledger records, written with "
                    f"the engine's ChainedFile with durability OFF (built in {info['build_s']} s; "
                    f"{'cached' if built < info['build_s'] / 2 else 'fresh'})")
    figures = [_ratio("journal: audit.verify (everything)", statistics.median(vals), statistics.median(base_s), 2.0,
                      "baseline: read every journal and the ledger and SHA-256 each record one by one; "
                      + fixture_note)]

    # The index, rebuilt from scratch (reported), then warm commands over a 2-hour window.
    index = home / "index.json"
    index.unlink(missing_ok=True)
    t = time.perf_counter()
    Index(LocalStore(home)).summaries()
    rebuild = time.perf_counter() - t
    figures.append(Figure("journal: rebuild the run index from scratch", rebuild, None, None, "(reported)", None,
                          f"{runs:,} journals read into {index.name}"))

    newest = datetime.strptime(info["newest"], "%Y-%m-%dT%H:%M:%S.%fZ")
    since = (newest - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S")
    until = newest.strftime("%Y-%m-%dT%H:%M:%S")
    env = env_for(home)
    last = store.run_ids()[-1]
    empty = empty_tasks_dir(ctx.tmp)
    commands = {"audit.list --since (2h window)": (["audit.list", "--since", since, "--until", until],
                                                   "audit_list", {"since": since, "until": until}),
                "audit.show (one run)": (["audit.show", last], "audit_show", {"run_id": last}),
                "audit.timeline (2h window)": (["audit.timeline", "--since", since, "--until", until],
                                               "audit_timeline", {"since": since, "until": until})}
    for args, fn, kw in commands.values():
        invoke(args, env)                                   # warm (and the index up to date)
    own: dict[str, list[float]] = {k: [] for k in commands}
    wall: dict[str, list[float]] = {k: [] for k in commands}
    base_list = []
    for _ in range(ctx.repeat):
        base_list.append(invoke(["--list"], env, empty)[0])
        for k, (args, fn, kw) in commands.items():
            wall[k].append(invoke(args, env)[0])
            own[k].append(command_time(fn, kw, env))
    bl = statistics.median(base_list)
    for k in commands:
        figures.append(_under(f"journal: {k}", statistics.median(own[k]), 0.3, None,
                              f"the command's own time in a fresh process (importing the engine, reading, "
                              f"printing), without invoke's start-up; {spread(own[k])}"))
        w = statistics.median(wall[k])
        figures.append(Figure(f"journal: {k}, whole `invoke` command", w, bl, w / bl, "(reported)", None,
                              f"wall time incl. invoke start-up; baseline `invoke --list` on an empty tasks.py; "
                              f"{spread(wall[k])}"))
    return figures


def command_time(fn: str, kwargs: dict[str, Any], env: dict[str, str]) -> float:
    """The time of one `audit.*` command function in a fresh process, imports included."""
    code = ("import io, json, sys, time\n"
            "t = time.perf_counter()\n"
            "from pathlib import Path\n"
            "from runbook import audit_cli\n"
            "getattr(audit_cli, sys.argv[1])(Path(sys.argv[2]), out=io.StringIO(), **json.loads(sys.argv[3]))\n"
            "print(time.perf_counter() - t)\n")
    out = subprocess.run([sys.executable, "-c", code, fn, str(ROOT), json.dumps(kwargs)], cwd=str(ROOT), env=env,
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{fn}: {out.stderr[-1500:]}")
    return float(out.stdout.strip().splitlines()[-1])


# -- rollback in the sandbox -----------------------------------------------------------------

def rollback(ctx: "Ctx") -> list[Figure]:
    from runbook.journal import read_records

    home = Path(tempfile.mkdtemp(prefix="home-sandbox-", dir=ctx.tmp))
    env = env_for(home)
    # Compiled modules as on an ordinary install (pip compiles a package as it installs it; the
    # engine's own modules are written by its first command): import what the run imports before
    # its first AWS call, so a first benchmark on a machine does not time compiling them. Nothing
    # else is warmed: the cache folder (RUNBOOK_CACHE) stays empty, so the run finds nothing remembered.
    subprocess.run([sys.executable, "-c", "import jsonschema, yaml, runbook.cli, runbook.session, runbook.console\n"
                    "from runbook.plugins import load\nload()"], cwd=str(ROOT), env=env, check=True)
    invoke(["sandbox.up"], env)
    try:
        before = set(os.listdir(home / "runs")) if (home / "runs").exists() else set()
        t0 = time.time()
        p0 = time.perf_counter()
        _, proc = invoke(["runbook", "rollback-fast", "--env", "sandbox", "--param", "target=menotime-api-prod:1",
                          "--answers", "answers/sandbox/rollback-fast.yaml", "--non-interactive"], env, check=False)
        wall = time.perf_counter() - p0
    finally:
        invoke(["sandbox.down"], env, check=False)
    new = sorted(set(os.listdir(home / "runs")) - before) if (home / "runs").exists() else []
    records = [r for run in new for r in read_records(home / "runs" / run / "journal.jsonl")]
    if not records:
        raise RuntimeError(f"rollback-fast wrote no journal (exit {proc.returncode}): {proc.stderr[-2000:]}")
    first_aws = None
    outside = 0.0
    counted: dict[str, float] = {}
    for rec in records:
        data = rec.get("data") or {}
        uses = str(data.get("uses", ""))
        if uses.startswith("aws.") and rec["type"] in ("item.intent", "item.result") and first_aws is None:
            first_aws = datetime.strptime(rec["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
                tzinfo=timezone.utc).timestamp() - t0
            if rec["type"] == "item.result":
                first_aws -= float(data.get("duration_s") or 0)
        if rec["type"] == "item.result" and uses.startswith(AWS_LIKE):
            d = float(data.get("duration_s") or 0)
            outside += d
            counted[uses.split(".")[0]] = counted.get(uses.split(".")[0], 0) + d
    engine = wall - outside
    empty = empty_tasks_dir(ctx.tmp)
    bl = statistics.median([invoke(["--list"], env_for(home), empty)[0] for _ in range(ctx.size.few)])
    status = records[-1]["type"]
    why = ("; with no release run in this state home, rollback-fast stops at its migrations check after "
           "finding the target" if proc.returncode else "")
    note = (f"exit {proc.returncode} ({status}{why}), {len(new)} run(s), wall {wall:.2f} s, inside calls "
            + ", ".join(f"{k} {v:.2f} s" for k, v in sorted(counted.items())))
    return [_under("rollback-fast: command to first AWS call", first_aws if first_aws is not None else float("inf"),
                   1.0, bl, "baseline `invoke --list` on an empty tasks.py; " + note),
            _under("rollback-fast: engine's own time", engine, 0.5, bl,
                   "wall time minus item.result duration_s of aws/git/github/http items; an empty cache folder "
                   "(nothing remembered: every file validated, every plugin version computed)")]


# -- memory --------------------------------------------------------------------------------

def _peak_mb(args: list[str], env: dict[str, str], cwd: Path) -> float:
    code = ("import resource, subprocess, sys\n"
            "subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True)\n"
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
    out = subprocess.run([sys.executable, "-c", code, sys.executable, "-m", "invoke", *args], cwd=str(cwd), env=env,
                         capture_output=True, text=True, check=True).stdout
    return int(out.strip().splitlines()[-1]) / 1024


def memory(ctx: "Ctx") -> list[Figure]:
    home = Path(tempfile.mkdtemp(prefix="home-mem-", dir=ctx.tmp))
    env = env_for(home)
    empty = empty_tasks_dir(ctx.tmp)
    value = statistics.median([_peak_mb(["runbook", "production-release", "--env", "sandbox", "--dry-run"], env, ROOT)
                               for _ in range(ctx.size.few)])
    base = statistics.median([_peak_mb(["--list"], env, empty) for _ in range(ctx.size.few)])
    return [_under("memory: production-release --env sandbox --dry-run", value, 150, base,
                   "peak RSS (ru_maxrss of the child); baseline `invoke --list` on an empty tasks.py", unit="MB")]


# -- all -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Size:
    """How big the fixtures are and how often each figure is measured."""
    name: str
    repeat: int          # samples of each start-up and journal command
    few: int             # samples of the figures measured a few times (cold start-up, memory, verify)
    steps: int           # the long runbook of the per-step figure
    runs: int            # runs in the journal fixture
    events: int          # events in the journal fixture
    writes: int          # durable writes in the per-step baseline


SIZES = {"full": Size("full", 9, 3, 1000, 10_000, 1_000_000, 200),
         "quick": Size("quick", 5, 3, 100, 1000, 100_000, 200),
         # `--tiny`: every figure once on tiny fixtures, to check the report's shape (tests/test_bench.py);
         # its numbers mean nothing.
         "tiny": Size("tiny", 1, 1, 5, 20, 400, 10)}


@dataclass
class Ctx:
    tmp: Path
    size: Size
    fixture: str | None
    progress: TextIO | None

    @property
    def repeat(self) -> int:
        return self.size.repeat


FIGURES: dict[str, Callable[[Ctx], list[Figure]]] = {
    "startup": startup, "per_step": per_step, "journal": journal_scale, "rollback": rollback, "memory": memory}


def run_all(size: str = "full", fixture: str | None = None, only: list[str] | None = None,
            progress: TextIO | None = None) -> list[Figure]:
    rows: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="runbook-bench-") as tmp:
        ctx = Ctx(Path(tmp), SIZES[size], fixture, progress)
        for name, fn in FIGURES.items():
            if only and name not in only:
                continue
            if progress is not None:
                progress.write(f"{name}...\n")
                progress.flush()
            t = time.perf_counter()
            try:
                rows.extend(fn(ctx))
            except Exception as exc:   # one broken figure must not hide the others
                rows.append(Figure(name, None, goal="(error)", ok=False, note=f"{type(exc).__name__}: {exc}"[:400]))
            if progress is not None:
                progress.write(f"  {name}: {time.perf_counter() - t:.1f} s\n")
    return rows
