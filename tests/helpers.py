"""Helpers the tests share: loopback HTTP servers, project copies, invoke subprocesses."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import subprocess
import struct
import sys
import threading
import zlib
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parent.parent
SCENARIOS = REPO / "tests" / "scenarios"

PATIENTS = {"data": [{"id": "p-1001", "name": "Jane Roe", "dob": "1971-03-02", "diagnosis": "perimenopause"},
                     {"id": "p-1002", "name": "Mary Major", "dob": "1968-11-23", "diagnosis": "menopause"}],
            "meta": {"count": 2}}


class Server:
    """A real HTTP server on loopback answering from a route table: path -> (status, body)."""

    def __init__(self, routes: dict[str, tuple[int, Any]]):
        self.routes = routes
        self.hits: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                outer.hits.append(self.path)
                status, body = outer.routes.get(self.path.split("?")[0], (404, {"error": "not found"}))
                raw = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# Scenario projects built on another: the base is copied first, then the project over it.
BASES = {"backend": "runtime"}


def copy_project(name: str, dest: Path, base_url: str | None = None) -> Path:
    """A writable copy of a scenario project, its environments pointed at ``base_url``."""
    target = dest / name
    for part in ([BASES[name]] if name in BASES else []) + [name]:
        shutil.copytree(SCENARIOS / part, target, ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
    if base_url:
        for env in (target / "environments").glob("*.yaml"):
            env.write_text(env.read_text().replace("http://127.0.0.1:9", base_url))
    return target


def invoke(*args: str, root: Path, home: Path, env: dict[str, str] | None = None, timeout: float = 120,
           input_text: str | None = None) -> subprocess.CompletedProcess:
    """Run `invoke ARGS` as a user would (a separate process, no terminal)."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("RUNBOOK_")}
    full.update({"RUNBOOK_ROOT": str(root), "RUNBOOK_HOME": str(home), "NO_COLOR": "1",
                 "RUNBOOK_OPERATOR": "tester@example.com"})
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=REPO, capture_output=True, text=True,
                          env=full, timeout=timeout, input=input_text, stdin=None if input_text else subprocess.DEVNULL)


def spawn(*args: str, root: Path, home: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    full = {k: v for k, v in os.environ.items() if not k.startswith("RUNBOOK_")}
    full.update({"RUNBOOK_ROOT": str(root), "RUNBOOK_HOME": str(home), "NO_COLOR": "1",
                 "RUNBOOK_OPERATOR": "tester@example.com"})
    full.update(env or {})
    return subprocess.Popen([sys.executable, "-m", "invoke", *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=full, stdin=subprocess.DEVNULL)


def wait_for(predicate: Callable[[], bool], timeout: float = 30, interval: float = 0.05) -> None:
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def write_answers(path: Path, runbook: str, answers: dict[str, Any], params: dict[str, Any] | None = None) -> Path:
    import yaml

    data: dict[str, Any] = {"runbook": runbook, "answers": answers}
    if params:
        data["params"] = params
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def results(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """A run's item results by ``STEP.ITEM`` (the last one of each)."""
    return {f"{r['data']['step']}.{r['data']['item']}": r["data"] for r in records if r["type"] == "item.result"}


def finished(records: list[dict[str, Any]]) -> dict[str, str]:
    """A run's steps by their final status."""
    return {r["data"]["step"]: r["data"]["status"] for r in records if r["type"] == "step.finished"}


def app_version(home: Path) -> str:
    """The version the sandbox's app answers /health with."""
    import urllib.request

    from runbook.sandbox import control

    state = control.read_state(home)
    assert state is not None
    with urllib.request.urlopen(state["app"]["base_url"] + "/health", timeout=5) as resp:   # nosec B310 (loopback)
        return json.loads(resp.read())["version"]


def processes_with(marker: str) -> list[str]:
    """The pids whose command line contains MARKER (what a sweep must not leave running)."""
    left = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if marker in cmdline.read_bytes().decode(errors="replace"):
                left.append(cmdline.parent.name)
        except OSError:
            pass
    return left


def png_pixels(png: bytes) -> tuple[int, int, list[bytearray]]:
    """An 8-bit RGB or RGBA PNG's rows as RGB bytes (the standard library only)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks, width, height, ctype = 8, b"", 0, 0, 0
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos:pos + 8])
        body = png[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, ctype = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and ctype in (2, 6)
        elif kind == b"IDAT":
            chunks += body
        pos += 12 + length
    raw = zlib.decompress(chunks)
    bpp = 4 if ctype == 6 else 3
    stride = width * bpp
    rows, prev, i = [], bytearray(stride), 0
    for _ in range(height):
        filt, line = raw[i], bytearray(raw[i + 1:i + 1 + stride])
        i += 1 + stride
        if filt == 1:
            for x in range(bpp, stride):
                line[x] = (line[x] + line[x - bpp]) & 255
        elif filt == 2:
            for x in range(stride):
                line[x] = (line[x] + prev[x]) & 255
        elif filt == 3:
            for x in range(stride):
                line[x] = (line[x] + ((line[x - bpp] if x >= bpp else 0) + prev[x]) // 2) & 255
        elif filt == 4:
            for x in range(stride):
                a = line[x - bpp] if x >= bpp else 0
                b, c = prev[x], (prev[x - bpp] if x >= bpp else 0)
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        prev = line
        rows.append(line if bpp == 3 else bytearray(v for n, v in enumerate(line) if n % 4 != 3))
    return width, height, rows


def aws_dummy_credentials(monkeypatch: Any, tmp_path: Path) -> None:
    """Dummy AWS credentials and no profile, config or instance metadata: boto3 talks to moto only."""
    from runbook import aws

    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    aws.reset()


def kill_with_commands(engine: subprocess.Popen, home: Path) -> None:
    """SIGKILL an engine and the commands it started (each in its own process group, journaled as
    ``item.process``): the machine was lost, nothing of the run goes on. (A plain kill of the engine
    leaves its command running, and the resume then waits for it.)"""
    import signal

    engine.kill()
    engine.communicate(timeout=30)
    for journal in (home / "runs").glob("*/journal.jsonl") if (home / "runs").is_dir() else ():
        for line in journal.read_text().splitlines():
            record = json.loads(line)
            if record.get("type") == "item.process" and record["data"].get("state") == "running":
                try:
                    os.killpg(int(record["data"]["pid"]), signal.SIGKILL)
                except ProcessLookupError:
                    pass


def chromium_path() -> str:
    """Debian's headless Chromium for the browser tests. Missing: the test is skipped with what to
    install, except under CI (``CI`` set), where a missing browser fails: CI never skips them silently."""
    import pytest

    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    message = "chromium is not installed: `apt-get install chromium` runs the browser tests (.ci/run installs it)"
    if os.environ.get("CI"):
        pytest.fail(message + "; CI is set, so a missing browser is a failure, not a skip")
    pytest.skip(message)
