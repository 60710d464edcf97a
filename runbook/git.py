"""The one door to git: argument lists, ``--end-of-options``, option-looking values refused.

Everything that runs git (the git plugins, the GitHub stand-in's merges, the sandbox's
repositories) goes through ``git()`` here. Values that come from runbooks or operators
(branch, tag and remote names, paths) pass ``safe_ref``/``safe_value`` first, so a value
such as ``--upload-pack=...`` can never become an option.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from . import proc
from .errors import ExternalError

REF = re.compile(r"^(?!-)(?!.*\.\.)(?!.*//)(?!.*@\{)[A-Za-z0-9._/+-]+(?<![./])$")
GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true", "LC_ALL": "C"}


class GitError(ExternalError):
    """A git command failed; names the command and what git said."""


@dataclass
class Result:
    out: str
    err: str
    code: int


def safe_value(value: str, what: str = "value") -> str:
    """Refuse values that git could read as an option."""
    if not isinstance(value, str) or not value or value.startswith("-") or "\0" in value or "\n" in value:
        raise GitError(f"git {what}", f"{value!r} is not allowed (it is empty, starts with '-', or has control "
                                      "characters)", "use a plain name")
    return value


def safe_ref(value: str, what: str = "ref") -> str:
    """A branch or tag name: safe_value plus git's ref-name rules."""
    safe_value(value, what)
    if not REF.match(value) or value.endswith(".lock"):
        raise GitError(f"git {what}", f"{value!r} is not a valid {what} name", "use letters, digits, '.', '-', '_', '/'")
    return value


def git(args: Sequence[str], cwd: Path | str | None = None, check: bool = True, timeout: float | None = 300,
        env: dict[str, str] | None = None, input_text: str | None = None) -> Result:
    """Run ``git ARGS`` (never through a shell). Raises GitError when ``check`` and it fails."""
    full_env = dict(GIT_ENV)
    full_env.update(env or {})
    done = proc.run(["git", *args], cwd=cwd, env=full_env, timeout=timeout, input_text=input_text)
    result = Result(done.stdout, done.stderr, done.exit_code)
    if check and done.exit_code != 0:
        sub = " ".join(a for a in args[:3] if not a.startswith("--end"))
        last = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:] or [f"exit {done.exit_code}"]
        raise GitError(f"git {sub}", last[0], f"in {cwd}" if cwd else "")
    return result


def out(args: Sequence[str], cwd: Path | str | None = None) -> str:
    """The trimmed standard output of a git command that must succeed."""
    return git(args, cwd).out.strip()


def rev(cwd: Path | str, ref: str) -> str | None:
    """The commit a ref points to, or None."""
    safe_value(ref)
    r = git(["rev-parse", "--verify", "--quiet", "--end-of-options", ref + "^{commit}"], cwd, check=False)
    return r.out.strip() or None if r.code == 0 else None


def identity_env(name: str, email: str) -> dict[str, str]:
    """Author and committer for commits the engine makes on someone's behalf."""
    return {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email, "GIT_COMMITTER_NAME": name,
            "GIT_COMMITTER_EMAIL": email}


def init_bare(path: Path, default_branch: str = "main") -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(["init", "--quiet", "--bare", f"--initial-branch={safe_ref(default_branch)}", str(path)])
    return path


def is_repo(path: Path) -> bool:
    return (Path(path) / ".git").exists() or (Path(path) / "HEAD").is_file() and (Path(path) / "objects").is_dir()


def environ_identity() -> dict[str, str]:
    """A fallback identity for commits when git has none configured (CI machines)."""
    name = os.environ.get("GIT_AUTHOR_NAME") or "runbook-engine"
    email = os.environ.get("GIT_AUTHOR_EMAIL") or "runbook-engine@localhost"
    return identity_env(name, email)


@dataclass
class MergePreview:
    """What merging ``theirs`` into ``ours`` would do, computed without touching any work tree."""

    needed: bool                 # ours does not contain theirs yet
    clean: bool                  # the merge has no conflict (True when not needed)
    conflicts: list[str]         # the files that conflict, sorted


def preview_merge(cwd: Path | str, ours: str, theirs: str) -> MergePreview:
    """Merge ``theirs`` into ``ours`` in memory (``git merge-tree --write-tree``, git 2.38+).

    Raises GitError when either side is unknown or git cannot compute the merge.
    """
    for ref in (ours, theirs):
        if rev(cwd, ref) is None:
            raise GitError("git merge-tree", f"{ref!r} is not a commit here", f"fetch it first (in {cwd})")
    if git(["merge-base", "--is-ancestor", "--end-of-options", theirs, ours], cwd, check=False).code == 0:
        return MergePreview(needed=False, clean=True, conflicts=[])
    r = git(["merge-tree", "--write-tree", "--name-only", "--no-messages", "--end-of-options", ours, theirs], cwd,
            check=False)
    if r.code not in (0, 1):
        last = (r.err.strip() or r.out.strip()).splitlines()[-1:] or [f"exit {r.code}"]
        raise GitError("git merge-tree", last[0], f"in {cwd} (git 2.38 or newer is needed)")
    files = sorted({line.strip() for line in r.out.splitlines()[1:] if line.strip()})
    return MergePreview(needed=True, clean=r.code == 0, conflicts=files if r.code == 1 else [])
