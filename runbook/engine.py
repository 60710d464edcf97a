"""Executing a plan: steps, items, prompts, evidence, intents, recovery.

The Runner asks its collaborators for everything with a side effect: the store (journal,
ledger, blobs, locks), the plugin registry, the prompter chain, the console. It appends
a journal record for every fact and derives its own state from those records, so a
resumed run continues from exactly what was written.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import templates
from .errors import CheckFailed, Interrupted, Parked, RunbookError
from .journal import utcnow
from .locks import Fenced
from .model import OnFailure, PluginKind, Section, StepKind
from .plan import Plan, item_key, merge
from .plugins import Context, Outcome, Plugin, Registry
from .prompts import Chain, Prompt
from .redact import Redactor
from .state import Event, RunState, Status, StepStatus, apply
from .store import LocalStore
from .validate import items_of

CRASH_POINTS = ("before-intent", "after-intent", "after-effect")
MAX_SCRIPTED_RETRIES = 3


class StepFailed(RunbookError):
    """A step could not complete; the run fails unless the step says ``on_failure: continue``.

    ``offer``: the failure was a gate, an action or a linked run, so the operator is offered
    ``STEP.on_fail`` (retry / skip with a reason / abort); a failed check was offered its own
    ``STEP.ITEM.on_fail`` already. ``park``: with nobody to ask, park (exit 4) instead of failing.
    """

    def __init__(self, message: str, offer: bool = False, park: bool = False):
        super().__init__(message)
        self.offer = offer
        self.park = park


class _Declined(Exception):
    """An offered linked run was declined: the step is skipped, not failed."""


@dataclass
class LockRef:
    """The lock a run writes under: key, the run that owns it, and its epoch (for fencing)."""

    key: str | None
    owner: str
    epoch: int


@dataclass
class Runner:
    plan: Plan
    store: LocalStore
    registry: Registry
    prompter: Chain
    operator: str
    run_id: str
    redactor: Redactor
    lock: LockRef
    root: Path
    console: Any = None
    make_plan: Callable[[str, dict[str, Any]], Plan] | None = None   # for run: and on_failure children
    state: RunState = field(default_factory=RunState)
    _buffer: list[dict[str, Any]] = field(default_factory=list)
    _journal: Any = None
    _acted: bool = False          # since the last anchor: an action, an answer, a child run (see ACTED)
    _scripted_retries: dict[str, int] = field(default_factory=dict)

    # -- journal -----------------------------------------------------------------------
    def open(self, create: bool, records: list[dict[str, Any]] | None = None) -> None:
        if create:
            self.store.create_run(self.run_id)
        self._journal = self.store.journal(self.run_id, before_write=self._fence, repair=not create)
        for rec in records or []:
            apply(self.state, rec)
        if self._journal.repaired:
            self.emit(Event.REPAIRED, self._journal.repaired)

    def _fence(self) -> None:
        if self.lock.key is not None:
            self.store.locks.check(self.lock.key, self.lock.owner, self.lock.epoch)

    def emit(self, kind: Event, data: dict[str, Any], flush: bool = False) -> None:
        rec = {"time": utcnow(), "run": self.run_id, "operator": self.operator, "type": kind.value,
               "data": self.redactor.data(data)}
        self._buffer.append(rec)
        self._acted = self._acted or kind in ACTED
        if self.console is not None:
            self.console.event(rec)
        if flush:
            self.flush()

    def flush(self, anchor: bool = False) -> None:
        if self._buffer:
            written = self._journal.append(self._buffer)
            self._buffer = []
            for rec in written:
                apply(self.state, rec)
            if anchor:
                crash("anchor", written[-1]["type"])     # the window verify and complete_anchor know about
        if anchor:
            self.store.ledger.append({"type": "run.anchor", "run": self.run_id, "length": self._journal.length,
                                      "head": self._journal.head})
            self._acted = False

    def step_done(self) -> None:
        """A step's end: anchored in the ledger when the step acted or asked (a step of checks
        only waits for the next anchor; every run status is anchored)."""
        self.flush(anchor=self._acted)

    # -- the run -----------------------------------------------------------------------
    def start(self, parent: dict[str, Any] | None = None, overlay: dict[str, Any] | None = None) -> None:
        """Write the run's first records (the caller holds the lock)."""
        from .store import salted_hash

        self.open(create=True)
        started = self.store.ledger.append({"type": "run.start", "run": self.run_id, "runbook": self.plan.name,
                                            "environment": self.plan.env.name if self.plan.env else None,
                                            "operator": self.operator, "parent": parent})
        self.emit(Event.RUN_STARTED, {
            "ledger": {"seq": started["seq"], "hash": started["hash"]},   # audit.verify checks the start by it
            "runbook": self.plan.name, "title": self.plan.title, "file": str(self.plan.file),
            "environment": self.plan.env.name if self.plan.env else None, "digest": self.plan.digest,
            "params": self.plan.params.public(),
            "secret_hashes": {k: salted_hash(v) for k, v in self.plan.params.secrets.items()},
            "lock": self.lock.key, "lock_owner": self.lock.owner, "lock_epoch": self.lock.epoch,
            "parent": parent, "plugins": self.plan.plugins, "overlay": overlay or {},
            "includes": {k: str(v) for k, v in self.plan.includes.items()},
        })
        self.session(resume=False)

    def session(self, resume: bool) -> None:
        import socket

        self.emit(Event.SESSION, {"resume": resume, "host": socket.gethostname(), "pid": os.getpid(),
                                  "operator": self.operator}, flush=True)

    def execute(self) -> Status:
        """Run every unfinished step; returns the final status (raises Interrupted on signals)."""
        try:
            offer = self.state.offer
            if offer and offer.get("accepted") and self.plan.on_failure:
                # the run failed after its `after` step and its on_failure runbook was accepted: a
                # resume finishes that linked run; the run's own failed step is never run again
                return self.rolled_back(self.state.reason, self.run_on_failure())
            for step in self.plan.steps:
                if self.state.finished(step["id"]):
                    continue
                self.run_step(step)
        except Fenced as exc:
            self.stop_fenced(exc)
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

    def rolled_back(self, reason: str, child: Status | None) -> Status:
        """After the accepted on_failure runbook: ``rolled-back`` when it succeeded (final, the
        lock is released), else the run stays failed and the linked run resumable."""
        if child is Status.SUCCEEDED:
            link = self.state.children.get("run.on_failure") or {}
            self.emit(Event.ROLLED_BACK, {"reason": reason, "by_run": link.get("run"),
                                          "runbook": (self.plan.on_failure or {}).get("runbook")})
            self.flush(anchor=True)
            return Status.ROLLED_BACK
        if self.state.status is not Status.FAILED:
            self.emit(Event.FAILED, {"reason": reason})
            self.flush(anchor=True)
        return Status.FAILED

    def stop_fenced(self, exc: Fenced) -> None:
        """This run's lock was taken over: stop at once and write nothing more (not even to its own
        journal: the run that took over closes it, ``rolled-back``, once it has succeeded; until
        then every command shows it ``interrupted``, as its journal is open and its lock gone)."""
        from . import signals

        signals.ignore_during_cleanup()
        self._buffer = []

    # -- steps -------------------------------------------------------------------------
    def run_step(self, step: dict[str, Any]) -> None:
        """Run one step to its end: succeeded, skipped, failed-and-continued, or StepFailed.

        A step that did not finish (a crash, Ctrl-C, a failed check, gate, action or linked run,
        an abort) starts again: its checks, gate and confirm run or are asked again, what it did
        stays done. The only way past a failure is a typed skip, journaled as a deviation."""
        sid = step["id"]
        restart = sid in self.state.steps
        self.emit(Event.STEP_STARTED, {"step": sid, "title": step.get("title", ""),
                                       "instructions": self.render(step.get("instructions", ""), sid),
                                       **({"restart": True} if restart else {})}, flush=restart)
        skip = self.skip_reason(step)
        if skip:
            self.finish_step(sid, StepStatus.SKIPPED, reason=skip)
            return
        deadline = time.monotonic() + step["timeout"] if step.get("timeout") else None
        while True:
            try:
                RUN_KIND[StepKind(step["kind"])](self, step, deadline)
            except _Declined as exc:
                self.finish_step(sid, StepStatus.SKIPPED, reason=str(exc))
                return
            except StepFailed as exc:
                if step.get("on_failure") == OnFailure.CONTINUE.value:
                    self.finish_step(sid, StepStatus.FAILED, reason=f"{exc} (on_failure: continue)", continued=True)
                    return
                choice = self.decide_step(step, exc)
                if choice == "retry":
                    self.emit(Event.STEP_STARTED, {"step": sid, "title": step.get("title", ""), "restart": True},
                              flush=True)      # the state forgets the step's checks, gate and confirm
                    continue
                if choice == "skip":
                    return
                self.finish_step(sid, StepStatus.FAILED, reason=str(exc))
                raise
            self.finish_step(sid, StepStatus.SUCCEEDED)
            return

    def finish_step(self, sid: str, status: StepStatus, **data: Any) -> None:
        self.emit(Event.STEP_FINISHED, {"step": sid, "status": status.value,
                                        **{k: v for k, v in data.items() if v not in ("", None, False)}})
        self.step_done()

    def decide_step(self, step: dict[str, Any], exc: StepFailed) -> str:
        """After a failed gate, action or linked run: ``STEP.on_fail`` (retry / skip with a typed
        reason / abort). Returns "retry" or "skip" (the skip is journaled); "abort" otherwise.
        With nobody to ask: abort, or park when the failure needs a person (a refused approval)."""
        if not exc.offer:
            return "abort"
        sid = step["id"]
        prompt = Prompt(f"{sid}.on_fail", "on_fail", f"Step {sid} failed: {exc}. Retry, skip (with a reason) or abort?")
        try:
            answer, source = self.ask_with_source(prompt)
        except Parked:
            if exc.park:
                raise Parked(f"{sid}: {exc}") from None
            return "abort"
        choice = answer.get("choice")
        if choice == "retry" and not self.scripted_retry_allowed(prompt.id, source):
            exc.args = (f"{exc} (still failing after {MAX_SCRIPTED_RETRIES} retries from {source})",)
            return "abort"
        if choice == "skip":
            reason = str(answer.get("reason") or "").strip()
            if not reason:
                return "abort"
            if step.get("kind") == StepKind.APPROVAL.value and self.plan.env is not None and self.plan.env.protected:
                exc.args = (f"{exc} (an approval gate cannot be skipped on protected environment "
                            f"{self.plan.env.name!r})",)
                return "abort"
            self.finish_step(sid, StepStatus.SKIPPED, reason=f"skipped after: {exc}; {reason}", decision="skip",
                             by=self.operator if source == "interactive" else source)
        return choice if choice in ("retry", "skip") else "abort"

    def scripted_retry_allowed(self, pid: str, source: str) -> bool:
        """An answers file that says retry would loop forever: allow a few, then stop."""
        if source == "interactive":
            return True
        count = self._scripted_retries.get(pid, 0) + 1
        self._scripted_retries[pid] = count
        return count <= MAX_SCRIPTED_RETRIES

    def skip_reason(self, step: dict[str, Any]) -> str:
        conds = [{k: step[k]} for k in ("when", "unless") if k in step] + list(step.get("parent_conditions", []))
        for cond in conds:
            for key, value in cond.items():
                resolved = self.resolve(value, step["id"])
                if not isinstance(resolved, bool):
                    raise StepFailed(f"{key}: {value!r} resolved to {resolved!r}, not a boolean")
                if (key == "when" and not resolved) or (key == "unless" and resolved):
                    written = (step.get("source") or {}).get(key, value) if cond in conds[:2] else value
                    return f"{key}: {written} is {str(resolved).lower()}"
        return ""

    def run_task(self, step: dict[str, Any], deadline: float | None) -> None:
        """requires -> confirm -> do -> verify. Under ``on_failure: continue`` a failed check does
        not end the step: the section's other checks and manual items still run or are asked
        (but nothing acts after a failed guard); a failed action always ends the step."""
        sid = step["id"]
        failed: list[str] = []
        self.run_section(step, Section.REQUIRES, deadline, failed)
        if failed:
            raise StepFailed("; ".join(failed))
        if step.get("confirm"):
            answered = self.state.prompts.get(f"{sid}.confirm")
            text = self.render(step["confirm"], sid)
            answer = answered["answer"] if answered else self.ask(Prompt(f"{sid}.confirm", "confirm", text))
            if not answer.get("done"):
                raise StepFailed(f"the operator declined: {text}")
        self.run_section(step, Section.DO, deadline, failed)
        self.run_section(step, Section.VERIFY, deadline, failed)
        if failed:
            raise StepFailed("; ".join(failed))

    def run_section(self, step: dict[str, Any], section: Section, deadline: float | None,
                    failed: list[str]) -> None:
        """A section's items in order; consecutive manual items are asked as one checklist."""
        entries = [(i, item) for s, i, item in items_of(step) if s is section]
        pending_manual: list[tuple[int, dict[str, Any]]] = []
        for index, item in entries:
            if "manual" in item:
                pending_manual.append((index, item))
                continue
            if pending_manual:
                self.run_manual(step, section, pending_manual)
                pending_manual = []
            problem = self.run_automated(step, section, index, item, deadline)
            if problem:
                failed.append(problem)
        if pending_manual:
            self.run_manual(step, section, pending_manual)

    # -- manual items ------------------------------------------------------------------
    def run_manual(self, step: dict[str, Any], section: Section, entries: list[tuple[int, dict[str, Any]]]) -> None:
        sid = step["id"]
        todo = []
        for index, item in entries:
            key = item_key(step, section, index, item)
            done = self.state.steps.get(sid)
            if done and key in done.items and done.items[key].done:
                continue
            todo.append(Prompt(f"{sid}.{key}", "manual", self.render(item["manual"], sid),
                               evidence=item.get("evidence", "none"), extra={"key": key}))
        if not todo:
            return
        self.flush()
        answers = self.prompter.checklist(todo)
        for prompt in todo:
            answer, source = answers[prompt.id]
            answer = self.complete_manual(prompt, answer, source)
            self.emit(Event.PROMPT, {"id": prompt.id, "kind": "manual", "question": prompt.text, "answer": answer,
                                     "source": source, "by": self.operator})
            key = prompt.extra["key"]
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
                raise StepFailed(f"{prompt.id} is not done and no reason was given")
        self.flush()

    def complete_manual(self, prompt: Prompt, answer: dict[str, Any], source: str) -> dict[str, Any]:
        """Evidence an item requires must be there; ask for it when a person is at hand."""
        if not answer.get("done") or prompt.evidence == "none" or answer.get(prompt.evidence):
            return answer
        follow = Prompt(prompt.id, "text", f"{prompt.evidence.capitalize()} for '{prompt.text}':")
        if self.prompter.has_person:
            extra = self.prompter.interactive.answer(follow) or {}
            answer = dict(answer, **{prompt.evidence: extra.get("value", "")})
            if answer.get(prompt.evidence):
                return answer
        raise Parked(f"needs a person: {prompt.id} requires a {prompt.evidence} as evidence ({source} gave none)")

    # -- automated items ---------------------------------------------------------------
    def run_automated(self, step: dict[str, Any], section: Section, index: int, item: dict[str, Any],
                      deadline: float | None) -> str:
        """Run a check or an action (with the step's automatic retries). Returns '' when it passed
        or was skipped by a decision, the failure when a check failed under ``on_failure:
        continue``; raises StepFailed when the step must end."""
        sid = step["id"]
        key = item_key(step, section, index, item)
        current = self.state.steps.get(sid)
        if current and key in current.items and current.items[key].done:
            return ""
        plugin = self.registry[item["uses"]]
        retry = step.get("retry") or {}
        attempts = int(retry.get("attempts", 3)) if step.get("on_failure") == OnFailure.RETRY.value else 1
        tries = 0
        while True:
            tries += 1
            outcome = self.call(step, key, plugin, item, deadline)
            if outcome.passed:
                return ""
            if outcome.outputs.get("park"):
                raise Parked(f"{sid}.{key}: {outcome.summary}")
            if deadline is not None and time.monotonic() > deadline:
                raise StepFailed(f"step {sid} timed out after {step['timeout']} s ({key}: {outcome.summary})",
                                 offer=True)
            if tries < attempts:
                time.sleep(float(retry.get("delay", 0)))
                continue
            if plugin.kind is PluginKind.ACTION:
                raise StepFailed(f"{key}: {outcome.summary}", offer=True)
            if step.get("on_failure") == OnFailure.CONTINUE.value:
                return f"{key}: {outcome.summary}"
            if not self.decide(step, key, outcome.summary):
                return ""
            tries = 0

    def decide(self, step: dict[str, Any], key: str, summary: str, park: bool = False,
               question: str = "Retry, skip or abort?") -> bool:
        """After a failed check (or an action whose effect is unknown, ``park``): ``STEP.ITEM.on_fail``.
        True to retry, False when skipped (journaled); raises StepFailed on abort.

        With nobody to ask, a failed check fails the step; an unknown effect parks the run.
        """
        sid = step["id"]
        pid = f"{sid}.{key}.on_fail"
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
            self.emit(Event.ITEM_RESULT, {"step": sid, "item": key, "passed": False, "skipped": True,
                                          "reason": answer.get("reason", ""), "summary": f"skipped after: {summary}",
                                          "outputs": {}, "kind": PluginKind.ACTION.value if park else "check",
                                          **({"recovered": "operator"} if park else {})})
            self.flush()
            return False
        raise StepFailed(f"{key}: {summary} (aborted by {self.operator if source == 'interactive' else source})")

    def context(self, step: dict[str, Any], item: dict[str, Any], args: dict[str, Any],
                deadline: float | None, progress: Callable[[str], None] = lambda m: None) -> Context:
        env = merge(self.plan.env.data, self.plan.env.overlay) if self.plan.env else {}
        timeout = item.get("timeout")
        if deadline is not None:
            left = max(0.1, deadline - time.monotonic())
            timeout = min(timeout, left) if timeout else left
        from .history import History

        return Context(args=args, env=env, root=self.root, redact=self.redactor.text,
                       store_blob=lambda data: self.store.store_blob(self.run_id, self.redactor.text(
                           data.decode("utf-8", "replace")).encode()),
                       results=_ReadOnly(self.state), progress=progress, timeout=timeout,
                       checkout=self.store.run_dir(self.run_id) / "work" / "checkout",
                       operator=self.operator, run_id=self.run_id, item=item,
                       history=History(self.store, exclude=self.run_id),
                       env_name=self.plan.env.name if self.plan.env else "",
                       step_started=self.state.steps[step["id"]].started if step["id"] in self.state.steps else "")

    def call(self, step: dict[str, Any], key: str, plugin: Plugin, item: dict[str, Any],
             deadline: float | None) -> Outcome:
        sid = step["id"]
        target = f"{sid}.{key}"
        args = self.resolve(item.get("with") or {}, sid)
        problem = argument_problem(plugin, args)
        if problem:
            outcome = Outcome.fail(f"{plugin.name}: {problem} (after resolving the templates in 'with:')")
            self.record(sid, key, plugin, outcome, 0.0, flush=True)
            return outcome
        ctx = self.context(step, item, args, deadline)
        started = time.monotonic()
        if plugin.kind is PluginKind.ACTION:
            current = self.state.steps.get(sid)
            interrupted = current is not None and key in current.items and current.items[key].intent is not None \
                and current.items[key].result is None
            if interrupted:
                recovered = self.recover(step, key, plugin, ctx)
                if recovered is not None:
                    return recovered
            crash(target, "before-intent")
            self.emit(Event.ITEM_INTENT, {"step": sid, "item": key, "uses": plugin.name, "args": args}, flush=True)
            crash(target, "after-intent")
            outcome = failing(target) or self.invoke(plugin, ctx)
            crash(target, "after-effect")
        elif item.get("wait"):
            outcome = failing(target) or self.poll(plugin, item, ctx, target)
        else:
            outcome = failing(target) or self.invoke(plugin, ctx)
        self.record(sid, key, plugin, outcome, time.monotonic() - started, flush=plugin.kind is PluginKind.ACTION)
        return outcome

    def record(self, sid: str, key: str, plugin: Plugin, outcome: Outcome, duration: float, flush: bool,
               recovered: str = "") -> None:
        data = {"step": sid, "item": key, "uses": plugin.name, "kind": plugin.kind.value,
                "passed": outcome.passed, "summary": outcome.summary,
                "evidence": outcome.evidence, "outputs": outcome.outputs, "duration_s": round(duration, 4)}
        if recovered:
            data["recovered"] = recovered
        self.emit(Event.ITEM_RESULT, data, flush=flush)

    def invoke(self, plugin: Plugin, ctx: Context, probe: bool = False) -> Outcome:
        """Call plugin code; its unexpected errors become a failed outcome, named and recorded."""
        fn = plugin.probe if probe else plugin.func
        assert fn is not None
        waiting = self.console.waiting(f"{plugin.name} ...") if self.console is not None else _null_wait()
        try:
            with waiting as update:
                ctx.progress = update
                result = fn(ctx)
        except (Interrupted, Parked, Fenced, KeyboardInterrupt):
            raise
        except RunbookError as exc:
            return Outcome.fail(f"{plugin.name}: {exc}")
        except Exception as exc:  # plugin code is foreign: its crash is an outcome, not ours
            return Outcome.fail(f"{plugin.name} raised {type(exc).__name__}: {self.redactor.text(str(exc))}",
                                {"error": type(exc).__name__})
        if probe:
            return result  # type: ignore[return-value]
        if not isinstance(result, Outcome):
            return Outcome.fail(f"{plugin.name} returned {type(result).__name__}, not an Outcome")
        return result

    def poll(self, plugin: Plugin, item: dict[str, Any], ctx: Context, target: str) -> Outcome:
        wait = item["wait"]
        timeout = float(wait["timeout"])
        interval = float(wait.get("interval", 5))
        end = time.monotonic() + timeout
        outcome = self.invoke(plugin, ctx)
        if outcome.passed:
            return outcome
        waiting = self.console.waiting(f"waiting for {target} (up to {timeout:.0f} s): {outcome.summary}") \
            if self.console is not None else _null_wait()
        with waiting as update:
            tries = 1
            while not outcome.passed and not outcome.outputs.get("final") and time.monotonic() + interval <= end:
                time.sleep(interval)
                outcome = self.invoke(plugin, ctx)
                tries += 1
                left = max(0, end - time.monotonic())
                update(f"waiting for {target} ({left:.0f} s left, try {tries}): {outcome.summary}")
        if not outcome.passed:
            outcome.summary = f"still failing after {timeout:.0f} s ({tries} tries): {outcome.summary}"
        return outcome

    def recover(self, step: dict[str, Any], key: str, plugin: Plugin, ctx: Context) -> Outcome | None:
        """An action was interrupted after its intent: find out whether its effect happened."""
        sid = step["id"]
        if plugin.probe is not None:
            found = self.invoke(plugin, ctx, probe=True)
            if found is None:
                return None                      # the effect did not happen: run the action
            if found.passed:
                found.summary = f"recovered by probe: {found.summary}"
                self.record(sid, key, plugin, found, 0.0, flush=True, recovered="probe")
                return found
            # the probe itself failed: whether the effect happened is unknown; verify or ask
        verify = [(i, it) for s, i, it in items_of(step) if s is Section.VERIFY and "uses" in it]
        if verify:
            results = []
            for index, item in verify:
                vplugin = self.registry[item["uses"]]
                args = self.resolve(item.get("with") or {}, sid)
                results.append(self.invoke(vplugin, self.context(step, item, args, None)))
            if all(r.passed for r in results):
                outcome = Outcome.ok("recovered: interrupted after its intent, and the step's verify checks pass")
                self.record(sid, key, plugin, outcome, 0.0, flush=True, recovered="verify")
                return outcome                   # the step's later actions have not run: they run now
        if not plugin.side_effect:
            return None
        summary = "was interrupted after its intent; whether it took effect is unknown (no probe, verify not passing)"
        if self.decide(step, key, summary, park=True,
                       question="Look whether it did: retry if it did not, skip (with what you saw) if it did, "
                                "or abort?"):
            return None
        return Outcome(True, "skipped by the operator after an interruption")  # the skip is recorded

    # -- approvals ---------------------------------------------------------------------
    def run_approval(self, step: dict[str, Any]) -> None:
        sid = step["id"]
        spec = self.resolve(step["approval"], sid)
        if spec["source"] != "prompt":
            gate = self.registry.get("approval." + spec["source"])
            if gate is None:
                raise StepFailed(f"approval source {spec['source']!r} needs its plugin (approval.{spec['source']})")
            args = {k: v for k, v in spec.items() if k not in ("source", "wait", "message")}
            ctx = self.context(step, {"uses": gate.name}, args, None)
            wait = spec.get("wait") or {}
            end = time.monotonic() + float(wait.get("timeout", 0))
            started = time.monotonic()
            outcome = failing(f"{sid}.approval") or self.invoke(gate, ctx)
            while not outcome.passed and outcome.outputs.get("park") and time.monotonic() < end:
                time.sleep(float(wait.get("interval", 10)))
                outcome = self.invoke(gate, ctx)
            self.record(sid, "approval", gate, outcome, time.monotonic() - started, flush=True)
            if not outcome.passed:
                if outcome.outputs.get("park"):
                    raise Parked(f"{sid}: {outcome.summary}")
                raise StepFailed(f"approval refused: {outcome.summary}", offer=True, park=True)
            return
        if self.verified_approvals(sid, spec):
            return
        if self.plan.env is not None and self.plan.env.protected:
            raise StepFailed("prompt approvals are refused on a protected environment; use a github-pr approval "
                             "or, on the team backend, `invoke runbook.approve RUN_ID`")
        details = self.results_so_far()
        prompt = Prompt(f"{sid}.approval", "approval",
                        f"Approvers for '{step.get('title', sid)}' (at least {spec.get('min', 1)}, space-separated):",
                        details=details)
        self.flush()
        answer, source = self.ask_with_source(prompt)
        approvers = [str(a) for a in answer.get("approvers") or []]
        problem = approval_problem(approvers, self.operator, int(spec.get("min", 1)), list(spec.get("roles") or []),
                                   (self.plan.env.data.get("approvers") if self.plan.env else None) or {})
        forced = failing(f"{sid}.approval")
        problem = problem or (forced.summary if forced else "")
        self.emit(Event.PROMPT, {"id": prompt.id, "kind": "approval", "answer": {"approvers": approvers},
                                 "source": source, "by": self.operator, "verified": False,
                                 **({"refused": problem} if problem else {})})
        if problem:
            self.flush()
            raise StepFailed(f"approval refused: {problem}", offer=True, park=True)
        roles = assign_roles(approvers, list(spec.get("roles") or []),
                             (self.plan.env.data.get("approvers") if self.plan.env else None) or {})
        self.emit(Event.ITEM_RESULT, {"step": sid, "item": "approval", "passed": True, "verified": False,
                                      "summary": f"approved by {', '.join(approvers)} (unverified prompt approval)",
                                      "outputs": {"approvers": approvers, "count": len(approvers), "head_sha": "",
                                                  "verified": False},
                                      "evidence": {"roles": roles, "source": source}}, flush=True)

    def verified_approvals(self, sid: str, spec: dict[str, Any]) -> bool:
        """On the team backend: approvals given with `runbook.approve` under the approvers' own AWS principals,
        still bound to this run's digest, parameters and environment, open the gate."""
        if getattr(self.store, "kind", "local") != "aws":
            return False
        from .backends.approvals import valid_approvals

        env_name = self.plan.env.name if self.plan.env else None
        valid, void = valid_approvals(self.store, self.run_id, self.plan.digest, self.plan.params.public(), env_name)
        arns = [a.approver for a in valid]
        members = (self.plan.env.data.get("approvers") if self.plan.env else None) or {}
        problem = approval_problem(arns, self.operator, int(spec.get("min", 1)), list(spec.get("roles") or []),
                                   members) if arns else "no approvals yet"
        if problem:
            if void:
                self.emit(Event.PROMPT, {"id": f"{sid}.approval", "kind": "approval", "answer": {"approvers": arns},
                                         "source": "runbook.approve", "by": self.operator, "verified": True,
                                         "refused": f"{problem}; void: {void}"}, flush=True)
            return False
        self.emit(Event.ITEM_RESULT, {"step": sid, "item": "approval", "passed": True, "verified": True,
                                      "summary": f"approved by {', '.join(arns)} (AWS principals, runbook.approve)",
                                      "outputs": {"approvers": arns, "count": len(arns), "head_sha": "",
                                                  "verified": True},
                                      "evidence": {"void": void, "source": "runbook.approve"}}, flush=True)
        return True

    def results_so_far(self) -> str:
        lines = ["Results so far:"]
        for sid, st in self.state.steps.items():
            lines.append(f"  {sid}: {st.status.value}")
            for key, it in st.items.items():
                if it.result is not None:
                    mark = "skipped" if it.result.get("skipped") else "ok" if it.result.get("passed") else "FAILED"
                    lines.append(f"    {mark} {key}: {it.result.get('summary', '')}")
        return "\n".join(lines)

    # -- linked runs -------------------------------------------------------------------
    def run_child(self, step: dict[str, Any]) -> None:
        sid = step["id"]
        if step.get("confirm") and sid not in self.state.children:
            prompt = Prompt(f"{sid}.confirm", "confirm", self.render(step["confirm"], sid))
            answered = self.state.prompts.get(prompt.id)
            answer = answered["answer"] if answered else self.ask(prompt)
            if not answer.get("done"):
                raise _Declined(f"declined: {prompt.text}")
        spec = self.resolve(step["run"], sid)
        status = self.linked_run(sid, spec["runbook"], spec.get("with") or {})
        if status is Status.PARKED:
            raise Parked(f"linked run for step {sid} is parked")
        if status is not Status.SUCCEEDED:
            raise StepFailed(f"linked run of {spec['runbook']} {status.value}", offer=True)

    def linked_run(self, sid: str, runbook: str, given: dict[str, Any]) -> Status:
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
        answer, _ = self.ask_with_source(prompt)
        return answer

    def ask_with_source(self, prompt: Prompt) -> tuple[dict[str, Any], str]:
        self.flush()
        answer, source = self.prompter.ask(prompt)
        if prompt.kind != "approval":
            self.emit(Event.PROMPT, {"id": prompt.id, "kind": prompt.kind, "question": prompt.text,
                                     "answer": answer, "source": source, "by": self.operator}, flush=True)
        return answer, source

    def lookup(self, sid: str) -> Callable[[templates.Ref], Any]:
        step_ids = [s["id"] for s in self.plan.steps]

        def lookup(ref: templates.Ref) -> Any:
            if ref.root == "params":
                name = ref.parts[0]
                if name in self.plan.params.secrets:
                    return self.plan.params.secrets[name]
                if name in self.plan.params.values:
                    return self.plan.params.values[name]
                raise CheckFailed(f"{ref.text}: parameter has no value")
            if ref.root == "env":
                cur: Any = merge(self.plan.env.data, self.plan.env.overlay) if self.plan.env else {}
                for part in ref.parts:
                    if not isinstance(cur, dict) or part not in cur:
                        raise CheckFailed(f"{ref.text}: not in the environment")
                    cur = cur[part]
                return cur
            if ref.root == "run":
                return {"id": self.run_id, "operator": self.operator,
                        "checkout": str(self.store.run_dir(self.run_id) / "work" / "checkout")}[ref.parts[0]]
            parts = ref.parts
            for n in range(len(parts), 0, -1):
                candidate = ".".join(parts[:n])
                if candidate in step_ids or candidate in self.state.steps:
                    outputs = self.state.outputs(candidate, parts[n]) if n < len(parts) else None
                    if outputs is None:
                        raise CheckFailed(f"{ref.text}: {candidate}.{parts[n] if n < len(parts) else ''} has no "
                                          "outputs (it did not run, or was skipped)")
                    cur = outputs
                    for part in parts[n + 1:]:
                        if isinstance(cur, dict) and part in cur:
                            cur = cur[part]
                        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
                            cur = cur[int(part)]
                        else:
                            raise CheckFailed(f"{ref.text}: no output {part!r}")
                    return cur
            raise CheckFailed(f"{ref.text}: no such step")
        return lookup

    def resolve(self, value: Any, sid: str) -> Any:
        return templates.render(value, self.lookup(sid))

    def render(self, text: str, sid: str) -> str:
        try:
            return str(templates.render(text, self.lookup(sid)))
        except CheckFailed:
            return str(text)


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


RUN_KIND: dict[StepKind, Callable[[Runner, dict[str, Any], float | None], None]] = {
    StepKind.TASK: Runner.run_task,
    StepKind.APPROVAL: lambda runner, step, deadline: runner.run_approval(step),
    StepKind.RUN: lambda runner, step, deadline: runner.run_child(step),
}

# Records that make a step worth anchoring at its end: something was done or decided.
ACTED = frozenset({Event.ITEM_INTENT, Event.PROMPT, Event.CHILD_STARTED, Event.CHILD_FINISHED, Event.TAKEOVER,
                   Event.FORCED, Event.OFFER})


def failing(target: str) -> Outcome | None:
    """The failure hook: ``RUNBOOK_FAIL_AT=STEP.ITEM[,STEP.ITEM...]`` makes those items fail
    (an action fails before its effect; ``STEP.approval`` refuses a gate). Off unless set."""
    spec = os.environ.get("RUNBOOK_FAIL_AT")
    if spec and target in spec.split(","):
        return Outcome.fail(f"failed by RUNBOOK_FAIL_AT={target} (test hook)", {"fail_at": target})
    return None


def crash(target: str, point: str) -> None:
    """The fault hook: ``RUNBOOK_CRASH_AT=STEP.ITEM:POINT`` kills the process right here."""
    spec = os.environ.get("RUNBOOK_CRASH_AT")
    if not spec:
        return
    where, _, at = spec.rpartition(":")
    if where == target and at == point:
        os.kill(os.getpid(), signal.SIGKILL)


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
