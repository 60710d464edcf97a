"""Bringing the sandbox up and down: one supervisor process per state home.

Its pid, ports and tokens are in ``HOME/sandbox/state.json``; ``down`` stops exactly
that process. A state file whose process is gone means the sandbox crashed: it is reset
(wiped and started anew), not resurrected.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from ..errors import ExternalError, UsageError
from ..identity import alive
from .. import clock


_STARTED: dict[int, subprocess.Popen] = {}   # supervisors this process started (reaped by down())


def folder(home: Path) -> Path:
    return Path(home) / "sandbox"


def read_state(home: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder(home) / "state.json").read_text())
    except (FileNotFoundError, ValueError):
        return None


def running(home: Path) -> dict[str, Any] | None:
    state = read_state(home)
    if state and alive(int(state.get("pid", 0))):
        return state
    return None


def overlay(home: Path) -> dict[str, Any]:
    return json.loads((folder(home) / "overlay.json").read_text())


def up(home: Path, scenario: str = "healthy", timeout: float = 90.0, review_delay: float = 1.0,
       bad_version: str | None = None) -> dict[str, Any]:
    """Start the sandbox unless it runs; a crashed one is reset first.

    ``bad_version`` (default: ``$RUNBOOK_SANDBOX_BAD_VERSION``, for a start by a run) makes that
    one version answer 500 on the API, so one world holds good releases, a bad one and the fix.
    """
    from .server import BAD_VERSION, SCENARIOS

    if scenario not in SCENARIOS:
        raise UsageError(f"<command line>: unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)} "
                         "(at --scenario)")
    if bad_version is None:
        bad_version = os.environ.get("RUNBOOK_SANDBOX_BAD_VERSION", "")
    if bad_version and not BAD_VERSION.match(bad_version):
        raise UsageError(f"<command line>: bad version {bad_version!r} is not vMAJOR.MINOR.PATCH (at --bad-version)")
    state = running(home)
    if state is not None:
        if state.get("scenario") != scenario:
            raise UsageError(f"the sandbox runs scenario {state.get('scenario')!r}; `invoke sandbox.reset "
                             f"--scenario {scenario}` to switch")
        if bad_version and state.get("bad_version", "") != bad_version:
            raise UsageError(f"the sandbox runs with bad version {state.get('bad_version') or 'none'!r}; "
                             f"`invoke sandbox.reset --bad-version {bad_version}` to switch")
        return state
    where = folder(home)
    if where.exists():
        shutil.rmtree(where)          # crashed or stopped: start from a clean world
    where.mkdir(parents=True)
    with open(where / "supervisor.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "runbook.sandbox.server", "--folder", str(where),
                                 "--scenario", scenario, "--review-delay", str(review_delay),
                                 "--bad-version", bad_version],
                                stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
                                cwd=str(where))
    _STARTED[proc.pid] = proc
    def ready() -> dict[str, Any] | None:
        state = read_state(home)
        if state and state.get("ready"):
            return state
        if proc.poll() is not None:
            _STARTED.pop(proc.pid, None)
            tail = (where / "supervisor.log").read_text(errors="replace")[-800:]
            raise ExternalError("sandbox.up", f"the sandbox stopped while starting (exit {proc.returncode})",
                                f"see {where / 'supervisor.log'}: {tail.strip().splitlines()[-1:] or ''}")
        return None

    state = clock.wait_until(ready, timeout, 0.1)
    if state is not None:
        return state
    proc.terminate()
    reap(proc.pid)
    raise ExternalError("sandbox.up", f"not ready after {timeout:.0f} s", f"see {where / 'supervisor.log'}")


def down(home: Path, timeout: float = 20.0) -> bool:
    """Stop the sandbox's supervisor (exactly the recorded process); True if one was running."""
    state = read_state(home)
    if state is None:
        return False
    pid = int(state.get("pid", 0))
    if alive(pid):
        os.kill(pid, signal.SIGTERM)
        clock.wait_until(lambda: not alive(pid), timeout, 0.05)
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    reap(pid)
    try:
        (folder(home) / "state.json").unlink()
    except FileNotFoundError:
        pass
    return True


def reap(pid: int) -> None:
    """Collect a supervisor this process started, so it leaves no zombie."""
    proc = _STARTED.pop(pid, None)
    if proc is not None:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def reset(home: Path, scenario: str = "healthy", bad_version: str | None = None) -> dict[str, Any]:
    down(home)
    shutil.rmtree(folder(home), ignore_errors=True)
    return up(home, scenario, bad_version=bad_version)


def status(home: Path) -> dict[str, Any]:
    """What runs where, and which version the service serves."""
    state = read_state(home)
    if state is None:
        return {"running": False}
    if not alive(int(state.get("pid", 0))):
        return {"running": False, "crashed": True, "state": state}
    import urllib.request

    info: dict[str, Any] = {"running": True, "state": state}
    try:
        with urllib.request.urlopen(state["app"]["base_url"] + "/health", timeout=5) as resp:  # nosec B310
            info["version"] = json.loads(resp.read())["version"]
    except OSError as exc:
        info["version"] = f"unreachable ({exc})"
    try:
        import boto3

        ecs = boto3.client("ecs", endpoint_url=state["aws"]["endpoint_url"], region_name=state["aws"]["region"],
                           aws_access_key_id="testing", aws_secret_access_key="testing")  # nosec B106
        svc = ecs.describe_services(cluster=state["world"]["cluster"], services=[state["world"]["service"]])
        service = svc["services"][0]
        info["task_definition"] = service["taskDefinition"].rsplit("/", 1)[-1]
        info["deployments"] = [{"status": d["status"], "taskDefinition": d["taskDefinition"].rsplit("/", 1)[-1],
                                "running": d["runningCount"], "desired": d["desiredCount"],
                                "rollout": d.get("rolloutState")} for d in service["deployments"]]
    except Exception as exc:  # status must print what it can even when AWS is unhappy
        info["task_definition"] = f"unavailable ({type(exc).__name__})"
    return info


def review(home: Path, pr: int, login: str, approve: bool) -> dict[str, Any]:
    """Act as a sandbox reviewer on a pull request's current head."""
    import urllib.error
    import urllib.request

    state = running(home)
    if state is None:
        raise UsageError("the sandbox is not running: `invoke sandbox.up`")
    tokens = {v: k for k, v in state["github"]["tokens"].items()}
    if login not in tokens:
        raise UsageError(f"<command line>: no sandbox user {login!r}; users: {', '.join(sorted(tokens))} (at --as)")
    owner, repo = state["github"]["repo"].split("/")
    body = {"event": "APPROVE" if approve else "REQUEST_CHANGES",
            "body": "approved in the sandbox" if approve else "changes requested in the sandbox"}
    req = urllib.request.Request(f"{state['github']['base_url']}/repos/{owner}/{repo}/pulls/{pr}/reviews",
                                 method="POST", data=json.dumps(body).encode(),
                                 headers={"Authorization": f"token {tokens[login]}",
                                          "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # nosec B310 - our own loopback stand-in
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raise ExternalError(f"review PR #{pr} as {login}", f"GitHub stand-in answered {exc.code}",
                            exc.read().decode(errors="replace")[:200]) from None
