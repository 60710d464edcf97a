"""A GitHub REST stand-in on loopback, over a real bare repository.

One implementation for the tests and the sandbox. It serves the endpoints the GitHub
plugins use, shaped like GitHub's JSON so PyGithub builds its objects from them, and
talks to it as to GitHub Enterprise (``Github(base_url=standin.start(), ...)``):
repository and permissions, ``GET /user``, pull requests (files, reviews, a real
``--no-ff`` merge pushed to the bare repository), refs and annotated tags, releases,
issues and labels, workflow runs.

Branches, tags and commits live in the bare repository (a push there is seen at once:
a pull request's head is always read live from ``refs/heads/<head>``); pull requests,
reviews, issues, labels, releases and workflow runs live in memory. Python helpers act
as users and as the deploy pipeline: ``review``, ``commit``, ``add_workflow_run``.

Mergeability is answered as GitHub does: ``mergeable`` is ``null`` (``mergeable_state:
unknown``) when a pull request is created and on its first read after its head or base
moved, while GitHub computes it; later reads say ``true`` (``clean``) or ``false`` (``dirty``, a
conflict). Lists of pull requests carry neither field. A client polls.
"""

from __future__ import annotations

import http.server
import itertools
import json
import re
import tempfile
import threading
import urllib.parse
import zlib
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from .. import git
from ..errors import ExternalError

JSON = dict[str, Any]
REVIEW_EVENTS = {"APPROVE": "APPROVED", "REQUEST_CHANGES": "CHANGES_REQUESTED", "COMMENT": "COMMENTED"}
REVIEW_STATES = set(REVIEW_EVENTS.values()) | {"DISMISSED"}
FILE_STATUS = {"A": "added", "M": "modified", "D": "removed", "T": "changed"}
ZERO = "0" * 40


class HTTPError(Exception):
    """An answer other than success: status, GitHub's message and its ``errors`` list."""

    def __init__(self, status: int, message: str, errors: list[JSON] | None = None):
        super().__init__(message)
        self.status, self.message, self.errors = status, message, errors or []


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    login: str
    groups: tuple[str, ...] = ()


@dataclass
class _Issue:
    number: int
    title: str
    body: str
    login: str
    created_at: str
    labels: list[str] = field(default_factory=list)
    state: str = "open"
    closed_at: str | None = None
    pull: JSON | None = None   # head, base, merged, merge_sha, merged_by, merged_at, last_head, files


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


_ROUTES: list[tuple[str, re.Pattern[str], bool, str]] = []


def route(method: str, pattern: str, repo: bool = True) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a handler; ``repo`` patterns are relative to ``/repos/OWNER/REPO``."""
    def deco(func: Callable[..., Any]) -> Callable[..., Any]:
        _ROUTES.append((method, re.compile("^" + pattern + "$"), repo, func.__name__))
        return func
    return deco


class GitHubStandIn:
    """GitHub's REST API for one repository, on 127.0.0.1, for tests and the sandbox."""

    def __init__(self, bare_repo: Path, owner: str, repo: str, users: Mapping[str, str],
                 admins: Iterable[str] = (), merge_methods: Iterable[str] = ("merge",),
                 default_branch: str = "main"):
        self.bare = Path(bare_repo)
        self.owner, self.repo, self.default_branch = owner, repo, default_branch
        self.users = dict(users)                       # token -> login
        self.admins = {a.lower() for a in admins}
        self.merge_methods = set(merge_methods)
        self.base_url = ""
        self.calls: deque[tuple[str, str, str]] = deque(maxlen=10000)   # (method, path, login) asked
        self._lock = threading.RLock()
        self._ids = itertools.count(1001)
        self._numbers = itertools.count(1)
        self._issues: dict[int, _Issue] = {}
        self._reviews: dict[int, list[JSON]] = {}
        self._labels: dict[str, JSON] = {}
        self._releases: list[JSON] = []
        self._runs: list[JSON] = []
        self._server: http.server.ThreadingHTTPServer | None = None

    # -- server ----------------------------------------------------------------------
    def start(self) -> str:
        """Serve on a free loopback port in a daemon thread; returns the base URL."""
        standin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _serve(self) -> None:
                standin._handle(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

            def log_message(self, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="github-standin",
                         daemon=True).start()
        return self.base_url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _handle(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        split = urllib.parse.urlsplit(handler.path)
        if handler.command == "GET" and split.path.lower().startswith(f"/{self.owner}/{self.repo}/".lower()):
            self._page(handler, split.path[len(f"/{self.owner}/{self.repo}"):])
            return
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(split.query).items()}
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            login = self._login(handler.headers.get("Authorization", ""))
            self.calls.append((handler.command, split.path, login))
            try:
                body = json.loads(raw) if raw.strip() else None
            except ValueError:
                raise HTTPError(400, "Problems parsing JSON") from None
            with self._lock:
                status, answer = self._dispatch(Request(handler.command, split.path, query, body, login))
        except git.GitError as exc:   # the bare repository refused: say so, as GitHub's 5xx would
            status, answer = 500, {"message": f"git: {exc}"}
        except HTTPError as exc:
            status, answer = exc.status, {"message": exc.message, "documentation_url": "https://docs.github.com/rest"}
            if exc.errors:
                answer["errors"] = exc.errors
        data = b"" if status == 204 else json.dumps(answer).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json; charset=utf-8")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _page(self, handler: http.server.BaseHTTPRequestHandler, path: str) -> None:
        """The pages behind the ``html_url``s the engine prints: a pull request, an issue, a workflow
        run, a release, readable without a token (as a person opens them in a browser)."""
        import html

        with self._lock:
            title, rows = self._page_content(path)
        esc = html.escape
        body = (f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title></head><body>"
                f"<h1>{esc(title)}</h1><table>" + "".join(f"<tr><th>{esc(k)}</th><td>{esc(str(v))}</td></tr>"
                                                          for k, v in rows)
                + "</table><p>GitHub stand-in (sandbox)</p></body></html>").encode()
        handler.send_response(200 if rows else 404)
        handler.send_header("Content-Type", "text/html; charset=utf-8")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def _page_content(self, path: str) -> tuple[str, list[tuple[str, Any]]]:
        m = re.fullmatch(r"/(pull|issues)/(\d+)", path)
        if m and int(m.group(2)) in self._issues:
            issue = self._issues[int(m.group(2))]
            rows: list[tuple[str, Any]] = [("state", issue.state), ("author", issue.login), ("body", issue.body or "")]
            if issue.pull:
                pull = self._state(issue)
                rows = [("from", pull["head"]), ("into", pull["base"]), ("head", self.head_sha(issue.number)),
                        ("merged", pull["merged"]), ("merge commit", pull["merge_sha"] or "-"),
                        ("reviews", ", ".join(f"{r['login']}: {r['state']}" for r in self._reviews.get(
                            issue.number, [])) or "none")] + rows
            return f"#{issue.number} {issue.title}", rows
        m = re.fullmatch(r"/actions/runs/(\d+)", path)
        run = next((r for r in self._runs if m and r["id"] == int(m.group(1))), None)
        if run is not None:
            return f"workflow run {run['id']}", [(k, run.get(k)) for k in ("name", "head_sha", "status", "conclusion",
                                                                         "event", "created_at")]
        m = re.fullmatch(r"/releases/tag/(.+)", path)
        tag = urllib.parse.unquote(m.group(1)) if m else None
        release = next((r for r in self._releases if r["tag_name"] == tag), None)
        if release is not None:
            return f"release {release['name'] or tag}", [("tag", tag), ("body", release.get("body") or "")]
        return "not found", []

    def _login(self, header: str) -> str:
        scheme, _, token = header.partition(" ")
        if scheme.lower() not in ("token", "bearer") or token.strip() not in self.users:
            raise HTTPError(401, "Bad credentials")
        return self.users[token.strip()]

    def _dispatch(self, req: Request) -> tuple[int, Any]:
        path, is_repo = req.path, False
        prefix = f"/repos/{self.owner}/{self.repo}".lower()
        if path.lower().startswith("/repos/"):
            if not (path.lower() == prefix or path.lower().startswith(prefix + "/")):
                raise HTTPError(404, "Not Found")
            path, is_repo = path[len(prefix):], True
        for method, pattern, repo, name in _ROUTES:
            m = pattern.match(path)
            if m and repo == is_repo and method == req.method:
                req.groups = tuple(urllib.parse.unquote(g) for g in m.groups())
                result: tuple[int, Any] = getattr(self, name)(req)
                return result
        raise HTTPError(404, "Not Found")

    # -- JSON shapes -----------------------------------------------------------------
    @property
    def api(self) -> str:
        return f"{self.base_url}/repos/{self.owner}/{self.repo}"

    @property
    def web(self) -> str:
        return f"{self.base_url}/{self.owner}/{self.repo}"

    def user_json(self, login: str) -> JSON:
        uid = zlib.crc32(login.lower().encode())
        return {"login": login, "id": uid, "node_id": f"U_{uid}", "type": "User", "site_admin": False,
                "url": f"{self.base_url}/users/{login}", "html_url": f"{self.base_url}/{login}"}

    def repo_json(self, login: str | None = None) -> JSON:
        admin = login is not None and login.lower() in self.admins
        data: JSON = {
            "id": zlib.crc32(f"{self.owner}/{self.repo}".encode()), "node_id": "R_standin", "name": self.repo,
            "full_name": f"{self.owner}/{self.repo}", "owner": self.user_json(self.owner), "private": True,
            "url": self.api, "html_url": self.web, "default_branch": self.default_branch,
            "allow_merge_commit": "merge" in self.merge_methods, "allow_squash_merge": "squash" in self.merge_methods,
            "allow_rebase_merge": "rebase" in self.merge_methods, "archived": False, "disabled": False}
        if login is not None:
            data["permissions"] = {"admin": admin, "maintain": admin, "push": True, "triage": True, "pull": True}
        return data

    def _label_json(self, name: str) -> JSON:
        label = self._labels[name.lower()]
        return {**label, "url": f"{self.api}/labels/{urllib.parse.quote(label['name'])}"}

    def _issue_json(self, issue: _Issue) -> JSON:
        kind = "pull" if issue.pull is not None else "issues"
        data: JSON = {
            "id": issue.number + 500000, "node_id": f"I_{issue.number}", "number": issue.number,
            "title": issue.title, "body": issue.body, "user": self.user_json(issue.login), "state": issue.state,
            "labels": [self._label_json(n) for n in issue.labels], "locked": False, "assignee": None,
            "assignees": [], "comments": 0, "created_at": issue.created_at, "updated_at": issue.created_at,
            "closed_at": issue.closed_at, "url": f"{self.api}/issues/{issue.number}",
            "html_url": f"{self.web}/{kind}/{issue.number}", "repository_url": self.api,
            "labels_url": f"{self.api}/issues/{issue.number}/labels{{/name}}"}
        if issue.pull is not None:
            data["pull_request"] = {"url": f"{self.api}/pulls/{issue.number}",
                                    "html_url": f"{self.web}/pull/{issue.number}"}
        return data

    def _pull_json(self, issue: _Issue, listing: bool = False, created: bool = False) -> JSON:
        """A pull request as GitHub shows it; in a list (``listing``) without the mergeability fields,
        which GitHub computes only when one pull request is read; just ``created``, not computed yet."""
        pull = self._state(issue)
        head_sha, base_sha = self.head_sha(issue.number), self._sha(pull["base"]) or ""
        repo = self.repo_json()
        merged = bool(pull["merged"])
        data: JSON = {
            **self._issue_json(issue), "id": issue.number + 700000, "node_id": f"PR_{issue.number}",
            "url": f"{self.api}/pulls/{issue.number}", "issue_url": f"{self.api}/issues/{issue.number}",
            "html_url": f"{self.web}/pull/{issue.number}", "draft": False,
            "head": {"ref": pull["head"], "sha": head_sha, "label": f"{self.owner}:{pull['head']}",
                     "repo": repo, "user": self.user_json(self.owner)},
            "base": {"ref": pull["base"], "sha": base_sha, "label": f"{self.owner}:{pull['base']}",
                     "repo": repo, "user": self.user_json(self.owner)},
            "merged": merged, "merged_at": pull["merged_at"],
            "merged_by": self.user_json(pull["merged_by"]) if merged else None,
            "merge_commit_sha": pull["merge_sha"],
            "commits_url": f"{self.api}/pulls/{issue.number}/commits",
            "review_comments_url": f"{self.api}/pulls/{issue.number}/comments"}
        if created:
            data.update(mergeable=None, mergeable_state="unknown")
        elif not listing:
            mergeable, state = self._mergeability(issue)
            data.update(mergeable=mergeable, mergeable_state=state)
        return data

    def _review_json(self, number: int, review: JSON) -> JSON:
        return {**review, "user": self.user_json(review["login"]), "node_id": f"PRR_{review['id']}",
                "html_url": f"{self.web}/pull/{number}#pullrequestreview-{review['id']}",
                "pull_request_url": f"{self.api}/pulls/{number}", "author_association": "MEMBER"}

    def _run_json(self, run: JSON) -> JSON:
        return {**run, "url": f"{self.api}/actions/runs/{run['id']}",
                "html_url": f"{self.web}/actions/runs/{run['id']}",
                "jobs_url": f"{self.api}/actions/runs/{run['id']}/jobs",
                "logs_url": f"{self.api}/actions/runs/{run['id']}/logs",
                "workflow_url": f"{self.api}/actions/workflows/{run['workflow_id']}",
                "repository": self.repo_json()}

    # -- git -------------------------------------------------------------------------
    def _sha(self, branch: str) -> str | None:
        return git.rev(self.bare, f"refs/heads/{git.safe_ref(branch, 'branch')}")

    def head_sha(self, number: int) -> str:
        """The pull request's head commit: read live from the branch (kept once merged)."""
        pull = self._state(self._pull(number))
        if pull["merged"]:
            return str(pull["last_head"])
        live = self._sha(pull["head"])
        if live:
            pull["last_head"] = live
        return str(pull["last_head"])

    def _mergeable(self, issue: _Issue) -> bool | None:
        pull = self._state(issue)
        if issue.state != "open":
            return None
        r = git.git(["merge-tree", "--write-tree", "--end-of-options", self.head_sha(issue.number),
                     f"refs/heads/{pull['base']}"], self.bare, check=False)
        return {0: True, 1: False}.get(r.code)

    def _mergeability(self, issue: _Issue) -> tuple[bool | None, str]:
        """``mergeable`` and ``mergeable_state`` as GitHub answers them.

        GitHub computes mergeability in a background job; the answer to the creation and the
        first read after the head or the base moved is ``null`` / ``unknown``, later ones the result
        (``true`` / ``clean``, or ``false`` / ``dirty`` on a conflict). Clients poll. A closed or
        merged pull request answers ``null`` / ``unknown``.
        """
        pull = self._state(issue)
        if issue.state != "open":
            return None, "unknown"
        key = (self.head_sha(issue.number), self._sha(pull["base"]) or "")
        if pull.get("mergeable_key") != key:
            pull["mergeable_key"], pull["mergeable"] = key, self._mergeable(issue)
            return None, "unknown"
        value = pull.get("mergeable")
        return value, "clean" if value is True else "dirty" if value is False else "unknown"

    def _files(self, base: str, head: str) -> list[JSON]:
        out = git.git(["diff", "--name-status", "--no-renames", "-z", "--end-of-options", f"{base}...{head}"],
                      self.bare).out
        parts = [p for p in out.split("\0") if p]
        return [{"sha": head, "filename": name, "status": FILE_STATUS.get(code[:1], "modified"),
                 "additions": 0, "deletions": 0, "changes": 0}
                for code, name in zip(parts[::2], parts[1::2])]

    def _clone(self, tmp: str, branch: str) -> Path:
        work = Path(tmp) / "work"
        git.git(["clone", "--quiet", "--branch", git.safe_ref(branch), "--end-of-options", str(self.bare),
                 str(work)])
        return work

    def commit(self, branch: str, files: Mapping[str, str], message: str, login: str) -> str:
        """Act as ``login`` pushing a commit (files written as given) to ``branch``; returns its sha."""
        with self._lock, tempfile.TemporaryDirectory(prefix="gh-standin-") as tmp:
            work = self._clone(tmp, branch)
            for name, text in files.items():
                target = work / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
            ident = git.identity_env(login, f"{login}@users.noreply.github.com")
            git.git(["add", "--all"], work)
            git.git(["commit", "--quiet", "-m", message], work, env=ident)
            git.git(["push", "--quiet", "origin", f"HEAD:refs/heads/{branch}"], work)
            return git.out(["rev-parse", "HEAD"], work)

    def _merge(self, base: str, sha: str, login: str, title: str, message: str) -> str:
        with tempfile.TemporaryDirectory(prefix="gh-standin-merge-") as tmp:
            work = self._clone(tmp, base)
            ident = git.identity_env(login, f"{login}@users.noreply.github.com")
            merged = git.git(["merge", "--no-ff", "--no-edit", "-m", title, *(["-m", message] if message else []),
                              "--end-of-options", sha], work, check=False, env=ident)
            if merged.code != 0:
                raise HTTPError(405, "Pull Request is not mergeable")
            pushed = git.git(["push", "--quiet", "origin", f"HEAD:refs/heads/{base}"], work, check=False)
            if pushed.code != 0:
                raise HTTPError(409, "Base branch was modified. Review and try the merge again.")
            return git.out(["rev-parse", "HEAD"], work)

    def _ref(self, ref: str) -> JSON | None:
        """``refs/...`` as GitHub's ref JSON, or None."""
        out = git.git(["for-each-ref", "--format=%(refname)%09%(objectname)%09%(objecttype)", "--end-of-options",
                       ref], self.bare).out
        for line in out.splitlines():
            name, sha, kind = line.split("\t")
            if name == ref:
                return {"ref": name, "node_id": f"REF_{sha[:12]}", "url": f"{self.api}/git/{name}",
                        "object": {"sha": sha, "type": kind, "url": f"{self.api}/git/{kind}s/{sha}"}}
        return None

    # -- Python helpers: act as users and as the pipeline ---------------------------
    def _pull(self, number: int) -> _Issue:
        issue = self._issues.get(int(number))
        if issue is None or issue.pull is None:
            raise HTTPError(404, "Not Found")
        return issue

    @staticmethod
    def _state(issue: _Issue) -> JSON:
        """The pull-request part of an issue (404 for a plain issue)."""
        if issue.pull is None:
            raise HTTPError(404, "Not Found")
        return issue.pull

    def open_pull(self, head: str, base: str, title: str, login: str, body: str = "") -> JSON:
        """Open a pull request as ``login`` (GitHub's rules: branches exist, commits between, one open per pair)."""
        with self._lock:
            for field_name, branch in (("head", head), ("base", base)):
                if not git.REF.match(branch) or self._sha(branch) is None:
                    raise HTTPError(422, "Validation Failed", [{"resource": "PullRequest", "field": field_name,
                                                                "code": "invalid"}])
            for issue in self._issues.values():
                if issue.pull and issue.state == "open" and (issue.pull["head"], issue.pull["base"]) == (head, base):
                    raise HTTPError(422, "Validation Failed", [{"resource": "PullRequest", "code": "custom",
                                    "message": f"A pull request already exists for {self.owner}:{head}."}])
            count = git.out(["rev-list", "--count", f"refs/heads/{base}..refs/heads/{head}"], self.bare)
            if count == "0":
                raise HTTPError(422, "Validation Failed", [{"resource": "PullRequest", "code": "custom",
                                                            "message": f"No commits between {base} and {head}"}])
            number = next(self._numbers)
            self._issues[number] = _Issue(number, title, body, login, _now(), pull={
                "head": head, "base": base, "merged": False, "merge_sha": None, "merged_by": None,
                "merged_at": None, "last_head": self._sha(head), "files": None})
            self._reviews[number] = []
            return self._pull_json(self._issues[number], created=True)

    def review(self, pr: int, login: str, state: str, body: str = "", commit_id: str | None = None) -> JSON:
        """Record a review by ``login`` on the current head (or ``commit_id``).

        ``state`` is APPROVED, CHANGES_REQUESTED or COMMENTED. Unlike the REST endpoint this
        does not refuse the author's own review, so tests can build states GitHub forbids.
        """
        if state not in REVIEW_STATES - {"DISMISSED"}:
            raise ValueError(f"review state {state!r}: use APPROVED, CHANGES_REQUESTED or COMMENTED")
        with self._lock:
            self._pull(pr)
            review = {"id": next(self._ids), "login": login, "state": state, "body": body,
                      "commit_id": commit_id or self.head_sha(pr), "submitted_at": _now()}
            self._reviews[int(pr)].append(review)
            return self._review_json(int(pr), review)

    def dismiss(self, pr: int, review_id: int) -> None:
        """Dismiss a review (it then neither approves nor blocks)."""
        with self._lock:
            for review in self._reviews.get(int(pr), []):
                if review["id"] == review_id:
                    review["state"] = "DISMISSED"
                    return
        raise HTTPError(404, "Not Found")

    def add_workflow_run(self, head_sha: str, status: str = "completed", conclusion: str | None = "success",
                         branch: str | None = None, workflow: str = "deploy-production.yml",
                         event: str = "push", name: str | None = None) -> JSON:
        """A workflow run for a commit, as the deploy pipeline reports it; returns its JSON."""
        with self._lock:
            run_id = next(self._ids)
            run = {"id": run_id, "name": name or workflow.rsplit(".", 1)[0], "display_title": name or workflow,
                   "head_branch": branch or self.default_branch, "head_sha": head_sha, "event": event,
                   "status": status, "conclusion": conclusion if status == "completed" else None,
                   "path": f".github/workflows/{workflow}", "workflow_id": zlib.crc32(workflow.encode()),
                   "run_number": len(self._runs) + 1, "run_attempt": 1, "created_at": _now(),
                   "updated_at": _now(), "run_started_at": _now()}
            self._runs.append(run)
            return self._run_json(run)

    def update_workflow_run(self, run_id: int, status: str, conclusion: str | None = None) -> None:
        """Move a run on (queued -> in_progress -> completed with a conclusion)."""
        with self._lock:
            for run in self._runs:
                if run["id"] == run_id:
                    run.update(status=status, conclusion=conclusion if status == "completed" else None,
                               updated_at=_now())
                    return
        raise KeyError(run_id)

    # -- users and repository --------------------------------------------------------
    @route("GET", r"/user", repo=False)
    def get_user(self, req: Request) -> tuple[int, Any]:
        return 200, self.user_json(req.login)

    @route("GET", r"/users/([^/]+)", repo=False)
    def get_named_user(self, req: Request) -> tuple[int, Any]:
        return 200, self.user_json(req.groups[0])

    @route("GET", r"")
    def get_repo(self, req: Request) -> tuple[int, Any]:
        return 200, self.repo_json(req.login)

    @route("GET", r"/collaborators/([^/]+)/permission")
    def get_permission(self, req: Request) -> tuple[int, Any]:
        login = req.groups[0]
        level = "admin" if login.lower() in self.admins else "write"
        return 200, {"permission": level, "role_name": level, "user": self.user_json(login)}

    # -- pull requests ---------------------------------------------------------------
    @route("GET", r"/pulls")
    def list_pulls(self, req: Request) -> tuple[int, Any]:
        state, head, base = req.query.get("state", "open"), req.query.get("head", ""), req.query.get("base")
        head_ref = head.split(":", 1)[-1]
        found = [i for n, i in sorted(self._issues.items(), reverse=True) if i.pull is not None
                 and state in ("all", i.state) and (not head or i.pull["head"] == head_ref)
                 and (not base or i.pull["base"] == base)]
        return 200, [self._pull_json(i, listing=True) for i in found]

    @route("POST", r"/pulls")
    def create_pull(self, req: Request) -> tuple[int, Any]:
        body = req.body or {}
        if not body.get("head") or not body.get("base"):
            raise HTTPError(422, "Validation Failed", [{"resource": "PullRequest", "code": "missing_field"}])
        head = str(body["head"]).split(":", 1)[-1]
        return 201, self.open_pull(head, str(body["base"]), str(body.get("title") or head), req.login,
                                   str(body.get("body") or ""))

    @route("GET", r"/pulls/(\d+)")
    def get_pull(self, req: Request) -> tuple[int, Any]:
        return 200, self._pull_json(self._pull(int(req.groups[0])))

    @route("PATCH", r"/pulls/(\d+)")
    def update_pull(self, req: Request) -> tuple[int, Any]:
        issue = self._pull(int(req.groups[0]))
        self._update_issue(issue, req.body or {})
        return 200, self._pull_json(issue)

    @route("GET", r"/pulls/(\d+)/files")
    def pull_files(self, req: Request) -> tuple[int, Any]:
        pull = self._state(self._pull(int(req.groups[0])))
        if pull["files"] is not None:
            return 200, pull["files"]
        return 200, self._files(f"refs/heads/{pull['base']}", self.head_sha(int(req.groups[0])))

    @route("GET", r"/pulls/(\d+)/reviews")
    def list_reviews(self, req: Request) -> tuple[int, Any]:
        number = int(req.groups[0])
        self._pull(number)
        return 200, [self._review_json(number, r) for r in self._reviews[number]]

    @route("POST", r"/pulls/(\d+)/reviews")
    def create_review(self, req: Request) -> tuple[int, Any]:
        number, body = int(req.groups[0]), req.body or {}
        issue = self._pull(number)
        state = REVIEW_EVENTS.get(str(body.get("event", "")))
        if state is None:
            raise HTTPError(422, "Validation Failed", [{"resource": "PullRequestReview", "field": "event",
                                                        "code": "invalid"}])
        if state != "COMMENTED" and issue.login.lower() == req.login.lower():
            what = "approve" if state == "APPROVED" else "request changes on"
            raise HTTPError(422, f"Unprocessable Entity: Can not {what} your own pull request")
        return 200, self.review(number, req.login, state, str(body.get("body") or ""), body.get("commit_id"))

    @route("PUT", r"/pulls/(\d+)/reviews/(\d+)/dismissals")
    def dismiss_review(self, req: Request) -> tuple[int, Any]:
        number, review_id = int(req.groups[0]), int(req.groups[1])
        self.dismiss(number, review_id)
        review = next(r for r in self._reviews[number] if r["id"] == review_id)
        return 200, self._review_json(number, review)

    @route("PUT", r"/pulls/(\d+)/merge")
    def merge_pull(self, req: Request) -> tuple[int, Any]:
        number, body = int(req.groups[0]), req.body or {}
        issue = self._pull(number)
        pull = self._state(issue)
        method = body.get("merge_method", "merge")
        if method not in self.merge_methods:
            raise HTTPError(405, f"{str(method).capitalize()} merges are not allowed on this repository.")
        if pull["merged"] or issue.state != "open":
            raise HTTPError(405, "Pull Request is not mergeable")
        head = self.head_sha(number)
        if body.get("sha") and body["sha"] != head:
            raise HTTPError(409, "Head branch was modified. Review and try the merge again.")
        files = self._files(f"refs/heads/{pull['base']}", head)
        title = body.get("commit_title") or f"Merge pull request #{number} from {self.owner}/{pull['head']}"
        sha = self._merge(pull["base"], head, req.login, str(title), str(body.get("commit_message") or issue.title))
        pull.update(merged=True, merge_sha=sha, merged_by=req.login, merged_at=_now(), last_head=head, files=files)
        issue.state, issue.closed_at = "closed", _now()
        return 200, {"sha": sha, "merged": True, "message": "Pull Request successfully merged"}

    @route("GET", r"/pulls/(\d+)/merge")
    def is_merged(self, req: Request) -> tuple[int, Any]:
        pull = self._state(self._pull(int(req.groups[0])))
        if not pull["merged"]:
            raise HTTPError(404, "Not Found")
        return 204, None

    # -- refs and tags ---------------------------------------------------------------
    @route("GET", r"/git/(?:ref|refs)/(.+)")
    def get_ref(self, req: Request) -> tuple[int, Any]:
        found = self._ref("refs/" + req.groups[0])
        if found is None:
            raise HTTPError(404, "Not Found")
        return 200, found

    @route("GET", r"/git/matching-refs/(.*)")
    def matching_refs(self, req: Request) -> tuple[int, Any]:
        prefix = "refs/" + req.groups[0]
        namespace = "/".join(prefix.split("/")[:2])
        out = git.git(["for-each-ref", "--format=%(refname)", "--end-of-options", namespace], self.bare).out
        names = [n for n in out.splitlines() if n.startswith(prefix)]
        return 200, [self._ref(n) for n in names]

    @route("POST", r"/git/refs")
    def create_ref(self, req: Request) -> tuple[int, Any]:
        body = req.body or {}
        ref, sha = str(body.get("ref", "")), str(body.get("sha", ""))
        if not ref.startswith("refs/") or not git.REF.match(ref[5:]) or ref.count("/") < 2:
            raise HTTPError(422, "Reference name is not valid")
        if not re.fullmatch(r"[0-9a-f]{40}", sha) or git.git(["cat-file", "-e", sha], self.bare, check=False).code:
            raise HTTPError(422, "Object does not exist")
        if self._ref(ref) is not None:
            raise HTTPError(422, "Reference already exists")
        git.git(["update-ref", "--end-of-options", ref, sha, ZERO], self.bare)
        return 201, self._ref(ref)

    @route("POST", r"/git/tags")
    def create_tag(self, req: Request) -> tuple[int, Any]:
        body = req.body or {}
        tag, obj, kind = str(body.get("tag", "")), str(body.get("object", "")), str(body.get("type", "commit"))
        if not git.REF.match(tag) or not re.fullmatch(r"[0-9a-f]{40}", obj):
            raise HTTPError(422, "Validation Failed", [{"resource": "Tag", "code": "invalid"}])
        tagger = body.get("tagger") or {"name": req.login, "email": f"{req.login}@users.noreply.github.com"}
        stamp = int(datetime.now(timezone.utc).timestamp())
        text = (f"object {obj}\ntype {kind}\ntag {tag}\ntagger {tagger['name']} <{tagger['email']}> {stamp} +0000\n"
                f"\n{body.get('message', '')}\n")
        made = git.git(["mktag"], self.bare, check=False, input_text=text)
        if made.code != 0:
            raise HTTPError(422, "Object does not exist")
        return 201, self._tag_json(made.out.strip())

    @route("GET", r"/git/tags/([0-9a-f]{40})")
    def get_tag(self, req: Request) -> tuple[int, Any]:
        if git.git(["cat-file", "-t", req.groups[0]], self.bare, check=False).out.strip() != "tag":
            raise HTTPError(404, "Not Found")
        return 200, self._tag_json(req.groups[0])

    def _tag_json(self, sha: str) -> JSON:
        head, _, message = git.git(["cat-file", "tag", sha], self.bare).out.partition("\n\n")
        fields = dict(line.split(" ", 1) for line in head.splitlines() if " " in line)
        who = re.match(r"(.*) <(.*)> (\d+)", fields.get("tagger", ""))
        name, email, stamp = who.groups() if who else ("", "", "0")
        date = datetime.fromtimestamp(int(stamp), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {"sha": sha, "node_id": f"TAG_{sha[:12]}", "tag": fields.get("tag"), "message": message.rstrip("\n"),
                "url": f"{self.api}/git/tags/{sha}", "tagger": {"name": name, "email": email, "date": date},
                "object": {"sha": fields.get("object"), "type": fields.get("type"),
                           "url": f"{self.api}/git/{fields.get('type')}s/{fields.get('object')}"},
                "verification": {"verified": False, "reason": "unsigned", "signature": None, "payload": None}}

    # -- releases --------------------------------------------------------------------
    def _release_json(self, release: JSON) -> JSON:
        rid = release["id"]
        return {**release, "author": self.user_json(release["login"]), "url": f"{self.api}/releases/{rid}",
                "html_url": f"{self.web}/releases/tag/{urllib.parse.quote(release['tag_name'], safe='')}",
                "upload_url": f"{self.api}/releases/{rid}/assets{{?name,label}}", "assets": [],
                "assets_url": f"{self.api}/releases/{rid}/assets", "tarball_url": None, "zipball_url": None}

    @route("GET", r"/releases")
    def list_releases(self, req: Request) -> tuple[int, Any]:
        return 200, [self._release_json(r) for r in reversed(self._releases)]

    @route("GET", r"/releases/(\d+)")
    def get_release(self, req: Request) -> tuple[int, Any]:
        for release in self._releases:
            if release["id"] == int(req.groups[0]):
                return 200, self._release_json(release)
        raise HTTPError(404, "Not Found")

    @route("GET", r"/releases/tags/(.+)")
    def get_release_by_tag(self, req: Request) -> tuple[int, Any]:
        for release in self._releases:
            if release["tag_name"] == req.groups[0]:
                return 200, self._release_json(release)
        raise HTTPError(404, "Not Found")

    @route("PATCH", r"/releases/(\d+)")
    def update_release(self, req: Request) -> tuple[int, Any]:
        body = req.body or {}
        for release in self._releases:
            if release["id"] == int(req.groups[0]):
                if body.get("tag_name") not in (None, release["tag_name"]):
                    raise HTTPError(422, "Validation Failed", [{"resource": "Release", "field": "tag_name",
                                                                "code": "invalid"}])
                for key in ("name", "body"):
                    if key in body and body[key] is not None:
                        release[key] = str(body[key])
                for key in ("draft", "prerelease"):
                    if key in body:
                        release[key] = bool(body[key])
                return 200, self._release_json(release)
        raise HTTPError(404, "Not Found")

    @route("POST", r"/releases")
    def create_release(self, req: Request) -> tuple[int, Any]:
        body = req.body or {}
        tag = str(body.get("tag_name", ""))
        if not git.REF.match(tag):
            raise HTTPError(422, "Validation Failed", [{"resource": "Release", "field": "tag_name", "code": "invalid"}])
        if any(r["tag_name"] == tag for r in self._releases):
            raise HTTPError(422, "Validation Failed", [{"resource": "Release", "field": "tag_name",
                                                        "code": "already_exists"}])
        target = str(body.get("target_commitish") or self.default_branch)
        if self._ref(f"refs/tags/{tag}") is None:   # GitHub tags the target when the tag does not exist yet
            sha = git.rev(self.bare, target if re.fullmatch(r"[0-9a-f]{40}", target) else f"refs/heads/{target}")
            if sha is None:
                raise HTTPError(422, "Validation Failed", [{"resource": "Release", "field": "target_commitish",
                                                            "code": "invalid"}])
            git.git(["update-ref", "--end-of-options", f"refs/tags/{tag}", sha, ZERO], self.bare)
        release = {"id": next(self._ids), "node_id": f"RE_{tag}", "tag_name": tag, "name": body.get("name") or tag,
                   "body": body.get("body") or "", "draft": bool(body.get("draft")),
                   "prerelease": bool(body.get("prerelease")), "target_commitish": target, "login": req.login,
                   "created_at": _now(), "published_at": _now()}
        self._releases.append(release)
        return 201, self._release_json(release)

    # -- issues and labels -----------------------------------------------------------
    def _issue(self, number: int) -> _Issue:
        issue = self._issues.get(number)
        if issue is None:
            raise HTTPError(404, "Not Found")
        return issue

    def _ensure_label(self, name: str) -> str:
        if not name or len(name) > 50:
            raise HTTPError(422, "Validation Failed", [{"resource": "Label", "field": "name", "code": "invalid"}])
        if name.lower() not in self._labels:
            self._labels[name.lower()] = {"id": next(self._ids), "node_id": f"LA_{name}", "name": name,
                                          "color": "ededed", "default": False, "description": None}
        return str(self._labels[name.lower()]["name"])

    def _update_issue(self, issue: _Issue, body: JSON) -> None:
        if "title" in body:
            issue.title = str(body["title"])
        if "body" in body:
            issue.body = str(body["body"] or "")
        if body.get("state") in ("open", "closed") and not (issue.pull and issue.pull["merged"]):
            issue.state = body["state"]
            issue.closed_at = _now() if issue.state == "closed" else None

    @route("GET", r"/issues")
    def list_issues(self, req: Request) -> tuple[int, Any]:
        state = req.query.get("state", "open")
        wanted = {n.strip().lower() for n in req.query.get("labels", "").split(",") if n.strip()}
        found = [i for n, i in sorted(self._issues.items(), reverse=True) if state in ("all", i.state)
                 and wanted <= {label.lower() for label in i.labels}]
        return 200, [self._issue_json(i) for i in found]

    @route("POST", r"/issues")
    def create_issue(self, req: Request) -> tuple[int, Any]:
        body = req.body or {}
        if not body.get("title"):
            raise HTTPError(422, "Validation Failed", [{"resource": "Issue", "field": "title",
                                                        "code": "missing_field"}])
        number = next(self._numbers)
        labels = [self._ensure_label(str(n)) for n in body.get("labels") or []]
        self._issues[number] = _Issue(number, str(body["title"]), str(body.get("body") or ""), req.login, _now(),
                                      labels)
        return 201, self._issue_json(self._issues[number])

    @route("GET", r"/issues/(\d+)")
    def get_issue(self, req: Request) -> tuple[int, Any]:
        return 200, self._issue_json(self._issue(int(req.groups[0])))

    @route("PATCH", r"/issues/(\d+)")
    def update_issue(self, req: Request) -> tuple[int, Any]:
        issue = self._issue(int(req.groups[0]))
        self._update_issue(issue, req.body or {})
        return 200, self._issue_json(issue)

    @route("GET", r"/issues/(\d+)/labels")
    def issue_labels(self, req: Request) -> tuple[int, Any]:
        return 200, [self._label_json(n) for n in self._issue(int(req.groups[0])).labels]

    @route("POST", r"/issues/(\d+)/labels")
    def add_labels(self, req: Request) -> tuple[int, Any]:
        issue = self._issue(int(req.groups[0]))
        given = req.body.get("labels", []) if isinstance(req.body, dict) else req.body or []
        for name in given:
            label = self._ensure_label(str(name))
            if label.lower() not in {n.lower() for n in issue.labels}:
                issue.labels.append(label)
        return 200, [self._label_json(n) for n in issue.labels]

    @route("DELETE", r"/issues/(\d+)/labels/(.+)")
    def remove_label(self, req: Request) -> tuple[int, Any]:
        issue = self._issue(int(req.groups[0]))
        kept = [n for n in issue.labels if n.lower() != req.groups[1].lower()]
        if len(kept) == len(issue.labels):
            raise HTTPError(404, "Label does not exist")
        issue.labels = kept
        return 200, [self._label_json(n) for n in issue.labels]

    @route("GET", r"/labels")
    def list_labels(self, req: Request) -> tuple[int, Any]:
        return 200, [self._label_json(n) for n in sorted(self._labels)]

    @route("GET", r"/labels/(.+)")
    def get_label(self, req: Request) -> tuple[int, Any]:
        if req.groups[0].lower() not in self._labels:
            raise HTTPError(404, "Not Found")
        return 200, self._label_json(req.groups[0])

    @route("POST", r"/labels")
    def create_label(self, req: Request) -> tuple[int, Any]:
        body = req.body or {}
        name = str(body.get("name", ""))
        if name.lower() in self._labels:
            raise HTTPError(422, "Validation Failed", [{"resource": "Label", "code": "already_exists"}])
        self._ensure_label(name)
        self._labels[name.lower()].update(color=body.get("color") or "ededed", description=body.get("description"))
        return 201, self._label_json(name)

    # -- workflow runs ---------------------------------------------------------------
    def _runs_matching(self, query: Mapping[str, str], workflow: str | None = None) -> JSON:
        runs = [r for r in reversed(self._runs)
                if all(not query.get(k) or str(r[k]) == query[k] for k in ("head_sha", "status", "event"))
                and (not query.get("branch") or r["head_branch"] == query["branch"])
                and (workflow is None or workflow in (r["path"].rsplit("/", 1)[-1], str(r["workflow_id"])))]
        return {"total_count": len(runs), "workflow_runs": [self._run_json(r) for r in runs]}

    @route("GET", r"/actions/runs")
    def list_runs(self, req: Request) -> tuple[int, Any]:
        return 200, self._runs_matching(req.query)

    @route("GET", r"/actions/workflows/([^/]+)/runs")
    def list_workflow_runs(self, req: Request) -> tuple[int, Any]:
        return 200, self._runs_matching(req.query, req.groups[0])

    @route("GET", r"/actions/runs/(\d+)")
    def get_run(self, req: Request) -> tuple[int, Any]:
        for run in self._runs:
            if run["id"] == int(req.groups[0]):
                return 200, self._run_json(run)
        raise HTTPError(404, "Not Found")


def start_for(bare_repo: Path, repo: str, users: Mapping[str, str], admins: Iterable[str] = ()) -> GitHubStandIn:
    """Start a stand-in for ``owner/name`` over ``bare_repo``; raises ExternalError when it cannot."""
    owner, _, name = repo.partition("/")
    if not owner or not name or not git.is_repo(bare_repo):
        raise ExternalError("start the GitHub stand-in", f"{repo!r} over {bare_repo}: need owner/name and a bare "
                                                         "repository", "create the bare repository first")
    standin = GitHubStandIn(bare_repo, owner, name, users, admins)
    standin.start()
    return standin
