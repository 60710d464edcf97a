"""Issues and labels."""

from __future__ import annotations

import urllib.parse
from typing import Any

from .common import JSON, Family, HTTPError, Issue, Request, now, route


class Issues(Family):
    """Issues and labels."""

    def _label_json(self, name: str) -> JSON:
        label = self.hub.all_labels[name.lower()]
        return {**label, "url": f"{self.hub.api}/labels/{urllib.parse.quote(label['name'])}"}

    def issue_json(self, issue: Issue) -> JSON:
        kind = "pull" if issue.pull is not None else "issues"
        data: JSON = {
            "id": issue.number + 500000, "node_id": f"I_{issue.number}", "number": issue.number,
            "title": issue.title, "body": issue.body, "user": self.hub.user_json(issue.login), "state": issue.state,
            "labels": [self._label_json(n) for n in issue.labels], "locked": False, "assignee": None,
            "assignees": [], "comments": 0, "created_at": issue.created_at, "updated_at": issue.created_at,
            "closed_at": issue.closed_at, "url": f"{self.hub.api}/issues/{issue.number}",
            "html_url": f"{self.hub.web}/{kind}/{issue.number}", "repository_url": self.hub.api,
            "labels_url": f"{self.hub.api}/issues/{issue.number}/labels{{/name}}"}
        if issue.pull is not None:
            data["pull_request"] = {"url": f"{self.hub.api}/pulls/{issue.number}",
                                    "html_url": f"{self.hub.web}/pull/{issue.number}"}
        return data

    def _issue(self, number: int) -> Issue:
        issue = self.hub.all_issues.get(number)
        if issue is None:
            raise HTTPError(404, "Not Found")
        return issue

    def _ensure_label(self, name: str) -> str:
        if not name or len(name) > 50:
            raise HTTPError(422, "Validation Failed", [{"resource": "Label", "field": "name", "code": "invalid"}])
        if name.lower() not in self.hub.all_labels:
            self.hub.all_labels[name.lower()] = {"id": next(self.hub.ids), "node_id": f"LA_{name}", "name": name,
                                          "color": "ededed", "default": False, "description": None}
        return str(self.hub.all_labels[name.lower()]["name"])

    def apply_update(self, issue: Issue, body: JSON) -> None:
        if "title" in body:
            issue.title = str(body["title"])
        if "body" in body:
            issue.body = str(body["body"] or "")
        if body.get("state") in ("open", "closed") and not (issue.pull and issue.pull["merged"]):
            issue.state = body["state"]
            issue.closed_at = now() if issue.state == "closed" else None

    @route("GET", r"/issues")
    def list_issues(self, req: Request) -> tuple[int, Any]:
        state = req.query.get("state", "open")
        wanted = {n.strip().lower() for n in req.query.get("labels", "").split(",") if n.strip()}
        found = [i for n, i in sorted(self.hub.all_issues.items(), reverse=True) if state in ("all", i.state)
                 and wanted <= {label.lower() for label in i.labels}]
        return 200, [self.issue_json(i) for i in found]

    @route("POST", r"/issues")
    def create_issue(self, req: Request) -> tuple[int, Any]:
        body = req.body or {}
        if not body.get("title"):
            raise HTTPError(422, "Validation Failed", [{"resource": "Issue", "field": "title",
                                                        "code": "missing_field"}])
        number = next(self.hub.numbers)
        labels = [self._ensure_label(str(n)) for n in body.get("labels") or []]
        self.hub.all_issues[number] = Issue(number, str(body["title"]), str(body.get("body") or ""), req.login, now(),
                                      labels)
        return 201, self.issue_json(self.hub.all_issues[number])

    @route("GET", r"/issues/(\d+)")
    def get_issue(self, req: Request) -> tuple[int, Any]:
        return 200, self.issue_json(self._issue(int(req.groups[0])))

    @route("PATCH", r"/issues/(\d+)")
    def update_issue(self, req: Request) -> tuple[int, Any]:
        issue = self._issue(int(req.groups[0]))
        self.apply_update(issue, req.body or {})
        return 200, self.issue_json(issue)

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
        return 200, [self._label_json(n) for n in sorted(self.hub.all_labels)]

    @route("GET", r"/labels/(.+)")
    def get_label(self, req: Request) -> tuple[int, Any]:
        if req.groups[0].lower() not in self.hub.all_labels:
            raise HTTPError(404, "Not Found")
        return 200, self._label_json(req.groups[0])

    @route("POST", r"/labels")
    def create_label(self, req: Request) -> tuple[int, Any]:
        body = req.body or {}
        name = str(body.get("name", ""))
        if name.lower() in self.hub.all_labels:
            raise HTTPError(422, "Validation Failed", [{"resource": "Label", "code": "already_exists"}])
        self._ensure_label(name)
        self.hub.all_labels[name.lower()].update(color=body.get("color") or "ededed", description=body.get("description"))
        return 201, self._label_json(name)
