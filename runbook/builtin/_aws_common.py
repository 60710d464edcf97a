"""What every aws.* plugin module shares: arguments that default to the environment, errors as outcomes.

Not a plugin module (its name starts with ``_``): the plugins are ``aws_sts``, ``aws_ecs``,
``aws_ecs_rollback``, ``aws_cloudwatch``, ``aws_logs``, ``aws_elbv2``, ``aws_sns`` and the
generic ``aws_generic`` (``aws.call/check/wait``). Clients come from the environment at run
time through ``runbook.aws`` (the one module that imports boto3); credentials come from the
standard chains and never reach the journal. Arguments default to the environment
(``ecs.cluster``, ``alb.target_group``, ``monitoring.*`` ...), so a runbook item is usually
just ``uses:``. Every summary says what was expected, what was found, and where to look.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any, Callable

from runbook.api import ExternalError, RunbookError, Context, Outcome


S = {"type": "string"}


I0 = {"type": "integer", "minimum": 0}


CLUSTER = {"cluster": {**S, "description": "ECS cluster (default: ecs.cluster)"},
           "service": {**S, "description": "ECS service (default: ecs.service)"}}


ALB = {"target_group": {**S, "description": "target group name or ARN (default: alb.target_group)"},
       "load_balancer": {**S, "description": "load balancer name or ARN when the group has several "
                                             "(default: alb.load_balancer)"}}


class Unconfigured(RunbookError):
    """A value the plugin needs is neither an argument nor in the environment."""


def env_arg(ctx: Context, name: str, *env_path: str, default: Any = None) -> Any:
    """The argument ``name``; else the environment at ``env_path``; else ``default`` ('' counts as unset)."""
    value = ctx.args.get(name)
    if value not in (None, ""):
        return value
    if not env_path:
        return default
    cur: Any = ctx.env
    for part in env_path:
        cur = cur.get(part) if isinstance(cur, dict) else None
    return default if cur in (None, "") else cur


def env_need(ctx: Context, name: str, *env_path: str, what: str) -> Any:
    value = env_arg(ctx, name, *env_path)
    if value in (None, ""):
        where = f" or set {'.'.join(env_path)} in the environment file" if env_path else ""
        raise Unconfigured(f"no {what}: pass `{name}`{where}")
    return value


def translated(fn: Callable[[Context], Outcome]) -> Callable[[Context], Outcome]:
    """AWS and configuration errors become a failed outcome naming the operation."""
    @functools.wraps(fn)
    def wrapper(ctx: Context) -> Outcome:
        try:
            return fn(ctx)
        except ExternalError as exc:
            code = ""
            original = getattr(exc, "original", None)
            if original is not None and hasattr(original, "response"):
                code = str(original.response.get("Error", {}).get("Code", ""))
            return Outcome.fail(ctx.redact(str(exc)), {"operation": exc.operation, "error_code": code})
        except Unconfigured as exc:
            return Outcome.fail(str(exc))
    return wrapper


def fmt_iso(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value or "")


def fmt_hhmm(epoch: float) -> str:
    at = dt.datetime.fromtimestamp(epoch, dt.timezone.utc)
    return at.strftime("%H:%M:%SZ" if at.second else "%H:%MZ")


def fmt_minutes(seconds: float) -> str:
    if seconds >= 120:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
