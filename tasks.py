"""invoke entry point for this repository: the engine's tasks (``runbook.tasks``) for this project,
plus what stays here: ``reliability`` and ``bench``.

    invoke runbook NAME [--env ENV] [--param K=V]... [--dry-run] ...
    invoke runbook.list | runbook.show NAME | runbook.validate | runbook.checks
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

# invoke switches off writing compiled modules before it loads this file; give the interpreter its own
# setting back before the engine is imported (see runbook/tasks.py)
sys.dont_write_bytecode = bool(sys.flags.dont_write_bytecode)

from invoke import task  # noqa: E402
from invoke.exceptions import Exit  # noqa: E402

from runbook.tasks import namespace  # noqa: E402

HERE = Path(__file__).resolve().parent
ns = namespace(HERE)


@task(help={"full": "the full sweep (default: the short CI sample, about 2 minutes)"})
def reliability(c: Any, full: bool = False) -> None:
    """Reliability and security, measured: crashes, torn writes, lock races, hostile input, tampering, secrets, approvals."""
    from reliability.__main__ import main

    code = main(["--full"] if full else [])
    if code:
        raise Exit(code=code)


ns.add_task(reliability)


@task(help={"quick": "smaller fixtures (1,000 runs / 100,000 events, a 100-step runbook) and fewer repeats",
            "fixture": "keep the large state home in this folder between runs (default: a temp folder)",
            "only": "figure groups, comma-separated: startup,per_step,journal,rollback,memory",
            "json": "print the figures as JSON"})
def bench(c: Any, quick: bool = False, fixture: str | None = None, only: str | None = None,
          json: bool = False) -> None:
    """Speed, measured side by side: each figure with its baseline from the same run, the ratio and the goal."""
    import subprocess
    import sys

    args = [sys.executable, "-m", "benchmarks"] + (["--quick"] if quick else []) \
        + (["--fixture", fixture] if fixture else []) + (["--only", only] if only else []) + (["--json"] if json else [])
    code = subprocess.call(args, cwd=str(HERE))
    if code:
        raise Exit(code=code)


ns.add_task(bench)
