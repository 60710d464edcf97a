"""Pull requests and reviews: open, read (mergeability as GitHub computes it), files, reviews, a real ``--no-ff`` merge pushed to the bare repository."""

from __future__ import annotations

import tempfile
from typing import Any

from ... import git
from .common import FILE_STATUS, JSON, REVIEW_EVENTS, REVIEW_STATES, Family, HTTPError, Issue, Request, now, route


class Pulls(Family):
    """Pull requests and reviews: open, read (mergeability as GitHub computes it), files, reviews, a real ``--no-ff`` merge pushed to the bare repository."""

    def _pull_json(self, issue: Issue, listing: bool = False, created: bool = False) -> JSON:
        """A pull request as GitHub shows it; in a list (``listing``) without the mergeability fields,
        which GitHub computes only when one pull request is read; just ``created``, not computed yet."""
        pull = self.state(issue)
        head_sha, base_sha = self.head_sha(issue.number), self.hub.sha(pull["base"]) or ""
        repo = self.hub.repo_json()
        merged = bool(pull["merged"])
        data: JSON = {
            **self.hub.issues.issue_json(issue), "id": issue.number + 700000, "node_id": f"PR_{issue.number}",
            "url": f"{self.hub.api}/pulls/{issue.number}", "issue_url": f"{self.hub.api}/issues/{issue.number}",
            "html_url": f"{self.hub.web}/pull/{issue.number}", "draft": False,
            "head": {"ref": pull["head"], "sha": head_sha, "label": f"{self.hub.owner}:{pull['head']}",
                     "repo": repo, "user": self.hub.user_json(self.hub.owner)},
            "base": {"ref": pull["base"], "sha": base_sha, "label": f"{self.hub.owner}:{pull['base']}",
                     "repo": repo, "user": self.hub.user_json(self.hub.owner)},
            "merged": merged, "merged_at": pull["merged_at"],
            "merged_by": self.hub.user_json(pull["merged_by"]) if merged else None,
            "merge_commit_sha": pull["merge_sha"],
            "commits_url": f"{self.hub.api}/pulls/{issue.number}/commits",
            "review_comments_url": f"{self.hub.api}/pulls/{issue.number}/comments"}
        if created:
            data.update(mergeable=None, mergeable_state="unknown")
        elif not listing:
            mergeable, state = self._mergeability(issue)
            data.update(mergeable=mergeable, mergeable_state=state)
        return data

    def _review_json(self, number: int, review: JSON) -> JSON:
        return {**review, "user": self.hub.user_json(review["login"]), "node_id": f"PRR_{review['id']}",
                "html_url": f"{self.hub.web}/pull/{number}#pullrequestreview-{review['id']}",
                "pull_request_url": f"{self.hub.api}/pulls/{number}", "author_association": "MEMBER"}

    def head_sha(self, number: int) -> str:
        """The pull request's head commit: read live from the branch (kept once merged)."""
        pull = self.state(self._pull(number))
        if pull["merged"]:
            return str(pull["last_head"])
        live = self.hub.sha(pull["head"])
        if live:
            pull["last_head"] = live
        return str(pull["last_head"])

    def _mergeable(self, issue: Issue) -> bool | None:
        pull = self.state(issue)
        if issue.state != "open":
            return None
        r = git.git(["merge-tree", "--write-tree", "--end-of-options", self.head_sha(issue.number),
                     f"refs/heads/{pull['base']}"], self.hub.bare, check=False)
        return {0: True, 1: False}.get(r.code)

    def _mergeability(self, issue: Issue) -> tuple[bool | None, str]:
        """``mergeable`` and ``mergeable_state`` as GitHub answers them.

        GitHub computes mergeability in a background job; the answer to the creation and the
        first read after the head or the base moved is ``null`` / ``unknown``, later ones the result
        (``true`` / ``clean``, or ``false`` / ``dirty`` on a conflict). Clients poll. A closed or
        merged pull request answers ``null`` / ``unknown``.
        """
        pull = self.state(issue)
        if issue.state != "open":
            return None, "unknown"
        key = (self.head_sha(issue.number), self.hub.sha(pull["base"]) or "")
        if pull.get("mergeable_key") != key:
            pull["mergeable_key"], pull["mergeable"] = key, self._mergeable(issue)
            return None, "unknown"
        value = pull.get("mergeable")
        return value, "clean" if value is True else "dirty" if value is False else "unknown"

    def _files(self, base: str, head: str) -> list[JSON]:
        out = git.git(["diff", "--name-status", "--no-renames", "-z", "--end-of-options", f"{base}...{head}"],
                      self.hub.bare).out
        parts = [p for p in out.split("\0") if p]
        return [{"sha": head, "filename": name, "status": FILE_STATUS.get(code[:1], "modified"),
                 "additions": 0, "deletions": 0, "changes": 0}
                for code, name in zip(parts[::2], parts[1::2])]

    def _merge(self, base: str, sha: str, login: str, title: str, message: str) -> str:
        with tempfile.TemporaryDirectory(prefix="gh-standin-merge-") as tmp:
            work = self.hub.clone(tmp, base)
            ident = git.identity_env(login, f"{login}@users.noreply.github.com")
            merged = git.git(["merge", "--no-ff", "--no-edit", "-m", title, *(["-m", message] if message else []),
                              "--end-of-options", sha], work, check=False, env=ident)
            if merged.code != 0:
                raise HTTPError(405, "Pull Request is not mergeable")
            pushed = git.git(["push", "--quiet", "origin", f"HEAD:refs/heads/{base}"], work, check=False)
            if pushed.code != 0:
                raise HTTPError(409, "Base branch was modified. Review and try the merge again.")
            return git.out(["rev-parse", "HEAD"], work)

    def _pull(self, number: int) -> Issue:
        issue = self.hub.all_issues.get(int(number))
        if issue is None or issue.pull is None:
            raise HTTPError(404, "Not Found")
        return issue

    @staticmethod
    def state(issue: Issue) -> JSON:
        """The pull-request part of an issue (404 for a plain issue)."""
        if issue.pull is None:
            raise HTTPError(404, "Not Found")
        return issue.pull

    def open_pull(self, head: str, base: str, title: str, login: str, body: str = "") -> JSON:
        """Open a pull request as ``login`` (GitHub's rules: branches exist, commits between, one open per pair)."""
        with self.hub.lock:
            for field_name, branch in (("head", head), ("base", base)):
                if not git.REF.match(branch) or self.hub.sha(branch) is None:
                    raise HTTPError(422, "Validation Failed", [{"resource": "PullRequest", "field": field_name,
                                                                "code": "invalid"}])
            for issue in self.hub.all_issues.values():
                if issue.pull and issue.state == "open" and (issue.pull["head"], issue.pull["base"]) == (head, base):
                    raise HTTPError(422, "Validation Failed", [{"resource": "PullRequest", "code": "custom",
                                    "message": f"A pull request already exists for {self.hub.owner}:{head}."}])
            count = git.out(["rev-list", "--count", f"refs/heads/{base}..refs/heads/{head}"], self.hub.bare)
            if count == "0":
                raise HTTPError(422, "Validation Failed", [{"resource": "PullRequest", "code": "custom",
                                                            "message": f"No commits between {base} and {head}"}])
            number = next(self.hub.numbers)
            self.hub.all_issues[number] = Issue(number, title, body, login, now(), pull={
                "head": head, "base": base, "merged": False, "merge_sha": None, "merged_by": None,
                "merged_at": None, "last_head": self.hub.sha(head), "files": None})
            self.hub.all_reviews[number] = []
            return self._pull_json(self.hub.all_issues[number], created=True)

    def review(self, pr: int, login: str, state: str, body: str = "", commit_id: str | None = None) -> JSON:
        """Record a review by ``login`` on the current head (or ``commit_id``).

        ``state`` is APPROVED, CHANGES_REQUESTED or COMMENTED. Unlike the REST endpoint this
        does not refuse the author's own review, so tests can build states GitHub forbids.
        """
        if state not in REVIEW_STATES - {"DISMISSED"}:
            raise ValueError(f"review state {state!r}: use APPROVED, CHANGES_REQUESTED or COMMENTED")
        with self.hub.lock:
            self._pull(pr)
            review = {"id": next(self.hub.ids), "login": login, "state": state, "body": body,
                      "commit_id": commit_id or self.head_sha(pr), "submitted_at": now()}
            self.hub.all_reviews[int(pr)].append(review)
            return self._review_json(int(pr), review)

    def dismiss(self, pr: int, review_id: int) -> None:
        """Dismiss a review (it then neither approves nor blocks)."""
        with self.hub.lock:
            for review in self.hub.all_reviews.get(int(pr), []):
                if review["id"] == review_id:
                    review["state"] = "DISMISSED"
                    return
        raise HTTPError(404, "Not Found")

    @route("GET", r"/pulls")
    def list_pulls(self, req: Request) -> tuple[int, Any]:
        state, head, base = req.query.get("state", "open"), req.query.get("head", ""), req.query.get("base")
        head_ref = head.split(":", 1)[-1]
        found = [i for n, i in sorted(self.hub.all_issues.items(), reverse=True) if i.pull is not None
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
        self.hub.issues.apply_update(issue, req.body or {})
        return 200, self._pull_json(issue)

    @route("GET", r"/pulls/(\d+)/files")
    def pull_files(self, req: Request) -> tuple[int, Any]:
        pull = self.state(self._pull(int(req.groups[0])))
        if pull["files"] is not None:
            return 200, pull["files"]
        return 200, self._files(f"refs/heads/{pull['base']}", self.head_sha(int(req.groups[0])))

    @route("GET", r"/pulls/(\d+)/reviews")
    def list_reviews(self, req: Request) -> tuple[int, Any]:
        number = int(req.groups[0])
        self._pull(number)
        return 200, [self._review_json(number, r) for r in self.hub.all_reviews[number]]

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
        review = next(r for r in self.hub.all_reviews[number] if r["id"] == review_id)
        return 200, self._review_json(number, review)

    @route("PUT", r"/pulls/(\d+)/merge")
    def merge_pull(self, req: Request) -> tuple[int, Any]:
        number, body = int(req.groups[0]), req.body or {}
        issue = self._pull(number)
        pull = self.state(issue)
        method = body.get("merge_method", "merge")
        if method not in self.hub.merge_methods:
            raise HTTPError(405, f"{str(method).capitalize()} merges are not allowed on this repository.")
        if pull["merged"] or issue.state != "open":
            raise HTTPError(405, "Pull Request is not mergeable")
        head = self.head_sha(number)
        if body.get("sha") and body["sha"] != head:
            raise HTTPError(409, "Head branch was modified. Review and try the merge again.")
        files = self._files(f"refs/heads/{pull['base']}", head)
        title = body.get("commit_title") or f"Merge pull request #{number} from {self.hub.owner}/{pull['head']}"
        sha = self._merge(pull["base"], head, req.login, str(title), str(body.get("commit_message") or issue.title))
        pull.update(merged=True, merge_sha=sha, merged_by=req.login, merged_at=now(), last_head=head, files=files)
        issue.state, issue.closed_at = "closed", now()
        return 200, {"sha": sha, "merged": True, "message": "Pull Request successfully merged"}

    @route("GET", r"/pulls/(\d+)/merge")
    def is_merged(self, req: Request) -> tuple[int, Any]:
        pull = self.state(self._pull(int(req.groups[0])))
        if not pull["merged"]:
            raise HTTPError(404, "Not Found")
        return 204, None
