"""aws.cloudwatch_*: the ALB's 5XX rate and latency, and alarms, over a look-back window.

A breach is N of the last M datapoints over the threshold (a period with no traffic is not
a datapoint); no datapoint at all fails unless ``allow_no_data``. Latency ``statistic``
takes Average, Maximum, Minimum or a percentile (p99, p99.9); moto and the sandbox ignore
percentiles (extended statistics), so use Average or Maximum there.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any

from runbook.api import aws, Context, Outcome, check, clock
from ._aws_common import ALB, S, Unconfigured, env_arg, env_need, fmt_hhmm, fmt_iso, fmt_minutes, translated
from ._aws_ecs import ecs_since_deployment


WINDOW = {"window": {"type": "number", "exclusiveMinimum": 0, "description": "seconds back from now (default 600)"},
          "period": {"type": "integer", "minimum": 1,
                     "description": "seconds per datapoint: 1, 5, 10, 30 (high resolution) or a multiple of 60 "
                                    "(default monitoring.period, else 60)"},
          "datapoints": {"type": "integer", "minimum": 1,
                         "description": "N: datapoints over the threshold that make a breach (default "
                                        "monitoring.datapoints, else 1)"},
          "evaluation_periods": {"type": "integer", "minimum": 1,
                                 "description": "M: the last M datapoints are evaluated (default "
                                                "monitoring.evaluation_periods, else all in the window)"},
          "whole_window": {"type": "boolean",
                           "description": "evaluate every datapoint of the window, not the last evaluation_periods: "
                                          "an assessment of the recent past (an incident) rather than of now"},
          "allow_no_data": {"type": "boolean", "description": "no traffic in the window is fine (default false)"},
          "since_deployment": {"type": "boolean", "description": "start the window when the service's current "
                                                                 "deployment finished (default false)"}}


PERCENTILE = re.compile(r"^p\d{1,2}(\.\d+)?$")


def _alb_dimensions(ctx: Context) -> tuple[list[dict[str, str]], str]:
    """CloudWatch dimensions of the target group (``targetgroup/NAME/ID``, ``app/NAME/ID``) and its name."""
    ref = str(env_need(ctx, "target_group", "alb", "target_group", what="target group"))
    key = {"TargetGroupArns": [ref]} if ref.startswith("arn:") else {"Names": [ref]}
    group = aws.call(ctx.env, "elbv2", "describe_target_groups", ref, **key)["TargetGroups"][0]
    lbs = [str(a) for a in group.get("LoadBalancerArns") or []]
    wanted = env_arg(ctx, "load_balancer", "alb", "load_balancer")
    if wanted:
        lbs = [a for a in lbs if a == wanted or aws.elb_dimension(a, "loadbalancer").split("/")[1:2] == [wanted]]
    if not lbs:
        named = f" named {wanted}" if wanted else ""
        raise Unconfigured(f"target group {group['TargetGroupName']} is attached to no load balancer{named}: it "
                           "has no ALB metrics (check alb.target_group / alb.load_balancer)")
    dims = [{"Name": "TargetGroup", "Value": aws.elb_dimension(group["TargetGroupArn"], "targetgroup")},
            {"Name": "LoadBalancer", "Value": aws.elb_dimension(lbs[0], "loadbalancer")}]
    return dims, str(group["TargetGroupName"])


def _series(ctx: Context, dims: list[dict[str, str]], metric: str, statistic: str, window: float,
            period: int) -> dict[int, float]:
    """Datapoints of an AWS/ApplicationELB metric, keyed by period start (epoch seconds)."""
    end = clock.now()
    kwargs: dict[str, Any] = {"Namespace": "AWS/ApplicationELB", "MetricName": metric, "Dimensions": dims,
                              "StartTime": end - dt.timedelta(seconds=window), "EndTime": end, "Period": period}
    if PERCENTILE.match(statistic):
        kwargs["ExtendedStatistics"] = [statistic]
    else:
        kwargs["Statistics"] = [statistic]
    found = aws.call(ctx.env, "cloudwatch", "get_metric_statistics", metric, **kwargs)
    out: dict[int, float] = {}
    for dp in found.get("Datapoints") or []:
        value = dp.get(statistic, (dp.get("ExtendedStatistics") or {}).get(statistic))
        if value is None:
            continue
        at = int(dp["Timestamp"].timestamp()) // period * period
        if statistic == "Sum":
            out[at] = out.get(at, 0.0) + float(value)
        else:
            out[at] = max(out.get(at, float(value)), float(value))
    return out


def _window(ctx: Context) -> tuple[float, int, int, int | None, bool]:
    window = ecs_since_deployment(ctx, float(ctx.args.get("window") or 600))
    period = int(env_arg(ctx, "period", "monitoring", "period", default=60))
    if period < math.ceil(window / 1440):                        # at most 1440 datapoints per call
        period = max(60, math.ceil(window / 1440 / 60) * 60)
    n = int(env_arg(ctx, "datapoints", "monitoring", "datapoints", default=1))
    m = None if ctx.args.get("whole_window") else env_arg(ctx, "evaluation_periods", "monitoring", "evaluation_periods")
    return window, period, n, int(m) if m is not None else None, bool(ctx.args.get("allow_no_data", False))


def _breach(values: dict[int, float], threshold: float, n: int, m: int | None) -> tuple[list[int], list[int]]:
    """(evaluated period starts, breaching ones): the last M datapoints, those over the threshold."""
    evaluated = sorted(values)[-m:] if m else sorted(values)
    return evaluated, [t for t in evaluated if values[t] > threshold]


@check("aws.cloudwatch_5xx_rate",
       args={"properties": {**ALB, **WINDOW,
                            "threshold_percent": {"type": "number", "minimum": 0,
                                                  "description": "default monitoring.error_rate_percent, else 1"},
                            "metric": {**S, "description": "default HTTPCode_Target_5XX_Count"},
                            "fresh": {"type": "boolean",
                                      "description": "first wait (up to 3 periods) for a datapoint of a period "
                                                     "that ends after the check starts: CloudWatch publishes a "
                                                     "period after it, so right after a failure the newest "
                                                     "errors are not there yet"}}},
       outputs={"type": "object", "properties": {
           "rate_percent": {"type": "number"}, "max_rate_percent": {"type": "number"},
           "requests": {"type": "number"}, "errors": {"type": "number"}, "datapoints": {"type": "integer"},
           "breaching": {"type": "integer"}, "threshold_percent": {"type": "number"}}})
@translated
def cloudwatch_5xx_rate(ctx: Context) -> Outcome:
    """The target group's 5XX responses as a percentage of RequestCount stay under the threshold.

    Per period: 100 x HTTPCode_Target_5XX_Count (Sum) / RequestCount (Sum). Dimensions are
    derived from the target group's ARN (``targetgroup/NAME/ID``) and its load
    balancer's (``app/NAME/ID``), not its bare name.
    """
    window, period, n, m, allow_no_data = _window(ctx)
    threshold = float(env_arg(ctx, "threshold_percent", "monitoring", "error_rate_percent", default=1.0))
    metric = str(ctx.args.get("metric") or "HTTPCode_Target_5XX_Count")
    dims, group = _alb_dimensions(ctx)
    read: list[dict[int, float]] = []

    def requests() -> bool:                   # RequestCount now; with fresh: it holds the current period
        read.append(_series(ctx, dims, "RequestCount", "Sum", window, period))
        return not ctx.args.get("fresh") or any(t + period > asked for t in read[-1])

    asked = clock.time_s()
    if ctx.args.get("fresh"):
        ctx.progress(f"waiting for CloudWatch's datapoint of the current {period} s period")
    clock.wait_until(requests, 3 * period, max(1.0, period / 5))
    counts = read[-1]
    errors = _series(ctx, dims, metric, "Sum", window, period)
    rates = {t: 100.0 * errors.get(t, 0.0) / max(r, errors.get(t, 0.0)) for t, r in counts.items() if r > 0}
    evaluated, breaching = _breach(rates, threshold, n, m)
    total_r = sum(counts.get(t, 0.0) for t in evaluated)
    total_e = sum(errors.get(t, 0.0) for t in evaluated)
    outputs = {"rate_percent": round(100.0 * total_e / total_r, 3) if total_r else 0.0,
               "max_rate_percent": round(max((rates[t] for t in evaluated), default=0.0), 3),
               "requests": total_r, "errors": total_e, "datapoints": len(evaluated), "breaching": len(breaching),
               "threshold_percent": threshold}
    evidence = {"dimensions": dims, "metric": metric, "window_s": window, "period_s": period, "rule": f"{n} of "
                f"{m or 'all'} datapoints over {threshold}%",
                "datapoints": [{"at": fmt_hhmm(t), "requests": counts.get(t, 0.0), "errors": errors.get(t, 0.0),
                                "rate_percent": round(rates[t], 3)} for t in evaluated][-60:]}
    where = f"target group {group} over the last {fmt_minutes(window)}"
    if not evaluated:
        return _no_data(ctx, allow_no_data, f"no RequestCount datapoints for {where}", dims, evidence, outputs, "")
    look = (f" Look at CloudWatch AWS/ApplicationELB {metric} ({dims[0]['Value']}) and the logs"
            + (f" in {(ctx.env.get('logs') or {}).get('group')}" if (ctx.env.get("logs") or {}).get("group") else ""))
    if len(breaching) >= n:
        worst = max(breaching, key=lambda t: rates[t])
        return Outcome(False, f"5XX rate over {threshold}% in {len(breaching)} of the last {len(evaluated)} "
                              f"datapoints (breach: {n}) for {where}; worst {rates[worst]:.2f}% at {fmt_hhmm(worst)} "
                              f"({errors.get(worst, 0):.0f} of {counts[worst]:.0f} requests).{look}",
                       evidence, outputs)
    return Outcome(True, f"5XX rate {outputs['rate_percent']:.2f}% ({total_e:.0f} of {total_r:.0f} requests; "
                         f"worst {outputs['max_rate_percent']:.2f}%) for {where}; threshold {threshold}%, "
                         f"{len(breaching)} of {len(evaluated)} datapoints over", evidence, outputs)


def _no_data(ctx: Context, allowed: bool, what: str, dims: list[dict[str, str]], evidence: dict[str, Any],
             outputs: dict[str, Any], extra: str) -> Outcome:
    if allowed:
        return Outcome(True, f"{what} (no traffic: allowed by allow_no_data)", evidence, outputs)
    return Outcome(False, f"{what}: no traffic reached it, or the metrics are not under "
                          f"{', '.join(d['Name'] + '=' + d['Value'] for d in dims)}.{extra} If no traffic is normal "
                          "here, set allow_no_data: true on the item", evidence, outputs)


@check("aws.cloudwatch_latency",
       args={"properties": {**ALB, **WINDOW,
                            "threshold_ms": {"type": "number", "exclusiveMinimum": 0,
                                             "description": "default monitoring.latency_ms, else 500"},
                            "statistic": {"type": "string", "pattern": r"^(Average|Maximum|Minimum|p\d{1,2}(\.\d+)?)$",
                                          "description": "default monitoring.latency_statistic, else p99; moto "
                                                         "and the sandbox support Average/Maximum/Minimum only"}}},
       outputs={"type": "object", "properties": {
           "latency_ms": {"type": "number"}, "max_latency_ms": {"type": "number"}, "statistic": S,
           "datapoints": {"type": "integer"}, "breaching": {"type": "integer"}, "threshold_ms": {"type": "number"}}})
@translated
def cloudwatch_latency(ctx: Context) -> Outcome:
    """The target group's TargetResponseTime (statistic configurable) stays under the threshold."""
    window, period, n, m, allow_no_data = _window(ctx)
    threshold = float(env_arg(ctx, "threshold_ms", "monitoring", "latency_ms", default=500.0))
    statistic = str(env_arg(ctx, "statistic", "monitoring", "latency_statistic", default="p99"))
    dims, group = _alb_dimensions(ctx)
    values = {t: v * 1000.0 for t, v in _series(ctx, dims, "TargetResponseTime", statistic, window, period).items()}
    evaluated, breaching = _breach(values, threshold, n, m)
    outputs = {"latency_ms": round(values[evaluated[-1]], 1) if evaluated else 0.0,
               "max_latency_ms": round(max((values[t] for t in evaluated), default=0.0), 1),
               "statistic": statistic, "datapoints": len(evaluated), "breaching": len(breaching),
               "threshold_ms": threshold}
    evidence = {"dimensions": dims, "statistic": statistic, "window_s": window, "period_s": period,
                "rule": f"{n} of {m or 'all'} datapoints over {threshold} ms",
                "datapoints": [{"at": fmt_hhmm(t), "ms": round(values[t], 1)} for t in evaluated][-60:]}
    where = f"target group {group} over the last {fmt_minutes(window)}"
    if not evaluated:
        extra = (f" ({statistic} is an extended statistic: moto and the sandbox return nothing for it; use "
                 "statistic Average or Maximum there.)") if PERCENTILE.match(statistic) else ""
        return _no_data(ctx, allow_no_data, f"no TargetResponseTime {statistic} datapoints for {where}", dims,
                        evidence, outputs, extra)
    if len(breaching) >= n:
        worst = max(breaching, key=lambda t: values[t])
        return Outcome(False, f"latency {statistic} over {threshold:.0f} ms in {len(breaching)} of the last "
                              f"{len(evaluated)} datapoints (breach: {n}) for {where}; worst {values[worst]:.0f} ms "
                              f"at {fmt_hhmm(worst)}. Look at CloudWatch AWS/ApplicationELB TargetResponseTime "
                              f"({dims[0]['Value']}), the database and the service's CPU", evidence, outputs)
    return Outcome(True, f"latency {statistic} {outputs['latency_ms']:.0f} ms (worst {outputs['max_latency_ms']:.0f} "
                         f"ms) for {where}; threshold {threshold:.0f} ms, {len(breaching)} of {len(evaluated)} "
                         "datapoints over", evidence, outputs)


@check("aws.cloudwatch_no_alarms",
       args={"properties": {"prefix": {**S, "description": "alarm name prefix (default monitoring.alarm_prefix)"},
                            "names": {"type": "array", "items": S, "description": "exact alarm names instead"},
                            "allow_empty": {"type": "boolean", "description": "pass when no alarm matches "
                                                                              "(default false)"}}},
       outputs={"type": "object", "properties": {"alarms": {"type": "array", "items": S},
                                                 "count": {"type": "integer"}, "checked": {"type": "integer"}}})
@translated
def cloudwatch_no_alarms(ctx: Context) -> Outcome:
    """No CloudWatch alarm (metric or composite) whose name starts with the prefix is in ALARM.

    Fails when no alarm matches at all (a wrong prefix would make the check prove
    nothing) unless ``allow_empty``.
    """
    names = list(ctx.args.get("names") or [])
    prefix = "" if names else str(env_arg(ctx, "prefix", "monitoring", "alarm_prefix", default=""))
    kwargs: dict[str, Any] = {"AlarmNames": names} if names else ({"AlarmNamePrefix": prefix} if prefix else {})
    alarms: list[dict[str, Any]] = []
    for page in aws.pages(ctx.env, "cloudwatch", "describe_alarms", prefix or ",".join(names), 20,
                          AlarmTypes=["MetricAlarm", "CompositeAlarm"], **kwargs):
        alarms.extend(page.get("MetricAlarms") or [])
        alarms.extend(page.get("CompositeAlarms") or [])
    # moto ignores StateValue next to a prefix, and a prefix-less query returns every alarm: filter here
    alarms = [a for a in alarms if (a["AlarmName"] in names if names else a["AlarmName"].startswith(prefix))]
    firing = [a for a in alarms if a.get("StateValue") == "ALARM"]
    outputs = {"alarms": [a["AlarmName"] for a in firing], "count": len(firing), "checked": len(alarms)}
    evidence = {"prefix": prefix, "names": names, "checked": len(alarms),
                "firing": [{"name": a["AlarmName"], "since": fmt_iso(a.get("StateUpdatedTimestamp")),
                            "reason": ctx.redact(str(a.get("StateReason", "")))[:300]} for a in firing]}
    label = f"prefix {prefix!r}" if prefix else (", ".join(names) if names else "any name")
    if not alarms:
        if ctx.args.get("allow_empty"):
            return Outcome(True, f"no CloudWatch alarms match {label} (allowed: allow_empty)", evidence, outputs)
        return Outcome(False, f"no CloudWatch alarms match {label}: nothing was checked; fix monitoring.alarm_prefix "
                              "(or set allow_empty: true)", evidence, outputs)
    if firing:
        listed = "; ".join(f"{a['AlarmName']} since {fmt_iso(a.get('StateUpdatedTimestamp'))}" for a in firing[:5])
        return Outcome(False, f"{len(firing)} of {len(alarms)} alarms ({label}) in ALARM, expected none: {listed}. "
                              "Look at CloudWatch > Alarms (each alarm's history says why)", evidence, outputs)
    return Outcome(True, f"none of {len(alarms)} alarms ({label}) in ALARM", evidence, outputs)
