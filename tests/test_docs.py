"""The committed guides in docs/ are what `invoke runbook.docs` generates from the runbooks."""

from __future__ import annotations

import io
from pathlib import Path

from runbook import cli
from runbook.errors import ExitCode

from conftest import REPO


def test_committed_guides_are_current() -> None:
    out = io.StringIO()
    code = cli.docs(REPO, check=True, out=out)
    assert code == ExitCode.OK, out.getvalue() + "\nrun `invoke runbook.docs` and commit docs/"
    assert sorted(p.stem for p in (REPO / "docs").glob("*.md")) == sorted(p.stem for p in (REPO / "runbooks").glob("*.yaml"))


def test_a_changed_runbook_makes_its_guide_stale(tmp_path: Path) -> None:
    import shutil

    for folder in ("runbooks", "environments", "docs"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    rb = tmp_path / "runbooks" / "hotfix.yaml"
    rb.write_text(rb.read_text().replace("title: Hotfix a critical production bug", "title: Hotfix (edited)"))
    out = io.StringIO()
    assert cli.docs(tmp_path, check=True, out=out) == ExitCode.FAILED
    assert "docs/hotfix.md" in out.getvalue()
    guide = (tmp_path / "docs" / "production-release.md").read_text()
    assert "- [ ] All code is merged to develop and tested in staging - write down a note" in guide
    assert "[`rollback-fast`](rollback-fast.md)" in guide
