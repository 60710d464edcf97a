"""What the git checks (``git``) and actions (``git_actions``) share: the run's clone, errors as
outcomes, release versions. Not a plugin module (its name starts with ``_``)."""

from __future__ import annotations

import re
from pathlib import Path

from runbook.api import git as g
from runbook.api import Context, Outcome

REPO = {"repo": {"type": "string", "description": "path of the clone (default: the run's checkout)"}}
SHA = {"type": "object", "properties": {"sha": {"type": "string"}}}
SEMVER = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)$")
DEFAULT_RELEASE_PATTERN = r"^v\d+\.\d+\.\d+$"


def repo_of(ctx: Context) -> Path:
    value = ctx.args.get("repo")
    if value:
        return ctx.path(value)
    if ctx.checkout is None:
        return ctx.root
    return Path(ctx.checkout)


def git_fail(exc: g.GitError) -> Outcome:
    return Outcome.fail(str(exc))


def semver(text: str) -> tuple[int, int, int] | None:
    m = SEMVER.match(text)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


def main_branch(ctx: Context) -> str:
    return str((ctx.env.get("git") or {}).get("main", "main"))
