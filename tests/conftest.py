"""Shared fixtures: the repository root, the scenario project, an isolated state home."""

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
