"""GitHub plugins through PyGithub's real HTTP code against the stand-in, over real git.

A bare origin is made in tmp_path (main, and release branches with a change); the
stand-in serves it on loopback; plugins are called with a Context as the engine builds
one. The last test drives a runbook through ``invoke`` in a subprocess: the github-pr
gate parks with exit 4, two reviewers approve through the REST endpoint, and
``--resume`` merges at the approved head.
"""

from __future__ import annotations

import json
import signal
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest

from helpers import copy_project, invoke
from runbook import git, plugins
from runbook.github_api import Review, evaluate
from runbook.plugins import Context, Outcome
from runbook.redact import Redactor
from runbook.standins.github import GitHubStandIn

REPO_NAME = "menotime/api"
TOKENS = {"tok-releaser-0001": "releaser", "tok-alice-0002": "alice", "tok-bob-0003": "bob",
          "tok-carol-0004": "carol", "tok-dave-0005": "dave", "tok-erin-0006": "erin", "tok-author-0007": "author"}
TOKEN = {login: tok for tok, login in TOKENS.items()}
OPERATOR = "releaser@menotime.example"
APPROVERS = {"engineering-lead": ["alice", "carol", "author", "releaser"], "devops": ["bob", "dave"],
             "security": ["erin"]}
RELEASE = "release/v1.2.3"
AUTH_BRANCH = "release/v1.2.4"


def _commit(work: Path, files: dict[str, str], message: str) -> str:
    for name, text in files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(text)
    git.git(["add", "--all"], work)
    git.git(["commit", "--quiet", "-m", message], work, env=git.identity_env("Dev", "dev@menotime.example"))
    return git.out(["rev-parse", "HEAD"], work)


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    """A bare origin: main with an app, release/v1.2.3 with a changelog, release/v1.2.4 touching auth code."""
    bare = git.init_bare(tmp_path / "origin.git")
    work = tmp_path / "dev"
    git.git(["clone", "--quiet", str(bare), str(work)])
    _commit(work, {"README.md": "MenoTime API\n", "app/__init__.py": "VERSION = '1.2.2'\n",
                   "CHANGELOG.md": "# Changelog\n\n## [1.2.2] - 2024-01-02\n- Earlier fix\n"}, "initial")
    git.git(["push", "--quiet", "origin", "HEAD:refs/heads/main"], work)
    git.git(["checkout", "--quiet", "-b", RELEASE], work)
    _commit(work, {"app/__init__.py": "VERSION = '1.2.3'\n",
                   "CHANGELOG.md": "# Changelog\n\n## [1.2.3] - 2024-01-20\n### Added\n- Symptom tracking\n\n"
                                   "## [1.2.2] - 2024-01-02\n- Earlier fix\n"}, "chore: prepare release v1.2.3")
    git.git(["push", "--quiet", "origin", f"HEAD:refs/heads/{RELEASE}"], work)
    git.git(["checkout", "--quiet", "-b", AUTH_BRANCH, "main"], work)
    _commit(work, {"app/auth/login.py": "def login(): ...\n"}, "auth: new login flow")
    git.git(["push", "--quiet", "origin", f"HEAD:refs/heads/{AUTH_BRANCH}"], work)
    git.git(["checkout", "--quiet", RELEASE], work)
    return bare


@pytest.fixture
def standin(origin: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[GitHubStandIn]:
    owner, name = REPO_NAME.split("/")
    gh = GitHubStandIn(origin, owner, name, TOKENS, admins={"releaser"})
    gh.start()
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN["releaser"])
    yield gh
    gh.stop()


@pytest.fixture(scope="module")
def registry() -> plugins.Registry:
    return plugins.load()


def env_for(gh: GitHubStandIn, **extra: Any) -> dict[str, Any]:
    return {"name": "test", "github": {"repo": REPO_NAME, "base_url": gh.base_url, "token_env": "GITHUB_TOKEN"},
            "approvers": APPROVERS, **extra}


def call(registry: plugins.Registry, name: str, gh: GitHubStandIn, args: dict[str, Any], tmp: Path | None = None,
         probe: bool = False, **env_extra: Any) -> Any:
    """Call a plugin (or its probe) with a Context as the engine builds one; tokens redacted."""
    plugin = registry[name]
    ctx = Context(args=args, env=env_for(gh, **env_extra), root=tmp or Path.cwd(), operator=OPERATOR,
                  redact=Redactor(TOKENS).text, run_id="20240120T100000-test")
    fn = plugin.probe if probe else plugin.func
    assert fn is not None
    return fn(ctx)


def rest(gh: GitHubStandIn, method: str, path: str, token: str | None = None, body: Any = None) -> tuple[int, Any]:
    """A raw REST call to the stand-in, as any HTTP client would make it."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(gh.base_url + path, data=data, method=method,
                                 headers={"Authorization": f"token {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:   # nosec B310 (loopback)
            raw, status = resp.read(), resp.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    return status, json.loads(raw) if raw else None


def approve_via_rest(gh: GitHubStandIn, number: int, login: str, event: str = "APPROVE") -> None:
    status, body = rest(gh, "POST", f"/repos/{REPO_NAME}/pulls/{number}/reviews", TOKEN[login], {"event": event})
    assert status == 200, body


def parents(bare: Path, ref: str = "refs/heads/main") -> list[str]:
    return git.out(["rev-list", "--parents", "-n", "1", ref], bare).split()[1:]


def open_as_author(gh: GitHubStandIn, branch: str = RELEASE) -> int:
    return int(gh.open_pull(branch, "main", f"Release: {branch.rsplit('/', 1)[-1]}", login="author")["number"])


def test_every_github_action_with_a_side_effect_has_a_probe(registry: plugins.Registry) -> None:
    actions = [p for n, p in registry.items() if n.startswith("github.") and p.kind.value == "action"]
    assert {p.name for p in actions} == {"github.open_release_pr", "github.merge_pr", "github.create_release",
                                         "github.update_release", "github.open_issue", "github.add_label"}
    assert all(p.side_effect and p.probe is not None for p in actions)


# -- the stand-in itself ------------------------------------------------------------------
def test_standin_serves_401_without_a_valid_token(standin: GitHubStandIn) -> None:
    assert rest(standin, "GET", "/user")[0] == 401
    status, body = rest(standin, "GET", f"/repos/{REPO_NAME}", "not-a-token")
    assert status == 401 and body["message"] == "Bad credentials"
    assert rest(standin, "GET", "/user", TOKEN["alice"]) == (200, standin.user_json("alice"))
    assert rest(standin, "GET", "/repos/someone/else", TOKEN["alice"])[0] == 404


def test_standin_refuses_squash_and_the_authors_own_review(standin: GitHubStandIn) -> None:
    number = open_as_author(standin)
    status, body = rest(standin, "POST", f"/repos/{REPO_NAME}/pulls/{number}/reviews", TOKEN["author"],
                        {"event": "APPROVE"})
    assert status == 422 and "your own pull request" in body["message"]
    status, body = rest(standin, "PUT", f"/repos/{REPO_NAME}/pulls/{number}/merge", TOKEN["releaser"],
                        {"merge_method": "squash"})
    assert status == 405 and "Squash merges are not allowed" in body["message"]
    status, body = rest(standin, "POST", f"/repos/{REPO_NAME}/pulls", TOKEN["releaser"],
                        {"head": RELEASE, "base": "main", "title": "again"})
    assert status == 422 and "already exists" in body["errors"][0]["message"]


# -- permission ----------------------------------------------------------------------------
def test_admin_permission(standin: GitHubStandIn, registry: plugins.Registry,
                          monkeypatch: pytest.MonkeyPatch) -> None:
    ok = call(registry, "github.admin_permission", standin, {})
    assert ok.passed and ok.outputs == {"login": "releaser", "permission": "admin"}
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN["alice"])
    refused = call(registry, "github.admin_permission", standin, {})
    assert not refused.passed
    assert "expected admin on menotime/api for alice" in refused.summary and "found write" in refused.summary


def test_a_bad_token_is_a_clear_failure_without_the_token(standin: GitHubStandIn, registry: plugins.Registry,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "tok-revoked-9999")
    outcome = call(registry, "github.admin_permission", standin, {})
    assert isinstance(outcome, Outcome) and not outcome.passed
    assert "GitHub answered 401: Bad credentials" in outcome.summary
    assert "check the token in $GITHUB_TOKEN" in outcome.summary
    assert "Traceback" not in outcome.summary and "tok-revoked" not in json.dumps(outcome.to_dict())
    assert outcome.evidence["status"] == 401


def test_no_token_and_no_gh_names_what_to_set(standin: GitHubStandIn, registry: plugins.Registry,
                                              monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("GITHUB_TOKEN")
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))   # no `gh` to ask
    outcome = call(registry, "github.admin_permission", standin, {})
    assert not outcome.passed
    assert "$GITHUB_TOKEN is not set" in outcome.summary and "gh auth login" in outcome.summary


def test_an_unreachable_base_url_asks_whether_it_is_right(registry: plugins.Registry, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN["releaser"])
    ctx = Context(args={}, env={"github": {"repo": REPO_NAME, "base_url": f"http://127.0.0.1:{port}",
                                           "token_env": "GITHUB_TOKEN"}}, root=tmp_path)
    outcome = registry["github.admin_permission"].func(ctx)
    assert not outcome.passed and "no answer from" in outcome.summary and "is base_url" in outcome.summary


# -- release pull request -------------------------------------------------------------------
def test_open_release_pr_twice_makes_one_pull_request(standin: GitHubStandIn, registry: plugins.Registry,
                                                      origin: Path, tmp_path: Path) -> None:
    changelog = tmp_path / "CHANGELOG.md"
    changelog.write_text(git.out(["show", f"refs/heads/{RELEASE}:CHANGELOG.md"], origin))
    args = {"head": RELEASE, "base": "main", "version": "v1.2.3", "changelog": str(changelog)}
    assert call(registry, "github.open_release_pr", standin, args, probe=True) is None
    first = call(registry, "github.open_release_pr", standin, args, tmp_path)
    second = call(registry, "github.open_release_pr", standin, args, tmp_path)
    assert first.passed and second.passed, (first.summary, second.summary)
    assert first.outputs == second.outputs
    assert first.outputs["head_sha"] == git.rev(origin, f"refs/heads/{RELEASE}")
    assert "already open" in second.summary
    assert call(registry, "github.open_release_pr", standin, args, probe=True).outputs == first.outputs
    pulls = rest(standin, "GET", f"/repos/{REPO_NAME}/pulls?state=all", TOKEN["alice"])[1]
    assert len(pulls) == 1
    assert pulls[0]["title"] == "Release: v1.2.3" and pulls[0]["user"]["login"] == "releaser"
    body = pulls[0]["body"]
    assert "**Version**: v1.2.3" in body and "- Symptom tracking" in body and "Earlier fix" not in body
    assert "## Deployment plan" in body and "20240120T100000-test" in body


# -- mergeability ---------------------------------------------------------------------------
CONFLICTING_CHANGELOG = "# Changelog\n\n## [1.2.2-hotfix] - 2024-01-10\n### Fixed\n- A fix made on main\n\n" \
                        "## [1.2.2] - 2024-01-02\n- Earlier fix\n"


def push_to(origin: Path, tmp_path: Path, branch: str, files: dict[str, str], message: str) -> str:
    """A developer's push to ``branch`` through plain git (not through the stand-in)."""
    work = tmp_path / f"push-{branch.replace('/', '-')}"
    if not work.exists():
        git.git(["clone", "--quiet", "--branch", branch, str(origin), str(work)])
    git.git(["pull", "--quiet", "origin", branch], work)
    sha = _commit(work, files, message)
    git.git(["push", "--quiet", "origin", f"HEAD:refs/heads/{branch}"], work)
    return sha


def test_standin_answers_mergeable_as_github_does(standin: GitHubStandIn, origin: Path, tmp_path: Path) -> None:
    """null (unknown) while GitHub computes - on creation and on the first read after the head or the base
    moved -, then true (clean) or false (dirty); lists carry neither field; a conflict refuses the merge."""
    status, created = rest(standin, "POST", f"/repos/{REPO_NAME}/pulls", TOKEN["author"],
                           {"head": RELEASE, "base": "main", "title": "Release: v1.2.3"})
    assert status == 201 and (created["mergeable"], created["mergeable_state"]) == (None, "unknown")
    path = f"/repos/{REPO_NAME}/pulls/{created['number']}"

    def look() -> tuple[Any, str]:
        pull = rest(standin, "GET", path, TOKEN["alice"])[1]
        return pull["mergeable"], pull["mergeable_state"]

    assert look() == (None, "unknown")                     # the first read starts the computation
    assert look() == (True, "clean") == look()
    push_to(origin, tmp_path, RELEASE, {"app/more.py": "y = 1\n"}, "more on the release branch")
    assert look() == (None, "unknown")                     # the head moved
    assert look() == (True, "clean")
    push_to(origin, tmp_path, "main", {"CHANGELOG.md": CONFLICTING_CHANGELOG}, "a fix on main, not on develop")
    assert look() == (None, "unknown")                     # the base moved
    assert look() == (False, "dirty") == look()
    listed = rest(standin, "GET", f"/repos/{REPO_NAME}/pulls", TOKEN["alice"])[1]
    assert [p["number"] for p in listed] == [created["number"]]
    assert "mergeable" not in listed[0] and "mergeable_state" not in listed[0]
    status, body = rest(standin, "PUT", f"{path}/merge", TOKEN["releaser"], {"merge_method": "merge"})
    assert status == 405 and body["message"] == "Pull Request is not mergeable"


def test_pr_mergeable_polls_then_names_the_conflicting_files_and_the_fix(
        standin: GitHubStandIn, registry: plugins.Registry, origin: Path, tmp_path: Path) -> None:
    number = open_as_author(standin)
    args = {"pr": number, "repo": str(tmp_path / "dev")}
    computing = call(registry, "github.pr_mergeable", standin, args)      # PyGithub's real HTTP code
    assert not computing.passed and not computing.outputs.get("final")    # `wait:` polls again
    assert computing.outputs["mergeable"] is None and computing.outputs["state"] == "unknown"
    assert "has not computed yet" in computing.summary
    clean = call(registry, "github.pr_mergeable", standin, args)
    assert clean.passed, clean.summary
    assert clean.outputs["state"] == "clean" and clean.outputs["head"] == RELEASE and clean.outputs["base"] == "main"
    push_to(origin, tmp_path, "main", {"CHANGELOG.md": CONFLICTING_CHANGELOG, "app/__init__.py": "VERSION = '9'\n"},
            "a fix on main, not on develop")
    assert call(registry, "github.pr_mergeable", standin, args).outputs["mergeable"] is None
    dirty = call(registry, "github.pr_mergeable", standin, args)
    assert not dirty.passed and dirty.outputs["final"] is True            # a conflict stops the polling
    assert dirty.outputs["conflicts"] == ["CHANGELOG.md", "app/__init__.py"]
    assert dirty.outputs["state"] == "dirty"
    line = dirty.summary
    assert "\n" not in line
    assert f"pull request #{number} cannot merge {RELEASE} into main" in line
    assert "conflicts in CHANGELOG.md, app/__init__.py" in line
    assert f"`git checkout {RELEASE} && git merge origin/main`" in line and "nobody is asked to approve" in line
    unnamed = call(registry, "github.pr_mergeable", standin, {"pr": number, "fix": "merge main into develop"})
    assert not unnamed.passed and "files not named" in unnamed.summary
    assert "Fix: merge main into develop" in unnamed.summary


def test_pr_mergeable_of_a_merged_pull_request_stops_polling(standin: GitHubStandIn,
                                                             registry: plugins.Registry) -> None:
    number = open_as_author(standin)
    standin.review(number, "alice", "APPROVED")
    rest(standin, "PUT", f"/repos/{REPO_NAME}/pulls/{number}/merge", TOKEN["releaser"], {"merge_method": "merge"})
    merged = call(registry, "github.pr_mergeable", standin, {"pr": number})
    assert not merged.passed and merged.outputs["final"] is True and "is merged" in merged.summary


# -- the approval gate ----------------------------------------------------------------------
def test_two_distinct_approvers_on_the_head_pass(standin: GitHubStandIn, registry: plugins.Registry,
                                                 origin: Path) -> None:
    number = open_as_author(standin)
    approve_via_rest(standin, number, "carol", "COMMENT")
    approve_via_rest(standin, number, "alice")
    approve_via_rest(standin, number, "bob")
    outcome = call(registry, "approval.github-pr", standin,
                   {"pr": number, "min": 2, "roles": ["engineering-lead", "devops"]})
    assert outcome.passed, outcome.summary
    head = git.rev(origin, f"refs/heads/{RELEASE}")
    assert outcome.outputs["head_sha"] == head
    assert outcome.outputs["approvers"] == ["alice", "bob"] and outcome.outputs["count"] == 2
    assert outcome.outputs["verified"] is True and outcome.outputs["park"] is False
    assert outcome.outputs["roles"] == {"engineering-lead": "alice", "devops": "bob"}
    assert outcome.evidence["not_counted"] == [{"login": "carol", "state": "COMMENTED", "reason": "only commented"}]
    assert outcome.summary.startswith(f"approved on head {head[:7]} by alice (engineering-lead), bob (devops)")


BLOCKING: dict[str, tuple[list[tuple[str, str]], list[str], str]] = {
    "the author": ([("bob", "APPROVED"), ("author", "APPROVED")], [], "author of the pull request"),
    "the operator": ([("bob", "APPROVED"), ("releaser", "APPROVED")], [], "operator of this run"),
    "a duplicate reviewer": ([("alice", "APPROVED"), ("alice", "APPROVED")], [], "1 of 2 approvals"),
    "a later change request": ([("alice", "APPROVED"), ("bob", "APPROVED"), ("carol", "CHANGES_REQUESTED")],
                               [], "changes requested by carol (outstanding)"),
    "an approver's change of mind": ([("alice", "APPROVED"), ("bob", "APPROVED"), ("alice", "CHANGES_REQUESTED")],
                                     [], "changes requested by alice (outstanding)"),
    "a missing role": ([("alice", "APPROVED"), ("carol", "APPROVED")], ["engineering-lead", "devops"],
                       "no approver yet for devops (one of bob, dave)"),
}


@pytest.mark.parametrize("case", list(BLOCKING))
def test_each_blocking_case_blocks_and_parks(case: str, standin: GitHubStandIn, registry: plugins.Registry) -> None:
    reviews, roles, reason = BLOCKING[case]
    number = open_as_author(standin)
    for login, state in reviews:
        standin.review(number, login, state)
    outcome = call(registry, "approval.github-pr", standin, {"pr": number, "min": 2, "roles": roles})
    assert not outcome.passed
    assert reason in outcome.summary
    assert outcome.outputs["park"] is True          # waiting for reviewers could help: the engine parks
    assert outcome.outputs["count"] < 2 or outcome.evidence["change_requests"] or roles
    if case in ("the author", "the operator"):
        assert any(nc["login"] in ("author", "releaser") and "never counts" in nc["reason"]
                   for nc in outcome.evidence["not_counted"])
    if case == "a duplicate reviewer":
        assert outcome.evidence["repeated_approvals"] == {"alice": 2}


def test_an_approval_before_a_later_push_does_not_count(standin: GitHubStandIn, registry: plugins.Registry,
                                                        origin: Path, tmp_path: Path) -> None:
    number = open_as_author(standin)
    approve_via_rest(standin, number, "alice")
    approve_via_rest(standin, number, "bob")
    args = {"pr": number, "min": 2, "roles": ["engineering-lead", "devops"]}
    approved = call(registry, "approval.github-pr", standin, args)
    assert approved.passed
    work = tmp_path / "dev"       # a push after the review, through plain git
    git.git(["pull", "--quiet", "origin", RELEASE], work)
    pushed = _commit(work, {"app/late.py": "x = 1\n"}, "a late change")
    git.git(["push", "--quiet", "origin", f"HEAD:refs/heads/{RELEASE}"], work)
    stale = call(registry, "approval.github-pr", standin, args)
    assert not stale.passed and stale.outputs["park"] is True
    assert stale.outputs["head_sha"] == pushed != approved.outputs["head_sha"]
    assert "0 of 2 approvals" in stale.summary
    assert all("pushed after the review" in nc["reason"] for nc in stale.evidence["not_counted"])
    standin.review(number, "alice", "APPROVED")
    standin.review(number, "dave", "APPROVED")
    again = call(registry, "approval.github-pr", standin, args)
    assert again.passed and again.outputs["head_sha"] == pushed and again.outputs["approvers"] == ["alice", "dave"]


def test_security_paths_add_the_security_role(standin: GitHubStandIn, registry: plugins.Registry) -> None:
    number = open_as_author(standin, AUTH_BRANCH)
    standin.review(number, "alice", "APPROVED")
    standin.review(number, "bob", "APPROVED")
    args = {"pr": number, "min": 2, "roles": ["engineering-lead", "devops"]}
    blocked = call(registry, "approval.github-pr", standin, args, security_paths=["app/auth/*"])
    assert not blocked.passed and "no approver yet for security (one of erin)" in blocked.summary
    assert blocked.evidence["security_files"] == ["app/auth/login.py"]
    standin.review(number, "erin", "APPROVED")
    passed = call(registry, "approval.github-pr", standin, args, security_paths=["app/auth/*"])
    assert passed.passed and passed.outputs["roles"]["security"] == "erin"


def test_a_role_nobody_is_listed_for_fails_without_parking(standin: GitHubStandIn,
                                                           registry: plugins.Registry) -> None:
    number = open_as_author(standin)
    standin.review(number, "alice", "APPROVED")
    standin.review(number, "bob", "APPROVED")
    outcome = call(registry, "approval.github-pr", standin, {"pr": number, "min": 2, "roles": ["product"]})
    assert not outcome.passed and outcome.outputs["park"] is False
    assert "lists nobody for role product" in outcome.summary


def test_logins_compare_without_case_as_on_github(standin: GitHubStandIn, registry: plugins.Registry) -> None:
    """GitHub logins are case-insensitive: alice and Alice are one reviewer, Author is the author,
    Releaser the operator, and the environment's approvers may be written in any case."""
    number = open_as_author(standin)
    for login in ("alice", "Alice", "Author", "Releaser"):
        standin.review(number, login, "APPROVED")
    once = call(registry, "approval.github-pr", standin, {"pr": number, "min": 2})
    assert not once.passed and "1 of 2 approvals" in once.summary, once.summary
    assert once.outputs["count"] == 1 and [a.casefold() for a in once.outputs["approvers"]] == ["alice"]
    reasons = {nc["login"]: nc["reason"] for nc in once.evidence["not_counted"]}
    assert "author of the pull request" in reasons["Author"] and "operator of this run" in reasons["Releaser"]
    assert once.evidence["repeated_approvals"] == {"alice": 2}
    standin.review(number, "BOB", "APPROVED")
    roles = {"pr": number, "min": 2, "roles": ["engineering-lead", "devops"]}
    filled = call(registry, "approval.github-pr", standin, roles,
                  approvers={"engineering-lead": ["ALICE"], "devops": ["bob"]})
    assert filled.passed, filled.summary
    assert filled.outputs["roles"] == {"engineering-lead": "Alice", "devops": "BOB"}
    shared = call(registry, "approval.github-pr", standin, roles,
                  approvers={"engineering-lead": ["alice"], "devops": ["Alice"]})
    assert not shared.passed and "each role needs its own approver" in shared.summary


def test_evaluate_rules_without_a_server() -> None:
    head = "a" * 40
    reviews = [Review("Alice", "APPROVED", head), Review("bob", "APPROVED", head), Review("bob", "DISMISSED", head),
               Review("dave", "APPROVED", head)]
    verdict = evaluate(reviews, head_sha=head, author="carol", operators=["releaser", "dave"], minimum=2, roles=[],
                       members={}, changed_files=[], security_paths=[])
    assert not verdict.approved and verdict.approvers == ["Alice"]
    reasons = {nc["login"]: nc["reason"] for nc in verdict.not_counted}
    assert reasons["bob"] == "latest review is DISMISSED" and "operator" in reasons["dave"]
    ok = evaluate(reviews[:2], head_sha=head, author="carol", operators=["releaser"], minimum=2,
                  roles=["lead"], members={"lead": ["alice"]}, changed_files=[], security_paths=[])
    assert ok.approved and ok.roles == {"lead": "Alice"}     # logins compare without case, as GitHub's do
    shared = evaluate(reviews[:2], head_sha=head, author="carol", operators=[], minimum=2, roles=["lead", "ops"],
                      members={"lead": ["alice"], "ops": ["alice"]}, changed_files=[], security_paths=[])
    assert not shared.approved and "each role needs its own approver" in shared.problems[0]


# -- merge ----------------------------------------------------------------------------------
def test_merge_uses_the_approved_sha_with_a_real_merge_commit(standin: GitHubStandIn, registry: plugins.Registry,
                                                              origin: Path) -> None:
    main_before = git.rev(origin, "refs/heads/main")
    number = open_as_author(standin)
    approve_via_rest(standin, number, "alice")
    approve_via_rest(standin, number, "bob")
    approval = call(registry, "approval.github-pr", standin,
                    {"pr": number, "min": 2, "roles": ["engineering-lead", "devops"]})
    args = {"pr": number, "sha": approval.outputs["head_sha"]}
    assert call(registry, "github.merge_pr", standin, args, probe=True) is None
    merged = call(registry, "github.merge_pr", standin, args)
    assert merged.passed, merged.summary
    merge_sha = merged.outputs["merge_sha"]
    assert git.rev(origin, "refs/heads/main") == merge_sha
    assert parents(origin) == [main_before, approval.outputs["head_sha"]]   # --no-ff: two parents
    again = call(registry, "github.merge_pr", standin, args)
    assert again.passed and again.outputs["merge_sha"] == merge_sha and "is merged" in again.summary
    assert git.rev(origin, "refs/heads/main") == merge_sha                  # merged once
    assert call(registry, "github.merge_pr", standin, args, probe=True).outputs["merge_sha"] == merge_sha
    assert sum(1 for m, p, _ in standin.calls if m == "PUT" and p.endswith("/merge")) == 1


def test_merge_with_a_stale_sha_is_refused(standin: GitHubStandIn, registry: plugins.Registry,
                                           origin: Path) -> None:
    main_before = git.rev(origin, "refs/heads/main")
    number = open_as_author(standin)
    approved = git.rev(origin, f"refs/heads/{RELEASE}")
    standin.review(number, "alice", "APPROVED")
    standin.review(number, "bob", "APPROVED")
    moved = standin.commit(RELEASE, {"app/late.py": "x = 2\n"}, "pushed after the approval", login="dave")
    outcome = call(registry, "github.merge_pr", standin, {"pr": number, "sha": approved})
    assert not outcome.passed
    assert f"approved {approved[:7]}, head is now {moved[:7]}" in outcome.summary
    assert git.rev(origin, "refs/heads/main") == main_before
    status, body = rest(standin, "PUT", f"/repos/{REPO_NAME}/pulls/{number}/merge", TOKEN["releaser"],
                        {"sha": approved, "merge_method": "merge"})   # the server refuses it too
    assert status == 409 and "Head branch was modified" in body["message"]
    assert git.rev(origin, "refs/heads/main") == main_before
    bad = call(registry, "github.merge_pr", standin, {"pr": number, "sha": approved[:7]})
    assert not bad.passed and "40 hex digits" in bad.summary


# -- release --------------------------------------------------------------------------------
def test_release_from_a_tag_once(standin: GitHubStandIn, registry: plugins.Registry, origin: Path,
                                 tmp_path: Path) -> None:
    args = {"tag": "v1.2.3", "name": "v1.2.3", "body": "Symptom tracking"}
    missing = call(registry, "github.create_release", standin, args)
    assert not missing.passed and "expected tag v1.2.3 on menotime/api, found none" in missing.summary
    work = tmp_path / "dev"
    git.git(["tag", "-a", "v1.2.3", "-m", "Release version 1.2.3"], work,
            env=git.identity_env("Dev", "dev@menotime.example"))
    git.git(["push", "--quiet", "origin", "refs/tags/v1.2.3"], work)
    assert call(registry, "github.create_release", standin, args, probe=True) is None
    first = call(registry, "github.create_release", standin, args)
    second = call(registry, "github.create_release", standin, args)
    assert first.passed and second.passed and first.outputs == second.outputs
    assert first.outputs["tag"] == "v1.2.3" and "already exists" in second.summary
    assert len(rest(standin, "GET", f"/repos/{REPO_NAME}/releases", TOKEN["alice"])[1]) == 1


def test_a_release_marked_rolled_back_once(standin: GitHubStandIn, registry: plugins.Registry, origin: Path,
                                           tmp_path: Path) -> None:
    args = {"tag": "v1.2.3", "name": "v1.2.3 (rolled back)", "note": "**Rolled back** to v1.2.2 by run R1: 500s"}
    missing = call(registry, "github.update_release", standin, args)
    assert not missing.passed and "expected a GitHub release of tag v1.2.3" in missing.summary
    tolerated = call(registry, "github.update_release", standin, {**args, "missing_ok": True})
    assert tolerated.passed and "nothing to mark" in tolerated.summary
    work = tmp_path / "dev"
    git.git(["tag", "-a", "v1.2.3", "-m", "Release version 1.2.3"], work,
            env=git.identity_env("Dev", "dev@menotime.example"))
    git.git(["push", "--quiet", "origin", "refs/tags/v1.2.3"], work)
    assert call(registry, "github.create_release", standin, {"tag": "v1.2.3", "body": "Symptom tracking"}).passed
    assert call(registry, "github.update_release", standin, args, probe=True) is None
    first = call(registry, "github.update_release", standin, args)
    second = call(registry, "github.update_release", standin, args)
    assert first.passed and second.passed and "is already marked" in second.summary
    assert call(registry, "github.update_release", standin, args, probe=True).passed
    [release] = rest(standin, "GET", f"/repos/{REPO_NAME}/releases", TOKEN["alice"])[1]
    assert release["name"] == "v1.2.3 (rolled back)" and release["tag_name"] == "v1.2.3"
    assert release["body"] == "**Rolled back** to v1.2.2 by run R1: 500s\n\nSymptom tracking"   # the note once
    assert sum(1 for m, p, _ in standin.calls if m == "PATCH" and "/releases/" in p) == 1


def test_refs_and_annotated_tags_through_the_api(standin: GitHubStandIn, origin: Path) -> None:
    main = git.rev(origin, "refs/heads/main")
    status, tag = rest(standin, "POST", f"/repos/{REPO_NAME}/git/tags", TOKEN["releaser"],
                       {"tag": "v9.9.9", "message": "Release 9.9.9", "object": main, "type": "commit"})
    assert status == 201 and tag["object"]["sha"] == main
    status, ref = rest(standin, "POST", f"/repos/{REPO_NAME}/git/refs", TOKEN["releaser"],
                       {"ref": "refs/tags/v9.9.9", "sha": tag["sha"]})
    assert status == 201 and ref["object"] == {**ref["object"], "sha": tag["sha"], "type": "tag"}
    assert git.rev(origin, "refs/tags/v9.9.9") == main
    assert rest(standin, "POST", f"/repos/{REPO_NAME}/git/refs", TOKEN["releaser"],
                {"ref": "refs/tags/v9.9.9", "sha": main})[0] == 422
    refs = rest(standin, "GET", f"/repos/{REPO_NAME}/git/matching-refs/tags/v9", TOKEN["alice"])[1]
    assert [r["ref"] for r in refs] == ["refs/tags/v9.9.9"]
    assert rest(standin, "GET", f"/repos/{REPO_NAME}/git/ref/tags/v0.0.0", TOKEN["alice"])[0] == 404


# -- workflow runs --------------------------------------------------------------------------
def test_workflow_run_not_yet_running_failed_and_passed(standin: GitHubStandIn, registry: plugins.Registry,
                                                        origin: Path) -> None:
    sha = git.rev(origin, "refs/heads/main")
    assert sha is not None
    args = {"head_sha": sha, "workflow": "deploy-production.yml", "branch": "main"}
    none = call(registry, "github.workflow_run", standin, args)
    assert not none.passed and "found no run yet" in none.summary
    standin.add_workflow_run(sha, workflow="lint.yml")                      # another workflow: ignored
    run = standin.add_workflow_run(sha, status="in_progress")
    running = call(registry, "github.workflow_run", standin, args)
    assert not running.passed and "in_progress, not completed yet" in running.summary
    standin.update_workflow_run(run["id"], "completed", "failure")
    failed = call(registry, "github.workflow_run", standin, args)
    assert not failed.passed and "concluded failure" in failed.summary
    assert failed.evidence["html_url"] == run["html_url"] == failed.outputs["html_url"]
    rerun = standin.add_workflow_run(sha)                                   # the latest run decides
    passed = call(registry, "github.workflow_run", standin, args)
    assert passed.passed, passed.summary
    assert passed.outputs == {"run_id": rerun["id"], "status": "completed", "conclusion": "success",
                              "html_url": rerun["html_url"]}
    assert passed.evidence["html_url"].endswith(f"/actions/runs/{rerun['id']}")


# -- issues and labels ----------------------------------------------------------------------
def test_issue_and_label_are_idempotent(standin: GitHubStandIn, registry: plugins.Registry) -> None:
    args = {"title": "Rollback of v1.2.3", "body": "Error rate above 5%", "labels": ["incident"]}
    assert call(registry, "github.open_issue", standin, args, probe=True) is None
    first = call(registry, "github.open_issue", standin, args)
    second = call(registry, "github.open_issue", standin, args)
    assert first.passed and second.passed and first.outputs == second.outputs
    number = first.outputs["number"]
    issues = rest(standin, "GET", f"/repos/{REPO_NAME}/issues", TOKEN["alice"])[1]
    assert [i["number"] for i in issues] == [number]
    label = {"number": number, "label": "sev2"}
    assert call(registry, "github.add_label", standin, label, probe=True) is None
    added = call(registry, "github.add_label", standin, label)
    again = call(registry, "github.add_label", standin, label)
    assert added.passed and again.passed and added.outputs["labels"] == ["incident", "sev2"]
    assert again.outputs == added.outputs
    assert call(registry, "github.add_label", standin, label, probe=True).passed
    labels = rest(standin, "GET", f"/repos/{REPO_NAME}/issues/{number}/labels", TOKEN["alice"])[1]
    assert [x["name"] for x in labels] == ["incident", "sev2"]


# -- end to end through invoke --------------------------------------------------------------
def test_runbook_parks_at_the_gate_then_resumes_to_merge_the_approved_head(
        standin: GitHubStandIn, origin: Path, tmp_path: Path) -> None:
    root = copy_project("github", tmp_path, standin.base_url)
    home = tmp_path / "home"
    token = {"GITHUB_TOKEN": TOKEN["releaser"]}
    main_before = git.rev(origin, "refs/heads/main")
    parked = invoke("runbook", "github-release", "--env", "gh", "--param", "version=v1.2.3", "--non-interactive",
                    root=root, home=home, env=token)
    assert parked.returncode == 4, parked.stdout + parked.stderr
    assert "0 of 2 approvals" in parked.stdout
    pulls = rest(standin, "GET", f"/repos/{REPO_NAME}/pulls", TOKEN["alice"])[1]
    assert len(pulls) == 1 and pulls[0]["title"] == "Release: v1.2.3"
    assert "- [x] preflight.admin: releaser has admin on menotime/api" in pulls[0]["body"]   # checks so far
    number = pulls[0]["number"]
    approve_via_rest(standin, number, "alice")
    approve_via_rest(standin, number, "bob")
    resumed = invoke("runbook", "github-release", "--env", "gh", "--resume", root=root, home=home, env=token)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    head = git.rev(origin, f"refs/heads/{RELEASE}")
    assert parents(origin) == [main_before, head]
    [run_dir] = list((home / "runs").iterdir())
    journal = (run_dir / "journal.jsonl").read_text()
    assert TOKEN["releaser"] not in journal
    results = {(r["data"]["step"], r["data"]["item"]): r["data"] for r in map(json.loads, journal.splitlines())
               if r["type"] == "item.result"}
    approval = results[("approvals", "approval")]
    assert approval["outputs"]["approvers"] == ["alice", "bob"] and approval["outputs"]["head_sha"] == head
    assert results[("merge", "merge")]["outputs"]["merge_sha"] == git.rev(origin, "refs/heads/main")
    assert sum(1 for m, p, _ in standin.calls if m == "POST" and p.endswith("/pulls")) == 1


@pytest.mark.parametrize("target", ["release-pr.open", "merge.merge"])
def test_a_crash_after_the_effect_is_recovered_by_the_probe(target: str, standin: GitHubStandIn, origin: Path,
                                                            tmp_path: Path) -> None:
    root = copy_project("github", tmp_path, standin.base_url)
    home = tmp_path / "home"
    token = {"GITHUB_TOKEN": TOKEN["releaser"]}
    crash = {**token, "RUNBOOK_CRASH_AT": f"{target}:after-effect"}
    start = ["runbook", "github-release", "--env", "gh", "--param", "version=v1.2.3", "--non-interactive"]
    resume = ["runbook", "github-release", "--env", "gh", "--resume"]
    first = invoke(*start, root=root, home=home, env=crash if target == "release-pr.open" else token)
    if target == "release-pr.open":
        assert first.returncode == -signal.SIGKILL, first.stdout + first.stderr
        first = invoke(*resume, root=root, home=home, env=token)
    assert first.returncode == 4, first.stdout + first.stderr        # parked at the gate, the PR opened once
    approve_via_rest(standin, 1, "alice")
    approve_via_rest(standin, 1, "bob")
    if target == "merge.merge":
        killed = invoke(*resume, root=root, home=home, env=crash)
        assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    done = invoke(*resume, root=root, home=home, env=token)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "recovered by probe" in done.stdout + first.stdout
    assert sum(1 for m, p, _ in standin.calls if m == "POST" and p.endswith("/pulls")) == 1
    assert sum(1 for m, p, _ in standin.calls if m == "PUT" and p.endswith("/merge")) == 1
    assert parents(origin)[1] == git.rev(origin, f"refs/heads/{RELEASE}")


def test_waiting_for_approvals_shows_progress_and_its_timeout_is_a_decision(
        standin: GitHubStandIn, origin: Path, tmp_path: Path) -> None:
    """While it waits the gate shows who approved and the time left; when the wait ends without the
    approvals, `approvals.approval.timeout` decides: wait again, park (exit 4) or abort (exit 1)."""
    import yaml

    root = copy_project("github", tmp_path, standin.base_url)
    path = root / "runbooks" / "github-release.yaml"
    data = yaml.safe_load(path.read_text())
    gate = next(s for s in data["steps"] if s["id"] == "approvals")
    gate["approval"]["wait"] = {"timeout": 1, "interval": 0.2}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    token = {"GITHUB_TOKEN": TOKEN["releaser"]}
    for choice, code in (("park", 4), ("abort", 1)):
        home = tmp_path / f"home-{choice}"
        answers = tmp_path / f"{choice}.yaml"
        answers.write_text(f"runbook: github-release\nanswers:\n  approvals.approval.timeout: {{choice: {choice}}}\n")
        result = invoke("runbook", "github-release", "--env", "gh", "--param", "version=v1.2.3",
                        "--answers", str(answers), root=root, home=home, env=token)
        assert result.returncode == code, result.stdout + result.stderr
        waiting = next((line for line in result.stdout.splitlines() if "waiting for approvals (" in line), result.stdout)
        assert "s left): not approved on head" in waiting and "0 of 2 approvals" in waiting, waiting  # time left
        assert "no approver yet for engineering-lead" in waiting and "counted: nobody" in waiting  # roles, who
        journal = next((home / "runs").iterdir()) / "journal.jsonl"
        asked = [json.loads(line)["data"] for line in journal.read_text().splitlines()
                 if '"approvals.approval.timeout"' in line]
        assert asked and asked[0]["answer"] == {"choice": choice}
        for pr in rest(standin, "GET", f"/repos/{REPO_NAME}/pulls", TOKEN["alice"])[1]:
            rest(standin, "PATCH", f"/repos/{REPO_NAME}/pulls/{pr['number']}", TOKEN["alice"], {"state": "closed"})


def test_the_urls_the_engine_prints_open_without_a_token(standin: GitHubStandIn, origin: Path,
                                                         tmp_path: Path) -> None:
    """A pull request's, an issue's and a release's html_url, as printed, are pages a person can open."""
    status, pr = rest(standin, "POST", f"/repos/{REPO_NAME}/pulls", TOKEN["releaser"],
                      {"title": "Release: v1.2.3", "head": RELEASE, "base": "main", "body": "the release"})
    assert status == 201
    _, issue = rest(standin, "POST", f"/repos/{REPO_NAME}/issues", TOKEN["releaser"],
                    {"title": "Rollback of v1.2.3", "body": "root cause: <script>x</script>"})
    for url, expect in ((pr["html_url"], "Release: v1.2.3"), (issue["html_url"], "Rollback of v1.2.3")):
        with urllib.request.urlopen(url, timeout=10) as resp:        # nosec B310 (loopback), no token
            page = resp.read().decode()
            assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/html")
        assert expect in page and "<script>" not in page
    assert RELEASE in urllib.request.urlopen(pr["html_url"], timeout=10).read().decode()
    try:
        urllib.request.urlopen(f"{standin.base_url}/{REPO_NAME}/pull/999", timeout=10)
        raise AssertionError("a missing pull request answered")
    except urllib.error.HTTPError as exc:
        assert exc.code == 404
    assert rest(standin, "GET", f"/repos/{REPO_NAME}/pulls")[0] == 401       # the API still needs a token
