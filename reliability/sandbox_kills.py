"""Kill points over the shipped runbooks in the sandbox (issue #9, "Crash at every point", second half).

The synthetic sweep (:func:`reliability.suite.crash_points`) kills a made-up runbook at every
point. This figure does the same to the real ones, production-release and rollback-fast, in
the sandbox, where the side effects are real: pull requests, merges, tags and releases in the
origin and the GitHub stand-in, task definitions, deployments and notifications in moto.

1. A clean run of each flow, each in its own state home (so its own sandbox): production-release
   in the ``healthy`` scenario; production-release in ``bad-release``, whose failed verification
   offers rollback-fast, accepted and run linked (with post-rollback after it), as the tests and
   an operator do. Its journals give the kill points: every action (``item.intent``) at
   before-intent, after-intent and after-effect, plus the record types the ledger anchored, each
   kept for the runbook whose run reaches it first in the process (the hook names ``STEP.ITEM``,
   not the run). They also give the waits: the longest steps, where real SIGKILLs land. The world
   after the run is the clean side-effect count.
2. A sample of the points, spread evenly over both runbooks' list, each in a fresh state home and
   sandbox: killed there with ``RUNBOOK_CRASH_AT`` (the engine SIGKILLs itself), resumed with
   ``invoke runbook.resume --run-id ID`` non-interactively with the same answers, the world counted
   again: a count above the clean run's is a repeated side effect, one below it an effect that never
   happened. The resumed run must end as the clean one did (same exit code, every run's final status
   and every step's the same, no step the clean run never ran) and ``audit.verify`` must pass.
3. Real SIGKILLs: the ``invoke`` process is killed with ``os.kill(pid, SIGKILL)`` halfway through
   one of the longest steps of the clean run (the record before it polled from the journal), then
   resumed and counted likewise.

Asked about an action it cannot see (no probe, no verify: ``aws.sns_publish``), the scripted
operator looks, as the prompt tells them to, and answers skip when the effect is there, retry
when it is not.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .common import Figure, timed, verify_home

REPO = Path(__file__).resolve().parent.parent
ANSWERS = REPO / "answers" / "sandbox"
OPERATOR = "release@menotime.example"
POINTS = ("before-intent", "after-intent", "after-effect")
RUN_ID = re.compile(r"\d{8}T\d{6}\.\d{6}Z-[0-9a-f]{6}")
RUN_TIMEOUT = 420.0
# kill points spread over both runbooks' candidates (about 75), and real SIGKILLs in the longest waits
SAMPLE = {"short": {"points": 3, "sigkills": 1}, "full": {"points": 20, "sigkills": 4}}


@dataclass(frozen=True)
class Flow:
    """One way of running a runbook in the sandbox; ``family`` picks its runs out of a state home."""

    label: str                   # the runbook the kill points belong to
    scenario: str
    top: str                     # the runbook invoked (and resumed)
    answers: Path
    linked: bool                 # the label's runbook runs linked under ``top`` (and its own children)

    def family(self, run: "Run") -> bool:
        return run.parent is not None if self.linked else run.parent is None


FLOWS = (
    Flow("production-release", "healthy", "production-release", ANSWERS / "production-release.yaml", False),
    Flow("rollback-fast", "bad-release", "production-release", ANSWERS / "production-release.yaml", True),
)


@dataclass
class Run:
    run_id: str
    runbook: str
    parent: dict[str, Any] | None
    records: list[dict[str, Any]]


@dataclass(frozen=True)
class Wait:
    """A step of a clean run that took a while: where a real SIGKILL lands."""

    runbook: str
    step: str
    seconds: float            # how long it took in the clean run
    mark: str                 # the record written just before it started (``TYPE STEP.ITEM``)
    left: float               # how long the process still ran after it started

    @property
    def delay(self) -> float:
        """When to kill after the mark is on disk: halfway through the step (at most 10 s)."""
        return round(min(self.seconds / 2, 10.0), 1)


@dataclass
class Clean:
    flow: Flow
    code: int
    statuses: dict[str, str]
    counts: dict[str, int]
    steps: dict[str, str]                               # "RUNBOOK STEP" -> final status
    points: list[str]                                   # "STEP.ITEM:POINT" and "anchor:TYPE"
    waits: list[Wait]                                   # longest first
    seconds: float
    problem: str = ""


@dataclass
class Case:
    flow: Flow
    label: str                                          # the kill point or "SIGKILL in STEP"
    problem: str = ""
    repeated: dict[str, int] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)
    completed: bool = False
    chain: bool | None = None                          # None: not verified (the kill never happened)
    notes: list[str] = field(default_factory=list)     # what the operator saw, what the resume had to do


# -- running ---------------------------------------------------------------------------------------

def _env(flow: Flow, home: Path) -> dict[str, str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("RUNBOOK_")}
    full.update({"RUNBOOK_ROOT": str(REPO), "RUNBOOK_HOME": str(home), "NO_COLOR": "1",
                 "RUNBOOK_OPERATOR": OPERATOR, "RUNBOOK_SANDBOX_SCENARIO": flow.scenario})
    return full


def _start_args(flow: Flow) -> list[str]:
    return ["runbook", flow.top, "--env", "sandbox", "--answers", str(flow.answers), "--non-interactive"]


def _resume_args(run_id: str, answers: Path) -> list[str]:
    return ["runbook.resume", "--run-id", run_id, "--answers", str(answers), "--non-interactive"]


def _run(flow: Flow, home: Path, args: list[str], log: Path, extra: dict[str, str] | None = None,
         kill_when: Callable[[], float | None] | None = None) -> int:
    """Run ``invoke ARGS`` in its own process group; returns its exit code (-9 when killed).

    ``kill_when`` is polled while it runs: once it returns a delay, the process is SIGKILLed that
    many seconds later (a real ``os.kill``, not the engine's hook). Whatever the process left in its
    group is killed too; the sandbox runs in a session of its own and stays up.
    """
    env = _env(flow, home)
    env.update(extra or {})
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "invoke", *args], cwd=REPO, env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        end = time.monotonic() + RUN_TIMEOUT
        kill_at: float | None = None
        while proc.poll() is None:
            if time.monotonic() > end:
                raise TimeoutError(f"`invoke {' '.join(args[:2])}` still running after {RUN_TIMEOUT:.0f} s")
            if kill_when is not None and kill_at is None:
                delay = kill_when()
                if delay is not None:
                    kill_at = time.monotonic() + delay
            if kill_at is not None and time.monotonic() >= kill_at:
                os.kill(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.1)
        return proc.wait()
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        try:
            os.killpg(proc.pid, signal.SIGKILL)      # helpers it started (git, pytest), if any outlived it
        except (ProcessLookupError, PermissionError):
            pass


def _runs(home: Path) -> list[Run]:
    runs = []
    for journal in sorted((home / "runs").glob("*/journal.jsonl")):
        records = []
        for line in journal.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                break                                   # a torn tail: the resume cuts it off
        if records and records[0]["type"] == "run.started":
            data = records[0]["data"]
            runs.append(Run(records[0]["run"], data["runbook"], data.get("parent"), records))
    return runs


def _statuses(runs: list[Run]) -> dict[str, str]:
    from runbook.state import derive

    return {r.runbook: derive(r.records).status.value for r in runs}


def _steps(runs: list[Run]) -> dict[str, str]:
    """``RUNBOOK STEP -> final status`` of every step every run reached."""
    from runbook.state import derive

    return {f"{r.runbook} {sid}": step.status.value for r in runs for sid, step in derive(r.records).steps.items()}


def step_changes(clean: dict[str, str], found: dict[str, str]) -> list[str]:
    """How a resumed flow's steps differ from the clean run's: run, never reached, or ended otherwise."""
    out = [f"ran {k} ({v})" for k, v in found.items() if k not in clean]
    out += [f"never reached {k}" for k in clean if k not in found]
    out += [f"{k} {clean[k]} -> {found[k]}" for k in clean if k in found and clean[k] != found[k]]
    return out


def _why(runs: list[Run]) -> str:
    """Each unsuccessful run's recorded reason, else the log's last lines."""
    from runbook.state import derive

    found = []
    for run in runs:
        state = derive(run.records)
        if state.status.value != "succeeded":
            found.append(f"{run.runbook} {state.status.value}" + (f": {state.reason[:240]}" if state.reason else ""))
    return "; ".join(found)


def _tail(log: Path) -> str:
    text = log.read_text(errors="replace") if log.exists() else ""
    return " | ".join(line.strip() for line in text.strip().splitlines()[-3:])[-400:]


def _verify(home: Path) -> bool:
    code, _ = verify_home(REPO, home)       # one at a time: verify_home holds its own lock
    return code == 0


def _down(home: Path) -> None:
    from runbook.sandbox import control

    try:
        control.down(home)
    except Exception:  # noqa: BLE001 - stopping must not hide the case's own result
        pass


# -- the world's side effects ------------------------------------------------------------------------

def _aws(state: dict[str, Any], service: str) -> Any:
    import boto3

    return boto3.client(service, endpoint_url=state["aws"]["endpoint_url"], region_name=state["aws"]["region"],
                        aws_access_key_id="testing", aws_secret_access_key="testing")  # nosec B106 - moto


def _notifications(state: dict[str, Any]) -> list[list[Any]]:
    """Every message published to the sandbox's topic (moto keeps them; SNS itself cannot be asked)."""
    with urllib.request.urlopen(state["aws"]["endpoint_url"] + "/moto-api/data.json", timeout=60) as resp:  # nosec B310
        data = json.loads(resp.read())
    topic = state["world"]["topic_arn"]
    return [list(n) for t in data.get("sns", {}).get("Topic", []) if t.get("arn") == topic
            for n in t.get("sent_notifications") or []]


def _github(state: dict[str, Any], path: str) -> Any:
    gh = state["github"]
    token = next(t for t, login in gh["tokens"].items() if login == gh["operator"])
    req = urllib.request.Request(f"{gh['base_url']}/repos/{gh['repo']}{path}",
                                 headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=30) as resp:  # nosec B310 - the sandbox's loopback stand-in
        return json.loads(resp.read())


def _git(remote: str, *args: str) -> str:
    return subprocess.run(["git", "--git-dir", remote, *args], capture_output=True, text=True, check=True,
                          timeout=60).stdout


def world_counts(home: Path) -> dict[str, int]:
    """Count what runs leave behind in the sandbox of HOME: ``"place: what" -> n``.

    Names that carry a run id (``rollback/RUN``, ``revert/RUN``) are counted under ``RUN``, so
    two worlds made by different runs compare. Metrics and logs (the app's traffic) are left out.
    """
    from runbook.sandbox import control

    state = control.read_state(home)
    if state is None:
        raise RuntimeError(f"no sandbox state under {home}")
    counts: dict[str, int] = {}
    world = state["world"]
    # moto
    ecs = _aws(state, "ecs")
    tds: list[str] = []
    for status in ("ACTIVE", "INACTIVE"):      # moto reads status=ALL literally
        for page in ecs.get_paginator("list_task_definitions").paginate(familyPrefix=world["family"], status=status):
            tds.extend(page["taskDefinitionArns"])
    counts["moto: task definitions registered"] = len(tds)
    service = ecs.describe_services(cluster=world["cluster"], services=[world["service"]])["services"][0]
    deployments = {d["id"] for d in service["deployments"]}
    for event in service.get("events", []):
        deployments.update(re.findall(r"\(deployment ([^)\s]+)\)", event["message"]))
    counts["moto: ECS deployments (service updates)"] = len(deployments)
    ecr = _aws(state, "ecr")
    counts["moto: ECR images"] = sum(len(ecr.list_images(repositoryName=r["repositoryName"])["imageIds"])
                                     for r in ecr.describe_repositories()["repositories"])
    sent = _notifications(state)
    counts["moto: SNS messages published"] = len(sent)
    # the origin
    remote = state["git"]["remote"]
    refs = [line.split() for line in _git(remote, "for-each-ref", "--format=%(refname) %(objecttype)").splitlines()]
    counts["origin: branches"] = sum(1 for name, _ in refs if name.startswith("refs/heads/"))
    counts["origin: tags"] = sum(1 for name, _ in refs if name.startswith("refs/tags/"))
    counts["origin: annotated tags"] = sum(1 for name, kind in refs if name.startswith("refs/tags/") and kind == "tag")
    counts["origin: commits (all refs)"] = int(_git(remote, "rev-list", "--all", "--count").strip() or 0)
    for name, _ in refs:
        if name.startswith("refs/heads/"):
            counts[f"origin: commits on {RUN_ID.sub('RUN', name[len('refs/heads/'):])}"] = \
                int(_git(remote, "rev-list", "--count", name).strip())
    # the GitHub stand-in
    pulls = _github(state, "/pulls?state=all")
    counts["github: pull requests"] = len(pulls)
    counts["github: merged pull requests"] = sum(1 for p in pulls if p.get("merged"))
    counts["github: reviews"] = sum(len(_github(state, f"/pulls/{p['number']}/reviews")) for p in pulls)
    issues = _github(state, "/issues?state=all")
    counts["github: issues"] = sum(1 for i in issues if "pull_request" not in i)
    counts["github: comments"] = sum(int(i.get("comments") or 0) for i in issues)
    counts["github: labels on issues and pulls"] = sum(len(i.get("labels") or []) for i in issues)
    counts["github: labels"] = len(_github(state, "/labels"))
    counts["github: releases"] = len(_github(state, "/releases"))
    counts["github: workflow runs"] = int(_github(state, "/actions/runs").get("total_count", 0))
    return counts


def compare(clean: dict[str, int], found: dict[str, int]) -> tuple[dict[str, int], dict[str, int]]:
    """(repeated, missing): counts above the clean run's, and below it."""
    repeated = {k: found.get(k, 0) - clean.get(k, 0) for k in sorted(set(clean) | set(found))
                if found.get(k, 0) > clean.get(k, 0)}
    missing = {k: clean.get(k, 0) - found.get(k, 0) for k in sorted(set(clean) | set(found))
               if found.get(k, 0) < clean.get(k, 0)}
    return repeated, missing


# -- kill points from a clean run --------------------------------------------------------------------

def kill_points(runs: list[Run], ledger: list[dict[str, Any]], flow: Flow) -> list[str]:
    """Every action of the flow's runs at each point, then the anchored record types, in run order.

    The hook fires at the first ``STEP.ITEM`` (or anchored type) the process reaches, whichever
    run it is in: a point is the flow's when its first occurrence is in one of the flow's runs.
    """
    by_id = {r.run_id: r for r in runs}
    intents = sorted(((rec["time"], rec["seq"], run, rec["data"]) for run in runs for rec in run.records
                      if rec["type"] == "item.intent"), key=lambda t: (t[0], t[1]))
    first: dict[str, Run] = {}
    for _, _, run, data in intents:
        first.setdefault(f"{data['step']}.{data['item']}", run)
    points = [f"{target}:{point}" for target, run in first.items() if flow.family(run) for point in POINTS]
    anchored: dict[str, Run] = {}
    for entry in ledger:
        run = by_id.get(entry.get("run", ""))
        if entry.get("type") == "run.anchor" and run is not None and 0 < entry["length"] <= len(run.records):
            anchored.setdefault(run.records[entry["length"] - 1]["type"], run)
    points += [f"anchor:{kind}" for kind, run in anchored.items() if flow.family(run)]
    return points


def waits(runs: list[Run], flow: Flow) -> list[Wait]:
    """The flow's steps by clean duration, longest first, each with the record written before it.

    The engine commits a check's records with its step's end, so a step's own start is not on
    disk while it runs; the record before it is (the previous step's anchored end).
    """
    from datetime import datetime

    def at(rec: dict[str, Any]) -> float:
        return datetime.fromisoformat(rec["time"].replace("Z", "+00:00")).timestamp()

    last = max((at(rec) for run in runs for rec in run.records), default=0.0)
    found = []
    for run in runs:
        if not flow.family(run):
            continue
        started: dict[str, tuple[float, str]] = {}
        for n, rec in enumerate(run.records):
            if rec["type"] == "step.started" and n > 0:
                started[rec["data"]["step"]] = (at(rec), _mark(run.records[n - 1]))
            elif rec["type"] == "step.finished" and rec["data"]["step"] in started:
                begun, mark = started[rec["data"]["step"]]
                found.append(Wait(run.runbook, rec["data"]["step"], at(rec) - begun, mark, last - begun))
    return sorted(found, key=lambda w: -w.seconds)


def _mark(rec: dict[str, Any]) -> str:
    data = rec.get("data") or {}
    return f"{rec['type']} {data.get('step', '')}.{data.get('item', '')}"


def spread(items: list[Any], n: int) -> list[Any]:
    """N items at even steps through the list, ending with the last one (all of them when N >= len)."""
    if n <= 0 or not items:
        return []
    if n >= len(items):
        return list(items)
    return [items[round((k + 1) * len(items) / n) - 1] for k in range(n)]


def _ledger(home: Path) -> list[dict[str, Any]]:
    path = home / "ledger.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def clean_run(flow: Flow, base: Path) -> Clean:
    """The flow once without a kill: its exit code, final statuses, world counts and kill points."""
    case = base / f"clean-{flow.label}"
    case.mkdir(parents=True)
    home = case / "home"
    started = time.monotonic()
    try:
        code = _run(flow, home, _start_args(flow), case / "run.log")
        runs = _runs(home)
        clean = Clean(flow, code, _statuses(runs), world_counts(home), _steps(runs),
                      kill_points(runs, _ledger(home), flow), waits(runs, flow), 0.0)
        mine = [r for r in runs if flow.family(r)]
        if not mine or any(clean.statuses[r.runbook] != "succeeded" for r in mine) or code not in (0, 1):
            clean.problem = f"the clean run exited {code}: {_why(runs) or _tail(case / 'run.log')}"
        elif not _verify(home):
            clean.problem = "audit.verify failed on the clean run"
    except Exception as exc:  # noqa: BLE001 - reported as the figure's failure
        clean = Clean(flow, -1, {}, {}, {}, [], [], 0.0, f"the clean run raised {type(exc).__name__}: {exc}")
    finally:
        _down(home)
    clean.seconds = time.monotonic() - started
    return clean


# -- one kill, one resume ----------------------------------------------------------------------------

def _prefix(run: Run, by_id: dict[str, Run]) -> str:
    """The answers-file prefix of a linked run's prompt ids (``run.on_failure/post-rollback/``)."""
    parts = []
    while run.parent:
        parts.append(run.parent["step"])
        parent = by_id.get(run.parent["run"])
        if parent is None:
            break
        run = parent
    return "".join(p + "/" for p in reversed(parts))


def _look(home: Path, run: Run, intent: dict[str, Any]) -> bool | None:
    """What an operator sees when they look for an action's effect; None when they cannot look."""
    from runbook.sandbox import control

    if intent.get("uses") != "aws.sns_publish":
        return None
    state = control.read_state(home)
    if state is None:
        return None
    subject = (intent.get("args") or {}).get("subject")
    for _mid, _message, sent_subject, attributes, _group in _notifications(state):
        run_id = ((attributes or {}).get("runbook.run_id") or {}).get("Value")
        if run_id == run.run_id and (not subject or sent_subject == subject):
            return True
    return False


def looked_answers(flow: Flow, home: Path, dest: Path) -> tuple[Path, list[str]]:
    """The flow's answers plus, for each interrupted action nobody can probe, what the operator saw."""
    import yaml

    from runbook import plugins
    from runbook.state import derive

    data = yaml.safe_load(flow.answers.read_text())
    registry = plugins.load(REPO)
    runs = _runs(home)
    by_id = {r.run_id: r for r in runs}
    notes = []
    for run in runs:
        for sid, step in derive(run.records).steps.items():
            for key, item in step.items.items():
                interrupted = item.intent is not None and _cut_off(run.records, sid, key)
                plugin = registry.get(str((item.intent or {}).get("uses", "")))
                if not interrupted or plugin is None or plugin.probe is not None or not plugin.side_effect:
                    continue
                there = _look(home, run, item.intent or {})
                if there is None:
                    continue
                pid = f"{_prefix(run, by_id)}{sid}.{key}.on_fail"
                data.setdefault("answers", {})[pid] = (
                    {"choice": "skip", "reason": "looked: the effect is there"} if there else {"choice": "retry"})
                notes.append(f"{pid}: the operator looked, {'there: skip' if there else 'absent: retry'}")
    dest.write_text(yaml.safe_dump(data, sort_keys=False))
    return dest, notes


def _cut_off(records: list[dict[str, Any]], step: str, item: str) -> bool:
    """Is the item's latest intent newer than its latest result (the action was cut off)?"""
    seqs = {rec["type"]: rec["seq"] for rec in records
            if rec["type"] in ("item.intent", "item.result") and rec["data"].get("step") == step
            and rec["data"].get("item") == item}
    return seqs.get("item.intent", -1) > seqs.get("item.result", -1)


def kill_case(clean: Clean, base: Path, point: str | None = None,
              wait: Wait | None = None) -> Case:
    """Kill the flow at POINT (the engine's hook) or halfway through WAIT (a real SIGKILL); resume; count."""
    flow = clean.flow
    label = point or (f"SIGKILL {wait.delay:g} s into {wait.runbook} {wait.step}" if wait else "?")
    result = Case(flow, label)
    case = base / re.sub(r"[^A-Za-z0-9]+", "_", f"{flow.label}-{label}")
    case.mkdir(parents=True)
    home = case / "home"
    log = case / "run.log"
    try:
        if point:
            first = _run(flow, home, _start_args(flow), log, extra={"RUNBOOK_CRASH_AT": point})
        else:
            assert wait is not None

            def reached() -> float | None:
                for run in _runs(home) if (home / "runs").exists() else []:
                    if run.runbook == wait.runbook and any(_mark(r) == wait.mark for r in run.records):
                        return wait.delay
                return None

            first = _run(flow, home, _start_args(flow), log, kill_when=reached)
        if first != -signal.SIGKILL:
            result.problem = f"the kill point was not reached (exit {first}): {_tail(log)}"
            return result
        answers, result.notes = looked_answers(flow, home, case / "answers.yaml")
        top = next(r for r in _runs(home) if r.parent is None)
        # killed after its final record (before the ledger anchor): nothing to resume, exit 2, and the
        # resume writes the missing anchor, as `audit.verify` tells the operator
        done = _statuses([top])[top.runbook] == "succeeded"
        wanted = 2 if done else clean.code
        second = _run(flow, home, _resume_args(top.run_id, answers), log)
        after = _runs(home)
        statuses = _statuses(after)
        changes = step_changes(clean.steps, _steps(after))
        result.completed = second == wanted and statuses == clean.statuses and not changes
        if done:
            result.notes.append("it had finished: the resume wrote the missing ledger anchor")
        if second != wanted or statuses != clean.statuses:
            result.problem = (f"resume exited {second} (wanted {wanted}); runs {statuses} (clean: "
                              f"{clean.statuses}): {_why(after) or _tail(log)}")
        if changes:
            result.problem = "; ".join(filter(None, [result.problem, "steps unlike the clean run's: "
                                                     + ", ".join(changes[:8])]))
        result.repeated, result.missing = compare(clean.counts, world_counts(home))
        result.chain = _verify(home)
        if "Traceback" in (log.read_text(errors="replace") if log.exists() else "") and not result.problem:
            result.problem = "a traceback was printed"
    except Exception as exc:  # noqa: BLE001 - a suite failure is the case's failure, not a traceback
        result.problem = f"the suite raised {type(exc).__name__}: {exc}"
    finally:
        _down(home)
    return result


# -- the figure --------------------------------------------------------------------------------------

def sandbox_kills(short: bool = True) -> "Figure":
    """Kill production-release and rollback-fast in the sandbox at points found from clean runs; resume; count."""
    fig = Figure("sandbox kill points")
    sample = SAMPLE["short" if short else "full"]
    with timed(fig), tempfile.TemporaryDirectory(prefix="rel-sandbox-kills-") as tmp:
        base = Path(tmp)
        with ThreadPoolExecutor(max_workers=2) as pool:
            cleans = list(pool.map(lambda f: clean_run(f, base), FLOWS))
        for clean in cleans:
            if clean.problem:
                fig.bad(f"{clean.flow.label}: {clean.problem}")
        good = [c for c in cleans if not c.problem]
        candidates = [(c, p) for c in good for p in c.points]
        # real SIGKILLs halfway through the longest steps, where the clean process ran on for 5 s after the kill
        longest = sorted(((c, w) for c in good for w in c.waits if w.seconds >= 2 and w.left - w.delay >= 5),
                         key=lambda cw: -cw[1].seconds)
        jobs: list[tuple[Clean, str | None, Wait | None]] = \
            [(c, p, None) for c, p in spread(candidates, sample["points"])] + \
            [(c, None, w) for c, w in longest[:sample["sigkills"]]]
        with ThreadPoolExecutor(max_workers=2) as pool:
            cases = list(pool.map(lambda j: kill_case(j[0], base, point=j[1], wait=j[2]), jobs))
        completed = chains = repeated = 0
        for case in cases:
            completed += case.completed
            chains += bool(case.chain)
            repeated += sum(case.repeated.values())
            problems = [case.problem] if case.problem else []
            if case.repeated:
                problems.append("repeated: " + ", ".join(f"{k} +{v}" for k, v in case.repeated.items()))
            if case.missing:
                problems.append("never happened: " + ", ".join(f"{k} -{v}" for k, v in case.missing.items()))
            if case.chain is False:
                problems.append("audit.verify failed")
            if problems:
                fig.bad(f"{case.flow.label} {case.label}: {'; '.join(problems)}")
            else:
                fig.ok()
        kills = sum(1 for _, p, _ in jobs if p is None)
        per_flow = ", ".join(f"{sum(1 for c, p, _ in jobs if c is cl and p)} of {len(cl.points)} over "
                             f"{cl.flow.label}" for cl in good)
        places = sorted({k.split(":")[0] for cl in good for k in cl.counts})
        fig.notes.insert(0, f"{len(cases)} kill points ({per_flow}, spread evenly over the clean runs' "
                            f"candidates; {kills} real SIGKILL{'s' if kills != 1 else ''} mid-wait), {completed} runs "
                            f"completed after resume, {repeated} side effects repeated, {chains}/{len(cases)} "
                            f"chains verify (worlds compared with a clean run's: "
                            f"{max((len(cl.counts) for cl in good), default=0)} counts in {', '.join(places)})")
        fig.notes.insert(1, "tried: " + "; ".join(
            f"{c.flow.label} {c.label}" + (f" [{', '.join(c.notes)}]" if c.notes else "")
            for c in cases))
        fig.notes.insert(2, "clean runs: " + "; ".join(
            f"{c.flow.label}: production-release in {c.flow.scenario}"
            + (", rollback-fast linked from its failure" if c.flow.linked else "")
            + f", exit {c.code} in {c.seconds:.0f} s" for c in cleans))
    return fig
