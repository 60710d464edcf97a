"""The one door for subprocesses: argument lists only, a timeout, captured output."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence


@dataclass
class Completed:
    argv: list[str]
    exit_code: int
    stdout: str
    stderr: str
    duration: float
    timed_out: bool = False


def run(argv: Sequence[str], cwd: Path | str | None = None, env: Mapping[str, str] | None = None,
        timeout: float | None = None, input_text: str | None = None,
        on_line: Callable[[str, str], None] | None = None) -> Completed:
    """Run a command (never through a shell) and capture its output.

    ``env`` adds to the inherited environment. A missing program is exit 127, a
    timeout exit 124, as a shell would report them. ``on_line(stream, line)`` sees each
    line of stdout and stderr as it is written (``--verbose``).
    """
    argv = [str(a) for a in argv]
    full_env = dict(os.environ)
    if env:
        full_env.update({str(k): str(v) for k, v in env.items()})
    started = time.monotonic()
    if on_line is not None and input_text is None:
        return _streamed(argv, cwd, full_env, timeout, on_line, started)
    try:
        proc = subprocess.run(argv, cwd=str(cwd) if cwd else None, env=full_env, capture_output=True,
                              text=True, errors="replace", timeout=timeout, input=input_text,
                              stdin=None if input_text is not None else subprocess.DEVNULL)
    except FileNotFoundError:
        return Completed(argv, 127, "", f"{argv[0]}: command not found", time.monotonic() - started)
    except NotADirectoryError:
        return Completed(argv, 126, "", f"working folder {cwd} is not a folder", time.monotonic() - started)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        return Completed(argv, 124, out, err, time.monotonic() - started, timed_out=True)
    return Completed(argv, proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started)


def _streamed(argv: list[str], cwd: Path | str | None, env: dict[str, str], timeout: float | None,
              on_line: Callable[[str, str], None], started: float) -> Completed:
    """``run`` with each output line handed to ``on_line`` as it comes (a reader thread per stream)."""
    import threading

    try:
        proc = subprocess.Popen(argv, cwd=str(cwd) if cwd else None, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace")
    except FileNotFoundError:
        return Completed(argv, 127, "", f"{argv[0]}: command not found", time.monotonic() - started)
    except NotADirectoryError:
        return Completed(argv, 126, "", f"working folder {cwd} is not a folder", time.monotonic() - started)
    chunks: dict[str, list[str]] = {"stdout": [], "stderr": []}

    def read(name: str, stream: Any) -> None:
        for line in stream:
            chunks[name].append(line)
            on_line(name, line.rstrip("\n"))

    readers = [threading.Thread(target=read, args=(n, s), daemon=True)
               for n, s in (("stdout", proc.stdout), ("stderr", proc.stderr))]
    for r in readers:
        r.start()
    timed_out = False
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        timed_out = True
    except BaseException:           # Ctrl-C, a fence: the command goes too
        proc.kill()
        proc.wait()
        raise
    for r in readers:
        r.join(timeout=5)
    out, err = "".join(chunks["stdout"]), "".join(chunks["stderr"])
    return Completed(argv, 124 if timed_out else proc.returncode, out, err, time.monotonic() - started, timed_out)


def tail(text: str, lines: int = 20, max_chars: int = 4000) -> str:
    """The last lines of an output, bounded in size."""
    parts = text.rstrip("\n").splitlines()[-lines:]
    out = "\n".join(parts)
    return out[-max_chars:]
