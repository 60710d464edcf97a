"""http.request: an HTTP call with assertions on status, JSON values and latency.

Evidence keeps status, latency, size, the SHA-256 of the body and the values of the
asserted paths only; the body itself is kept only when the item sets ``keep_body`` and
never when it is ``sensitive`` (patient data).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from typing import Any

from runbook.plugins import Context, Outcome, check

_MISSING = object()


def lookup(data: Any, dotted: str) -> Any:
    """``a.b.0.c`` inside parsed JSON; _MISSING when absent."""
    cur = data
    for part in dotted.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return _MISSING
    return cur


@check("http.request",
       args={"properties": {
           "method": {"enum": ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]},
           "url": {"type": "string", "pattern": "^https?://"},
           "status": {"anyOf": [{"type": "integer"}, {"type": "array", "items": {"type": "integer"}}]},
           "json": {"type": "object", "description": "dotted path -> expected value"},
           "max_latency_ms": {"type": "number", "exclusiveMinimum": 0},
           "headers": {"type": "object", "additionalProperties": {"type": "string"}},
           "body": {"type": "string"},
           "json_body": {},
           "json_body_env": {"type": "object", "additionalProperties": {"type": "string"},
                             "description": "JSON body fields read from environment variables (passwords)"},
           "bearer_token_env": {"type": "string", "description": "environment variable holding a bearer token"},
           "timeout": {"type": "number", "exclusiveMinimum": 0}},
           "required": ["url"]},
       outputs={"type": "object", "properties": {
           "status": {"type": "integer"}, "latency_ms": {"type": "number"}, "size": {"type": "integer"},
           "sha256": {"type": "string"}, "values": {"type": "object"}}})
def request(ctx: Context) -> Outcome:
    """Send a request; pass when status, asserted JSON values and latency are as expected."""
    import urllib.error
    import urllib.request

    args = ctx.args
    method = args.get("method", "GET")
    url = args["url"]
    headers = dict(args.get("headers") or {})
    data: bytes | None = None
    if "json_body" in args or "json_body_env" in args:
        fields = dict(args.get("json_body") or {})
        for field, var in (args.get("json_body_env") or {}).items():
            if not os.environ.get(var):
                return Outcome.fail(f"{method} {url}: environment variable {var} (for {field}) is not set")
            fields[field] = os.environ[var]
        data = json.dumps(fields).encode()
        headers.setdefault("Content-Type", "application/json")
    elif "body" in args:
        data = args["body"].encode()
    token_var = args.get("bearer_token_env")
    if token_var:
        token = os.environ.get(token_var)
        if not token:
            return Outcome.fail(f"{method} {url}: environment variable {token_var} (bearer token) is not set")
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    started = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=args.get("timeout") or ctx.timeout or 30) as resp:  # nosec B310
            body, status = resp.read(), resp.status
    except urllib.error.HTTPError as exc:
        body, status = exc.read(), exc.code
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return Outcome.fail(f"{method} {ctx.redact(url)}: no response ({reason}); is the service up and the URL right?",
                            {"url": ctx.redact(url), "error": ctx.redact(str(reason))})
    latency = (time.monotonic() - started) * 1000
    wanted = args.get("status", 200)
    allowed = wanted if isinstance(wanted, list) else [wanted]
    evidence: dict[str, Any] = {"method": method, "url": ctx.redact(url), "status": status,
                                "latency_ms": round(latency, 1), "size": len(body),
                                "sha256": hashlib.sha256(body).hexdigest()}
    problems = []
    if status not in allowed:
        problems.append(f"status {status}, expected {' or '.join(map(str, allowed))}")
    values: dict[str, Any] = {}
    if args.get("json"):
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = _MISSING
            problems.append("body is not JSON")
        if parsed is not _MISSING:
            for path, expected in args["json"].items():
                found = lookup(parsed, path)
                values[path] = None if found is _MISSING else found
                if found is _MISSING:
                    problems.append(f"{path} missing, expected {expected!r}")
                elif found != expected:
                    problems.append(f"{path} is {found!r}, expected {expected!r}")
        evidence["values"] = json.loads(ctx.redact(json.dumps(values)))
    limit = args.get("max_latency_ms")
    if limit is not None and latency > limit:
        problems.append(f"latency {latency:.0f} ms over {limit} ms")
    if ctx.item.get("keep_body") and not ctx.item.get("sensitive"):
        evidence["body"] = ctx.redact(body[:16384].decode("utf-8", errors="replace"))
    outputs = {"status": status, "latency_ms": round(latency, 1), "size": len(body),
               "sha256": evidence["sha256"], "values": evidence.get("values", {})}
    if problems:
        return Outcome(False, f"{method} {ctx.redact(url)}: " + "; ".join(problems), evidence, outputs)
    return Outcome(True, f"{method} {ctx.redact(url)}: {status} in {latency:.0f} ms", evidence, outputs)
