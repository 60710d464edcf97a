"""A task step's items: requires, confirm, do, verify; each check or action called with its
arguments resolved and checked, an action's intent made durable first, a ``wait:`` polled."""

from __future__ import annotations

from typing import Any, Callable, Protocol

from . import clock, decide, identity, manual, on_fail, proc, recovery, results
from .results import StepResult
from .console import quiet
from .errors import Parked
from .model import PluginKind, Section
from .plugins import Context, Outcome, Plugin, argument_problem
from .prompts import Prompt
from .state import Event
from .steps import Item, Step, prompt_id


class Host(manual.Host, recovery.Host, Protocol):
    """What the items of a task step need of the run executing them (the Runner)."""

    def ask(self, prompt: Prompt) -> dict[str, Any]: ...
    console: Any
    faults: Any
    def context(self, step: Step, item: dict[str, Any], args: dict[str, Any], deadline: float | None,
                progress: Callable[[str], None] = ...) -> Context: ...
    def emit(self, kind: Event, data: dict[str, Any], flush: bool = False) -> None: ...
    def invoke(self, plugin: Plugin, ctx: Context, probe: bool = False) -> Outcome: ...
    plan: Any
    def record(self, sid: str, key: str, plugin: Plugin, outcome: Outcome, duration: float, flush: bool,
               recovered: str = "", attempt: tuple[int, int] | None = None) -> None: ...
    registry: Any
    def render(self, text: str, sid: str) -> str: ...
    def resolve(self, value: Any, sid: str) -> Any: ...
    @property
    def state(self) -> Any: ...


def run_task(runner: Host, step: Step, deadline: float | None) -> StepResult:
    """requires -> confirm -> do -> verify, as a result. Under ``on_failure: continue`` a failed
    check does not end the step: the section's other checks and manual items still run or are
    asked (but nothing acts after a failed guard); a failed action always ends the step."""
    failed: list[str] = []
    ended = run_section(runner, step, Section.REQUIRES, deadline, failed)
    if ended is not None:
        return ended
    if failed:
        return results.failed("; ".join(failed))
    if step.confirm:
        answered = runner.state.prompts.get(prompt_id(step.id, "confirm"))
        text = runner.render(step.confirm, step.id)
        answer = answered["answer"] if answered else runner.ask(Prompt(prompt_id(step.id, "confirm"), "confirm", text))
        if not answer.get("done"):
            return results.failed(f"the operator declined: {text}")
    for section in (Section.DO, Section.VERIFY):
        ended = run_section(runner, step, section, deadline, failed)
        if ended is not None:
            return ended
    return results.failed("; ".join(failed)) if failed else results.OK


def run_section(runner: Host, step: Step, section: Section, deadline: float | None,
                failed: list[str]) -> StepResult | None:
    """A section's items in order; consecutive manual items are asked as one checklist. A failure
    tolerated under ``on_failure: continue`` is added to ``failed``; one that ends the step is returned."""
    pending: list[Item] = []
    for item in step.section(section):
        if item.manual is not None:
            pending.append(item)
            continue
        if pending:
            ended = manual.run_manual(runner, step, pending)
            if ended is not None:
                return ended
            pending = []
        end = run_automated(runner, step, item, deadline)
        if end is not None and end.continued:
            failed.append(end.reason)
        elif end is not None:
            return end
    return manual.run_manual(runner, step, pending) if pending else None


def run_automated(runner: Host, step: Step, item: Item, deadline: float | None) -> StepResult | None:
    """Run a check or an action (with the step's automatic retries). None when it passed or was
    skipped by a decision; a failed result when it did not: ``continued`` for a check that failed
    under ``on_failure: continue`` (the step goes on), else the step ends."""
    known = decide.journal_facts(runner.state, step.id, item.key)
    if decide.item_next(decide.ItemFacts(done=known["done"])) is decide.ItemNext.KEEP:
        return None                  # done: never repeated, its outputs come from the journal
    plugin = runner.registry[item.uses]
    tries = 0
    while True:
        tries += 1
        attempts = step.retry.attempts
        outcome = call(runner, step, item, plugin, deadline, attempt=(tries, attempts) if attempts > 1 else None)
        if isinstance(outcome, StepResult):
            return outcome           # the operator aborted the recovery of an interrupted action
        if outcome.passed:
            return None
        if outcome.outputs.get("park"):
            raise Parked(f"{step.id}.{item.key}: {outcome.summary}")
        if deadline is not None and clock.monotonic() > deadline:
            return results.failed(f"step {step.id} timed out after {step.timeout:g} s ({item.key}: "
                                  f"{outcome.summary})", offer=True)
        if tries < step.retry.attempts:
            clock.sleep(step.retry.delay)
            continue
        if plugin.kind is PluginKind.ACTION:
            return results.failed(f"{item.key}: {outcome.summary}", offer=True)
        if step.continues:
            return StepResult("failed", f"{item.key}: {outcome.summary}", continued=True)
        decision = on_fail.check_on_fail(runner, step, item.key, outcome.summary)
        if isinstance(decision, StepResult):
            return decision          # aborted, or nobody to ask
        if not decision:
            return None              # skipped by the operator (recorded)
        tries = 0


def call(runner: Host, step: Step, item: Item, plugin: Plugin, deadline: float | None,
         attempt: tuple[int, int] | None = None) -> Outcome | StepResult:
    """One call of a check or an action: arguments resolved and checked, an action's intent
    made durable first (and an interrupted one recovered), the outcome recorded."""
    key = item.key
    target = f"{step.id}.{key}"
    args = runner.resolve(item.with_, step.id)
    # validation checked arguments written as literals against the plugin's schema already: only
    # what templates resolved to is checked here (validate once, resolve once)
    problem = "" if item.checked else argument_problem(plugin, args)
    if problem:
        outcome = Outcome.fail(f"{plugin.name}: {problem} (after resolving the templates in 'with:')")
        runner.record(step.id, key, plugin, outcome, 0.0, flush=True)
        return outcome
    ctx = runner.context(step, item.data, args, deadline)
    started = clock.monotonic()
    if plugin.kind is PluginKind.ACTION:
        if decide.journal_facts(runner.state, step.id, key)["interrupted"]:
            mine = runner.state.steps[step.id].items[key]
            recovery.outlived(runner, step, key, mine.process)
            recovered = recovery.recover(runner, step, item, plugin, ctx)
            if recovered is not None:
                return recovered
        runner.faults.crash(target, "before-intent")
        runner.emit(Event.ITEM_INTENT, {"step": step.id, "item": key, "uses": plugin.name, "args": args}, flush=True)
        runner.faults.crash(target, "after-intent")
        ctx.child_started = lambda pid: runner.emit(Event.ITEM_PROCESS, {
            "step": step.id, "item": key, "pid": pid, "started": proc.start_time(pid), "host": identity.host(),
            "state": "running"}, flush=True)
        outcome = runner.faults.failing(target, runner.plan.name) or runner.invoke(plugin, ctx)
        runner.faults.crash(target, "after-effect")
    elif item.data.get("wait"):
        outcome = runner.faults.failing(target, runner.plan.name) or poll(runner, plugin, item.data, ctx, target)
    else:
        outcome = runner.faults.failing(target, runner.plan.name) or runner.invoke(plugin, ctx)
    runner.record(step.id, key, plugin, outcome, clock.monotonic() - started, flush=plugin.kind is PluginKind.ACTION,
                attempt=attempt)
    return outcome


def poll(runner: Host, plugin: Plugin, item: dict[str, Any], ctx: Context, target: str) -> Outcome:
    """A check with ``wait:``: call it until it passes (or says it never will) or time runs out."""
    wait = item["wait"]
    timeout = float(wait["timeout"])
    interval = float(wait.get("interval", 5))
    outcome = runner.invoke(plugin, ctx)
    if outcome.passed:
        return outcome
    waiting = runner.console.waiting(f"waiting for {target} (up to {timeout:.0f} s): {outcome.summary}") \
        if runner.console is not None else quiet()
    last = [outcome]
    with waiting as update:
        def settled() -> bool:
            return last[-1].passed or bool(last[-1].outputs.get("final"))

        def again(waited: float) -> None:      # after each wait's interval: look again
            clock.sleep(interval)
            last.append(runner.invoke(plugin, ctx))
            update(f"waiting for {target} ({max(0.0, timeout - waited - interval):.0f} s left, try "
                   f"{len(last)}): {last[-1].summary}")

        clock.wait_until(settled, timeout, interval, on_tick=again, sleep=False)
    outcome = last[-1]
    if not outcome.passed:
        outcome.summary = f"still failing after {timeout:.0f} s ({len(last)} tries): {outcome.summary}"
    return outcome
