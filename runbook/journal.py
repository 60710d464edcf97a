"""The audit journal and the ledger: append-only JSON lines in a SHA-256 chain.

Every line starts with ``{"prev":"<64 hex>","seq":N,`` where ``prev`` is the SHA-256 of
the raw bytes of the line before (64 zeros for the first), so verification hashes raw
bytes and never parses JSON. Events that belong together are written with one
``write`` and one ``fsync`` (group commit); a new file's folder is fsynced too, and an
fsync error stops the run. The ledger, chained the same way, records each run's start
and, at step and status boundaries, its length and head hash, so a cut tail or a deleted
run is detected.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import operator
import os
import threading
import re
from dataclasses import dataclass
from pathlib import Path
from itertools import chain
from typing import Any, Callable, Iterable, Iterator

from . import clock
from .errors import RunbookError
from .model import LedgerRecord

ZERO = "0" * 64
PREFIX = b'{"prev":"'
PREFIX_LEN = len(PREFIX)


class JournalError(RunbookError):
    """The journal could not be written durably: the run stops."""

    exit_code = 1


def utcnow() -> str:
    return clock.now().strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def fsync_dir(path: Path) -> None:
    fd = os.open(str(path), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, durable: bool = True) -> None:
    """Write a file whole or not at all (temporary file, fsync, rename, folder fsync). The
    temporary name is the writer's own (process and thread): concurrent writers of one file
    (for_each iterations storing the same evidence blob) each rename a whole file, the last wins."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        if durable:
            fh.flush()
            os.fsync(fh.fileno())
    os.replace(tmp, path)
    if durable:
        fsync_dir(path.parent)


def encode(prev: str, seq: int, fields: dict[str, Any]) -> bytes:
    """One chained line: prev and seq first, at fixed places, then the fields."""
    body = json.dumps(fields, separators=(",", ":"), ensure_ascii=False, sort_keys=False, default=str)
    return PREFIX + prev.encode() + b'","seq":' + str(seq).encode() + b"," + body[1:].encode() + b"\n"


def line_hash(line: bytes) -> str:
    return hashlib.sha256(line).hexdigest()


def chain_records(records: Iterable[dict[str, Any]], prev: str,
                  seq: int) -> tuple[bytes, list[dict[str, Any]], str, int]:
    """Chain records after a head: the bytes to write, the records with ``prev``/``seq``,
    and the new head and length."""
    chunks: list[bytes] = []
    written = []
    for fields in records:
        line = encode(prev, seq, fields)
        chunks.append(line)
        written.append({"prev": prev, "seq": seq, **fields})
        prev, seq = line_hash(line), seq + 1
    return b"".join(chunks), written, prev, seq


@dataclass
class Tail:
    """Where a chained file ends: number of complete lines, head hash, and any torn bytes."""

    length: int
    head: str
    size: int          # bytes of complete lines
    torn: bytes = b""


def scan_tail(path: Path) -> Tail:
    """Find a chained file's length and head from its end (the last line's ``seq``), not by reading it all.

    A last line without a newline is torn. Reading backwards in blocks keeps an append
    to a ledger of a year of runs as cheap as an append to a new one.
    """
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        return Tail(0, ZERO, 0)
    with fh:
        size = fh.seek(0, os.SEEK_END)
        if size == 0:
            return Tail(0, ZERO, 0)
        block = 65536
        buf = b""
        pos = size
        while True:
            step = min(block, pos)
            pos -= step
            fh.seek(pos)
            buf = fh.read(step) + buf
            last_nl = buf.rfind(b"\n")
            if last_nl >= 0:
                prev_nl = buf.rfind(b"\n", 0, last_nl)
                if prev_nl >= 0 or pos == 0:
                    break
            if pos == 0:
                return Tail(0, ZERO, 0, buf)          # nothing complete: all torn
            block *= 2
        end = pos + last_nl + 1
        torn = buf[last_nl + 1:]
        line = buf[prev_nl + 1:last_nl + 1]
        m = re.match(rb'\{"prev":"[0-9a-f]{64}","seq":(\d+),', line)
        if m is None:
            return _scan_all(path)                     # not our format at the end: count the slow way
        return Tail(int(m.group(1)) + 1, line_hash(line), end, torn)


def _scan_all(path: Path) -> Tail:
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    lines = data[:end].splitlines(keepends=True)
    return Tail(len(lines), line_hash(lines[-1]) if lines else ZERO, end, data[end:])


class ChainedFile:
    """An append-only, hash-chained JSON-lines file with group commit."""

    def __init__(self, path: Path, durable: bool = True, before_write: Callable[[], None] | None = None,
                 repair: bool = False):
        self.path = Path(path)
        self.durable = durable
        self.before_write = before_write
        self.repaired: dict[str, Any] | None = None
        tail = scan_tail(self.path)
        if tail.torn:
            if not repair:
                raise JournalError(f"{self.path}: the last record is torn (a half-written line of {len(tail.torn)} "
                                   f"bytes after record {tail.length}); `invoke audit.verify` reports it")
            self.repaired = self._cut_torn_tail(tail)
        self.length = tail.length
        self.head = tail.head

    def _cut_torn_tail(self, tail: Tail) -> dict[str, Any]:
        """Keep the torn bytes beside the journal as evidence, then continue after the last complete record."""
        side = self.path.with_name(f"{self.path.name}.torn-at-{tail.size}")
        atomic_write(side, tail.torn, self.durable)
        with open(self.path, "r+b") as fh:
            fh.truncate(tail.size)
            if self.durable:
                os.fsync(fh.fileno())
        return {"offset": tail.size, "bytes": len(tail.torn), "after_record": tail.length,
                "sha256": hashlib.sha256(tail.torn).hexdigest(), "kept_in": side.name}

    def append(self, records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Chain and write records with one write and one fsync; returns them with seq/prev."""
        from . import signals

        records = list(records)
        if not records:
            return []
        with signals.deferred():
            if self.before_write is not None:
                self.before_write()
            body, written, prev, seq = chain_records(records, self.head, self.length)
            new = not self.path.exists()
            if new:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(str(self.path), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, body)
                    if self.durable:
                        os.fsync(fd)
                finally:
                    os.close(fd)
                if new and self.durable:
                    fsync_dir(self.path.parent)
            except OSError as exc:
                raise JournalError(f"{self.path}: the audit journal could not be written durably "
                                   f"({exc.strerror}); the run stopped so nothing happens unrecorded") from exc
            self.head, self.length = prev, seq
            return written


def ledger_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """A ledger record's fields as written: timed, except an anchor, which holds only what
    its journal confirms (run, length, head), so no byte of it escapes verification."""
    return fields if fields.get("type") == LedgerRecord.ANCHOR.value else {"time": utcnow(), **fields}


class Ledger:
    """The chained ledger of runs, shared by every run of a state home (under a file lock)."""

    def __init__(self, home: Path, durable: bool = True):
        self.path = Path(home) / "ledger.jsonl"
        self.lock_path = Path(home) / ".ledger.lock"
        self.durable = durable

    def append(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Chain one record; returns it with ``prev``, ``seq`` and its own ``hash``."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "a+b") as lockfh:
            fcntl.flock(lockfh, fcntl.LOCK_EX)
            try:
                chained = ChainedFile(self.path, self.durable)
                written = chained.append([ledger_fields(fields)])[0]
                return {**written, "hash": chained.head}
            finally:
                fcntl.flock(lockfh, fcntl.LOCK_UN)

    def lines(self) -> list[bytes]:
        try:
            return self.path.read_bytes().splitlines(keepends=True)
        except FileNotFoundError:
            return []

    def records(self) -> Iterator[dict[str, Any]]:
        if not self.path.exists():
            return
        with open(self.path, "rb") as fh:
            for line in fh:
                if line.endswith(b"\n"):
                    try:
                        yield json.loads(line)
                    except ValueError:
                        continue


def read_records(path: Path) -> list[dict[str, Any]]:
    """Parse every complete line of a journal (a torn last line is left out)."""
    out: list[dict[str, Any]] = []
    if not path.exists():
        return out
    with open(path, "rb") as fh:
        for line in fh:
            if not line.endswith(b"\n"):
                break
            out.append(json.loads(line))
    return out


# -- verification --------------------------------------------------------------------

@dataclass
class Problem:
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def verify_chain(path: Path, label: str | None = None, data: bytes | None = None, start: int = 0,
                 seq0: int = 0, prev0: str = ZERO) -> tuple[list[Problem], int, str]:
    """Check one chained file from raw bytes; returns problems, complete length and head.

    The loop only compares bytes in place and hashes each line once (no JSON, no copies
    but the line hashed), so verifying costs little more than hashing the records.
    ``data`` may be the file's bytes when the caller already read them; ``start``,
    ``seq0`` and ``prev0`` check only the records from byte ``start`` on, the first of
    them numbered ``seq0`` and chained to a record whose hash is ``prev0``.
    """
    label = label or str(path)
    problems: list[Problem] = []
    if data is None:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return [Problem(label, "missing")], 0, ZERO
    fast = _verify_fast(data[start:] if start else data, seq0, prev0)
    if fast is not None:
        return problems, fast[0], fast[1]
    sha256 = hashlib.sha256
    view = memoryview(data)
    startswith = data.startswith
    find = data.find
    prev_b = prev0.encode()
    seq = seq0
    pos = start
    size = len(data)
    while pos < size:
        nl = find(b"\n", pos)
        if nl < 0:
            problems.append(Problem(f"{label} record {seq + 1}",
                                    f"torn tail: {size - pos} bytes without an ending newline at byte {pos} "
                                    f"(a write was cut short; the run resumes from record {seq})"))
            break
        if not (startswith(PREFIX, pos) and startswith(prev_b, pos + PREFIX_LEN)):
            line = data[pos:nl + 1]
            what = "edited, or records were inserted, deleted, duplicated or reordered"
            if line.startswith(PREFIX):
                found_prev = line[PREFIX_LEN:PREFIX_LEN + 64].decode(errors="replace")
                if found_prev == ZERO and seq > 0:
                    what = "a record from the start of another chain"
            problems.append(Problem(f"{label} record {seq + 1} (line {seq + 1})",
                                    f"chain broken: it does not follow record {seq} (record {seq} was {what}"
                                    f" here)" if what.startswith("edited") else
                                    f"chain broken: it does not follow record {seq} ({what})"))
            return problems, seq, prev_b.decode()
        if not startswith(b'","seq":%d,' % seq, pos + PREFIX_LEN + 64):
            problems.append(Problem(f"{label} record {seq + 1} (line {seq + 1})", f"sequence number is not {seq}"))
            return problems, seq, prev_b.decode()
        prev_b = sha256(view[pos:nl + 1]).hexdigest().encode()
        seq += 1
        pos = nl + 1
    return problems, seq, prev_b.decode()


_SHA256 = hashlib.sha256
_HEX = type(hashlib.sha256()).hexdigest
_UP_TO_SEQ = operator.itemgetter(slice(0, PREFIX_LEN + 64 + 8))      # {"prev":"<hash>","seq":
_SEQ_AT = PREFIX_LEN + 64 + 8


def _verify_fast(data: bytes, seq0: int = 0, prev0: str = ZERO) -> tuple[int, str] | None:
    """Length and head of an intact chain, checked in bulk; None when anything is off
    (the careful loop then finds and names the first bad record).

    Every line is hashed once, and every line must start with exactly
    ``{"prev":"<hash of the line before>","seq":``. The lines' beginnings are cut out and
    joined, and compared with the expected text built by a join too, so the per-line work
    is C code only. (The careful loop also checks every line's number.)
    """
    if not data:
        return seq0, prev0
    if not data.endswith(b"\n") or b"\r" in data:
        return None                     # a torn tail, or a line break splitlines sees and \n does not
    lines = data.splitlines(keepends=True)
    n = len(lines)
    # {"prev":"h0","seq":{"prev":"h1","seq": ... {"prev":"hN  (h0 = prev0, hN = the head)
    expected = ('{"prev":"' + '","seq":{"prev":"'.join(chain((prev0,), map(_HEX, map(_SHA256, lines))))).encode()
    actual = b"".join(map(_UP_TO_SEQ, lines))
    if len(expected) != len(actual) + PREFIX_LEN + 64 or not expected.startswith(actual):
        return None
    # then N, -- checked on the first and the last line: every other line's number is
    # hashed into the next line's prev, and the chain starts at seq0; the last line's
    # number nothing after it hashes
    for k in {0, n - 1}:
        if not lines[k].startswith(b"%d," % (seq0 + k), _SEQ_AT):
            return None
    return seq0 + n, expected[-64:].decode()


def record_hash_at(path: Path, length: int) -> str | None:
    """The hash of record number ``length`` (1-based), or None when the file is shorter."""
    if length == 0:
        return ZERO
    n = 0
    with open(path, "rb") as fh:
        for line in fh:
            n += 1
            if n == length:
                return line_hash(line) if line.endswith(b"\n") else None
    return None

