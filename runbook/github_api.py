"""The one door to GitHub: the only module that imports PyGithub.

Clients are built from the environment at run time (``env.github``: ``repo``,
``base_url`` for GitHub Enterprise or the stand-in, ``token_env``), never at import
time. The token comes from the variable the environment names, else from
``gh auth token`` when the GitHub CLI is installed; it is never returned to callers
that write anything. PyGithub's and requests' errors are translated where they enter
into ExternalError naming the operation and what to do. ``evaluate`` decides a
github-pr approval from plain review data, so the rule is testable without a server.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import urllib.parse
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, TypeVar

from . import proc
from .errors import ExternalError

if TYPE_CHECKING:
    from github import Github
    from github.Repository import Repository

DEFAULT_BASE_URL = "https://api.github.com"
DEFAULT_TOKEN_VARS = ("GITHUB_TOKEN", "GH_TOKEN")
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
SECURITY_ROLE = "security"
T = TypeVar("T")


@dataclass(frozen=True)
class Settings:
    """``env.github`` with its defaults."""

    repo: str
    base_url: str
    token_env: str


def settings(env: Mapping[str, Any]) -> Settings:
    """Read ``env.github``; a missing repository is an error naming the field to set."""
    gh = env.get("github") or {}
    repo = str(gh.get("repo") or "")
    if "/" not in repo:
        raise ExternalError("GitHub configuration", "env.github.repo is not set (owner/name)",
                            "add `github: {repo: OWNER/NAME}` to the environment file")
    base_url = str(gh.get("base_url") or DEFAULT_BASE_URL).rstrip("/")
    if urllib.parse.urlsplit(base_url).scheme not in ("http", "https"):
        raise ExternalError("GitHub configuration", f"env.github.base_url {base_url!r} is not an http(s) URL",
                            "use https://api.github.com or https://HOST/api/v3 for GitHub Enterprise")
    return Settings(repo, base_url, str(gh.get("token_env") or ""))


def token(env: Mapping[str, Any]) -> tuple[str, str]:
    """The token and where it came from (``$VAR`` or ``gh auth token``); never logged."""
    cfg = settings(env)
    names = [cfg.token_env] if cfg.token_env else list(DEFAULT_TOKEN_VARS)
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            return value, f"${name}"
    if shutil.which("gh"):
        host = urllib.parse.urlsplit(cfg.base_url).hostname or "github.com"
        argv = ["gh", "auth", "token"] + ([] if host in ("api.github.com", "github.com") else ["--hostname", host])
        done = proc.run(argv, timeout=20)
        if done.exit_code == 0 and done.stdout.strip():
            return done.stdout.strip(), "gh auth token"
    wanted = " or ".join(f"${n}" for n in names)
    raise ExternalError("GitHub authentication",
                        f"no GitHub token found ({wanted} is not set, `gh auth token` gave none)",
                        f"export {names[0]}=<a token with repo scope>, or run `gh auth login`")


def client(env: Mapping[str, Any], secret: str | None = None) -> "Github":
    """A PyGithub client for ``env.github`` (throttling off for a loopback stand-in)."""
    from github import Auth, Github

    cfg = settings(env)
    secret = secret or token(env)[0]
    loopback = urllib.parse.urlsplit(cfg.base_url).hostname in LOOPBACK
    extra: dict[str, Any] = {"seconds_between_requests": None, "seconds_between_writes": None, "retry": None} \
        if loopback else {}
    return Github(base_url=cfg.base_url, auth=Auth.Token(secret), timeout=30, **extra)


def _hint(status: int | None, cfg: Settings | None, source: str) -> str:
    named = source or (f"${cfg.token_env}" if cfg and cfg.token_env else "")
    var = "the token from `gh auth token`" if named == "gh auth token" else \
        f"the token in {named}" if named else "the GitHub token"
    where = cfg.base_url if cfg else "base_url"
    return {401: f"check {var}: it is invalid or expired; it needs repo scope",
            403: f"{var} lacks permission or hit a rate limit: check it has repo scope",
            404: f"check env.github.repo ({cfg.repo if cfg else '?'}) and that {var} can see it; "
                 f"is base_url ({where}) right?",
            409: "the pull request or branch changed meanwhile: look at it and try again",
            422: "GitHub refused the request as given: see its message"}.get(
        status or 0, f"is base_url ({where}) right and reachable?" if status is None else "")


@contextmanager
def translate(operation: str, env: Mapping[str, Any] | None = None, source: str = "") -> Iterator[None]:
    """Turn PyGithub and HTTP errors raised inside into ExternalError for ``operation``."""
    import requests
    from github import GithubException

    try:
        cfg: Settings | None = settings(env) if env is not None else None
    except ExternalError:
        cfg = None
    try:
        yield
    except GithubException as exc:
        data = exc.data if isinstance(exc.data, dict) else {}
        message = str(data.get("message") or exc.message or "error")
        details = [str(e.get("message") or f"{e.get('field', '')} {e.get('code', '')}".strip())
                   for e in data.get("errors") or [] if isinstance(e, dict)]
        text = f"GitHub answered {exc.status}: {message}" + (f" ({'; '.join(details)})" if details else "")
        raise ExternalError(operation, text, _hint(exc.status, cfg, source), exc) from exc
    except requests.RequestException as exc:
        where = cfg.base_url if cfg else "GitHub"
        raise ExternalError(operation, f"no answer from {where} ({type(exc).__name__})",
                            _hint(None, cfg, source), exc) from exc


class Connection:
    """A client, the repository and the token owner's login, fetched on first use."""

    def __init__(self, env: Mapping[str, Any]):
        self.env = env
        self.settings = settings(env)
        secret, self.source = token(env)
        self.gh = client(env, secret)
        self._repo: Repository | None = None
        self._login: str | None = None

    def translate(self, operation: str) -> Any:
        return translate(operation, self.env, self.source)

    @property
    def repo(self) -> "Repository":
        if self._repo is None:
            with self.translate(f"read repository {self.settings.repo}"):
                self._repo = self.gh.get_repo(self.settings.repo)
        return self._repo

    def find(self, operation: str, fetch: Callable[[], T]) -> T | None:
        """``fetch()``, or None when GitHub answers 404 (other errors are translated)."""
        from github import UnknownObjectException

        with self.translate(operation):
            try:
                return fetch()
            except UnknownObjectException:
                return None

    @property
    def login(self) -> str:
        """The login of the token's owner: the operator on GitHub."""
        if self._login is None:
            with self.translate("identify the token's user (GET /user)"):
                self._login = str(self.gh.get_user().login)
        return self._login


@contextmanager
def connect(env: Mapping[str, Any]) -> Iterator[Connection]:
    """A Connection for one plugin call; its HTTP pool is closed afterwards."""
    conn = Connection(env)
    try:
        yield conn
    finally:
        conn.gh.close()


# -- approvals ---------------------------------------------------------------------
@dataclass(frozen=True)
class Review:
    """One review as GitHub reports it, in the order GitHub lists them (oldest first)."""

    login: str
    state: str              # APPROVED | CHANGES_REQUESTED | COMMENTED | DISMISSED | PENDING
    commit_id: str
    submitted_at: str = ""
    id: int = 0


@dataclass
class Verdict:
    """The decision on a github-pr approval, with every reason."""

    approved: bool
    head_sha: str
    approvers: list[str]                     # counted approvals on the head, distinct
    roles: dict[str, str]                    # role -> the approver who fills it
    required_roles: list[str]
    security_files: list[str]
    change_requests: list[str]
    not_counted: list[dict[str, str]]        # {login, state, reason}
    problems: list[str]
    park: bool                               # waiting for people could help
    repeated: dict[str, int] = field(default_factory=dict)

    def summary(self, minimum: int) -> str:
        short = self.head_sha[:7]
        if self.approved:
            who = ", ".join(f"{login} ({role})" for role, login in self.roles.items())
            extra = [a for a in self.approvers if a not in self.roles.values()]
            return f"approved on head {short} by " + ", ".join(filter(None, [who, ", ".join(extra)]))
        counted = ", ".join(self.approvers) or "nobody"
        skipped = [f"{n['login']} ({n['reason']})" for n in self.not_counted if n["state"] != "CHANGES_REQUESTED"]
        more = f"; not counted: {', '.join(skipped[:5])}" + (" ..." if len(skipped) > 5 else "") if skipped else ""
        return f"not approved on head {short}: " + "; ".join(self.problems) + f"; counted: {counted}{more}"


def _fold(login: str) -> str:
    return login.casefold()


def _latest(reviews: Iterable[Review]) -> tuple[dict[str, Review], dict[str, int], list[str]]:
    latest: dict[str, Review] = {}
    approvals: dict[str, int] = {}
    commenters: list[str] = []
    for review in reviews:
        key = _fold(review.login)
        if review.state in ("COMMENTED", "PENDING"):
            if key not in latest and key not in {_fold(c) for c in commenters}:
                commenters.append(review.login)
            continue
        latest[key] = review
        if review.state == "APPROVED":
            name = next((n for n in approvals if _fold(n) == key), review.login)   # as first seen
            approvals[name] = approvals.get(name, 0) + 1
    return latest, approvals, [c for c in commenters if _fold(c) not in latest]


def assign(approvers: list[str], roles: list[str], members: Mapping[str, list[str]]) -> dict[str, str] | None:
    """A distinct approver for each role, chosen among the role's members; None if impossible."""
    def search(i: int, used: set[str]) -> dict[str, str] | None:
        if i == len(roles):
            return {}
        allowed = {_fold(m) for m in members.get(roles[i]) or []}
        for person in approvers:
            if _fold(person) in allowed and person not in used:
                rest = search(i + 1, used | {person})
                if rest is not None:
                    return {roles[i]: person, **rest}
        return None
    return search(0, set())


def evaluate(reviews: Iterable[Review], *, head_sha: str, author: str, operators: Iterable[str], minimum: int,
             roles: Iterable[str], members: Mapping[str, list[str]], changed_files: Iterable[str],
             security_paths: Iterable[str]) -> Verdict:
    """DESIGN.md's github-pr rule over plain review data.

    Counted: each user's latest non-comment review, when it approves the current head.
    An outstanding change request blocks; the author and the operator never count; each
    role needs its own approver among ``members[role]``; a changed file matching
    ``security_paths`` adds the security role.
    """
    latest, approvals, commenters = _latest(reviews)
    never = {_fold(author): "author of the pull request"}
    never.update({_fold(o): "operator of this run" for o in operators if o})
    counted: list[str] = []
    changes: list[str] = []
    not_counted: list[dict[str, str]] = []
    for review in latest.values():
        login = review.login
        if review.state == "CHANGES_REQUESTED":
            changes.append(login)
            not_counted.append({"login": login, "state": review.state, "reason": "requested changes (outstanding)"})
        elif review.state != "APPROVED":
            not_counted.append({"login": login, "state": review.state, "reason": f"latest review is {review.state}"})
        elif _fold(login) in never:
            not_counted.append({"login": login, "state": review.state,
                                "reason": f"{never[_fold(login)]}: never counts (separation of duties)"})
        elif review.commit_id != head_sha:
            not_counted.append({"login": login, "state": review.state, "reason": f"approved {review.commit_id[:7]}, "
                                f"but the head is now {head_sha[:7]} (pushed after the review)"})
        else:
            counted.append(login)
    not_counted += [{"login": c, "state": "COMMENTED", "reason": "only commented"} for c in commenters]
    files = sorted({f for f in changed_files if any(fnmatch.fnmatch(f, p) for p in security_paths)})
    required = list(dict.fromkeys(list(roles) + ([SECURITY_ROLE] if files else [])))
    problems: list[str] = []
    park = True
    if changes:
        problems.append(f"changes requested by {', '.join(changes)} (outstanding)")
    if len(counted) < minimum:
        problems.append(f"{len(counted)} of {minimum} approvals on the head")
    unlisted = [r for r in required if not members.get(r)]
    if unlisted:
        park = False
        problems.append("the environment lists nobody for role " + ", ".join(unlisted) + " (env.approvers)")
    assigned = assign(counted, required, members) if not unlisted else None
    if assigned is None and not unlisted:
        missing = [r for r in required if not any(_fold(a) in {_fold(m) for m in members[r]} for a in counted)]
        listed = ", ".join(f"{r} (one of {', '.join(members[r])})" for r in missing or required)
        problems.append(f"no approver yet for {listed}" if missing else
                        f"each role needs its own approver: {listed}")
        if SECURITY_ROLE in missing and files:
            problems.append(f"security paths changed: {', '.join(files[:5])}")
    return Verdict(not problems, head_sha, counted, assigned or {}, required, files, changes, not_counted, problems,
                   park and bool(problems), {k: v for k, v in approvals.items() if v > 1})
