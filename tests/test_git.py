"""Git and file checks and actions against real repositories with a bare origin."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from runbook import git as g
from runbook.errors import RunbookError
from runbook.plugins import Context, Outcome, load

ENV = g.identity_env("Dev", "dev@example.com")


def sh(args: list[str], cwd: Path) -> str:
    return g.git(args, cwd, env=ENV).out.strip()


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    """A bare origin with main and develop, release tags v1.0.0 and v1.1.0 and a rollback tag."""
    bare = g.init_bare(tmp_path / "origin.git")
    seed = tmp_path / "seed"
    g.git(["clone", "--quiet", str(bare), str(seed)])
    (seed / "pyproject.toml").write_text('[project]\nname = "app"\nversion = "1.1.0"\n')
    (seed / "app").mkdir()
    (seed / "app" / "__init__.py").write_text('__version__ = "1.1.0"\n')
    (seed / "CHANGELOG.md").write_text("# Changelog\n\n## [Unreleased]\n### Added\n- Patient symptom tracking\n\n"
                                       "## [1.1.0] - 2024-01-02\n### Fixed\n- Timeout\n")
    sh(["add", "-A"], seed)
    sh(["commit", "-qm", "initial"], seed)
    sh(["tag", "-a", "v1.0.0", "-m", "1.0.0"], seed)
    sh(["tag", "-a", "v1.1.0", "-m", "1.1.0"], seed)
    sh(["tag", "-a", "rollback/v9.9.9", "-m", "a rollback tag, outside the release pattern"], seed)
    sh(["push", "-q", "origin", "main", "--tags"], seed)
    sh(["checkout", "-qb", "develop"], seed)
    (seed / "feature.txt").write_text("feature\n")
    sh(["add", "-A"], seed)
    sh(["commit", "-qm", "feature"], seed)
    sh(["push", "-q", "origin", "develop"], seed)
    return bare


def ctx(tmp_path: Path, origin: Path, **args: Any) -> Context:
    return Context(args=args, env={"git": {"remote": str(origin), "main": "main", "develop": "develop"},
                                   "deploy": {"release_tag_pattern": r"^v\d+\.\d+\.\d+$"}},
                   root=tmp_path, checkout=tmp_path / "checkout")


def call(name: str, c: Context) -> Outcome:
    """Call a plugin as the engine does: an engine error it raises becomes a failed outcome."""
    try:
        return load()[name].func(c)
    except RunbookError as exc:
        return Outcome.fail(f"{name}: {exc}")


def clone(tmp_path: Path, origin: Path) -> Path:
    assert call("git.clone", ctx(tmp_path, origin)).passed
    g.git(["config", "user.email", "rel@example.com"], tmp_path / "checkout")
    g.git(["config", "user.name", "Release"], tmp_path / "checkout")
    return tmp_path / "checkout"


def refs(bare: Path) -> str:
    return g.out(["for-each-ref", "--format=%(refname) %(objectname)"], bare)


def test_release_flow_each_action_twice_does_its_effect_once(tmp_path: Path, origin: Path) -> None:
    repo = clone(tmp_path, origin)
    assert call("git.clone", ctx(tmp_path, origin)).summary.endswith(repo.name + " is already a clone at " +
                                                                     g.out(["rev-parse", "HEAD"], repo)[:12])
    assert call("git.pull", ctx(tmp_path, origin, branch="develop")).passed
    for _ in range(2):
        out = call("git.create_branch", ctx(tmp_path, origin, name="release/v1.2.0", **{"from": "develop"}))
        assert out.passed, out.summary
    assert call("git.current_branch", ctx(tmp_path, origin, name="release/v1.2.0")).passed
    for _ in range(2):
        assert call("file.set_version", ctx(tmp_path, origin, version="v1.2.0")).passed
        assert call("file.changelog_release", ctx(tmp_path, origin, version="v1.2.0", date="2024-01-20")).passed
    section = call("file.changelog_section", ctx(tmp_path, origin, version="v1.2.0"))
    assert section.passed and "Patient symptom tracking" in section.outputs["section"]
    assert call("file.version_equals", ctx(tmp_path, origin, version="v1.2.0")).passed
    commits = []
    for _ in range(2):
        out = call("git.commit", ctx(tmp_path, origin, message="chore: prepare release v1.2.0"))
        assert out.passed, out.summary
        commits.append(out.outputs["sha"])
    assert commits[0] == commits[1]
    assert call("git.clean_worktree", ctx(tmp_path, origin)).passed
    for _ in range(2):
        assert call("git.push", ctx(tmp_path, origin, branch="release/v1.2.0")).passed
    assert f"refs/heads/release/v1.2.0 {commits[0]}" in refs(origin)
    assert call("git.up_to_date", ctx(tmp_path, origin, branch="release/v1.2.0")).passed
    assert call("git.pull", ctx(tmp_path, origin, branch="main")).passed
    merges = [call("git.merge", ctx(tmp_path, origin, branch="release/v1.2.0", into="main")) for _ in range(2)]
    assert merges[0].passed and merges[1].outputs["sha"] == merges[0].outputs["sha"]
    parents = g.out(["rev-list", "--parents", "-n", "1", merges[0].outputs["sha"]], repo).split()
    assert len(parents) == 3                                  # a real merge commit: --no-ff, not squash
    assert call("git.contains", ctx(tmp_path, origin, branch="main", ref="release/v1.2.0")).passed
    tags = [call("git.tag_create", ctx(tmp_path, origin, name="v1.2.0", message="Release version 1.2.0"))
            for _ in range(2)]
    assert tags[0].passed and tags[0].outputs == tags[1].outputs
    assert call("git.tag", ctx(tmp_path, origin, name="v1.2.0", annotated=True)).passed
    for _ in range(2):
        assert call("git.push", ctx(tmp_path, origin, branch="main")).passed
        assert call("git.push", ctx(tmp_path, origin, tag="v1.2.0")).passed
    assert call("git.tag", ctx(tmp_path, origin, name="v1.2.0", remote=True)).passed
    changed = call("git.changed_paths", ctx(tmp_path, origin, base="v1.1.0", head="main", patterns=["*.toml"]))
    assert changed.outputs["matches"] == ["pyproject.toml"] and changed.outputs["matched"] is True
    # the rollback: revert the release merge on main with -m 1, once
    reverts = [call("git.revert_merge", ctx(tmp_path, origin, commit=merges[0].outputs["sha"], branch="main"))
               for _ in range(2)]
    assert reverts[0].passed and reverts[0].outputs["sha"] == reverts[1].outputs["sha"]
    assert not (repo / "feature.txt").exists()
    for _ in range(2):
        assert call("git.delete_branch", ctx(tmp_path, origin, name="release/v1.2.0", remote=True)).passed
    assert "release/v1.2.0" not in refs(origin)


def test_version_must_exceed_the_latest_release_tag(tmp_path: Path, origin: Path) -> None:
    clone(tmp_path, origin)
    ok = call("git.version_greater", ctx(tmp_path, origin, version="v1.2.0"))
    assert ok.passed and ok.outputs["latest"] == "v1.1.0"     # rollback/v9.9.9 is outside the release pattern
    same = call("git.version_greater", ctx(tmp_path, origin, version="v1.1.0"))
    assert not same.passed and "not greater than the latest release v1.1.0" in same.summary
    assert "not semantic versioning" in call("git.version_greater", ctx(tmp_path, origin, version="1.2")).summary
    assert not call("git.tag", ctx(tmp_path, origin, name="v1.1.0", exists=False)).passed


def test_secrets_added_in_a_range_are_found_without_their_values(tmp_path: Path, origin: Path) -> None:
    repo = clone(tmp_path, origin)
    base = g.out(["rev-parse", "HEAD"], repo)
    (repo / "settings.py").write_text("DB = 'x'\npassword='hunter2-prod'\n")
    sh(["add", "-A"], repo)
    sh(["commit", "-qm", "oops"], repo)
    found = call("git.no_secrets_added", ctx(tmp_path, origin, base=base, head="HEAD"))
    assert not found.passed and "settings.py" in found.summary and "password assignment" in found.summary
    assert "hunter2-prod" not in repr(found.to_dict())
    assert call("git.no_secrets_added", ctx(tmp_path, origin, base="v1.0.0", head="v1.1.0")).passed


@pytest.mark.parametrize("bad", ["--upload-pack=touch /tmp/pwned", "-x", "a..b", "x\ny"])
def test_option_injection_is_refused(tmp_path: Path, origin: Path, bad: str) -> None:
    clone(tmp_path, origin)
    out = call("git.create_branch", ctx(tmp_path, origin, name=bad, **{"from": "develop"}))
    assert not out.passed and "is not" in out.summary
    push = call("git.push", ctx(tmp_path, origin, branch="main", remote=bad))
    assert not push.passed


def test_changelog_without_entries_or_date_fails(tmp_path: Path, origin: Path) -> None:
    repo = clone(tmp_path, origin)
    (repo / "CHANGELOG.md").write_text("## [1.2.0]\n### Added\n- x\n\n## [1.3.0] - 2024-02-01\n### Added\n\n")
    assert "has no date" in call("file.changelog_section", ctx(tmp_path, origin, version="1.2.0")).summary
    assert "has no entries" in call("file.changelog_section", ctx(tmp_path, origin, version="v1.3.0")).summary
    assert "no section ## [1.4.0]" in call("file.changelog_section", ctx(tmp_path, origin, version="1.4.0")).summary
    assert "expected version 1.2.0, found 1.1.0 in pyproject.toml" in \
        call("file.version_equals", ctx(tmp_path, origin, version="v1.2.0")).summary
