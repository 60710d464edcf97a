"""Fail, then resume: every way a step can fail, resumed without and then with the fix (DESIGN.md, "Resume").

For every applicable (step, way) pair of a runbook - a failing guard (a ``requires`` check), a
failing action, a failing verify check, a refused approval (a gate step), an operator abort (a
step with a confirm, or with manual items) - one case:

1. run with the failure injected (``RUNBOOK_FAIL_AT=STEP.ITEM``; an abort is an answer: the confirm
   answered false, a checklist item answered not done without a reason); the run stops at that
   step: exit 1 (failed or rolled-back), 4 for a refused approval (nobody answers ``STEP.on_fail``:
   it parks);
2. ``invoke runbook.resume`` once WITHOUT the fix: the same failure again at the same step, no other
   action run, no later step started (a run that already ended final - rolled-back, or succeeded
   with a deviation - refuses to resume, exit 2, and nothing changes);
3. ``invoke runbook.resume`` WITH the fix (injection removed, the confirm or item answered): the run
   ends with its honest status (see :func:`honest`).

After each case: no step finished ``succeeded`` while an item of it had failed without a later
passing result or a journaled skip; every side effect happened once (the synthetic project's
effect files, or the sandbox world counted against a clean run's); the top run's status and outcome
in ``invoke audit.list --json`` are the honest ones; ``audit.verify`` passes; no traceback.

Two figures: the synthetic runbook of ``reliability/project`` (``crashy``, with its linked
``crashy-child``), and ``production-release`` and ``rollback-fast`` in the sandbox, driven as
:mod:`reliability.sandbox_kills` drives them (production-release in the ``healthy`` scenario, and
in ``bad-release``, whose verification fails and whose accepted rollback-fast - with its linked
post-rollback - carries that flow's pairs).

Imports go one way: this module uses :mod:`reliability.common` and :mod:`reliability.sandbox_kills`;
:mod:`reliability.suite` lists its two figures beside the crash sweep and the sandbox kill points.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from . import sandbox_kills as sk
from .common import REPO, Figure, project_copy, timed, verify_home

WAYS = ("guard", "action", "verify", "approval", "abort")
FAIL_MARK = "RUNBOOK_FAIL_AT"
FINAL = ("succeeded", "rolled-back", "abandoned")
# the sandbox sample: an even spread over both flows' pairs (short: about 2 minutes with the clean runs)
SANDBOX_SAMPLE = {"short": 3, "full": None}
SANDBOX_WORKERS = 4           # sandbox runs mostly wait (reviews, the pipeline, rollouts): 4 fit 2 cores
OPERATOR = "tester@example.com"
SYNTHETIC_ANSWERS = {"prep.ready": {"done": True, "note": "staging checked"}, "prep.confirm": True,
                     "gate.approval": {"approvers": ["alice@example.com"]}}


@dataclass(frozen=True)
class Pair:
    """One (step, way) of one runbook, and what its case expects."""

    runbook: str               # the runbook whose step it is
    step: str                  # the step id as journaled (``inc.inner``, ``verification.health``)
    way: str                   # one of WAYS
    item: str                  # the failing item (``approval`` for a gate, ``confirm`` for a declined confirm)
    prompt: str = ""           # abort: the answers-file id of the prompt answered (with its run's prefix)
    declined: Any = None       # abort: the answer that aborts (false to a confirm, {choice: abort} to on_fail)
    final: str = "succeeded"   # the honest outcome in the end (audit.list's ``outcome`` of the top run)
    first_exit: int = 1        # the exit code of the failing run (and of the resume without the fix)
    once: bool = False         # the failure itself ends the run final (on_failure: continue): nothing to resume
    why: str = ""              # why that outcome is the honest one

    @property
    def target(self) -> str:
        return f"{self.step}.{self.item}"

    @property
    def inject(self) -> str:
        """The ``RUNBOOK_FAIL_AT`` of the failing runs ('' when the operator declines a confirm)."""
        return "" if self.way == "abort" and self.item == "confirm" else f"{self.runbook}/{self.target}"

    @property
    def asked(self) -> str:
        """The aborting prompt's id as its own run journals it (without the linked run's prefix)."""
        return self.prompt.rsplit("/", 1)[-1]

    @property
    def label(self) -> str:
        what = self.target if self.way != "abort" else f"declines {self.prompt}" if self.item == "confirm" \
            else f"{self.target} fails, {{choice: abort}} to {self.prompt}"
        return f"{self.runbook} {self.step} {self.way} ({what})"


# -- the pairs --------------------------------------------------------------------------------------

def _plan_steps(root: Path, runbook: str) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The resolved steps (includes expanded) and ``on_failure`` of RUNBOOK, from ``invoke runbook.show
    --json`` (the public plan, so the figure does not lean on the engine's internals)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNBOOK_")}
    env.update({"RUNBOOK_ROOT": str(root), "NO_COLOR": "1"})
    with tempfile.TemporaryDirectory(prefix="rel-fail-show-") as home:
        env["RUNBOOK_HOME"] = home
        proc = subprocess.run([sys.executable, "-m", "invoke", "runbook.show", runbook, "--json"], cwd=REPO,
                              capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"runbook.show {runbook} exited {proc.returncode}: {proc.stderr[-300:]}")
    plan = json.loads(proc.stdout)
    return plan["steps"], plan.get("on_failure")


def _items(step: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(section, key, item) in order; an item's key is its id, else SECTION-INDEX (as the journal has it)."""
    return [(section, str(item.get("id") or f"{section}-{i}"), item)
            for section in ("requires", "do", "verify") for i, item in enumerate(step.get(section) or [])]


def _needed_by_rollback(root: Path, on_failure: dict[str, Any] | None) -> str:
    """The step of the failing run whose outputs the on_failure runbook needs to find its target ('' for none).

    ``aws.ecs_rollback_target`` (rollback-fast's ``target`` step) rolls back to what the release recorded
    live before its merge only once the release has recorded what it deployed (its ``deployed_step``,
    ``deploy-wait.current`` by default): it never guesses, so before that the target is the operator's choice.
    """
    if not on_failure:
        return ""
    for step in _plan_steps(root, on_failure["runbook"])[0]:
        for _, _, item in _items(step):
            if item.get("uses") == "aws.ecs_rollback_target":
                return str((item.get("with") or {}).get("deployed_step") or "deploy-wait.current").split(".")[0]
    return ""


def honest(runbook_steps: list[str], step: str, on_failure: dict[str, Any] | None, linked_final: str | None,
           continued: bool, needed: str = "") -> tuple[str, str]:
    """The honest final outcome of a case, decided from the runbook, and why."""
    if continued and linked_final is not None:
        return (linked_final, "the step says on_failure: continue: a deviation of the linked run, which goes on at "
                              "once; the top run ends as in a clean run")
    if continued:
        return ("succeeded with 1 deviation(s)",
                "the step says on_failure: continue: its failure is a deviation and the run goes on at once")
    if linked_final is not None:
        return (linked_final, "a linked run's step: the top run ends as it does in a clean run once the "
                              "linked run finishes" + (" (the release is bad: rolled back)"
                                                       if linked_final == "rolled-back" else ""))
    after = (on_failure or {}).get("after")
    past = not after or (after in runbook_steps and runbook_steps.index(step) > runbook_steps.index(after))
    if on_failure and past:
        if needed in runbook_steps and runbook_steps.index(step) <= runbook_steps.index(needed):
            return ("failed", f"a failure after {after} offers {on_failure['runbook']} and the answers accept it, "
                              f"but the release has not recorded what it deployed ({needed}): the rollback does "
                              "not guess its target and stops for the operator's choice; fixed or not, the "
                              "release stays failed (its failed step is never re-run)")
        return ("rolled-back", f"a failure after {after or 'any step'} offers {on_failure['runbook']}, the answers "
                               "accept it and it succeeds (once the injection no longer hits it): rolled-back, final")
    return ("succeeded", "nothing changed the plan: fixed, the run finishes")


def pairs_of(root: Path, runbook: str, answers: dict[str, Any], prefix: str = "",
             linked_final: str | None = None, reached: set[str] | None = None) -> tuple[list[Pair], list[str]]:
    """Every applicable (step, way) of RUNBOOK and of the runbooks its ``run:`` steps link, in plan order.

    The failing item of a way: the last automated ``requires`` check (the ones before it pass), the
    last action (the ones before it succeed and must not repeat), the first verify check, the gate.
    An operator abort: a step with a confirm answers it false; a step with another prompt (manual
    items, a prompt approval) has no abort of its own (an item not done needs a reason, and is then a
    deviation, not an abort), so its first check (else its first action, or its gate) fails and its
    on_fail prompt is answered ``{choice: abort}``; a step of manual items only cannot be aborted from
    an answers file (not applicable). ``reached``: the steps a clean
    run started (a step skipped by its condition has no ways). Returns (pairs, notes on what is not
    applicable).
    """
    steps, on_failure = _plan_steps(root, runbook)
    order = [s["id"] for s in steps]
    needed = _needed_by_rollback(root, on_failure)
    pairs: list[Pair] = []
    notes: list[str] = []
    for step in steps:
        sid = step["id"]
        if reached is not None and f"{runbook} {sid}" not in reached:
            notes.append(f"{runbook} {sid}: never runs in a clean run (its condition skips it)")
            continue
        kind = step.get("kind", "task")
        final, why = honest(order, sid, on_failure, linked_final, step.get("on_failure") == "continue", needed)

        def pair(way: str, item: str, **extra: Any) -> Pair:
            first = 4 if way == "approval" else 0 if step.get("on_failure") == "continue" and way != "abort" \
                and linked_final is None else 1
            return Pair(runbook, sid, way, item, final=final, first_exit=first,
                        once=step.get("on_failure") == "continue", why=why, **extra)

        if kind == "approval":
            pairs.append(pair("approval", "approval"))
            if (step.get("approval") or {}).get("source") == "prompt":     # a prompt: the operator may abort
                pairs.append(pair("abort", "approval", prompt=f"{prefix}{sid}.on_fail", declined={"choice": "abort"}))
            continue
        if kind == "run":
            child = step["run"]["runbook"]
            more, more_notes = pairs_of(root, child, answers, f"{prefix}{sid}/",
                                        linked_final if linked_final is not None else final, reached)
            pairs += more
            notes += more_notes
            continue
        if kind != "task":
            continue
        entries = _items(step)
        guards = [k for sec, k, it in entries if sec == "requires" and "uses" in it]
        actions = [k for sec, k, it in entries if sec == "do" and "uses" in it]
        checks = [k for sec, k, it in entries if sec == "verify" and "uses" in it]
        manual = [k for sec, k, it in entries if "manual" in it]
        if guards:
            pairs.append(pair("guard", guards[-1]))
        if actions:
            pairs.append(pair("action", actions[-1]))
        if checks:
            pairs.append(pair("verify", checks[0]))
        if step.get("confirm"):
            pairs.append(pair("abort", "confirm", prompt=f"{prefix}{sid}.confirm", declined=False))
        elif manual and (guards or checks):
            check = (guards or checks)[0]
            pairs.append(pair("abort", check, prompt=f"{prefix}{sid}.{check}.on_fail", declined={"choice": "abort"}))
        elif manual and actions:
            pairs.append(pair("abort", actions[0], prompt=f"{prefix}{sid}.on_fail", declined={"choice": "abort"}))
        elif manual:
            notes.append(f"{runbook} {sid}: abort not applicable (manual items only: nothing in an answers file "
                         "aborts a checklist)")
    return pairs, notes


# -- journals -----------------------------------------------------------------------------------------

def failing_records(run: sk.Run, pair: Pair, since: int = 0) -> list[dict[str, Any]]:
    """The records of RUN (from record SINCE on) that show the pair's failure."""
    out = []
    for rec in run.records[since:]:
        data = rec.get("data") or {}
        if pair.way == "abort":
            answer = data.get("answer") or {}
            if rec["type"] == "prompt.answered" and data.get("id") == pair.asked \
                    and (answer.get("choice") == "abort" if pair.item != "confirm" else not answer.get("done")):
                out.append(rec)
        elif rec["type"] == "item.result" and data.get("step") == pair.step and data.get("item") == pair.item \
                and not data.get("passed") and FAIL_MARK in str(data.get("summary", "")):
            out.append(rec)
        elif pair.way == "approval" and rec["type"] == "prompt.answered" and data.get("kind") == "approval" \
                and data.get("id") == f"{pair.step}.approval" and FAIL_MARK in str(data.get("refused", "")):
            out.append(rec)
    return out


def passed_without_success(run: sk.Run) -> list[str]:
    """Steps journaled ``succeeded`` while one of their items had failed (a check, an action, a gate, a
    declined confirm or checklist item, a linked run) with no later passing result or journaled skip."""
    pending: dict[str, set[str]] = {}
    found = []
    for rec in run.records:
        data = rec.get("data") or {}
        kind, sid = rec["type"], data.get("step", "")
        if kind == "item.result":
            key = data.get("item", "")
            if data.get("passed") or data.get("skipped"):
                pending.get(sid, set()).discard(key)
            else:
                pending.setdefault(sid, set()).add(key)
        elif kind == "prompt.answered":
            pid = str(data.get("id", ""))
            step, _, key = pid.rpartition(".")
            answer = data.get("answer") or {}
            if data.get("kind") == "approval" and data.get("refused"):
                pending.setdefault(step, set()).add("approval")
            elif data.get("kind") in ("confirm", "manual"):
                if answer.get("done"):
                    pending.get(step, set()).discard(key)
                elif not answer.get("reason"):
                    pending.setdefault(step, set()).add(key)
        elif kind == "child.finished":
            if data.get("status") == "succeeded":
                pending.get(sid, set()).discard("linked run")
            else:
                pending.setdefault(sid, set()).add("linked run")
        elif kind == "step.finished":
            if data.get("status") == "skipped" and data.get("decision") == "skip":
                pending.pop(sid, None)               # a journaled skip with its reason: a deviation
            elif data.get("status") == "succeeded" and pending.get(sid):
                found.append(f"{run.runbook} {sid} succeeded after {', '.join(sorted(pending[sid]))} failed")
                pending.pop(sid, None)
    return found


def started_after(runs: list[sk.Run], pair: Pair, orders: dict[str, list[str]]) -> list[str]:
    """Steps started after the failing one: in the pair's run, and after the linking step in its parents."""
    by_id = {r.run_id: r for r in runs}
    out = []
    for run in runs:
        if run.runbook != pair.runbook:
            continue
        last, cur = pair.step, run    # type: str, sk.Run | None
        while cur is not None:
            order = orders.get(cur.runbook, [])
            limit = order.index(last) if last in order else len(order)
            for rec in cur.records:
                step = (rec.get("data") or {}).get("step", "")
                if rec["type"] == "step.started" and step in order and order.index(step) > limit:
                    out.append(f"{cur.runbook} {step}")
            if not cur.parent or cur.parent.get("step") == "run.on_failure":
                break                                # an on_failure run starts after its parent failed
            last, cur = cur.parent["step"], by_id.get(cur.parent["run"])
    return sorted(set(out))


def intents_since(runs: list[sk.Run], lengths: dict[str, int]) -> list[str]:
    """``STEP.ITEM`` of every action intent journaled after the given journal lengths."""
    return [f"{(rec['data'] or {}).get('step')}.{(rec['data'] or {}).get('item')}"
            for run in runs for rec in run.records[lengths.get(run.run_id, 0):] if rec["type"] == "item.intent"]


def stop_points(runs: list[sk.Run]) -> list[str]:
    """Where the unfinished runs stand: ``RUNBOOK STEP STATUS`` of each step that did not finish well."""
    from runbook.state import derive

    out = []
    for run in runs:
        state = derive(run.records)
        if state.status.value not in FINAL:
            out += [f"{run.runbook} {sid} {step.status.value}" for sid, step in state.steps.items()
                    if step.status.value in ("failed", "running")]
    return sorted(out)


def failures_since(runs: list[sk.Run], lengths: dict[str, int]) -> set[str]:
    """``RUNBOOK STEP`` of every failure journaled after the given lengths: a failed item, a refused
    approval, a declined confirm, an abort answered to an on_fail prompt, a failed linked run."""
    out = set()
    for run in runs:
        for rec in run.records[lengths.get(run.run_id, 0):]:
            data = rec.get("data") or {}
            answer = data.get("answer") or {}
            step = data.get("step") or str(data.get("id", "")).rsplit(".", 1)[0]
            declined = data.get("refused") or answer.get("choice") == "abort" \
                or (data.get("kind") == "confirm" and not answer.get("done"))
            if (rec["type"] == "item.result" and not data.get("passed") and not data.get("skipped")) \
                    or (rec["type"] == "prompt.answered" and declined) \
                    or (rec["type"] == "child.finished" and data.get("status") != "succeeded"):
                out.add(f"{run.runbook} {step}")
    return out


def top_status(runs: list[sk.Run]) -> str:
    from runbook.state import derive

    top = next((r for r in runs if r.parent is None), None)
    return derive(top.records).status.value if top else ""


# -- one case -----------------------------------------------------------------------------------------

@dataclass
class Driver:
    """How a case runs ``invoke``: the synthetic project or a sandbox flow."""

    name: str
    start: Callable[[Path, Path], list[str]]             # (case dir, answers) -> start args
    run: Callable[[Path, list[str], Path, dict[str, str]], int]   # (home, args, log, extra env) -> exit
    env: Callable[[Path], dict[str, str]]                 # the full environment of a command on HOME
    world: Callable[[Path], dict[str, int]]               # side-effect counts
    answers: dict[str, Any]                               # the answers file's content
    orders: dict[str, list[str]]                          # runbook -> step ids in plan order
    root: Path
    down: Callable[[Path], None] = lambda home: None


@dataclass
class Result:
    pair: Pair
    problems: list[str] = field(default_factory=list)
    exits: list[int] = field(default_factory=list)
    outcome: str = ""
    world: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    verified: bool = False


def _answers(driver: Driver, pair: Pair, fixed: bool, dest: Path) -> Path:
    data = json.loads(json.dumps(driver.answers))
    if pair.way == "abort" and not fixed:
        data.setdefault("answers", {})[pair.prompt] = pair.declined
    dest.write_text(yaml.safe_dump(data, sort_keys=False))
    return dest


def _audit_list(driver: Driver, home: Path) -> list[dict[str, Any]]:
    proc = subprocess.run([sys.executable, "-m", "invoke", "audit.list", "--json"], cwd=REPO, capture_output=True,
                          text=True, env=driver.env(home), stdin=subprocess.DEVNULL, timeout=120)
    try:
        return json.loads(proc.stdout)
    except ValueError:
        return []


def fail_case(driver: Driver, pair: Pair, base: Path) -> Result:
    """Fail, resume without the fix, resume with it; check what DESIGN.md says must hold."""
    result = Result(pair)
    started = time.monotonic()
    case = base / re.sub(r"[^A-Za-z0-9]+", "_", f"{driver.name}-{pair.runbook}-{pair.step}-{pair.way}")
    case.mkdir(parents=True)
    home = case / "home"
    log = case / "run.log"
    bad = result.problems.append
    inject = {"RUNBOOK_FAIL_AT": pair.inject} if pair.inject else {}
    try:
        # 1. the failure
        code = driver.run(home, driver.start(case, _answers(driver, pair, False, case / "declined.yaml")), log, inject)
        result.exits.append(code)
        runs = sk._runs(home)
        mine = [r for r in runs if r.runbook == pair.runbook]
        if code != pair.first_exit:
            bad(f"the failing run exited {code} (wanted {pair.first_exit}): {sk._why(runs) or sk._tail(log)}")
        if not any(failing_records(r, pair) for r in mine):
            bad(f"the failure never happened at {pair.target}" + (f": {sk._why(runs)}" if runs else ""))
        later = started_after(runs, pair, driver.orders)
        if later and not pair.once:
            bad(f"after the failure, later steps started: {', '.join(later[:6])}")
        top = next((r for r in runs if r.parent is None), None)
        if top is None:
            raise RuntimeError(f"no run was started: {sk._tail(log)}")
        final_after_first = top_status(runs) in FINAL
        lengths = {r.run_id: len(r.records) for r in runs}
        world1 = driver.world(home) if driver.name == "synthetic" else {}
        # 2. resume once without the fix: the same failure at the same step, nothing else
        code = driver.run(home, sk._resume_args(top.run_id, case / "declined.yaml"), log, inject)
        result.exits.append(code)
        runs2 = sk._runs(home)
        if final_after_first:
            grown = {r.run_id for r in runs2 if len(r.records) != lengths.get(r.run_id, -1)}
            if code != 2 or grown:
                bad(f"a {top_status(runs)} run resumed: exit {code} (wanted 2), journals written: {len(grown)}")
        else:
            # the same failure again at the same step: every unfinished run stops where it stopped, and a
            # failure is journaled again there (in the pair's run; or, when its accepted on_failure run had
            # stopped too, in that linked run, which is what a resume continues: the failed step of the
            # run that offered it is never re-run)
            stops, stops2 = stop_points(runs), stop_points(runs2)
            again = failures_since(runs2, lengths) & {" ".join(p.split(" ")[:2]) for p in stops2}
            if code != pair.first_exit:
                bad(f"the resume without the fix exited {code} (wanted {pair.first_exit}): "
                    f"{sk._why(runs2) or sk._tail(log)}")
            if stops2 != stops:
                bad(f"the resume without the fix stopped elsewhere: {stops2} (the failing run: {stops})")
            if not again:
                bad(f"the resume without the fix journaled no failure where it stopped ({stops2})")
            later = started_after(runs2, pair, driver.orders)
            if later:
                bad(f"the resume without the fix started later steps: {', '.join(later[:6])}")
            acted = [t for t in intents_since(runs2, lengths) if t != pair.target]
            if acted:
                bad(f"the resume without the fix ran other actions: {', '.join(acted[:6])}")
        if driver.name == "synthetic" and driver.world(home) != world1:
            bad(f"the resume without the fix changed the effects: {world1} -> {driver.world(home)}")
        # 3. resume with the fix
        lengths = {r.run_id: len(r.records) for r in runs2}
        code = driver.run(home, sk._resume_args(top.run_id, _answers(driver, pair, True, case / "fixed.yaml")), log, {})
        result.exits.append(code)
        runs3 = sk._runs(home)
        wanted = 2 if final_after_first else 0 if pair.final.startswith("succeeded") else 1
        if code != wanted:
            bad(f"the resume with the fix exited {code} (wanted {wanted}): {sk._why(runs3) or sk._tail(log)}")
        if final_after_first and any(len(r.records) != lengths.get(r.run_id, -1) for r in runs3):
            bad("a final run's journal grew on a resume")
        # after the case
        listed = {row.get("run"): row for row in _audit_list(driver, home)}
        row = listed.get(top.run_id) or {}
        result.outcome = str(row.get("outcome", ""))
        deviations = int(row.get("deviations") or 0)
        if result.outcome != pair.final:
            bad(f"ended {result.outcome or '(not listed)'} ({row.get('status')}, {deviations} deviation(s)); "
                f"honest: {pair.final} ({pair.why})")
        for run in runs3:
            for problem in passed_without_success(run):
                bad(problem)
        result.world = driver.world(home)
        result.verified = verify_home(driver.root, home)[0] == 0
        if not result.verified:
            bad("audit.verify failed")
        if "Traceback" in (log.read_text(errors="replace") if log.exists() else ""):
            bad("a traceback was printed")
    except Exception as exc:  # noqa: BLE001 - a suite failure is the case's failure, not a traceback
        bad(f"the suite raised {type(exc).__name__}: {exc}")
    finally:
        driver.down(home)
        result.seconds = time.monotonic() - started
    return result


def _tally(fig: Figure, results: list[Result], check_world: Callable[[Result], list[str]]) -> None:
    for res in results:
        problems = res.problems + check_world(res)
        label = f"{res.pair.label} exits {'/'.join(map(str, res.exits))}"
        if problems:
            fig.bad(f"{label}: {'; '.join(problems)}")
        else:
            fig.ok()


# -- the synthetic figure -------------------------------------------------------------------------------

def _synthetic_driver(root: Path) -> Driver:
    def run(home: Path, args: list[str], log: Path, extra: dict[str, str]) -> int:
        """``invoke ARGS`` as a user runs it: its own process, no terminal, the suite's operator."""
        full = env(home)
        full.update({"RUNBOOK_OPERATOR": OPERATOR, **extra})
        done = subprocess.run([sys.executable, "-m", "invoke", *args], cwd=REPO, capture_output=True, text=True,
                              env=full, timeout=120, stdin=subprocess.DEVNULL)
        with open(log, "a") as out:
            out.write(f"$ invoke {' '.join(args)}  [{extra}]\n{done.stdout}{done.stderr}\nexit {done.returncode}\n")
        return done.returncode

    def start(case: Path, answers: Path) -> list[str]:
        work = case / "work"
        work.mkdir(exist_ok=True)
        return ["runbook", "crashy", "--param", f"dir={work}", "--answers", str(answers), "--non-interactive"]

    def env(home: Path) -> dict[str, str]:
        full = {k: v for k, v in os.environ.items() if not k.startswith("RUNBOOK_")}
        full.update({"RUNBOOK_ROOT": str(root), "RUNBOOK_HOME": str(home), "NO_COLOR": "1"})
        return full

    def world(home: Path) -> dict[str, int]:
        work = home.parent / "work"
        return {p.stem: len(p.read_text().splitlines()) for p in sorted(work.glob("*.txt"))}

    orders = {name: _plan_steps(root, name)[0] for name in ("crashy", "crashy-child")}
    return Driver("synthetic", start, run, env, world, {"runbook": "crashy", "answers": dict(SYNTHETIC_ANSWERS)},
                  {k: [s["id"] for s in v] for k, v in orders.items()}, root)


def synthetic_pairs(root: Path, driver: Driver, base: Path) -> tuple[list[Pair], list[str], dict[str, int]]:
    """The synthetic runbook's pairs (steps a clean run reached) and the clean run's effect counts."""
    clean = base / "clean"
    clean.mkdir()
    home = clean / "home"
    answers = clean / "answers.yaml"
    answers.write_text(yaml.safe_dump(driver.answers))
    code = driver.run(home, driver.start(clean, answers), clean / "run.log", {})
    if code != 0:
        raise RuntimeError(f"the clean run exited {code}: {sk._tail(clean / 'run.log')}")
    reached = {k for k, v in sk._steps(sk._runs(home)).items() if v != "skipped"}
    pairs, notes = pairs_of(root, "crashy", driver.answers, reached=reached)
    return pairs, notes, driver.world(home)


def fail_then_resume(short: bool = True) -> Figure:
    """Every (step, way) of the synthetic runbook: fail, resume without the fix, resume with it."""
    fig = Figure("fail-then-resume")
    with timed(fig), tempfile.TemporaryDirectory(prefix="rel-fail-") as tmp:
        base = Path(tmp)
        root = project_copy(base)
        driver = _synthetic_driver(root)
        pairs, notes, clean = synthetic_pairs(root, driver, base)
        # each action of the synthetic runbook appends to its own file (``with: {file: DIR/NAME.txt}``)
        effects = {f"{step['id']}.{key}": Path(str((item.get("with") or {}).get("file", ""))).stem
                   for name in driver.orders for step in _plan_steps(root, name)[0]
                   for _, key, item in _items(step) if (item.get("with") or {}).get("file")}
        with ThreadPoolExecutor(max_workers=2) as pool:
            results = list(pool.map(lambda p: fail_case(driver, p, base), pairs))

        def check_world(res: Result) -> list[str]:
            # exactly once: every effect a clean run makes, once; the action that failed under
            # on_failure: continue never took effect (the hook fails it before its effect)
            wanted = dict(clean)
            if res.pair.once and res.pair.way == "action":
                wanted[effects[res.pair.target]] = 0
            found = {k: v for k, v in res.world.items() if v or k in wanted}
            wanted = {k: v for k, v in wanted.items() if v or k in found}
            return [] if found == wanted else [f"effects {found} (wanted {wanted})"]

        _tally(fig, results, check_world)
        ways = {w: sum(1 for p in pairs if p.way == w) for w in WAYS}
        fig.notes.insert(0, f"{len(pairs)} (step, way) pairs of crashy and its linked crashy-child ("
                            + ", ".join(f"{n} {w}" for w, n in ways.items() if n) + "), every one in both sweeps; "
                            f"{sum(1 for r in results if not r.problems and check_world(r) == [])} ended honestly "
                            f"with every effect once; " + "; ".join(notes))
        fig.notes.insert(1, "tried: " + "; ".join(f"{r.pair.step} {r.pair.way} -> {r.outcome or '?'}" for r in results))
    return fig


# -- the sandbox figure -----------------------------------------------------------------------------------

def _sandbox_driver(flow: sk.Flow, answers: dict[str, Any], orders: dict[str, list[str]]) -> Driver:
    def run(home: Path, args: list[str], log: Path, extra: dict[str, str]) -> int:
        return sk._run(flow, home, args, log, extra=extra)

    def start(case: Path, answers_file: Path) -> list[str]:
        return ["runbook", flow.top, "--env", "sandbox", "--answers", str(answers_file), "--non-interactive"]

    return Driver(flow.label, start, run, lambda home: sk._env(flow, home), sk.world_counts, answers, orders, REPO,
                  down=sk._down)


def sandbox_pairs(reached: dict[str, set[str]] | None = None
                  ) -> tuple[list[tuple[sk.Flow, Pair]], list[str], dict[str, list[str]]]:
    """production-release's pairs (healthy flow) and rollback-fast's with its linked post-rollback
    (bad-release flow: the release's verification fails, rollback-fast runs linked); in plan order.
    ``reached``: per flow, the steps its clean run started (a step its condition skips, such as the
    back-merge's pull request where develop needs no review, has no ways)."""
    release, rollback = sk.FLOWS
    answers = yaml.safe_load(release.answers.read_text())
    out: list[tuple[sk.Flow, Pair]] = []
    notes: list[str] = []
    pairs, more = pairs_of(REPO, "production-release", answers,
                           reached=(reached or {}).get(release.label))
    out += [(release, p) for p in pairs]
    notes += more
    on_failure = _plan_steps(REPO, "production-release")[1] or {}
    pairs, more = pairs_of(REPO, on_failure["runbook"], answers, prefix="run.on_failure/", linked_final="rolled-back",
                           reached=(reached or {}).get(rollback.label))
    out += [(rollback, p) for p in pairs]
    notes += more
    orders = {name: [s["id"] for s in _plan_steps(REPO, name)[0]]
              for name in ("production-release", "rollback-fast", "post-rollback")}
    return out, notes, orders


def sandbox_fail_then_resume(short: bool = True) -> Figure:
    """production-release and rollback-fast in the sandbox: fail at every (step, way), resume twice, count."""
    fig = Figure("sandbox fail-then-resume")
    with timed(fig), tempfile.TemporaryDirectory(prefix="rel-sandbox-fail-") as tmp:
        base = Path(tmp)
        with ThreadPoolExecutor(max_workers=len(sk.FLOWS)) as pool:     # the clean runs first: what they reach
            clean_runs = list(pool.map(lambda f: sk.clean_run(f, base), sk.FLOWS))
        reached = {c.flow.label: {k for k, v in c.steps.items() if v != "skipped"} for c in clean_runs}
        every, notes, orders = sandbox_pairs(reached)
        count = SANDBOX_SAMPLE["short" if short else "full"]
        chosen = sk.spread(every, count) if count else every
        only = os.environ.get("RUNBOOK_FAIL_RESUME_ONLY")      # STEP:WAY[,STEP:WAY...]: a few cases, to look
        if only:
            chosen = [(f, p) for f, p in every if f"{p.step}:{p.way}" in only.split(",")]
        release, rollback = sk.FLOWS
        drivers = {f.label: _sandbox_driver(f, yaml.safe_load(f.answers.read_text()), orders) for f in sk.FLOWS}
        jobs: list[Callable[[], Any]] = [functools.partial(fail_case, drivers[f.label], p, base) for f, p in chosen]
        with ThreadPoolExecutor(max_workers=SANDBOX_WORKERS) as pool:
            results: list[Result] = list(pool.map(lambda job: job(), jobs))
        cleans = {c.flow.label: c for c in clean_runs}
        for clean in cleans.values():
            if clean.problem:
                fig.bad(f"clean {clean.flow.label}: {clean.problem}")
        flow_of = {id(p): f for f, p in chosen}

        def check_world(res: Result) -> list[str]:
            """Every effect once, against the clean run that ends the same way: a succeeded release, the
            healthy release; a release rolled back from its own failure, the bad release with its rollback
            (each effect at most once there: the release's effects after its failing step never happen)."""
            if not res.world:
                return []
            flow = flow_of[id(res.pair)]
            ref = cleans[release.label if res.pair.final.startswith("succeeded") else rollback.label]
            if ref.problem:
                return ["no clean world to compare with"]
            bound = ref.counts
            if flow is release and res.pair.final == "rolled-back":
                # a release that failed late (after its notification, say) did all it did before, once,
                # and then its rollback: at most the healthy release's effects and the rollback's
                healthy = cleans[release.label].counts
                bound = {k: ref.counts.get(k, 0) + healthy.get(k, 0) for k in set(ref.counts) | set(healthy)}
            repeated, _ = sk.compare(bound, res.world)
            _, missing = sk.compare(ref.counts, res.world)
            out = ["repeated: " + ", ".join(f"{k} +{v}" for k, v in repeated.items())] if repeated else []
            partial = (flow is release and res.pair.final != "succeeded") or res.pair.once
            if missing and not partial:
                out.append("never happened: " + ", ".join(f"{k} -{v}" for k, v in missing.items()))
            return out

        _tally(fig, results, check_world)
        ways = {w: sum(1 for _, p in every if p.way == w) for w in WAYS}
        per = ", ".join(f"{sum(1 for f, _ in chosen if f is fl)} of {sum(1 for f, _ in every if f is fl)} over "
                        f"{fl.label if fl is release else 'rollback-fast (+post-rollback)'}" for fl in sk.FLOWS)
        fig.notes.insert(0, f"{len(chosen)} (step, way) pairs ({per}; all pairs: "
                            + ", ".join(f"{n} {w}" for w, n in ways.items() if n)
                            + "), each failed, resumed without and with the fix; worlds against clean runs: "
                            + ", ".join(f"{c.flow.label} exit {c.code} in {c.seconds:.0f} s" for c in cleans.values())
                            + ("; " + "; ".join(notes) if notes else ""))
        fig.notes.insert(1, "tried: " + "; ".join(
            f"{r.pair.label} -> {r.outcome or '?'} (exits {'/'.join(map(str, r.exits))}, {r.seconds:.0f} s)"
            for r in results))
    return fig


FAIL_FIGURES = [fail_then_resume, sandbox_fail_then_resume]
