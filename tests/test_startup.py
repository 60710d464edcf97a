"""`invoke --list` imports nothing heavier than invoke itself."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import REPO

PROBE = """
import sys
from invoke.main import program
try:
    program.run(['invoke', '--list'], exit=False)
except SystemExit:
    pass
print('MODULES', ' '.join(sorted(m.split('.')[0] for m in sys.modules)))
print('ENGINE', ' '.join(sorted(m for m in sys.modules if m == 'runbook' or m.startswith('runbook.'))))
"""
HEAVY = {"boto3", "botocore", "github", "questionary", "prompt_toolkit", "rich", "jsonschema", "yaml", "moto"}


def loaded(folder: Path, what: str = "MODULES") -> set[str]:
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=folder, capture_output=True, text=True, check=True).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith(what))
    return set(line.split()[1:])


def test_invoke_list_imports_nothing_heavy(tmp_path: Path) -> None:
    (tmp_path / "tasks.py").write_text("from invoke import task\n\n@task\ndef hello(c):\n    pass\n")
    baseline = loaded(tmp_path)
    ours = loaded(REPO)
    # yaml is imported by invoke itself; nothing heavy may come on top of invoke's own imports
    assert (ours - baseline) & HEAVY == set()
    assert {"boto3", "github", "questionary", "rich", "jsonschema"} & ours == set()
    assert "checks" not in ours
    # of the engine, only the package and its task declarations: every task imports what it needs when it runs
    assert loaded(REPO, "ENGINE") == {"runbook", "runbook.tasks"}


def test_list_shows_the_tasks() -> None:
    out = subprocess.run([sys.executable, "-m", "invoke", "--list"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0
    for name in ("runbook.list", "runbook.validate", "runbook.show", "runbook.checks"):
        assert name in out.stdout
