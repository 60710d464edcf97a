"""aws.call, aws.check, aws.wait: any boto3 operation as an action or a check.

``service`` and ``operation`` (boto3's snake_case method name) name the call, ``params``
its request, ``select`` (output name -> JMESPath) its outputs; ``expect`` (aws.check) and
``until`` / ``fail_on`` (aws.wait) map a JMESPath to the value found there, or to a list
of allowed values. Clients come from the environment through ``runbook.aws`` like every
AWS plugin (region, endpoint, credentials); a paginated operation is paginated and its
pages merged. Errors become a failed outcome naming the call and the region.

At validate time (``static``) the service, the operation, every parameter name and
type (literals only: ``${...}`` templates are left alone), the required parameters, the
JMESPath expressions and a ``waiter:`` are checked against botocore's service models,
offline; checks may only name read-only operations. boto3, botocore and jmespath are
imported inside functions: nothing is loaded until an aws.* item is validated or run.

Choices made here:

* A mapping in ``expect``/``until``/``fail_on`` holds when every JMESPath in it finds its
  value (``expect``, ``until``); ``fail_on`` fails the wait as soon as any one of its
  entries finds one of its values. A list is always a list of allowed values.
* Responses are made JSON-safe before JMESPath sees them: timestamps become ISO 8601
  UTC strings (``2026-01-01T10:00:00Z``: they sort and compare as text), bytes are
  decoded as UTF-8 (else shown as their size), streams are not read.
* Read-only means the API name starts with one of ``READ_ONLY`` (Describe, Get, List,
  Head, ...); anything else belongs to aws.call under ``do:``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from dataclasses import dataclass
from typing import Any, TypeGuard

from runbook.api import aws
from runbook.api import ExternalError
from runbook.api import Context, Outcome, action, check, static
from runbook.api import quote, suggest
from runbook.api import has_templates

from . import jmes
from runbook.api import clock

S = {"type": "string"}
CONDITION = {"type": "object", "minProperties": 1,
             "description": "JMESPath -> the value it must find, or a list of allowed values"}
CALL_ARGS = {
    "service": {**S, "description": "boto3 service name (ec2, ssm, rds, ...)"},
    "operation": {**S, "description": "boto3 method name, snake_case (describe_volumes)"},
    "params": {"type": "object", "description": "the request's parameters, as in the API reference"},
    "select": {"type": "object", "additionalProperties": S,
               "description": "output name -> JMESPath over the response: the item's outputs"},
}
READ_ONLY = ("Describe", "Get", "List", "Head", "Search", "Query", "Scan", "BatchGet", "BatchDescribe", "Lookup",
             "Filter", "Check", "Test", "Simulate", "Validate", "Estimate", "Preview", "Detect", "Verify")
SELECT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
EVIDENCE_LIMIT = 4096      # characters of JSON: a larger response is summarised, not stored


# -- runtime --------------------------------------------------------------------------------

@dataclass
class _Call:
    service: str
    method: str
    params: dict[str, Any]
    label: str      # "ec2 DescribeVolumes"
    where: str      # "ec2 DescribeVolumes in us-west-1" (and the endpoint when set)


def _call_of(ctx: Context, method: str | None = None) -> _Call:
    service = str(ctx.args.get("service") or "")
    method = method or str(ctx.args.get("operation") or "")
    params = dict(ctx.args.get("params") or {})
    api = aws.api_name(service, method) if method else ""
    label = f"{service} {api or method}"
    _, region, endpoint = aws.settings(ctx.env)
    where = f"{label} in {region or 'the default region'}" + (f" at {endpoint}" if endpoint else "")
    if method and not api:
        raise ExternalError(label, f"{service} has no operation {method!r}",
                            "use boto3's snake_case method name, as `invoke runbook.validate` suggests")
    return _Call(service, method, params, label, where)


def _plain(value: Any) -> Any:
    """A response made JSON-safe: timestamps as ISO 8601 UTC, bytes decoded, streams left unread."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        text = value.astimezone(dt.timezone.utc).isoformat()
        return text.replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return f"<{len(value)} bytes>"
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if hasattr(value, "read"):
        return "<stream, not read>"
    return str(value)


def _redacted(ctx: Context, value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _redacted(ctx, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(ctx, v) for v in value]
    if isinstance(value, str):
        return ctx.redact(value)
    return value


def _select(ctx: Context, response: dict[str, Any]) -> dict[str, Any]:
    return {name: jmes.search(str(expression), response) for name, expression in (ctx.args.get("select") or {}).items()}


def _evidence(ctx: Context, call: _Call, response: dict[str, Any] | None, selected: dict[str, Any],
              **more: Any) -> dict[str, Any]:
    _, region, endpoint = aws.settings(ctx.env)
    evidence: dict[str, Any] = {"call": call.label, "service": call.service, "operation": call.method,
                                "region": region, "params": _redacted(ctx, call.params),
                                "selected": _redacted(ctx, selected)}
    if endpoint:
        evidence["endpoint"] = endpoint
    evidence.update(more)
    if response is not None:
        text = json.dumps(response, default=str)
        if len(text) <= EVIDENCE_LIMIT:
            evidence["response"] = _redacted(ctx, response)
        else:
            evidence["response_omitted"] = {"chars": len(text), "keys": sorted(response)}
    return evidence


def _error(ctx: Context, call: _Call | None, exc: ExternalError, **more: Any) -> Outcome:
    """A translated AWS error as a failed outcome: the call, the region, the code, what to do."""
    text = str(exc)
    if text.startswith(exc.operation + ": "):
        text = text[len(exc.operation) + 2:]
    text = " ".join(text.split())          # ParamValidationError spans lines
    code = ""
    original = exc.original
    if original is not None and hasattr(original, "response"):
        code = str(original.response.get("Error", {}).get("Code", ""))
    elif original is not None:
        code = type(original).__name__
    if call is None:
        _, region, _ = aws.settings(ctx.env)
        where = f"{exc.operation} in {region or 'the default region'}"
        evidence: dict[str, Any] = {"call": exc.operation}
    else:
        where = call.where
        evidence = _evidence(ctx, call, None, {})
    evidence.update(error_code=code, **more)
    return Outcome.fail(ctx.redact(f"{where}: {text}"), evidence)


def _once(ctx: Context, call: _Call) -> tuple[dict[str, Any], bool]:
    response, paginated = aws.call_all(ctx.env, call.service, call.method, call.params)
    return _plain(response), paginated


def _answered(ctx: Context) -> tuple[_Call, Any, bool, dict[str, Any]] | Outcome:
    """One call of the item's operation and its ``select`` outputs, or the failed Outcome saying why."""
    call: _Call | None = None
    try:
        call = _call_of(ctx)
        response, paginated = _once(ctx, call)
    except ExternalError as exc:
        return _error(ctx, call, exc)
    return call, response, paginated, _select(ctx, response)


@action("aws.call", args={"properties": CALL_ARGS, "required": ["service", "operation"]},
        description="Any boto3 operation as an action; `select` (JMESPath) gives its outputs")
def aws_call(ctx: Context) -> Outcome:
    """Call ``service.operation(**params)``; the ``select`` expressions over the response are the outputs."""
    answered = _answered(ctx)
    if isinstance(answered, Outcome):
        return answered
    call, response, paginated, selected = answered
    shown = ", ".join(f"{k}={jmes.short(v)}" for k, v in selected.items())
    return Outcome(True, ctx.redact(f"{call.where}: done" + (f"; {shown}" if shown else "")),
                   _evidence(ctx, call, response, selected, paginated=paginated), selected)


@check("aws.check", args={"properties": {**CALL_ARGS, "expect": CONDITION}, "required": ["service", "operation"]},
       description="Any read-only boto3 operation as a check: `expect` JMESPath -> value(s); `select` outputs")
def aws_check(ctx: Context) -> Outcome:
    """Call a read-only operation once; pass when every ``expect`` JMESPath finds its value (or one of them)."""
    answered = _answered(ctx)
    if isinstance(answered, Outcome):
        return answered
    call, response, paginated, selected = answered
    found, misses = jmes.evaluate(dict(ctx.args.get("expect") or {}), response)
    evidence = _evidence(ctx, call, response, selected, paginated=paginated, checked=_redacted(ctx, found))
    if misses:
        return Outcome(False, ctx.redact(f"{call.where}: " + "; ".join(misses)), evidence, selected)
    held = ", ".join(f"{k} = {jmes.short(v)}" for k, v in found.items())
    shown = ", ".join(f"{k}={jmes.short(v)}" for k, v in selected.items())
    return Outcome(True, ctx.redact(f"{call.where}: " + ("; ".join(p for p in (held, shown) if p) or "answered")),
                   evidence, selected)


@check("aws.wait",
       args={"properties": {**CALL_ARGS, "until": CONDITION, "fail_on": CONDITION,
                            "waiter": {**S, "description": "a boto3 waiter of the service (volume_available): "
                                                           "instead of operation/until"},
                            "timeout": {"type": "number", "exclusiveMinimum": 0,
                                        "description": "seconds (default 300)"},
                            "interval": {"type": "number", "exclusiveMinimum": 0,
                                         "description": "seconds between calls (default 10; a waiter's own "
                                                        "delay when it has one)"}},
             "required": ["service"]},
       description="Poll a read-only boto3 operation until `until` holds (fail fast on `fail_on`), or run a "
                   "boto3 waiter")
def aws_wait(ctx: Context) -> Outcome:
    """Poll until every ``until`` JMESPath finds its value; fail at once when a ``fail_on`` one does.

    With ``waiter:`` boto3's waiter does the polling (``interval`` and ``timeout`` become its
    delay and attempts); the ``select`` outputs come from one call of the waiter's operation
    after it succeeded.
    """
    if ctx.args.get("waiter"):
        return _run_waiter(ctx)
    timeout = float(ctx.args.get("timeout") or 300)
    if ctx.timeout:
        timeout = min(timeout, float(ctx.timeout))
    interval = float(ctx.args.get("interval") or 10)
    until = dict(ctx.args.get("until") or {})
    fail_on = dict(ctx.args.get("fail_on") or {})
    started = clock.monotonic()
    box: dict[str, Any] = {"call": None, "calls": 0}

    def look() -> Outcome | None:
        """One call: the wait's outcome when it is decided, else None (what it saw kept in ``box``)."""
        try:
            call = box["call"] = box["call"] or _call_of(ctx)
            response, paginated = _once(ctx, call)
        except ExternalError as exc:
            return _error(ctx, box["call"], exc, calls=box["calls"])
        box["calls"] += 1
        calls = box["calls"]
        waited = round(clock.monotonic() - started, 3)
        selected = _select(ctx, response)
        bad = {expr: jmes.search(expr, response) for expr, wanted in fail_on.items()
               if jmes.matches(jmes.search(expr, response), wanted)}
        found, misses = jmes.evaluate(until, response)
        evidence = _evidence(ctx, call, response, selected, paginated=paginated, checked=_redacted(ctx, found),
                             calls=calls, waited_s=waited)
        if bad:
            evidence["fail_on"] = _redacted(ctx, bad)
            what = "; ".join(f"{expr}: found {jmes.short(value)}, a fail_on value ({jmes.wanted_text(fail_on[expr])})"
                             + (f"; expected {jmes.wanted_text(until[expr])}" if expr in until else "")
                             for expr, value in bad.items())
            return Outcome(False, ctx.redact(f"{call.where}: gave up after {calls} call(s): {what}"), evidence,
                           selected)
        if not misses:
            held = ", ".join(f"{k} = {jmes.short(v)}" for k, v in found.items())
            return Outcome(True, ctx.redact(f"{call.where}: {held} after {calls} call(s), {waited:.1f} s"),
                           evidence, selected)
        box.update(evidence=evidence, selected=selected, misses=misses, waited=waited)
        return None

    def tick(waited: float) -> None:
        ctx.progress(f"{box['call'].label}: " + "; ".join(box["misses"]) + f"; {timeout - waited:.0f} s left")

    decided = clock.wait_until(look, timeout, interval, on_tick=tick)
    if decided is not None:
        return decided
    return Outcome(False, ctx.redact(f"{box['call'].where}: still not there after {box['waited']:.1f} s "
                                     f"({box['calls']} call(s)): " + "; ".join(box["misses"])),
                   box["evidence"], box["selected"])


def _run_waiter(ctx: Context) -> Outcome:
    import botocore.exceptions as bce

    service, waiter = str(ctx.args.get("service") or ""), str(ctx.args["waiter"])
    call: _Call | None = None
    try:
        method = aws.waiter_operation(service, waiter)
        if not method:
            raise ExternalError(f"{service} waiter {waiter}", f"{service} has no waiter {waiter!r}",
                                "`invoke runbook.validate` names the service's waiters")
        call = _call_of(ctx, method)
    except ExternalError as exc:
        return _error(ctx, call, exc, waiter=waiter)
    interval = ctx.args.get("interval")
    timeout = ctx.args.get("timeout")
    if ctx.timeout:
        timeout = min(float(timeout or ctx.timeout), float(ctx.timeout))
    delay = float(interval) if interval else None
    attempts = None
    if timeout:
        attempts = max(1, math.ceil(float(timeout) / max(1.0, delay or 15.0)))
        delay = delay or 15.0
    started = clock.monotonic()
    ctx.progress(f"{call.label}: waiting with boto3's waiter {waiter}")
    try:
        aws.wait(ctx.env, service, waiter, call.params, delay, attempts)
    except bce.WaiterError as exc:
        reason = " ".join(str(exc.kwargs.get("reason") or exc).split())
        last = _plain(dict(exc.last_response or {}))
        last.pop("ResponseMetadata", None)
        last_selected = _select(ctx, last) if "Error" not in last else {}
        evidence = _evidence(ctx, call, last, last_selected, waiter=waiter,
                             waited_s=round(clock.monotonic() - started, 3))
        return Outcome(False, ctx.redact(f"{call.where}: waiter {waiter} gave up: {reason}"), evidence, last_selected)
    except ExternalError as exc:
        return _error(ctx, call, exc, waiter=waiter)
    waited = round(clock.monotonic() - started, 3)
    selected: dict[str, Any] = {}
    response = None
    if ctx.args.get("select"):
        try:
            response, _ = aws.call_all(ctx.env, call.service, call.method, call.params)
        except ExternalError as exc:
            return _error(ctx, call, exc, waiter=waiter)
        response = _plain(response)
        selected = _select(ctx, response)
    return Outcome(True, ctx.redact(f"{call.where}: waiter {waiter} succeeded after {waited:.1f} s"),
                   _evidence(ctx, call, response, selected, waiter=waiter, waited_s=waited), selected)


# -- validate time ----------------------------------------------------------------------------

Finding = tuple[tuple[Any, ...], str]


def _literal(value: Any) -> TypeGuard[str]:
    return isinstance(value, str) and not has_templates(value)


_TYPE_WORDS = {"structure": "a mapping", "map": "a mapping", "list": "a list", "string": "a string",
               "integer": "an integer", "long": "an integer", "float": "a number", "double": "a number",
               "boolean": "a boolean", "timestamp": "a timestamp (ISO 8601 text or epoch seconds)",
               "blob": "text or bytes"}


def _type_ok(type_name: str, value: Any) -> bool:
    if type_name in ("structure", "map"):
        return isinstance(value, dict)
    if type_name == "list":
        return isinstance(value, list)
    if type_name == "string":
        return isinstance(value, str)
    if type_name in ("integer", "long"):
        return isinstance(value, int) and not isinstance(value, bool)
    if type_name in ("float", "double"):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if type_name == "boolean":
        return isinstance(value, bool)
    if type_name == "timestamp":
        return isinstance(value, (str, int, float, dt.datetime, dt.date)) and not isinstance(value, bool)
    if type_name == "blob":
        return isinstance(value, (str, bytes))
    return True


def _check_params(label: str, shape: Any, value: Any, path: tuple[Any, ...], out: list[Finding],
                  top: bool = True) -> None:
    """Literal values against botocore's input shape: member names, required members, types."""
    if isinstance(value, str) and has_templates(value):
        return        # a template: its value is known only at run time
    type_name = str(shape.type_name)
    if not _type_ok(type_name, value):
        what = f"{label} parameter {path[-1]}" if len(path) > 1 else f"{label} parameters"
        out.append((path, f"{what} must be {_TYPE_WORDS.get(type_name, type_name)} ({shape.name}), found "
                          f"{jmes.short(value) if not isinstance(value, (dict, list)) else type(value).__name__}"))
        return
    if type_name == "structure":
        members = shape.members
        owner = label if top else f"{label} {shape.name}"
        for key, sub in value.items():
            if key not in members:
                noun = "parameter" if top else "member"
                out.append((path + (key,), f"{owner} has no {noun} {quote(key)}{suggest(key, list(members))}"))
                continue
            _check_params(label, members[key], sub, path + (key,), out, top=False)
        for name in shape.required_members:
            if name not in value:
                noun = "parameter" if top else "member"
                out.append((path, f"{owner} needs the {noun} {quote(name)}"))
    elif type_name == "list":
        for i, item in enumerate(value):
            _check_params(label, shape.member, item, path + (i,), out, top=False)
    elif type_name == "map":
        for key, sub in value.items():
            _check_params(label, shape.value, sub, path + (key,), out, top=False)


def _lint(args: dict[str, Any], kind: str) -> list[Finding]:
    out: list[Finding] = []
    for name, expression in (args.get("select") or {}).items() if isinstance(args.get("select"), dict) else ():
        if not SELECT_NAME.match(str(name)):
            out.append((("select", name), f"output name {quote(name)} must be a plain name (letters, digits, _ and -), "
                                          "so ${steps.STEP.ITEM.NAME} can refer to it"))
        problem = jmes.problem(expression)
        if problem:
            out.append((("select", name), problem))
    for key in ("expect", "until", "fail_on"):
        condition = args.get(key)
        if isinstance(condition, dict):
            for expression in condition:
                problem = jmes.problem(expression)
                if problem:
                    out.append(((key, expression), problem))
    waiter = args.get("waiter")
    if kind == "wait":
        if waiter is None and args.get("until") is None:
            out.append(((), "aws.wait needs 'until:' (JMESPath -> value) or 'waiter:' (a boto3 waiter name)"))
        if waiter is not None:
            for key in ("until", "fail_on"):
                if key in args:
                    out.append(((key,), f"'{key}:' does not apply with 'waiter:' (the waiter decides); use one or "
                                        "the other"))
        if waiter is None and "operation" not in args:
            out.append(((), "aws.wait needs 'operation:' (or 'waiter:')"))
    service = args.get("service")
    if not _literal(service):
        return out
    known = aws.service_names()
    if service not in known:
        out.append((("service",), f"unknown AWS service {quote(service)}{suggest(service, known)}; "
                                  "botocore has no model for it"))
        return out
    operation = args.get("operation")
    if _literal(waiter):
        waiters = aws.waiters(service)
        if waiter not in waiters:
            named = f"; it has {', '.join(sorted(waiters))}" if 0 < len(waiters) <= 12 else ""
            out.append((("waiter",), f"{service} has no waiter {quote(waiter)}{suggest(waiter, list(waiters))}"
                                     + (named if not suggest(waiter, list(waiters)) else "")))
            return out
        polled = aws.waiter_operation(service, waiter)
        if operation is None:
            operation = polled
        elif _literal(operation) and operation != polled:
            out.append((("operation",), f"waiter {waiter} polls {polled}, not {operation}; leave 'operation:' out"))
            return out
    if not _literal(operation):
        return out
    methods = aws.operations(service)
    if operation not in methods:
        from botocore import xform_name

        snake = xform_name(operation)
        if snake in methods:
            out.append((("operation",), f"{quote(operation)} is the API name; use boto3's snake_case name "
                                        f"{quote(snake)}"))
        else:
            out.append((("operation",), f"{service} has no operation {quote(operation)}"
                                        f"{suggest(operation, list(methods))}"))
        return out
    api = methods[operation]
    label = f"{service} {api}"
    if kind in ("check", "wait") and not api.startswith(READ_ONLY):
        out.append((("operation",), f"aws.{kind} may only call read-only operations (Describe*, Get*, List*, Head*, "
                                    f"...); {label} changes things: use aws.call under 'do:'"))
    model = aws.service_model(service)
    shape = model.operation_model(api).input_shape if model is not None else None
    params = args.get("params")
    if shape is None:
        if isinstance(params, dict) and params:
            out.append((("params",), f"{label} takes no parameters"))
        return out
    if params is None:
        if shape.required_members:
            out.append(((), f"{label} needs 'params:' with "
                            + ", ".join(quote(m) for m in shape.required_members)))
        return out
    _check_params(label, shape, params, ("params",), out)
    return out


def _output_shape(args: dict[str, Any]) -> Any:
    """botocore's output shape of the operation an item names (None when it is not known offline)."""
    service, operation, waiter = args.get("service"), args.get("operation"), args.get("waiter")
    if not _literal(service) or service not in aws.service_names():
        return None
    if operation is None and _literal(waiter) and waiter in aws.waiters(service):
        operation = aws.waiter_operation(service, waiter)
    api = aws.operations(service).get(operation) if _literal(operation) else None
    model = aws.service_model(service) if api else None
    return model.operation_model(api).output_shape if model is not None else None


def _outputs(args: dict[str, Any]) -> dict[str, Any]:
    """One output per ``select:`` name, typed by its JMESPath over the operation's output shape."""
    select = args.get("select")
    names = {str(n): str(e) for n, e in select.items()} if isinstance(select, dict) else {}
    shape = _output_shape(args) if names else None
    return {"type": "object", "additionalProperties": False,
            "properties": {name: jmes.result_schema(expr, shape) if shape is not None else {}
                           for name, expr in names.items()}}


static("aws.call", lint=lambda args: _lint(args, "call"), outputs=_outputs)
static("aws.check", lint=lambda args: _lint(args, "check"), outputs=_outputs)
static("aws.wait", lint=lambda args: _lint(args, "wait"), outputs=_outputs)
