"""Linked runs: a ``run:`` step's child run, and the runbook's ``on_failure`` offer (accepted:
the run ends rolled-back when its linked run succeeds). A child runs with the same store,
lock and person, its prompts addressed as ``LINK/ID``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from . import results
from .errors import Parked
from .results import StepResult
from .plan import Plan
from .prompts import Prompt
from .state import Event, Status, StepStatus
from .steps import Step, prompt_id


class Host(Protocol):
    """What linked runs need of the run that starts them."""

    def ask(self, prompt: Prompt) -> dict[str, Any]: ...
    def child(self, plan: Plan, run_id: str, link: str) -> Any: ...
    def ask_with_source(self, prompt: Prompt) -> tuple[dict[str, Any], str]: ...
    console: Any
    def emit(self, kind: Event, data: dict[str, Any], flush: bool = False) -> None: ...
    def flush(self, anchor: bool = False) -> None: ...
    lock: Any
    make_plan: Any
    operator: str
    plan: Any
    prompter: Any
    redactor: Any
    registry: Any
    def render(self, text: str, sid: str) -> str: ...
    def resolve(self, value: Any, sid: str) -> Any: ...
    root: Path
    run_id: str
    @property
    def state(self) -> Any: ...
    store: Any


def rolled_back(runner: Host, reason: str, child: Status | None) -> Status:
    """After the accepted on_failure runbook: ``rolled-back`` when it succeeded (final, the
    lock is released), else the run stays failed and the linked run resumable."""
    link = runner.state.children.get("run.on_failure") or {}
    if child is Status.SUCCEEDED:
        runner.emit(Event.ROLLED_BACK, {"reason": reason, "by_run": link.get("run"),
                                      "runbook": (runner.plan.on_failure or {}).get("runbook")})
        runner.flush(anchor=True)
        return Status.ROLLED_BACK
    if child is Status.PARKED:        # the rollback waits for a person: so does this run
        runner.emit(Event.PARKED, {"reason": f"{reason}; its {(runner.plan.on_failure or {}).get('runbook')} run "
                                           f"{link.get('run')} is parked (needs a person)"})
        runner.flush(anchor=True)
        return Status.PARKED
    if runner.state.status is not Status.FAILED:
        runner.emit(Event.FAILED, {"reason": reason})
        runner.flush(anchor=True)
    return Status.FAILED


def run_child(runner: Host, step: Step, deadline: float | None = None) -> StepResult:
    """A ``run:`` step: its linked run, started (after its confirm) or resumed; declined, the step is skipped."""
    if step.confirm and step.id not in runner.state.children:
        prompt = Prompt(prompt_id(step.id, "confirm"), "confirm", runner.render(step.confirm, step.id))
        answered = runner.state.prompts.get(prompt.id)
        answer = answered["answer"] if answered else runner.ask(prompt)
        if not answer.get("done"):
            return results.skipped(f"declined: {prompt.text}")
    spec = runner.resolve(step.run or {}, step.id)
    status = linked_run(runner, step.id, spec["runbook"], spec.get("with") or {})
    if status is Status.PARKED:
        raise Parked(f"linked run for step {step.id} is parked")
    if status is not Status.SUCCEEDED:
        return results.failed(f"linked run of {spec['runbook']} {status.value}", offer=True)
    return results.OK


def linked_run(runner: Host, sid: str, runbook: str, given: dict[str, Any]) -> Status:
    """Start the linked run of ``sid``, or resume it where it stopped; its final status."""
    from .store import new_run_id

    known = runner.state.children.get(sid)
    if known and known.get("status") == Status.SUCCEEDED.value:
        return Status.SUCCEEDED
    assert runner.make_plan is not None
    child_plan = runner.make_plan(runbook, given)
    if known:
        child_id = known["run"]
        child = runner.child(child_plan, child_id, sid)
        child.open(create=False, records=runner.store.records(child_id))
        child.session(resume=True)
    else:
        child_id = new_run_id()
        runner.emit(Event.CHILD_STARTED, {"step": sid, "run": child_id, "runbook": runbook}, flush=True)
        child = runner.child(child_plan, child_id, sid)
        child.start(parent={"run": runner.run_id, "step": sid})
    status = child.execute()
    runner.emit(Event.CHILD_FINISHED, {"step": sid, "run": child_id, "status": status.value}, flush=True)
    return status


def offer_on_failure(runner: Host, reason: str) -> Status:
    """Offer the runbook's on_failure runbook when the failure came after its ``after`` step;
    the run ends ``rolled-back`` when it is accepted and succeeds, else ``failed``."""
    spec = runner.plan.on_failure
    if not spec:
        return Status.FAILED
    after = spec.get("after")
    if after and not (after in runner.state.steps and runner.state.steps[after].status is StepStatus.SUCCEEDED):
        return Status.FAILED
    prompt = Prompt("run.on_failure", "run", f"Start {spec['runbook']} now?")
    try:
        answer, source = runner.ask_with_source(prompt)
    except Parked:
        runner.emit(Event.OFFER, {"runbook": spec["runbook"], "accepted": False, "reason": "nobody to ask"}, flush=True)
        return Status.FAILED
    accepted = bool(answer.get("done"))
    runner.emit(Event.OFFER, {"runbook": spec["runbook"], "accepted": accepted, "source": source}, flush=True)
    return rolled_back(runner, reason, run_on_failure(runner)) if accepted else Status.FAILED


def run_on_failure(runner: Host) -> Status:
    """The accepted on_failure runbook, as a linked run (started, or resumed where it stopped)."""
    spec = runner.plan.on_failure or {}
    return linked_run(runner, "run.on_failure", spec["runbook"], runner.resolve(spec.get("with") or {}, ""))
