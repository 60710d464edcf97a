"""The `sandbox.*` commands: up, down, reset, status, review."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TextIO

from ..backends import store_of
from ..errors import ExitCode


def _bad(state: dict) -> str:
    return f", bad version {state['bad_version']}" if state.get("bad_version") else ""


def up(root: Path, scenario: str = "healthy", bad_version: str | None = None, out: TextIO = sys.stdout) -> int:
    from . import control

    store = store_of(root)
    state = control.up(store.home, scenario, bad_version=bad_version)
    out.write(f"sandbox up (scenario {state['scenario']}{_bad(state)}, pid {state['pid']}) under "
              f"{store.home / 'sandbox'}\n")
    out.write(f"  AWS (moto):  {state['aws']['endpoint_url']}\n  GitHub:      {state['github']['base_url']}\n"
              f"  app:         {state['app']['base_url']}\n  git origin:  {state['git']['remote']}\n")
    out.write("  next: invoke runbook production-release --env sandbox\n")
    return ExitCode.OK


def down(root: Path, out: TextIO = sys.stdout) -> int:
    from . import control

    stopped = control.down(store_of(root).home)
    out.write("sandbox stopped\n" if stopped else "sandbox was not running\n")
    return ExitCode.OK


def reset(root: Path, scenario: str = "healthy", bad_version: str | None = None, out: TextIO = sys.stdout) -> int:
    from . import control

    state = control.reset(store_of(root).home, scenario, bad_version)
    out.write(f"sandbox reset to a fresh world (scenario {scenario}{_bad(state)})\n")
    return ExitCode.OK


def status(root: Path, as_json: bool = False, out: TextIO = sys.stdout) -> int:
    from . import control

    info = control.status(store_of(root).home)
    if as_json:
        out.write(json.dumps(info, indent=2, default=str) + "\n")
        return ExitCode.OK
    if not info["running"]:
        out.write("sandbox crashed (its process is gone): `invoke sandbox.up` resets it\n" if info.get("crashed")
                  else "sandbox is not running: `invoke sandbox.up`\n")
        return ExitCode.OK
    st = info["state"]
    out.write(f"sandbox up: scenario {st['scenario']}{_bad(st)}, pid {st['pid']}, since {st['started']}\n")
    out.write(f"  AWS (moto):  {st['aws']['endpoint_url']}\n  GitHub:      {st['github']['base_url']}\n"
              f"  app:         {st['app']['base_url']} serving {info.get('version')}\n"
              f"  git origin:  {st['git']['remote']}\n")
    out.write(f"  service {st['world']['cluster']}/{st['world']['service']} on {info.get('task_definition')}\n")
    for d in info.get("deployments", []):
        out.write(f"    {d['status']:<8} {d['taskDefinition']}  running {d['running']}/{d['desired']}  "
                  f"{d['rollout']}\n")
    return ExitCode.OK


def review(root: Path, pr: int, login: str, approve: bool, out: TextIO = sys.stdout) -> int:
    from . import control

    review = control.review(store_of(root).home, int(pr), login, approve)
    out.write(f"PR #{pr}: {review.get('state')} by {login} on {str(review.get('commit_id'))[:12]}\n")
    return ExitCode.OK
