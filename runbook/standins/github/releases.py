"""Releases: list, read by id or tag, create, update."""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

from ... import git
from .common import JSON, ZERO, Family, HTTPError, Request, now, route


class Releases(Family):
    """Releases: list, read by id or tag, create, update."""

    def _release_json(self, release: JSON) -> JSON:
        rid = release["id"]
        return {**release, "author": self.hub.user_json(release["login"]), "url": f"{self.hub.api}/releases/{rid}",
                "html_url": f"{self.hub.web}/releases/tag/{urllib.parse.quote(release['tag_name'], safe='')}",
                "upload_url": f"{self.hub.api}/releases/{rid}/assets{{?name,label}}", "assets": [],
                "assets_url": f"{self.hub.api}/releases/{rid}/assets", "tarball_url": None, "zipball_url": None}

    @route("GET", r"/releases")
    def list_releases(self, req: Request) -> tuple[int, Any]:
        return 200, [self._release_json(r) for r in reversed(self.hub.all_releases)]

    @route("GET", r"/releases/(\d+)")
    def get_release(self, req: Request) -> tuple[int, Any]:
        for release in self.hub.all_releases:
            if release["id"] == int(req.groups[0]):
                return 200, self._release_json(release)
        raise HTTPError(404, "Not Found")

    @route("GET", r"/releases/tags/(.+)")
    def get_release_by_tag(self, req: Request) -> tuple[int, Any]:
        for release in self.hub.all_releases:
            if release["tag_name"] == req.groups[0]:
                return 200, self._release_json(release)
        raise HTTPError(404, "Not Found")

    @route("PATCH", r"/releases/(\d+)")
    def update_release(self, req: Request) -> tuple[int, Any]:
        body = req.body or {}
        for release in self.hub.all_releases:
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
        if any(r["tag_name"] == tag for r in self.hub.all_releases):
            raise HTTPError(422, "Validation Failed", [{"resource": "Release", "field": "tag_name",
                                                        "code": "already_exists"}])
        target = str(body.get("target_commitish") or self.hub.default_branch)
        if self.hub.repos.ref(f"refs/tags/{tag}") is None:   # GitHub tags the target when the tag does not exist yet
            sha = git.rev(self.hub.bare, target if re.fullmatch(r"[0-9a-f]{40}", target) else f"refs/heads/{target}")
            if sha is None:
                raise HTTPError(422, "Validation Failed", [{"resource": "Release", "field": "target_commitish",
                                                            "code": "invalid"}])
            git.git(["update-ref", "--end-of-options", f"refs/tags/{tag}", sha, ZERO], self.hub.bare)
        release = {"id": next(self.hub.ids), "node_id": f"RE_{tag}", "tag_name": tag, "name": body.get("name") or tag,
                   "body": body.get("body") or "", "draft": bool(body.get("draft")),
                   "prerelease": bool(body.get("prerelease")), "target_commitish": target, "login": req.login,
                   "created_at": now(), "published_at": now()}
        self.hub.all_releases.append(release)
        return 201, self._release_json(release)
