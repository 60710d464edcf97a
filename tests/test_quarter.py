"""Release cycles in one sandbox, as a team lives them: releases week after week, a hotfix, a bad
release rolled back, the fix; develop kept in step with main by the back-merge; a release pull
request that cannot merge stopped before its approvals.

Every run is a real `invoke` process against the sandbox; between runs the test does what the
developers would (push work with an `## [Unreleased]` CHANGELOG entry to develop, push a
hotfix's fix, re-apply a rolled-back release's changes with the fix), nothing else: no manual
cleanup of runs, locks, branches or the world.
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from runbook import git as g
from runbook.sandbox import control

from helpers import REPO, app_version, finished, invoke, results

pytestmark = pytest.mark.sandbox          # the slow tier: `python -m pytest -q -m slow` (or -m sandbox)

ANSWERS = REPO / "answers" / "sandbox"
DEV = g.identity_env("MenoTime Dev", "dev@menotime.example")
OPERATOR = "release@menotime.example"


@pytest.fixture
def home(tmp_path: Path):
    home = tmp_path / "home"
    yield home
    control.down(home)


def run(home: Path, *args: str, root: Path = REPO, timeout: float = 900) -> Any:
    return invoke(*args, root=root, home=home, timeout=timeout, env={"RUNBOOK_OPERATOR": OPERATOR})


def tail(result: Any) -> str:
    return result.stdout[-4000:] + result.stderr[-2000:]


def release(home: Path, version: str, answers: Path = ANSWERS / "production-release.yaml", root: Path = REPO,
            *extra: str) -> Any:
    return run(home, "runbook", "production-release", "--env", "sandbox", "--param", f"version={version}",
               "--answers", str(answers), "--non-interactive", *extra, root=root)


def answers_file(path: Path, base: str, drop: tuple[str, ...] = (), **changed: Any) -> Path:
    data = yaml.safe_load((ANSWERS / f"{base}.yaml").read_text())
    for key in drop:
        data["answers"].pop(key)
    data["answers"].update(changed)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def listed(home: Path) -> list[dict[str, Any]]:
    """audit.list --json, oldest first."""
    return list(reversed(json.loads(run(home, "audit.list", "--json").stdout)))


def records(home: Path, run_id: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (home / "runs" / run_id / "journal.jsonl").read_text().splitlines()]





def github(home: Path, path: str) -> Any:
    state = control.read_state(home)
    assert state is not None
    req = urllib.request.Request(f"{state['github']['base_url']}/repos/{state['github']['repo']}{path}",
                                 headers={"Authorization": "token sandbox-eng-lead-token"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def contains(remote: str, ref: str, branch: str = "develop") -> bool:
    return g.git(["merge-base", "--is-ancestor", ref, f"refs/heads/{branch}"], remote, check=False).code == 0


class Developer:
    """A developer's clone of the sandbox's origin: work pushed to develop, a hotfix's fix, a revert."""

    def __init__(self, remote: str, work: Path):
        self.work = work
        g.git(["clone", "--quiet", remote, str(work)])

    def git(self, *args: str) -> str:
        return g.git(list(args), self.work, env=DEV).out.strip()

    def on(self, branch: str, start: str | None = None) -> None:
        self.git("fetch", "--quiet", "origin")
        self.git("checkout", "--quiet", "-B", branch, start or f"origin/{branch}")

    def write(self, name: str, text: str) -> None:
        (self.work / name).parent.mkdir(parents=True, exist_ok=True)
        (self.work / name).write_text(text)

    def unreleased(self, category: str, entry: str) -> None:
        """An `## [Unreleased]` CHANGELOG entry, as every change on develop carries."""
        text = (self.work / "CHANGELOG.md").read_text()
        assert "## [Unreleased]" not in text, "develop should have no unreleased section after a back-merge"
        self.write("CHANGELOG.md", text.replace("# Changelog\n\n", f"# Changelog\n\n## [Unreleased]\n### {category}\n"
                                                                 f"- {entry}\n\n", 1))

    def commit_and_push(self, message: str, branch: str) -> str:
        self.git("add", "--all")
        self.git("commit", "--quiet", "-m", message)
        self.git("push", "--quiet", "origin", f"HEAD:refs/heads/{branch}")
        return self.git("rev-parse", "HEAD")

    def feature(self, module: str, entry: str) -> str:
        """New work on develop: a module and its CHANGELOG entry."""
        self.on("develop")
        self.write(f"app/{module}.py", f'"""{entry}."""\n\n\ndef {module}() -> dict:\n    return {{"feature": '
                                       f'"{module}"}}\n')
        self.unreleased("Added", entry)
        return self.commit_and_push(f"feat: {entry.lower()}", "develop")


def test_a_quarter_in_one_sandbox(home: Path, tmp_path: Path) -> None:
    """v1.2.0, v1.3.0, hotfix v1.3.1, v1.4.0 bad and rolled back, v1.4.1 with the fix: one world, no cleanup."""
    began = time.monotonic()
    up = run(home, "sandbox.up", "--bad-version", "v1.4.0")
    assert up.returncode == 0 and "bad version v1.4.0" in up.stdout, tail(up)
    remote = control.read_state(home)["git"]["remote"]
    dev = Developer(remote, tmp_path / "dev")
    took: dict[str, float] = {}

    def timed(label: str, result: Any, code: int) -> Any:
        took[label] = round(time.monotonic() - began - sum(took.values()), 1)
        assert result.returncode == code, f"{label}: exit {result.returncode}\n" + tail(result)
        return result

    # week 1: develop's unreleased work (the seeded profile endpoints) ships as v1.2.0
    timed("release v1.2.0", release(home, "v1.2.0"), 0)
    assert app_version(home) == "v1.2.0" and contains(remote, "refs/tags/v1.2.0")
    # week 3: new work on develop, released as v1.3.0 (the release that could not merge before #16)
    dev.feature("reports", "Symptom reports for clinicians")
    timed("release v1.3.0", release(home, "v1.3.0"), 0)
    assert app_version(home) == "v1.3.0"
    # week 5: a critical bug in production: the fix is pushed to its branch, the hotfix ships it
    dev.on("hotfix/patients-limit", "origin/main")
    main_py = (dev.work / "app" / "main.py").read_text()
    dev.write("app/main.py", main_py.replace("min(limit, 100)", "min(limit, 50)"))
    dev.commit_and_push("hotfix: cap the patients page at 50", "hotfix/patients-limit")
    timed("hotfix v1.3.1", run(home, "runbook", "hotfix", "--env", "sandbox", "--param", "name=patients-limit",
                               "--param", "version=v1.3.1", "--answers", str(ANSWERS / "hotfix.yaml"),
                               "--non-interactive"), 0)
    assert app_version(home) == "v1.3.1"
    # week 8: more work; v1.4.0 is bad: verification fails, the offered rollback-fast takes production back
    dev.feature("reminders", "Medication reminders")
    bad_answers = answers_file(tmp_path / "v140.yaml", "production-release", **{
        "run.on_failure/post-rollback/root-cause.analysis": {
            "done": True, "note": "v1.4.0's reminders query fails on every request: the API answers 500"}})
    bad = timed("release v1.4.0 (bad, rolled back)", release(home, "v1.4.0", bad_answers), 1)
    assert "rolled-back" in bad.stdout
    assert app_version(home) == "v1.3.1"
    # week 9: the revert reached develop through the rollback's back-merge; the team brings v1.4.0's
    # changes back (a revert of the revert) with the fix and releases v1.4.1
    dev.on("develop")
    assert not (dev.work / "app" / "reminders.py").exists()          # the revert is on develop too
    merge_sha = g.rev(remote, "refs/tags/v1.4.0")
    revert = dev.git("log", "--format=%H", f"--grep=This reverts commit {merge_sha}", "origin/develop")
    assert revert, "the revert of v1.4.0's merge is not on develop"
    dev.git("revert", "--no-edit", revert)
    assert (dev.work / "app" / "reminders.py").exists()
    dev.write("app/reminders.py", (dev.work / "app" / "reminders.py").read_text()
              + "\n\ndef reminders_due(limit: int = 10) -> list:\n    return []\n")
    dev.unreleased("Fixed", "Medication reminders no longer fail the API (v1.4.0 was rolled back)")
    dev.commit_and_push("fix: reminders no longer fail the API", "develop")
    timed("release v1.4.1 (the fix)", release(home, "v1.4.1"), 0)
    total = round(time.monotonic() - began, 1)
    print(f"\nquarter: {total} s in all; " + ", ".join(f"{k} {v} s" for k, v in took.items()))

    # what a team checks afterwards
    assert app_version(home) == "v1.4.1"
    versions = ["v1.2.0", "v1.3.0", "v1.3.1", "v1.4.0", "v1.4.1"]
    for version in versions:
        assert g.rev(remote, f"refs/tags/{version}"), version
        assert contains(remote, f"refs/tags/{version}"), f"develop lacks {version}'s release commit"
    assert g.rev(remote, "refs/tags/rollback/v1.4.0")
    assert g.git(["cat-file", "-t", "rollback/v1.4.0"], remote).out.strip() == "tag"    # annotated
    releases = {r["tag_name"]: r for r in github(home, "/releases")}
    assert sorted(releases) == versions
    assert releases["v1.4.0"]["name"] == "v1.4.0 (rolled back)"
    assert releases["v1.4.0"]["body"].startswith("**Rolled back** to v1.3.1")
    assert all(releases[v]["name"] == v for v in versions if v != "v1.4.0")
    assert "reminders_due" in g.out(["show", "refs/heads/main:app/reminders.py"], remote)
    assert "min(limit, 50)" in g.out(["show", "refs/heads/develop:app/main.py"], remote)
    runs = listed(home)
    assert [(r["runbook"], r["status"], r["deviations"]) for r in runs] == [
        ("production-release", "succeeded", 0), ("production-release", "succeeded", 0), ("hotfix", "succeeded", 0),
        ("production-release", "rolled-back", 0), ("rollback-fast", "succeeded", 0),
        ("post-rollback", "succeeded", 0), ("production-release", "succeeded", 0)]
    assert [r["version"] for r in runs if r["runbook"] != "post-rollback"][:4] == versions[:4]
    rollback = runs[4]["run"]
    found = results(records(home, rollback))
    assert found["target.find"]["outputs"]["current_version"] == "v1.4.0"
    assert found["target.find"]["outputs"]["version"] == "v1.3.1"
    assert found["tag.tag"]["passed"] and "rollback/v1.4.0" in found["tag.tag"]["summary"]
    assert found["revert-merge.merge"]["outputs"]["merge_sha"]
    assert finished(records(home, rollback))["back-merge.merge"] == "succeeded"
    [issue] = [i for i in github(home, "/issues?state=all") if "pull_request" not in i]
    assert issue["title"] == f"Incident: v1.4.0 rolled back (rollback {rollback})"
    body = issue["body"]
    for expected in ("v1.4.0's reminders query fails on every request", "production-release v1.4.0 failed after "
                     "its merge", "Rolled back from v1.4.0 to v1.3.1", "Revert pull request: http"):
        assert expected in body, expected
    assert run(home, "runbook.status").stdout.strip() == "No unfinished runs and no locks held."
    verified = run(home, "audit.verify")
    assert verified.returncode == 0 and f"ok: {len(runs)} run(s)" in verified.stdout, tail(verified)


def test_two_releases_in_a_row_both_succeed(home: Path, tmp_path: Path) -> None:
    """The report of #16: after v1.2.0 the next release could not merge (develop never got main's release
    commit). Now v1.2.0's back-merge brings it, and v1.3.0's pull request merges cleanly."""
    first = release(home, "v1.2.0")
    assert first.returncode == 0 and "succeeded." in first.stdout, tail(first)
    remote = control.read_state(home)["git"]["remote"]
    assert contains(remote, "refs/tags/v1.2.0")
    Developer(remote, tmp_path / "dev").feature("reports", "Symptom reports for clinicians")
    second = release(home, "v1.3.0")
    assert second.returncode == 0 and "succeeded." in second.stdout, tail(second)
    assert app_version(home) == "v1.3.0"
    runs = listed(home)
    assert [(r["status"], r["deviations"]) for r in runs] == [("succeeded", 0), ("succeeded", 0)]
    found = results(records(home, runs[1]["run"]))
    assert found["mergeable.mergeable"]["outputs"]["state"] == "clean"
    assert contains(remote, "refs/tags/v1.3.0") and contains(remote, "refs/tags/v1.2.0", "main")
    changelog = g.out(["show", "refs/heads/main:CHANGELOG.md"], remote)
    assert changelog.index("## [1.3.0]") < changelog.index("## [1.2.0]") < changelog.index("## [1.1.0]")


def test_a_conflicting_release_pr_is_stopped_before_approvals_with_the_files_named(home: Path,
                                                                                    tmp_path: Path) -> None:
    """main got a release commit develop never received (a v1.1.1 made by hand, before back-merges): the
    release PR conflicts. One line names the files and the fix; nobody is asked to approve; the fix
    (main merged into the release branch) and a resume finish the release."""
    remote = control.up(home)["git"]["remote"]
    dev = Developer(remote, tmp_path / "dev")
    dev.on("main")
    for name, old, new in (("pyproject.toml", 'version = "1.1.0"', 'version = "1.1.1"'),
                           ("app/__init__.py", '__version__ = "1.1.0"', '__version__ = "1.1.1"'),
                           ("CHANGELOG.md", "# Changelog\n\n", "# Changelog\n\n## [1.1.1] - 2024-01-05\n### Fixed\n"
                                                                "- Login timeout\n\n")):
        dev.write(name, (dev.work / name).read_text().replace(old, new, 1))
    dev.commit_and_push("chore: release v1.1.1 (by hand, never merged into develop)", "main")
    stopped = release(home, "v1.2.0")
    assert stopped.returncode == 1, tail(stopped)
    [run_id] = [r["run"] for r in listed(home)]
    recs = records(home, run_id)
    check = results(recs)["mergeable.mergeable"]
    assert not check["passed"]
    assert check["outputs"]["conflicts"] == ["CHANGELOG.md", "app/__init__.py", "pyproject.toml"]
    line = check["summary"]
    assert "cannot merge release/v1.2.0 into main (mergeable_state dirty), conflicts in CHANGELOG.md, " \
           "app/__init__.py, pyproject.toml. Fix: merge main into release/v1.2.0 (`git checkout release/v1.2.0 " \
           "&& git merge origin/main`)" in line and "\n" not in line
    assert line in stopped.stdout
    assert "approvals" not in {r["data"].get("step") for r in recs if r["type"] == "step.started"}
    [pull] = github(home, "/pulls?state=all")
    assert pull["state"] == "open" and github(home, f"/pulls/{pull['number']}/reviews") == []
    # the fix the line names, then a resume
    dev.on("release/v1.2.0")
    assert g.git(["merge", "origin/main"], dev.work, check=False, env=DEV).code == 1
    dev.git("checkout", "--ours", "--", "pyproject.toml", "app/__init__.py")
    ours = dev.git("show", "HEAD:CHANGELOG.md")
    hand = g.out(["show", "refs/heads/main:CHANGELOG.md"], remote)
    section = hand[hand.index("## [1.1.1]"):hand.index("## [1.1.0]")]
    dev.write("CHANGELOG.md", ours.replace("## [1.1.0]", section + "## [1.1.0]", 1) + "\n")
    dev.git("add", "--all")
    dev.git("commit", "--quiet", "--no-edit")
    dev.git("push", "--quiet", "origin", "HEAD:refs/heads/release/v1.2.0")
    resumed = run(home, "runbook", "production-release", "--env", "sandbox", "--resume", "--answers",
                  str(ANSWERS / "production-release.yaml"), "--non-interactive")
    assert resumed.returncode == 0, tail(resumed)
    assert app_version(home) == "v1.2.0"
    assert contains(remote, "refs/tags/v1.2.0")
    changelog = g.out(["show", "refs/heads/main:CHANGELOG.md"], remote)
    assert changelog.index("## [1.2.0]") < changelog.index("## [1.1.1]") < changelog.index("## [1.1.0]")
    assert [(r["status"], r["deviations"]) for r in listed(home)] == [("succeeded", 0)]


def test_a_conflicting_back_merge_is_a_deviation_of_a_release_that_succeeded(home: Path, tmp_path: Path) -> None:
    """develop moves on during the release in a way that conflicts with the release commit: the release
    succeeds, its back-merge fails naming the file, the run ends "succeeded with 1 deviation(s)"."""
    parked = release(home, "v1.2.0", answers_file(tmp_path / "no-merge.yaml", "production-release",
                                                  drop=("merge.confirm",)))
    assert parked.returncode == 4, tail(parked)                 # approved, parked at the merge's confirmation
    remote = control.read_state(home)["git"]["remote"]
    dev = Developer(remote, tmp_path / "dev")
    dev.on("develop")
    dev.write("pyproject.toml", (dev.work / "pyproject.toml").read_text().replace('version = "1.1.0"',
                                                                                  'version = "1.3.0.dev0"'))
    dev.commit_and_push("chore: develop is 1.3.0.dev0", "develop")
    done = run(home, "runbook", "production-release", "--env", "sandbox", "--resume", "--answers",
               str(ANSWERS / "production-release.yaml"), "--non-interactive")
    assert done.returncode == 0, tail(done)
    assert "succeeded with 1 deviation(s)" in done.stdout
    assert app_version(home) == "v1.2.0"
    [row] = listed(home)
    assert (row["status"], row["deviations"]) == ("succeeded", 1)
    recs = records(home, row["run"])
    steps = finished(recs)
    assert steps["back-merge.conflict"] == "failed" and steps["verification.logs"] == "succeeded"
    check = results(recs)["back-merge.conflict.mergeable"]
    assert "origin/main does not merge cleanly into origin/develop: conflicts in pyproject.toml. Fix: merge main " \
           "into develop (`git checkout develop && git merge origin/main`)" in check["summary"]
    assert not any(r["type"] == "run.offer" for r in recs)      # never a rollback offer
    assert not contains(remote, "refs/tags/v1.2.0")


def test_back_merge_through_a_reviewed_pull_request_when_develop_requires_review(home: Path,
                                                                                 tmp_path: Path) -> None:
    root = tmp_path / "project"
    for folder in ("runbooks", "environments", "answers"):
        shutil.copytree(REPO / folder, root / folder)
    env = root / "environments" / "sandbox.yaml"
    env.write_text(env.read_text().replace("develop_requires_review: false", "develop_requires_review: true"))
    result = release(home, "v1.2.0", ANSWERS / "production-release.yaml", root)
    assert result.returncode == 0 and "succeeded." in result.stdout, tail(result)
    runs = listed(home)
    assert [(r["runbook"], r["status"]) for r in runs] == [("production-release", "succeeded"),
                                                           ("back-merge-pr", "succeeded")]
    assert runs[1]["parent"]["run"] == runs[0]["run"]
    steps = finished(records(home, runs[0]["run"]))
    assert steps["back-merge.pull-request"] == "succeeded" and steps["back-merge.merge"] == "skipped"
    remote = control.read_state(home)["git"]["remote"]
    assert contains(remote, "refs/tags/v1.2.0")
    [back] = [p for p in github(home, "/pulls?state=all") if p["base"]["ref"] == "develop"]
    assert back["head"]["ref"] == "main" and back["merged"] is True
    assert back["title"] == "Back-merge main into develop (release v1.2.0)"
    reviews = github(home, f"/pulls/{back['number']}/reviews")
    assert any(r["state"] == "APPROVED" for r in reviews)
    assert g.out(["rev-parse", "refs/heads/develop"], remote) == back["merge_commit_sha"]


def test_rollback_fast_run_directly_asks_why(home: Path) -> None:
    control.up(home)
    unasked = run(home, "runbook", "rollback-fast", "--env", "sandbox", "--non-interactive")
    assert unasked.returncode == 2, tail(unasked)
    assert "parameter 'reason' is needed and nobody can be asked" in unasked.stderr
    assert run(home, "runbook.status").stdout.strip() == "No unfinished runs and no locks held."
    why = "patients endpoint answers 500 since 14:02 (page #311)"
    given = run(home, "runbook", "rollback-fast", "--env", "sandbox", "--param", f"reason={why}",
                "--non-interactive")
    assert given.returncode == 1, tail(given)        # no release run in this world: the target is the operator's
    [row] = listed(home)
    assert "no production-release run in sandbox deployed" in run(home, "audit.show", row["run"]).stdout
    report = run(home, "audit.export", row["run"], "--format", "md").stdout
    assert f"- `reason`: `{why}`" in report
