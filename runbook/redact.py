"""Redaction: secrets removed before anything is written or printed.

Known values (secret parameters, tokens the engine reads) are removed in their common
encodings: as written, base64 at each of the three byte offsets, URL-encoded and
JSON-escaped. Patterns catch secrets nobody declared, in the shapes tools print them: AWS
keys (``aws sts assume-role`` JSON, ~/.aws/credentials, environment variables), GitHub
tokens, bearer and basic authorization, JWTs, passwords in URLs, values of keys that name
a secret (``"password": "..."``, ``client_secret = ...``, ``DB_PASSWORD=...``, also in
JSON inside a JSON string) and PEM private-key blocks (also JSON-escaped on one line).
Nothing is redacted for looking random: commit SHAs, image digests, SHA-256 values, UUIDs,
ARNs and task definitions are evidence and stay readable.
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


# A key's closing quote or a value's opening quote, maybe escaped (JSON inside a JSON string: ``\"``).
_QUOTE = r"(?:\\{0,3}[\"'])?"
# A value after its key: up to the closing quote when quoted (a JSON string with its escapes; inside
# escaped JSON, up to the next ``\"``), else up to a space or delimiter. Never a mask, a boolean, null,
# a template or stars: ``"secret": true`` in a parameter's spec and ``password: ${params.pw}`` stay.
_VALUE = (r"(?!\[REDACTED\]|(?:true|false|null|none|nil)\b|\$\{|\*{3})"
          r"(?:(?<=\\\")(?:[^\\\r\n]|\\++[^\\\"\r\n])+|(?<=\")(?:\\.|[^\"\\\r\n])+|(?<=')[^'\r\n]+"
          r"|(?<![\"'])[^\s\"'&,;}\\]{3,})")
# Keys that name a secret. The key must end at the keyword (``PasswordLastUsed``, ``SecretArn``,
# ``secret_name`` are evidence) and may carry any prefix (``db_password``, ``MasterUserPassword``,
# ``clientSecret``); an ARN's ``:secret:`` is no key, nor pagination and idempotency tokens, nor the
# shell's ``PWD``.
_KEY = (r"(?:password|passwd|passphrase|[_-]pwd|(?:api|access|private)[_-]?key|client[_-]?secret"
        r"|secret(?<![:/]secret)(?:[_-]?(?:access[_-]?)?key|[_-]?string|[_-]?value)?"
        r"|token(?<!nexttoken)(?<!pagetoken)(?<!clienttoken)(?<!requesttoken)(?<!continuationtoken)"
        r"(?<!idempotencytoken)(?<!startingtoken))")
_PEM_LINE = r"-{4,5} ?%s [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)? ?-{4,5}"

# Each pattern keeps the named groups ``keep`` (before) and ``tail`` (after) and masks the rest. Its
# needles (lower case) are words a text must contain for the pattern to be tried at all: most log
# lines hold none, and a substring test is far cheaper than a regular expression's scan.
_RULES: list[tuple[str, int, tuple[str, ...]]] = [
    # PEM blocks (RSA, EC, OPENSSH, ENCRYPTED, PKCS#8, PGP), also JSON-escaped on one line; without
    # their END line (a cut output), up to the end of the JSON string or of the text.
    (_PEM_LINE % "BEGIN" + r".*?(?:" + _PEM_LINE % "END" + r"|(?=\\{0,3}\")|\Z)", re.S, ("private key",)),
    (r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b", 0,
     ("akia", "asia", "agpa", "aida", "aroa", "anpa", "anva", "aipa")),
    (r"(?P<keep>(?:aws_secret_access_key|secret_access_key|aws_session_token|aws_security_token|SecretAccessKey"
     r"|SessionToken)" + _QUOTE + r"\s*[=:]\s*" + _QUOTE + r")[A-Za-z0-9/+=]{16,}", re.I, ("secret", "token")),
    (r"\bgh[pousr]_[A-Za-z0-9]{20,}\b", 0, ("ghp_", "gho_", "ghu_", "ghs_", "ghr_")),
    (r"\bgithub_pat_[A-Za-z0-9_]{20,}\b", 0, ("github_pat_",)),
    (r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}", 0, ("eyj",)),
    (r"(?P<keep>\bbearer\s+)(?!\[REDACTED\])[A-Za-z0-9._~+/=-]{8,}", re.I, ("bearer",)),
    (r"(?P<keep>\bauthorization" + _QUOTE + r"\s*[=:]\s*" + _QUOTE + r"(?:basic|token)\s+)(?!\[REDACTED\])"
     r"[A-Za-z0-9._~+/=-]{8,}", re.I, ("authorization",)),
    (r"(?P<keep>\b[a-z][a-z0-9+.-]*://[^/\s:@]+:)[^@\s/]+(?P<tail>@)", re.I, ("://",)),
    (r"(?=[pacst_-])(?P<keep>" + _KEY + _QUOTE + r"[ \t]*(?:=|:(?![:/]))[ \t]*" + _QUOTE + r")" + _VALUE, re.I,
     ("pass", "pwd", "key", "secret", "token")),
    # a command line's ``--password VALUE`` (``--password-stdin`` is no value)
    (r"(?P<keep>(?<![\w-])--(?:[a-z0-9]+-)*(?:password|passwd|secret|secret-string|token|api-key"
     r"|secret-access-key)[ \t]+)(?![-\[])[^\s\"']{3,}", re.I, ("--",)),
]
PATTERNS = [re.compile(_start(p), f) for p, f, _ in _RULES]
_NEEDLES = [needles for _, _, needles in _RULES]
# one search for every pattern's needles: most strings hold none, and then no pattern is tried
_ANY_NEEDLE = re.compile("|".join(sorted({re.escape(n) for needles in _NEEDLES for n in needles}, key=len,
                                         reverse=True)))
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
    # JSON-escaped as tools print it: ASCII-only or not, "/" kept or escaped as "\/", and once more for
    # JSON inside a JSON string.
    for ascii_only in (True, False):
        escaped = json.dumps(secret, ensure_ascii=ascii_only)[1:-1]
        for form in (escaped, escaped.replace("/", "\\/")):
            out.add(form)
            out.add(json.dumps(form, ensure_ascii=ascii_only)[1:-1])
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
        """The text with every known secret and every secret-looking pattern masked."""
        if not value:
            return value
        if self._regex is not None:
            value = self._regex.sub(MASK, value)
        low = value.lower()
        if not _ANY_NEEDLE.search(low):
            return value
        for pattern, needles in zip(PATTERNS, _NEEDLES):
            if any(n in low for n in needles):
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
