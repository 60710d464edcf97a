"""Preparing a run: one pipeline of small stages, shared by a new run, a resume, show/dry-run
and linked runs.

Each stage takes the session and what the stages before it found (``Prepared``) and adds
to it, or raises the error that ends the command. The order is the contract: what was
given is checked first (exit 2 before anything is written), then the lock is taken (exit
3 before anybody is asked anything), and only then is a person asked: the protected
environment's name, missing parameters, a forced resume's reason. A resume passes through
the same guards as a start, so it can never skip one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from . import answers as answers_mod, decide, hints
from .errors import CheckFailed, InputError, Parked, UsageError
from .locks import Holder, LockRef
from .params import Params, check_value, env_var, resolve
from .plan import Environment, Plan, load_environment, merge
from .prompts import Chain, Prompt
from .state import RunState, derive
from .store import check_salted
from .params import param_problem

# The session running the stages (``runbook.session.Session``; named loosely so that module
# and this one import one way).
Session = Any


@dataclass
class Prepared:
    """What the stages hand on: the runbook, its environment, parameters, plan and lock."""

    name: str = ""
    run_ref: str = ""                     # a run id (or unique prefix) to resume
    run_id: str = ""
    path: Path | None = None
    checked: Any = None
    env_name: str | None = None
    env: Environment | None = None
    chain: Chain | None = None
    params: Params = field(default_factory=Params)
    plan: Plan | None = None
    lock: LockRef | None = None
    takeover: tuple[Holder, str] | None = None
    records: list[dict[str, Any]] = field(default_factory=list)
    state: RunState | None = None
    forced: str = ""
    sandbox: bool = True                  # bring the sandbox up (never for show or --dry-run)
    require_env: bool = True


Stage = Callable[[Session, Prepared], None]


def prepare(session: Session, prepared: Prepared, stages: Sequence[Stage]) -> Prepared:
    """Run the stages in order; a stage after the lock was taken that fails gives it back."""
    for stage in stages:
        try:
            stage(session, prepared)
        except BaseException:
            if prepared.lock is not None and prepared.lock.key is not None and not prepared.run_ref:
                session.store.locks.release(prepared.lock.key, prepared.lock.owner, prepared.lock.epoch)
            raise
    return prepared


# -- what is given ----------------------------------------------------------------------

def load_run(session: Session, p: Prepared) -> None:
    """Resume: the run's journal decides which runbook, environment and parameters."""
    p.run_id = session.store.find(p.run_ref)
    p.records = session.store.records(p.run_id)
    p.state = state = derive(p.records)
    if decide.resume_next(state.over, False) is decide.ResumeNext.REFUSE_OVER:
        done = " (the ledger anchor the engine was stopped before writing is written now)" \
            if session.complete_anchor(p.run_id) else ""
        if state.lock:
            session.release_finished(state.lock)
        why = f" ({state.reason}: the runbook ended it)" if state.ended_at and state.reason else ""
        raise UsageError(f"<command line>: run {p.run_id} has {state.status.value}{why}; there is nothing to resume{done}")
    p.name, p.env_name = state.runbook, state.env
    if state.plan_file and Path(state.plan_file).is_file():
        p.path = Path(state.plan_file)


def load_runbook(session: Session, p: Prepared) -> None:
    """Find and validate the runbook (and what it includes)."""
    p.path = p.path or session.project.runbook_path(p.name)
    p.checked = session.resolver.check(p.path)


def open_environment(session: Session, p: Prepared) -> None:
    """Load the environment (its team backend; the sandbox brought up for a real run) and the prompters."""
    if p.sandbox:
        p.env = session.environment(p.env_name)
    else:
        p.env = load_environment(session.project, p.env_name) if p.env_name else None
    p.chain = session.chain(p.env)


def given_params(session: Session, p: Prepared) -> None:
    """Parameters from the command line, variables, the answers file and defaults; nobody is asked.
    On resume, given values must equal those the run started with."""
    specs = _specs(p)
    answers = session.answers
    p.params = resolve(specs, session.options.params, os.environ, answers.params if answers else None,
                       answers.doc if answers else None)
    if p.state is None:
        return
    stored = p.state.params
    problems = [f"<command line>: {k} was {stored[k]!r} when the run started, not {p.params.values[k]!r}; "
                f"omit it or give the same value (at params.{k})"
                for k in stored if k in p.params.values and p.params.sources.get(k) not in ("default",)
                and p.params.values[k] != stored[k]]
    if problems:
        raise InputError(problems)
    p.params.values.update(stored)
    p.params.missing = [m for m in p.params.missing if m not in stored]


def make_plan(session: Session, p: Prepared) -> None:
    """Resolve the runbook into a plan with what is known now."""
    assert p.path is not None
    p.plan = session.resolver.plan(p.path, p.env, p.params, require_env=p.require_env)


def check_answers(session: Session, p: Prepared) -> None:
    """An answers file may only name prompts the plan has, with answers of the right shape."""
    if session.answers is not None and p.plan is not None:
        answers_mod.check_against(session.answers, p.plan.name, p.plan.prompts())


def check_params(session: Session, p: Prepared, names: Sequence[str] | None = None) -> None:
    """A parameter's own ``check:`` (read-only), run once its value is known: a failure is exit 2
    before anything runs (an old version, before the prerequisites)."""
    from . import templates
    from .plugins import Context, Outcome

    specs = _specs(p)
    values = {**p.params.values, **p.params.secrets}
    env = merge(p.env.data, p.env.overlay) if p.env else {}
    problems = []
    for name in names if names is not None else list(specs):
        spec = specs.get(name) or {}
        check = spec.get("check")
        if not isinstance(check, dict) or name not in values:
            continue
        plugin = session.registry[check["uses"]]
        scope = templates.Scope(values, env, {}, set(), lambda s, i: None, lambda s: False)
        try:
            args = scope.resolve(check.get("with") or {})
            outcome = plugin.func(Context(args=args, env=env, root=session.root, redact=session.redactor.text,
                                          env_name=p.env.name if p.env else ""))
        except CheckFailed as exc:
            outcome = Outcome.fail(str(exc))
        if not isinstance(outcome, Outcome) or not outcome.passed:
            why = outcome.summary if isinstance(outcome, Outcome) else f"{plugin.name} returned no Outcome"
            problems.append(f"<command line>: {name}={session.redactor.text(str(values[name]))!s}: "
                            f"{session.redactor.text(why)} (at params.{name})")
    if problems:
        raise InputError(problems)


def guard_flags(session: Session, p: Prepared) -> None:
    """Protected environments: no --yes, no prompt approvals without the team backend."""
    assert p.plan is not None
    env = p.plan.env
    if env is None or not env.protected:
        return
    if session.options.yes:
        raise InputError([f"<command line>: --yes is refused on protected environment {env.name!r} (at --yes)"])
    gates = [s.id for s in p.plan.steps if s.approval is not None and s.approval.get("source") == "prompt"]
    if gates and not session.store.verifies_approvals:
        raise InputError([f"{p.plan.file}: {hints.protected_prompt_approval(env.name, gates)}"])
    chain = _chain(p)
    if not chain.has_person and not any(a.answer(_typed_prompt(env.name, p)) is not None for a in chain.prompters):
        raise InputError([f"<command line>: protected environment {env.name!r} needs its name typed "
                          "(run.environment in an answers file, or a terminal)"])


# -- the lock -----------------------------------------------------------------------------

def take_lock(session: Session, p: Prepared) -> None:
    """A new run's lock (its key may need a parameter nobody gave yet: that one is asked first)."""
    from .store import new_run_id

    assert p.plan is not None
    if p.plan.lock is not None and "${params." in p.plan.lock:
        ask_params(session, p)
    p.run_id = new_run_id()
    p.lock, p.takeover = session.acquire(p.plan, p.run_id, _chain(p))


def reclaim_lock(session: Session, p: Prepared) -> None:
    """A resumed run takes its own lock back (stale, or free again); anyone else's is exit 3."""
    assert p.state is not None
    started = next(r for r in p.records if r["type"] == "run.started")["data"]
    key = started.get("lock")
    if key is None:
        p.lock = LockRef(None, p.run_id, 0)
        return
    owner = started.get("lock_owner") or p.run_id
    holder = session.store.locks.reclaim(key, owner, p.state.runbook, session.operator)
    p.lock = LockRef(key, owner, holder.epoch)


# -- what a person is asked ---------------------------------------------------------------

def typed_name(session: Session, p: Prepared) -> None:
    """A protected environment's name, typed before a run starts or resumes."""
    assert p.plan is not None
    env = p.plan.env
    if env is None or not env.protected:
        return
    try:
        answer, _ = _chain(p).ask(_typed_prompt(env.name, p))
    except Parked:
        raise InputError([f"<command line>: protected environment {env.name!r} needs its name typed "
                          "(run.environment in an answers file, or a terminal)"]) from None
    typed = answer.get("choice", answer.get("value"))
    if typed != env.name:
        raise CheckFailed(f"typed {typed!r}, not {env.name!r}: nothing was {'resumed' if p.state else 'started'}")


def ask_params(session: Session, p: Prepared) -> None:
    """Missing parameters asked for (exit 2 with nobody to ask); a resume's secrets asked again and
    checked against their salted hashes; the plan resolved again with every value."""
    specs = _specs(p)
    chain = _chain(p)
    asked = False
    options = session.options
    if p.state is None and chain.has_person and not options.yes and not options.answers_file:
        # a person at a terminal starting a run is offered each default (Enter keeps it); --yes,
        # an answers file or nobody to ask: the default, silently
        p.params.missing = [n for n in specs if n in p.params.missing or p.params.sources.get(n) == "default"]
    for name in list(p.params.missing):
        spec = specs[name]
        if not chain.has_person:
            how = (f"set {env_var(name)}" if spec.get("secret") else
                   f"--param {name}=VALUE, {env_var(name)}, or params: in the answers file")
            raise InputError([f"<command line>: parameter {name!r} is needed and nobody can be asked: {how} "
                              f"(at params.{name})"])
        value = session.ask_param(chain, name, spec, p.env)
        (p.params.secrets if spec.get("secret") else p.params.values)[name] = value
        p.params.sources[name] = "prompt"
        p.params.missing.remove(name)
        check_params(session, p, [name])
        asked = True
    for name, stored_hash in (p.state.secret_hashes if p.state else {}).items():
        value = p.params.secrets.get(name)
        if value is None:
            raise InputError([f"<command line>: secret parameter {name!r} is needed to resume: set "
                              f"{env_var(name)} (at params.{name})"])
        if not check_salted(value, stored_hash):
            raise InputError([f"<command line>: secret parameter {name!r} is not the value the run started "
                              f"with (at params.{name})"])
    for value in p.params.secrets.values():
        session.redactor.add(value)
    session.add_token_secrets(p.env)
    if asked:
        make_plan(session, p)


def _typed_prompt(name: str, p: Prepared) -> Prompt:
    verb = "resume" if p.state is not None else "start"
    return Prompt("run.environment", "run", f"Type the environment name ({name}) to {verb}:")


def check_digest(session: Session, p: Prepared) -> None:
    """A run whose plan changed resumes only with a recorded reason (``run.force``)."""
    assert p.plan is not None and p.state is not None
    if decide.resume_next(False, p.plan.digest != p.state.digest) is decide.ResumeNext.RESUME:
        return
    message = (f"the plan changed since run {p.state.run_id} started (runbook, includes, environment or plugins; "
               f"digest {p.state.digest[:12]} -> {p.plan.digest[:12]})")
    try:
        answer, _ = _chain(p).ask(Prompt("run.force", "run", f"{message}. Type a reason to resume anyway:"))
    except Parked:
        raise InputError([f"<command line>: {message}; resume anyway with a reason (run.force: {{reason: ...}} "
                          "in an answers file, or interactively)"]) from None
    reason = str(answer.get("reason") or answer.get("value") or "")
    if decide.resume_next(False, True, reason) is decide.ResumeNext.REFUSE_CHANGED:
        raise InputError([f"<command line>: {message}; a forced resume needs a reason"])
    p.forced = reason.strip()


# -- linked runs --------------------------------------------------------------------------

def linked_params(given: dict[str, Any]) -> Stage:
    """A linked run's parameters: what its parent's step passes (``with:``), secrets from their
    variables, defaults; a missing or wrong one fails the parent's step."""
    def stage(session: Session, p: Prepared) -> None:
        params = Params()
        for name, spec in _specs(p).items():
            if name in given:
                problem = param_problem(spec, given[name])
                if problem:
                    raise CheckFailed(f"linked run {p.name}: {name} {problem}")
                params.values[name] = given[name]
            elif spec.get("secret") and os.environ.get(env_var(name)):
                params.secrets[name] = os.environ[env_var(name)]
                session.redactor.add(params.secrets[name])
            elif "default" in spec:
                params.values[name] = spec["default"]
            else:
                raise CheckFailed(f"linked run {p.name}: parameter {name!r} has no value")
        p.params = params
    return stage


START: tuple[Stage, ...] = (load_runbook, open_environment, given_params, make_plan, check_answers, guard_flags,
                            check_params, take_lock, typed_name, ask_params)
RESUME: tuple[Stage, ...] = (load_run, load_runbook, open_environment, given_params, make_plan, check_answers,
                             guard_flags, reclaim_lock, typed_name, ask_params, check_digest)
PLAN_ONLY: tuple[Stage, ...] = (load_runbook, open_environment, given_params, make_plan, check_answers)


def _specs(p: Prepared) -> dict[str, Any]:
    return dict(p.checked.data.get("params") or {})


def _chain(p: Prepared) -> Chain:
    assert p.chain is not None
    return p.chain


def next_release_default(env: Environment | None, default: Any) -> Any:
    """The version a release suggests: the next one after the CHANGELOG's released sections."""
    if env is None:
        return default
    from .suggest import next_release

    return next_release(merge(env.data, env.overlay)) or default


def ask_value(spec: dict[str, Any], raw: str) -> str | None:
    """Why a typed value does not fit its parameter, or None."""
    try:
        check_value(spec, raw)
    except ValueError as exc:
        return str(exc)
    return None
