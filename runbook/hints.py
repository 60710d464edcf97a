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
