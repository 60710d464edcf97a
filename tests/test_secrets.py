"""Secrets and patient data never reach the state home or the console."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from helpers import PATIENTS, Server, copy_project, invoke
from runbook.redact import MASK, Redactor

TOKEN = "tok-Zq9-4471-secret-value"
LEAKS = ["AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
         "ghp_0123456789abcdefghijABCDEFGHIJ012345", "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
         "abcdef0123456789.xyz", "hunter2hunter2", "pa55w0rd-db", TOKEN, base64.b64encode(TOKEN.encode()).decode()]
PATIENT_DATA = ["Jane Roe", "p-1001", "1971-03-02", "Mary Major", "perimenopause"]


def everything_written(home: Path) -> str:
    return "\n".join(p.read_bytes().decode("utf-8", "replace") for p in home.rglob("*") if p.is_file())


def test_secrets_and_patient_data_are_kept_out(tmp_path: Path) -> None:
    server = Server({"/api/v1/patients": (200, PATIENTS)})
    try:
        root = copy_project("runtime", tmp_path)
        home = tmp_path / "home"
        result = invoke("runbook", "leaky", "--param", f"url={server.url}/api/v1/patients", root=root, home=home,
                        env={"RUNBOOK_PARAM_TOKEN": TOKEN})
    finally:
        server.close()
    assert result.returncode == 0, result.stdout + result.stderr
    written = everything_written(home)
    console = result.stdout + result.stderr
    assert "[REDACTED]" in written
    for leak in LEAKS + PATIENT_DATA:
        assert leak not in written, leak
        assert leak not in console, leak
    # the long output went to a content-addressed blob, redacted too
    blobs = list(home.rglob("blobs/*"))
    assert blobs and all("[REDACTED]" in b.read_text() for b in blobs)
    # HTTP evidence: status, size, hash and the asserted value only
    assert '"values":{"meta.count":2}' in written and '"sha256":' in written and '"body"' not in written


def test_secret_parameter_is_refused_on_the_command_line(tmp_path: Path) -> None:
    root = copy_project("runtime", tmp_path)
    home = tmp_path / "home"
    result = invoke("runbook", "leaky", "--param", f"token={TOKEN}", "--param", "url=http://127.0.0.1:9",
                    root=root, home=home)
    assert result.returncode == 2
    assert TOKEN not in result.stderr
    assert not home.exists()


# -- secrets in the shapes tools print them (the Redactor every sink goes through) ---------------

SECRET_KEY = "wJalrXUtnFEMI/K7MDENG" + "/bPxRfiCYzEXAMPLEKEY"
SESSION = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVz" + "AbCdEf0123456789+/xYz" * 28 + "Qw=="   # 640 chars, / + =
PEM_BODY = "MIIEpAIBAAKCAQEA3Tz2mr7" + "SZiAMfQyuvBjM9Oi"
SHA = "3f2a9c0d1e2b3a4f5e6d7c8b9a0f1e2d3c4b5a69"
DIGEST = "sha256:" + "9b" * 32
TD_ARN = "arn:aws:ecs:us-west-1:123456789012:task-definition/menotime-api-prod:4"


def assume_role(**dump: Any) -> str:
    """What `aws sts assume-role` prints (indent=4), or `jq -c` of it."""
    return json.dumps({"Credentials": {"AccessKeyId": "ASIAZ3EXAMPLE7QXKJ2W", "SecretAccessKey": SECRET_KEY,
                                       "SessionToken": SESSION, "Expiration": "2026-01-20T11:00:00+00:00"},
                       "AssumedRoleUser": {"Arn": "arn:aws:sts::123456789012:assumed-role/deploy/release"}}, **dump)


@pytest.mark.parametrize("dump", [{"indent": 4}, {"separators": (",", ":")}], ids=["aws-cli", "jq-c"])
def test_assume_role_output_loses_its_secret_key_and_session_token(dump: dict[str, Any]) -> None:
    assert len(SESSION) > 600 and {"/", "+", "="} <= set(SESSION)
    out = Redactor().text(assume_role(**dump))
    assert SECRET_KEY not in out and SESSION[:40] not in out and SESSION[-40:] not in out
    assert "ASIAZ3EXAMPLE7QXKJ2W" not in out
    again = json.loads(out)["Credentials"]          # still JSON, the keys and the rest readable
    assert again["SecretAccessKey"] == again["SessionToken"] == MASK
    assert again["Expiration"] == "2026-01-20T11:00:00+00:00"
    assert "arn:aws:sts::123456789012:assumed-role/deploy/release" in out


@pytest.mark.parametrize("text", [
    f"[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = {SECRET_KEY}\n"
    f"aws_session_token = {SESSION}\nregion = us-west-1",
    f"AWS_SECRET_ACCESS_KEY={SECRET_KEY}\nexport AWS_SESSION_TOKEN=\"{SESSION}\"",
    json.dumps({"log": json.dumps({"SecretAccessKey": SECRET_KEY, "SessionToken": SESSION})}),
], ids=["credentials-file", "environment", "json-in-json"])
def test_aws_credentials_files_and_variables(text: str) -> None:
    out = Redactor().text(text)
    assert SECRET_KEY not in out and SESSION[:40] not in out and SESSION[-40:] not in out
    assert "region = us-west-1" in out or "region" not in text


@pytest.mark.parametrize("text, secret", [
    ('{"username": "app", "password": "correct horse battery staple"}', "horse battery staple"),
    ('{"password":"s3cr3t!Pa55","user":"app"}', "s3cr3t!Pa55"),
    ('{"password": "with \\"quote\\" inside"}', "inside"),
    ('{"db_password": "Rds-9f8e7d"}', "Rds-9f8e7d"),
    ('"MasterUserPassword": "Rds-master-77"', "Rds-master-77"),
    ("DB_PASSWORD=pg-Hunter22 next=1", "pg-Hunter22"),
    ("  POSTGRES_PASSWORD: pg-Yaml-44", "pg-Yaml-44"),
    ("{'user': 'app', 'password': 'repr-Pw-31'}", "repr-Pw-31"),
    (json.dumps({"log": json.dumps({"password": "nested Pw 66"})}), "nested Pw 66"),
    ('{"client_id": "menotime-web", "client_secret": "cs-8Hq2-Lk9P-0zX"}', "cs-8Hq2-Lk9P-0zX"),
    ('{"clientSecret": "cs-Camel-1187"}', "cs-Camel-1187"),
    ("client_secret = cs-Assign-5521", "cs-Assign-5521"),
    ("CLIENT_SECRET='cs-Env-7731'", "cs-Env-7731"),
    ('{"Name": "prod/db", "SecretString": "Sm-Plain-8841"}', "Sm-Plain-8841"),
    ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
    ("mysql --user app --password Cli-Pw-5150 -h db", "Cli-Pw-5150"),
])
def test_values_of_keys_that_name_a_secret(text: str, secret: str) -> None:
    out = Redactor().text(text)
    assert secret not in out and MASK in out, out
    assert Redactor().text(out) == out                  # masking twice changes nothing


PEM_KINDS = ["RSA ", "EC ", "OPENSSH ", "ENCRYPTED ", ""]


@pytest.mark.parametrize("kind", PEM_KINDS, ids=lambda k: k.strip() or "PKCS8")
def test_private_key_blocks_as_printed_and_json_escaped(kind: str) -> None:
    block = f"-----BEGIN {kind}PRIVATE KEY-----\n{PEM_BODY}\nq8Rz+w==\n-----END {kind}PRIVATE KEY-----\n"
    printed = Redactor().text(f"exporting key\n{block}done {SHA}")
    assert PEM_BODY not in printed and "q8Rz+w==" not in printed
    assert printed.startswith("exporting key\n") and printed.endswith(f"done {SHA}")
    one_line = json.dumps({"private_key": block, "client_email": "deploy@menotime.example"})
    assert "\\n" in one_line and "\n" not in one_line
    out = Redactor().text(one_line)
    assert PEM_BODY not in out and "q8Rz+w==" not in out
    assert json.loads(out)["client_email"] == "deploy@menotime.example"
    cut = Redactor().text(json.dumps({"private_key": block[:60], "ok": True}))     # no END line: up to the quote
    assert PEM_BODY[:20] not in cut and json.loads(cut)["ok"] is True


EVIDENCE = {
    "commit SHA": f"commit {SHA}\nMerge pull request #12 from menotime/release/v1.2.3",
    "approved head": f"approved on head {SHA[:7]} by alice (engineering-lead), bob (devops)",
    "approval outputs": json.dumps({"head_sha": SHA, "approvers": ["alice", "bob"], "verified": True}),
    "image digest": f'{{"imageDigest": "{DIGEST}", "imageTag": "v1.2.0"}}',
    "SHA-256 of a body": json.dumps({"sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}),
    "UUIDs": '{"request_id": "123e4567-e89b-12d3-a456-426614174000", '
             '"clientToken": "0f8fad5b-d9cb-469f-a165-70867728950e"}',
    "task definition ARN": f'"taskDefinitionArn": "{TD_ARN}"',
    "task definition": 'roll back menotime-api-prod:5 -> menotime-api-prod:4 ("taskDefinition": '
                       '"menotime-api-prod:4", "family_revision": "menotime-api-prod:4")',
    "secret ARNs": '{"ARN": "arn:aws:secretsmanager:us-west-1:123456789012:secret:prod/db-AbCdEf", '
                   '"MasterUserSecret": {"SecretArn": "arn:aws:secretsmanager:us-west-1:123456789012:secret:rds-x"}}',
    "IAM user": '{"UserName": "deploy", "PasswordLastUsed": "2026-01-19T08:12:44+00:00", "UserId": "AIDAEXAMPLE"}',
    "a parameter's spec": '{"token": {"type": "string", "secret": true}, "url": {"type": "string"}}',
}


@pytest.mark.parametrize("name", list(EVIDENCE))
def test_evidence_is_never_redacted_for_looking_random(name: str) -> None:
    """Commit SHAs, digests, SHA-256 values, approved heads, UUIDs, ARNs and task definitions stay readable."""
    redactor = Redactor([TOKEN, SECRET_KEY, "ghp_0123456789abcdefghijABCDEFGHIJ012345"])
    text = EVIDENCE[name]
    assert redactor.text(text) == text
    assert redactor.data({"summary": text, "values": [text], text: 1}) == {"summary": text, "values": [text], text: 1}


@pytest.mark.parametrize("secret", ['pa"ss\\word-42', 'pässwörd"1\\', "s3c/r3t/with/slashes"])
def test_a_known_secret_with_quotes_or_backslashes_printed_inside_json(secret: str) -> None:
    """A known secret (Redactor.add) is found in its JSON-escaped forms, as tools print them."""
    redactor = Redactor()
    redactor.add(secret)
    printed = [json.dumps({"k": secret}), json.dumps({"k": secret}, ensure_ascii=False),
               json.dumps({"k": secret}).replace("/", "\\/"), json.dumps({"log": json.dumps({"k": secret})})]
    for text in printed:
        out = redactor.text(text)
        assert out in ('{"k": "[REDACTED]"}', '{"log": "{\\"k\\": \\"[REDACTED]\\"}"}'), (text, out)
    masked = ['{"k": "[REDACTED]"}'] * 3 + ['{"log": "{\\"k\\": \\"[REDACTED]\\"}"}']
    assert redactor.data({"stdout": printed[0], "lines": printed[1:]}) == {"stdout": masked[0], "lines": masked[1:]}


def test_tool_output_is_redacted_in_journal_console_and_exports(tmp_path: Path) -> None:
    """End to end: a command prints assume-role JSON, a credentials file, a password, client secrets and
    private keys (no value declared anywhere); the evidence after them stays readable."""
    root = copy_project("runtime", tmp_path)
    home = tmp_path / "home"
    result = invoke("runbook", "tool-output", root=root, home=home)
    assert result.returncode == 0, result.stdout + result.stderr
    run_id = next((home / "runs").iterdir()).name
    exports = [invoke("audit.export", run_id, "--format", fmt, root=root, home=home) for fmt in ("md", "json")]
    assert all(e.returncode == 0 for e in exports), [e.stderr for e in exports]
    for where, text in (("state home", everything_written(home)), ("console", result.stdout + result.stderr),
                        ("export md", exports[0].stdout), ("export json", exports[1].stdout)):
        for leak in (SECRET_KEY, SESSION[:40], SESSION[-40:], "horse battery", "cs-8Hq2-Lk9P-0zX", "cs-Assign-5521",
                     PEM_BODY):
            assert leak not in text, (where, leak)
        if where in ("state home", "export json"):      # the ones that hold the output's evidence
            for kept in (SHA, DIGEST, TD_ARN, "123e4567-e89b-12d3-a456-426614174000"):
                assert kept in text, (where, kept)
