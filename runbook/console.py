"""What the operator sees: a compact line per step, progress while waiting, a summary.

The engine emits journal records; this consumes them. With a colour terminal it uses
rich; with NO_COLOR, or when output is not a terminal (CI, pipes), it prints plain
ASCII lines. Everything printed went through redaction first (records are redacted
before they are written, and so before they reach here).
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Any, Callable, Iterator, TextIO
from . import clock

CHECK_OUTPUT_LINES = 5       # the last lines of a passed check's output shown without --verbose
MARKS = {"succeeded": ("✓", "ok"), "failed": ("✗", "FAILED"), "skipped": ("-", "skipped"),
         "passed": ("✓", "ok"), "not-passed": ("✗", "FAIL")}


class Console:
    _status: Any = None          # the rich spinner shown now (nested waits reuse it)
    verbose: bool = False        # --verbose: command output shown as it is written
    redact: Any = None           # the session's redactor (its known secrets), for output shown as it comes

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None, plain: bool | None = None):
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        tty = hasattr(self.out, "isatty") and self.out.isatty()
        self.plain = plain if plain is not None else (not tty or bool(os.environ.get("NO_COLOR")))
        self._rich: Any = None
        self._step_started: dict[str, float] = {}

    @property
    def rich(self) -> Any:
        if self._rich is None and not self.plain:
            from rich.console import Console as RichConsole

            self._rich = RichConsole(file=self.out, highlight=False)
        return self._rich

    def line(self, text: str, style: str = "") -> None:
        if self.plain:
            self.out.write(text + "\n")
            self.out.flush()
        else:
            from rich.text import Text

            self.rich.print(Text(text, style=style) if style else Text(text))

    def output(self, stream: str, line: str) -> None:
        """A line a command writes, as it writes it (``--verbose``); redacted like everything shown."""
        from .redact import Redactor

        redact = self.redact or Redactor().text
        self.line(f"      {'!' if stream == 'stderr' else '|'} {redact(line)}", "dim")

    def mark(self, status: str) -> str:
        fancy, plain = MARKS.get(status, ("·", status))
        return plain if self.plain else fancy

    def show(self, text: str) -> None:
        """Context before a question (instructions, results so far)."""
        for ln in text.rstrip().splitlines():
            self.line("    " + ln, "dim")

    # -- the event stream ----------------------------------------------------------
    def event(self, rec: dict[str, Any]) -> None:
        kind = rec.get("type", "")
        data = rec.get("data") or {}
        if isinstance(data.get("each"), dict) and "step" in data:    # a for_each iteration: its value shown
            value = _short(data["each"].get("value"))
            data = {**data, "step": f"{data['step']} ({value})"}
            if "item" in data:
                data["item"] = f"{data['item']} ({value})"
        handler = getattr(self, "_on_" + kind.replace(".", "_"), None)
        if handler is not None:
            handler(data, rec)

    def _on_run_started(self, data: dict[str, Any], rec: dict[str, Any]) -> None:
        env = f" in {data['environment']}" if data.get("environment") else ""
        self.line(f"Run {rec['run']}: {data['runbook']}{env} by {rec.get('operator')}", "bold")

    def _on_session_started(self, data: dict[str, Any], rec: dict[str, Any]) -> None:
        if data.get("resume"):
            self.line(f"Resuming run {rec['run']} as {rec.get('operator')}", "bold")

    def _on_step_started(self, data: dict[str, Any], rec: dict[str, Any]) -> None:
        self._step_started[data["step"]] = clock.monotonic()
        title = f": {data['title']}" if data.get("title") else ""
        self.line(f"> {data['step']}{title}", "bold cyan")
        if data.get("instructions"):
            self.show(data["instructions"])

    def _on_item_result(self, data: dict[str, Any], rec: dict[str, Any]) -> None:
        if data.get("skipped"):
            status, text = "skipped", f"{data.get('summary', '')} (reason: {data.get('reason', '')})"
        else:
            status, text = ("passed" if data.get("passed") else "not-passed"), data.get("summary", "")
            if data.get("attempts") and not data.get("passed"):
                more = "; trying again" if data["attempt"] < data["attempts"] else ""
                text += f" (attempt {data['attempt']} of {data['attempts']}{more})"
        self.line(f"    {self.mark(status)} {data['item']}: {text}", "green" if status == "passed" else
                  "red" if status == "not-passed" else "yellow")
        tail = (data.get("evidence") or {}).get("stdout_tail") if isinstance(data.get("evidence"), dict) else None
        if status == "passed" and data.get("kind") == "check" and tail and not self.verbose:
            shown = str(tail).splitlines()
            for ln in shown[-CHECK_OUTPUT_LINES:]:        # what a check looked at, without --verbose
                self.line(f"        {ln}", "dim")
            if len(shown) > CHECK_OUTPUT_LINES:
                self.line(f"        ({len(shown) - CHECK_OUTPUT_LINES} earlier line(s) in the evidence)", "dim")

    def _on_prompt_answered(self, data: dict[str, Any], rec: dict[str, Any]) -> None:
        from .prompts import answer_text

        if data.get("source") != "interactive":
            self.line(f"    {data['id']}: {_short(answer_text(data.get('answer')))} ({data.get('source')})", "dim")

    def _on_step_finished(self, data: dict[str, Any], rec: dict[str, Any]) -> None:
        started = self._step_started.pop(data["step"], None)
        took = f" ({clock.monotonic() - started:.1f}s)" if started else ""
        reason = f": {data['reason']}" if data.get("reason") else ""
        status = data["status"]
        self.line(f"  {self.mark(status)} {data['step']} {status}{took}{reason}",
                  {"succeeded": "green", "failed": "red"}.get(status, "yellow"))

    def _on_child_started(self, data: dict[str, Any], rec: dict[str, Any]) -> None:
        self.line(f"    starting linked run {data['run']} of {data.get('runbook')}", "bold")

    def _on_lock_takeover(self, data: dict[str, Any], rec: dict[str, Any]) -> None:
        self.line(f"  took over lock {data.get('key')!r} from run {data.get('from_run')} "
                  f"({data.get('from_operator')}): {data.get('reason')}", "bold red")

    def summary(self, run_id: str, status: str, reason: str = "", runbook: str = "", deviations: int = 0,
                over: bool = False) -> None:
        from . import hints
        from .state import outcome_text

        self.line("")
        tail = f" ({reason})" if reason else ""
        self.line(f"Run {run_id} {outcome_text(status, deviations)}{tail}.", "bold")
        if status in ("parked", "interrupted", "failed") and not over:
            self.line(f"  resume:  {hints.resume(run_id)}")
        if status == "failed" and not over:
            self.line(f"  or close it: {hints.abandon(run_id)}")
        self.line(f"  review:  {hints.show(run_id)}   verify: {hints.verify(run_id)}")

    @contextmanager
    def waiting(self, text: str, announce: bool = False) -> Iterator[Any]:
        """While something runs or waits: a spinner (rich) or throttled plain lines; yields an update function.
        ``announce``: a wait a person is part of (approvals): plain output says so at once."""
        if self.plain:
            last = [clock.monotonic() if announce else 0.0]
            if announce:
                self.line(f"    ... {text}")

            def update(msg: str) -> None:
                if clock.monotonic() - last[0] >= 10:
                    last[0] = clock.monotonic()
                    self.line(f"    ... {msg}")
            yield update
            return
        from rich.text import Text   # text from runbooks, plugins and commands is never rich markup

        if self._status is not None:      # nested: reuse the spinner already shown
            nested = self._status
            yield lambda msg: nested.update(Text(msg))
            return
        with self.rich.status(Text(text)) as status:
            self._status = status
            try:
                yield lambda msg: status.update(Text(msg))
            finally:
                self._status = None


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) < 120 else text[:117] + "..."


class _Quiet:
    def __enter__(self) -> Callable[[str], None]:
        return lambda message: None

    def __exit__(self, *exc: Any) -> None:
        return None


def quiet() -> Any:
    """A wait shown nowhere (no console): its progress updates go nowhere."""
    return _Quiet()
