"""Releases recorded once per test session, for the tests that only read what a run wrote.

A sandbox release takes about a minute. The tests that read its journal, its reports and
its audit output share one recording of each kind instead of running their own:

* ``healthy_release``: `production-release --env sandbox` with the shipped answers, scenario
  ``healthy`` (exit 0);
* ``bad_release``: the same in scenario ``bad-release``: verification fails, the operator's
  answers accept the rollback offer, `rollback-fast` and `post-rollback` run linked (exit 1).

Each is recorded the first time a test asks for it, in its own state home, and its sandbox
stays up until the session ends (a reader may ask the app which version it serves). Readers
must not add runs to the home: a test that starts another run works on ``clone_home`` (a
copy of the state home that shares the recorded sandbox's processes but not its journals).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Iterator

import pytest

from helpers import REPO, invoke

ANSWERS = REPO / "answers" / "sandbox"
OPERATOR = "release@menotime.example"


def run(home: Path, *args: str, scenario: str = "healthy", timeout: float = 600) -> Any:
    return invoke(*args, root=REPO, home=home, timeout=timeout,
                  env={"RUNBOOK_SANDBOX_SCENARIO": scenario, "RUNBOOK_OPERATOR": OPERATOR})


def journals(home: Path) -> dict[str, list[dict[str, Any]]]:
    """runbook name -> records of its (latest) run."""
    out: dict[str, list[dict[str, Any]]] = {}
    for folder in sorted((home / "runs").iterdir()):
        records = [json.loads(line) for line in (folder / "journal.jsonl").read_text().splitlines()]
        out[records[0]["data"]["runbook"]] = records
    return out


def _record(factory: pytest.TempPathFactory, scenario: str, expect: int) -> Iterator[dict[str, Any]]:
    from runbook.sandbox import control

    base = factory.mktemp(f"recorded-{scenario}")
    home = base / "home"
    try:
        done = run(home, "runbook", "production-release", "--env", "sandbox", "--answers",
                   str(ANSWERS / "production-release.yaml"), "--non-interactive", scenario=scenario)
        assert done.returncode == expect, done.stdout[-3000:] + done.stderr
        runs = journals(home)
        yield {"home": home, "base": base, "scenario": scenario, "result": done, "journals": runs,
               "runs": {name: records[0]["run"] for name, records in runs.items()}}
    finally:
        control.down(home)


@pytest.fixture(scope="session")
def healthy_release(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    yield from _record(tmp_path_factory, "healthy", 0)


@pytest.fixture(scope="session")
def bad_release(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    yield from _record(tmp_path_factory, "bad-release", 1)


def clone_home(recorded: dict[str, Any], dest: Path) -> Path:
    """A copy of a recorded state home to add runs to. Its sandbox record still names the
    recorded sandbox's processes: use it for runs that stop before they change the world, and
    never call `control.down` on it (the session's recording does that)."""
    shutil.copytree(recorded["home"], dest, ignore=shutil.ignore_patterns("*.lock-tmp*"))
    return dest
