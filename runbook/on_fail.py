"""The operator's decision after a failure: ``STEP.on_fail`` for a failed gate, action or
linked run, ``STEP.ITEM.on_fail`` for a failed check or an action whose effect is unknown
(retry, skip with a typed reason, abort); nobody to ask: abort, or park."""

from __future__ import annotations

from dataclasses import replace

from typing import Any, Protocol

from . import decide
from . import results
from .errors import Parked
from .results import StepResult
from .model import PluginKind, StepKind
from .prompts import Prompt
from .state import Event, StepStatus
from .steps import Step, prompt_id


MAX_SCRIPTED_RETRIES = 3      # an answers file that says retry would loop for ever


class Host(Protocol):
    """What the on_fail decisions need of the run."""

    def ask_with_source(self, prompt: Prompt) -> tuple[dict[str, Any], str]: ...
    def emit(self, kind: Event, data: dict[str, Any], flush: bool = False) -> None: ...
    def finish_step(self, sid: str, status: StepStatus, **data: Any) -> None: ...
    def flush(self, anchor: bool = False) -> None: ...
    operator: str
    plan: Any
    def scripted_retry_allowed(self, pid: str, source: str) -> bool: ...


def step_on_fail(runner: Host, step: Step, failure: StepResult) -> tuple[str, str]:
    """After a failed gate, action or linked run: ``STEP.on_fail`` (retry / skip with a typed
    reason / abort, decided by ``decide.on_fail_next``). Returns the choice, "retry", "skip" (the
    skip is journaled) or "abort", and the failure's reason (what an abort adds to it). With
    nobody to ask: abort, or park when the failure needs a person (a refused approval)."""
    reason = failure.reason
    facts = decide.FailFacts(offer=failure.offer, needs_person=failure.park)
    nxt = decide.on_fail_next(facts)
    source = ""
    if nxt is None:
        prompt = Prompt(prompt_id(step.id, "on_fail"), "on_fail",
                        f"Step {step.id} failed: {reason}. Retry, skip (with a reason) or abort?")
        try:
            answer, source = runner.ask_with_source(prompt)
            choice = str(answer.get("choice") or "abort")
        except Parked:
            answer, choice = {}, "nobody"
        env = runner.plan.env
        facts = replace(facts, answer=choice, reason=str(answer.get("reason") or ""),
                        retries_left=choice != "retry" or runner.scripted_retry_allowed(prompt.id, source),
                        gate_on_protected=step.kind is StepKind.APPROVAL and env is not None and env.protected)
        nxt = decide.on_fail_next(facts)
        if choice == "retry" and not facts.retries_left:
            reason = f"{reason} (still failing after {MAX_SCRIPTED_RETRIES} retries from {source})"
        elif choice == "skip" and facts.reason.strip() and facts.gate_on_protected:
            reason = f"{reason} (an approval gate cannot be skipped on protected environment {env.name!r})"
    if nxt is decide.FailNext.PARK:
        raise Parked(f"{step.id}: {reason}") from None
    if nxt is decide.FailNext.SKIP:
        runner.finish_step(step.id, StepStatus.SKIPPED, reason=f"skipped after: {reason}; {facts.reason.strip()}",
                           decision="skip", by=runner.operator if source == "interactive" else source)
    return (nxt.value if nxt in (decide.FailNext.RETRY, decide.FailNext.SKIP) else "abort"), reason


def check_on_fail(runner: Host, step: Step, key: str, summary: str, park: bool = False,
                  question: str = "Retry, skip or abort?") -> bool | StepResult:
    """After a failed check (or an action whose effect is unknown, ``park``): ``STEP.ITEM.on_fail``.
    True to retry, False when skipped (journaled); on abort, the step's failed result.

    With nobody to ask, a failed check fails the step; an unknown effect parks the run.
    """
    pid = prompt_id(step.id, key, "on_fail")
    prompt = Prompt(pid, "on_fail", f"{key} {'failed: ' if not park else ''}{summary}. {question}")
    try:
        answer, source = runner.ask_with_source(prompt)
    except Parked:
        if park:
            raise
        return results.failed(f"{key}: {summary}")
    choice = answer.get("choice")
    if choice == "retry":
        if not runner.scripted_retry_allowed(pid, source):
            return results.failed(f"{key}: {summary} (still failing after {MAX_SCRIPTED_RETRIES} retries "
                                  f"from {source})")
        return True
    if choice == "skip":
        runner.emit(Event.ITEM_RESULT, {"step": step.id, "item": key, "passed": False, "skipped": True,
                                      "reason": answer.get("reason", ""), "summary": f"skipped after: {summary}",
                                      "outputs": {}, "kind": PluginKind.ACTION.value if park else "check",
                                      **({"recovered": "operator"} if park else {})})
        runner.flush()
        return False
    return results.failed(f"{key}: {summary} (aborted by {runner.operator if source == 'interactive' else source})")
