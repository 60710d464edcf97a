"""Good and bad inputs as files: each bad file names the exact error line it must produce.

A bad runbook or environment starts with one or more ``# expect: LINE:COL: message (at path)``
comments; validating it must fail with exit 2 and print each of those lines, prefixed by
the file's path. Parameter and answers scenarios are YAML files describing the call.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from runbook import cli
from runbook.errors import ExitCode, InputError, RunbookError
from runbook.yamlfile import load_file

from conftest import PROJECT, SCENARIOS

BAD = SCENARIOS / "bad"


def expectations(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()[:10]
    return [line.split("# expect:", 1)[1].strip() for line in lines if line.startswith("# expect:")]


def rel(path: Path) -> str:
    return str(path.relative_to(Path.cwd()))


def files(kind: str) -> list[Path]:
    return sorted((BAD / kind).glob("*.yaml"))


def errors_of(call, *args, **kwargs) -> tuple[int, list[str]]:
    out = io.StringIO()
    try:
        code = call(*args, out=out, **kwargs)
    except RunbookError as exc:
        err = io.StringIO()
        return cli.report_error(exc, err), err.getvalue().splitlines()
    return code, []


@pytest.mark.parametrize("path", files("runbooks") + files("environments"), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_bad_file_reports_exact_error(path: Path, state_home: Path) -> None:
    wanted = expectations(path)
    assert wanted, f"{path} has no '# expect:' line"
    code, lines = errors_of(cli.validate, PROJECT, [str(path)])
    assert code == ExitCode.INVALID
    for expect in wanted:
        assert f"{rel(path)}:{expect}" in lines, f"missing {expect!r}; got:\n" + "\n".join(lines)
    assert not state_home.exists(), "validation must write nothing"


def _scenario(path: Path) -> dict:
    data = load_file(path).data
    assert isinstance(data, dict) and "expect" in data, f"{path}: needs 'expect'"
    return data


@pytest.mark.parametrize("path", files("params"), ids=lambda p: p.name)
def test_bad_parameters(path: Path, state_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sc = _scenario(path)
    for key, value in (sc.get("environ") or {}).items():
        monkeypatch.setenv(key, str(value))
    code, lines = errors_of(cli.dry_run, PROJECT, sc.get("runbook", "full-feature"), sc.get("env", "test"),
                            sc.get("cli") or [], None)
    assert code == ExitCode.INVALID
    for expect in sc["expect"]:
        assert expect in lines, f"missing {expect!r}; got:\n" + "\n".join(lines)
    assert not state_home.exists()


@pytest.mark.parametrize("path", files("answers"), ids=lambda p: p.name)
def test_bad_answers(path: Path, state_home: Path) -> None:
    wanted = expectations(path)
    assert wanted
    env = "test"
    code, lines = errors_of(cli.dry_run, PROJECT, "full-feature", env, ["version=v1.2.3"], str(path))
    assert code == ExitCode.INVALID
    for expect in wanted:
        assert f"{rel(path)}:{expect}" in lines, f"missing {expect!r}; got:\n" + "\n".join(lines)


def test_two_mebibyte_file(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("name: big\ntitle: t\nsteps: []\n# " + "x" * (2 * 1024 * 1024) + "\n")
    code, lines = errors_of(cli.validate, PROJECT, [str(big)])
    assert code == ExitCode.INVALID
    assert lines == [f"{big}:1:1: file is larger than 1024 KiB; runbooks are kept small"]


def test_enough_bad_scenarios() -> None:
    total = sum(len(files(k)) for k in ("runbooks", "environments", "params", "answers")) + 1
    assert total >= 40, total


def test_all_errors_at_once() -> None:
    path = BAD / "runbooks" / "many-errors.yaml"
    code, lines = errors_of(cli.validate, PROJECT, [str(path)])
    assert code == ExitCode.INVALID
    assert len(lines) == len(expectations(path)) >= 3
