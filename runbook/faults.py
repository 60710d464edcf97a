"""Crash and failure injection, passed in: the reliability suite's and the tests' fault hook.

Library code never reads the environment for it: the command layer builds one ``Faults``
from ``RUNBOOK_CRASH_AT`` / ``RUNBOOK_FAIL_AT`` (:meth:`Faults.from_env`, README
"Reliability") and hands it to the Session, which gives it to every Runner and Recorder
of the run; everything else gets ``NONE`` (off). A test in process injects its own, with
its own way to die (``kill``).
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping


def _kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@dataclass(frozen=True)
class Faults:
    """``crash_at``: ``STEP.ITEM:POINT`` (points: before-intent, after-intent, after-effect; or
    ``anchor:RECORD-TYPE``) where the process dies; ``fail_at``: ``[RUNBOOK/]STEP.ITEM`` items
    that fail (an action after its intent, without its effect; ``STEP.approval`` refuses a gate)."""

    crash_at: str = ""
    fail_at: tuple[str, ...] = ()
    kill: Callable[[], None] = field(default=_kill_self, compare=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> "Faults":
        """The hook the command layer installs: from ``RUNBOOK_CRASH_AT`` and ``RUNBOOK_FAIL_AT``."""
        fail = tuple(s for s in (environ.get("RUNBOOK_FAIL_AT") or "").split(",") if s)
        return cls(environ.get("RUNBOOK_CRASH_AT") or "", fail)

    def crash(self, target: str, point: str) -> None:
        """Die right here when this is the crash point."""
        if not self.crash_at:
            return
        where, _, at = self.crash_at.rpartition(":")
        if where == target and at == point:
            self.kill()

    def failing(self, target: str, runbook: str = "") -> Any:
        """A failed Outcome for an item named in ``fail_at`` (``RUNBOOK/`` picks one runbook's item
        where a linked run has the same ``STEP.ITEM``), else None."""
        if self.fail_at and (target in self.fail_at or f"{runbook}/{target}" in self.fail_at):
            from .plugins import Outcome

            return Outcome.fail(f"failed by RUNBOOK_FAIL_AT={target} (test hook)", {"fail_at": target})
        return None


NONE = Faults()
