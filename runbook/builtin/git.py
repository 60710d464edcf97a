"""Git checks, in the clone the run owns (``${run.checkout}``, the default ``repo``).

The actions (clone, branch, commit, push, merge, tag, revert, delete) are ``git_actions``. All git runs through ``runbook.git`` (argument lists, ``--end-of-options``,
option-looking values refused).
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any

from runbook.api import git as g
from runbook.api import Context, Outcome, check
from runbook.api import SECRET_PATTERNS as PATTERNS
from ._git_common import DEFAULT_RELEASE_PATTERN, REPO, git_fail, repo_of, semver


# -- checks ----------------------------------------------------------------------------

@check("git.current_branch", args={"properties": {**REPO, "name": {"type": "string"}}, "required": ["name"]},
       outputs={"type": "object", "properties": {"branch": {"type": "string"}, "sha": {"type": "string"}}})
def current_branch(ctx: Context) -> Outcome:
    """The checkout is on branch `name`."""
    repo = repo_of(ctx)
    try:
        branch = g.out(["rev-parse", "--abbrev-ref", "HEAD"], repo)
        sha = g.out(["rev-parse", "HEAD"], repo)
    except g.GitError as exc:
        return git_fail(exc)
    if branch == ctx.args["name"]:
        return Outcome.ok(f"on {branch} at {sha[:12]}", {"branch": branch, "sha": sha}, branch=branch, sha=sha)
    return Outcome.fail(f"expected branch {ctx.args['name']!r}, found {branch!r} in {repo}", {"branch": branch},
                        branch=branch, sha=sha)


@check("git.clean_worktree", args={"properties": dict(REPO)},
       outputs={"type": "object", "properties": {"changes": {"type": "integer"}}})
def clean_worktree(ctx: Context) -> Outcome:
    """No uncommitted or untracked changes."""
    repo = repo_of(ctx)
    try:
        status = g.out(["status", "--porcelain"], repo)
    except g.GitError as exc:
        return git_fail(exc)
    changes = [ln for ln in status.splitlines() if ln.strip()]
    if not changes:
        return Outcome.ok(f"{repo}: work tree clean", changes=0)
    shown = [ctx.redact(c) for c in changes[:10]]
    return Outcome.fail(f"{repo}: {len(changes)} uncommitted change(s), e.g. {shown[0].strip()!r} "
                        "(commit or stash them)", {"changes": shown}, changes=len(changes))


@check("git.up_to_date", args={"properties": {**REPO, "branch": {"type": "string"},
                                               "remote": {"type": "string"}}, "required": ["branch"]},
       outputs={"type": "object", "properties": {"local": {"type": "string"}, "remote": {"type": "string"}}})
def up_to_date(ctx: Context) -> Outcome:
    """The local branch equals the remote's after a fetch."""
    repo = repo_of(ctx)
    try:
        branch = g.safe_ref(ctx.args["branch"], "branch")
        remote = g.safe_ref(ctx.args.get("remote", "origin"), "remote")
        g.git(["fetch", "--quiet", "--end-of-options", remote, branch], repo)
        local = g.rev(repo, f"refs/heads/{branch}")
        theirs = g.rev(repo, f"refs/remotes/{remote}/{branch}")
    except g.GitError as exc:
        return git_fail(exc)
    ev = {"local": local, "remote": theirs}
    if local and local == theirs:
        return Outcome.ok(f"{branch} is up to date with {remote} at {local[:12]}", ev, local=local, remote=theirs)
    return Outcome.fail(f"{branch} differs from {remote}/{branch}: local {str(local)[:12]}, remote {str(theirs)[:12]} "
                        "(pull or push)", ev, local=local or "", remote=theirs or "")


@check("git.contains", args={"properties": {**REPO, "branch": {"type": "string"}, "ref": {"type": "string"}},
                             "required": ["branch", "ref"]},
       outputs={"type": "object", "properties": {"sha": {"type": "string"}}})
def contains(ctx: Context) -> Outcome:
    """`branch` contains `ref` (a branch, tag or commit)."""
    repo = repo_of(ctx)
    try:
        branch = g.rev(repo, g.safe_ref(ctx.args["branch"], "branch"))
        ref = g.rev(repo, g.safe_value(ctx.args["ref"]))
    except g.GitError as exc:
        return git_fail(exc)
    if branch is None or ref is None:
        missing = ctx.args["branch"] if branch is None else ctx.args["ref"]
        return Outcome.fail(f"{missing!r} not found in {repo} (fetch first?)")
    ok = g.git(["merge-base", "--is-ancestor", ref, branch], repo, check=False).code == 0
    if ok:
        return Outcome.ok(f"{ctx.args['branch']} contains {ctx.args['ref']} ({ref[:12]})", sha=ref)
    return Outcome.fail(f"{ctx.args['branch']} does not contain {ctx.args['ref']} ({ref[:12]}): merge it first",
                        sha=ref)


MERGE_ARGS = {**REPO, "branch": {"type": "string", "description": "what would be merged (e.g. origin/main)"},
              "into": {"type": "string", "description": "the branch it would be merged into (e.g. origin/develop)"},
              "fetch": {"type": "boolean", "description": "fetch from origin first (default true)"}}
MERGE_PROPERTIES: dict[str, Any] = {
    "needed": {"type": "boolean"}, "clean": {"type": "boolean"},
    "conflicts": {"type": "array", "items": {"type": "string"}}, "branch_sha": {"type": "string"},
    "into_sha": {"type": "string"}}
MERGE_OUTPUTS = {"type": "object", "properties": MERGE_PROPERTIES}


def _local(ref: str) -> str:
    return ref.split("/", 1)[1] if ref.startswith("origin/") else ref


def _preview(ctx: Context) -> tuple[g.MergePreview, dict[str, Any]]:
    repo = repo_of(ctx)
    branch = g.safe_ref(ctx.args["branch"], "branch")
    into = g.safe_ref(ctx.args["into"], "branch")
    if ctx.args.get("fetch", True):
        g.git(["fetch", "--quiet", "--tags", "origin"], repo)
    preview = g.preview_merge(repo, into, branch)
    outputs = {"needed": preview.needed, "clean": preview.clean, "conflicts": preview.conflicts,
               "branch_sha": g.rev(repo, branch) or "", "into_sha": g.rev(repo, into) or ""}
    return preview, outputs


PREVIEW_OUTPUTS = {"type": "object", "properties": {
    **MERGE_PROPERTIES,
    "merge": {"type": "boolean", "description": "a clean merge is due, to be made directly"},
    "pull_request": {"type": "boolean", "description": "a clean merge is due, through a pull request"}}}


@check("git.merge_preview",
       args={"properties": {**MERGE_ARGS, "pull_request": {"type": "boolean", "description": "the merge goes through "
                                                           "a pull request (e.g. ${env.git.develop_requires_review})"}},
             "required": ["branch", "into"]},
       outputs=PREVIEW_OUTPUTS)
def merge_preview(ctx: Context) -> Outcome:
    """Compute, without touching the work tree, whether merging `branch` into `into` is needed and clean.

    An observation: it passes whatever it finds, so steps can decide on its outputs: `needed`,
    `clean`, `conflicts`, and the way a clean merge that is due goes: `merge` (directly) or
    `pull_request` (when `pull_request` is true). When git cannot tell (no clone, a failed
    fetch) it says so and reports `clean: false`: `git.mergeable`, the check that fails, then
    fails with git's message.
    """
    by_pr = bool(ctx.args.get("pull_request"))
    try:
        preview, outputs = _preview(ctx)
    except g.GitError as exc:
        outputs = {"needed": True, "clean": False, "conflicts": [], "branch_sha": "", "into_sha": "", "merge": False,
                   "pull_request": False}
        return Outcome.ok(f"could not compute the merge of {ctx.args['branch']} into {ctx.args['into']} "
                          f"({exc}); counted as not clean", {**outputs, "error": str(exc)}, **outputs)
    due = preview.needed and preview.clean
    outputs.update(merge=due and not by_pr, pull_request=due and by_pr)
    branch, into = ctx.args["branch"], ctx.args["into"]
    if not preview.needed:
        summary = f"{into} already contains {branch} ({outputs['branch_sha'][:12]}): nothing to merge"
    elif preview.clean:
        summary = f"{branch} merges cleanly into {into}" + (" (through a pull request)" if by_pr else "")
    else:
        summary = f"{branch} conflicts with {into} in {', '.join(preview.conflicts)}"
    return Outcome.ok(summary, dict(outputs), **outputs)


@check("git.mergeable", args={"properties": {**MERGE_ARGS, "fix": {"type": "string", "description": "what to do "
                                                                    "about a conflict (default: merge by hand)"}},
                              "required": ["branch", "into"]},
       outputs=MERGE_OUTPUTS)
def mergeable(ctx: Context) -> Outcome:
    """`branch` merges into `into` without a conflict (or `into` already contains it); a conflict names
    the files and the fix."""
    try:
        preview, outputs = _preview(ctx)
    except g.GitError as exc:
        return git_fail(exc)
    branch, into = ctx.args["branch"], ctx.args["into"]
    if preview.clean:
        return Outcome.ok(f"{branch} merges cleanly into {into}" if preview.needed else
                          f"{into} already contains {branch}", dict(outputs), **outputs)
    files = ", ".join(preview.conflicts)
    fix = ctx.args.get("fix") or (f"merge {_local(branch)} into {_local(into)} by hand (`git checkout {_local(into)} "
                                  f"&& git merge {branch}`), resolve {files}, push {_local(into)}")
    return Outcome.fail(f"{branch} does not merge cleanly into {into}: conflicts in {files}. Fix: {fix}",
                        dict(outputs), **outputs)


def _release_tags(tags: list[str], pattern: str) -> list[tuple[tuple[int, int, int], str]]:
    """The release tags among ``tags`` (those matching the release pattern), oldest first."""
    rx = re.compile(pattern)
    out = []
    for tag in tags:
        version = semver(tag) if rx.search(tag) else None
        if version is not None:
            out.append((version, tag))
    return sorted(out)


@check("git.version_greater", args={"properties": {**REPO, "version": {"type": "string"},
                                                    "pattern": {"type": "string", "format": "regex"},
                                                    "remote": {"type": "string", "description":
                                                               "read the tags of this remote (URL or path) "
                                                               "without a clone: a parameter's check"}},
                                     "required": ["version"]},
       outputs={"type": "object", "properties": {"latest": {"type": "string"}, "version": {"type": "string"}}})
def version_greater(ctx: Context) -> Outcome:
    """`version` is vMAJOR.MINOR.PATCH and greater than the latest release tag (rollback tags don't count)."""
    version = ctx.args["version"]
    pattern = ctx.args.get("pattern") or (ctx.env.get("deploy") or {}).get("release_tag_pattern") or DEFAULT_RELEASE_PATTERN
    wanted = semver(version)
    if wanted is None:
        return Outcome.fail(f"{version!r} is not semantic versioning (vMAJOR.MINOR.PATCH)")
    try:
        if ctx.args.get("remote"):
            listed = g.out(["ls-remote", "--tags", "--refs", "--end-of-options",
                            g.safe_value(str(ctx.args["remote"]), "remote")])
            names = [line.split("refs/tags/", 1)[1] for line in listed.splitlines() if "refs/tags/" in line]
        else:
            repo = repo_of(ctx)
            g.git(["fetch", "--quiet", "--tags", "origin"], repo, check=False)
            names = g.out(["tag", "--list"], repo).splitlines()
        tags = _release_tags(names, pattern)
    except g.GitError as exc:
        return git_fail(exc)
    if not tags:
        return Outcome.ok(f"{version} is the first release (no tag matches {pattern})", latest="", version=version)
    latest_v, latest = tags[-1]
    ev = {"latest": latest, "pattern": pattern, "release_tags": len(tags)}
    if wanted > latest_v:
        return Outcome.ok(f"{version} > latest release {latest}", ev, latest=latest, version=version)
    return Outcome.fail(f"{version} is not greater than the latest release {latest} (tags matching {pattern})", ev,
                        latest=latest, version=version)


@check("git.tag", args={"properties": {**REPO, "name": {"type": "string"}, "exists": {"type": "boolean"},
                                       "annotated": {"type": "boolean"}, "remote": {"type": "boolean"}},
                        "required": ["name"]},
       outputs={"type": "object", "properties": {"sha": {"type": "string"}, "commit": {"type": "string"}}})
def tag(ctx: Context) -> Outcome:
    """Tag `name` exists (annotated, when asked) or, with `exists: false`, is absent (on the remote with `remote`)."""
    repo = repo_of(ctx)
    name = ctx.args["name"]
    want = ctx.args.get("exists", True)
    try:
        g.safe_ref(name, "tag")
        if ctx.args.get("remote"):
            g.git(["fetch", "--quiet", "--tags", "origin"], repo, check=False)
        obj = g.git(["rev-parse", "--verify", "--quiet", "--end-of-options", f"refs/tags/{name}"], repo, check=False)
    except g.GitError as exc:
        return git_fail(exc)
    exists = obj.code == 0
    if not want:
        return Outcome.ok(f"tag {name} does not exist yet") if not exists else \
            Outcome.fail(f"tag {name} already exists ({obj.out.strip()[:12]}): choose another version")
    if not exists:
        return Outcome.fail(f"tag {name} not found in {repo} (git tag -l {name})")
    sha = obj.out.strip()
    kind = g.out(["cat-file", "-t", sha], repo)
    commit = g.rev(repo, f"refs/tags/{name}") or ""
    if ctx.args.get("annotated") and kind != "tag":
        return Outcome.fail(f"tag {name} is lightweight; an annotated tag (git tag -a) is expected", sha=sha,
                            commit=commit)
    return Outcome.ok(f"tag {name} ({kind}) -> {commit[:12]}", {"type": kind, "commit": commit}, sha=sha, commit=commit)


@check("git.changed_paths", args={"properties": {**REPO, "base": {"type": "string"}, "head": {"type": "string"},
                                                 "patterns": {"type": "array", "items": {"type": "string"}}},
                                  "required": ["base", "head"]},
       outputs={"type": "object", "properties": {"paths": {"type": "array", "items": {"type": "string"}},
                                                  "count": {"type": "integer"},
                                                  "matches": {"type": "array", "items": {"type": "string"}},
                                                  "matched": {"type": "boolean"}}})
def changed_paths(ctx: Context) -> Outcome:
    """The paths changed between `base` and `head`; `matches` are those matching `patterns` (globs)."""
    repo = repo_of(ctx)
    try:
        base = g.safe_value(ctx.args["base"])
        head = g.safe_value(ctx.args["head"])
        paths = g.out(["diff", "--name-only", "--end-of-options", f"{base}...{head}"], repo).splitlines()
    except g.GitError as exc:
        return git_fail(exc)
    patterns = ctx.args.get("patterns") or []
    matches = [p for p in paths if any(fnmatch.fnmatch(p, pat) for pat in patterns)]
    summary = f"{len(paths)} path(s) changed between {base} and {head}"
    if patterns:
        summary += f"; {len(matches)} match {', '.join(patterns)}"
    return Outcome.ok(summary, {"paths": paths[:200], "matches": matches}, paths=paths, count=len(paths),
                      matches=matches, matched=bool(matches))


@check("git.no_secrets_added", args={"properties": {**REPO, "base": {"type": "string"}, "head": {"type": "string"}},
                                     "required": ["base", "head"]},
       outputs={"type": "object", "properties": {"findings": {"type": "integer"}}})
def no_secrets_added(ctx: Context) -> Outcome:
    """No added line between `base` and `head` holds a secret (AWS keys, GitHub tokens, private keys, password=).

    The guide's `git log -p -S 'password='` done properly: every added line of every
    commit in the range; the evidence names file and commit, never the value.
    """
    repo = repo_of(ctx)
    try:
        base = g.safe_value(ctx.args["base"])
        head = g.safe_value(ctx.args["head"])
        log = g.git(["log", "-p", "--no-color", "--format=commit %H", "--end-of-options", f"{base}..{head}"], repo).out
    except g.GitError as exc:
        return git_fail(exc)
    findings: list[dict[str, Any]] = []
    commit, path = "", ""
    for line in log.splitlines():
        if line.startswith("commit "):
            commit = line.split()[1]
        elif line.startswith("+++ "):
            path = line[6:] if line.startswith("+++ b/") else line[4:]
        elif line.startswith("+") and not line.startswith("+++"):
            for pattern in PATTERNS:
                if pattern.search(line[1:]):
                    findings.append({"commit": commit, "file": path, "kind": _kind(pattern.pattern)})
                    break
    if not findings:
        return Outcome.ok(f"no secrets in lines added between {base} and {head}", findings=0)
    first = findings[0]
    return Outcome.fail(f"{len(findings)} possible secret(s) added, first in {first['file']} at commit "
                        f"{first['commit'][:12]} ({first['kind']}); remove it and rotate the credential",
                        {"findings": findings[:50]}, findings=len(findings))


def _kind(pattern: str) -> str:
    for word, kind in (("PRIVATE KEY", "private key"), ("AKIA", "AWS access key"), ("secret_access", "AWS secret"),
                       ("gh[", "GitHub token"), ("github_pat", "GitHub token"), ("eyJ", "JWT"),
                       ("bearer", "bearer token"), ("://", "password in a URL"), ("password", "password assignment")):
        if word in pattern:
            return kind
    return "secret"
