"""Approval gates: a plugin's (``approval.SOURCE``, e.g. github-pr) or a prompt's.

A gate never trusts what it is told: prompt approvers must differ from the operator and
from each other and cover every role; on the team backend, approvals given with
``runbook.approve`` under the approvers' own principals open a prompt gate (the store
says which still count). A refused approval is a failed result that offers ``STEP.on_fail``
(retry names other approvers) and parks with nobody to ask.
"""

from __future__ import annotations

from typing import Any, Protocol

from . import clock, hints
from . import results
from .errors import Parked
from .results import StepResult
from .prompts import Prompt
from .state import Event
from .steps import Step, prompt_id


class Host(Protocol):
    """What a gate needs of the run executing it (the Runner)."""

    plan: Any
    store: Any
    registry: Any
    operator: str
    run_id: str
    faults: Any

    @property
    def state(self) -> Any: ...

    def resolve(self, value: Any, sid: str) -> Any: ...
    def context(self, step: Step, item: dict[str, Any], args: dict[str, Any], deadline: float | None) -> Any: ...
    def invoke(self, plugin: Any, ctx: Any, probe: bool = False) -> Any: ...
    def record(self, sid: str, key: str, plugin: Any, outcome: Any, duration: float, flush: bool,
               recovered: str = "") -> None: ...
    def ask_with_source(self, prompt: Prompt) -> tuple[dict[str, Any], str]: ...
    def scripted_retry_allowed(self, pid: str, source: str) -> bool: ...
    def emit(self, kind: Event, data: dict[str, Any], flush: bool = False) -> None: ...
    def flush(self, anchor: bool = False) -> None: ...


def run_gate(runner: Host, step: Step) -> StepResult:
    """Open the step's gate (its result: succeeded, or failed when refused; Parked is raised while
    approvals are missing)."""
    spec = runner.resolve(step.approval or {}, step.id)
    if spec["source"] != "prompt":
        gate = runner.registry.get("approval." + spec["source"])
        if gate is None:
            return results.failed(f"approval source {spec['source']!r} needs its plugin (approval.{spec['source']})")
        args = {k: v for k, v in spec.items() if k not in ("source", "wait", "message")}
        ctx = runner.context(step, {"uses": gate.name}, args, None)
        started = clock.monotonic()
        outcome = runner.faults.failing(f"{step.id}.approval", runner.plan.name) or runner.invoke(gate, ctx)
        aborted: StepResult | None = None
        while not outcome.passed and outcome.outputs.get("park"):
            outcome = wait_for_approvals(runner, step, gate, ctx, spec.get("wait") or {}, outcome)
            if outcome.passed or not outcome.outputs.get("park"):
                break
            more = keep_waiting(runner, step, outcome)
            if isinstance(more, StepResult):
                aborted = more
            if more is not True:
                break
        if aborted is not None:
            return aborted               # aborted while waiting: nothing recorded of the gate
        runner.record(step.id, "approval", gate, outcome, clock.monotonic() - started, flush=True)
        if not outcome.passed:
            if outcome.outputs.get("park"):
                raise Parked(f"{step.id}: {outcome.summary}")
            return results.failed(f"approval refused: {outcome.summary}", offer=True, park=True)
        return results.OK
    if verified_approvals(runner, step, spec):
        return results.OK
    env = runner.plan.env
    if env is not None and env.protected:
        if not getattr(runner.store, "verifies_approvals", False):
            return results.failed(hints.protected_prompt_approval(env.name, [step.id]))
        # the team backend: the gate opens on approvals recorded under the approvers' own identities; until
        # there are enough, the run waits for them (parked), with the exact commands that open it
        raise Parked(f"prompt approvals are refused on protected environment {env.name!r}: the gate opens on "
                     f"approvals recorded with runbook.approve; each approver runs "
                     f"`{hints.approve(runner.run_id, env.name)}` under their own AWS identity, then "
                     f"`{hints.resume(runner.run_id, env.name)}` continues the run")
    prompt = Prompt(prompt_id(step.id, "approval"), "approval",
                    f"Approvers for '{step.title or step.id}' (at least {spec.get('min', 1)}, space-separated):",
                    details=results_so_far(runner))
    answer, source = runner.ask_with_source(prompt)
    approvers = [str(a) for a in answer.get("approvers") or []]
    members = members_of(runner)
    problem = approval_problem(approvers, runner.operator, int(spec.get("min", 1)), list(spec.get("roles") or []),
                               members)
    forced = runner.faults.failing(f"{step.id}.approval", runner.plan.name)
    problem = problem or (forced.summary if forced else "")
    runner.emit(Event.PROMPT, {"id": prompt.id, "kind": "approval", "answer": {"approvers": approvers},
                               "source": source, "by": runner.operator, "verified": False,
                               **({"refused": problem} if problem else {})})
    if problem:
        runner.flush()
        return results.failed(f"approval refused: {problem}", offer=True, park=True)
    roles = assign_roles(approvers, list(spec.get("roles") or []), members)
    runner.emit(Event.ITEM_RESULT, {"step": step.id, "item": "approval", "passed": True, "verified": False,
                                    "summary": f"approved by {', '.join(approvers)} (unverified prompt approval)",
                                    "outputs": {"approvers": approvers, "count": len(approvers), "head_sha": "",
                                                "verified": False},
                                    "evidence": {"roles": roles, "source": source}}, flush=True)
    return results.OK


def wait_for_approvals(runner: Host, step: Step, gate: Any, ctx: Any, wait: dict[str, Any], outcome: Any) -> Any:
    """Poll the gate for the step's ``wait:``, showing who approved, what is missing and the time left."""
    timeout, interval = float(wait.get("timeout", 0)), float(wait.get("interval", 10))
    console = getattr(runner, "console", None)
    last = [outcome]
    if timeout <= 0:
        return outcome

    def decided() -> bool:
        return bool(last[-1].passed or not last[-1].outputs.get("park"))

    def look(update: Any) -> Any:
        def again(waited: float) -> None:      # the interval (the last one cut to what is left), then the gate
            clock.sleep(min(interval, max(0.0, timeout - waited)))
            last.append(runner.invoke(gate, ctx))
            update(f"waiting for approvals ({max(0.0, timeout - waited - interval):.0f} s left): "
                   f"{last[-1].summary}")
        return again

    if console is None:
        clock.wait_until(decided, timeout, 0.0, on_tick=look(lambda message: None), sleep=False)
        return last[-1]
    with console.waiting(f"waiting for approvals ({timeout:.0f} s left): {outcome.summary}", announce=True) as update:
        clock.wait_until(decided, timeout, 0.0, on_tick=look(update), sleep=False)
    return last[-1]


def keep_waiting(runner: Host, step: Step, outcome: Any) -> bool | StepResult:
    """The wait ended without the approvals: ``STEP.approval.timeout`` (wait again: True / park:
    False / abort: the step's failed result). With nobody to ask the run parks (a resume asks again)."""
    prompt = Prompt(prompt_id(step.id, "approval", "timeout"), "timeout",
                    f"Approvals still missing ({outcome.summary}). Keep waiting, park the run, or abort?")
    try:
        answer, source = runner.ask_with_source(prompt)
    except Parked:
        return False
    choice = answer.get("choice")
    if choice == "abort":
        return results.failed(f"approval: {outcome.summary} (aborted while waiting)")
    return choice == "wait" and runner.scripted_retry_allowed(prompt.id, source)


def members_of(runner: Host) -> dict[str, list[str]]:
    """Role -> the logins or principals the environment allows for it."""
    env = runner.plan.env
    return dict((env.data.get("approvers") if env else None) or {})


def verified_approvals(runner: Host, step: Step, spec: dict[str, Any]) -> bool:
    """Approvals recorded with ``runbook.approve`` (team backend), still bound to this run's digest,
    parameters and environment, open the gate; the store says which count (a local store has none)."""
    env_name = runner.plan.env.name if runner.plan.env else None
    valid, void = runner.store.verified_approvals(runner.run_id, runner.plan.digest, runner.plan.params.public(),
                                                  env_name)
    if not valid and not void:
        return False
    arns = [a.approver for a in valid]
    problem = approval_problem(arns, runner.operator, int(spec.get("min", 1)), list(spec.get("roles") or []),
                               members_of(runner)) if arns else "no approvals yet"
    if problem:
        if void:
            runner.emit(Event.PROMPT, {"id": prompt_id(step.id, "approval"), "kind": "approval", "answer": {"approvers": arns},
                                       "source": "runbook.approve", "by": runner.operator, "verified": True,
                                       "refused": f"{problem}; void: {void}"}, flush=True)
        return False
    runner.emit(Event.ITEM_RESULT, {"step": step.id, "item": "approval", "passed": True, "verified": True,
                                    "summary": f"approved by {', '.join(arns)} (AWS principals, runbook.approve)",
                                    "outputs": {"approvers": arns, "count": len(arns), "head_sha": "",
                                                "verified": True},
                                    "evidence": {"void": void, "source": "runbook.approve"}}, flush=True)
    return True


def results_so_far(runner: Host) -> str:
    """What an approver sees before approving: every step and item result so far."""
    lines = ["Results so far:"]
    for sid, st in runner.state.steps.items():
        lines.append(f"  {sid}: {st.status.value}")
        for key, it in st.items.items():
            if it.result is not None:
                mark = "skipped" if it.result.get("skipped") else "ok" if it.result.get("passed") else "FAILED"
                lines.append(f"    {mark} {key}: {it.result.get('summary', '')}")
    return "\n".join(lines)


def assign_roles(approvers: list[str], roles: list[str], members: dict[str, list[str]]) -> dict[str, str] | None:
    """A distinct approver for each role (role members from the environment), or None."""
    def eligible(role: str) -> list[str]:
        return [a for a in approvers if role not in members or a in members[role]]

    def search(i: int, used: set[str]) -> dict[str, str] | None:
        if i == len(roles):
            return {}
        for person in eligible(roles[i]):
            if person not in used:
                rest = search(i + 1, used | {person})
                if rest is not None:
                    return {roles[i]: person, **rest}
        return None
    return search(0, set())


def approval_problem(approvers: list[str], operator: str, minimum: int, roles: list[str],
                     members: dict[str, list[str]]) -> str:
    """Why a prompt approval is refused, or ''."""
    if len(set(approvers)) != len(approvers):
        return "the same person is named twice"
    if operator in approvers:
        return f"the operator ({operator}) cannot approve their own run"
    if len(approvers) < minimum:
        return f"{len(approvers)} approver(s) named, {minimum} needed"
    if roles and assign_roles(approvers, roles, members) is None:
        return f"each role ({', '.join(roles)}) needs its own approver" + (
            " from the environment's approvers" if members else "")
    return ""
