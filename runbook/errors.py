"""The engine's exceptions: one root, each class knowing its exit code.

Only the command-line layer (``runbook.cli`` via ``tasks.py``) turns these into an
exit; the engine raises them and never prints or exits itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable


class ExitCode:
    """The exit codes of DESIGN.md, declared once."""

    OK = 0
    FAILED = 1
    INVALID = 2
    LOCKED = 3
    PARKED = 4
    INTERRUPTED = 130


_LINE_BREAKS = {ord(c): c.encode("unicode_escape").decode() for c in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"}


def format_path(path: Iterable[object]) -> str:
    """``("steps", 3, "verify", 0, "with")`` -> ``steps[3].verify[0].with``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and part and all(c.isalnum() or c in "_-" for c in part):
            out += ("." if out else "") + part
        else:
            out += f"[{part!r}]"
    return out


@dataclass(frozen=True, order=True)
class Diagnostic:
    """One problem in an input: where it is and what is wrong."""

    file: str
    line: int
    col: int
    message: str
    path: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}" if self.line else self.file
        at = f" (at {self.path})" if self.path else ""
        # one error, one line: text quoted from the input may hold any of the line boundaries Python knows
        message = self.message.translate(_LINE_BREAKS)
        return f"{where}: {message}{at}"


class RunbookError(Exception):
    """Root of every error the engine raises on purpose."""

    exit_code = ExitCode.FAILED

    def lines(self) -> list[str]:
        return [str(self)]


class InputError(RunbookError):
    """Invalid input (runbook, environment, parameters, answers): exit 2, all at once."""

    exit_code = ExitCode.INVALID

    def __init__(self, diagnostics: Iterable[Diagnostic | str]):
        self.diagnostics = list(diagnostics)
        super().__init__("\n".join(str(d) for d in self.diagnostics))

    def lines(self) -> list[str]:
        return [str(d) for d in self.diagnostics]


class UsageError(RunbookError):
    """A command used wrongly (unknown runbook name, ambiguous run id): exit 2."""

    exit_code = ExitCode.INVALID


class PluginError(RunbookError):
    """A plugin registry problem (a name registered twice, a bad schema): exit 2."""

    exit_code = ExitCode.INVALID


class CheckFailed(RunbookError):
    """A run stopped because a check failed or the operator aborted: exit 1."""

    exit_code = ExitCode.FAILED


class LockHeld(RunbookError):
    """The lock is held by someone else: exit 3."""

    exit_code = ExitCode.LOCKED


class Parked(RunbookError):
    """The run is saved and needs a person: exit 4."""

    exit_code = ExitCode.PARKED


class Interrupted(RunbookError):
    """SIGINT, SIGTERM or SIGHUP: the run was saved: exit 130."""

    exit_code = ExitCode.INTERRUPTED


class ExternalError(RunbookError):
    """A call to an outside system failed; names the operation and what to do."""

    exit_code = ExitCode.FAILED

    def __init__(self, operation: str, message: str, hint: str = "", original: BaseException | None = None):
        self.operation = operation
        self.hint = hint
        self.original = original
        text = f"{operation}: {message}"
        if hint:
            text += f" ({hint})"
        super().__init__(text)
