"""Shared fixtures: the repository root, the scenario project, an isolated state home; the tiers.

Two tiers (README, "Tests"): `python -m pytest -q` runs the fast tier, everything not marked
``slow``; `python -m pytest -q -m slow` the rest. ``slow`` comes with each kind of long test:
``sandbox`` (end-to-end runs against the sandbox), ``sweep`` (the reliability sweeps),
``bench`` (the benchmark's report) and ``browser`` (headless Chromium); `-m browser` picks one.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCENARIOS = REPO / "tests" / "scenarios"
PROJECT = SCENARIOS / "project"


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own state home and runs from the repository root."""
    home = tmp_path / "state"
    monkeypatch.setenv("RUNBOOK_HOME", str(home))
    monkeypatch.delenv("RUNBOOK_ROOT", raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    for key in list(os.environ):
        if key.startswith("RUNBOOK_PARAM_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(REPO)
    return home


@pytest.fixture
def state_home(_isolated: Path) -> Path:
    return _isolated


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def project() -> Path:
    return PROJECT


SLOW_KINDS = {"sandbox": "end-to-end runs against the sandbox (its own process, real time)",
              "sweep": "the reliability sweeps (every kill and fault point)",
              "bench": "the benchmark's report (`invoke bench`)",
              "browser": "the HTML reports in headless Chromium"}


def pytest_configure(config: pytest.Config) -> None:
    if not config.option.markexpr and not any("::" in str(a) for a in config.args):
        config.option.markexpr = "not slow"       # `python -m pytest -q` is the fast tier; a test named by id runs


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test of a slow kind is ``slow`` too (before ``-m`` selects)."""
    for item in items:
        if any(item.get_closest_marker(kind) for kind in SLOW_KINDS) and not item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.slow)


from recorded import bad_release, healthy_release  # noqa: E402,F401  (session-scoped recordings, tests/recorded.py)
