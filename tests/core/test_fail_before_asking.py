"""Fail before anyone is asked: given parameters are checked first (with a parameter's own read-only
check), then the lock is taken (or refused), and only then is anybody asked anything."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from core.harness import world
from runbook.errors import InputError, LockHeld
from runbook.locks import LockStore

RUNBOOK = r"""
name: versioned
title: A release whose version must be newer than the last release tag
params:
  version:
    type: string
    pattern: '^v\d+\.\d+\.\d+$'
    example: v1.2.0
    check: {uses: git.version_greater, with: {version: "${params.version}", remote: "${env.git.remote}"}}
  note: {type: string, description: A note nobody gave}
  dir: {type: string}
steps:
  - id: prepare
    title: Prerequisites
    requires:
      - id: ready
        manual: Everything is ready
  - id: act
    title: Act
    do:
      - id: write
        uses: effects.append
        with: {file: "${params.dir}/acted.txt", line: "${params.version} ${params.note}"}
"""


@pytest.fixture
def w(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("RUNBOOK_OPERATOR", "tester@example.com")
    w = world(tmp_path)
    bare = tmp_path / "origin.git"
    subprocess.run(["git", "init", "--quiet", "--bare", str(bare)], check=True)
    src = tmp_path / "src"
    subprocess.run(["git", "init", "--quiet", str(src)], check=True)
    (src / "f").write_text("x")
    for cmd in (["add", "f"], ["-c", "user.name=t", "-c", "user.email=t@e", "commit", "--quiet", "-m", "one"],
                ["tag", "v1.1.0"], ["tag", "rollback/v1.9.0"], ["push", "--quiet", str(bare), "HEAD:main", "--tags"]):
        subprocess.run(["git", *cmd], cwd=src, check=True)
    (w.root / "environments" / "gitty.yaml").write_text(f"name: gitty\ngit: {{remote: {bare}}}\n")
    (w.root / "runbooks" / "versioned.yaml").write_text(RUNBOOK)
    return w


def test_an_old_version_is_refused_before_anything_runs_or_anybody_is_asked(w) -> None:
    err = w.expect_error("versioned", env="gitty", params={"version": "v1.0.0"}, script={})
    assert isinstance(err, InputError)
    assert str(err) == ("<command line>: version=v1.0.0: v1.0.0 is not greater than the latest release v1.1.0 "
                        "(tags matching ^v\\d+\\.\\d+\\.\\d+$) (at params.version)")
    assert w.asked == [] and w.runs() == [] and LockStore(w.home).all() == []


def test_a_pattern_failure_shows_an_example(w) -> None:
    err = w.expect_error("versioned", env="gitty", params={"version": "1.2"}, script={})
    assert "'1.2' does not match '^v\\d+\\.\\d+\\.\\d+$': expected a version like v1.2.0 (at params.version)" \
        in str(err)


def test_a_held_lock_is_reported_before_any_prompt(w) -> None:
    LockStore(w.home).acquire("gitty", "someone-else", "other", "alice@example.com")
    err = w.expect_error("versioned", env="gitty", params={"version": "v1.2.0"}, script={})
    assert isinstance(err, LockHeld) and "alice@example.com" in str(err)
    assert w.asked == []                               # the missing note was never asked for


def test_wait_lock_says_how_long_it_waited(w) -> None:
    from runbook.session import parse_duration

    LockStore(w.home).acquire("gitty", "someone-else", "other", "alice@example.com")
    store = LockStore(w.home)
    with pytest.raises(LockHeld, match=r"waited 0.2 s with --wait-lock"):
        store.acquire("gitty", "mine", "versioned", "tester@example.com", wait=parse_duration("0.2s"))


def test_a_newer_version_runs_and_the_missing_parameter_is_asked_after_the_lock(w) -> None:
    script = {"params.note": {"value": "first"}, "prepare.ready": True}
    assert w.run("versioned", env="gitty", params={"version": "v1.2.0"}, script=script) == 0
    assert w.asked[:1] == ["params.note"] and w.lines("acted.txt") == ["v1.2.0 first"]
