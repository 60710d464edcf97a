"""Suggested parameter values offered at the prompt (never applied without the operator).

``suggest: next-release`` offers the next version: the latest release tag of the
environment's repository bumped by what its CHANGELOG's ``[Unreleased]`` section holds
(Removed or "BREAKING" -> major, Added/Changed/Deprecated -> minor, else patch).
"""

from __future__ import annotations

import re
import tempfile
from typing import Any, Mapping

from . import git as g

SEMVER = re.compile(r"^v(\d+)\.(\d+)\.(\d+)$")


def next_release(env: Mapping[str, Any]) -> str | None:
    """The next version for the environment's repository, or None when it cannot be told quickly."""
    remote = (env.get("git") or {}).get("remote")
    develop = (env.get("git") or {}).get("develop", "develop")
    if not remote:
        return None
    pattern = re.compile((env.get("deploy") or {}).get("release_tag_pattern") or r"^v\d+\.\d+\.\d+$")
    try:
        g.safe_value(str(remote), "remote")
        tags = g.git(["ls-remote", "--tags", "--refs", "--end-of-options", str(remote)], timeout=15).out
        versions = []
        for line in tags.splitlines():
            name = line.split("refs/tags/", 1)[-1]
            m = SEMVER.match(name)
            if m and pattern.search(name):
                versions.append(tuple(int(x) for x in m.groups()))
        if not versions:
            return None
        major, minor, patch = max(versions)
        with tempfile.TemporaryDirectory(prefix="runbook-suggest-") as tmp:
            g.git(["clone", "--quiet", "--depth", "1", "--branch", g.safe_ref(develop), "--end-of-options",
                   str(remote), tmp + "/r"], timeout=20)
            text = open(tmp + "/r/CHANGELOG.md", encoding="utf-8").read()
    except (g.GitError, OSError):
        return None
    unreleased = re.search(r"^## \[Unreleased\](.*?)(?=^## \[|\Z)", text, re.S | re.M | re.I)
    body = unreleased.group(1) if unreleased else ""
    if re.search(r"^### Removed|BREAKING", body, re.M):
        return f"v{major + 1}.0.0"
    if re.search(r"^### (Added|Changed|Deprecated)", body, re.M):
        return f"v{major}.{minor + 1}.0"
    return f"v{major}.{minor}.{patch + 1}"
