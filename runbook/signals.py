"""SIGINT, SIGTERM and SIGHUP: finish the durable write in progress, then stop the run.

The engine installs its own handlers for the length of a run (invoke would otherwise
turn Ctrl-C into exit 1). A signal outside a durable write raises Interrupted at once;
inside one, it is held until the write (and its fsync) is complete.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any, Iterator

from .errors import Interrupted

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
NAMES = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP"}
_state = threading.local()


def _depth() -> int:
    return getattr(_state, "depth", 0)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold signals while a durable write is in progress."""
    _state.depth = _depth() + 1
    try:
        yield
    finally:
        _state.depth = _depth() - 1
        pending = getattr(_state, "pending", None)
        if _depth() == 0 and pending is not None:
            _state.pending = None
            raise Interrupted(f"interrupted by {NAMES.get(pending, pending)}")


def _handler(signum: int, frame: Any) -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    if _depth() > 0:
        _state.pending = signum
        return
    raise Interrupted(f"interrupted by {NAMES.get(signum, signum)}")


@contextlib.contextmanager
def handled() -> Iterator[None]:
    """Install the engine's handlers for the duration of a run (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in HANDLED}
    for s in HANDLED:
        signal.signal(s, _handler)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def ignore_during_cleanup() -> None:
    """After an interruption, further signals must not cut the saving short."""
    for s in HANDLED:
        signal.signal(s, signal.SIG_IGN)
