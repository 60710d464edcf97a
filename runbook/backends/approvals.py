"""`invoke runbook.approve RUN_ID`: an approval under the approver's own AWS principal.

The approval is an item ``pk=run#RUN, sk=approval#ARN`` holding the approver's STS
caller ARN and what it approves: the run's plan digest, public parameters and
environment. Every principal that operated the run (opened its journal to write) is
recorded beside it (``sk=principal#ARN``); those principals cannot approve it. A prompt
approval gate counts an approval only while digest, parameters and environment still
match: any change voids it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..errors import UsageError
from ..journal import utcnow
from ..model import LedgerRecord
from ..recorder import ledger_event
from ..state import Event, derive
from .awsio import to_item


@dataclass
class Approval:
    run: str
    approver: str
    digest: str
    params: dict[str, Any]
    environment: str | None
    time: str

    def void_reason(self, digest: str, params: dict[str, Any], environment: str | None) -> str:
        """Why this approval no longer applies, or ''."""
        if self.digest != digest:
            return f"the plan changed since {self.approver} approved (digest {self.digest[:12]} -> {digest[:12]})"
        if self.params != params:
            changed = sorted(k for k in set(self.params) | set(params) if self.params.get(k) != params.get(k))
            return f"parameters changed since {self.approver} approved ({', '.join(changed)})"
        if self.environment != environment:
            return f"the environment changed since {self.approver} approved ({self.environment} -> {environment})"
        return ""


def principal(store: Any) -> str:
    """The caller's AWS principal (STS ARN), asked once per store."""
    if not getattr(store, "_principal", ""):
        store._principal = str(store.io.call("sts", "get_caller_identity", "who am I")["Arn"])
    return str(store._principal)


def note_operator(store: Any, run_id: str) -> None:
    """Record that this principal operates the run (it can then never approve it)."""
    arn = principal(store)
    store.io.call("dynamodb", "put_item", f"run {run_id} operator", TableName=store.table,
                  Item=to_item({"pk": f"run#{run_id}", "sk": f"principal#{arn}", "arn": arn, "time": utcnow()}))


def operators(store: Any, run_id: str) -> set[str]:
    return {item["arn"] for item in store.query(f"run#{run_id}", "run operators", prefix="principal#")}


def binding(records: list[dict[str, Any]]) -> tuple[str, dict[str, Any], str | None]:
    """What an approval of this run is bound to: digest, public parameters, environment."""
    started = next((r for r in records if r["type"] == Event.RUN_STARTED.value), None)
    if started is None:
        raise UsageError("<command line>: this run has not started yet; nothing to approve")
    data = started["data"]
    return str(data.get("digest") or ""), dict(data.get("params") or {}), data.get("environment")


def approve(store: Any, prefix: str) -> Approval:
    """Approve a run under this principal; the run's own operators are refused."""
    if getattr(store, "kind", "local") != "aws":
        raise UsageError("<command line>: `invoke runbook.approve` needs the team backend (backend: {kind: aws}); "
                         "locally, prompt approvals are typed at the gate")
    run_id = store.find(prefix)
    records = store.records(run_id)
    state = derive(records)
    if state.over:
        raise UsageError(f"<command line>: run {run_id} has {state.status.value}; there is nothing to approve")
    me = principal(store)
    if me in operators(store, run_id):
        raise UsageError(f"<command line>: {me} operates run {run_id} and cannot approve it (separation of duties); "
                         "another person approves under their own AWS identity")
    digest, params, environment = binding(records)
    approval = Approval(run_id, me, digest, params, environment, utcnow())
    store.io.call("dynamodb", "put_item", f"run {run_id} approval", TableName=store.table,
                  Item=to_item({"pk": f"run#{run_id}", "sk": f"approval#{me}", "approver": me, "digest": digest,
                                "params": json.dumps(params, sort_keys=True), "environment": environment,
                                "time": approval.time}))
    ledger_event(store, LedgerRecord.APPROVAL, run=run_id, approver=me, digest=digest, environment=environment)
    return approval


def approvals(store: Any, run_id: str) -> list[Approval]:
    """Every approval recorded for a run."""
    out = []
    for item in store.query(f"run#{run_id}", "run approvals", prefix="approval#"):
        out.append(Approval(run_id, item["approver"], item["digest"], json.loads(item["params"]),
                            item.get("environment"), item["time"]))
    return out


def valid_approvals(store: Any, run_id: str, digest: str, params: dict[str, Any],
                    environment: str | None) -> tuple[list[Approval], list[str]]:
    """The approvals a prompt gate counts now, and why the others do not count."""
    ok: list[Approval] = []
    void: list[str] = []
    ops = operators(store, run_id)
    for approval in approvals(store, run_id):
        reason = ("the approver operates this run" if approval.approver in ops else
                  approval.void_reason(digest, params, environment))
        (void.append(f"{approval.approver}: {reason}") if reason else ok.append(approval))
    return ok, void
