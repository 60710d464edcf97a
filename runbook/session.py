"""Starting, resuming and closing runs: prepare (``prepare.py``) → execute → report.

A Session is what every run of one command shares: project, plugins, store, prompters,
console. It prepares a run through the stages of ``prepare``, drives the Runner under the
signal handlers and the fence watcher, and closes runs (finish, abandon, unlock, and the
run a successful emergency takeover fenced). The CLI passes in the console and the
interactive prompter (if there is a person), so tests drive the same path with scripted ones.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import answers as answers_mod, hints
from .engine import Runner
from .errors import ExitCode, InputError, Interrupted, LockHeld, Parked, RunbookError, UsageError
from .faults import NONE, Faults
from .locks import Holder, LockRef
from .model import LedgerRecord
from .params import check_value
from .plan import Environment, Plan, Resolver, load_environment
from .plugins import Registry, load as load_plugins
from .project import Project, state_home
from .prompts import AnswersPrompter, Chain, Prompt, YesPrompter
from .recorder import anchor, append_final, ledger_event
from .redact import Redactor
from .state import Event, Status
from .store import LocalStore

EXIT = {Status.SUCCEEDED: ExitCode.OK, Status.FAILED: ExitCode.FAILED, Status.ROLLED_BACK: ExitCode.FAILED,
        Status.PARKED: ExitCode.PARKED, Status.INTERRUPTED: ExitCode.INTERRUPTED}
RELEASES_LOCK = {Status.SUCCEEDED, Status.ROLLED_BACK}


@dataclass
class Options:
    env: str | None = None
    params: list[str] = field(default_factory=list)
    answers_file: str | None = None
    yes: bool = False
    non_interactive: bool = False
    resume: bool = False
    wait_lock: float = 0.0
    force_reason: str | None = None
    verbose: bool = False


def takeover_question(key: str, holder: Holder | None, held: str) -> str:
    """The emergency takeover's question first, on one line; who holds the lock below it."""
    lines = [f"Take over lock {key!r} in an emergency? (Ctrl-C leaves it; the holder is fenced and stops)"]
    if holder is not None:
        state = "stale: its process is gone" if holder.is_stale() else "live"
        lines += [f"  held by:  {holder.operator} on {holder.host} (pid {holder.pid}), {state}",
                  f"  run:      {holder.run_id} ({holder.runbook}), since {holder.since}"]
    else:
        lines.append(f"  {held}")
    return "\n".join(lines)


def parse_duration(text: str | None) -> float:
    """``90``, ``90s``, ``10m``, ``2h`` -> seconds."""
    if not text:
        return 0.0
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not m:
        raise InputError([f"<command line>: {text!r} is not a duration like 90s, 10m or 2h (at --wait-lock)"])
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


class Session:
    """What every run of one command shares: project, plugins, store, prompter, console."""

    def __init__(self, root: Path, options: Options, console: Any = None, person: Any = None,
                 store: LocalStore | None = None, faults: Faults = NONE,
                 sandbox_up: Callable[[Path, Environment, Any], None] | None = None):
        self.root = Path(root)
        self.sandbox_up = sandbox_up        # the command line's: brings the sandbox up (never validate/show/dry-run)
        self.faults = faults                # crash and failure injection: the command layer's (tests)
        self.options = options
        self.console = console
        self.person = None if options.non_interactive else person
        self.project = Project(self.root)
        self.registry: Registry = load_plugins(self.root)
        self.resolver = Resolver(self.project, self.registry)
        self.store = store or LocalStore(state_home(self.root))
        self.answers = answers_mod.load(options.answers_file, self.root) if options.answers_file else None
        from .identity import operator

        self.operator = operator()
        self.redactor = Redactor()
        if console is not None:
            console.verbose = options.verbose
            console.redact = self.redactor.text

    # -- stages ------------------------------------------------------------------------
    def chain(self, env: Environment | None) -> Chain:
        """Who answers prompts, in order: the answers file, ``--yes``, then the person (if any)."""
        prompters: list[Any] = []
        if self.answers is not None:
            prompters.append(AnswersPrompter(self.answers.answers, f"answers-file:{self.answers.file}"))
        if self.options.yes:
            prompters.append(YesPrompter())
        return Chain(prompters, self.person)

    def environment(self, name: str | None) -> Environment | None:
        """Load an environment; a sandbox environment is brought up (by ``sandbox_up``, which the
        command line passes) and its overlay applied."""
        env = load_environment(self.project, name) if name else None
        if env is not None:
            self.use_backend(env.data)
        if env is not None and isinstance(env.data.get("sandbox"), dict):
            if self.sandbox_up is None:
                raise UsageError(f"environment {env.name!r} is a sandbox: it is brought up by the command line "
                                 "(`invoke runbook ... --env " + env.name + "`), not here")
            self.sandbox_up(self.store.home, env, self.console)
        return env

    def use_backend(self, env_data: dict[str, Any]) -> None:
        """Switch to the store the environment's ``backend`` names (the team backend on AWS)."""
        from .backends import open_store, same_backend

        if not same_backend(self.store, env_data):
            self.store = open_store(env_data, self.store.home)

    def ask_param(self, chain: Chain, name: str, spec: dict[str, Any], env: Environment | None) -> Any:
        """Ask a person for one parameter (checked as they type)."""
        from .prepare import ask_value, next_release_default

        default = spec.get("default")
        if spec.get("suggest") == "next-release":
            default = next_release_default(env, default)
        kind = spec.get("type", "string")
        if kind == "list" and isinstance(default, list):
            default = ", ".join(map(str, default))          # typed back comma-separated
        hint = {"integer": ", a whole number", "number": ", a number", "list": ", comma-separated"}.get(kind, "")
        prompt = Prompt(f"params.{name}", "param", f"{spec.get('description') or name} ({name}{hint}):",
                        secret=bool(spec.get("secret")), default=default, choices=list(spec.get("choices") or []),
                        validate=lambda raw: ask_value(spec, raw), extra={"type": kind})
        answer = chain.interactive.answer(prompt) or {}
        return check_value(spec, answer.get("value"))

    def add_token_secrets(self, env: Environment | None) -> None:
        """Tokens the engine reads are secrets too."""
        names = ["GITHUB_TOKEN", "GH_TOKEN", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"]
        if env is not None:
            for section in ("github", "api"):
                var = (env.data.get(section) or {}).get("token_env")
                if var:
                    names.append(var)
        for name in names:
            self.redactor.add(os.environ.get(name))

    def child_plan(self, env: Environment | None) -> Callable[[str, dict[str, Any]], Plan]:
        """How a run makes the plan of a linked run (``run:`` steps, the on_failure runbook)."""
        from .prepare import Prepared, linked_params, load_runbook, make_plan, prepare

        def make(runbook: str, given: dict[str, Any]) -> Plan:
            p = Prepared(name=runbook, env=env)
            prepare(self, p, (load_runbook, linked_params(given), make_plan))
            assert p.plan is not None
            return p.plan
        return make

    def runner(self, plan: Plan, run_id: str, lock: LockRef, chain: Chain) -> Runner:
        """The Runner of a prepared run."""
        return Runner(plan, self.store, self.registry, chain, self.operator, run_id, self.redactor, lock,
                      self.root, self.console, self.child_plan(plan.env), self.faults)

    # -- commands ----------------------------------------------------------------------
    def start(self, name: str) -> int:
        """`invoke runbook NAME`: a new run (or, with --resume, the unfinished one)."""
        from .prepare import START, Prepared, prepare

        if self.options.resume:
            if self.options.env:
                self.use_backend(load_environment(self.project, self.options.env).data)
            return self.resume(self.unfinished(name))
        p = prepare(self, Prepared(name=name, env_name=self.options.env), START)
        assert p.plan is not None and p.chain is not None and p.lock is not None
        runner = self.runner(p.plan, p.run_id, p.lock, p.chain)
        env, takeover = p.env, p.takeover

        def begin() -> None:
            runner.start(overlay=env.overlay if env else None)
            if takeover is not None:
                self.record_takeover(runner, takeover)
        return self.drive(runner, begin)

    def drive(self, runner: Runner, begin: Callable[[], None]) -> int:
        """Write the session's first records (``begin``), execute, and finish: the part a new
        run and a resumed one share, under the signal handlers."""
        from . import signals
        from .locks import watch

        with signals.handled(), watch(self.store.locks, runner.lock.key, runner.lock.owner, runner.lock.epoch):
            try:
                begin()
                status = runner.execute()
            except Interrupted as exc:
                return self.finish(runner, Status.INTERRUPTED, str(exc))
        return self.finish(runner, status)

    def acquire(self, plan: Plan, run_id: str, chain: Chain) -> tuple[LockRef, tuple[Holder, str] | None]:
        """A new run's lock: taken, or (a finished run's stale lock) freed and taken, or (an emergency
        runbook, after a typed reason) taken over; LockHeld (exit 3) otherwise."""
        if plan.lock is None:
            return LockRef(None, run_id, 0), None
        locks = self.store.locks
        try:
            try:
                holder = locks.acquire(plan.lock, run_id, plan.name, self.operator, wait=self.options.wait_lock)
            except LockHeld:
                if not self.release_finished(plan.lock):
                    raise
                holder = locks.acquire(plan.lock, run_id, plan.name, self.operator, wait=self.options.wait_lock)
            return LockRef(plan.lock, run_id, holder.epoch), None
        except LockHeld as held:
            if not plan.emergency:
                raise
            current = locks.read(plan.lock)
            prompt = Prompt("run.takeover", "run", "Reason for taking it over:", details=takeover_question(
                plan.lock, current, str(held)))
            try:
                answer, _ = chain.ask(prompt)
            except Parked:
                raise LockHeld(f"{held}; an emergency takeover needs a typed reason (run.takeover)") from None
            reason = str(answer.get("reason") or answer.get("value") or "").strip()
            if not reason:
                raise LockHeld(f"{held}; an emergency takeover needs a reason")
            holder, previous = locks.take_over(plan.lock, run_id, plan.name, self.operator)
            return LockRef(plan.lock, run_id, holder.epoch), ((previous or current), reason)  # type: ignore[return-value]

    def release_finished(self, key: str) -> bool:
        """A stale lock whose run had finished (it stopped between its last record and releasing
        the lock): complete that run's ledger anchor and free the key. True when freed."""
        current = self.store.locks.read(key)
        if current is None or not current.is_stale():
            return False
        try:
            finished = self.store.state(current.run_id).over
        except RunbookError:
            return False
        if not finished:
            return False
        self.complete_anchor(current.run_id)
        self.store.locks.release(key, current.run_id, current.epoch)
        return True

    def complete_anchor(self, run_id: str) -> bool:
        """Anchor a run's journal to its end in the ledger when its newest anchor falls short
        (the engine stopped between the two writes); True when an anchor was written."""
        from .audit import ledger_marks

        journal = self.store.journal(run_id)
        data = b"".join(self.store.ledger.lines())
        newest = ledger_marks(data, data.count(b"\n"), 0, run_id).anchors.get(run_id)
        if newest is not None and newest["length"] >= journal.length:
            return False
        anchor(self.store, run_id, journal)
        return True

    def record_takeover(self, runner: Runner, takeover: tuple[Holder, str]) -> None:
        """A takeover in the run's journal (a deviation) and in the ledger."""
        previous, reason = takeover
        data = {"key": runner.lock.key, "reason": reason, "epoch": runner.lock.epoch,
                "from_run": previous.run_id if previous else None,
                "from_operator": previous.operator if previous else None}
        runner.emit(Event.TAKEOVER, data, flush=True)
        ledger_event(self.store, LedgerRecord.TAKEOVER, run=runner.run_id, **data)

    def finish(self, runner: Runner, status: Status, reason: str = "") -> int:
        """A session's end: the lock released when the run ended for good, the run it fenced closed,
        the summary shown; the exit code."""
        if (status in RELEASES_LOCK or runner.state.over) and runner.lock.key is not None and runner.lock.owner == runner.run_id:
            self.store.locks.release(runner.lock.key, runner.run_id, runner.lock.epoch)
        if status is Status.SUCCEEDED:
            self.close_taken_over(runner)
        if self.console is not None:
            shown = reason or (runner.state.reason if status is not Status.SUCCEEDED or runner.state.ended_at else "")
            self.console.summary(runner.run_id, status.value, shown, runner.plan.name,
                                 deviations=len(runner.state.deviations), over=runner.state.over)
        if status is Status.INTERRUPTED:
            raise Interrupted(f"run {runner.run_id} saved; resume with `{hints.resume(runner.run_id)}`")
        return EXIT[status]

    def close_taken_over(self, runner: Runner) -> None:
        """A run whose lock this run took over in an emergency ends ``rolled-back`` (naming this
        run) once this run has succeeded: final, and nothing stale left behind."""
        for rec in self.store.records(runner.run_id):
            if rec["type"] != Event.TAKEOVER.value or not (rec["data"] or {}).get("from_run"):
                continue
            fenced = rec["data"]["from_run"]
            try:
                state = self.store.state(fenced)
            except RunbookError:
                continue
            if state.over:
                continue
            append_final(self.store, fenced, self.operator, self.redactor, Event.ROLLED_BACK, {
                "reason": f"its lock was taken over by run {runner.run_id} ({runner.plan.name}), which succeeded",
                "by_run": runner.run_id, "runbook": runner.plan.name})

    def unfinished(self, name: str | None = None) -> str:
        """The one unfinished run to resume (of runbook ``name`` in ``--env``, or of any runbook):
        what `invoke runbook NAME --resume` and `invoke runbook.resume` without a run id take."""
        from .review import unfinished_states

        env = self.options.env
        found = [s for s in unfinished_states(self.store) if not s.parent
                 and (name is None or (s.runbook == name and s.env == env))]
        what = f"of {name!r}{' in ' + env if env else ''}" if name else "at all"
        if not found:
            raise UsageError(f"<command line>: no unfinished run {what} to resume; `{hints.status()}` lists runs")
        if len(found) > 1:
            listing = "; ".join(f"{s.run_id} {s.runbook} ({s.status.value}, started {s.started})" for s in found)
            raise UsageError(f"<command line>: several unfinished runs {what}: {listing}; "
                             f"resume one with `{hints.resume('RUN_ID')}`")
        return found[0].run_id

    def resume(self, prefix: str) -> int:
        """`invoke runbook.resume --run-id ID`: continue exactly where the run stopped, through the
        same guards as a start."""
        from .prepare import RESUME, Prepared, prepare

        p = prepare(self, Prepared(run_ref=prefix), RESUME)
        assert p.plan is not None and p.chain is not None and p.lock is not None and p.state is not None
        runner = self.runner(p.plan, p.run_id, p.lock, p.chain)
        records, forced, old_digest = p.records, p.forced, p.state.digest

        def begin() -> None:
            runner.open(create=False, records=records)
            runner.session(resume=True)
            if forced:
                runner.emit(Event.FORCED, {"reason": forced, "old_digest": old_digest, "digest": runner.plan.digest},
                            flush=True)
        return self.drive(runner, begin)

    def abandon(self, prefix: str, reason: str) -> int:
        """`invoke runbook.abandon RUN_ID --reason`: close a run that will never finish."""
        if not reason.strip():
            raise InputError(["<command line>: --reason is required (at --reason)"])
        run_id = self.store.find(prefix)
        state = self.store.state(run_id)
        if state.over:
            raise UsageError(f"<command line>: run {run_id} has already {state.status.value}")
        holder = self.store.locks.read(state.lock) if state.lock else None
        if holder is not None and holder.run_id == run_id and not holder.is_stale():
            raise UsageError(f"<command line>: run {run_id} is live ({holder.describe()}); stop it first")
        append_final(self.store, run_id, self.operator, self.redactor, Event.ABANDONED, {"reason": reason})
        if holder is not None and holder.run_id == run_id:
            self.store.locks.release(state.lock, run_id, holder.epoch)  # type: ignore[arg-type]
        return ExitCode.OK

    def unlock(self, key: str, reason: str) -> Holder:
        """`invoke runbook.unlock KEY --reason`: free a stale lock (a ledger event)."""
        if not reason.strip():
            raise InputError(["<command line>: --reason is required (at --reason)"])
        holder = self.store.locks.unlock(key)
        ledger_event(self.store, LedgerRecord.UNLOCK, key=key, reason=reason, by=self.operator, holder_run=holder.run_id,
                     holder_operator=holder.operator)
        return holder
