"""http.request: an HTTP call with assertions on status, JSON values and latency.

Evidence keeps status, latency, size, the SHA-256 of the body and the values of the
asserted paths only; the body itself is kept only when the item sets ``keep_body`` and
never when it is ``sensitive`` (patient data).
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

from runbook.api import Context, Outcome, action, check, static
from runbook.api import clock

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
    exchanged = _exchange(ctx, method, url, headers, data)
    if isinstance(exchanged, Outcome):
        return exchanged
    body, status, _, latency = exchanged
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


SEND_METHODS = ["POST", "PUT", "PATCH", "DELETE"]
TEXT_LIMIT = 4096          # characters of the response kept in the ``text`` output
EXCERPT_LIMIT = 512        # characters of the response kept in the evidence
KEPT_HEADERS = ("content-type", "location", "etag", "retry-after", "x-request-id")


@action("http.send",
        args={"properties": {
            "method": {"enum": SEND_METHODS},
            "url": {"type": "string", "pattern": "^https?://"},
            "headers": {"type": "object", "additionalProperties": {"type": "string"},
                        "description": "request headers; values may be ${params.SECRET} (redacted wherever recorded)"},
            "json": {"description": "a JSON body (any JSON value); sent with Content-Type: application/json"},
            "body": {"type": "string", "description": "a text body (not with json)"},
            "status": {"anyOf": [{"type": "integer", "minimum": 100, "maximum": 599},
                                 {"type": "array", "items": {"type": "integer", "minimum": 100, "maximum": 599},
                                  "minItems": 1}],
                       "description": "the expected status or statuses (default: any 2xx)"},
            "timeout": {"type": "number", "exclusiveMinimum": 0}},
            "required": ["method", "url"]},
        outputs={"type": "object", "properties": {
            "status": {"type": "integer"}, "latency_ms": {"type": "number"},
            "json": {"description": "the response parsed when it is JSON, else null"},
            "text": {"type": "string"},
            "headers": {"type": "object", "additionalProperties": {"type": "string"}}}},
        description="Send a POST/PUT/PATCH/DELETE with a JSON or text body; fail unless the status is the expected one")
def send(ctx: Context) -> Outcome:
    """Send a request that changes something; pass when the status is the expected one (default any 2xx).

    Header values (tokens from secret parameters) are never recorded: the evidence keeps
    their names only, and everything recorded passes through the run's redaction.
    """
    args = ctx.args
    method = args["method"]
    url = args["url"]
    where = f"{method} {ctx.redact(url)}"
    headers = {str(k): str(v) for k, v in (args.get("headers") or {}).items()}
    data: bytes | None = None
    if "json" in args:
        data = json.dumps(args["json"]).encode()
        if not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
    elif "body" in args:
        data = str(args["body"]).encode()
    exchanged = _exchange(ctx, method, url, headers, data, " (nothing is known to have been sent)")
    if isinstance(exchanged, Outcome):
        return exchanged
    raw, status, got, elapsed = exchanged
    latency = round(elapsed, 1)
    text = ctx.redact(raw.decode("utf-8", errors="replace"))
    parsed: Any = None
    try:
        parsed = json.loads(text) if text.strip() else None
    except ValueError:
        parsed = None
    kept = {k.lower(): ctx.redact(str(v)) for k, v in (got.items() if got is not None else [])
            if k.lower() in KEPT_HEADERS}
    wanted = args.get("status")
    allowed = None if wanted is None else wanted if isinstance(wanted, list) else [wanted]
    ok = 200 <= status < 300 if allowed is None else status in allowed
    excerpt = text[:EXCERPT_LIMIT] + ("..." if len(text) > EXCERPT_LIMIT else "")
    evidence: dict[str, Any] = {"method": method, "url": ctx.redact(url), "status": status, "latency_ms": latency,
                                "request_headers": sorted(headers), "size": len(raw), "response": excerpt}
    if data is not None:
        evidence["request_size"] = len(data)
    outputs = {"status": status, "latency_ms": latency, "json": parsed, "text": text[:TEXT_LIMIT], "headers": kept}
    if not ok:
        expected = "any 2xx" if allowed is None else " or ".join(map(str, allowed))
        quoted = " ".join(excerpt.split())[:200]
        return Outcome(False, f"{where}: status {status}, expected {expected}; the response says: "
                              f"{quoted or '(empty)'} (evidence keeps the response's first {EXCERPT_LIMIT} characters)",
                       evidence, outputs)
    return Outcome(True, f"{where}: {status} in {latency:.0f} ms", evidence, outputs)


def _exchange(ctx: Context, method: str, url: str, headers: dict[str, str], data: bytes | None,
              unsent: str = "") -> tuple[bytes, int, Any, float] | Outcome:
    """One HTTP exchange: (body, status, response headers, latency in ms), an error status included;
    a failed Outcome when no response came (``unsent`` says what that means for an action)."""
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    started = clock.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=ctx.args.get("timeout") or ctx.timeout or 30) as resp:  # nosec B310
            raw, status, got = resp.read(), resp.status, resp.headers
    except urllib.error.HTTPError as exc:
        raw, status, got = exc.read(), exc.code, exc.headers
    except (urllib.error.URLError, OSError) as exc:
        reason = ctx.redact(str(getattr(exc, "reason", exc)))
        return Outcome.fail(f"{method} {ctx.redact(url)}: no response ({reason}); is the service up and the URL "
                            f"right?{unsent}", {"method": method, "url": ctx.redact(url), "error": reason})
    return raw, status, got, (clock.monotonic() - started) * 1000


def _send_lint(args: dict[str, Any]) -> list[tuple[tuple[Any, ...], str]]:
    """Validate-time: one body only."""
    if "json" in args and "body" in args:
        return [(("body",), "give either 'json' (a JSON body) or 'body' (a text body), not both")]
    return []


static("http.send", lint=_send_lint)
