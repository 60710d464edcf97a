"""Time, as one seam: the only module of the engine that reads the clock or sleeps.

``now()`` (aware UTC datetime), ``time_s()`` (epoch seconds), ``monotonic()``, ``sleep()`` and ``wait_until()`` (the one
poll loop) go through the installed clock: the real one wherever a person runs the tool,
a :class:`VirtualClock` in tests that prove logic rather than timing (a 20 s monitoring
window passes at once: ``sleep`` advances virtual time instead of waiting).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Callable, Iterator, TypeVar
from contextlib import contextmanager

T = TypeVar("T")


class RealClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.timezone.utc)

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class VirtualClock:
    """Time that passes only when someone sleeps (threads share it; each sleep advances it)."""

    def __init__(self, start: dt.datetime | None = None):
        self._lock = threading.Lock()
        self._start = start or dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
        self._elapsed = 0.0

    def now(self) -> dt.datetime:
        with self._lock:
            return self._start + dt.timedelta(seconds=self._elapsed)

    def time(self) -> float:
        return self.now().timestamp()

    def monotonic(self) -> float:
        with self._lock:
            return self._elapsed

    def sleep(self, seconds: float) -> None:
        time.sleep(0)            # let other threads run, as a real sleep would
        if seconds > 0:
            self.advance(seconds)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._elapsed += seconds


_clock: RealClock | VirtualClock = RealClock()


def now() -> dt.datetime:
    return _clock.now()


def time_s() -> float:
    """Seconds since the epoch (``time.time()``)."""
    return _clock.time()


def monotonic() -> float:
    return _clock.monotonic()


def sleep(seconds: float) -> None:
    _clock.sleep(seconds)


def wait_until(predicate: Callable[[], T], timeout: float | None, interval: float,
               on_tick: Callable[[float], None] | None = None, sleep: bool = True) -> T:
    """Call ``predicate`` every ``interval`` seconds until it returns something true (returned) or
    no further try fits in ``timeout`` seconds (its last value is returned); ``timeout`` None
    waits for ever. ``on_tick(seconds_waited)`` runs after each unsuccessful try (progress, a
    heartbeat); with ``sleep=False`` it is ``on_tick`` that waits the interval and acts."""
    started = monotonic()
    while True:
        value = predicate()
        waited = monotonic() - started
        if value or (timeout is not None and (waited + interval > timeout or waited >= timeout)):
            return value
        if on_tick is not None:
            on_tick(waited)
        if sleep:
            _clock.sleep(interval)


@contextmanager
def installed(clock: RealClock | VirtualClock) -> Iterator[RealClock | VirtualClock]:
    """Use ``clock`` for the duration (tests)."""
    global _clock
    previous, _clock = _clock, clock
    try:
        yield clock
    finally:
        _clock = previous
