"""Redaction: secrets removed before anything is written or printed.

Known values (secret parameters, tokens the engine reads) are removed in their common
encodings: as written, base64 at each of the three byte offsets, URL-encoded and
JSON-escaped. Patterns catch secrets nobody declared: AWS keys, GitHub tokens, bearer
tokens, JWTs, passwords in URLs and assignments, private key blocks.
"""

from __future__ import annotations

import base64
import json
import re
import urllib.parse
from typing import Any, Iterable

MASK = "[REDACTED]"
MIN_SECRET = 4

# Where a secret may start: not inside a word, or right after an escape sequence such as ``\n``
# (output quoted into JSON or a repr keeps "\\n" before the secret, and ``\b`` sees no boundary there).
_START = r"(?:(?<=\\[nrtvf0])|(?<![A-Za-z0-9_]))"


def _start(pattern: str) -> str:
    """A pattern's leading word boundary, widened to also match right after an escape sequence."""
    for lead in ("(?P<keep>", ""):
        if pattern.startswith(lead + r"\b"):
            return lead + _START + pattern[len(lead) + 2:]
    return pattern


# Each pattern keeps the named groups ``keep`` (before) and ``tail`` (after) and masks the rest.
PATTERNS = [re.compile(_start(p), f) for p, f in (
    (r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)", re.S),
    (r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b", 0),
    (r"(?P<keep>(?:aws_secret_access_key|secret_access_key|aws_session_token|SecretAccessKey|SessionToken)"
     r"[\"']?\s*[=:]\s*[\"']?)[A-Za-z0-9/+=]{16,}", re.I),
    (r"\bgh[pousr]_[A-Za-z0-9]{20,}\b", 0),
    (r"\bgithub_pat_[A-Za-z0-9_]{20,}\b", 0),
    (r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}", 0),
    (r"(?P<keep>\bbearer\s+)(?!\[REDACTED\])[A-Za-z0-9._~+/=-]{8,}", re.I),
    (r"(?P<keep>\b[a-z][a-z0-9+.-]*://[^/\s:@]+:)[^@\s/]+(?P<tail>@)", re.I),
    (r"(?P<keep>\b(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|client[_-]?secret)\b[\"']?\s*[=:]\s*[\"']?)"
     r"(?!\[REDACTED\])[^\s\"'&,;}]{3,}", re.I),
)]
B64_SKIP = {0: 0, 1: 2, 2: 3}   # leading base64 characters that depend on the bytes before the secret


def _mask(match: re.Match[str]) -> str:
    groups = match.groupdict()
    return (groups.get("keep") or "") + MASK + (groups.get("tail") or "")


def _variants(secret: str) -> set[str]:
    out = {secret}
    raw = secret.encode()
    for offset in range(3):
        total = offset + len(raw)
        enc = base64.b64encode(b"\0" * offset + raw).decode()
        stable = enc[B64_SKIP[offset]: (total // 3) * 4]
        out.add(stable)
        out.add(stable.replace("+", "-").replace("/", "_"))
    out.add(urllib.parse.quote(secret, safe=""))
    out.add(urllib.parse.quote_plus(secret, safe=""))
    out.add(json.dumps(secret)[1:-1])
    out.add(json.dumps(json.dumps(secret)[1:-1])[1:-1])
    return {v for v in out if len(v) >= MIN_SECRET}


class Redactor:
    """Removes known secret values and secret-looking patterns from text and data."""

    def __init__(self, secrets: Iterable[str] = ()):
        self._values: set[str] = set()
        self._regex: re.Pattern[str] | None = None
        for s in secrets:
            self.add(s)

    def add(self, secret: str | None) -> None:
        """Remember a secret value (and its encodings) from now on."""
        if not secret or len(secret) < MIN_SECRET:
            return
        before = len(self._values)
        self._values |= _variants(secret)
        if len(self._values) != before:
            parts = sorted(self._values, key=len, reverse=True)
            self._regex = re.compile("|".join(re.escape(p) for p in parts))

    def text(self, value: str) -> str:
        if not value:
            return value
        if self._regex is not None:
            value = self._regex.sub(MASK, value)
        for pattern in PATTERNS:
            value = pattern.sub(_mask, value)
        return value

    def __call__(self, value: str) -> str:
        return self.text(value)

    def data(self, value: Any) -> Any:
        """Redact every string inside nested data (keys included)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(k) if isinstance(k, str) else k: self.data(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.data(v) for v in value]
        return value
