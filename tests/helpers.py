"""Helpers the tests share: loopback HTTP servers, project copies, invoke subprocesses."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
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
