"""Guards that hold (issue 23): the minimal runbooks other teams' procedures found holes with,
run in-process with the real Runner (tests/scenarios/runtime/runbooks/guard-*.yaml)."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from core.harness import of_type, world
from helpers import invoke
from runbook.errors import ExitCode, UsageError
from runbook.state import Status


@pytest.fixture(autouse=True)
def _operator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNBOOK_OPERATOR", "tester@example.com")
    monkeypatch.delenv("RUNBOOK_FAIL_AT", raising=False)
    monkeypatch.delenv("RUNBOOK_PARAM_NODES", raising=False)


# -- 23.1 and 23.3: `end:` ends the run, inside a for_each too, and closes it ----------------------

@pytest.mark.parametrize("name", ["guard-end-include", "guard-end-each"])
def test_end_failed_in_an_include_ends_the_run_under_for_each_too(tmp_path: Path, name: str) -> None:
    w = world(tmp_path)
    assert w.run(name) == ExitCode.FAILED
    assert w.lines("marked.txt") == ["a"]                 # the first iteration ended the run: b never started
    assert w.lines("after.txt") == []
    state = w.state(w.last())
    assert state.status is Status.FAILED and state.over
    assert state.reason.startswith("ended at step ") and "No snapshot of a, stop here" in state.reason
    [failed] = of_type(w.records(), "run.failed")
    assert failed["data"]["ended_at"] in ("one.stop", "each[0].stop")


def test_a_run_ended_failed_is_over_its_lock_released_and_the_next_run_starts(tmp_path: Path) -> None:
    w = world(tmp_path)
    assert w.run("guard-end-each") == ExitCode.FAILED
    first = w.last()
    assert not list((w.home / "locks").glob("*")) or all(
        first not in p.read_text() for p in (w.home / "locks").rglob("*") if p.is_file())
    exc = w.expect_error(resume=first)                    # nothing to resume: the runbook ended it
    assert isinstance(exc, UsageError) and "nothing to resume" in str(exc) and "the runbook ended it" in str(exc)
    assert w.run("guard-end-each") == ExitCode.FAILED     # the next run is not refused by a held lock (exit 3)
    assert len(w.runs()) == 2
    out = io.StringIO()
    from runbook.console import Console

    Console(out, plain=True).summary(first, "failed", "ended at step each[0].stop", over=True)
    assert "resume:" not in out.getvalue() and "abandon" not in out.getvalue()


def test_end_succeeded_says_where_and_why(tmp_path: Path) -> None:
    w = world(tmp_path)
    assert w.run("guard-end-succeeded") == ExitCode.OK
    assert w.lines("work.txt") == []
    [done] = of_type(w.records(), "run.succeeded")
    assert done["data"]["ended_at"] == "look" and "Nothing to do when already done" in done["data"]["reason"]
    shown = invoke("runbook", "guard-end-succeeded", "--param", f"dir={w.work}", root=w.root, home=w.home)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "succeeded (ended at step look: Nothing to do when already done)." in shown.stdout, shown.stdout


# -- 23.2: concurrent iterations with identical output ---------------------------------------------

def test_concurrent_iterations_with_identical_output_all_pass(tmp_path: Path) -> None:
    w = world(tmp_path)
    assert w.run("guard-same-output") == ExitCode.OK
    results = of_type(w.records(), "item.result", item="same")
    assert len(results) == 4 and all(r["data"]["passed"] for r in results), [r["data"]["summary"] for r in results]
    shas = {r["data"]["evidence"]["stdout_sha256"] for r in results}
    assert len(shas) == 1                                  # one blob, stored once, whole
    [sha] = shas
    assert (w.home / "runs" / w.last() / "blobs" / sha).read_text() == "same-output\n" * 300


# -- 23.6: max_failures needs at least one success ------------------------------------------------

def test_max_failures_does_not_let_a_run_where_every_iteration_failed_succeed(tmp_path: Path) -> None:
    w = world(tmp_path)
    assert w.run("guard-all-failed", params={"nodes": "[n1]"}) == ExitCode.FAILED
    assert w.lines("cordoned.txt") == ["n1"] and w.lines("after.txt") == []
    state = w.state(w.last())
    assert "every iteration failed" in state.reason and state.steps["drain"].status.value == "failed"


def test_max_failures_still_allows_a_failure_beside_successes(tmp_path: Path) -> None:
    w = world(tmp_path)
    assert w.run("guard-all-failed", params={"nodes": "[ok1, bad2]"}) == ExitCode.OK
    assert w.lines("after.txt") == ["after"]
    assert len(w.state(w.last()).deviations) == 1


def test_concurrent_writers_of_one_blob_each_rename_a_whole_file(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The race itself, forced: four threads have each written their temporary file before any
    renames it (with one temporary name per process, three renames found nothing to rename)."""
    import threading

    from runbook import journal
    from runbook.store import LocalStore

    barrier = threading.Barrier(4, timeout=10)
    real = journal.os.replace

    def replace(src: object, dst: object) -> None:
        barrier.wait()
        real(src, dst)

    monkeypatch.setattr(journal.os, "replace", replace)
    store = LocalStore(tmp_path / "home")
    errors: list[BaseException] = []
    digests: list[str] = []

    def write() -> None:
        try:
            digests.append(store.store_blob("20260101T000000-x", b"same-output\n" * 300))
        except BaseException as exc:      # noqa: BLE001 - the test reports what a writer raised
            errors.append(exc)

    threads = [threading.Thread(target=write) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert errors == [] and len(set(digests)) == 1
    blobs = tmp_path / "home" / "runs" / "20260101T000000-x" / "blobs"
    assert [p.name for p in blobs.iterdir()] == digests[:1]      # no temporary file left behind


# -- 23.8: shell.check output expectations, under wait: --------------------------------------------

def test_wait_runs_a_shell_check_until_its_output_no_longer_lists_a_job_and_json_is_judged(tmp_path: Path) -> None:
    w = world(tmp_path)
    assert w.run("guard-wait-output") == ExitCode.OK
    assert len((w.work / "calls.txt").read_text()) == 3            # listed job-7 twice, then not
    [drained] = of_type(w.records(), "item.result", item="drained")
    assert "does not match '^job-7$'" in drained["data"]["summary"]
    [ready] = of_type(w.records(), "item.result", item="ready")
    assert "state = 'ready'" in ready["data"]["summary"] and "length(replicas) = 2" in ready["data"]["summary"]


def test_output_expectations_that_do_not_hold_fail_the_check_naming_what_was_found(tmp_path: Path) -> None:
    from runbook.builtin import shell

    def check(argv: list[str], **expect: object) -> str:
        from runbook.plugins import Context

        out = shell.check_(Context(args={"argv": argv, **expect}, env={}, root=tmp_path))
        assert not out.passed
        return out.summary

    listing = [sys.executable, "-c", "print('job-8'); print('job-7')"]
    assert "stdout matches '^job-7$' (line 2: 'job-7')" in check(listing, stdout_not_matches="^job-7$")
    assert "stdout does not match '^job-9$'" in check(listing, stdout_matches="^job-9$")
    assert "stdout is not JSON" in check(listing, json={"state": "ready"})
    status = [sys.executable, "-c", "print('{\"state\": \"starting\"}')"]
    assert "state: expected one of 'ready', 'idle', found 'starting'" in check(status, json={"state": ["ready", "idle"]})
    failing = [sys.executable, "-c", "import sys; print('job-9'); sys.exit(2)"]
    assert "expected exit 0, found 2" in check(failing, stdout_matches="job-9")    # the exit code first


# -- 23.10: the smaller things, as plain output (no terminal, no --verbose) --------------------------

def test_small_things_in_the_plain_output(tmp_path: Path) -> None:
    from helpers import write_answers

    w = world(tmp_path)
    answers = write_answers(tmp_path / "a.yaml", "guard-small-things", {"done.told": True})
    done = invoke("runbook", "guard-small-things", "--param", f"dir={w.work}", "--answers", str(answers),
                  root=w.root, home=w.home)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "        node-2 NotReady" in out                                  # what a check looked at
    assert "(attempt 1 of 3; trying again)" in out and "(attempt 2 of 3; trying again)" in out
    [skipped] = [ln for ln in out.splitlines() if "ready skipped" in ln]
    assert '"node-1 Ready..." (3 lines, 41 characters) matches "^all ready"' in skipped and "\\n" not in skipped
    assert f"done.told: yes (answers-file:{answers})" in out and "{'done'" not in out
    assert "`python3 -c import sys...`: expected exit 0, found 1" in out          # a script's first line
    for args in (("runbook.show", "guard-small-things"), ("runbook", "guard-small-things", "--dry-run")):
        shown = invoke(*args, "--param", f"dir={w.work}", root=w.root, home=w.home)
        assert shown.returncode == 0, shown.stdout + shown.stderr
        assert "probe    effects.has_line" in shown.stdout, shown.stdout
    audit = invoke("audit.show", w.last(), root=w.root, home=w.home)
    assert "done.told: yes by tester@example.com" in audit.stdout and "{'done'" not in audit.stdout, audit.stdout

