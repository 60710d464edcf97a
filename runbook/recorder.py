"""The one place journal and ledger records are built and written.

A ``Recorder`` holds one run's journal: records are buffered, redacted, written as one
group commit (fenced by the run's lock when it holds one) and folded into the run's
state; the ledger gets the run's start and its anchors. The session's own ledger records
(takeovers, unlocks) and a run's final record written from outside it (abandon, closing
a fenced run) are built here too.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from .journal import utcnow
from .model import LedgerRecord
from .faults import NONE, Faults
from .redact import Redactor
from .state import Event, RunState, apply


# Records that make a step worth anchoring at its end: something was done or decided.
ACTED = frozenset({Event.ITEM_INTENT, Event.PROMPT, Event.CHILD_STARTED, Event.CHILD_FINISHED, Event.TAKEOVER,
                   Event.FORCED, Event.OFFER})


def record(run_id: str, operator: str, kind: Event, data: dict[str, Any]) -> dict[str, Any]:
    """A journal record before chaining (the journal adds ``prev`` and ``seq``)."""
    return {"time": utcnow(), "run": run_id, "operator": operator, "type": kind.value, "data": data}


def anchor(store: Any, run_id: str, journal: Any) -> dict[str, Any]:
    """Anchor a journal's length and head in the ledger."""
    return store.ledger.append({"type": LedgerRecord.ANCHOR.value, "run": run_id, "length": journal.length,
                                "head": journal.head})


def append_final(store: Any, run_id: str, operator: str, redactor: Redactor, kind: Event,
                 data: dict[str, Any]) -> None:
    """A run's final record written from outside the run (abandon; a takeover that succeeded
    closing the run it fenced), anchored in the ledger."""
    journal = store.journal(run_id)
    journal.append([record(run_id, operator, kind, redactor.data(data))])
    anchor(store, run_id, journal)


def ledger_event(store: Any, kind: LedgerRecord, **fields: Any) -> dict[str, Any]:
    """A ledger record of the session's own (a lock takeover, an unlock) or of a team-backend
    approval: the recorder is the one writer of the ledger."""
    return store.ledger.append({"type": kind.value, **fields})


@dataclass
class Recorder:
    """One run's journal: buffered, redacted, fenced group commits folded into ``state``."""

    store: Any
    run_id: str
    operator: str
    redactor: Redactor
    fence: Callable[[], None] | None = None
    console: Any = None
    faults: Faults = NONE                       # the fault hook the command layer installed (tests)
    state: RunState = field(default_factory=RunState)
    _buffer: list[dict[str, Any]] = field(default_factory=list)
    _journal: Any = None
    _lock: Any = field(default_factory=threading.RLock)   # for_each iterations in threads
    acted: bool = False          # since the last anchor: an action, an answer, a child run (see ACTED)

    def open(self, create: bool, records: list[dict[str, Any]] | None = None) -> None:
        """Create the run's journal, or open it and fold what it holds (a torn tail is cut and kept)."""
        if create:
            self.store.create_run(self.run_id)
        self._journal = self.store.journal(self.run_id, before_write=self.fence, repair=not create)
        for rec in records or []:
            apply(self.state, rec)
        if self._journal.repaired:
            self.emit(Event.REPAIRED, self._journal.repaired)

    def emit(self, kind: Event, data: dict[str, Any], flush: bool = False) -> None:
        """Buffer one record (redacted), show it, and write the buffer when ``flush``."""
        with self._lock:
            self._emit(kind, data, flush)

    def _emit(self, kind: Event, data: dict[str, Any], flush: bool) -> None:
        rec = record(self.run_id, self.operator, kind, self.redactor.data(data))
        self._buffer.append(rec)
        self.acted = self.acted or kind in ACTED
        if self.console is not None:
            self.console.event(rec)
        if flush:
            self.flush()

    def flush(self, anchor_it: bool = False) -> None:
        """Write the buffered records as one group commit; anchor the journal in the ledger when asked."""
        with self._lock:
            self._flush(anchor_it)

    def _flush(self, anchor_it: bool) -> None:
        if self._buffer:
            written = self._journal.append(self._buffer)
            self._buffer = []
            for rec in written:
                apply(self.state, rec)
            if anchor_it:
                self.faults.crash("anchor", written[-1]["type"])     # the window verify and complete_anchor know about
        if anchor_it:
            anchor(self.store, self.run_id, self._journal)
            self.acted = False

    def start(self, fields: dict[str, Any]) -> dict[str, Any]:
        """The run's ``run.start`` in the ledger (its journal's first record points at it)."""
        return self.store.ledger.append({"type": LedgerRecord.START.value, "run": self.run_id, **fields})

    def drop(self) -> None:
        """Forget what is buffered (a fenced run writes nothing more)."""
        self._buffer = []

