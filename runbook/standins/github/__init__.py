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
from pathlib import Path
from typing import Any, Iterable, Mapping

from ... import git
from ...errors import ExternalError
from .common import JSON, ROUTES, Family, HTTPError, Issue, Request
from .actions import Actions
from .issues import Issues
from .pulls import Pulls
from .releases import Releases
from .repos import Repos


class GitHubStandIn:
    """GitHub's REST API for one repository, on 127.0.0.1, for tests and the sandbox: the server,
    the one router, the shared state; each resource family (``pulls``, ``repos``, ``releases``,
    ``issues``, ``actions``) in its own module."""

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
        self.lock = threading.RLock()
        self.ids = itertools.count(1001)
        self.numbers = itertools.count(1)
        self.all_issues: dict[int, Issue] = {}
        self.all_reviews: dict[int, list[JSON]] = {}
        self.all_labels: dict[str, JSON] = {}
        self.all_releases: list[JSON] = []
        self.all_runs: list[JSON] = []
        self._server: http.server.ThreadingHTTPServer | None = None
        self.pulls, self.repos, self.releases = Pulls(self), Repos(self), Releases(self)
        self.issues, self.actions = Issues(self), Actions(self)
        self._families: dict[str, Family] = {type(f).__name__: f for f in (self.pulls, self.repos, self.releases,
                                                                           self.issues, self.actions)}

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
            with self.lock:
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

        with self.lock:
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
        if m and int(m.group(2)) in self.all_issues:
            issue = self.all_issues[int(m.group(2))]
            rows: list[tuple[str, Any]] = [("state", issue.state), ("author", issue.login), ("body", issue.body or "")]
            if issue.pull:
                pull = self.pulls.state(issue)
                rows = [("from", pull["head"]), ("into", pull["base"]), ("head", self.pulls.head_sha(issue.number)),
                        ("merged", pull["merged"]), ("merge commit", pull["merge_sha"] or "-"),
                        ("reviews", ", ".join(f"{r['login']}: {r['state']}" for r in self.all_reviews.get(
                            issue.number, [])) or "none")] + rows
            return f"#{issue.number} {issue.title}", rows
        m = re.fullmatch(r"/actions/runs/(\d+)", path)
        run = next((r for r in self.all_runs if m and r["id"] == int(m.group(1))), None)
        if run is not None:
            return f"workflow run {run['id']}", [(k, run.get(k)) for k in ("name", "head_sha", "status", "conclusion",
                                                                         "event", "created_at")]
        m = re.fullmatch(r"/releases/tag/(.+)", path)
        tag = urllib.parse.unquote(m.group(1)) if m else None
        release = next((r for r in self.all_releases if r["tag_name"] == tag), None)
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
        for method, pattern, repo, handler in ROUTES:        # the one router, over every family's routes
            m = pattern.match(path)
            if m and repo == is_repo and method == req.method:
                req.groups = tuple(urllib.parse.unquote(g) for g in m.groups())
                result: tuple[int, Any] = handler(self._families[handler.__qualname__.split(".")[0]], req)
                return result
        raise HTTPError(404, "Not Found")

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

    def sha(self, branch: str) -> str | None:
        return git.rev(self.bare, f"refs/heads/{git.safe_ref(branch, 'branch')}")

    def clone(self, tmp: str, branch: str) -> Path:
        work = Path(tmp) / "work"
        git.git(["clone", "--quiet", "--branch", git.safe_ref(branch), "--end-of-options", str(self.bare),
                 str(work)])
        return work

    def commit(self, branch: str, files: Mapping[str, str], message: str, login: str) -> str:
        """Act as ``login`` pushing a commit (files written as given) to ``branch``; returns its sha."""
        with self.lock, tempfile.TemporaryDirectory(prefix="gh-standin-") as tmp:
            work = self.clone(tmp, branch)
            for name, text in files.items():
                target = work / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
            ident = git.identity_env(login, f"{login}@users.noreply.github.com")
            git.git(["add", "--all"], work)
            git.git(["commit", "--quiet", "-m", message], work, env=ident)
            git.git(["push", "--quiet", "origin", f"HEAD:refs/heads/{branch}"], work)
            return git.out(["rev-parse", "HEAD"], work)

    # -- Python helpers: act as users and as the pipeline (the families' own, here for callers) ----
    def open_pull(self, head: str, base: str, title: str, login: str, body: str = "") -> JSON:
        return self.pulls.open_pull(head, base, title, login, body)

    def review(self, pr: int, login: str, state: str, body: str = "", commit_id: str | None = None) -> JSON:
        return self.pulls.review(pr, login, state, body, commit_id)

    def dismiss(self, pr: int, review_id: int) -> None:
        self.pulls.dismiss(pr, review_id)

    def head_sha(self, number: int) -> str:
        return self.pulls.head_sha(number)

    def add_workflow_run(self, head_sha: str, status: str = "completed", conclusion: str | None = "success",
                         branch: str | None = None, workflow: str = "deploy-production.yml",
                         event: str = "push", name: str | None = None) -> JSON:
        return self.actions.add_workflow_run(head_sha, status, conclusion, branch, workflow, event, name)

    def update_workflow_run(self, run_id: int, status: str, conclusion: str | None = None) -> None:
        self.actions.update_workflow_run(run_id, status, conclusion)


def start_for(bare_repo: Path, repo: str, users: Mapping[str, str], admins: Iterable[str] = ()) -> GitHubStandIn:
    """Start a stand-in for ``owner/name`` over ``bare_repo``; raises ExternalError when it cannot."""
    owner, _, name = repo.partition("/")
    if not owner or not name or not git.is_repo(bare_repo):
        raise ExternalError("start the GitHub stand-in", f"{repo!r} over {bare_repo}: need owner/name and a bare "
                                                         "repository", "create the bare repository first")
    standin = GitHubStandIn(bare_repo, owner, name, users, admins)
    standin.start()
    return standin
