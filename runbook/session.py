"""Starting, resuming and closing runs: load → validate → plan → lock → execute → report.

Each stage is a small function; the CLI passes in the console and the interactive
prompter (if there is a person), so tests can drive the same path with scripted ones.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import answers as answers_mod
from .engine import LockRef, Runner
from .errors import CheckFailed, ExitCode, InputError, Interrupted, LockHeld, Parked, RunbookError, UsageError
from .locks import Holder
from .params import Params, check_value, env_var, resolve
from .plan import Environment, Plan, Resolver, load_environment, merge
from .plugins import Registry, load as load_plugins
from .project import Project, state_home
from .prompts import AnswersPrompter, Chain, Prompt, YesPrompter
from .model import LedgerRecord
from .recorder import anchor, append_final, ledger_event
from .redact import Redactor
from .state import Event, RunState, Status, TERMINAL
from .store import LocalStore, check_salted, new_run_id
from .validate import param_problem

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
                 store: LocalStore | None = None):
        self.root = Path(root)
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
        self._env: Environment | None = None

    # -- stages ------------------------------------------------------------------------
    def chain(self, env: Environment | None) -> Chain:
        prompters: list[Any] = []
        if self.answers is not None:
            prompters.append(AnswersPrompter(self.answers.answers, f"answers-file:{self.answers.file}"))
        if self.options.yes:
            prompters.append(YesPrompter())
        return Chain(prompters, self.person)

    def environment(self, name: str | None) -> Environment | None:
        """Load an environment; a sandbox environment brings the sandbox up and applies its overlay."""
        env = load_environment(self.project, name) if name else None
        if env is not None:
            self.use_backend(env.data)
        if env is not None and isinstance(env.data.get("sandbox"), dict):
            self.sandbox(env)
        self._env = env
        return env

    def use_backend(self, env_data: dict[str, Any]) -> None:
        """Switch to the store the environment's ``backend`` names (the team backend on AWS)."""
        from .backends import open_store, same_backend

        if not same_backend(self.store, env_data):
            self.store = open_store(env_data, self.store.home)

    def sandbox(self, env: Environment) -> None:
        """Bring the sandbox up (never for validate, show or --dry-run, which do not come here)."""
        from .sandbox import control

        spec = env.data["sandbox"]
        scenario = os.environ.get("RUNBOOK_SANDBOX_SCENARIO") or spec.get("scenario", "healthy")
        state = control.running(self.store.home)
        if state is None:
            if self.console is not None:
                self.console.line(f"Starting the sandbox (scenario {scenario}) under {self.store.home}/sandbox ...")
            state = control.up(self.store.home, scenario, review_delay=float(spec.get("review_delay", 1)))
        env.overlay = control.overlay(self.store.home)
        operator_token = next(t for t, login in state["github"]["tokens"].items()
                              if login == state["github"]["operator"])
        api = env.data.get("api") or {}
        for var, value in (((env.data.get("github") or {}).get("token_env"), operator_token),
                           (api.get("token_env"), "sandbox-api-token"),
                           (api.get("login_password_env"), "sandbox-password")):
            if var:
                os.environ.setdefault(var, value)
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")

    def params(self, specs: dict[str, Any], chain: Chain, stored: dict[str, Any] | None = None,
               secret_hashes: dict[str, str] | None = None) -> Params:
        """Parameters from their sources; missing ones asked for, or exit 2 with nobody to ask."""
        answers = self.answers.params if self.answers else None
        params = resolve(specs, self.options.params, os.environ, answers, self.answers.doc if self.answers else None)
        if stored is not None:
            problems = [f"<command line>: {k} was {stored[k]!r} when the run started, not {params.values[k]!r}; "
                        f"omit it or give the same value (at params.{k})"
                        for k in stored if k in params.values and params.sources.get(k) not in ("default",)
                        and params.values[k] != stored[k]]
            if problems:
                raise InputError(problems)
            params.values.update(stored)
            params.missing = [m for m in params.missing if m not in stored]
        for name in list(params.missing):
            spec = specs[name]
            if chain.has_person:
                value = self.ask_param(chain, name, spec)
            else:
                how = (f"set {env_var(name)}" if spec.get("secret") else
                       f"--param {name}=VALUE, {env_var(name)}, or params: in the answers file")
                raise InputError([f"<command line>: parameter {name!r} is needed and nobody can be asked: {how} "
                                  f"(at params.{name})"])
            (params.secrets if spec.get("secret") else params.values)[name] = value
            params.sources[name] = "prompt"
            params.missing.remove(name)
        for name, stored_hash in (secret_hashes or {}).items():
            value = params.secrets.get(name)
            if value is None:
                raise InputError([f"<command line>: secret parameter {name!r} is needed to resume: set "
                                  f"{env_var(name)} (at params.{name})"])
            if not check_salted(value, stored_hash):
                raise InputError([f"<command line>: secret parameter {name!r} is not the value the run started "
                                  f"with (at params.{name})"])
        for value in params.secrets.values():
            self.redactor.add(value)
        return params

    def ask_param(self, chain: Chain, name: str, spec: dict[str, Any]) -> Any:
        def validate(raw: str) -> str | None:
            try:
                check_value(spec, raw)
            except ValueError as exc:
                return str(exc)
            return None
        desc = spec.get("description") or name
        default = spec.get("default")
        if spec.get("suggest") == "next-release" and self._env is not None:
            from .suggest import next_release

            default = next_release(merge(self._env.data, self._env.overlay)) or default
        prompt = Prompt(f"params.{name}", "param", f"{desc} ({name}):", secret=bool(spec.get("secret")),
                        default=default, validate=validate)
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

    def guard_protected(self, plan: Plan, chain: Chain) -> None:
        """Protected environments: no --yes, no prompt approvals, the name typed before starting
        or resuming (both paths call this one guard)."""
        env = plan.env
        if env is None or not env.protected:
            return
        if self.options.yes:
            raise InputError([f"<command line>: --yes is refused on protected environment {env.name!r} (at --yes)"])
        prompt_gates = [s.id for s in plan.steps if s.approval is not None and s.approval.get("source") == "prompt"]
        if prompt_gates and not self.store.verifies_approvals:
            raise InputError([f"{plan.file}: prompt approvals are refused on protected environment {env.name!r} "
                              f"(steps {', '.join(prompt_gates)}); use a github-pr approval, or (for teams "
                              "without GitHub) the team backend (`backend: {kind: aws}`), where each approver "
                              "runs `invoke runbook.approve RUN_ID --env ENV` under their own AWS identity"])
        prompt = Prompt("run.environment", "run", f"Type the environment name ({env.name}) to start:")
        try:
            answer, _ = chain.ask(prompt)
        except Parked:
            raise InputError([f"<command line>: protected environment {env.name!r} needs its name typed "
                              "(run.environment in an answers file, or a terminal)"]) from None
        typed = answer.get("choice", answer.get("value"))
        if typed != env.name:
            raise CheckFailed(f"typed {typed!r}, not {env.name!r}: nothing was started")

    def child_plan(self, env: Environment | None, chain: Chain) -> Any:
        def make(runbook: str, given: dict[str, Any]) -> Plan:
            path = self.project.runbook_path(runbook)
            checked = self.resolver.check(path)
            specs = checked.data.get("params") or {}
            params = Params()
            for name, spec in specs.items():
                if name in given:
                    problem = param_problem(spec, given[name])
                    if problem:
                        raise CheckFailed(f"linked run {runbook}: {name} {problem}")
                    params.values[name] = given[name]
                elif spec.get("secret") and os.environ.get(env_var(name)):
                    params.secrets[name] = os.environ[env_var(name)]
                    self.redactor.add(params.secrets[name])
                elif "default" in spec:
                    params.values[name] = spec["default"]
                else:
                    raise CheckFailed(f"linked run {runbook}: parameter {name!r} has no value")
            return self.resolver.plan(path, env, params)
        return make

    def runner(self, plan: Plan, run_id: str, lock: LockRef, chain: Chain) -> Runner:
        return Runner(plan, self.store, self.registry, chain, self.operator, run_id, self.redactor, lock,
                      self.root, self.console, self.child_plan(plan.env, chain))

    # -- commands ----------------------------------------------------------------------
    def start(self, name: str) -> int:
        """`invoke runbook NAME`: a new run (or, with --resume, the unfinished one)."""
        if self.options.resume:
            if self.options.env:
                self.use_backend(load_environment(self.project, self.options.env).data)
            return self.resume(self.unfinished(name))
        path = self.project.runbook_path(name)
        checked = self.resolver.check(path)
        env = self.environment(self.options.env)
        chain = self.chain(env)
        params = self.params(dict(checked.data.get("params") or {}), chain)
        plan = self.resolver.plan(path, env, params)
        if self.answers is not None:
            answers_mod.check_against(self.answers, plan.name, plan.prompts())
        self.add_token_secrets(env)
        self.guard_protected(plan, chain)
        run_id = new_run_id()
        lock, takeover = self.acquire(plan, run_id, chain)
        runner = self.runner(plan, run_id, lock, chain)

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
            prompt = Prompt("run.takeover", "run", f"{held} -- type a reason to take the lock over (emergency):")
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
            finished = self.store.state(current.run_id).status in TERMINAL
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
        previous, reason = takeover
        data = {"key": runner.lock.key, "reason": reason, "epoch": runner.lock.epoch,
                "from_run": previous.run_id if previous else None,
                "from_operator": previous.operator if previous else None}
        runner.emit(Event.TAKEOVER, data, flush=True)
        ledger_event(self.store, LedgerRecord.TAKEOVER, run=runner.run_id, **data)

    def finish(self, runner: Runner, status: Status, reason: str = "") -> int:
        if status in RELEASES_LOCK and runner.lock.key is not None and runner.lock.owner == runner.run_id:
            self.store.locks.release(runner.lock.key, runner.run_id, runner.lock.epoch)
        if status is Status.SUCCEEDED:
            self.close_taken_over(runner)
        if self.console is not None:
            shown = reason or (runner.state.reason if status is not Status.SUCCEEDED else "")
            self.console.summary(runner.run_id, status.value, shown, runner.plan.name,
                                 deviations=len(runner.state.deviations))
        if status is Status.INTERRUPTED:
            raise Interrupted(f"run {runner.run_id} saved; resume with `invoke runbook.resume {runner.run_id}`")
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
            if state.status in TERMINAL:
                continue
            append_final(self.store, fenced, self.operator, self.redactor, Event.ROLLED_BACK, {
                "reason": f"its lock was taken over by run {runner.run_id} ({runner.plan.name}), which succeeded",
                "by_run": runner.run_id, "runbook": runner.plan.name})

    def unfinished(self, name: str) -> str:
        env = self.options.env
        from .review import unfinished_states

        found = [s for s in unfinished_states(self.store) if s.runbook == name and s.env == env and not s.parent]
        if not found:
            raise UsageError(f"<command line>: no unfinished run of {name!r}"
                             f"{' in ' + env if env else ''} to resume; `invoke runbook.status` lists runs")
        if len(found) > 1:
            listing = "; ".join(f"{s.run_id} ({s.status.value}, started {s.started})" for s in found)
            raise UsageError(f"<command line>: several unfinished runs of {name!r}: {listing}; "
                             "resume one with `invoke runbook.resume RUN_ID`")
        return found[0].run_id

    def resume(self, prefix: str) -> int:
        """`invoke runbook.resume RUN_ID`: continue exactly where the run stopped."""
        run_id = self.store.find(prefix)
        records = self.store.records(run_id)
        from .state import derive

        state = derive(records)
        if state.status in TERMINAL:
            done = " (the ledger anchor the engine was stopped before writing is written now)" \
                if self.complete_anchor(run_id) else ""
            if state.lock:
                self.release_finished(state.lock)
            raise UsageError(f"<command line>: run {run_id} has {state.status.value}; there is nothing to resume{done}")
        started = next(r for r in records if r["type"] == Event.RUN_STARTED.value)["data"]
        path = Path(state.plan_file) if state.plan_file and Path(state.plan_file).is_file() \
            else self.project.runbook_path(state.runbook)
        checked = self.resolver.check(path)
        env = self.environment(state.env)
        chain = self.chain(env)
        params = self.params(dict(checked.data.get("params") or {}), chain, stored=state.params,
                             secret_hashes=state.secret_hashes)
        plan = self.resolver.plan(path, env, params)
        if self.answers is not None:
            answers_mod.check_against(self.answers, plan.name, plan.prompts())
        self.add_token_secrets(env)
        self.guard_protected(plan, chain)
        forced = self.check_digest(plan, state, chain)
        lock = self.reclaim(state, started, run_id)
        runner = self.runner(plan, run_id, lock, chain)

        def begin() -> None:
            runner.open(create=False, records=records)
            runner.session(resume=True)
            if forced:
                runner.emit(Event.FORCED, {"reason": forced, "old_digest": state.digest, "digest": plan.digest},
                            flush=True)
        return self.drive(runner, begin)

    def check_digest(self, plan: Plan, state: RunState, chain: Chain) -> str:
        if plan.digest == state.digest:
            return ""
        message = (f"the plan changed since run {state.run_id} started (runbook, includes, environment or plugins; "
                   f"digest {state.digest[:12]} -> {plan.digest[:12]})")
        prompt = Prompt("run.force", "run", f"{message}. Type a reason to resume anyway:")
        try:
            answer, _ = chain.ask(prompt)
        except Parked:
            raise InputError([f"<command line>: {message}; resume anyway with a reason (run.force: {{reason: ...}} "
                              "in an answers file, or interactively)"]) from None
        reason = str(answer.get("reason") or answer.get("value") or "").strip()
        if not reason:
            raise InputError([f"<command line>: {message}; a forced resume needs a reason"])
        return reason

    def reclaim(self, state: RunState, started: dict[str, Any], run_id: str) -> LockRef:
        key = started.get("lock")
        if key is None:
            return LockRef(None, run_id, 0)
        owner = started.get("lock_owner") or run_id
        holder = self.store.locks.reclaim(key, owner, state.runbook, self.operator)
        return LockRef(key, owner, holder.epoch)

    def abandon(self, prefix: str, reason: str) -> int:
        """`invoke runbook.abandon RUN_ID --reason`: close a run that will never finish."""
        if not reason.strip():
            raise InputError(["<command line>: --reason is required (at --reason)"])
        run_id = self.store.find(prefix)
        state = self.store.state(run_id)
        if state.status in TERMINAL:
            raise UsageError(f"<command line>: run {run_id} has already {state.status.value}")
        holder = self.store.locks.read(state.lock) if state.lock else None
        if holder is not None and holder.run_id == run_id and not holder.is_stale():
            raise UsageError(f"<command line>: run {run_id} is live ({holder.describe()}); stop it first")
        append_final(self.store, run_id, self.operator, self.redactor, Event.ABANDONED, {"reason": reason})
        if holder is not None and holder.run_id == run_id:
            self.store.locks.release(state.lock, run_id, holder.epoch)  # type: ignore[arg-type]
        return ExitCode.OK

    def unlock(self, key: str, reason: str) -> Holder:
        if not reason.strip():
            raise InputError(["<command line>: --reason is required (at --reason)"])
        holder = self.store.locks.unlock(key)
        ledger_event(self.store, LedgerRecord.UNLOCK, key=key, reason=reason, by=self.operator, holder_run=holder.run_id,
                     holder_operator=holder.operator)
        return holder
