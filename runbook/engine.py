"""Executing a plan: the step loop.

The Runner executes one run's steps in order and asks its collaborators for everything
with a side effect: the Recorder (journal and ledger), the plugin registry, the prompter
chain, the console. Every fact becomes a journal record and the run's state is folded
from those records, so a resumed run continues from exactly what was written. Step kinds
are dispatched through a table (``RUN_KIND``); each kind's rules live in their own
module, behind a small host interface (the Runner): a task step's items in ``items``
(manual checklists in ``manual``, recovery of an interrupted action in ``recovery``),
approval gates in ``approvals``, linked runs and the on_failure offer in ``linked``,
for_each in ``for_each``, the operator's on_fail decisions in ``on_fail``.
"""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import approvals, clock, conditions, decide, for_each, items, linked, on_fail, results, templates
from .results import StepResult
from .errors import CheckFailed, Interrupted, Parked, RunbookError
from .faults import NONE, Faults
from .locks import Fenced, LockRef
from .model import StepKind
from .plan import Plan, merge
from .plugins import Context, Outcome, Plugin, Registry
from .prompts import Chain, Prompt
from .recorder import Recorder
from .redact import Redactor
from .state import Event, RunState, Status, StepStatus
from .steps import Step, group_each

CRASH_POINTS = ("before-intent", "after-intent", "after-effect")

__all__ = ["CRASH_POINTS", "LockRef", "Runner", "StepResult"]


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
    faults: Faults = NONE                                            # crash and failure injection (tests)
    recorder: Recorder = field(init=False)
    scripted_retries: dict[str, int] = field(default_factory=dict)
    iterations: dict[str, dict[str, Any]] = field(default_factory=dict)   # STEP[i] -> {of, index, value}
    asking: Any = field(default_factory=threading.RLock)           # one prompt at a time
    parallel: int = 0                                                # for_each iterations in threads now
    work: Path | None = None                                         # the run's checkout, once known

    def __post_init__(self) -> None:
        self.recorder = Recorder(self.store, self.run_id, self.operator, self.redactor, self._fence, self.console,
                                 self.faults)

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
        each = for_each.each_of(self, str(data.get("step") or data.get("id") or ""))
        if each is not None and "each" not in data:
            data = {**data, "each": {"index": each["index"], "value": each["value"]}}
        self.recorder.emit(kind, data, flush)

    def flush(self, anchor: bool = False) -> None:
        """Write what is buffered as one group commit (and anchor it in the ledger when asked)."""
        self.recorder.flush(anchor)

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
            if decide.run_next(bool(offer and offer.get("accepted")), bool(self.plan.on_failure)) \
                    is decide.RunNext.RESUME_LINKED:
                # the run failed after its `after` step and its on_failure runbook was accepted: a
                # resume finishes that linked run; the run's own failed step is never run again
                return linked.rolled_back(self, self.state.failure or self.state.reason, linked.run_on_failure(self))
            for step in group_each(self.plan.steps):
                result = self.run_step(step)
                if result.ends_run:
                    return _ends_failed(self, result.reason)
                if step.end and self.state.steps[step.id].status is StepStatus.SUCCEEDED:
                    return self.end_at(step)
        except for_each.Ended as exc:
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
        except CheckFailed as exc:
            return _ends_failed(self, str(exc))
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
            return linked.offer_on_failure(self, reason)
        self.emit(Event.SUCCEEDED, {"deviations": len(self.state.deviations), "ended_at": step.id, "reason": reason})
        self.flush(anchor=True)
        return Status.SUCCEEDED

    def stop_fenced(self) -> None:
        """This run's lock was taken over: stop at once and write nothing more (not even to its own
        journal: the run that took over closes it, ``rolled-back``, once it has succeeded; until
        then every command shows it ``interrupted``, as its journal is open and its lock gone)."""
        from . import signals

        signals.ignore_during_cleanup()
        self.recorder.drop()

    def run_step(self, step: Step) -> StepResult:
        """Run one step to its end; its result: succeeded, skipped, failed and continued, or failed
        (the run ends there).

        A step that did not finish (a crash, Ctrl-C, a failed check, gate, action or linked run,
        an abort) starts again: its checks, gate and confirm run or are asked again, what it did
        stays done. The only way past a failure is a typed skip, journaled as a deviation. A step
        that finished is never repeated."""
        if decide.step_next(self.state.finished(step.id), False) is decide.StepNext.KEEP:
            return results.OK
        restart = step.id in self.state.steps
        self.emit(Event.STEP_STARTED, {"step": step.id, "title": self.render(step.title, step.id),
                                       "instructions": self.render(step.instructions, step.id),
                                       **({"restart": True} if restart else {})}, flush=restart)
        skip = self.skip_reason(step)
        if isinstance(skip, StepResult):                 # its condition cannot be decided: the run fails
            return skip
        if decide.step_next(False, bool(skip)) is decide.StepNext.SKIP:
            self.finish_step(step.id, StepStatus.SKIPPED, reason=skip)
            return results.skipped(skip)
        deadline = clock.monotonic() + step.timeout if step.timeout else None
        while True:
            result = (for_each.run_each if step.members else RUN_KIND[step.kind])(self, step, deadline)
            if not result.failed:
                self.finish_step(step.id, StepStatus(result.status), reason=result.reason)
                return result
            if step.continues:
                reason = f"{result.reason} (on_failure: continue)"
                self.finish_step(step.id, StepStatus.FAILED, reason=reason, continued=True)
                return StepResult("failed", reason, continued=True)
            choice, reason = on_fail.step_on_fail(self, step, result)
            if choice == "retry":
                self.emit(Event.STEP_STARTED, {"step": step.id, "title": self.render(step.title, step.id),
                                               "restart": True},
                          flush=True)      # the state forgets the step's checks, gate and confirm
                continue
            if choice == "skip":
                return results.skipped(reason)
            self.finish_step(step.id, StepStatus.FAILED, reason=reason)
            return results.failed(reason)

    def finish_step(self, sid: str, status: StepStatus, **data: Any) -> None:
        """Record a step's end, anchored in the ledger when the step acted or asked (a step of checks
        only waits for the next anchor; every run status is anchored)."""
        self.emit(Event.STEP_FINISHED, {"step": sid, "status": status.value,
                                        **{k: v for k, v in data.items() if v not in ("", None, False)}})
        self.flush(anchor=self.recorder.acted)

    def scripted_retry_allowed(self, pid: str, source: str) -> bool:
        """An answers file that says retry would loop forever: allow a few, then stop."""
        if source == "interactive":
            return True
        count = self.scripted_retries.get(pid, 0) + 1
        self.scripted_retries[pid] = count
        return count <= on_fail.MAX_SCRIPTED_RETRIES

    def skip_reason(self, step: Step) -> str | StepResult:
        """Why the step's own conditions skip it ('' when it runs; a failed result when one cannot be
        decided, and the step is left unfinished)."""
        for cond in step.conditions:
            resolved = self.resolve(cond.value, step.id)
            try:
                value = conditions.evaluate(resolved)
            except conditions.ConditionError as exc:
                return results.failed(f"{cond.key}: {conditions.text(cond.written)} cannot be decided: {exc}")
            if (cond.key == "when" and not value) or (cond.key == "unless" and value):
                found = f" ({conditions.text(resolved)})" if isinstance(resolved, dict) and resolved != cond.written \
                    else ""
                return f"{cond.key}: {conditions.text(cond.written)} is {str(value).lower()}{found}"
        return ""

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
        if self.work is None:
            self.work = Path(self.store.run_dir(self.run_id)) / "work" / "checkout"
        return self.work

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
        waiting = self.console.waiting(f"{plugin.name} ...") if self.console is not None and not self.parallel \
            else items.quiet()
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


    def child(self, plan: Plan, run_id: str, link: str) -> "Runner":
        """A linked run's Runner: same store, lock and person; its prompts addressed as ``LINK/ID``."""
        return Runner(plan, self.store, self.registry, self.prompter.scoped(link), self.operator, run_id,
                      self.redactor, self.lock, self.root, self.console, self.make_plan, self.faults)

    def ask(self, prompt: Prompt) -> dict[str, Any]:
        """Ask and journal; the answer only."""
        answer, _ = self.ask_with_source(prompt)
        return answer

    def ask_with_source(self, prompt: Prompt) -> tuple[dict[str, Any], str]:
        """Ask through the prompter chain (after writing what is buffered); journal the answer."""
        self.flush()
        with self.asking:
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
        each = for_each.each_of(self, sid)
        mapped = for_each.each_mapping(each)
        return templates.Scope(params, env, run, self.plan.step_ids,
                               lambda s, key: self.state.outputs(mapped(s), key),
                               lambda s: mapped(s) in self.state.steps,
                               each={"index": each["index"], "value": each["value"]} if each else None)

    def resolve(self, value: Any, sid: str) -> Any:
        """Every template in ``value`` looked up now (CheckFailed when one has no value); a value
        without templates is copied as it is, without building the scope (the step loop's cost)."""
        if not templates.has_template(value):
            return templates.render(value, _no_lookup)
        return self.scope(sid).resolve(value)

    def render(self, text: str, sid: str) -> str:
        """Text for people: rendered where it can be, else as written."""
        if "$" not in text:
            return text
        return self.scope(sid).text(text)



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


def _ends_failed(runner: Runner, reason: str) -> Status:
    """The run ends failed (and offers its on_failure runbook when the failure came late enough)."""
    runner.emit(Event.FAILED, {"reason": reason})
    runner.flush(anchor=True)
    return linked.offer_on_failure(runner, reason)


def _no_lookup(ref: templates.Ref) -> Any:
    raise AssertionError(f"no template expected: {ref}")


def _run_approval(runner: Runner, step: Step, deadline: float | None = None) -> StepResult:
    """The step's gate (see ``approvals``)."""
    return approvals.run_gate(runner, step)


# The step kinds a run executes (an include was inlined by the plan): one rule each.
RUN_KIND: dict[StepKind, Callable[[Runner, Step, float | None], StepResult]] = {
    StepKind.TASK: items.run_task,
    StepKind.APPROVAL: _run_approval,
    StepKind.RUN: linked.run_child,
}
