"""`invoke bench` prints every figure of issue #10 with its baseline and ratio.

The benchmark itself is not part of the suite (`invoke bench`, minutes on full fixtures).
Here its report's shape is checked on tiny fixtures (`--tiny`, every figure measured once,
in seconds): each figure is there, measured, with a baseline from the same run and a goal.
No timing is asserted: the numbers of a tiny run mean nothing, and speed targets live in
the benchmark itself.
"""

from __future__ import annotations

import pytest

import json
import subprocess
import sys

from conftest import REPO

pytestmark = pytest.mark.bench          # the slow tier (`-m slow`, or `-m bench` alone): it starts the sandbox


FIGURES = {   # name prefix -> has a baseline measured in the same run
    "startup: invoke --list": True,
    "startup: invoke runbook.list": True,
    "startup: invoke runbook.validate": True,
    "per step (": True,
    "journal: audit.verify (everything)": True,
    "journal: rebuild the run index from scratch": False,
    "journal: audit.list --since (2h window)": False,
    "journal: audit.show (one run)": False,
    "journal: audit.timeline (2h window)": False,
    "rollback-fast: command to first AWS call": True,
    "rollback-fast: engine's own time": True,
    "memory: production-release --env sandbox --dry-run": True,
}


def test_bench_reports_every_figure_with_its_baseline(tmp_path) -> None:
    done = subprocess.run([sys.executable, "-m", "benchmarks", "--tiny", "--json", "--fixture", str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode in (0, 1), done.stderr[-3000:]      # 1: a goal not met, which tiny fixtures may miss
    rows = json.loads(done.stdout)
    assert not [r for r in rows if r["goal"] == "(error)"], done.stdout
    names = [r["name"] for r in rows]
    for prefix, with_baseline in FIGURES.items():
        found = [r for r in rows if r["name"].startswith(prefix)]
        assert found, f"{prefix!r} missing from {names}"
        for row in found:
            assert isinstance(row["value"], float) and row["goal"]
            if with_baseline:
                assert row["baseline"] and row["ratio"] == row["value"] / row["baseline"]
    assert all(r["ok"] is not None for r in rows if r["goal"] != "(reported)")
