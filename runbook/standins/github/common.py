"""What every resource family of the GitHub stand-in shares: errors, requests, the route table."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable
from ... import clock

if TYPE_CHECKING:
    from . import GitHubStandIn

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
class Issue:
    number: int
    title: str
    body: str
    login: str
    created_at: str
    labels: list[str] = field(default_factory=list)
    state: str = "open"
    closed_at: str | None = None
    pull: JSON | None = None   # head, base, merged, merge_sha, merged_by, merged_at, last_head, files


def now() -> str:
    return clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")


ROUTES: list[tuple[str, re.Pattern[str], bool, Callable[..., Any]]] = []


def route(method: str, pattern: str, repo: bool = True) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a handler of a resource family; ``repo`` patterns are relative to ``/repos/OWNER/REPO``."""
    def deco(func: Callable[..., Any]) -> Callable[..., Any]:
        ROUTES.append((method, re.compile("^" + pattern + "$"), repo, func))
        return func
    return deco


class Family:
    """One resource family of the stand-in: its handlers and JSON shapes, over the hub's state."""

    def __init__(self, hub: "GitHubStandIn"):
        self.hub = hub
