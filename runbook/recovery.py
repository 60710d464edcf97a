"""An action interrupted after its intent: its command, if it outlived the engine, waited for
(or stopped); then whether its effect happened found out (the author's probe, the plugin's
probe, the step's verify checks, else the operator)."""

from __future__ import annotations

from dataclasses import replace

from typing import Any, Callable, Protocol

from . import clock, decide, identity, on_fail, proc
from .decide import ItemNext
from .console import quiet
from .errors import Parked
from .model import Section
from .results import StepResult
from .plugins import Context, Outcome, Plugin, argument_problem
from .prompts import Prompt
from .state import Event
from .steps import Item, Step, prompt_id


class Host(on_fail.Host, Protocol):
    """What recovery needs of the run."""

    def ask(self, prompt: Prompt) -> dict[str, Any]: ...
    console: Any
    def context(self, step: Step, item: dict[str, Any], args: dict[str, Any], deadline: float | None,
                progress: Callable[[str], None] = ...) -> Context: ...
    def emit(self, kind: Event, data: dict[str, Any], flush: bool = False) -> None: ...
    def invoke(self, plugin: Plugin, ctx: Context, probe: bool = False) -> Outcome: ...
    def record(self, sid: str, key: str, plugin: Plugin, outcome: Outcome, duration: float, flush: bool,
               recovered: str = "", attempt: tuple[int, int] | None = None) -> None: ...
    registry: Any
    def resolve(self, value: Any, sid: str) -> Any: ...


def outlived(runner: Host, step: Step, key: str, process: dict[str, Any] | None) -> None:
    """The interrupted action's command may still be running (the engine was killed, its
    command was not): before anything looks at its effect, wait for it to end, or stop it
    when the operator says so (``STEP.ITEM.running``; nobody to ask, or ``--yes``: wait)."""
    if not process or process.get("state") != "running" or process.get("host", identity.host()) != identity.host():
        return                   # a command on another machine is not this machine's to see
    pid, started = int(process["pid"]), str(process.get("started") or "")
    if not proc.group_alive(pid, started):
        return
    prompt = Prompt(prompt_id(step.id, key, "running"), "confirm",
                    f"{key}: its command from the interrupted session is still running (pid {pid}). "
                    "Wait for it to finish? (no: stop it now)")
    try:
        wait = bool(runner.ask(prompt).get("done"))
    except Parked:
        wait = True              # never stop a half-done command unasked
    if not wait:
        proc.stop_group(pid)
    waiting = runner.console.waiting(f"waiting for {step.id}.{key}'s command (pid {pid}) to end") \
        if runner.console is not None else quiet()
    with waiting as update:
        clock.wait_until(lambda: not proc.group_alive(pid, started), None, 0.1,
                         lambda waited: update(f"waiting for {step.id}.{key}'s command (pid {pid}) to end: "
                                               f"{waited:.0f} s"))
    runner.emit(Event.ITEM_PROCESS, {"step": step.id, "item": key, "pid": pid, "started": started,
                                   "state": "waited" if wait else "stopped"}, flush=True)


def recover(runner: Host, step: Step, item: Item, plugin: Plugin, ctx: Context) -> Outcome | StepResult | None:
    """An action was interrupted after its intent: find out whether its effect happened (the
    author's ``probe:``, else the plugin's probe, else the step's verify checks, else ask), each
    next look as ``decide.item_next`` says. Returns the recovered (or skipped) outcome, None (run
    the action), or the step's failed result when the operator aborts; with nobody to ask, the
    run parks."""
    key = item.key
    checks = list(step.automated(Section.VERIFY))
    facts = decide.ItemFacts(action=True, interrupted=True, verify=bool(checks), side_effect=plugin.side_effect,
                             probe="author" if item.probe is not None else "plugin" if plugin.probe is not None else "")
    found: Outcome | None = None
    while True:
        nxt = decide.item_next(facts)
        if nxt is ItemNext.PROBE:
            found = author_probe(runner, step, item) if facts.probe == "author" else runner.invoke(plugin, ctx, probe=True)
            # a failed probe could not look: whether the effect happened is unknown (verify, or ask)
            facts = replace(facts, probe_found="absent" if found is None else "present" if found.passed else "unknown")
        elif nxt is ItemNext.RECOVERED_BY_PROBE:
            assert found is not None
            if facts.probe == "plugin":
                found.summary = f"recovered by probe: {found.summary}"
            runner.record(step.id, key, plugin, found, 0.0, flush=True, recovered="probe")
            return found
        elif nxt is ItemNext.VERIFY:
            results = [runner.invoke(runner.registry[c.uses],
                                     runner.context(step, c.data, runner.resolve(c.with_, step.id), None))
                       for c in checks]
            facts = replace(facts, verify_passed=all(r.passed for r in results))
        elif nxt is ItemNext.RECOVERED_BY_VERIFY:
            outcome = Outcome.ok("recovered: interrupted after its intent, and the step's verify checks pass")
            runner.record(step.id, key, plugin, outcome, 0.0, flush=True, recovered="verify")
            return outcome                   # the step's later actions have not run: they run now
        elif nxt is ItemNext.ASK:            # nobody to ask raises Parked
            decision = on_fail.check_on_fail(
                runner, step, key, "was interrupted after its intent; whether it took effect is unknown (no probe, "
                "verify not passing)", park=True,
                question="Look whether it did: retry if it did not, skip (with what you saw) if it did, or abort?")
            if isinstance(decision, StepResult):
                return decision              # aborted: the step fails
            facts = replace(facts, answer="retry" if decision else "skip")
        elif nxt is ItemNext.SKIPPED:
            return Outcome(True, "skipped by the operator after an interruption")  # the skip is recorded
        else:
            assert nxt is ItemNext.RUN, nxt
            return None


def author_probe(runner: Host, step: Step, item: Item) -> Outcome | None:
    """Run an action's ``probe:`` check: its pass means the effect exists (its outputs become
    the action's), its failure that it does not (None); a check that could not look (it
    raised, or its arguments did not resolve) leaves the effect unknown (a failed Outcome)."""
    spec = item.probe or {}
    plugin = runner.registry[str(spec.get("uses"))]
    args = runner.resolve(dict(spec.get("with") or {}), step.id)
    problem = argument_problem(plugin, args)
    if problem:
        return Outcome.fail(f"probe {plugin.name}: {problem}")
    found = runner.invoke(plugin, runner.context(step, dict(spec), args, None))
    if found.passed:
        return Outcome(True, f"recovered by probe {plugin.name}: {found.summary}",
                       {"probe": plugin.name, **found.evidence}, found.outputs)
    if found.evidence.get("error"):
        return found
    return None
