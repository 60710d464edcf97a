"""Command bodies for the team backend (``tasks.py`` wires them like ``runbook.cli``'s).

Each takes the project root first, writes to ``out`` and returns an exit code; errors
are RunbookErrors that ``tasks._call`` reports.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, TextIO

from ..errors import ExitCode, UsageError


def _env_data(root: Path, env: str | None) -> dict[str, Any]:
    from ..plan import load_environment
    from ..project import Project

    if not env:
        raise UsageError("<command line>: --env is required: the environment names the backend (at --env)")
    return load_environment(Project(Path(root)), env).data


def approve(root: Path, run_id: str, env: str | None = None, out: TextIO = sys.stdout) -> int:
    """`invoke runbook.approve RUN_ID --env E`: approve under this AWS principal."""
    from ..project import state_home
    from . import open_store
    from .approvals import approve as record

    store = open_store(_env_data(root, env), state_home(root))
    approval = record(store, run_id)
    out.write(f"Run {approval.run} approved by {approval.approver} (digest {approval.digest[:12]}, environment "
              f"{approval.environment}); any change to the plan or parameters voids it.\n")
    return ExitCode.OK


def backend_init(root: Path, env: str | None = None, out: TextIO = sys.stdout) -> int:
    """`invoke backend.init --env E`: create the table and the bucket."""
    from .admin import init

    for line in init(_env_data(root, env)):
        out.write(line + "\n")
    return ExitCode.OK


def backend_doctor(root: Path, env: str | None = None, out: TextIO = sys.stdout) -> int:
    """`invoke backend.doctor --env E`: what is wrong with the backend, if anything."""
    from .admin import doctor

    report = doctor(_env_data(root, env))
    for finding in report.findings:
        out.write(f"{finding}\n")
    out.write("ok: the backend is ready\n" if report.ok else "FAILED: fix the lines marked FAIL\n")
    return ExitCode.OK if report.ok else ExitCode.FAILED


def audit_verify(root: Path, run_id: str | None = None, env: str | None = None, out: TextIO = sys.stdout) -> int:
    """`invoke audit.verify [RUN_ID] [--env E]`: the chains, and on the team backend its objects too."""
    from ..audit import verify
    from . import store_for

    store = store_for(root, env)
    report = verify(store, store.find(run_id) if run_id else None)
    where = f"table {store.table} / bucket {store.bucket}" if getattr(store, "kind", "local") == "aws" else store.home
    if report.ok:
        out.write(f"ok: {report.runs} run(s), {report.records} record(s) and the ledger verify\n")
        return ExitCode.OK
    for problem in report.problems:
        out.write(f"{problem}\n")
    out.write(f"FAILED: {len(report.problems)} problem(s) in {where}\n")
    return ExitCode.FAILED
