"""In-process engine tests: each test loads its own copy of a scenario project's plugins."""

from __future__ import annotations

from typing import Iterator

import pytest

from runbook import plugins


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    """A project's plugins are registered by name once per process: forget them after each test."""
    plugins.load(None)                      # the built-ins, registered once for the whole session
    saved = plugins.reset_for_tests()
    yield
    plugins.restore_for_tests(saved)
