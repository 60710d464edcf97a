"""GitHub checks and actions: permission, release PR, mergeability, approval gate, merge, releases, runs, issues.

Every call goes through ``runbook.github_api`` (the one module importing PyGithub);
clients are built from ``env.github`` at run time. Each action with a side effect has
a probe, and checks it first, so running it twice does its effect once. Summaries say
what was expected, what was found and where to look; evidence holds no token.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any, Callable

from runbook.api import github as api
from runbook.api import ExternalError
from runbook.api import Context, Outcome, action, check, clock, probe

NUMBER: dict[str, Any] = {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "string", "pattern": "^[0-9]+$"}]}
FULL_SHA = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
STR = {"type": "string"}
INT = {"type": "integer"}
PR_OUTPUTS = {"type": "object", "properties": {"number": INT, "url": STR, "head_sha": STR}}
DEPLOYMENT_PLAN = ("Staging deployment verified", "Production approval obtained", "Blue/green deployment ready",
                   "Rollback plan reviewed")


class _BadArgument(Exception):
    """An argument that cannot be used as given (the runbook must change)."""


def _guard(func: Callable[[Context], Outcome]) -> Callable[[Context], Outcome]:
    """Translated GitHub errors and bad arguments become a failed outcome, not a traceback."""
    @functools.wraps(func)
    def run(ctx: Context) -> Outcome:
        try:
            return func(ctx)
        except ExternalError as exc:
            evidence: dict[str, Any] = {"operation": exc.operation, "error": ctx.redact(str(exc))}
            status = getattr(exc.original, "status", None)
            if status is not None:
                evidence["status"] = status
            return Outcome.fail(ctx.redact(str(exc)), evidence)
        except _BadArgument as exc:
            return Outcome.fail(ctx.redact(str(exc)), {"error": ctx.redact(str(exc))})
    return run


def _number(value: Any, what: str = "pr") -> int:
    if isinstance(value, bool) or not str(value).isdigit() or int(value) < 1:
        raise _BadArgument(f"{what}: expected a pull request or issue number, found {value!r}")
    return int(value)


def _sha(value: Any) -> str:
    sha = str(value or "")
    if not FULL_SHA.match(sha):
        raise _BadArgument(f"sha: expected the approved head commit (40 hex digits, e.g. "
                           f"${{steps.APPROVAL.approval.head_sha}}), found {sha!r}")
    return sha


# -- permission ------------------------------------------------------------------------
@check("github.admin_permission", args={"properties": {}},
       outputs={"type": "object", "properties": {"login": STR, "permission": STR}})
@_guard
def admin_permission(ctx: Context) -> Outcome:
    """Pass when the token's user (the operator on GitHub) has admin permission on env.github.repo."""
    with api.connect(ctx.env) as conn:
        login, repo = conn.login, conn.repo
        with conn.translate(f"read permissions on {conn.settings.repo}"):
            perms = repo.permissions
            level = "admin" if perms.admin else "maintain" if getattr(perms, "maintain", False) else \
                "write" if perms.push else "triage" if getattr(perms, "triage", False) else "read"
        evidence = {"repo": conn.settings.repo, "login": login, "permission": level, "token_from": conn.source}
        if level == "admin":
            return Outcome.ok(f"{login} has admin on {conn.settings.repo}", evidence, login=login, permission=level)
        return Outcome.fail(f"expected admin on {conn.settings.repo} for {login} (the token's user), found {level}; "
                            f"ask a repository admin (Settings > Collaborators and teams) or use an admin's token "
                            f"in {conn.source}", evidence, login=login, permission=level)


# -- release pull request --------------------------------------------------------------
def changelog_section(text: str, version: str) -> str:
    """The body of the ``## [X.Y.Z]`` (or ``## vX.Y.Z``) section of a changelog, or ''."""
    heading = re.compile(rf"^##\s+\[?v?{re.escape(version.lstrip('v'))}\]?(\s|$)")
    lines: list[str] = []
    inside = False
    for line in text.splitlines():
        if line.startswith("## "):
            if inside:
                break
            inside = bool(heading.match(line))
        elif inside:
            lines.append(line)
    return "\n".join(lines).strip()


def _results_so_far(ctx: Context) -> list[str]:
    """This run's results as checklist lines, when the engine offers them (``results.summaries()``)."""
    summaries = getattr(ctx.results, "summaries", None)
    if not callable(summaries):
        return []
    lines = []
    for r in summaries():
        mark = "x" if r.get("passed") else " "
        note = " (skipped)" if r.get("skipped") else "" if r.get("passed") else " (FAILED)"
        lines.append(f"- [{mark}] {r.get('step')}.{r.get('item')}: {r.get('summary', '')}{note}")
    return lines


def release_body(ctx: Context, version: str) -> str:
    """The guide's PR description: version, CHANGELOG section, checks so far, deployment plan."""
    path = ctx.args.get("changelog")
    section = ""
    if path:
        file = ctx.path(path)
        if not file.is_file():
            raise _BadArgument(f"changelog: expected a file, found nothing at {file}")
        section = changelog_section(file.read_text(encoding="utf-8", errors="replace"), version)
    date = ctx.args.get("release_date") or clock.now().date().isoformat()
    results = _results_so_far(ctx) or [f"- See the audit journal of run {ctx.run_id or '(this run)'}"]
    parts = ["## Release Information", f"**Version**: {version}", f"**Release Date**: {date}", "",
             "## What's included", section or f"_No CHANGELOG section for {version} found._", "",
             "## Testing completed", *results, "",
             "## Deployment plan", *(f"- [ ] {item}" for item in DEPLOYMENT_PLAN), "",
             f"_Opened by runbook run {ctx.run_id}._" if ctx.run_id else ""]
    return "\n".join(parts).strip() + "\n"


def _pr_outcome(ctx: Context, pr: Any, verb: str) -> Outcome:
    head, base = pr.head.ref, pr.base.ref
    evidence = {"number": pr.number, "url": pr.html_url, "head": head, "base": base, "head_sha": pr.head.sha,
                "title": ctx.redact(pr.title or "")}
    return Outcome.ok(f"pull request #{pr.number} from {head} into {base} {verb}: {pr.html_url}", evidence,
                      number=pr.number, url=pr.html_url, head_sha=pr.head.sha)


def _find_pr(ctx: Context, conn: api.Connection) -> Outcome | None:
    head, base = str(ctx.args["head"]), str(ctx.args["base"])
    owner = conn.settings.repo.split("/")[0]
    with conn.translate(f"look for an open pull request from {head}"):
        for pr in conn.repo.get_pulls(state="open", head=f"{owner}:{head}", base=base):
            return _pr_outcome(ctx, pr, "is already open")
    return None


@action("github.open_release_pr",
        args={"properties": {"head": STR, "base": STR, "title": STR, "body": STR, "version": STR,
                             "changelog": {"type": "string", "description": "CHANGELOG file for the body's section"},
                             "release_date": STR},
              "required": ["head", "base"]},
        outputs=PR_OUTPUTS)
@_guard
def open_release_pr(ctx: Context) -> Outcome:
    """Open the release pull request (head -> base) unless one is already open from that head."""
    version = str(ctx.args.get("version") or "")
    title = ctx.args.get("title") or (f"Release: {version}" if version else "")
    if not title:
        raise _BadArgument("title: expected a title (or `version:` for 'Release: vX.Y.Z'), found neither")
    with api.connect(ctx.env) as conn:
        found = _find_pr(ctx, conn)
        if found is not None:
            return found
        body = ctx.args.get("body")
        if body is None:
            body = release_body(ctx, version) if version else ""
        with conn.translate(f"open a pull request from {ctx.args['head']} into {ctx.args['base']}"):
            pr = conn.repo.create_pull(base=str(ctx.args["base"]), head=str(ctx.args["head"]), title=str(title),
                                       body=ctx.redact(str(body)))
        return _pr_outcome(ctx, pr, "opened")


@probe("github.open_release_pr")
def open_release_pr_probe(ctx: Context) -> Outcome | None:
    """An open pull request from the head branch."""
    with api.connect(ctx.env) as conn:
        return _find_pr(ctx, conn)


# -- mergeability ----------------------------------------------------------------------
def _conflicting_files(ctx: Context, base_sha: str, head_sha: str) -> list[str] | None:
    """The files merging ``head_sha`` into ``base_sha`` conflicts in, from the local clone (GitHub's API
    does not name them); None when there is no clone or git cannot tell."""
    from runbook.api import git as g

    repo = ctx.path(str(ctx.args["repo"])) if ctx.args.get("repo") else ctx.checkout
    if repo is None or not g.is_repo(Path(repo)):
        return None
    try:
        g.git(["fetch", "--quiet", "origin"], repo, check=False)
        preview = g.preview_merge(repo, base_sha, head_sha)
    except g.GitError:
        return None
    return preview.conflicts


@check("github.pr_mergeable",
       args={"properties": {"pr": NUMBER,
                            "repo": {"type": "string", "description": "a clone, to name the conflicting files "
                                                                      "(default: the run's checkout)"},
                            "fix": {"type": "string", "description": "what to do about a conflict (default: "
                                                                     "merge the base into the head branch)"}},
             "required": ["pr"]},
       outputs={"type": "object", "properties": {
           "mergeable": {"type": ["boolean", "null"]}, "state": STR, "head": STR, "base": STR, "head_sha": STR,
           "base_sha": STR, "conflicts": {"type": "array", "items": STR}, "final": {"type": "boolean"}}})
@_guard
def pr_mergeable(ctx: Context) -> Outcome:
    """Pass when GitHub says the pull request can merge (use ``wait:`` to poll, as clients must).

    GitHub answers ``mergeable: null`` while it computes (after every push to the head or
    the base); ``false`` (``mergeable_state: dirty``) is a conflict: the check fails at once,
    naming the conflicting files (computed in the local clone: GitHub's API does not list
    them) and the fix, so nobody is asked to approve a pull request that cannot merge.
    """
    number = _number(ctx.args["pr"])
    with api.connect(ctx.env) as conn, conn.translate(f"read pull request #{number}"):
        pr = conn.repo.get_pull(number)
        mergeable, state = pr.mergeable, str(pr.mergeable_state or "unknown")
        head, base, head_sha, base_sha = pr.head.ref, pr.base.ref, pr.head.sha, pr.base.sha
        url, pr_state, merged = pr.html_url, pr.state, pr.merged
    outputs: dict[str, Any] = {"mergeable": mergeable, "state": state, "head": head, "base": base,
                               "head_sha": head_sha, "base_sha": base_sha, "conflicts": []}
    evidence = {"pr": number, "url": url, **outputs}
    if pr_state != "open":
        return Outcome(False, f"pull request #{number} is {'merged' if merged else 'closed'}: expected it open "
                              f"({url})", evidence, {**outputs, "final": True})
    if mergeable is None:
        ctx.progress(f"GitHub is computing whether #{number} can merge")
        return Outcome(False, f"GitHub has not computed yet whether pull request #{number} can merge {head} into "
                              f"{base} (mergeable null, mergeable_state {state}); poll with `wait:` ({url})",
                       evidence, outputs)
    if mergeable:
        return Outcome(True, f"pull request #{number} can merge {head} into {base} at head {head_sha[:7]} "
                             f"(mergeable_state {state}): {url}", evidence, outputs)
    files = _conflicting_files(ctx, base_sha, head_sha)
    outputs.update(conflicts=files or [], final=True)
    evidence.update(conflicts=files or [])
    named = ", ".join(files) if files else "files not named (no local clone to compute them in)"
    fix = str(ctx.args.get("fix") or f"merge {base} into {head} (`git checkout {head} && git merge origin/{base}`), "
                                     f"resolve {'them' if files else 'the conflicts'}, push {head}, then resume")
    return Outcome(False, f"pull request #{number} cannot merge {head} into {base} (mergeable_state {state}), "
                          f"conflicts in {named}. Fix: {fix}; nobody is asked to approve it until it can merge "
                          f"({url})", evidence, outputs)


# -- approval gate ---------------------------------------------------------------------
@check("approval.github-pr",
       args={"properties": {"pr": NUMBER, "min": {"type": "integer", "minimum": 1},
                            "roles": {"type": "array", "items": STR}},
             "required": ["pr"]},
       outputs={"type": "object", "properties": {
           "approvers": {"type": "array", "items": STR}, "head_sha": STR, "count": INT,
           "verified": {"type": "boolean"}, "park": {"type": "boolean"}, "roles": {"type": "object"}}})
@_guard
def github_pr_approval(ctx: Context) -> Outcome:
    """DESIGN.md's github-pr gate: distinct approvers on the current head, roles, no change request."""
    number = _number(ctx.args["pr"])
    minimum = int(ctx.args.get("min") or 1)
    roles = [str(r) for r in ctx.args.get("roles") or []]
    security_paths = [str(p) for p in ctx.env.get("security_paths") or []]
    with api.connect(ctx.env) as conn:
        me = conn.login
        with conn.translate(f"read the reviews of pull request #{number}"):
            pr = conn.repo.get_pull(number)
            head, author, url = pr.head.sha, pr.user.login, pr.html_url
            reviews = [api.Review(r.user.login if r.user else "ghost", r.state, r.commit_id or "",
                                  r.submitted_at.isoformat() if r.submitted_at else "", r.id) for r in pr.get_reviews()]
            files = [f.filename for f in pr.get_files()] if security_paths else []
            state, merged = pr.state, pr.merged
    evidence: dict[str, Any] = {"pr": number, "url": url, "head_sha": head, "author": author,
                                "operator": [me, ctx.operator], "min": minimum}
    if state != "open":
        return Outcome.fail(f"pull request #{number} is {'merged' if merged else 'closed'}: an approval gate needs "
                            f"an open pull request ({url})", evidence, park=False, head_sha=head, approvers=[],
                            count=0, verified=True)
    verdict = api.evaluate(reviews, head_sha=head, author=author, operators=[me, ctx.operator], minimum=minimum,
                           roles=roles, members=ctx.env.get("approvers") or {}, changed_files=files,
                           security_paths=security_paths)
    evidence.update({"required_roles": verdict.required_roles, "roles": verdict.roles, "counted": verdict.approvers,
                     "not_counted": verdict.not_counted, "change_requests": verdict.change_requests,
                     "security_files": verdict.security_files, "repeated_approvals": verdict.repeated,
                     "reviews": [{"login": r.login, "state": r.state, "commit": r.commit_id[:12], "id": r.id,
                                  "at": r.submitted_at} for r in reviews]})
    ordered = list(dict.fromkeys(list(verdict.roles.values()) + verdict.approvers))
    outputs = {"approvers": ordered, "head_sha": head, "count": len(ordered), "verified": True,
               "park": verdict.park, "roles": verdict.roles}
    summary = ctx.redact(verdict.summary(minimum))
    if verdict.approved:
        return Outcome(True, summary, evidence, outputs)
    return Outcome(False, f"{summary}; reviewers approve at {url}", evidence, outputs)


# -- merge -----------------------------------------------------------------------------
def _merged(pr: Any, sha: str) -> Outcome | None:
    if not pr.merged:
        return None
    head, merge_sha = pr.head.sha, pr.merge_commit_sha
    evidence = {"number": pr.number, "url": pr.html_url, "head_sha": head, "approved_sha": sha,
                "merge_sha": merge_sha, "base": pr.base.ref}
    outputs = {"merge_sha": merge_sha, "head_sha": head, "number": pr.number, "url": pr.html_url}
    if head != sha:
        return Outcome(False, f"pull request #{pr.number} was merged at head {head[:7]}, not at the approved "
                              f"{sha[:7]}: it was merged outside this run; compare what shipped ({pr.html_url})",
                       evidence, outputs)
    return Outcome(True, f"pull request #{pr.number} is merged into {pr.base.ref}: merge commit {merge_sha[:7]} "
                         f"of the approved head {sha[:7]}", evidence, outputs)


@action("github.merge_pr",
        args={"properties": {"pr": NUMBER, "sha": {"type": "string", "description": "the approved head SHA"},
                             "title": STR},
              "required": ["pr", "sha"]},
        outputs={"type": "object", "properties": {"merge_sha": STR, "head_sha": STR, "number": INT, "url": STR}})
@_guard
def merge_pr(ctx: Context) -> Outcome:
    """Merge with a merge commit (never squash) at exactly the approved head SHA."""
    number, sha = _number(ctx.args["pr"]), _sha(ctx.args.get("sha"))
    with api.connect(ctx.env) as conn:
        with conn.translate(f"read pull request #{number}"):
            pr = conn.repo.get_pull(number)
            done = _merged(pr, sha)
            head, state, url, base = pr.head.sha, pr.state, pr.html_url, pr.base.ref
        if done is not None:
            return done
        evidence = {"number": number, "url": url, "base": base, "approved_sha": sha, "head_sha": head}
        if state != "open":
            return Outcome.fail(f"pull request #{number} is closed without a merge; expected it open ({url})", evidence)
        if head != sha:
            return Outcome.fail(f"not merged: the head of pull request #{number} moved since the approval: approved "
                                f"{sha[:7]}, head is now {head[:7]} (a push after the review); the new head needs "
                                f"its own approvals ({url})", evidence)
        title = str(ctx.args.get("title") or f"Merge pull request #{number} from {pr.head.ref}")
        with conn.translate(f"merge pull request #{number} at {sha[:7]}"):
            status = pr.merge(merge_method="merge", sha=sha, commit_title=title)
        if not status.merged:
            return Outcome.fail(f"GitHub did not merge pull request #{number}: {ctx.redact(status.message or '')} "
                                f"({url})", evidence)
        evidence["merge_sha"] = status.sha
        return Outcome.ok(f"merged pull request #{number} into {base}: merge commit {status.sha[:7]} of the approved "
                          f"head {sha[:7]}", evidence, merge_sha=status.sha, head_sha=sha, number=number, url=url)


@probe("github.merge_pr")
def merge_pr_probe(ctx: Context) -> Outcome | None:
    """The pull request is already merged (at the approved head, or else a failure saying so)."""
    number, sha = _number(ctx.args["pr"]), str(ctx.args.get("sha") or "")
    with api.connect(ctx.env) as conn, conn.translate(f"read pull request #{number}"):
        return _merged(conn.repo.get_pull(number), sha)


# -- release ---------------------------------------------------------------------------
def _release_outcome(release: Any, verb: str) -> Outcome:
    evidence = {"id": release.id, "tag": release.tag_name, "url": release.html_url, "name": release.name}
    return Outcome.ok(f"release {release.tag_name} {verb}: {release.html_url}", evidence, id=release.id,
                      url=release.html_url, tag=release.tag_name)


def _find_release(ctx: Context, conn: api.Connection) -> Outcome | None:
    tag = str(ctx.args["tag"])
    found = conn.find(f"look for the release of tag {tag}", lambda: conn.repo.get_release(tag))
    return _release_outcome(found, "already exists") if found is not None else None


@action("github.create_release",
        args={"properties": {"tag": STR, "name": STR, "body": STR, "prerelease": {"type": "boolean"}},
              "required": ["tag"]},
        outputs={"type": "object", "properties": {"id": INT, "url": STR, "tag": STR}})
@_guard
def create_release(ctx: Context) -> Outcome:
    """Publish a GitHub release from an existing tag."""
    tag = str(ctx.args["tag"])
    with api.connect(ctx.env) as conn:
        found = _find_release(ctx, conn)
        if found is not None:
            return found
        sha = conn.find(f"read tag {tag}", lambda: conn.repo.get_git_ref(f"tags/{tag}").object.sha)
        if sha is None:
            return Outcome.fail(f"expected tag {tag} on {conn.settings.repo}, found none: push the tag first "
                                "(a release is made from the tag)", {"tag": tag, "repo": conn.settings.repo})
        with conn.translate(f"create the release of tag {tag}"):
            release = conn.repo.create_git_release(tag, name=str(ctx.args.get("name") or tag),
                                                   message=ctx.redact(str(ctx.args.get("body") or "")),
                                                   prerelease=bool(ctx.args.get("prerelease", False)))
        return _release_outcome(release, "published")


@probe("github.create_release")
def create_release_probe(ctx: Context) -> Outcome | None:
    """A release for the tag exists."""
    with api.connect(ctx.env) as conn:
        return _find_release(ctx, conn)


def _updated_release(ctx: Context, release: Any) -> Outcome | None:
    """The release already carries the wanted name and note."""
    name, note = ctx.args.get("name"), str(ctx.args.get("note") or "")
    if (name and release.name != name) or (note and note not in (release.body or "")):
        return None
    return _release_outcome(release, f"is already marked ({release.name})")


@action("github.update_release",
        args={"properties": {"tag": STR, "name": {"type": "string", "description": "the release's new title"},
                             "note": {"type": "string", "description": "put at the top of the release notes, once"},
                             "missing_ok": {"type": "boolean", "description": "pass when the tag has no release "
                                                                              "(default false)"}},
              "required": ["tag"]},
        outputs={"type": "object", "properties": {"id": INT, "url": STR, "tag": STR}})
@_guard
def update_release(ctx: Context) -> Outcome:
    """Retitle a GitHub release and put a note at the top of its notes (e.g. a release rolled back)."""
    tag = str(ctx.args["tag"])
    with api.connect(ctx.env) as conn:
        release = conn.find(f"look for the release of tag {tag}", lambda: conn.repo.get_release(tag))
        if release is None:
            if ctx.args.get("missing_ok"):
                return Outcome.ok(f"tag {tag} has no GitHub release: nothing to mark", {"tag": tag}, id=0, url="",
                                  tag=tag)
            return Outcome.fail(f"expected a GitHub release of tag {tag}, found none", {"tag": tag})
        done = _updated_release(ctx, release)
        if done is not None:
            return done
        note, body = ctx.redact(str(ctx.args.get("note") or "")), release.body or ""
        with conn.translate(f"update the release of tag {tag}"):
            updated = release.update_release(name=str(ctx.args.get("name") or release.name or tag),
                                             message=f"{note}\n\n{body}".strip() if note and note not in body
                                             else body, draft=bool(release.draft),
                                             prerelease=bool(release.prerelease))
        return _release_outcome(updated, "updated")


@probe("github.update_release")
def update_release_probe(ctx: Context) -> Outcome | None:
    """The release already carries the name and the note (or, with missing_ok, there is none)."""
    tag = str(ctx.args["tag"])
    with api.connect(ctx.env) as conn:
        release = conn.find(f"look for the release of tag {tag}", lambda: conn.repo.get_release(tag))
    if release is None:
        return Outcome.ok(f"tag {tag} has no GitHub release: nothing to mark", id=0, url="", tag=tag) \
            if ctx.args.get("missing_ok") else None
    return _updated_release(ctx, release)


# -- workflow runs ---------------------------------------------------------------------
WORKFLOW = {"type": "string", "description": "the workflow's file name, e.g. deploy-production.yml"}


@check("github.workflow_run",
       args={"properties": {"head_sha": STR, "workflow": WORKFLOW, "branch": STR, "event": STR},
             "required": ["head_sha"]},
       outputs={"type": "object", "properties": {"run_id": INT, "status": STR, "html_url": STR,
                                                 "conclusion": {"type": ["string", "null"]},
                                                 "final": {"type": "boolean"}}})
@_guard
def workflow_run(ctx: Context) -> Outcome:
    """Pass when the latest workflow run for the commit concluded success (use ``wait:`` to poll)."""
    sha = str(ctx.args["head_sha"])
    workflow = str(ctx.args.get("workflow") or "")
    filters: dict[str, Any] = {k: str(ctx.args[k]) for k in ("branch", "event") if ctx.args.get(k)}
    what = f"workflow {workflow}" if workflow else "any workflow"
    with api.connect(ctx.env) as conn:
        with conn.translate(f"list workflow runs for {sha[:7]}"):
            runs = [r for r in conn.repo.get_workflow_runs(head_sha=sha, **filters)
                    if not workflow or workflow in (r.path.rsplit("/", 1)[-1], r.name)]
        actions = f"{conn.repo.html_url}/actions"
    if not runs:
        ctx.progress(f"no run of {what} for {sha[:7]} yet")
        return Outcome.fail(f"expected a successful run of {what} for {sha[:7]}, found no run yet; the pipeline "
                            f"starts on the push (see {actions})",
                            {"head_sha": sha, "workflow": workflow, "actions": actions},
                            run_id=0, status="none", conclusion=None, html_url=actions)
    run = max(runs, key=lambda r: (r.created_at, r.id))
    evidence = {"head_sha": sha, "workflow": workflow or run.path, "run_id": run.id, "status": run.status,
                "conclusion": run.conclusion, "html_url": run.html_url, "runs_seen": len(runs)}
    outputs = {"run_id": run.id, "status": run.status, "conclusion": run.conclusion, "html_url": run.html_url}
    if run.status != "completed":
        ctx.progress(f"run {run.id} is {run.status}: {run.html_url}")
        return Outcome(False, f"run {run.id} of {what} for {sha[:7]} is {run.status}, not completed yet: "
                              f"{run.html_url}", evidence, outputs)
    if run.conclusion != "success":
        return Outcome(False, f"expected run {run.id} of {what} for {sha[:7]} to succeed, it concluded "
                              f"{run.conclusion}; see its logs: {run.html_url}", evidence,
                       {**outputs, "final": True})   # a concluded run will not change: stop polling
    return Outcome(True, f"run {run.id} of {what} for {sha[:7]} succeeded: {run.html_url}", evidence, outputs)


# -- issues and labels -----------------------------------------------------------------
def _issue_outcome(ctx: Context, issue: Any, verb: str) -> Outcome:
    labels = [label.name for label in issue.labels]
    evidence = {"number": issue.number, "url": issue.html_url, "title": ctx.redact(issue.title), "labels": labels}
    return Outcome.ok(f"issue #{issue.number} {verb}: {issue.html_url}", evidence, number=issue.number,
                      url=issue.html_url)


def _find_issue(ctx: Context, conn: api.Connection) -> Outcome | None:
    title = str(ctx.args["title"])
    with conn.translate("look for an open issue with the same title"):
        for issue in conn.repo.get_issues(state="open"):
            if issue.pull_request is None and issue.title == title:
                return _issue_outcome(ctx, issue, "is already open")
    return None


@action("github.open_issue",
        args={"properties": {"title": STR, "body": STR, "labels": {"type": "array", "items": STR}},
              "required": ["title"]},
        outputs={"type": "object", "properties": {"number": INT, "url": STR}})
@_guard
def open_issue(ctx: Context) -> Outcome:
    """Open an issue unless an open issue with the same title exists."""
    with api.connect(ctx.env) as conn:
        found = _find_issue(ctx, conn)
        if found is not None:
            return found
        with conn.translate("open an issue"):
            issue = conn.repo.create_issue(title=str(ctx.args["title"]),
                                           body=ctx.redact(str(ctx.args.get("body") or "")),
                                           labels=[str(x) for x in ctx.args.get("labels") or []])
        return _issue_outcome(ctx, issue, "opened")


@probe("github.open_issue")
def open_issue_probe(ctx: Context) -> Outcome | None:
    """An open issue with the same title."""
    with api.connect(ctx.env) as conn:
        return _find_issue(ctx, conn)


def _labelled(ctx: Context, conn: api.Connection) -> tuple[Outcome | None, Any]:
    number, label = _number(ctx.args["number"], "number"), str(ctx.args["label"])
    with conn.translate(f"read the labels of #{number}"):
        issue = conn.repo.get_issue(number)
        names = [x.name for x in issue.labels]
    if label.casefold() in {n.casefold() for n in names}:
        return Outcome.ok(f"#{number} has label {label!r}: {issue.html_url}",
                          {"number": number, "label": label, "labels": names, "url": issue.html_url},
                          number=number, label=label, labels=names), issue
    return None, issue


@action("github.add_label",
        args={"properties": {"number": NUMBER, "label": STR}, "required": ["number", "label"]},
        outputs={"type": "object", "properties": {"number": INT, "label": STR,
                                                  "labels": {"type": "array", "items": STR}}})
@_guard
def add_label(ctx: Context) -> Outcome:
    """Add a label to an issue or pull request (by number) unless it is already there."""
    with api.connect(ctx.env) as conn:
        found, issue = _labelled(ctx, conn)
        if found is not None:
            return found
        with conn.translate(f"add a label to #{issue.number}"):
            issue.add_to_labels(str(ctx.args["label"]))
        found, _ = _labelled(ctx, conn)
        if found is None:
            return Outcome.fail(f"added label {ctx.args['label']!r} to #{issue.number}, but GitHub does not show it "
                                f"({issue.html_url})", {"number": issue.number})
        found.summary = f"labelled #{issue.number} {ctx.args['label']!r}: {issue.html_url}"
        return found


@probe("github.add_label")
def add_label_probe(ctx: Context) -> Outcome | None:
    """The label is on the issue already."""
    with api.connect(ctx.env) as conn:
        return _labelled(ctx, conn)[0]
