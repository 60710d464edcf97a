"""Every command the engine prints for the operator to run next, built in one place that knows
the real command line (``tasks.py``): invoke takes no optional positional arguments, so an
optional run id is ``--run-id``; a required one is positional. A test runs each exactly as
printed."""

from __future__ import annotations

import shlex


def _cmd(task: str, *positional: str, env: str | None = None, **flags: str) -> str:
    parts = ["invoke", task, *(shlex.quote(p) for p in positional)]
    for flag, value in flags.items():
        parts += [f"--{flag.replace('_', '-')}", value if value == "'...'" else shlex.quote(value)]
    if env:
        parts += ["--env", shlex.quote(env)]
    return " ".join(parts)


def resume(run_id: str, env: str | None = None) -> str:
    return _cmd("runbook.resume", run_id=run_id, env=env)


def verify(run_id: str, env: str | None = None) -> str:
    return _cmd("audit.verify", run_id=run_id, env=env)


def show(run_id: str, env: str | None = None) -> str:
    return _cmd("audit.show", run_id, env=env)


def abandon(run_id: str, env: str | None = None) -> str:
    """The operator types the reason in place of the dots."""
    return _cmd("runbook.abandon", run_id, reason="'...'", env=env)


def unlock(key: str, env: str | None = None) -> str:
    """The operator types the reason in place of the dots."""
    return _cmd("runbook.unlock", key, reason="'...'", env=env)


def approve(run_id: str, env: str | None = None) -> str:
    return _cmd("runbook.approve", run_id, env=env)


def status(env: str | None = None) -> str:
    return _cmd("runbook.status", env=env)


def protected_prompt_approval(env: str, gates: list[str]) -> str:
    """Why a prompt approval gate cannot run on a protected environment on this machine's backend, and
    the way that works without GitHub: the team backend, where approvers record their approval with
    ``runbook.approve`` under their own AWS identity. The run id exists only once the run has started
    (and parked at the gate, which then prints the approve command with it)."""
    return (f"prompt approvals are refused on protected environment {env!r} (steps {', '.join(gates)}): a name "
            "typed at a prompt proves nothing. Use a github-pr approval, or, for teams without GitHub, the team "
            f"backend: add `backend: {{kind: aws, bucket: ..., table: ..., region: ...}}` to environments/{env}.yaml, "
            f"run `{_cmd('backend.init', env=env)}` once, and start the run again; it parks at the gate and each "
            f"approver runs `{approve('RUN_ID', env)}` (the run id the parked run prints) under their own AWS "
            "identity, then the operator resumes it")
