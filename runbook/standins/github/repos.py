"""The user, the repository and its permissions, refs and annotated tags."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

from ... import clock, git
from .common import JSON, ZERO, Family, HTTPError, Request, route


class Repos(Family):
    """The user, the repository and its permissions, refs and annotated tags."""

    def ref(self, ref: str) -> JSON | None:
        """``refs/...`` as GitHub's ref JSON, or None."""
        out = git.git(["for-each-ref", "--format=%(refname)%09%(objectname)%09%(objecttype)", "--end-of-options",
                       ref], self.hub.bare).out
        for line in out.splitlines():
            name, sha, kind = line.split("\t")
            if name == ref:
                return {"ref": name, "node_id": f"REF_{sha[:12]}", "url": f"{self.hub.api}/git/{name}",
                        "object": {"sha": sha, "type": kind, "url": f"{self.hub.api}/git/{kind}s/{sha}"}}
        return None

    @route("GET", r"/user", repo=False)
    def get_user(self, req: Request) -> tuple[int, Any]:
        return 200, self.hub.user_json(req.login)

    @route("GET", r"/users/([^/]+)", repo=False)
    def get_named_user(self, req: Request) -> tuple[int, Any]:
        return 200, self.hub.user_json(req.groups[0])

    @route("GET", r"")
    def get_repo(self, req: Request) -> tuple[int, Any]:
        return 200, self.hub.repo_json(req.login)

    @route("GET", r"/collaborators/([^/]+)/permission")
    def get_permission(self, req: Request) -> tuple[int, Any]:
        login = req.groups[0]
        level = "admin" if login.lower() in self.hub.admins else "write"
        return 200, {"permission": level, "role_name": level, "user": self.hub.user_json(login)}

    @route("GET", r"/git/(?:ref|refs)/(.+)")
    def get_ref(self, req: Request) -> tuple[int, Any]:
        found = self.ref("refs/" + req.groups[0])
        if found is None:
            raise HTTPError(404, "Not Found")
        return 200, found

    @route("GET", r"/git/matching-refs/(.*)")
    def matching_refs(self, req: Request) -> tuple[int, Any]:
        prefix = "refs/" + req.groups[0]
        namespace = "/".join(prefix.split("/")[:2])
        out = git.git(["for-each-ref", "--format=%(refname)", "--end-of-options", namespace], self.hub.bare).out
        names = [n for n in out.splitlines() if n.startswith(prefix)]
        return 200, [self.ref(n) for n in names]

    @route("POST", r"/git/refs")
    def create_ref(self, req: Request) -> tuple[int, Any]:
        body = req.body or {}
        ref, sha = str(body.get("ref", "")), str(body.get("sha", ""))
        if not ref.startswith("refs/") or not git.REF.match(ref[5:]) or ref.count("/") < 2:
            raise HTTPError(422, "Reference name is not valid")
        if not re.fullmatch(r"[0-9a-f]{40}", sha) or git.git(["cat-file", "-e", sha], self.hub.bare, check=False).code:
            raise HTTPError(422, "Object does not exist")
        if self.ref(ref) is not None:
            raise HTTPError(422, "Reference already exists")
        git.git(["update-ref", "--end-of-options", ref, sha, ZERO], self.hub.bare)
        return 201, self.ref(ref)

    @route("POST", r"/git/tags")
    def create_tag(self, req: Request) -> tuple[int, Any]:
        body = req.body or {}
        tag, obj, kind = str(body.get("tag", "")), str(body.get("object", "")), str(body.get("type", "commit"))
        if not git.REF.match(tag) or not re.fullmatch(r"[0-9a-f]{40}", obj):
            raise HTTPError(422, "Validation Failed", [{"resource": "Tag", "code": "invalid"}])
        tagger = body.get("tagger") or {"name": req.login, "email": f"{req.login}@users.noreply.github.com"}
        stamp = int(clock.time_s())
        text = (f"object {obj}\ntype {kind}\ntag {tag}\ntagger {tagger['name']} <{tagger['email']}> {stamp} +0000\n"
                f"\n{body.get('message', '')}\n")
        made = git.git(["mktag"], self.hub.bare, check=False, input_text=text)
        if made.code != 0:
            raise HTTPError(422, "Object does not exist")
        return 201, self._tag_json(made.out.strip())

    @route("GET", r"/git/tags/([0-9a-f]{40})")
    def get_tag(self, req: Request) -> tuple[int, Any]:
        if git.git(["cat-file", "-t", req.groups[0]], self.hub.bare, check=False).out.strip() != "tag":
            raise HTTPError(404, "Not Found")
        return 200, self._tag_json(req.groups[0])

    def _tag_json(self, sha: str) -> JSON:
        head, _, message = git.git(["cat-file", "tag", sha], self.hub.bare).out.partition("\n\n")
        fields = dict(line.split(" ", 1) for line in head.splitlines() if " " in line)
        who = re.match(r"(.*) <(.*)> (\d+)", fields.get("tagger", ""))
        name, email, stamp = who.groups() if who else ("", "", "0")
        date = datetime.fromtimestamp(int(stamp), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {"sha": sha, "node_id": f"TAG_{sha[:12]}", "tag": fields.get("tag"), "message": message.rstrip("\n"),
                "url": f"{self.hub.api}/git/tags/{sha}", "tagger": {"name": name, "email": email, "date": date},
                "object": {"sha": fields.get("object"), "type": fields.get("type"),
                           "url": f"{self.hub.api}/git/{fields.get('type')}s/{fields.get('object')}"},
                "verification": {"verified": False, "reason": "unsigned", "signature": None, "payload": None}}
