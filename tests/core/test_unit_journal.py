"""The journal and the ledger (``runbook.journal``): chained lines, group commit, the repair of a
torn tail (its bytes kept beside the journal), and verification naming the first bad record."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable

import pytest

from runbook.journal import (ZERO, ChainedFile, JournalError, Ledger, chain_records, line_hash, read_records,
                             record_hash_at, scan_tail, verify_chain)

TORN = b'{"prev":"' + b"ab" * 10          # a write cut short: no newline


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    """A journal of five records."""
    path = tmp_path / "journal.jsonl"
    ChainedFile(path, durable=False).append([{"type": "t", "data": {"n": n}} for n in range(5)])
    return path


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


# -- chaining ------------------------------------------------------------------------------

def test_each_line_starts_with_the_hash_of_the_line_before_and_its_number(journal: Path) -> None:
    lines = lines_of(journal)
    prev = ZERO
    for seq, line in enumerate(lines):
        assert line.startswith(b'{"prev":"%s","seq":%d,' % (prev.encode(), seq))
        assert json.loads(line)["data"] == {"n": seq}
        prev = line_hash(line)
    assert verify_chain(journal) == ([], 5, prev)


def test_reopening_continues_the_chain(journal: Path) -> None:
    again = ChainedFile(journal, durable=False)
    assert again.length == 5 and again.head == line_hash(lines_of(journal)[-1])
    written = again.append([{"type": "t", "data": {"n": 5}}])
    assert written[0]["seq"] == 5 and written[0]["prev"] == line_hash(lines_of(journal)[4])
    assert verify_chain(journal)[:2] == ([], 6)


def test_a_group_commit_is_one_write_and_nothing_for_an_empty_group(journal: Path) -> None:
    before = journal.read_bytes()
    f = ChainedFile(journal, durable=False)
    assert f.append([]) == [] and journal.read_bytes() == before
    body, written, head, length = chain_records([{"type": "a"}, {"type": "b"}], f.head, f.length)
    f.append([{"type": "a"}, {"type": "b"}])
    assert journal.read_bytes() == before + body and (f.head, f.length) == (head, length) == (head, 7)
    assert [r["type"] for r in written] == ["a", "b"]


def test_before_write_runs_first_and_can_stop_the_write(journal: Path) -> None:
    before = journal.read_bytes()

    def fenced() -> None:
        raise RuntimeError("fenced")
    f = ChainedFile(journal, durable=False, before_write=fenced)
    with pytest.raises(RuntimeError, match="fenced"):
        f.append([{"type": "late"}])
    assert journal.read_bytes() == before and f.length == 5


def test_a_write_that_fails_stops_the_run_with_a_journal_error(tmp_path: Path) -> None:
    folder = tmp_path / "gone"
    f = ChainedFile(folder / "journal.jsonl", durable=False)
    folder.mkdir()
    (folder / "journal.jsonl").mkdir()                 # not a file: the open fails
    with pytest.raises(JournalError, match="could not be written durably"):
        f.append([{"type": "t"}])


def test_a_new_journal_and_its_folder_are_created(tmp_path: Path) -> None:
    path = tmp_path / "runs" / "R1" / "journal.jsonl"
    ChainedFile(path).append([{"type": "t"}])
    assert read_records(path)[0]["seq"] == 0 and oct(path.stat().st_mode & 0o777) == "0o600"


# -- a torn tail -----------------------------------------------------------------------------

def test_a_torn_tail_is_refused_unless_repair_is_asked(journal: Path) -> None:
    with open(journal, "ab") as fh:
        fh.write(TORN)
    with pytest.raises(JournalError, match=r"the last record is torn \(a half-written line of 29 bytes after "
                                           r"record 5\)"):
        ChainedFile(journal, durable=False)


def test_repair_cuts_the_torn_bytes_keeps_them_beside_the_journal_and_continues(journal: Path) -> None:
    size = journal.stat().st_size
    with open(journal, "ab") as fh:
        fh.write(TORN)
    f = ChainedFile(journal, durable=False, repair=True)
    side = journal.with_name(f"journal.jsonl.torn-at-{size}")
    assert f.repaired == {"offset": size, "bytes": len(TORN), "after_record": 5,
                          "sha256": hashlib.sha256(TORN).hexdigest(), "kept_in": side.name}
    assert side.read_bytes() == TORN and journal.stat().st_size == size
    f.append([{"type": "journal.repaired", "data": f.repaired}])
    assert verify_chain(journal)[:2] == ([], 6)


def test_a_journal_that_is_all_torn_is_cut_to_nothing(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_bytes(TORN)
    f = ChainedFile(path, durable=False, repair=True)
    assert (f.length, f.head, path.read_bytes()) == (0, ZERO, b"")
    assert (tmp_path / "journal.jsonl.torn-at-0").read_bytes() == TORN


def test_an_intact_journal_is_not_repaired(journal: Path) -> None:
    assert ChainedFile(journal, durable=False, repair=True).repaired is None
    assert sorted(p.name for p in journal.parent.iterdir()) == ["journal.jsonl"]


def test_read_records_leaves_a_torn_line_out(journal: Path) -> None:
    with open(journal, "ab") as fh:
        fh.write(TORN)
    assert [r["seq"] for r in read_records(journal)] == [0, 1, 2, 3, 4]
    assert read_records(journal.with_name("missing.jsonl")) == []


def test_scan_tail_reads_a_long_file_from_its_end(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    f = ChainedFile(path, durable=False)
    f.append([{"type": "t", "data": {"pad": "x" * 900}} for _ in range(200)])    # > 64 KiB
    tail = scan_tail(path)
    assert (tail.length, tail.head, tail.size, tail.torn) == (200, f.head, path.stat().st_size, b"")
    assert scan_tail(tmp_path / "none.jsonl").length == 0


def test_record_hash_at(journal: Path) -> None:
    lines = lines_of(journal)
    assert record_hash_at(journal, 0) == ZERO
    assert record_hash_at(journal, 3) == line_hash(lines[2])
    assert record_hash_at(journal, 6) is None


# -- verification --------------------------------------------------------------------------

Edit = Callable[[list[bytes], bytes], list[bytes]]
EDITS: dict[str, tuple[Edit, str]] = {
    "inserted": (lambda ls, foreign: ls[:2] + [ls[4]] + ls[2:],
                 "journal record 3 (line 3): chain broken: it does not follow record 2"),
    "deleted": (lambda ls, foreign: ls[:2] + ls[3:],
                "journal record 3 (line 3): chain broken: it does not follow record 2"),
    "reordered": (lambda ls, foreign: [ls[0], ls[2], ls[1], ls[3], ls[4]],
                  "journal record 2 (line 2): chain broken: it does not follow record 1"),
    "duplicated": (lambda ls, foreign: ls[:4] + [ls[3], ls[4]], "journal record 5 (line 5): chain broken"),
    "from another chain": (lambda ls, foreign: ls[:2] + [foreign] + ls[2:],
                           "journal record 3 (line 3): chain broken: it does not follow record 2 (a record from the "
                           "start of another chain)"),
    "renumbered": (lambda ls, foreign: ls[:4] + [ls[4].replace(b'"seq":4,', b'"seq":9,')],
                   "journal record 5 (line 5): sequence number is not 4"),
}


@pytest.mark.parametrize("name", sorted(EDITS))
def test_verification_names_the_first_bad_record(journal: Path, tmp_path: Path, name: str) -> None:
    other = tmp_path / "other.jsonl"
    ChainedFile(other, durable=False).append([{"type": "t", "data": {"n": 0}}])
    edit, problem = EDITS[name]
    journal.write_bytes(b"".join(edit(lines_of(journal), other.read_bytes())))
    problems, length, _ = verify_chain(journal, "journal")
    assert len(problems) == 1 and str(problems[0]).startswith(problem)
    assert length == int(problem.split("record ")[1].split()[0]) - 1       # the records before it are good


def test_an_edited_record_breaks_the_link_from_the_next_one(journal: Path) -> None:
    lines = lines_of(journal)
    lines[1] = lines[1].replace(b'{"n":1}', b'{"n":7}')
    journal.write_bytes(b"".join(lines))
    problems, length, _ = verify_chain(journal, "journal")
    assert str(problems[0]).startswith("journal record 3 (line 3): chain broken: it does not follow record 2 "
                                       "(record 2 was edited") and length == 2


def test_a_torn_tail_is_reported_with_where_the_run_resumes(journal: Path) -> None:
    size = journal.stat().st_size
    with open(journal, "ab") as fh:
        fh.write(TORN)
    problems, length, _ = verify_chain(journal, "journal")
    assert [str(p) for p in problems] == [f"journal record 6: torn tail: {len(TORN)} bytes without an ending newline "
                                          f"at byte {size} (a write was cut short; the run resumes from record 5)"]
    assert length == 5


def test_a_cut_tail_is_a_shorter_intact_chain_and_a_missing_file_is_a_problem(journal: Path) -> None:
    """A cut tail is found only against the ledger's anchor (see test_unit_recorder)."""
    journal.write_bytes(b"".join(lines_of(journal)[:3]))
    assert verify_chain(journal)[:2] == ([], 3)
    problems, length, head = verify_chain(journal.with_name("gone.jsonl"), "gone")
    assert [str(p) for p in problems] == ["gone: missing"] and (length, head) == (0, ZERO)


def test_verification_can_start_in_the_middle(journal: Path) -> None:
    data = journal.read_bytes()
    lines = lines_of(journal)
    start = len(lines[0]) + len(lines[1])
    assert verify_chain(journal, data=data, start=start, seq0=2, prev0=line_hash(lines[1]))[:2] == ([], 5)
    problems, _, _ = verify_chain(journal, "j", data=data, start=start, seq0=2, prev0=ZERO)
    assert problems and "record 3" in str(problems[0])


# -- the ledger ----------------------------------------------------------------------------

def test_the_ledger_chains_its_records_and_times_all_but_anchors(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path, durable=False)
    start = ledger.append({"type": "run.start", "run": "R1"})
    anchor = ledger.append({"type": "run.anchor", "run": "R1", "length": 3, "head": "h" * 64})
    assert (start["seq"], start["prev"], anchor["seq"], anchor["prev"]) == (0, ZERO, 1, start["hash"])
    assert "time" in start and "time" not in anchor
    assert anchor["hash"] == line_hash(ledger.lines()[1])
    assert [r["type"] for r in ledger.records()] == ["run.start", "run.anchor"]
    assert verify_chain(ledger.path)[:2] == ([], 2)


def test_a_ledger_opened_twice_keeps_one_chain(tmp_path: Path) -> None:
    first, second = Ledger(tmp_path, durable=False), Ledger(tmp_path, durable=False)
    for n in range(3):
        (first if n % 2 else second).append({"type": "run.start", "run": f"R{n}"})
    assert [r["seq"] for r in first.records()] == [0, 1, 2] and verify_chain(first.path)[0] == []


def test_an_empty_ledger_has_no_records(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    assert ledger.lines() == [] and list(ledger.records()) == []
