"""monitor.window: the guide's "monitor these metrics for 1 hour", as a watch.

Every ``interval`` seconds until ``window`` seconds after the step started, it re-checks
the 5XX rate (N of M datapoints), latency, alarms and error logs with the AWS plugins,
showing progress. A breach stops it at once (the release's on_failure then offers the
rollback). With ``park: true`` it looks once and, while the window is still open and
nothing breached, asks the engine to park the run (exit 4); resuming looks again.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone
from typing import Any

from runbook.api import Context, Outcome, check
from runbook.api import clock

WATCHED = (("aws.cloudwatch_5xx_rate", "5XX"), ("aws.cloudwatch_latency", "latency"),
           ("aws.cloudwatch_no_alarms", "alarms"), ("aws.logs_errors", "error logs"))


def _started(ctx: Context) -> float:
    if ctx.step_started:
        return datetime.strptime(ctx.step_started, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()
    return clock.time_s()


def _look(ctx: Context, window: float) -> list[tuple[str, Outcome]]:
    from .aws_cloudwatch import cloudwatch_5xx_rate, cloudwatch_latency, cloudwatch_no_alarms
    from .aws_logs import logs_errors

    funcs = {"aws.cloudwatch_5xx_rate": cloudwatch_5xx_rate, "aws.cloudwatch_latency": cloudwatch_latency,
             "aws.cloudwatch_no_alarms": cloudwatch_no_alarms, "aws.logs_errors": logs_errors}
    out = []
    for name, label in WATCHED:
        args: dict[str, Any] = {}
        if name in ("aws.cloudwatch_5xx_rate", "aws.cloudwatch_latency"):
            args = {"window": ctx.args.get("lookback", 300), "allow_no_data": ctx.args.get("allow_no_data", False)}
        elif name == "aws.logs_errors":
            args = {"window": min(window, float(ctx.args.get("lookback", 300)))}
        out.append((label, funcs[name](dataclasses.replace(ctx, args=args))))
    return out


@check("monitor.window",
       args={"properties": {
           "window": {"type": "number", "minimum": 0, "description": "seconds to watch (default monitoring.window)"},
           "interval": {"type": "number", "exclusiveMinimum": 0,
                        "description": "seconds between looks (default monitoring.interval)"},
           "lookback": {"type": "number", "exclusiveMinimum": 0, "description": "metric window of each look (300)"},
           "allow_no_data": {"type": "boolean"},
           "park": {"type": "boolean", "description": "look once and park the run while the window is open"}}},
       outputs={"type": "object", "properties": {"looks": {"type": "integer"}, "elapsed_s": {"type": "number"},
                                                  "park": {"type": "boolean"}}})
def window(ctx: Context) -> Outcome:
    """Watch 5XX rate, latency, alarms and error logs for the monitoring window; a breach fails at once."""
    monitoring = ctx.env.get("monitoring") or {}
    length = float(ctx.args.get("window", monitoring.get("window", 3600)))
    interval = float(ctx.args.get("interval", monitoring.get("interval", 60)))
    # watched time only: a Ctrl-C and the time until the resume do not count; a parked watch (park:
    # true) is the exception by design: the window passes while nobody watches, and is looked at again
    start = _started(ctx) if ctx.args.get("park") else clock.time_s() - ctx.step_active_s
    end = start + length
    looks = [0]
    history: list[str] = []
    last: dict[str, Any] = {}

    def look() -> Outcome | None:
        """One look at every signal: the window's outcome when it is decided, else None."""
        looks[0] += 1
        results = _look(ctx, length)
        elapsed = clock.time_s() - start
        line = ", ".join(f"{label} {'ok' if o.passed else 'BREACH'}" for label, o in results)
        history.append(f"{elapsed:.0f}s: {line}")
        failed = [(label, o) for label, o in results if not o.passed]
        evidence = {"looks": history[-20:], "window_s": length, "interval_s": interval,
                    "results": {label: {"passed": o.passed, "summary": o.summary} for label, o in results}}
        outputs = {"looks": looks[0], "elapsed_s": elapsed, "park": False}
        if failed:
            label, first = failed[0]
            return Outcome(False, f"monitoring window breached after {elapsed:.0f} of {length:.0f} s: {label}: "
                                  f"{first.summary}", evidence, outputs)
        if clock.time_s() >= end:
            return Outcome(True, f"monitored {length:.0f} s ({looks[0]} looks): 5XX rate, latency, alarms and "
                                 "error logs within limits", evidence, outputs)
        if ctx.args.get("park"):
            left = end - clock.time_s()
            return Outcome(False, f"monitoring window open for {left:.0f} more s, nothing breached so far; "
                                  "parked: resume after the window to finish it", evidence, {**outputs, "park": True})
        last.update(elapsed=elapsed, line=line)
        return None

    def tick(_: float) -> None:               # progress, then sleep until the next look (or the window's end)
        elapsed, left = last["elapsed"], end - clock.time_s()
        done = int(20 * min(1.0, elapsed / length)) if length else 20
        ctx.progress(f"monitoring [{'#' * done}{'.' * (20 - done)}] {elapsed:.0f}/{length:.0f} s: {last['line']}")
        clock.sleep(max(0.0, min(interval, left)))

    decided = clock.wait_until(look, None, interval, on_tick=tick, sleep=False)
    return decided if decided is not None else Outcome.fail("monitoring window: no look decided it")
