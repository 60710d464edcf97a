"""Audit review, from the journals alone: list, show, timeline and export.

``RunView`` reads one run's records into what a reviewer asks about: steps with start,
duration and status; every check's summary; prompts with answers and who answered;
approvals with SHAs; skips with reasons; deviations from the runbook. The index
(``HOME/index.json``) only speeds up listing: an entry is rebuilt whenever its journal's
size or modification time changed, and verification never reads it.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable

from . import clock
from .errors import InputError
from .journal import atomic_write, read_records
from .store import LocalStore

INDEX_VERSION = 3


def parse_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)


def parse_since(text: str | None, flag: str = "--since", now: datetime | None = None) -> datetime | None:
    """``2h``, ``3d``, ``45m`` before now, or an ISO time."""
    if not text:
        return None
    now = now or clock.now()
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    if m:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[m.group(2)]
        return now - timedelta(**{unit: float(m.group(1))})
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InputError([f"<command line>: {text!r} is not a duration (2h, 3d) or an ISO time (at {flag})"]) from None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


@dataclass
class ItemView:
    key: str
    kind: str                     # check | action | manual | approval
    uses: str = ""
    passed: bool | None = None
    skipped: bool = False
    summary: str = ""
    reason: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0
    time: str = ""
    recovered: str = ""
    text: str = ""                # a manual item's text (the question the operator answered)
    answer: Any = None            # its answer: {done, note, link, reason}
    answered_by: str = ""
    answered_at: str = ""
    source: str = ""              # interactive, answers-file:..., --yes
    started: str = ""             # when the step turned to it (the previous event of its step)
    waited: bool = False          # a wait on another system (a poll, a rollout, a pipeline), not work

    @property
    def mark(self) -> str:
        """Its result in a word."""
        if self.skipped:
            return "not done" if self.kind == "manual" else "skipped"
        if self.kind == "manual":
            return "done" if self.passed else "not done"
        return "ok" if self.passed else "FAILED" if self.passed is False else "-"


@dataclass
class StepView:
    id: str
    title: str = ""
    status: str = "running"
    started: str = ""
    finished: str = ""
    reason: str = ""
    items: list[ItemView] = field(default_factory=list)
    prompts: list[dict[str, Any]] = field(default_factory=list)     # its confirm, approval, on_fail answers
    segments: list[dict[str, Any]] = field(default_factory=list)    # {start, end, kind: work|wait|person|gap, label}
    cursor: str = ""              # the time of its latest event (where the next segment starts)

    @property
    def name(self) -> str:
        """Its title, else its id."""
        return self.title or self.id

    @property
    def duration(self) -> float | None:
        if self.started and self.finished:
            return (parse_time(self.finished) - parse_time(self.started)).total_seconds()
        return None


@dataclass
class RunView:
    run_id: str
    runbook: str = ""
    title: str = ""
    environment: str | None = None
    status: str = "running"
    reason: str = ""
    started: str = ""
    ended: str = ""
    operators: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    secret_params: list[str] = field(default_factory=list)
    digest: str = ""
    parent: dict[str, Any] | None = None
    children: list[dict[str, Any]] = field(default_factory=list)
    steps: list[StepView] = field(default_factory=list)
    prompts: list[dict[str, Any]] = field(default_factory=list)
    approvals: list[dict[str, Any]] = field(default_factory=list)
    deviations: list[dict[str, Any]] = field(default_factory=list)   # state.deviation: decisions to go on without
    notes: list[dict[str, Any]] = field(default_factory=list)        # retries, recoveries, offers: not deviations
    sessions: list[dict[str, Any]] = field(default_factory=list)
    takeovers: list[dict[str, Any]] = field(default_factory=list)   # lock.takeover: the run it took the lock from
    events: list[dict[str, Any]] = field(default_factory=list)
    records: int = 0
    rolled_back_by: str = ""      # the run whose success ended this one rolled-back

    @property
    def name(self) -> str:
        """Its runbook's title, else its name."""
        return self.title or self.runbook or self.run_id

    @property
    def interruptions(self) -> list[dict[str, Any]]:
        """Every session after the first: who resumed, after how long, and how the previous one ended."""
        return [s for s in self.sessions[1:]]

    @property
    def failures(self) -> list[tuple[StepView, ItemView]]:
        """Every check or action whose latest result failed (its summary says expected, found, where)."""
        return [(s, i) for s in self.steps for i in s.items if i.passed is False and not i.skipped]

    def step_of(self, prompt_id: str) -> StepView | None:
        """The step a prompt id (``STEP.ITEM``, ``STEP.confirm``; ids may hold dots and brackets) belongs to."""
        best = None
        for step in self.steps:
            if prompt_id.startswith(step.id + ".") and (best is None or len(step.id) > len(best.id)):
                best = step
        return best

    @property
    def version(self) -> str:
        return str(self.params.get("version", "") or "")

    @property
    def duration(self) -> float | None:
        if self.started and self.ended:
            return (parse_time(self.ended) - parse_time(self.started)).total_seconds()
        return None

    @property
    def outcome(self) -> str:
        from .state import outcome_text

        return outcome_text(self.status, len(self.deviations))

    def summary(self) -> dict[str, Any]:
        return {"run": self.run_id, "runbook": self.runbook, "environment": self.environment,
                "operator": self.operators[0] if self.operators else "", "operators": self.operators,
                "started": self.started, "ended": self.ended, "duration_s": self.duration, "status": self.status,
                "deviations": len(self.deviations), "outcome": self.outcome,
                "version": self.version, "reason": self.reason, "parent": self.parent,
                "children": [c["run"] for c in self.children]}

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for step in data["steps"]:
            step.pop("cursor", None)
        data["interruptions"] = self.interruptions
        data["version"] = self.version
        data["outcome"] = self.outcome
        data["duration_s"] = self.duration
        for step, view in zip(data["steps"], self.steps):
            step["duration_s"] = view.duration
        data.pop("events")
        return data


def view(records: Iterable[dict[str, Any]]) -> RunView:
    """Read a run's records into a RunView."""
    from .state import STATUS_OF, Event, deviation

    run = RunView("")
    steps: dict[str, StepView] = {}
    pending: dict[str, dict[str, Any]] = {}     # manual answers journaled before their item's result
    terminal = {k.value: v.value for k, v in STATUS_OF.items() if k not in (Event.SESSION, Event.RUN_STARTED)}
    last = ""
    for rec in records:
        run.records += 1
        kind, data, when = rec.get("type", ""), rec.get("data") or {}, rec.get("time", "")
        if not isinstance(data, dict):
            data = {}
        dev = deviation(rec)
        if dev is not None:
            run.deviations.append(dev)
        run.events.append(rec)
        op = rec.get("operator")
        if op and op not in run.operators:
            run.operators.append(op)
        if kind == "run.started":
            run.run_id = rec.get("run", "")
            run.runbook, run.title = data.get("runbook", ""), data.get("title", "")
            run.environment, run.digest = data.get("environment"), data.get("digest", "")
            run.params = dict(data.get("params") or {})
            run.secret_params = sorted(data.get("secret_hashes") or {})
            run.parent, run.started = data.get("parent"), when
        elif kind == "session.started":
            _session(run, steps, data, op, when, last)
        elif kind in terminal:
            run.status, run.reason, run.ended = terminal[kind], data.get("reason", ""), when
            run.rolled_back_by = str(data.get("by_run") or run.rolled_back_by) if kind == "run.rolled-back" else ""
            _session_end(run, steps, kind, data, when)
        elif kind == "step.started" and data.get("step"):
            step = steps.setdefault(str(data["step"]), StepView(str(data["step"])))
            step.title = data.get("title") or step.title
            step.started = step.started or when
            if step.finished:               # started again (a resume, a retry): the pause is a gap
                _segment(step, step.finished, when, "gap", "stopped, started again")
                step.finished, step.status = "", "running"
            step.status = "running"
            step.cursor = when
            if step not in run.steps:
                run.steps.append(step)
        elif kind == "step.finished" and data.get("step"):
            step = steps.setdefault(str(data["step"]), StepView(str(data["step"])))
            _segment(step, step.cursor or when, when, "work")
            step.status, step.finished, step.reason = str(data.get("status", "")), when, data.get("reason", "")
            step.cursor = when
            if step not in run.steps:
                run.steps.append(step)
        elif kind == "item.result" and data.get("step") and data.get("item"):
            item = _item(run, steps, data, when)
            answer = pending.pop(f"{data['step']}.{data['item']}", None)
            if answer is not None:
                _answered(item, answer)
        elif kind == "prompt.answered":
            pid = str(data.get("id") or "")
            prompt = {"time": when, "id": pid, "kind": data.get("kind"),
                      "question": data.get("question", ""), "answer": data.get("answer"),
                      "source": data.get("source"), "by": data.get("by", op),
                      **({"refused": data["refused"]} if data.get("refused") else {})}
            run.prompts.append(prompt)
            owner = run.step_of(pid)
            if owner is not None:
                _segment(owner, owner.cursor or when, when, "person", pid[len(owner.id) + 1:])
                owner.cursor = max(owner.cursor, when)
                if data.get("kind") != "manual":
                    owner.prompts.append(prompt)
                else:
                    answered = next((i for i in owner.items if i.key == pid[len(owner.id) + 1:]), None)
                    if answered is not None:
                        _answered(answered, prompt)
                    else:
                        pending[pid] = prompt
            if data.get("kind") == "approval" and data.get("refused"):
                run.notes.append({"time": when, "kind": "approval refused", "step": pid.rsplit(".", 1)[0],
                                  "detail": data["refused"]})
        elif kind in ("child.started", "child.finished"):
            found = next((c for c in run.children if c["run"] == data.get("run")), None)
            if found is None:
                found = {"run": data.get("run"), "step": data.get("step"), "runbook": data.get("runbook"),
                         "status": "running", "started": when, "finished": ""}
                run.children.append(found)
            if kind == "child.finished":
                found["status"], found["finished"] = data.get("status"), when
        elif kind == "lock.takeover":
            run.takeovers.append({"time": when, "key": data.get("key"), "from_run": data.get("from_run"),
                                  "from_operator": data.get("from_operator"), "reason": data.get("reason", ""),
                                  "by": op})
        elif kind == "run.offer":
            run.notes.append({"time": when, "kind": "on_failure offered", "step": "",
                                   "detail": f"{data.get('runbook')}: {'accepted' if data.get('accepted') else 'declined'}"})
        elif kind == "journal.repaired":
            run.notes.append({"time": when, "kind": "torn journal tail cut", "step": "",
                                   "detail": f"{data.get('bytes')} bytes at {data.get('offset')} kept in {data.get('kept_in')}"})
        last = when or last
    if run.sessions and not run.sessions[-1].get("ended") and run.status != "running":
        run.sessions[-1]["ended"] = run.ended or last
    return run


# Checks that wait on another system (a rollout, a pipeline, a window): drawn apart from work.
WAITING = frozenset({"monitor.window", "aws.ecs_wait_stable", "aws.wait", "github.workflow_run",
                     "github.pr_mergeable"})


def _segment(step: StepView, start: str, end: str, kind: str, label: str = "") -> None:
    """A stretch of a step's time: work, a wait on a system, a wait for a person, or a gap (no session)."""
    if not start or not end or end < start:
        return
    last = step.segments[-1] if step.segments else None
    if last is not None and last["kind"] == kind and last["end"] == start and not label and not last["label"]:
        last["end"] = end
    else:
        step.segments.append({"start": start, "end": end, "kind": kind, "label": label})


def _answered(item: ItemView, prompt: dict[str, Any]) -> None:
    item.text = str(prompt.get("question") or item.text)
    item.answer, item.answered_by = prompt.get("answer"), str(prompt.get("by") or "")
    item.answered_at, item.source = str(prompt.get("time") or ""), str(prompt.get("source") or "")


def _session(run: RunView, steps: dict[str, StepView], data: dict[str, Any], op: Any, when: str, last: str) -> None:
    """A session starts: the previous one's end (its record, else its last record: a crash), the gap."""
    previous = run.sessions[-1] if run.sessions else None
    gap = None
    if previous is not None:
        if not previous.get("ended"):
            previous["ended"], previous["end"] = last, "stopped without a record (killed or its machine lost)"
        gap = (parse_time(when) - parse_time(previous["ended"])).total_seconds() if previous["ended"] else None
        for step in run.steps:
            if step.status == "running" and step.cursor and step.cursor < when:
                _segment(step, step.cursor, when, "gap", "no session")
                step.cursor = when
    run.sessions.append({"time": when, "operator": data.get("operator") or op, "resume": bool(data.get("resume")),
                         "host": data.get("host"), "ended": "", "end": "", "gap_s": gap,
                         "after": (previous or {}).get("end", "")})
    run.status, run.ended = "running", ""


def _session_end(run: RunView, steps: dict[str, StepView], kind: str, data: dict[str, Any], when: str) -> None:
    if run.sessions:
        run.sessions[-1]["ended"] = when
        run.sessions[-1]["end"] = kind.split(".", 1)[-1] + (f": {data['reason']}" if data.get("reason") else "")
    for step in run.steps:
        if step.status == "running" and step.cursor:
            _segment(step, step.cursor, when, "work")
            step.cursor = when


def _item(run: RunView, steps: dict[str, StepView], data: dict[str, Any], when: str) -> ItemView:
    sid, key = str(data["step"]), str(data["item"])
    step = steps.setdefault(sid, StepView(sid))
    if step not in run.steps:
        run.steps.append(step)
    item = next((i for i in step.items if i.key == key), None)
    kind = "manual" if data.get("manual") else "approval" if key == "approval" else str(data.get("kind", "check"))
    waited = kind != "manual" and (data.get("uses") in WAITING or bool(data.get("wait")))
    before = step.cursor or when
    if not data.get("manual"):
        _segment(step, before, when, "person" if kind == "approval" else "wait" if waited else "work",
                 "" if kind != "approval" else "approval")
    step.cursor = max(step.cursor, when)
    if item is None:
        item = ItemView(key, kind, data.get("uses", ""))
        step.items.append(item)
    elif not data.get("skipped"):
        run.notes.append({"time": when, "kind": "retry", "step": sid,
                          "detail": f"{key} ran again after: {item.summary}"})
    item.started = before if before <= when else when
    item.attempts += 0 if data.get("skipped") else 1
    item.passed, item.skipped = data.get("passed"), bool(data.get("skipped"))
    item.summary, item.reason = data.get("summary", ""), data.get("reason", "")
    item.evidence, item.outputs, item.time = data.get("evidence") or {}, data.get("outputs") or {}, when
    item.recovered = data.get("recovered", "")
    item.waited = waited
    if item.recovered:
        run.notes.append({"time": when, "kind": "recovered after interruption", "step": data["step"],
                               "detail": f"{data['item']} ({item.recovered}): {item.summary}"})
    if data["item"] == "approval" and data.get("passed"):
        outputs = item.outputs
        run.approvals.append({"step": data["step"], "time": when, "approvers": outputs.get("approvers", []),
                              "head_sha": outputs.get("head_sha", ""), "verified": outputs.get("verified", False),
                              "summary": item.summary})
    return item


# -- the index -----------------------------------------------------------------------

class Index:
    """Summaries of every run, cached in ``HOME/index.json``; never trusted over the journals."""

    def __init__(self, store: LocalStore):
        self.store = store
        self.path = store.home / "index.json"

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data.get("runs", {}) if data.get("version") == INDEX_VERSION else {}

    def summaries(self) -> list[dict[str, Any]]:
        """Every run's summary, rebuilding entries whose journal changed; newest first."""
        cached = self._load()
        fresh: dict[str, Any] = {}
        changed = False
        remote = getattr(self.store, "kind", "local") != "local"
        runs = str(self.store.runs_dir) + os.sep
        for run_id in self.store.run_ids():
            if remote:
                self.store.records(run_id)     # the team backend refreshes its local copy of the journal
                path = str(self.store.journal_path(run_id))
            else:
                path = runs + run_id + os.sep + "journal.jsonl"    # plain strings: 10,000 runs, one stat each
            try:
                st = os.stat(path)
            except FileNotFoundError:
                continue
            stamp = [st.st_size, st.st_mtime_ns]
            entry = cached.get(run_id)
            if entry is None or entry.get("stamp") != stamp:
                entry = {"stamp": stamp, "summary": view(read_records(Path(path))).summary()}
                changed = True
            fresh[run_id] = entry
        if changed or set(fresh) != set(cached):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.path, json.dumps({"version": INDEX_VERSION, "runs": fresh}).encode(), durable=False)
        return [fresh[r]["summary"] for r in sorted(fresh, reverse=True)]


def shown_status(status: str, run_id: str, parent: dict[str, Any] | None, holders: dict[str, Any]) -> str:
    """The status every command shows: the journal's, except that a run whose journal says
    ``running`` while neither it nor its parent holds a live lock is ``interrupted`` (its
    process is gone: killed, or its machine lost)."""
    if status != "running":
        return status
    holder = holders.get(run_id) or holders.get((parent or {}).get("run", ""))
    return "interrupted" if holder is None or holder.is_stale() else status


def unfinished_states(store: LocalStore) -> list[Any]:
    """The full state of every unfinished run: the index picks the candidates (one stat per
    run at a year of history), each candidate's journal decides."""
    from .state import UNFINISHED

    wanted = {s.value for s in UNFINISHED}
    states = (store.state(s["run"]) for s in Index(store).summaries() if s["status"] in wanted)
    return [st for st in states if st.status in UNFINISHED and not st.over]


def stamp(when: datetime) -> str:
    """A time in the journal's own format; journal times compare correctly as strings."""
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def select(summaries: list[dict[str, Any]], runbook: str | None = None, env: str | None = None,
           status: str | None = None, operator: str | None = None, since: datetime | None = None,
           until: datetime | None = None) -> list[dict[str, Any]]:
    since_s = stamp(since) if since else None
    until_s = stamp(until) if until else None
    now_s = stamp(clock.now())
    out = []
    for s in summaries:
        if runbook and s["runbook"] != runbook:
            continue
        if env and s["environment"] != env:
            continue
        if status and s["status"] != status:
            continue
        if operator and operator not in s["operators"]:
            continue
        if since_s and (s["ended"] or now_s) < since_s:
            continue
        if until_s and s["started"] and s["started"] > until_s:
            continue
        out.append(s)
    return out


def load_view(store: LocalStore, run_id: str) -> RunView:
    return view(store.records(store.find(run_id)))


def timeline(store: LocalStore, since: datetime | None, until: datetime | None = None,
             env: str | None = None) -> list[dict[str, Any]]:
    """Every event of every run in the window, in time order."""
    runs = select(Index(store).summaries(), env=env, since=since, until=until)
    since_s = stamp(since) if since else None
    until_s = stamp(until) if until else None
    events = []
    for s in runs:
        for rec in store.records(s["run"]):
            t = rec["time"]
            if (since_s and t < since_s) or (until_s and t > until_s):
                continue
            events.append({"time": rec["time"], "run": rec["run"], "runbook": s["runbook"],
                           "environment": s["environment"], "operator": rec.get("operator"), "type": rec["type"],
                           **({"passed": bool((rec.get("data") or {}).get("passed") or (rec.get("data") or {}).get("skipped"))}
                              if rec["type"] == "item.result" else {}),
                           "text": describe(rec)})
    return sorted(events, key=lambda e: (e["time"], e["run"]))


def describe(rec: dict[str, Any]) -> str:
    """One readable line for a journal record."""
    d = rec.get("data") or {}
    kind = rec.get("type", "")
    if kind == "run.started":
        return f"started {d.get('runbook')} in {d.get('environment') or '-'} {_params(d.get('params') or {})}"
    if kind == "session.started":
        return "resumed" if d.get("resume") else "session started"
    if kind == "step.started":
        return f"step {d.get('step')} started: {d.get('title', '')}"
    if kind == "step.finished":
        return f"step {d.get('step')} {d.get('status')}" + (f": {d['reason']}" if d.get("reason") else "")
    if kind == "item.intent":
        return f"{d.get('step')}.{d.get('item')}: about to run {d.get('uses')}"
    if kind == "item.process":
        what = {"running": "runs as", "waited": "outlived the session that started it:",
                "stopped": "stopped at the operator's word:"}.get(str(d.get("state")), "runs as")
        return f"{d.get('step')}.{d.get('item')}: its command {what} pid {d.get('pid')}"
    if kind == "item.result":
        mark = "skipped" if d.get("skipped") else "ok" if d.get("passed") else "FAILED"
        extra = f" (reason: {d['reason']})" if d.get("reason") else ""
        return f"{d.get('step')}.{d.get('item')} {mark}: {d.get('summary', '')}{extra}"
    if kind == "prompt.answered":
        from .prompts import answer_text

        return f"{d.get('id')} answered {answer_text(d.get('answer'))} by {d.get('by')} ({d.get('source')})"
    if kind in ("child.started", "child.finished"):
        return f"linked run {d.get('run')} ({d.get('runbook') or ''}) {d.get('status', 'started')}"
    return f"{kind}" + (f": {d['reason']}" if d.get("reason") else "")


def _params(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in params.items())
