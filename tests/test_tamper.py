"""Every single-record mutation of a journal, a cut tail and a deleted run are reported."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest

from runbook import cli
from runbook.errors import ExitCode

from helpers import copy_project, invoke


@pytest.fixture(scope="module")
def clean_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("tamper")
    root = copy_project("runtime", base)
    home = base / "home"
    work = base / "work"
    work.mkdir()
    for _ in range(2):
        result = invoke("runbook", "effects", "--param", f"dir={work}", root=root, home=home)
        assert result.returncode == 0, result.stderr
        (work / "probed.txt").unlink()
        (work / "plain.txt").unlink()
    return root, home


def crashed_home(tmp_path: Path, point: str) -> tuple[Path, Path, Path]:
    """The runtime project, and a state home whose `effects` run was killed at POINT."""
    root = copy_project("runtime", tmp_path)
    home = tmp_path / "home"
    work = tmp_path / "work"
    work.mkdir()
    first = invoke("runbook", "effects", "--param", f"dir={work}", root=root, home=home,
                   env={"RUNBOOK_CRASH_AT": point})
    assert first.returncode == -9
    return root, home, work


def verify(root: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    monkeypatch.setenv("RUNBOOK_HOME", str(home))
    out = io.StringIO()
    code = cli.audit_verify(root, None, out=out)
    return code, out.getvalue()


def mutate(lines: list[bytes], how: str) -> list[bytes]:
    k = 3
    if how == "edit":
        lines[k] = lines[k].replace(b'"step":"probed"', b'"step":"probeD"', 1) if b'"step":"probed"' in lines[k] \
            else lines[k][:-3] + b"X" + lines[k][-2:]
    elif how == "delete":
        del lines[k]
    elif how == "insert":
        lines.insert(k, lines[1])
    elif how == "duplicate":
        lines.insert(k, lines[k])
    elif how == "reorder":
        lines[k], lines[k + 1] = lines[k + 1], lines[k]
    elif how == "cut-tail":
        del lines[-2:]
    elif how == "edit-last":
        lines[-1] = lines[-1].replace(b"run.succeeded", b"run.abandoned")
    return lines


def test_untouched_home_verifies(clean_home: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    code, out = verify(*clean_home, monkeypatch)
    assert code == ExitCode.OK, out


@pytest.mark.parametrize("how", ["edit", "delete", "insert", "duplicate", "reorder", "cut-tail", "edit-last"])
def test_journal_mutation_is_reported(clean_home: tuple[Path, Path], tmp_path: Path, how: str,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    root, home = clean_home
    copy = tmp_path / "home"
    shutil.copytree(home, copy)
    run = sorted((copy / "runs").iterdir())[0]
    path = run / "journal.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(mutate(lines, how)))
    code, out = verify(root, copy, monkeypatch)
    assert code == ExitCode.FAILED
    first = out.splitlines()[0]
    assert first.startswith(f"run {run.name} record ")
    expected = {"edit": "record 5 (line 5): chain broken", "delete": "record 4 (line 4): chain broken",
                "insert": "record 4 (line 4): chain broken", "duplicate": "record 5 (line 5): chain broken",
                "reorder": "record 4 (line 4): chain broken", "cut-tail": "tail cut: ledger record",
                "edit-last": "edited: its hash differs from the head ledger record"}[how]
    assert expected in first, out


def test_deleted_run_is_reported(clean_home: tuple[Path, Path], tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    root, home = clean_home
    copy = tmp_path / "home"
    shutil.copytree(home, copy)
    run = sorted((copy / "runs").iterdir())[1]
    shutil.rmtree(run)
    code, out = verify(root, copy, monkeypatch)
    assert code == ExitCode.FAILED
    assert f"run {run.name}: deleted: the ledger recorded its start" in out


def test_ledger_mutation_is_reported(clean_home: tuple[Path, Path], tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    root, home = clean_home
    copy = tmp_path / "home"
    shutil.copytree(home, copy)
    ledger = copy / "ledger.jsonl"
    lines = ledger.read_bytes().splitlines(keepends=True)
    del lines[1]
    ledger.write_bytes(b"".join(lines))
    code, out = verify(root, copy, monkeypatch)
    assert code == ExitCode.FAILED
    assert out.startswith("ledger record 2 (line 2): chain broken")


@pytest.mark.parametrize("how", ["delete-newest", "cut-two", "edit-newest-run", "edit-newest-type"])
def test_the_ledgers_newest_anchors_are_covered(clean_home: tuple[Path, Path], tmp_path: Path, how: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing later in the ledger points at its newest record: a finished run's journal does
    (it must be anchored to its last record), so cutting or editing the newest anchors is seen."""
    root, home = clean_home
    copy = tmp_path / "home"
    shutil.copytree(home, copy)
    ledger = copy / "ledger.jsonl"
    lines = ledger.read_bytes().splitlines(keepends=True)
    assert b'"type":"run.anchor"' in lines[-1] and b'"time"' not in lines[-1]   # nothing unchecked in it
    if how == "delete-newest":
        del lines[-1]
    elif how == "cut-two":
        del lines[-2:]
    elif how == "edit-newest-run":
        lines[-1] = lines[-1].replace(b'"run":"2', b'"run":"3', 1)
    else:
        lines[-1] = lines[-1].replace(b'"type":"run.anchor"', b'"type":"run.anchoR"', 1)
    ledger.write_bytes(b"".join(lines))
    code, out = verify(root, copy, monkeypatch)
    assert code == ExitCode.FAILED
    newest = sorted((copy / "runs").iterdir())[-1].name
    if how == "edit-newest-run":
        assert out.startswith(f"ledger record {len(lines)}: an anchor of run 3"), out
    else:
        assert out.startswith(f"ledger (the newest anchor of run {newest}): missing: the journal ends with "), out


def test_a_newest_run_start_is_covered_by_its_journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run killed before its first anchor leaves its start as the ledger's newest record: the
    run's first journal record holds that record's number and hash."""
    root, home, work = crashed_home(tmp_path, "probed.write:before-intent")
    assert verify(root, home, monkeypatch)[0] == ExitCode.OK
    ledger = home / "ledger.jsonl"
    lines = ledger.read_bytes().splitlines(keepends=True)
    assert b'"type":"run.start"' in lines[-1]
    lines[-1] = lines[-1].replace(b'"operator":"', b'"operator":"x', 1)
    ledger.write_bytes(b"".join(lines))
    code, out = verify(root, home, monkeypatch)
    assert code == ExitCode.FAILED
    assert out.startswith(f"ledger record {len(lines)}: edited: the start of run "), out


def test_torn_tail_is_reported_precisely(clean_home: tuple[Path, Path], tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    root, home = clean_home
    copy = tmp_path / "home"
    shutil.copytree(home, copy)
    run = sorted((copy / "runs").iterdir())[0]
    path = run / "journal.jsonl"
    size = path.stat().st_size
    with open(path, "ab") as fh:
        fh.write(b'{"prev":"abc')
    code, out = verify(root, copy, monkeypatch)
    assert code == ExitCode.FAILED
    assert f"torn tail: 12 bytes without an ending newline at byte {size}" in out


def test_torn_tail_resumes_from_the_last_complete_record(tmp_path: Path) -> None:
    root, home, work = crashed_home(tmp_path, "plain.write:before-intent")
    run = next((home / "runs").iterdir())
    path = run / "journal.jsonl"
    complete = path.read_bytes()
    path.write_bytes(complete + b'{"prev":"0123')             # a write cut short by the crash
    verify = invoke("audit.verify", root=root, home=home)
    assert verify.returncode == 1 and "torn tail: 13 bytes without an ending newline" in verify.stdout
    resumed = invoke("runbook", "effects", "--resume", root=root, home=home)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert path.read_bytes().startswith(complete)
    assert (run / f"journal.jsonl.torn-at-{len(complete)}").read_bytes() == b'{"prev":"0123'
    assert '"type":"journal.repaired"' in path.read_text()
    assert invoke("audit.verify", root=root, home=home).returncode == 0


@pytest.mark.parametrize("then", ["resume", "next-run"])
def test_a_stop_between_the_last_record_and_its_anchor_is_reported_then_completed(
        tmp_path: Path, then: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed after writing run.succeeded but before anchoring it: audit.verify says so (and how
    to complete it); resuming the run, or the next run finding its stale lock, writes the anchor."""
    root, home, work = crashed_home(tmp_path, "anchor:run.succeeded")
    run = next((home / "runs").iterdir()).name
    code, out = verify(root, home, monkeypatch)
    assert code == ExitCode.FAILED
    assert out.startswith(f"ledger (the newest anchor of run {run}): missing: the journal ends with record ") \
        and f"`invoke runbook.resume --run-id {run}` completes the anchor" in out, out
    if then == "resume":
        again = invoke("runbook.resume", "--run-id", run, root=root, home=home)
        assert again.returncode == 2
        assert "has succeeded; there is nothing to resume (the ledger anchor the engine was stopped before " \
            "writing is written now)" in again.stderr
    else:
        other = tmp_path / "work2"
        other.mkdir()
        again = invoke("runbook", "effects", "--param", f"dir={other}", root=root, home=home)
        assert again.returncode == 0, again.stdout + again.stderr     # the finished run's stale lock was freed
    assert verify(root, home, monkeypatch)[0] == ExitCode.OK


def test_steps_that_acted_and_every_status_are_anchored(clean_home: tuple[Path, Path]) -> None:
    """A step that ran an action (or asked someone) is anchored at its end; a step of checks
    only waits for the next anchor; the run's status is always anchored."""
    import json

    _, home = clean_home
    run = sorted((home / "runs").iterdir())[0].name
    records = [json.loads(line) for line in (home / "runs" / run / "journal.jsonl").read_text().splitlines()]
    anchored = [records[r["length"] - 1] for r in map(json.loads, (home / "ledger.jsonl").read_text().splitlines())
                if r["type"] == "run.anchor" and r["run"] == run]
    assert [(a["type"], a["data"].get("step")) for a in anchored] == [
        ("step.finished", "probed"), ("step.finished", "plain"), ("run.succeeded", None)]
