"""aws.logs_errors: error lines in the service's CloudWatch Logs over a look-back window.

moto understands only plain terms in filter patterns (``ERROR``); OR patterns
(``?ERROR ?FATAL``), JSON patterns and exclusions return every event there.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from runbook.api import aws, Context, Outcome, check, clock
from ._aws_common import CLUSTER, I0, S, env_arg, env_need, fmt_iso, fmt_minutes, translated
from ._aws_ecs import ecs_since_deployment


EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


def _excerpt(ctx: Context, message: str, limit: int) -> str:
    text = EMAIL.sub("[EMAIL]", ctx.redact(message.strip()))
    return text if len(text) <= limit else text[:limit] + "…"


@check("aws.logs_errors",
       args={"properties": {
           "group": {**S, "description": "log group (default logs.group)"},
           "pattern": {**S, "description": "CloudWatch Logs filter pattern (default monitoring.error_log_pattern, "
                                           "else ERROR); moto supports plain terms only"},
           "window": {"type": "number", "exclusiveMinimum": 0, "description": "seconds back (default 900)"},
           "max": {**I0, "description": "matches allowed (default monitoring.max_error_logs, else 0)"},
           "excerpts": {**I0, "description": "excerpts kept (default 5)"},
           "excerpt_chars": {"type": "integer", "minimum": 20, "description": "default 240"},
           "scan_limit": {"type": "integer", "minimum": 1,
                          "description": "stop counting after this many (default 10000)"},
           "since_deployment": {"type": "boolean", "description": "start the window when the service's current "
                                                                  "deployment finished (default false)"},
           **CLUSTER}},
       outputs={"type": "object", "properties": {"count": {"type": "integer"}, "max": {"type": "integer"},
                                                 "capped": {"type": "boolean"}}})
@translated
def logs_errors(ctx: Context) -> Outcome:
    """At most ``max`` log events match the pattern in the window; keeps a few redacted excerpts.

    Excerpts are redacted (secrets, e-mail addresses) and cut short; an item marked
    ``sensitive: true`` (log lines may carry patient data) keeps only times and streams.
    """
    group = str(env_need(ctx, "group", "logs", "group", what="log group"))
    pattern = str(env_arg(ctx, "pattern", "monitoring", "error_log_pattern", default="ERROR"))
    window = ecs_since_deployment(ctx, float(ctx.args.get("window") or 900))
    allowed = int(env_arg(ctx, "max", "monitoring", "max_error_logs", default=0))
    keep, chars = int(ctx.args.get("excerpts", 5)), int(ctx.args.get("excerpt_chars") or 240)
    scan_limit = int(ctx.args.get("scan_limit") or 10000)
    sensitive = bool(ctx.item.get("sensitive"))
    end = int(clock.time_s() * 1000)
    start = end - int(window * 1000)
    matched: list[dict[str, Any]] = []
    count, capped = 0, False
    for page in aws.pages(ctx.env, "logs", "filter_log_events", group, logGroupName=group, filterPattern=pattern,
                          startTime=start, endTime=end):
        for event in page.get("events") or []:
            count += 1
            matched = (matched + [event])[-keep:] if keep else []
        if count >= scan_limit:
            capped = True
            break
    excerpts = [{"time": fmt_iso(dt.datetime.fromtimestamp(e["timestamp"] / 1000, dt.timezone.utc)),
                 "stream": e.get("logStreamName", ""),
                 **({} if sensitive else {"message": _excerpt(ctx, str(e.get("message", "")), chars)})}
                for e in reversed(matched)]
    outputs = {"count": count, "max": allowed, "capped": capped}
    evidence = {"group": group, "pattern": pattern, "window_s": window, "count": count, "capped": capped,
                "excerpts": excerpts, "sensitive": sensitive}
    found = (f"{count}{'+' if capped else ''} log events matching {pattern!r} in {group} over the last "
             f"{fmt_minutes(window)}")
    if count > allowed:
        newest = excerpts[0] if excerpts else {}
        sample = f"; newest at {newest.get('time')}" + (f": {newest['message'][:120]}" if newest.get("message") else "")
        command = aws.cli_command(ctx.env, "logs", "filter-log-events", "--log-group-name", group,
                                  "--filter-pattern", str(pattern))
        return Outcome(False, f"{found} (at most {allowed} allowed){sample if newest else ''}. Look at: {command}",
                       evidence, outputs)
    return Outcome(True, f"{found} (at most {allowed} allowed)", evidence, outputs)
