"""Executing a plan: steps, items, prompts, evidence, intents, recovery.

The Runner executes one run's steps and asks its collaborators for everything with a side
effect: the Recorder (journal and ledger), the plugin registry, the prompter chain, the
console. Every fact becomes a journal record and the run's state is folded from those
records, so a resumed run continues from exactly what was written. Step kinds are
dispatched through a table (``RUN_KIND``); approval gates live in ``approvals``.
"""

from __future__ import annotations

import os
import re
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import approvals, clock, conditions, proc, templates
from .errors import CheckFailed, Interrupted, Parked, RunbookError, StepFailed
from .locks import Fenced, LockRef
from .model import PluginKind, Section, StepKind
from .plan import Plan, merge
from .plugins import Context, Outcome, Plugin, Registry
from .prompts import Chain, Prompt
from .recorder import Recorder, crash, failing
from .redact import Redactor
from .state import Event, RunState, Status, StepStatus
from .steps import Item, Step, each_id, group_each, iteration

CRASH_POINTS = ("before-intent", "after-intent", "after-effect")
_EACH_ROOT = re.compile(r"^(.*?\[\d+\])")      # STEP[i] of STEP[i].INNER.ITEM
MAX_SCRIPTED_RETRIES = 3
_HOST = socket.gethostname()

__all__ = ["CRASH_POINTS", "LockRef", "Runner", "StepFailed"]


class _Declined(Exception):
    """An offered linked run was declined: the step is skipped, not failed."""


class _Ended(Exception):
    """A step with ``end:`` inside a for_each iteration succeeded: the run ends there."""

    def __init__(self, step: Step):
        super().__init__(step.id)
        self.step = step


@dataclass
class Runner:
    """One run's execution: every unfinished step of the plan, in order, until the run's end."""

    plan: Plan
    store: Any
    registry: Registry
    prompter: Chain
    operator: str
    run_id: str
    redactor: Redactor
    lock: LockRef
    root: Path
    console: Any = None
    make_plan: Callable[[str, dict[str, Any]], Plan] | None = None   # for run: and on_failure children
    recorder: Recorder = field(init=False)
    _scripted_retries: dict[str, int] = field(default_factory=dict)
    _each: dict[str, dict[str, Any]] = field(default_factory=dict)   # STEP[i] -> {of, index, value}
    _asking: Any = field(default_factory=threading.RLock)          # one prompt at a time
    _parallel: int = 0                                               # for_each iterations in threads now

    def __post_init__(self) -> None:
        self.recorder = Recorder(self.store, self.run_id, self.operator, self.redactor, self._fence, self.console)

    # -- the journal, through the recorder ---------------------------------------------
    @property
    def state(self) -> RunState:
        """The run's state, folded from its journal by the recorder."""
        return self.recorder.state

    def open(self, create: bool, records: list[dict[str, Any]] | None = None) -> None:
        """Create this run's journal, or open it and fold the records it holds."""
        self.recorder.open(create, records)

    def _fence(self) -> None:
        if self.lock.key is not None:
            self.store.locks.check(self.lock.key, self.lock.owner, self.lock.epoch)

    def emit(self, kind: Event, data: dict[str, Any], flush: bool = False) -> None:
        """One journal record (redacted, shown on the console); a for_each iteration's records carry
        its index and value."""
        each = self.each_of(str(data.get("step") or data.get("id") or ""))
        if each is not None and "each" not in data:
            data = {**data, "each": {"index": each["index"], "value": each["value"]}}
        self.recorder.emit(kind, data, flush)

    def flush(self, anchor: bool = False) -> None:
        """Write what is buffered as one group commit (and anchor it in the ledger when asked)."""
        self.recorder.flush(anchor)

    def step_done(self) -> None:
        """A step's end: anchored in the ledger when the step acted or asked (a step of checks
        only waits for the next anchor; every run status is anchored)."""
        self.flush(anchor=self.recorder.acted)

    # -- the run -----------------------------------------------------------------------
    def start(self, parent: dict[str, Any] | None = None, overlay: dict[str, Any] | None = None) -> None:
        """Write the run's first records (the caller holds the lock)."""
        from .store import salted_hash

        self.open(create=True)
        env_name = self.plan.env.name if self.plan.env else None
        started = self.recorder.start({"runbook": self.plan.name, "environment": env_name,
                                       "operator": self.operator, "parent": parent})
        self.emit(Event.RUN_STARTED, {
            "ledger": {"seq": started["seq"], "hash": started["hash"]},   # audit.verify checks the start by it
            "runbook": self.plan.name, "title": self.plan.title, "file": str(self.plan.file),
            "environment": env_name, "digest": self.plan.digest, "params": self.plan.params.public(),
            "secret_hashes": {k: salted_hash(v) for k, v in self.plan.params.secrets.items()},
            "lock": self.lock.key, "lock_owner": self.lock.owner, "lock_epoch": self.lock.epoch,
            "parent": parent, "plugins": self.plan.plugins, "overlay": overlay or {},
            "includes": {k: str(v) for k, v in self.plan.includes.items()},
        })
        self.session(resume=False)

    def session(self, resume: bool) -> None:
        """Record who runs this session, where."""
        self.emit(Event.SESSION, {"resume": resume, "host": socket.gethostname(), "pid": os.getpid(),
                                  "operator": self.operator}, flush=True)

    def execute(self) -> Status:
        """Run every unfinished step; returns the final status (raises Interrupted on signals,
        Fenced when the lock was taken over)."""
        try:
            offer = self.state.offer
            if offer and offer.get("accepted") and self.plan.on_failure:
                # the run failed after its `after` step and its on_failure runbook was accepted: a
                # resume finishes that linked run; the run's own failed step is never run again
                return self.rolled_back(self.state.failure or self.state.reason, self.run_on_failure())
            for step in group_each(self.plan.steps):
                if not self.state.finished(step.id):
                    self.run_step(step)
                if step.end and self.state.steps[step.id].status is StepStatus.SUCCEEDED:
                    return self.end_at(step)
        except _Ended as exc:
            return self.end_at(exc.step)
        except Fenced:
            self.stop_fenced()
            raise
        except Parked as exc:
            self.emit(Event.PARKED, {"reason": str(exc)})
            self.flush(anchor=True)
            return Status.PARKED
        except Interrupted as exc:
            from . import signals

            signals.ignore_during_cleanup()
            self.emit(Event.INTERRUPTED, {"reason": str(exc)})
            self.flush(anchor=True)
            raise
        except (StepFailed, CheckFailed) as exc:
            self.emit(Event.FAILED, {"reason": str(exc)})
            self.flush(anchor=True)
            return self.offer_on_failure(str(exc))
        self.emit(Event.SUCCEEDED, {"deviations": len(self.state.deviations)})
        self.flush(anchor=True)
        return Status.SUCCEEDED

    def end_at(self, step: Step) -> Status:
        """``end:``: the run ends at this step, with its status and the step's title as the reason
        (``failed`` offers the ``on_failure`` runbook like any failure)."""
        reason = f"ended at step {step.id}: {self.render(step.title, step.id) or step.id}"
        if step.end == "failed":
            self.emit(Event.FAILED, {"reason": reason, "ended_at": step.id})
            self.flush(anchor=True)
            return self.offer_on_failure(reason)
        self.emit(Event.SUCCEEDED, {"deviations": len(self.state.deviations), "ended_at": step.id, "reason": reason})
        self.flush(anchor=True)
        return Status.SUCCEEDED

    def rolled_back(self, reason: str, child: Status | None) -> Status:
        """After the accepted on_failure runbook: ``rolled-back`` when it succeeded (final, the
        lock is released), else the run stays failed and the linked run resumable."""
        link = self.state.children.get("run.on_failure") or {}
        if child is Status.SUCCEEDED:
            self.emit(Event.ROLLED_BACK, {"reason": reason, "by_run": link.get("run"),
                                          "runbook": (self.plan.on_failure or {}).get("runbook")})
            self.flush(anchor=True)
            return Status.ROLLED_BACK
        if child is Status.PARKED:        # the rollback waits for a person: so does this run
            self.emit(Event.PARKED, {"reason": f"{reason}; its {(self.plan.on_failure or {}).get('runbook')} run "
                                               f"{link.get('run')} is parked (needs a person)"})
            self.flush(anchor=True)
            return Status.PARKED
        if self.state.status is not Status.FAILED:
            self.emit(Event.FAILED, {"reason": reason})
            self.flush(anchor=True)
        return Status.FAILED

    def stop_fenced(self) -> None:
        """This run's lock was taken over: stop at once and write nothing more (not even to its own
        journal: the run that took over closes it, ``rolled-back``, once it has succeeded; until
        then every command shows it ``interrupted``, as its journal is open and its lock gone)."""
        from . import signals

        signals.ignore_during_cleanup()
        self.recorder.drop()

    # -- steps -------------------------------------------------------------------------
    def run_step(self, step: Step) -> None:
        """Run one step to its end: succeeded, skipped, failed-and-continued, or StepFailed.

        A step that did not finish (a crash, Ctrl-C, a failed check, gate, action or linked run,
        an abort) starts again: its checks, gate and confirm run or are asked again, what it did
        stays done. The only way past a failure is a typed skip, journaled as a deviation."""
        restart = step.id in self.state.steps
        self.emit(Event.STEP_STARTED, {"step": step.id, "title": self.render(step.title, step.id),
                                       "instructions": self.render(step.instructions, step.id),
                                       **({"restart": True} if restart else {})}, flush=restart)
        skip = self.skip_reason(step)
        if skip:
            self.finish_step(step.id, StepStatus.SKIPPED, reason=skip)
            return
        deadline = clock.monotonic() + step.timeout if step.timeout else None
        while True:
            try:
                (Runner.run_each if step.members else RUN_KIND[step.kind])(self, step, deadline)
            except _Declined as exc:
                self.finish_step(step.id, StepStatus.SKIPPED, reason=str(exc))
                return
            except StepFailed as exc:
                if step.continues:
                    self.finish_step(step.id, StepStatus.FAILED, reason=f"{exc} (on_failure: continue)",
                                     continued=True)
                    return
                choice = self.decide_step(step, exc)
                if choice == "retry":
                    self.emit(Event.STEP_STARTED, {"step": step.id, "title": self.render(step.title, step.id),
                                                   "restart": True},
                              flush=True)      # the state forgets the step's checks, gate and confirm
                    continue
                if choice == "skip":
                    return
                self.finish_step(step.id, StepStatus.FAILED, reason=str(exc))
                raise
            self.finish_step(step.id, StepStatus.SUCCEEDED)
            return

    def finish_step(self, sid: str, status: StepStatus, **data: Any) -> None:
        """Record a step's end (and anchor it when it acted or asked)."""
        self.emit(Event.STEP_FINISHED, {"step": sid, "status": status.value,
                                        **{k: v for k, v in data.items() if v not in ("", None, False)}})
        self.step_done()

    def decide_step(self, step: Step, exc: StepFailed) -> str:
        """After a failed gate, action or linked run: ``STEP.on_fail`` (retry / skip with a typed
        reason / abort). Returns "retry" or "skip" (the skip is journaled); "abort" otherwise.
        With nobody to ask: abort, or park when the failure needs a person (a refused approval)."""
        if not exc.offer:
            return "abort"
        prompt = Prompt(f"{step.id}.on_fail", "on_fail",
                        f"Step {step.id} failed: {exc}. Retry, skip (with a reason) or abort?")
        try:
            answer, source = self.ask_with_source(prompt)
        except Parked:
            if exc.park:
                raise Parked(f"{step.id}: {exc}") from None
            return "abort"
        choice = answer.get("choice")
        if choice == "retry" and not self.scripted_retry_allowed(prompt.id, source):
            exc.args = (f"{exc} (still failing after {MAX_SCRIPTED_RETRIES} retries from {source})",)
            return "abort"
        if choice == "skip":
            reason = str(answer.get("reason") or "").strip()
            if not reason:
                return "abort"
            env = self.plan.env
            if step.kind is StepKind.APPROVAL and env is not None and env.protected:
                exc.args = (f"{exc} (an approval gate cannot be skipped on protected environment {env.name!r})",)
                return "abort"
            self.finish_step(step.id, StepStatus.SKIPPED, reason=f"skipped after: {exc}; {reason}", decision="skip",
                             by=self.operator if source == "interactive" else source)
        return choice if choice in ("retry", "skip") else "abort"

    def scripted_retry_allowed(self, pid: str, source: str) -> bool:
        """An answers file that says retry would loop forever: allow a few, then stop."""
        if source == "interactive":
            return True
        count = self._scripted_retries.get(pid, 0) + 1
        self._scripted_retries[pid] = count
        return count <= MAX_SCRIPTED_RETRIES

    def skip_reason(self, step: Step) -> str:
        """Why the step's own conditions skip it ('' when it runs)."""
        for cond in step.conditions:
            resolved = self.resolve(cond.value, step.id)
            try:
                value = conditions.evaluate(resolved)
            except conditions.ConditionError as exc:
                raise StepFailed(f"{cond.key}: {conditions.text(cond.written)} cannot be decided: {exc}") from None
            if (cond.key == "when" and not value) or (cond.key == "unless" and value):
                found = f" ({conditions.text(resolved)})" if isinstance(resolved, dict) and resolved != cond.written \
                    else ""
                return f"{cond.key}: {conditions.text(cond.written)} is {str(value).lower()}{found}"
        return ""

    def run_task(self, step: Step, deadline: float | None) -> None:
        """requires -> confirm -> do -> verify. Under ``on_failure: continue`` a failed check does
        not end the step: the section's other checks and manual items still run or are asked
        (but nothing acts after a failed guard); a failed action always ends the step."""
        failed: list[str] = []
        self.run_section(step, Section.REQUIRES, deadline, failed)
        if failed:
            raise StepFailed("; ".join(failed))
        if step.confirm:
            answered = self.state.prompts.get(f"{step.id}.confirm")
            text = self.render(step.confirm, step.id)
            answer = answered["answer"] if answered else self.ask(Prompt(f"{step.id}.confirm", "confirm", text))
            if not answer.get("done"):
                raise StepFailed(f"the operator declined: {text}")
        self.run_section(step, Section.DO, deadline, failed)
        self.run_section(step, Section.VERIFY, deadline, failed)
        if failed:
            raise StepFailed("; ".join(failed))

    def run_section(self, step: Step, section: Section, deadline: float | None, failed: list[str]) -> None:
        """A section's items in order; consecutive manual items are asked as one checklist."""
        pending: list[Item] = []
        for item in step.section(section):
            if item.manual is not None:
                pending.append(item)
                continue
            if pending:
                self.run_manual(step, pending)
                pending = []
            problem = self.run_automated(step, item, deadline)
            if problem:
                failed.append(problem)
        if pending:
            self.run_manual(step, pending)

    # -- manual items ------------------------------------------------------------------
    def run_manual(self, step: Step, items: list[Item]) -> None:
        """Ask the items not answered yet, as one checklist; an item not done needs a reason."""
        done = self.state.steps.get(step.id)
        todo = [Prompt(f"{step.id}.{item.key}", "manual", self.render(str(item.manual), step.id),
                       evidence=item.evidence, extra={"key": item.key})
                for item in items if not (done and item.key in done.items and done.items[item.key].done)]
        if not todo:
            return
        self.flush()
        with self._asking:
            answers = self.prompter.checklist(todo)
        for prompt in todo:
            answer, source = answers[prompt.id]
            answer = self.complete_manual(prompt, answer, source)
            self.emit(Event.PROMPT, {"id": prompt.id, "kind": "manual", "question": prompt.text, "answer": answer,
                                     "source": source, "by": self.operator})
            self.record_manual(step.id, prompt.extra["key"], answer, source)
        self.flush()

    def record_manual(self, sid: str, key: str, answer: dict[str, Any], source: str) -> None:
        """A manual item's answer as its result: done (with its evidence), or not done with a reason."""
        outputs = {"done": bool(answer.get("done")), "note": answer.get("note", ""), "link": answer.get("link", "")}
        if answer.get("done"):
            self.emit(Event.ITEM_RESULT, {"step": sid, "item": key, "manual": True, "passed": True,
                                          "summary": "done" + (f": {answer['note']}" if answer.get("note") else "")
                                          + (f" ({answer['link']})" if answer.get("link") else ""),
                                          "outputs": outputs, "evidence": {"answered_by": self.operator,
                                                                            "source": source}})
        elif answer.get("reason"):
            self.emit(Event.ITEM_RESULT, {"step": sid, "item": key, "manual": True, "passed": False,
                                          "skipped": True, "reason": answer["reason"],
                                          "summary": "not done", "outputs": outputs})
        else:
            self.flush()
            raise StepFailed(f"{sid}.{key} is not done and no reason was given")

    def complete_manual(self, prompt: Prompt, answer: dict[str, Any], source: str) -> dict[str, Any]:
        """Evidence an item requires must be there; ask for it when a person is at hand."""
        if not answer.get("done") or prompt.evidence == "none" or answer.get(prompt.evidence):
            return answer
        from .answers import link_problem

        follow = Prompt(prompt.id, "text", f"{prompt.evidence.capitalize()} for '{prompt.text}':",
                        validate=(lambda v: link_problem(v) or None) if prompt.evidence == "link" else None)
        if self.prompter.has_person:
            extra = self.prompter.interactive.answer(follow) or {}
            answer = dict(answer, **{prompt.evidence: extra.get("value", "")})
            if answer.get(prompt.evidence):
                return answer
        raise Parked(f"needs a person: {prompt.id} requires a {prompt.evidence} as evidence ({source} gave none)")

    # -- automated items ---------------------------------------------------------------
    def run_automated(self, step: Step, item: Item, deadline: float | None) -> str:
        """Run a check or an action (with the step's automatic retries). Returns '' when it passed
        or was skipped by a decision, the failure when a check failed under ``on_failure:
        continue``; raises StepFailed when the step must end."""
        current = self.state.steps.get(step.id)
        if current and item.key in current.items and current.items[item.key].done:
            return ""
        plugin = self.registry[item.uses]
        tries = 0
        while True:
            tries += 1
            attempts = step.retry.attempts
            outcome = self.call(step, item, plugin, deadline, attempt=(tries, attempts) if attempts > 1 else None)
            if outcome.passed:
                return ""
            if outcome.outputs.get("park"):
                raise Parked(f"{step.id}.{item.key}: {outcome.summary}")
            if deadline is not None and clock.monotonic() > deadline:
                raise StepFailed(f"step {step.id} timed out after {step.timeout:g} s ({item.key}: {outcome.summary})",
                                 offer=True)
            if tries < step.retry.attempts:
                clock.sleep(step.retry.delay)
                continue
            if plugin.kind is PluginKind.ACTION:
                raise StepFailed(f"{item.key}: {outcome.summary}", offer=True)
            if step.continues:
                return f"{item.key}: {outcome.summary}"
            if not self.decide(step, item.key, outcome.summary):
                return ""
            tries = 0

    def decide(self, step: Step, key: str, summary: str, park: bool = False,
               question: str = "Retry, skip or abort?") -> bool:
        """After a failed check (or an action whose effect is unknown, ``park``): ``STEP.ITEM.on_fail``.
        True to retry, False when skipped (journaled); raises StepFailed on abort.

        With nobody to ask, a failed check fails the step; an unknown effect parks the run.
        """
        pid = f"{step.id}.{key}.on_fail"
        prompt = Prompt(pid, "on_fail", f"{key} {'failed: ' if not park else ''}{summary}. {question}")
        try:
            answer, source = self.ask_with_source(prompt)
        except Parked:
            if park:
                raise
            raise StepFailed(f"{key}: {summary}") from None
        choice = answer.get("choice")
        if choice == "retry":
            if not self.scripted_retry_allowed(pid, source):
                raise StepFailed(f"{key}: {summary} (still failing after {MAX_SCRIPTED_RETRIES} retries "
                                 f"from {source})")
            return True
        if choice == "skip":
            self.emit(Event.ITEM_RESULT, {"step": step.id, "item": key, "passed": False, "skipped": True,
                                          "reason": answer.get("reason", ""), "summary": f"skipped after: {summary}",
                                          "outputs": {}, "kind": PluginKind.ACTION.value if park else "check",
                                          **({"recovered": "operator"} if park else {})})
            self.flush()
            return False
        raise StepFailed(f"{key}: {summary} (aborted by {self.operator if source == 'interactive' else source})")

    def context(self, step: Step, item: dict[str, Any], args: dict[str, Any],
                deadline: float | None, progress: Callable[[str], None] = lambda m: None) -> Context:
        """The narrow context a plugin receives."""
        env = merge(self.plan.env.data, self.plan.env.overlay) if self.plan.env else {}
        timeout = item.get("timeout")
        if deadline is not None:
            left = max(0.1, deadline - clock.monotonic())
            timeout = min(timeout, left) if timeout else left
        from .history import History

        started = self.state.steps.get(step.id)
        return Context(args=args, env=env, root=self.root, redact=self.redactor.text,
                       store_blob=lambda data: self.store.store_blob(self.run_id, self.redactor.text(
                           data.decode("utf-8", "replace")).encode()),
                       results=_ReadOnly(self.state), progress=progress, timeout=timeout,
                       checkout=self.checkout, operator=self.operator, run_id=self.run_id, item=item,
                       history=History(self.store, exclude=self.run_id),
                       env_name=self.plan.env.name if self.plan.env else "",
                       output=self.console.output if self.console is not None and self.console.verbose else None,
                       step_started=started.started if started else "",
                       step_active_s=started.active_s if started else 0.0)

    @property
    def checkout(self) -> Path:
        """The run's own clone of ``env.git.remote`` (``${run.checkout}``)."""
        return Path(self.store.run_dir(self.run_id)) / "work" / "checkout"

    def call(self, step: Step, item: Item, plugin: Plugin, deadline: float | None,
             attempt: tuple[int, int] | None = None) -> Outcome:
        """One call of a check or an action: arguments resolved and checked, an action's intent
        made durable first (and an interrupted one recovered), the outcome recorded."""
        key = item.key
        target = f"{step.id}.{key}"
        args = self.resolve(item.with_, step.id)
        problem = argument_problem(plugin, args)
        if problem:
            outcome = Outcome.fail(f"{plugin.name}: {problem} (after resolving the templates in 'with:')")
            self.record(step.id, key, plugin, outcome, 0.0, flush=True)
            return outcome
        ctx = self.context(step, item.data, args, deadline)
        started = clock.monotonic()
        if plugin.kind is PluginKind.ACTION:
            current = self.state.steps.get(step.id)
            mine = current.items.get(key) if current else None
            if mine is not None and mine.intent is not None and mine.result is None:
                self.outlived(step, key, mine.process)
                recovered = self.recover(step, item, plugin, ctx)
                if recovered is not None:
                    return recovered
            crash(target, "before-intent")
            self.emit(Event.ITEM_INTENT, {"step": step.id, "item": key, "uses": plugin.name, "args": args}, flush=True)
            crash(target, "after-intent")
            ctx.child_started = lambda pid: self.emit(Event.ITEM_PROCESS, {
                "step": step.id, "item": key, "pid": pid, "started": proc.start_time(pid), "host": _HOST,
                "state": "running"}, flush=True)
            outcome = failing(target, self.plan.name) or self.invoke(plugin, ctx)
            crash(target, "after-effect")
        elif item.data.get("wait"):
            outcome = failing(target, self.plan.name) or self.poll(plugin, item.data, ctx, target)
        else:
            outcome = failing(target, self.plan.name) or self.invoke(plugin, ctx)
        self.record(step.id, key, plugin, outcome, clock.monotonic() - started, flush=plugin.kind is PluginKind.ACTION,
                    attempt=attempt)
        return outcome

    def record(self, sid: str, key: str, plugin: Plugin, outcome: Outcome, duration: float, flush: bool,
               recovered: str = "", attempt: tuple[int, int] | None = None) -> None:
        """An item's outcome as a journal record (with ``attempt`` N of M under ``retry:``)."""
        data = {"step": sid, "item": key, "uses": plugin.name, "kind": plugin.kind.value,
                "passed": outcome.passed, "summary": outcome.summary,
                "evidence": outcome.evidence, "outputs": outcome.outputs, "duration_s": round(duration, 4)}
        if recovered:
            data["recovered"] = recovered
        if attempt is not None:
            data["attempt"], data["attempts"] = attempt
        self.emit(Event.ITEM_RESULT, data, flush=flush)

    def invoke(self, plugin: Plugin, ctx: Context, probe: bool = False) -> Outcome:
        """Call plugin code; its unexpected errors become a failed outcome, named and recorded."""
        fn = plugin.probe if probe else plugin.func
        assert fn is not None
        waiting = self.console.waiting(f"{plugin.name} ...") if self.console is not None and not self._parallel \
            else _null_wait()
        try:
            with waiting as update:
                ctx.progress = update
                result = fn(ctx)
        except (Interrupted, Parked, Fenced, KeyboardInterrupt):
            raise
        except RunbookError as exc:
            return Outcome.fail(f"{plugin.name}: {exc}", {"error": type(exc).__name__})
        except Exception as exc:  # plugin code is foreign: its crash is an outcome, not ours
            return Outcome.fail(f"{plugin.name} raised {type(exc).__name__}: {self.redactor.text(str(exc))}",
                                {"error": type(exc).__name__})
        if probe:
            return result  # type: ignore[return-value]
        if not isinstance(result, Outcome):
            return Outcome.fail(f"{plugin.name} returned {type(result).__name__}, not an Outcome")
        return result

    def poll(self, plugin: Plugin, item: dict[str, Any], ctx: Context, target: str) -> Outcome:
        """A check with ``wait:``: call it until it passes (or says it never will) or time runs out."""
        wait = item["wait"]
        timeout = float(wait["timeout"])
        interval = float(wait.get("interval", 5))
        outcome = self.invoke(plugin, ctx)
        if outcome.passed:
            return outcome
        waiting = self.console.waiting(f"waiting for {target} (up to {timeout:.0f} s): {outcome.summary}") \
            if self.console is not None else _null_wait()
        last = [outcome]
        with waiting as update:
            def settled() -> bool:
                return last[-1].passed or bool(last[-1].outputs.get("final"))

            def again(waited: float) -> None:      # after each wait's interval: look again
                clock.sleep(interval)
                last.append(self.invoke(plugin, ctx))
                update(f"waiting for {target} ({max(0.0, timeout - waited - interval):.0f} s left, try "
                       f"{len(last)}): {last[-1].summary}")

            clock.wait_until(settled, timeout, interval, on_tick=again, sleep=False)
        outcome = last[-1]
        if not outcome.passed:
            outcome.summary = f"still failing after {timeout:.0f} s ({len(last)} tries): {outcome.summary}"
        return outcome

    def outlived(self, step: Step, key: str, process: dict[str, Any] | None) -> None:
        """The interrupted action's command may still be running (the engine was killed, its
        command was not): before anything looks at its effect, wait for it to end, or stop it
        when the operator says so (``STEP.ITEM.running``; nobody to ask, or ``--yes``: wait)."""
        if not process or process.get("state") != "running" or process.get("host", _HOST) != _HOST:
            return                   # a command on another machine is not this machine's to see
        pid, started = int(process["pid"]), str(process.get("started") or "")
        if not proc.group_alive(pid, started):
            return
        prompt = Prompt(f"{step.id}.{key}.running", "confirm",
                        f"{key}: its command from the interrupted session is still running (pid {pid}). "
                        "Wait for it to finish? (no: stop it now)")
        try:
            wait = bool(self.ask(prompt).get("done"))
        except Parked:
            wait = True              # never stop a half-done command unasked
        if not wait:
            proc.stop_group(pid)
        waiting = self.console.waiting(f"waiting for {step.id}.{key}'s command (pid {pid}) to end") \
            if self.console is not None else _null_wait()
        with waiting as update:
            clock.wait_until(lambda: not proc.group_alive(pid, started), None, 0.1,
                             lambda waited: update(f"waiting for {step.id}.{key}'s command (pid {pid}) to end: "
                                                   f"{waited:.0f} s"))
        self.emit(Event.ITEM_PROCESS, {"step": step.id, "item": key, "pid": pid, "started": started,
                                       "state": "waited" if wait else "stopped"}, flush=True)

    def recover(self, step: Step, item: Item, plugin: Plugin, ctx: Context) -> Outcome | None:
        """An action was interrupted after its intent: find out whether its effect happened (the
        author's ``probe:``, else the plugin's probe, else the step's verify checks, else ask)."""
        key = item.key
        if item.probe is not None:
            found = self.author_probe(step, item)
            if found is None:
                return None                      # the effect does not exist: run the action
            if found.passed:
                self.record(step.id, key, plugin, found, 0.0, flush=True, recovered="probe")
                return found
        elif plugin.probe is not None:
            found = self.invoke(plugin, ctx, probe=True)
            if found is None:
                return None                      # the effect did not happen: run the action
            if found.passed:
                found.summary = f"recovered by probe: {found.summary}"
                self.record(step.id, key, plugin, found, 0.0, flush=True, recovered="probe")
                return found
            # the probe itself failed: whether the effect happened is unknown; verify or ask
        checks = list(step.automated(Section.VERIFY))
        if checks:
            results = [self.invoke(self.registry[c.uses], self.context(step, c.data, self.resolve(c.with_, step.id),
                                                                       None))
                       for c in checks]
            if all(r.passed for r in results):
                outcome = Outcome.ok("recovered: interrupted after its intent, and the step's verify checks pass")
                self.record(step.id, key, plugin, outcome, 0.0, flush=True, recovered="verify")
                return outcome                   # the step's later actions have not run: they run now
        if not plugin.side_effect:
            return None
        summary = "was interrupted after its intent; whether it took effect is unknown (no probe, verify not passing)"
        if self.decide(step, key, summary, park=True,
                       question="Look whether it did: retry if it did not, skip (with what you saw) if it did, "
                                "or abort?"):
            return None
        return Outcome(True, "skipped by the operator after an interruption")  # the skip is recorded

    def author_probe(self, step: Step, item: Item) -> Outcome | None:
        """Run an action's ``probe:`` check: its pass means the effect exists (its outputs become
        the action's), its failure that it does not (None); a check that could not look (it
        raised, or its arguments did not resolve) leaves the effect unknown (a failed Outcome)."""
        spec = item.probe or {}
        plugin = self.registry[str(spec.get("uses"))]
        args = self.resolve(dict(spec.get("with") or {}), step.id)
        problem = argument_problem(plugin, args)
        if problem:
            return Outcome.fail(f"probe {plugin.name}: {problem}")
        found = self.invoke(plugin, self.context(step, dict(spec), args, None))
        if found.passed:
            return Outcome(True, f"recovered by probe {plugin.name}: {found.summary}",
                           {"probe": plugin.name, **found.evidence}, found.outputs)
        if found.evidence.get("error"):
            return found
        return None

    # -- approval gates ----------------------------------------------------------------
    def run_approval(self, step: Step, deadline: float | None = None) -> None:
        """The step's gate (see ``approvals``)."""
        approvals.run_gate(self, step)

    # -- linked runs -------------------------------------------------------------------
    def run_child(self, step: Step, deadline: float | None = None) -> None:
        """A ``run:`` step: its linked run, started (after its confirm) or resumed."""
        if step.confirm and step.id not in self.state.children:
            prompt = Prompt(f"{step.id}.confirm", "confirm", self.render(step.confirm, step.id))
            answered = self.state.prompts.get(prompt.id)
            answer = answered["answer"] if answered else self.ask(prompt)
            if not answer.get("done"):
                raise _Declined(f"declined: {prompt.text}")
        spec = self.resolve(step.run or {}, step.id)
        status = self.linked_run(step.id, spec["runbook"], spec.get("with") or {})
        if status is Status.PARKED:
            raise Parked(f"linked run for step {step.id} is parked")
        if status is not Status.SUCCEEDED:
            raise StepFailed(f"linked run of {spec['runbook']} {status.value}", offer=True)

    def linked_run(self, sid: str, runbook: str, given: dict[str, Any]) -> Status:
        """Start the linked run of ``sid``, or resume it where it stopped; its final status."""
        from .store import new_run_id

        known = self.state.children.get(sid)
        if known and known.get("status") == Status.SUCCEEDED.value:
            return Status.SUCCEEDED
        assert self.make_plan is not None
        child_plan = self.make_plan(runbook, given)
        if known:
            child_id = known["run"]
            child = self.child_runner(child_plan, child_id, sid)
            child.open(create=False, records=self.store.records(child_id))
            child.session(resume=True)
        else:
            child_id = new_run_id()
            self.emit(Event.CHILD_STARTED, {"step": sid, "run": child_id, "runbook": runbook}, flush=True)
            child = self.child_runner(child_plan, child_id, sid)
            child.start(parent={"run": self.run_id, "step": sid})
        status = child.execute()
        self.emit(Event.CHILD_FINISHED, {"step": sid, "run": child_id, "status": status.value}, flush=True)
        return status

    def child_runner(self, plan: Plan, run_id: str, link: str) -> "Runner":
        """A linked run's Runner: same store, lock and person; its prompts addressed as ``LINK/ID``."""
        return Runner(plan, self.store, self.registry, self.prompter.scoped(link), self.operator, run_id,
                      self.redactor, self.lock, self.root, self.console, self.make_plan)

    def offer_on_failure(self, reason: str) -> Status:
        """Offer the runbook's on_failure runbook when the failure came after its ``after`` step;
        the run ends ``rolled-back`` when it is accepted and succeeds, else ``failed``."""
        spec = self.plan.on_failure
        if not spec:
            return Status.FAILED
        after = spec.get("after")
        if after and not (after in self.state.steps and self.state.steps[after].status is StepStatus.SUCCEEDED):
            return Status.FAILED
        prompt = Prompt("run.on_failure", "run", f"Start {spec['runbook']} now?")
        try:
            answer, source = self.ask_with_source(prompt)
        except Parked:
            self.emit(Event.OFFER, {"runbook": spec["runbook"], "accepted": False, "reason": "nobody to ask"}, flush=True)
            return Status.FAILED
        accepted = bool(answer.get("done"))
        self.emit(Event.OFFER, {"runbook": spec["runbook"], "accepted": accepted, "source": source}, flush=True)
        return self.rolled_back(reason, self.run_on_failure()) if accepted else Status.FAILED

    def run_on_failure(self) -> Status:
        """The accepted on_failure runbook, as a linked run (started, or resumed where it stopped)."""
        spec = self.plan.on_failure or {}
        return self.linked_run("run.on_failure", spec["runbook"], self.resolve(spec.get("with") or {}, ""))

    # -- prompts and templates ---------------------------------------------------------
    def ask(self, prompt: Prompt) -> dict[str, Any]:
        """Ask and journal; the answer only."""
        answer, _ = self.ask_with_source(prompt)
        return answer

    def ask_with_source(self, prompt: Prompt) -> tuple[dict[str, Any], str]:
        """Ask through the prompter chain (after writing what is buffered); journal the answer."""
        self.flush()
        with self._asking:
            answer, source = self.prompter.ask(prompt)
        if prompt.kind != "approval":
            self.emit(Event.PROMPT, {"id": prompt.id, "kind": prompt.kind, "question": prompt.text,
                                     "answer": answer, "source": source, "by": self.operator}, flush=True)
        return answer, source

    def scope(self, sid: str = "") -> templates.Scope:
        """What templates see now: parameters (secrets too), the environment, the run, outputs so far;
        in a for_each iteration (``sid`` is STEP[i]...), ``${each...}`` and its own steps' outputs."""
        params = {**self.plan.params.values, **self.plan.params.secrets}
        env = merge(self.plan.env.data, self.plan.env.overlay) if self.plan.env else {}
        run = {"id": self.run_id, "operator": self.operator, "checkout": str(self.checkout)}
        each = self.each_of(sid)
        mapped = self.each_mapping(each)
        return templates.Scope(params, env, run, {s.id for s in self.plan.steps},
                               lambda s, key: self.state.outputs(mapped(s), key),
                               lambda s: mapped(s) in self.state.steps,
                               each={"index": each["index"], "value": each["value"]} if each else None)

    def resolve(self, value: Any, sid: str) -> Any:
        """Every template in ``value`` looked up now (CheckFailed when one has no value)."""
        return self.scope(sid).resolve(value)

    def render(self, text: str, sid: str) -> str:
        """Text for people: rendered where it can be, else as written."""
        return self.scope(sid).text(text)

    # -- for_each ----------------------------------------------------------------------
    def each_of(self, key: str) -> dict[str, Any] | None:
        """The for_each iteration a step id or prompt id (``STEP[i]...``) belongs to, or None."""
        m = _EACH_ROOT.match(key) if "[" in key else None
        return self._each.get(m.group(1)) if m else None

    @staticmethod
    def each_mapping(each: dict[str, Any] | None) -> Callable[[str], str]:
        """Inside an iteration, ``${steps.STEP...}`` of its own for_each step means ``STEP[i]...``."""
        if each is None:
            return lambda sid: sid
        owner, here = each["of"], each_id(each["of"], each["of"], each["index"])
        return lambda sid: here + sid[len(owner):] if sid == owner or sid.startswith(owner + ".") else sid

    def each_values(self, step: Step) -> list[Any]:
        """A for_each step's values: those recorded at its first start (a resume never changes them),
        else resolved now and recorded."""
        known = self.state.steps.get(step.id)
        if known is not None and known.values is not None:
            return known.values
        values = self.resolve(step.data.get("for_each"), step.id)
        if not isinstance(values, list):
            raise StepFailed(f"for_each: {step.data.get('for_each')!r} resolved to {values!r}, not a list")
        self.emit(Event.EACH_VALUES, {"step": step.id, "values": values}, flush=True)
        return values

    def run_each(self, step: Step, deadline: float | None = None) -> None:
        """A for_each step: its members (the step, or its include's steps) once per value, as
        ``STEP[i]...`` with their own records and prompts; at most ``concurrency`` at once (in
        threads; prompts one at a time). Iterations already done are never repeated. After more
        than ``max_failures`` failed, no more start and the step fails; failures within it are
        deviations and the step succeeds."""
        values = self.each_values(step)
        limit = int(step.data.get("max_failures") or 0)
        concurrency = max(1, int(step.data.get("concurrency") or 1))
        failed: dict[int, tuple[str, str]] = {}      # index -> (iteration step id, why)
        ended: list[Step] = []                       # an iteration's step with ``end:`` that succeeded

        def one(index: int) -> None:
            self._each[each_id(step.id, step.id, index)] = {"of": step.id, "index": index, "value": values[index]}
            for member in step.members:
                it = iteration(member, index, values[index])
                if not self.state.finished(it.id):
                    try:
                        self.run_step(it)
                    except (StepFailed, CheckFailed) as exc:
                        failed[index] = (it.id, str(exc))
                        return
                if it.end and self.state.steps[it.id].status is StepStatus.SUCCEEDED:
                    ended.append(it)     # `end:` ends the run, as it does outside a for_each
                    return

        def stop() -> bool:
            return len(failed) > limit or bool(ended)

        todo = [i for i in range(len(values))
                if not all(self.state.finished(each_id(step.id, m.id, i)) for m in step.members)
                or any(m.end for m in step.members)]
        if concurrency == 1:
            for index in todo:
                if stop():
                    break
                one(index)
        else:
            self.each_in_threads(todo, one, concurrency, stop)
        if len(failed) > limit:
            raise StepFailed(f"{len(failed)} iteration(s) failed, more than max_failures {limit}: " + "; ".join(
                f"{sid} ({values[i]}): {why}" for i, (sid, why) in sorted(failed.items())), offer=True)
        if ended:
            raise _Ended(ended[0])
        succeeded = [i for i in range(len(values)) if i not in failed and not any(
            self.state.steps.get(each_id(step.id, m.id, i)) is not None
            and self.state.steps[each_id(step.id, m.id, i)].status is StepStatus.FAILED for m in step.members)]
        if failed and not succeeded:
            raise StepFailed(f"every iteration failed ({len(failed)} of {len(values)}; max_failures {limit} allows "
                             "failures beside successes, not instead of them): " + "; ".join(
                                 f"{sid} ({values[i]}): {why}" for i, (sid, why) in sorted(failed.items())),
                             offer=True)
        for index, (sid, why) in sorted(failed.items()):
            self.finish_step(sid, StepStatus.FAILED, reason=f"{why} (within max_failures {limit})", continued=True,
                             each_failed=True)

    def each_in_threads(self, todo: list[int], one: Callable[[int], None], concurrency: int,
                        stop: Callable[[], bool]) -> None:
        """Run ``one`` over ``todo`` in at most ``concurrency`` threads; none starts once ``stop()``
        says so or one raised (that error is raised once the running ones have ended)."""
        from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

        error: BaseException | None = None
        queue = list(todo)
        self._parallel += 1
        try:
            with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="for_each") as pool:
                running: set[Future[None]] = set()
                while queue or running:
                    while queue and len(running) < concurrency and error is None and not stop():
                        running.add(pool.submit(one, queue.pop(0)))
                    if not running:
                        break
                    done, running = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        if future.exception() is not None and error is None:
                            error = future.exception()
        finally:
            self._parallel -= 1
        if error is not None:
            raise error


class _ReadOnly:
    """Read-only access to this run's results so far (what plugins may look at)."""

    def __init__(self, state: RunState):
        self._state = state

    def outputs(self, step: str, item: str) -> dict[str, Any] | None:
        out = self._state.outputs(step, item)
        return dict(out) if out is not None else None

    def summaries(self) -> list[dict[str, Any]]:
        """Every item result so far, in order: step, item, passed, skipped, summary."""
        out = []
        for sid, step in self._state.steps.items():
            for key, item in step.items.items():
                if item.result is not None:
                    out.append({"step": sid, "item": key, "passed": bool(item.result.get("passed")),
                                "skipped": bool(item.result.get("skipped")), "summary": item.result.get("summary", "")})
        return out


class _null_wait:
    def __enter__(self) -> Callable[[str], None]:
        return lambda message: None

    def __exit__(self, *exc: Any) -> None:
        return None


_VALIDATORS: dict[str, Any] = {}


def argument_problem(plugin: Plugin, args: dict[str, Any]) -> str:
    """Why resolved arguments do not fit the plugin's schema, or '' (templates were checked by type only)."""
    from .errors import format_path
    from .schemas import validator_for

    validator = _VALIDATORS.get(plugin.name)
    if validator is None:
        validator = _VALIDATORS[plugin.name] = validator_for(plugin.args)
    error = next(iter(validator.iter_errors(args)), None)
    if error is None:
        return ""
    where = format_path(error.absolute_path)
    return f"argument {where or '(all)'}: {error.message}"


# The step kinds a run executes (an include was inlined by the plan): one rule each.
RUN_KIND: dict[StepKind, Callable[[Runner, Step, float | None], None]] = {
    StepKind.TASK: Runner.run_task,
    StepKind.APPROVAL: Runner.run_approval,
    StepKind.RUN: Runner.run_child,
}
