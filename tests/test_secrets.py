"""Secrets and patient data never reach the state home or the console."""

from __future__ import annotations

import base64
from pathlib import Path

from helpers import PATIENTS, Server, copy_project, invoke

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
