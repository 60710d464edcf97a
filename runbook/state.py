"""A run's state, derived from its journal: the journal is the truth."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from .model import StrEnum
from .steps import prompt_id


class Event(StrEnum):
    """Every kind of journal record."""

    RUN_STARTED = "run.started"
    SESSION = "session.started"
    FORCED = "run.forced"
    STEP_STARTED = "step.started"
    STEP_FINISHED = "step.finished"
    EACH_VALUES = "step.values"          # a for_each step's values, fixed at its first start
    ITEM_INTENT = "item.intent"
    ITEM_PROCESS = "item.process"      # an action's command is running as this process group
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
    ROLLED_BACK = "run.rolled-back"
    ABANDONED = "run.abandoned"
    REPAIRED = "journal.repaired"


class Status(StrEnum):
    RUNNING = "running"
    PARKED = "parked"
    INTERRUPTED = "interrupted"
    FAILED = "failed"
    SUCCEEDED = "succeeded"
    ROLLED_BACK = "rolled-back"
    ABANDONED = "abandoned"


class StepStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


TERMINAL = {Status.SUCCEEDED, Status.ROLLED_BACK, Status.ABANDONED}
UNFINISHED = {Status.RUNNING, Status.PARKED, Status.INTERRUPTED, Status.FAILED}
STATUS_OF = {Event.PARKED: Status.PARKED, Event.INTERRUPTED: Status.INTERRUPTED, Event.FAILED: Status.FAILED,
             Event.SUCCEEDED: Status.SUCCEEDED, Event.ROLLED_BACK: Status.ROLLED_BACK,
             Event.ABANDONED: Status.ABANDONED,
             Event.SESSION: Status.RUNNING, Event.RUN_STARTED: Status.RUNNING}


@dataclass
class ItemState:
    key: str
    intent: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    process: dict[str, Any] | None = None    # the command the intent's action started (pid, start time)

    @property
    def done(self) -> bool:
        return self.result is not None and bool(self.result.get("passed") or self.result.get("skipped"))

    def kept_on_restart(self) -> bool:
        """What a restarted step keeps: an action that succeeded (or was skipped by a decision),
        an action interrupted after its intent (to be probed), a manual item's answer. Checks,
        gates and failed actions run again."""
        if self.result is None:
            return self.intent is not None
        if self.result.get("manual"):
            return True
        return self.result.get("kind") == "action" and bool(self.result.get("passed") or self.result.get("skipped"))


@dataclass
class StepState:
    id: str
    status: StepStatus = StepStatus.RUNNING
    items: dict[str, ItemState] = field(default_factory=dict)
    started: str = ""
    finished: str = ""
    reason: str = ""
    continued: bool = False       # failed under on_failure: continue (the run went on)
    active_since: str = ""        # when it last started running in a session ('' while not running)
    active_s: float = 0.0         # seconds it ran in earlier sessions (a watch counts only watched time)
    values: list[Any] | None = None   # a for_each step's values (step.values), kept across resumes

    @property
    def done(self) -> bool:
        """Never repeated: succeeded, skipped (by its condition or a recorded decision), or failed
        under ``on_failure: continue``. A step that did not finish starts again on resume."""
        return self.status in (StepStatus.SUCCEEDED, StepStatus.SKIPPED) or (
            self.status is StepStatus.FAILED and self.continued)

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
    failure: str = ""             # why it last failed (kept while its on_failure run is parked)
    length: int = 0
    plan_file: str = ""
    offer: dict[str, Any] | None = None    # the run's on_failure offer (run.offer), once made
    deviations: list[dict[str, Any]] = field(default_factory=list)
    ended_at: str = ""            # the step whose ``end:`` ended the run (its last run.failed/succeeded)

    @property
    def over(self) -> bool:
        """The run has ended for good: nothing to resume. ``end: failed`` is the runbook's decision,
        so such a run is over too, unless its accepted ``on_failure`` run still has to finish."""
        if self.status in TERMINAL:
            return True
        accepted = bool(self.offer and self.offer.get("accepted"))
        return self.status is Status.FAILED and bool(self.ended_at) and not accepted

    def step(self, sid: str) -> StepState:
        if sid not in self.steps:
            self.steps[sid] = StepState(sid)
        return self.steps[sid]

    def finished(self, sid: str) -> bool:
        s = self.steps.get(sid)
        return s is not None and s.done

    def outputs(self, sid: str, key: str) -> dict[str, Any] | None:
        s = self.steps.get(sid)
        result = s.items[key].result if s is not None and key in s.items else None
        return None if result is None else result.get("outputs")


def _seconds(since: str, until: str) -> float:
    from datetime import datetime

    fmt = "%Y-%m-%dT%H:%M:%S.%fZ"
    try:
        return max(0.0, (datetime.strptime(until, fmt) - datetime.strptime(since, fmt)).total_seconds())
    except ValueError:
        return 0.0


def outcome_text(status: str, deviations: int) -> str:
    """A run's outcome in words: "succeeded with 2 deviation(s)" when it went on without what
    the runbook asked for."""
    if status == Status.SUCCEEDED.value and deviations:
        return f"succeeded with {deviations} deviation(s)"
    return status


def restart(st: RunState, step: StepState) -> None:
    """A step that did not finish starts again: its checks, gate, confirm and failed actions
    are forgotten (they run or are asked again); what it did and what was answered stay."""
    step.items = {k: it for k, it in step.items.items() if it.kept_on_restart()}
    for pid in [p for p in st.prompts if p.startswith(step.id + ".") and (
            p.endswith(".on_fail") or p in (prompt_id(step.id, "confirm"), prompt_id(step.id, "approval")))]:
        del st.prompts[pid]


def deviation(rec: dict[str, Any]) -> dict[str, Any] | None:
    """The deviation a record states, or None: an operator's decision to go on without what
    the runbook asked for. Retries, condition skips, recoveries and accepted rollback offers
    are not deviations."""
    kind, data, when = rec.get("type"), rec.get("data") or {}, rec.get("time", "")
    if kind == Event.ITEM_RESULT and data.get("skipped") and not data.get("recovered"):
        what = "item not done" if data.get("manual") else "failed check skipped"
        return {"time": when, "kind": what, "step": data.get("step", ""),
                "detail": f"{data.get('item')}: {data.get('reason', '')}"}
    if kind == Event.STEP_FINISHED and data.get("decision") == "skip":
        return {"time": when, "kind": "failed step skipped", "step": data.get("step", ""),
                "detail": data.get("reason", "")}
    if kind == Event.STEP_FINISHED and data.get("each_failed"):
        return {"time": when, "kind": "for_each iteration failed (within max_failures)",
                "step": data.get("step", ""), "detail": data.get("reason", "")}
    if kind == Event.STEP_FINISHED and data.get("continued"):
        return {"time": when, "kind": "step failed (on_failure: continue)", "step": data.get("step", ""),
                "detail": data.get("reason", "")}
    if kind == Event.FORCED:
        return {"time": when, "kind": "forced resume", "step": "",
                "detail": f"{data.get('reason')} (digest {str(data.get('old_digest'))[:12]} -> "
                          f"{str(data.get('digest'))[:12]})"}
    if kind == Event.TAKEOVER:
        return {"time": when, "kind": "emergency lock takeover", "step": "",
                "detail": f"took {data.get('key')!r} from run {data.get('from_run')} "
                          f"({data.get('from_operator')}): {data.get('reason')}"}
    return None


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
    dev = deviation(rec)
    if dev is not None:
        st.deviations.append(dev)
    op = rec.get("operator")
    if op and op not in st.operators:
        st.operators.append(op)
    if kind in STATUS_OF and kind not in (Event.SESSION, Event.RUN_STARTED):
        for step in st.steps.values():           # a session ends: running steps stop being watched
            if step.active_since:
                step.active_s += _seconds(step.active_since, rec.get("time", ""))
                step.active_since = ""
    if kind in STATUS_OF:
        st.status = STATUS_OF[Event(kind)]
        if kind in (Event.FAILED, Event.PARKED, Event.INTERRUPTED, Event.ABANDONED):
            st.reason = data.get("reason", "")
        if kind == Event.FAILED:
            st.failure = st.reason
        if kind in (Event.FAILED, Event.SUCCEEDED):
            st.ended_at = data.get("ended_at", "")
        if kind == Event.SUCCEEDED and st.ended_at:
            st.reason = data.get("reason", "")         # where and why the runbook ended it
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
        step.active_since = step.active_since or rec.get("time", "")
        if data.get("restart"):
            restart(st, step)
    elif kind == Event.STEP_FINISHED:
        step = st.step(data["step"])
        step.status = StepStatus(data["status"])
        step.finished = rec.get("time", "")
        step.reason = data.get("reason", "")
        if step.active_since:
            step.active_s += _seconds(step.active_since, step.finished)
            step.active_since = ""
        step.continued = bool(data.get("continued"))
    elif kind == Event.EACH_VALUES:
        st.step(data["step"]).values = list(data["values"])
    elif kind == Event.ITEM_INTENT:
        item = st.step(data["step"]).item(data["item"])
        item.intent, item.process = data, None
    elif kind == Event.ITEM_PROCESS:
        st.step(data["step"]).item(data["item"]).process = data
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
