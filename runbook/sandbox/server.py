"""The sandbox supervisor: one background process holding the whole world on loopback.

``python -m runbook.sandbox.server --folder DIR --scenario S [--bad-version vX.Y.Z]`` starts,
in threads: the moto server with the ECS rollout simulation, seeded with MenoTime's
production; the app repository (bare origin); the GitHub stand-in over it, with reviewers
who approve a pull request that can merge after a delay; the app, answering as the
version the service runs (500 on the API for a bad one: ``--bad-version`` makes exactly
that version bad among good ones) and writing metrics and logs to CloudWatch; light
traffic; and the deploy pipeline a push to main triggers. It
writes ``state.json`` (pid, ports, tokens) and ``overlay.json`` (what the engine merges
onto environments/sandbox.yaml) and runs until SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from .. import git as g
from ..journal import atomic_write
from .. import clock

OWNER, REPO = "menotime", "menotime-api"
OPERATOR_LOGIN = "sandbox-operator"
TOKENS = {"sandbox-operator-token": OPERATOR_LOGIN, "sandbox-eng-lead-token": "eng-lead",
          "sandbox-devops-token": "devops-lead", "sandbox-pm-token": "product-manager",
          "sandbox-security-token": "security-reviewer", "sandbox-author-token": "dev-author"}
REVIEWERS = ("eng-lead", "devops-lead", "product-manager")
SCENARIOS = {"healthy": "healthy", "bad-release": "healthy", "slow-rollout": "slow", "stale-approval": "healthy",
             "failing-rollout": "failing"}
RELEASED = ("v1.0.0", "v1.1.0")
BAD_VERSION = re.compile(r"^v\d+\.\d+\.\d+$")


def token_of(login: str) -> str:
    return next(t for t, u in TOKENS.items() if u == login)


class World:
    """Everything the supervisor runs; ``start()`` brings it up, ``stop()`` takes it down."""

    def __init__(self, folder: Path, scenario: str = "healthy", review_delay: float = 1.0, bad_version: str = ""):
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}")
        if bad_version and not BAD_VERSION.match(bad_version):
            raise ValueError(f"bad version {bad_version!r}: expected vMAJOR.MINOR.PATCH")
        self.folder = Path(folder)
        self.scenario = scenario
        self.bad_version = bad_version
        self.review_delay = review_delay
        self.stop_event = threading.Event()
        self.threads: list[threading.Thread] = []
        self.reviewed: set[tuple[int, str]] = set()
        self.stale_pushed: set[int] = set()
        self.deployed: set[str] = set()

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> dict[str, Any]:
        from ..standins.ecs import AwsStandIn
        from ..standins.menotime import seed_menotime
        from ..standins.github import GitHubStandIn
        from .app import App, Metrics
        from .repo import create

        os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
        self.aws = AwsStandIn(scenario=SCENARIOS[self.scenario], tick=0.25, slow_ticks=12).start()
        # v1.1.0 is live; v1.1.1-debug was registered afterwards and never deployed, so "current minus one"
        # after the next release would point at a revision that never served traffic
        self.world = seed_menotime(self.aws.endpoint_url, versions=("v1.0.0", "v1.1.0", "v1.1.1-debug"),
                                   live="v1.1.0")
        self.bare = create(self.folder / "git")
        self.github = GitHubStandIn(self.bare, OWNER, REPO, TOKENS, admins={OPERATOR_LOGIN})
        self.github_url = self.github.start()
        self.ecs = self._client("ecs")
        metrics = Metrics(self._client("cloudwatch"), self._client("logs"), self._dimensions(),
                          self.world.log_group, self.world.log_stream)
        self.metrics = metrics
        self.app = App(self.version, self.is_bad, metrics)
        self.app_port = self.app.start()
        self.main_sha = g.rev(self.bare, "refs/heads/main")
        for target in (self._pipeline, self._reviewers, self._traffic, self._flush):
            thread = threading.Thread(target=self._forever(target), name=target.__name__, daemon=True)
            thread.start()
            self.threads.append(thread)
        return self.describe()

    def stop(self) -> None:
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout=5)
        for part in ("app", "github", "aws"):
            obj = getattr(self, part, None)
            if obj is not None:
                obj.stop()

    def describe(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "bad_version": self.bad_version,
            "aws": {"endpoint_url": self.aws.endpoint_url, "region": self.world.region,
                    "account_id": self.world.account_id},
            "github": {"base_url": self.github_url, "repo": f"{OWNER}/{REPO}", "operator": OPERATOR_LOGIN,
                       "tokens": TOKENS},
            "app": {"base_url": f"http://127.0.0.1:{self.app_port}"},
            "git": {"remote": str(self.bare)},
            "world": {"cluster": self.world.cluster, "service": self.world.service, "family": self.world.family,
                      "target_group": self.world.target_group, "load_balancer": self.world.load_balancer,
                      "log_group": self.world.log_group, "topic_arn": self.world.topic_arn,
                      "task_definitions": self.world.task_definitions},
        }

    def overlay(self) -> dict[str, Any]:
        """What the engine merges onto environments/sandbox.yaml after validating it."""
        d = self.describe()
        return {"aws": {"endpoint_url": d["aws"]["endpoint_url"], "account_id": d["aws"]["account_id"]},
                "github": {"base_url": d["github"]["base_url"]},
                "api": {"base_url": d["app"]["base_url"]},
                "git": {"remote": d["git"]["remote"]},
                "notify": {"sns_topic_arn": d["world"]["topic_arn"]}}

    # -- helpers -------------------------------------------------------------------
    def _client(self, service: str) -> Any:
        from ..standins.menotime import loopback_client

        return loopback_client(self.aws.endpoint_url, service, self.world.region)

    def _dimensions(self) -> list[dict[str, str]]:
        tg = self.world.target_group_arn.split(":", 5)[5]
        lb = self.world.load_balancer_arn.split(":", 5)[5].split("loadbalancer/", 1)[1]
        return [{"Name": "TargetGroup", "Value": tg}, {"Name": "LoadBalancer", "Value": lb}]

    def _forever(self, fn: Any) -> Any:
        def loop() -> None:
            while not self.stop_event.is_set():
                try:
                    fn()
                except Exception as exc:  # a background loop must survive one bad tick; the log says why
                    self._log(f"{fn.__name__}: {type(exc).__name__}: {exc}")
                self.stop_event.wait(0.5)
        return loop

    def _log(self, text: str) -> None:
        with open(self.folder / "server.log", "a") as fh:
            fh.write(time.strftime("%H:%M:%S ") + text + "\n")

    # -- the app's view of the service ------------------------------------------------
    _version_cache: tuple[float, str] = (0.0, "")

    def version(self) -> str:
        """The version the traffic reaches: the deployment with the most running tasks."""
        at, cached = self._version_cache
        if clock.monotonic() - at < 0.3 and cached:
            return cached
        deployments = self.aws.deployments(self.world.cluster, self.world.service, self.world.account_id,
                                           self.world.region)
        if not deployments:
            return cached or "unknown"
        best = max(deployments, key=lambda d: (d.get("runningCount", 0), d.get("status") == "PRIMARY"))
        td = str(best.get("taskDefinition", ""))
        version = self._image_tag(td)
        self._version_cache = (clock.monotonic(), version)
        return version

    _images: dict[str, str] = {}

    def _image_tag(self, td: str) -> str:
        if td not in self._images:
            image = self.ecs.describe_task_definition(taskDefinition=td)["taskDefinition"]["containerDefinitions"][0]["image"]
            self._images[td] = image.rsplit(":", 1)[-1]
        return self._images[td]

    def is_bad(self, version: str) -> bool:
        """A version that answers 500 on the API: the one chosen bad (``--bad-version``), or, in the
        bad-release scenario, every version after the seeded ones."""
        if self.bad_version:
            return version == self.bad_version
        return self.scenario == "bad-release" and version not in RELEASED and not version.endswith("-debug")

    # -- background loops ----------------------------------------------------------
    def _pipeline(self) -> None:
        """A push to main deploys: register the version's task definition and update the service."""
        from ..standins.menotime import push_image, register_revision

        sha = g.rev(self.bare, "refs/heads/main")
        if not sha or sha == self.main_sha:
            return
        self.main_sha = sha
        run = self.github.add_workflow_run(sha, status="in_progress", conclusion=None, branch="main")
        try:
            text = g.git(["show", f"{sha}:pyproject.toml"], self.bare).out
            m = re.search(r'^version\s*=\s*"([^"]+)"', text, re.MULTILINE)
            version = "v" + (m.group(1) if m else "0.0.0")
            ecr = self._client("ecr")
            known = ecr.list_images(repositoryName=self.world.repository)["imageIds"]
            if not any(i.get("imageTag") == version for i in known):   # a revert re-deploys an image already built
                push_image(self.aws.endpoint_url, self.world.repository, version, self.world.region)
            arn = register_revision(self.aws.endpoint_url, self.world.family, self.world.image(version),
                                    self.world.region)
            self.ecs.update_service(cluster=self.world.cluster, service=self.world.service, taskDefinition=arn,
                                    forceNewDeployment=True)
            self._log(f"pipeline: {sha[:12]} -> {version} as {arn.rsplit('/', 1)[-1]}")
            clock.sleep(0.5)
        except Exception:  # the pipeline failed: report it as GitHub would, then let the loop log why
            self.github.update_workflow_run(run["id"], "completed", "failure")
            raise
        self.github.update_workflow_run(run["id"], "completed", "success")

    def _api(self, method: str, path: str, token: str, body: Any = None) -> Any:
        req = urllib.request.Request(self.github_url + path, method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": f"token {token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:  # nosec B310 - our own loopback stand-in
            return json.loads(resp.read() or b"null")

    def _reviewers(self) -> None:
        """Configured reviewers approve each open pull request's head after a delay."""
        pulls = self._api("GET", f"/repos/{OWNER}/{REPO}/pulls?state=open", token_of(REVIEWERS[0]))
        for pull in pulls:
            number = pull["number"]
            age = clock.time_s() - _epoch(pull["created_at"])
            if age < self.review_delay:
                continue
            stale = self.scenario == "stale-approval"
            if stale and number in self.stale_pushed:
                continue          # the reviewers do not come back: the late push stays unreviewed
            pending = [login for login in REVIEWERS if (number, login + pull["head"]["sha"]) not in self.reviewed
                       and pull["user"]["login"] != login]
            if not pending:
                continue
            detail = self._api("GET", f"/repos/{OWNER}/{REPO}/pulls/{number}", token_of(REVIEWERS[0]))
            if detail.get("mergeable") is not True:
                continue          # nobody approves a pull request that cannot merge (or while GitHub computes)
            for login in pending:
                key = (number, login + pull["head"]["sha"])
                self._api("POST", f"/repos/{OWNER}/{REPO}/pulls/{number}/reviews", token_of(login),
                          {"event": "APPROVE", "body": "LGTM (sandbox reviewer)", "commit_id": pull["head"]["sha"]})
                self.reviewed.add(key)
            if stale:
                # once the engine has read the approvals (its gate passed), a developer pushes to the branch
                path = f"/repos/{OWNER}/{REPO}/pulls/{number}/reviews"

                def reads() -> int:
                    return sum(1 for c in list(self.github.calls)
                               if c[0] == "GET" and c[1].split("?")[0] == path and c[2] == OPERATOR_LOGIN)
                before = reads()
                clock.wait_until(lambda: self.stop_event.is_set() or reads() > before, 300, 0.05)
                self.stale_pushed.add(number)
                self.github.commit(pull["head"]["ref"], {"LATE_CHANGE.md": "pushed after the approvals\n"},
                                   "chore: a change pushed after approval", "dev-author")
                self._log(f"stale-approval: pushed to {pull['head']['ref']} after approvals on #{number}")

    def _traffic(self) -> None:
        base = f"http://127.0.0.1:{self.app_port}"
        for method, path, body in (("GET", "/health", None), ("GET", "/api/v1/patients?limit=10", None),
                                   ("POST", "/auth/login", {"email": "test@example.com", "password": "sandbox"})):
            req = urllib.request.Request(base + path, method=method,
                                         data=json.dumps(body).encode() if body else None)
            try:
                with urllib.request.urlopen(req, timeout=5):  # nosec B310 - our own loopback app
                    pass
            except OSError:
                pass   # 5XX answers are the point of the bad-release scenario

    def _flush(self) -> None:
        self.stop_event.wait(2.0)
        self.metrics.flush()


def _epoch(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--folder", required=True)
    parser.add_argument("--scenario", default="healthy")
    parser.add_argument("--review-delay", type=float, default=1.0)
    parser.add_argument("--bad-version", default="")
    args = parser.parse_args(argv)
    folder = Path(args.folder)
    folder.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    world = World(folder, args.scenario, args.review_delay, args.bad_version)
    try:
        info = world.start()
        info.update({"pid": os.getpid(), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                     "ready": True})
        atomic_write(folder / "overlay.json", json.dumps(world.overlay(), indent=2).encode())
        atomic_write(folder / "state.json", json.dumps(info, indent=2).encode())
        stop.wait()
    finally:
        world.stop()
        for name in ("state.json",):
            try:
                (folder / name).unlink()
            except FileNotFoundError:
                pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
