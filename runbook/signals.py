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
WAKE = signal.SIGUSR1          # another thread's news for the main thread (a lost lock)
_state = threading.local()
_news: list[BaseException] = []


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
            raise pending


def _handler(signum: int, frame: Any) -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    if signum == WAKE:
        if not _news:
            return
        exc: BaseException = _news.pop(0)
    else:
        exc = Interrupted(f"interrupted by {NAMES.get(signal.Signals(signum), str(signum))}")
    if _depth() > 0:
        _state.pending = exc
        return
    raise exc


def tell_main(exc: BaseException) -> None:
    """From another thread: raise ``exc`` in the main thread at once (or right after the durable
    write in progress), even while it sleeps or waits in plugin code."""
    _news.append(exc)
    signal.pthread_kill(threading.main_thread().ident or 0, WAKE)


@contextlib.contextmanager
def handled() -> Iterator[None]:
    """Install the engine's handlers for the duration of a run (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in HANDLED + (WAKE,)}
    for s in HANDLED + (WAKE,):
        signal.signal(s, _handler)
    try:
        yield
    finally:
        from . import proc

        proc.stop_all()          # a command still running in a for_each thread goes with the run
        for s, h in previous.items():
            signal.signal(s, h)


def ignore_during_cleanup() -> None:
    """After an interruption, further signals must not cut the saving short."""
    for s in HANDLED:
        signal.signal(s, signal.SIG_IGN)
