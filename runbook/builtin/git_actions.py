"""git.* actions, in the clone the run owns (``${run.checkout}``, the default ``repo``): clone,
pull, create a branch, commit, push, merge, tag, revert a merge, delete a branch.

Every action records the resulting SHA and has a probe, looked at first (``probed``): run
twice, an action does its effect once. All git runs through ``runbook.git`` (argument lists,
``--end-of-options``, option-looking values refused).
"""

from __future__ import annotations

import functools
import re
from typing import Callable

from runbook.api import git as g
from runbook.api import Context, Outcome, action, probe
from ._git_common import REPO, SHA, git_fail, main_branch, repo_of


def probed(probe_fn: Callable[[Context], Outcome | None], on_found: Callable[[Context], None] | None = None,
           first: Callable[[Context], Outcome | None] | None = None) -> Callable[[Callable[[Context], Outcome]],
                                                                               Callable[[Context], Outcome]]:
    """The probe-then-act shape of every git action, written once: the probe looks first and, when
    the effect is already there, that is the outcome (run twice, an action does its effect once);
    else the action acts, and a git command it runs that fails is its failed outcome. ``first``: a
    refusal that comes before the probe; ``on_found``: what is still done when the effect was found
    (a clone is fetched)."""
    def deco(fn: Callable[[Context], Outcome]) -> Callable[[Context], Outcome]:
        @functools.wraps(fn)
        def act(ctx: Context) -> Outcome:
            refused = first(ctx) if first is not None else None
            if refused is not None:
                return refused
            found = probe_fn(ctx)
            if found is not None:
                if on_found is not None:
                    on_found(ctx)
                return found
            try:
                return fn(ctx)
            except g.GitError as exc:        # a git command refused: a failed outcome naming it
                return git_fail(exc)
        return act
    return deco


def _fetch(ctx: Context) -> None:
    g.git(["fetch", "--quiet", "--tags", "origin"], repo_of(ctx))


def _tag_name_problem(ctx: Context) -> Outcome | None:
    pattern = ctx.args.get("pattern")
    if pattern and not re.search(pattern, str(ctx.args["name"])):
        return Outcome.fail(f"tag name {ctx.args['name']!r} does not match {pattern} (the environment's pattern "
                            "for this kind of tag): nothing tagged")
    return None


# -- actions ---------------------------------------------------------------------------

@probe("git.clone")
def clone_probe(ctx: Context) -> Outcome | None:
    repo = repo_of(ctx)
    if not (repo / ".git").exists():
        return None
    sha = g.out(["rev-parse", "HEAD"], repo)
    return Outcome.ok(f"{repo} is already a clone at {sha[:12]}", path=str(repo), sha=sha)


@action("git.clone", args={"properties": {**REPO, "remote": {"type": "string"}, "branch": {"type": "string"}}},
        outputs={"type": "object", "properties": {"path": {"type": "string"}, "sha": {"type": "string"}}},
        side_effect=False)
@probed(clone_probe, on_found=_fetch)
def clone(ctx: Context) -> Outcome:
    """Clone `remote` (default: the environment's git.remote) into the run's checkout, or fetch if it is there."""
    repo = repo_of(ctx)
    remote = ctx.args.get("remote") or (ctx.env.get("git") or {}).get("remote")
    if not remote:
        return Outcome.fail("no remote to clone: set git.remote in the environment or pass `remote`")
    g.safe_value(str(remote), "remote")
    repo.parent.mkdir(parents=True, exist_ok=True)
    args = ["clone", "--quiet"]
    if ctx.args.get("branch"):
        args += ["--branch", g.safe_ref(ctx.args["branch"], "branch")]
    g.git(args + ["--end-of-options", str(remote), str(repo)])
    sha = g.out(["rev-parse", "HEAD"], repo)
    return Outcome.ok(f"cloned {remote} into {repo} at {sha[:12]}", {"remote": str(remote), "sha": sha},
                      path=str(repo), sha=sha)


@action("git.pull", args={"properties": {**REPO, "branch": {"type": "string"}}, "required": ["branch"]},
        outputs=SHA, side_effect=False)
def pull(ctx: Context) -> Outcome:
    """Check out `branch` and fast-forward it to origin (the guide's checkout + pull)."""
    repo = repo_of(ctx)
    try:
        branch = g.safe_ref(ctx.args["branch"], "branch")
        g.git(["fetch", "--quiet", "--tags", "origin"], repo)
        if g.rev(repo, f"refs/heads/{branch}") is None:
            g.git(["checkout", "--quiet", "-b", branch, "--track", f"origin/{branch}"], repo)
        else:
            g.git(["checkout", "--quiet", branch, "--"], repo)
            g.git(["merge", "--quiet", "--ff-only", f"origin/{branch}"], repo)
        sha = g.out(["rev-parse", "HEAD"], repo)
    except g.GitError as exc:
        return git_fail(exc)
    return Outcome.ok(f"{branch} at {sha[:12]} (up to date with origin)", sha=sha)


@probe("git.create_branch")
def create_branch_probe(ctx: Context) -> Outcome | None:
    repo = repo_of(ctx)
    name = g.safe_ref(ctx.args["name"], "branch")
    sha = g.rev(repo, f"refs/heads/{name}")
    if sha is None:
        return None
    g.git(["checkout", "--quiet", name, "--"], repo)
    return Outcome.ok(f"branch {name} already exists at {sha[:12]}", sha=sha)


@action("git.create_branch", args={"properties": {**REPO, "name": {"type": "string"}, "from": {"type": "string"}},
                                   "required": ["name", "from"]}, outputs=SHA)
@probed(create_branch_probe)
def create_branch(ctx: Context) -> Outcome:
    """Create branch `name` from `from` and check it out."""
    repo = repo_of(ctx)
    name = g.safe_ref(ctx.args["name"], "branch")
    start = g.safe_ref(ctx.args["from"], "branch")
    g.git(["fetch", "--quiet", "origin"], repo, check=False)
    if g.rev(repo, f"refs/remotes/origin/{name}") is not None:
        g.git(["checkout", "--quiet", "-b", name, "--track", f"origin/{name}"], repo)
        sha = g.out(["rev-parse", "HEAD"], repo)
        return Outcome.ok(f"{name} already exists on origin: checked it out at {sha[:12]}", {"sha": sha}, sha=sha)
    base = f"origin/{start}" if g.rev(repo, f"refs/remotes/origin/{start}") else start
    g.git(["checkout", "--quiet", "-b", name, base], repo)
    sha = g.out(["rev-parse", "HEAD"], repo)
    return Outcome.ok(f"created {name} from {start} at {sha[:12]}", {"sha": sha}, sha=sha)


@probe("git.commit")
def commit_probe(ctx: Context) -> Outcome | None:
    repo = repo_of(ctx)
    r = g.git(["log", "-1", "--format=%H%n%B"], repo, check=False)
    if r.code != 0:
        return None
    sha, _, message = r.out.partition("\n")
    clean = not g.out(["status", "--porcelain"], repo)
    if message.strip() == ctx.args["message"].strip() and clean:
        return Outcome.ok(f"already committed as {sha[:12]}", sha=sha)
    return None


@action("git.commit", args={"properties": {**REPO, "message": {"type": "string", "minLength": 1},
                                           "paths": {"type": "array", "items": {"type": "string"}}},
                            "required": ["message"]}, outputs=SHA)
@probed(commit_probe)
def commit(ctx: Context) -> Outcome:
    """Commit the given paths (default: every change) with `message`."""
    repo = repo_of(ctx)
    paths = [g.safe_value(p, "path") for p in ctx.args.get("paths") or []]
    g.git(["add", "--all", "--", *paths] if paths else ["add", "--all"], repo)
    if not g.out(["status", "--porcelain"], repo):
        return Outcome.fail(f"nothing to commit in {repo}: were the files changed?")
    env = {} if g.git(["config", "user.email"], repo, check=False).out.strip() else g.environ_identity()
    g.git(["commit", "--quiet", "-m", ctx.args["message"]], repo, env=env)
    sha = g.out(["rev-parse", "HEAD"], repo)
    return Outcome.ok(f"committed {sha[:12]}: {ctx.args['message']}", {"sha": sha}, sha=sha)


@probe("git.push")
def push_probe(ctx: Context) -> Outcome | None:
    repo = repo_of(ctx)
    ref = _push_ref(ctx)
    remote = g.safe_ref(ctx.args.get("remote", "origin"), "remote")
    local = g.git(["rev-parse", "--verify", "--quiet", ref], repo, check=False).out.strip()
    line = g.git(["ls-remote", "--end-of-options", remote, ref], repo, check=False).out.split()
    if local and line and line[0] == local:
        return Outcome.ok(f"{ref} is already on {remote} at {local[:12]}", sha=local)
    return None


@action("git.push", args={"properties": {**REPO, "branch": {"type": "string"}, "tag": {"type": "string"},
                                         "remote": {"type": "string"}}}, outputs=SHA)
@probed(push_probe)
def push(ctx: Context) -> Outcome:
    """Push `branch` or `tag` to the remote (default origin)."""
    repo = repo_of(ctx)
    remote = g.safe_ref(ctx.args.get("remote", "origin"), "remote")
    ref = _push_ref(ctx)
    g.git(["push", "--quiet", "--end-of-options", remote, f"{ref}:{ref}"], repo)
    sha = g.out(["rev-parse", ref], repo)
    return Outcome.ok(f"pushed {ref} to {remote} ({sha[:12]})", {"ref": ref, "sha": sha}, sha=sha)


def _push_ref(ctx: Context) -> str:
    if ctx.args.get("tag"):
        return "refs/tags/" + g.safe_ref(ctx.args["tag"], "tag")
    if ctx.args.get("branch"):
        return "refs/heads/" + g.safe_ref(ctx.args["branch"], "branch")
    raise g.GitError("git push", "give `branch` or `tag`")


@probe("git.merge")
def merge_probe(ctx: Context) -> Outcome | None:
    repo = repo_of(ctx)
    branch = g.rev(repo, g.safe_ref(ctx.args["branch"], "branch"))
    into = g.rev(repo, g.safe_ref(ctx.args["into"], "branch"))
    if branch and into and branch != into and \
            g.git(["merge-base", "--is-ancestor", branch, into], repo, check=False).code == 0:
        return Outcome.ok(f"{ctx.args['into']} already contains {ctx.args['branch']} ({into[:12]})", sha=into)
    return None


@action("git.merge", args={"properties": {**REPO, "branch": {"type": "string"}, "into": {"type": "string"},
                                          "message": {"type": "string"}}, "required": ["branch", "into"]},
        outputs=SHA)
@probed(merge_probe)
def merge(ctx: Context) -> Outcome:
    """Merge `branch` into `into` with a merge commit (`--no-ff`, never squash)."""
    repo = repo_of(ctx)
    branch = g.safe_ref(ctx.args["branch"], "branch")
    into = g.safe_ref(ctx.args["into"], "branch")
    g.git(["checkout", "--quiet", into, "--"], repo)
    message = ctx.args.get("message") or f"Merge {branch} into {into}"
    env = {} if g.git(["config", "user.email"], repo, check=False).out.strip() else g.environ_identity()
    result = g.git(["merge", "--no-ff", "--no-edit", "-m", message, "--end-of-options", branch], repo, check=False,
                   env=env)
    if result.code != 0:
        files = sorted(set(g.git(["diff", "--name-only", "--diff-filter=U"], repo, check=False).out.split()))
        g.git(["merge", "--abort"], repo, check=False)
        if not files:
            return Outcome.fail(f"merging {branch} into {into} failed: "
                                f"{(result.err.strip() or result.out.strip()).splitlines()[-1:]}")
        return Outcome.fail(f"merging {branch} into {into} conflicts in {', '.join(files)}. Fix: `git checkout "
                            f"{into} && git merge {branch}`, resolve {', '.join(files)}, push {into}, then resume",
                            {"conflicts": files})
    sha = g.out(["rev-parse", "HEAD"], repo)
    return Outcome.ok(f"merged {branch} into {into}: {sha[:12]}", {"sha": sha}, sha=sha)


@probe("git.tag_create")
def tag_create_probe(ctx: Context) -> Outcome | None:
    repo = repo_of(ctx)
    name = g.safe_ref(ctx.args["name"], "tag")
    commit = g.rev(repo, f"refs/tags/{name}")
    target = g.rev(repo, g.safe_value(ctx.args.get("ref", "HEAD")))
    if commit and commit == target:
        sha = g.out(["rev-parse", f"refs/tags/{name}"], repo)
        return Outcome.ok(f"tag {name} already marks {commit[:12]}", sha=sha, commit=commit)
    return None


@action("git.tag_create", args={"properties": {**REPO, "name": {"type": "string"}, "ref": {"type": "string"},
                                               "message": {"type": "string", "minLength": 1},
                                               "pattern": {"type": "string", "format": "regex",
                                                           "description": "the name must match it (e.g. "
                                                                          "env.deploy.rollback_tag_pattern)"}},
                                "required": ["name", "message"]},
        outputs={"type": "object", "properties": {"sha": {"type": "string"}, "commit": {"type": "string"}}})
@probed(tag_create_probe, first=_tag_name_problem)
def tag_create(ctx: Context) -> Outcome:
    """Create the annotated tag `name` on `ref` (default HEAD); with `pattern`, only a name matching it."""
    repo = repo_of(ctx)
    name = g.safe_ref(ctx.args["name"], "tag")
    ref = g.safe_value(ctx.args.get("ref", "HEAD"))
    if g.rev(repo, f"refs/tags/{name}"):
        return Outcome.fail(f"tag {name} exists on another commit; releases are never re-tagged")
    env = {} if g.git(["config", "user.email"], repo, check=False).out.strip() else g.environ_identity()
    g.git(["tag", "-a", name, "-m", ctx.args["message"], "--end-of-options", ref], repo, env=env)
    sha = g.out(["rev-parse", f"refs/tags/{name}"], repo)
    commit = g.rev(repo, f"refs/tags/{name}") or ""
    return Outcome.ok(f"tagged {commit[:12]} as {name}", {"tag": name, "commit": commit}, sha=sha, commit=commit)


@probe("git.revert_merge")
def revert_merge_probe(ctx: Context) -> Outcome | None:
    repo = repo_of(ctx)
    target = g.rev(repo, g.safe_value(ctx.args["commit"]))
    branch = g.safe_ref(ctx.args["branch"], "branch")
    if target is None:
        return None
    log = g.git(["log", "--format=%H %B%x00", "-n", "200", "--end-of-options", branch], repo, check=False).out
    for entry in log.split("\0"):
        if f"This reverts commit {target}" in entry:
            sha = entry.strip().split()[0]
            return Outcome.ok(f"{target[:12]} is already reverted on {branch} by {sha[:12]}", sha=sha)
    return None


@action("git.revert_merge", args={"properties": {**REPO, "commit": {"type": "string"},
                                                 "branch": {"type": "string"}, "message": {"type": "string"}},
                                  "required": ["commit", "branch"]}, outputs=SHA)
@probed(revert_merge_probe)
def revert_merge(ctx: Context) -> Outcome:
    """Revert a release's merge commit on `branch` with `-m 1` (the mainline parent; the guide forgets it)."""
    repo = repo_of(ctx)
    target = g.rev(repo, g.safe_value(ctx.args["commit"]))
    branch = g.safe_ref(ctx.args["branch"], "branch")
    if target is None:
        return Outcome.fail(f"{ctx.args['commit']!r} not found in {repo}")
    parents = g.out(["rev-list", "--parents", "-n", "1", target], repo).split()[1:]
    g.git(["checkout", "--quiet", branch, "--"], repo)
    env = {} if g.git(["config", "user.email"], repo, check=False).out.strip() else g.environ_identity()
    args = ["revert", "--no-edit"] + (["-m", "1"] if len(parents) > 1 else []) + ["--end-of-options", target]
    result = g.git(args, repo, check=False, env=env)
    if result.code != 0:
        g.git(["revert", "--abort"], repo, check=False)
        return Outcome.fail(f"reverting {target[:12]} conflicts with later commits on {branch}; revert by hand")
    if ctx.args.get("message"):
        g.git(["commit", "--amend", "--quiet", "-m", ctx.args["message"] + f"\n\nThis reverts commit {target}."],
              repo, env=env)
    sha = g.out(["rev-parse", "HEAD"], repo)
    return Outcome.ok(f"reverted {target[:12]} on {branch}: {sha[:12]}", {"reverted": target, "sha": sha}, sha=sha)


@probe("git.delete_branch")
def delete_branch_probe(ctx: Context) -> Outcome | None:
    repo = repo_of(ctx)
    name = g.safe_ref(ctx.args["name"], "branch")
    local = g.rev(repo, f"refs/heads/{name}")
    remote = ctx.args.get("remote") and g.git(["ls-remote", "--exit-code", "origin", f"refs/heads/{name}"], repo,
                                               check=False).code == 0
    if not local and not remote:
        return Outcome.ok(f"branch {name} is already gone", deleted=[])
    return None


@action("git.delete_branch", args={"properties": {**REPO, "name": {"type": "string"}, "remote": {"type": "boolean"}},
                                   "required": ["name"]},
        outputs={"type": "object", "properties": {"deleted": {"type": "array", "items": {"type": "string"}}}})
@probed(delete_branch_probe)
def delete_branch(ctx: Context) -> Outcome:
    """Delete branch `name` locally and, with `remote: true`, on origin."""
    repo = repo_of(ctx)
    deleted = []
    name = g.safe_ref(ctx.args["name"], "branch")
    if g.out(["rev-parse", "--abbrev-ref", "HEAD"], repo) == name:
        g.git(["checkout", "--quiet", main_branch(ctx), "--"], repo)
    if g.rev(repo, f"refs/heads/{name}"):
        g.git(["branch", "-D", "--end-of-options", name], repo)
        deleted.append(f"local {name}")
    if ctx.args.get("remote") and g.git(["ls-remote", "--exit-code", "origin", f"refs/heads/{name}"], repo,
                                        check=False).code == 0:
        g.git(["push", "--quiet", "origin", "--delete", "--end-of-options", name], repo)
        deleted.append(f"origin/{name}")
    return Outcome.ok(f"deleted {', '.join(deleted) or 'nothing (already gone)'}", deleted=deleted)
