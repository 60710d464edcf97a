"""Redaction: hand-written patterns against detect-secrets' keyword detector, per line and per catch.

    python -m benchmarks.redaction [--lines 100000] [--json]

Speed: microseconds per line over generated, realistic log lines (git, docker, ECS JSON,
one-line API responses, access logs, test output), one line in a hundred holding a
secret. Catch: which of this file's own secret shapes are removed, and which evidence
values (commit SHAs, digests, SHA-256 values, UUIDs, ARNs, task definitions) stay readable.

"library" is runbook.redact's non-keyword patterns (AWS key ids and AWS secret keys
by name, GitHub tokens, JWTs, bearer tokens, URL passwords, private keys) plus detect-secrets' KeywordDetector (its
YAML/config and quotes-required regex sets, both tried on every line) in place of our
keyword patterns. detect-secrets is not a dependency: install it aside to compare, e.g.
``pip install --target /tmp/ds detect-secrets`` and run with ``PYTHONPATH=/tmp/ds:.``.
No figure here is asserted by the tests.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
import uuid
from typing import Callable

from runbook import redact

MASK = redact.MASK
SESSION = ("IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLXdlc3QtMSJHMEUCIQD6+7yGk/Vc0TqwRmHh3pZl1kq8x1Ynq3="
           + "AbCdEf0123456789+/xYz" * 28 + "Qw==")
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY"
PEM_BODY = "MIIEpAIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM9Oi\nZ1BbNsDVvXnpk7i0h4RSqv5L+8a/1Dq0+6hS9Yv\nq8Rz+w=="


def pem(kind: str) -> str:
    label = f"{kind} PRIVATE KEY".strip()
    return f"-----BEGIN {label}-----\n{PEM_BODY}\n-----END {label}-----\n"


def assume_role() -> str:
    return json.dumps({"Credentials": {"AccessKeyId": "ASIAZ3EXAMPLE7QXKJ2W", "SecretAccessKey": SECRET_KEY,
                                       "SessionToken": SESSION, "Expiration": "2026-01-20T11:00:00+00:00"},
                       "AssumedRoleUser": {"AssumedRoleId": "AROAZ3EXAMPLE7QXKJ2WQ:release",
                                           "Arn": "arn:aws:sts::123456789012:assumed-role/deploy/release"}},
                      indent=4)


# (shape, text, the secret that must disappear)
SECRETS: list[tuple[str, str, str]] = [
    ("assume-role SecretAccessKey", assume_role(), SECRET_KEY),
    ("assume-role SessionToken", assume_role(), SESSION),
    ("jq -c SessionToken", json.dumps({"SessionToken": SESSION}, separators=(",", ":")), SESSION),
    ("credentials file secret", f"aws_secret_access_key = {SECRET_KEY}", SECRET_KEY),
    ("credentials file token", f"aws_session_token = {SESSION}", SESSION),
    ("env AWS_SECRET_ACCESS_KEY", f"AWS_SECRET_ACCESS_KEY={SECRET_KEY}", SECRET_KEY),
    ("export AWS_SESSION_TOKEN", f'export AWS_SESSION_TOKEN="{SESSION}"', SESSION),
    ("JSON password", '{"username": "app", "password": "s3cr3t!Pa55"}', "s3cr3t!Pa55"),
    ("JSON password with spaces", '{"password": "correct horse battery staple"}', "horse battery"),
    ("JSON db_password", '{"db_password": "Rds-9f8e7d"}', "Rds-9f8e7d"),
    ("RDS MasterUserPassword", '"MasterUserPassword": "Rds-master-77"', "Rds-master-77"),
    ("env DB_PASSWORD", "DB_PASSWORD=pg-Hunter22", "pg-Hunter22"),
    ("YAML POSTGRES_PASSWORD", "  POSTGRES_PASSWORD: pg-Yaml-44", "pg-Yaml-44"),
    ("python repr password", "{'user': 'app', 'password': 'repr-Pw-31'}", "repr-Pw-31"),
    ("JSON client_secret", '{"client_id": "menotime-web", "client_secret": "cs-8Hq2-Lk9P-0zX"}', "cs-8Hq2-Lk9P-0zX"),
    ("client_secret assignment", "client_secret = cs-Assign-5521", "cs-Assign-5521"),
    ("CLIENT_SECRET env", "CLIENT_SECRET='cs-Env-7731'", "cs-Env-7731"),
    ("JSON clientSecret", '{"clientSecret": "cs-Camel-1187"}', "cs-Camel-1187"),
    ("PEM RSA", pem("RSA"), "MIIEpAIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM9Oi"),
    ("PEM EC", pem("EC"), "MIIEpAIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM9Oi"),
    ("PEM OPENSSH", pem("OPENSSH"), "MIIEpAIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM9Oi"),
    ("PEM ENCRYPTED", pem("ENCRYPTED"), "MIIEpAIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM9Oi"),
    ("PEM PKCS8", pem(""), "MIIEpAIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM9Oi"),
    ("PEM in JSON (one line)", json.dumps({"private_key": pem("RSA")}), "ZiAMfQyuvBjM9Oi"),
    ("PEM in JSON, no END", json.dumps({"private_key": pem("RSA")[:120]}), "ZiAMfQyuvBjM9Oi"),
    ("SecretString", json.dumps({"Name": "prod/db", "SecretString": "Sm-Plain-8841"}), "Sm-Plain-8841"),
    ("password in JSON in JSON", json.dumps({"log": json.dumps({"password": "nested-Pw-66"})}), "nested-Pw-66"),
    ("Django SECRET_KEY", "SECRET_KEY = 'dj-4f$k#2m9x!q'", "dj-4f$k#2m9x!q"),
    ("x-api-key header", "x-api-key: ak-Header-9921", "ak-Header-9921"),
    ("JSON apiKey", '{"apiKey": "ak-Camel-3310"}', "ak-Camel-3310"),
    ("JSON access_token", '{"access_token": "ya29.a0AfH6SMBx-tok", "expires_in": 3599}', "ya29.a0AfH6SMBx-tok"),
    ("JSON refresh_token", '{"refresh_token": "1//0gRefresh-tok"}', "1//0gRefresh-tok"),
    ("npm _authToken", "//registry.npmjs.org/:_authToken=npm_Ab12Cd34Ef56Gh78", "npm_Ab12Cd34Ef56Gh78"),
    ("Authorization: Basic", "Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
    ("--password VALUE", "mysql --user app --password Cli-Pw-5150 -h db", "Cli-Pw-5150"),
]

SHA = "3f2a9c0d1e2b3a4f5e6d7c8b9a0f1e2d3c4b5a69"
DIGEST = "sha256:" + "9b" * 32
SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
UUID = "123e4567-e89b-12d3-a456-426614174000"
TD_ARN = "arn:aws:ecs:us-west-1:123456789012:task-definition/menotime-api-prod:4"
SM_ARN = "arn:aws:secretsmanager:us-west-1:123456789012:secret:prod/db-AbCdEf"
# (shape, text, values that must stay readable)
EVIDENCE: list[tuple[str, str, list[str]]] = [
    ("commit SHA", f"commit {SHA}", [SHA]),
    ("approved head SHA", f'{{"head_sha": "{SHA}", "approvers": ["alice", "bob"]}}', [SHA]),
    ("image digest", f'"imageDigest": "{DIGEST}"', [DIGEST]),
    ("SHA-256 of a body", f'{{"sha256": "{SHA256}", "size": 2048}}', [SHA256]),
    ("UUID", f'{{"request_id": "{UUID}"}}', [UUID]),
    ("ECS clientToken", f'"clientToken": "{UUID}"', [UUID]),
    ("task definition ARN", f'"taskDefinitionArn": "{TD_ARN}"', [TD_ARN]),
    ("task definition", '"taskDefinition": "menotime-api-prod:4"', ["menotime-api-prod:4"]),
    ("Secrets Manager ARN", f'{{"ARN": "{SM_ARN}", "Name": "prod/db"}}', [SM_ARN]),
    ("SecretArn", f'"MasterUserSecret": {{"SecretArn": "{SM_ARN}"}}', [SM_ARN]),
    ("ARN with :secret:", f"secret {SM_ARN} rotated", [SM_ARN]),
    ("IAM PasswordLastUsed", '"PasswordLastUsed": "2026-01-19T08:12:44+00:00"', ["2026-01-19T08:12:44+00:00"]),
    ("secret flag of a parameter", '{"type": "string", "secret": true}', ['"secret": true']),
    ("docker login --password-stdin", "docker login --username AWS --password-stdin 1234.dkr.ecr", ["1234.dkr.ecr"]),
    ("shell PWD", "PWD=/home/runner/work/api", ["/home/runner/work/api"]),
    ("private IP", '"PrivateIpAddress": "10.0.1.23"', ["10.0.1.23"]),
]


def log_lines(count: int, seed: int = 7) -> list[str]:
    """Realistic command output and API responses, one secret-bearing line in a hundred."""
    rng = random.Random(seed)
    hexd = "0123456789abcdef"

    def hx(n: int) -> str:
        return "".join(rng.choice(hexd) for _ in range(n))

    def uid() -> str:
        return str(uuid.UUID(int=rng.getrandbits(128)))

    makers: list[Callable[[], str]] = [
        lambda: f"commit {hx(40)}",
        lambda: f"Merge pull request #{rng.randint(1, 999)} from menotime/release/v1.{rng.randint(0, 9)}.0",
        lambda: "Author: Dev Person <dev@menotime.example>",
        lambda: f"v1.2.{rng.randint(0, 9)}: digest: sha256:{hx(64)} size: 1573",
        lambda: f"{hx(12)}: Pushed",
        lambda: f'        "taskDefinition": "arn:aws:ecs:us-west-1:123456789012:task-definition/menotime-api-prod:'
                f'{rng.randint(1, 60)}",',
        lambda: '            "status": "PRIMARY",',
        lambda: f'            "id": "ecs-svc/{rng.getrandbits(60)}",',
        lambda: f'            "runningCount": {rng.randint(0, 3)},',
        lambda: '            "rolloutState": "COMPLETED",',
        lambda: f'{{"id": "{uid()}", "status": "ok", "version": "v1.2.3", "commit": "{hx(40)}", '
                f'"uptime_s": {rng.randint(1, 99999)}}}',
        lambda: f'{{"level": "info", "ts": "2026-01-20T10:00:{rng.randint(10, 59)}Z", "msg": "request done", '
                f'"path": "/api/v1/symptoms", "status": 200, "duration_ms": {rng.random() * 50:.1f}, '
                f'"request_id": "{uid()}"}}',
        lambda: f'10.0.{rng.randint(0, 9)}.{rng.randint(1, 254)} - - [20/Jan/2026:10:00:01 +0000] '
                f'"GET /api/v1/health HTTP/1.1" 200 17 "-" "ELB-HealthChecker/2.0" 0.00{rng.randint(1, 9)}',
        lambda: f"tests/test_api.py::test_case_{rng.randint(1, 300)} PASSED                     "
                f"[ {rng.randint(1, 99)}%]",
        lambda: "Successfully installed boto3-1.34.0 botocore-1.34.0 jmespath-1.0.1",
        lambda: "  # aws_ecs_service.api will be updated in-place",
        lambda: "(service menotime-api) has reached a steady state.",
        lambda: f'    "UserId": "AROAZ3EXAMPLE7QXKJ2WQ:release", "Account": "123456789012", "sha256": "{hx(64)}"',
    ]
    leaks = [text for _, text, _ in SECRETS if "\n" not in text]
    return [rng.choice(leaks) if rng.random() < 0.01 else rng.choice(makers)() for _ in range(count)]


def _is_keyword(pattern: str) -> bool:
    """Our generic keyword pattern (the AWS-specific one stays on both sides: it is the "AWS keys" pattern)."""
    return "password" in pattern


DENYLIST_WORDS = ("key", "pass", "pwd", "secret", "contrase")   # every entry of detect-secrets' DENYLIST has one


def library_redactor() -> Callable[[str], str] | None:
    """Our non-keyword patterns, then detect-secrets' KeywordDetector masking what it finds."""
    try:
        from detect_secrets.plugins import keyword
    except ImportError:
        return None
    detector = keyword.KeywordDetector()
    sets = (keyword.CONFIG_DENYLIST_REGEX_TO_GROUP, keyword.QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP)
    needles = getattr(redact, "_NEEDLES", None) or [("",)] * len(redact.PATTERNS)
    structural = [(p, n) for p, n in zip(redact.PATTERNS, needles) if not _is_keyword(p.pattern)]

    def text(value: str) -> str:
        low = value.lower()
        for pattern, words in structural:     # the same prefilter as runbook.redact's
            if any(w in low for w in words):
                value = pattern.sub(redact._mask, value)
        if not any(w in low for w in DENYLIST_WORDS):          # a prefilter for the library too
            return value
        found = {s for regexes in sets for line in value.splitlines() for s in detector.analyze_string(line, regexes)}
        for secret in sorted(found, key=len, reverse=True):
            if secret and MASK not in secret:
                value = value.replace(secret, MASK)
        return value
    return text


def per_line_us(fn: Callable[[str], str], lines: list[str], repeat: int = 3) -> float:
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for line in lines:
            fn(line)
        samples.append((time.perf_counter() - t0) / len(lines) * 1e6)
    return statistics.median(samples)


def catch(fn: Callable[[str], str]) -> dict[str, list[str]]:
    missed = [shape for shape, text, secret in SECRETS if secret in fn(text)]
    masked = [shape for shape, text, keep in EVIDENCE if any(k not in fn(text) for k in keep)]
    return {"missed": missed, "evidence_masked": masked}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.redaction", description=__doc__.split("\n")[0])
    ap.add_argument("--lines", type=int, default=100_000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    lines = log_lines(args.lines)
    leaky = [line for _, line, _ in SECRETS] * max(1, args.lines // 100 // len(SECRETS))
    engines: dict[str, Callable[[str], str]] = {"hand-written": redact.Redactor().text}
    library = library_redactor()
    if library is not None:
        engines["detect-secrets keyword"] = library
    rows = []
    for name, fn in engines.items():
        result = catch(fn)
        rows.append({"engine": name, "us_per_line": round(per_line_us(fn, lines), 2),
                     "us_per_secret_text": round(per_line_us(fn, leaky), 2),
                     "caught": len(SECRETS) - len(result["missed"]), "secrets": len(SECRETS),
                     "evidence_kept": len(EVIDENCE) - len(result["evidence_masked"]), "evidence": len(EVIDENCE),
                     **result})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{len(lines):,} log lines, {len(SECRETS)} secret shapes, {len(EVIDENCE)} evidence shapes")
    for r in rows:
        print(f"{r['engine']:24} {r['us_per_line']:7.2f} us/line ({r['us_per_secret_text']:.1f} us per secret "
              f"text)  caught {r['caught']}/{r['secrets']}  evidence kept {r['evidence_kept']}/{r['evidence']}")
        for key in ("missed", "evidence_masked"):
            if r[key]:
                print(f"    {key.replace('_', ' ')}: {', '.join(r[key])}")
    if library is None:
        print("(detect-secrets is not importable: pip install --target /tmp/ds detect-secrets; "
              "PYTHONPATH=/tmp/ds:. python -m benchmarks.redaction)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
