"""A run's state, derived from its journal: the journal is the truth."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from .model import StrEnum


class Event(StrEnum):
    """Every kind of journal record."""

    RUN_STARTED = "run.started"
    SESSION = "session.started"
    FORCED = "run.forced"
    STEP_STARTED = "step.started"
    STEP_FINISHED = "step.finished"
    ITEM_INTENT = "item.intent"
    ITEM_RESULT = "item.result"
    PROMPT = "prompt.answered"
    CHILD_STARTED = "child.started"
    CHILD_FINISHED = "child.finished"
    OFFER = "run.offer"
    TAKEOVER = "lock.takeover"
    PARKED = "run.parked"
    INTERRUPTED = "run.interrupted"
    FAILED = "run.failed"
    SUCCEEDED = "run.succeeded"
    ABANDONED = "run.abandoned"
    REPAIRED = "journal.repaired"


class Status(StrEnum):
    RUNNING = "running"
    PARKED = "parked"
    INTERRUPTED = "interrupted"
    FAILED = "failed"
    SUCCEEDED = "succeeded"
    ABANDONED = "abandoned"


class StepStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


TERMINAL = {Status.SUCCEEDED, Status.ABANDONED}
UNFINISHED = {Status.RUNNING, Status.PARKED, Status.INTERRUPTED, Status.FAILED}
STATUS_OF = {Event.PARKED: Status.PARKED, Event.INTERRUPTED: Status.INTERRUPTED, Event.FAILED: Status.FAILED,
             Event.SUCCEEDED: Status.SUCCEEDED, Event.ABANDONED: Status.ABANDONED,
             Event.SESSION: Status.RUNNING, Event.RUN_STARTED: Status.RUNNING}


@dataclass
class ItemState:
    key: str
    intent: dict[str, Any] | None = None
    result: dict[str, Any] | None = None

    @property
    def done(self) -> bool:
        return self.result is not None and (self.result.get("passed") or self.result.get("skipped"))


@dataclass
class StepState:
    id: str
    status: StepStatus = StepStatus.RUNNING
    items: dict[str, ItemState] = field(default_factory=dict)
    started: str = ""
    finished: str = ""
    reason: str = ""

    def item(self, key: str) -> ItemState:
        if key not in self.items:
            self.items[key] = ItemState(key)
        return self.items[key]


@dataclass
class RunState:
    run_id: str = ""
    runbook: str = ""
    env: str | None = None
    status: Status = Status.RUNNING
    digest: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    secret_hashes: dict[str, str] = field(default_factory=dict)
    parent: dict[str, Any] | None = None
    lock: str | None = None
    operators: list[str] = field(default_factory=list)
    started: str = ""
    updated: str = ""
    steps: dict[str, StepState] = field(default_factory=dict)
    children: dict[str, dict[str, Any]] = field(default_factory=dict)   # step id -> {run, status}
    prompts: dict[str, dict[str, Any]] = field(default_factory=dict)
    reason: str = ""
    length: int = 0
    plan_file: str = ""
    offer: dict[str, Any] | None = None    # the run's on_failure offer (run.offer), once made

    def step(self, sid: str) -> StepState:
        if sid not in self.steps:
            self.steps[sid] = StepState(sid)
        return self.steps[sid]

    def finished(self, sid: str) -> bool:
        s = self.steps.get(sid)
        return s is not None and s.status is not StepStatus.RUNNING

    def outputs(self, sid: str, key: str) -> dict[str, Any] | None:
        s = self.steps.get(sid)
        if s is None or key not in s.items or s.items[key].result is None:
            return None
        return s.items[key].result.get("outputs")


def derive(records: Iterable[dict[str, Any]]) -> RunState:
    """Fold journal records into the run's state."""
    st = RunState()
    for rec in records:
        apply(st, rec)
    return st


def apply(st: RunState, rec: dict[str, Any]) -> None:
    """Apply one journal record to a run's state."""
    kind = rec.get("type")
    data = rec.get("data") or {}
    st.length += 1
    st.updated = rec.get("time", st.updated)
    op = rec.get("operator")
    if op and op not in st.operators:
        st.operators.append(op)
    if kind in STATUS_OF:
        st.status = STATUS_OF[Event(kind)]
        if kind in (Event.FAILED, Event.PARKED, Event.INTERRUPTED, Event.ABANDONED):
            st.reason = data.get("reason", "")
    if kind == Event.RUN_STARTED:
        st.run_id = rec.get("run", "")
        st.runbook = data.get("runbook", "")
        st.env = data.get("environment")
        st.digest = data.get("digest", "")
        st.params = data.get("params", {})
        st.secret_hashes = data.get("secret_hashes", {})
        st.parent = data.get("parent")
        st.lock = data.get("lock")
        st.started = rec.get("time", "")
        st.plan_file = data.get("file", "")
    elif kind == Event.FORCED:
        st.digest = data.get("digest", st.digest)
    elif kind == Event.STEP_STARTED:
        step = st.step(data["step"])
        step.status = StepStatus.RUNNING
        step.started = step.started or rec.get("time", "")
    elif kind == Event.STEP_FINISHED:
        step = st.step(data["step"])
        step.status = StepStatus(data["status"])
        step.finished = rec.get("time", "")
        step.reason = data.get("reason", "")
    elif kind == Event.ITEM_INTENT:
        st.step(data["step"]).item(data["item"]).intent = data
    elif kind == Event.ITEM_RESULT:
        st.step(data["step"]).item(data["item"]).result = data
    elif kind == Event.PROMPT:
        st.prompts[data["id"]] = data
    elif kind == Event.OFFER:
        st.offer = data
    elif kind == Event.CHILD_STARTED:
        st.children[data["step"]] = {"run": data["run"], "status": "running", "runbook": data.get("runbook")}
    elif kind == Event.CHILD_FINISHED:
        st.children.setdefault(data["step"], {"run": data.get("run")})["status"] = data["status"]
