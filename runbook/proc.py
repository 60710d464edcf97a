"""The one door for subprocesses: argument lists only, a timeout, captured output."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence
from . import clock


@dataclass
class Completed:
    argv: list[str]
    exit_code: int
    stdout: str
    stderr: str
    duration: float
    timed_out: bool = False


_LIVE: set[int] = set()           # process groups of the commands running now (one per command)
_LIVE_LOCK = threading.Lock()


def run(argv: Sequence[str], cwd: Path | str | None = None, env: Mapping[str, str] | None = None,
        timeout: float | None = None, input_text: str | None = None,
        on_line: Callable[[str, str], None] | None = None,
        on_start: Callable[[int], None] | None = None) -> Completed:
    """Run a command (never through a shell) and capture its output.

    ``env`` adds to the inherited environment. A missing program is exit 127, a
    timeout exit 124, as a shell would report them. ``on_line(stream, line)`` sees each
    line of stdout and stderr as it is written (``--verbose``). The command runs in its own
    process group (its pid is the group's id), told to ``on_start(pid)`` once it runs: a
    timeout, Ctrl-C or the end of the run stops the whole group (the command and what it
    started), and a resume after the engine was killed can find it still running.
    """
    argv = [str(a) for a in argv]
    full_env = dict(os.environ)
    if env:
        full_env.update({str(k): str(v) for k, v in env.items()})
    started = clock.monotonic()
    try:
        child = subprocess.Popen(argv, cwd=str(cwd) if cwd else None, env=full_env, text=True, errors="replace",
                                 stdin=subprocess.PIPE if input_text is not None else subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    except FileNotFoundError:
        return Completed(argv, 127, "", f"{argv[0]}: command not found", clock.monotonic() - started)
    except NotADirectoryError:
        return Completed(argv, 126, "", f"working folder {cwd} is not a folder", clock.monotonic() - started)
    with _LIVE_LOCK:
        _LIVE.add(child.pid)
    try:
        if on_start is not None:
            on_start(child.pid)
        if on_line is not None and input_text is None:
            return _streamed(child, argv, timeout, on_line, started)
        try:
            out, err = child.communicate(input_text, timeout=timeout)
        except subprocess.TimeoutExpired:
            stop_group(child.pid)
            out, err = child.communicate()
            return Completed(argv, 124, out or "", err or "", clock.monotonic() - started, timed_out=True)
        return Completed(argv, child.returncode, out, err, clock.monotonic() - started)
    except BaseException:           # Ctrl-C, a fence: the command and its children go too
        stop_group(child.pid)
        child.wait()
        raise
    finally:
        with _LIVE_LOCK:
            _LIVE.discard(child.pid)


def _streamed(child: subprocess.Popen[str], argv: list[str], timeout: float | None,
              on_line: Callable[[str, str], None], started: float) -> Completed:
    """``run`` with each output line handed to ``on_line`` as it comes (a reader thread per stream)."""
    chunks: dict[str, list[str]] = {"stdout": [], "stderr": []}

    def read(name: str, stream: Any) -> None:
        for line in stream:
            chunks[name].append(line)
            on_line(name, line.rstrip("\n"))

    readers = [threading.Thread(target=read, args=(n, s), daemon=True)
               for n, s in (("stdout", child.stdout), ("stderr", child.stderr))]
    for r in readers:
        r.start()
    timed_out = False
    try:
        child.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_group(child.pid)
        child.wait()
        timed_out = True
    for r in readers:
        r.join(timeout=5)
    out, err = "".join(chunks["stdout"]), "".join(chunks["stderr"])
    return Completed(argv, 124 if timed_out else child.returncode, out, err, clock.monotonic() - started, timed_out)


def stop_group(pgid: int) -> None:
    """Kill a command's process group (SIGKILL: it has been told to stop, or its time is up)."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def stop_all() -> None:
    """Stop every command still running (a run that ends leaves none behind, even from threads)."""
    with _LIVE_LOCK:
        groups = list(_LIVE)
    for pgid in groups:
        stop_group(pgid)


def start_time(pid: int) -> str:
    """When process ``pid`` started, as the kernel counts it (ticks since boot; '' when unknown):
    with the pid, it names one process, never a later one that reused the pid."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read().decode(errors="replace")
    except OSError:
        return ""
    fields = stat[stat.rfind(")") + 2:].split()
    return fields[19] if len(fields) > 19 else ""


def group_alive(pgid: int, started: str = "") -> bool:
    """A recorded command's process group still has a live process (a zombie, dead but not yet
    reaped by a stopped parent, is not; a leader that is not the very process recorded, by its
    start time, means the pid was reused)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if started:
        now = start_time(pgid)
        if now and now != started:
            return False
    members = _group_states(pgid)
    return members is None or any(state not in "ZX" for state in members)


def _group_states(pgid: int) -> list[str] | None:
    """The states (R, S, Z, ...) of the processes in group ``pgid``, from /proc (None without it)."""
    try:
        names = os.listdir("/proc")
    except OSError:
        return None
    states = []
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read().decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 2 and fields[2] == str(pgid):
            states.append(fields[0])
    return states


def tail(text: str, lines: int = 20, max_chars: int = 4000) -> str:
    """The last lines of an output, bounded in size."""
    parts = text.rstrip("\n").splitlines()[-lines:]
    out = "\n".join(parts)
    return out[-max_chars:]
