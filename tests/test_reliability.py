"""The short reliability sweep (`invoke reliability`): every figure at its goal, nothing failed.

The approval figure skips its pytest sub-run here: those tests run in this same suite.
"""

from __future__ import annotations

import pytest

from reliability import suite

pytestmark = pytest.mark.sweep          # the slow tier: `python -m pytest -q -m slow` (or -m sweep)


@pytest.mark.parametrize("figure", [suite.crash_points, suite.torn_writes, suite.lock_races, suite.hostile_input,
                                    suite.tampering, suite.secrets_kept_out],
                         ids=lambda f: f.__name__)
def test_figure_holds(figure) -> None:
    fig = figure(True)
    assert fig.tried > 0 and fig.failed == 0, "\n".join(fig.notes)
    assert fig.held == fig.tried


def test_forged_approvals_are_refused() -> None:
    fig = suite.approvals(True, through_pytest=False)
    assert fig.tried >= 5 and fig.failed == 0, "\n".join(fig.notes)


def test_hostile_input_is_large_enough() -> None:
    assert len(suite.HANDWRITTEN_RUNBOOKS) + len(suite.HANDWRITTEN_ENVS) + len(suite.HANDWRITTEN_ANSWERS) \
        + len(suite.HANDWRITTEN_PARAMS) >= 60


def test_main_prints_the_figures(capsys: pytest.CaptureFixture[str]) -> None:
    from reliability.__main__ import main

    assert main(["--only", "torn"]) == 0
    out = capsys.readouterr().out
    assert "torn journal writes" in out and "tried" in out and "all held" in out
