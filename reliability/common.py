"""What every reliability figure shares: the Figure it reports, timing, state homes, and an
in-process `audit.verify` (the figure modules import this one; nothing here imports them)."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parent.parent
PROJECT = Path(__file__).resolve().parent / "project"


@dataclass
class Figure:
    """One line of the report."""

    name: str
    tried: int = 0
    held: int = 0
    failed: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def ok(self, note: str = "") -> None:
        self.tried += 1
        self.held += 1
        if note:
            self.notes.append(note)

    def bad(self, note: str) -> None:
        self.tried += 1
        self.failed += 1
        self.notes.append("FAILED " + note)

    def as_tuple(self) -> tuple[str, int, int, int, float, list[str]]:
        return (self.name, self.tried, self.held, self.failed, round(self.seconds, 1), self.notes)


@contextlib.contextmanager
def timed(fig: Figure) -> Iterator[Figure]:
    start = time.monotonic()
    try:
        yield fig
    except Exception as exc:  # a crash of the suite itself is a failure of the figure, not a traceback
        fig.bad(f"the suite raised {type(exc).__name__}: {exc}")
    finally:
        fig.seconds = time.monotonic() - start


@contextlib.contextmanager
def state_home(home: Path) -> Iterator[Path]:
    """RUNBOOK_HOME for in-process engine calls."""
    old = os.environ.get("RUNBOOK_HOME")
    os.environ["RUNBOOK_HOME"] = str(home)
    try:
        yield home
    finally:
        if old is None:
            os.environ.pop("RUNBOOK_HOME", None)
        else:
            os.environ["RUNBOOK_HOME"] = old


def project_copy(dest: Path) -> Path:
    """A writable copy of the synthetic reliability project."""
    target = dest / "project"
    shutil.copytree(PROJECT, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


_ONE_HOME = threading.Lock()     # state_home sets RUNBOOK_HOME for the process: one verification at a time


def verify_home(root: Path, home: Path) -> tuple[int, str]:
    """`audit.verify` in-process: exit code and output."""
    from runbook import cli
    from runbook.errors import RunbookError

    out = io.StringIO()
    with _ONE_HOME, state_home(home):
        try:
            code = cli.audit_verify(root, None, out=out)
        except RunbookError as exc:
            return cli.report_error(exc, out), out.getvalue()
    return code, out.getvalue()
