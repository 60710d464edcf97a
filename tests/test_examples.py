"""The format 1.1 examples (``examples/``), run as a user would against a moto server and a webhook on
loopback: they validate, create once even across a crash (the author's probe), drain a fleet one node
at a time (for_each), end early on the no-work path (end:), and post once (http.send)."""

from __future__ import annotations

import http.server
import io
import json
import shutil
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from helpers import aws_dummy_credentials, invoke
from runbook import aws, cli
from runbook.errors import ExitCode

from conftest import REPO

EXAMPLES = REPO / "examples"
REGION = "us-west-1"
TOKEN = "pgr-7f3a9c1e5b2d48d6a0e4c9b1"


class Hooks:
    """A loopback webhook: records every request, answers 202 on /pager, 200 elsewhere."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.seen.append({"path": self.path, "headers": dict(self.headers), "json": json.loads(body or b"null")})
                self.send_response(202 if self.path.startswith("/pager") else 200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def to(self, prefix: str) -> list[dict[str, Any]]:
        return [s for s in self.seen if s["path"].startswith(prefix)]


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    from moto.server import ThreadedMotoServer

    aws_dummy_credentials(monkeypatch, tmp_path)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=30).close()
    hooks = Hooks()
    root = tmp_path / "examples"
    shutil.copytree(EXAMPLES, root)
    env_file = root / "environments" / "moto.yaml"
    data = yaml.safe_load(env_file.read_text())
    data["aws"]["endpoint_url"] = endpoint
    data["vars"]["chat_webhook"] = f"{hooks.url}/hooks/ops"
    data["vars"]["pager_url"] = f"{hooks.url}/pager/v2/enqueue"
    env_file.write_text(yaml.safe_dump(data))
    import boto3

    ec2 = boto3.client("ec2", region_name=REGION, endpoint_url=endpoint)
    yield {"root": root, "home": tmp_path / "home", "ec2": ec2, "hooks": hooks, "endpoint": endpoint}
    hooks.httpd.shutdown()
    hooks.httpd.server_close()
    server.stop()
    aws.reset()


def go(w: dict[str, Any], *args: str, env: dict[str, str] | None = None) -> Any:
    return invoke(*args, root=w["root"], home=w["home"], env={"AWS_ACCESS_KEY_ID": "testing",
                                                               "AWS_SECRET_ACCESS_KEY": "testing", **(env or {})},
                  timeout=180)


def journal(w: dict[str, Any], run_id: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (w["home"] / "runs" / run_id / "journal.jsonl").read_text().splitlines()]


def runs(w: dict[str, Any]) -> list[str]:
    return sorted(p.name for p in (w["home"] / "runs").iterdir())


def restored(w: dict[str, Any]) -> list[dict[str, Any]]:
    return [v for v in w["ec2"].describe_volumes()["Volumes"]
            if any(t["Key"] == "restored-by" for t in v.get("Tags") or [])]


def a_volume(w: dict[str, Any], snapshots: int) -> str:
    vol = w["ec2"].create_volume(AvailabilityZone=f"{REGION}a", Size=8)["VolumeId"]
    for _ in range(snapshots):
        w["ec2"].create_snapshot(VolumeId=vol)
    return vol


def test_the_examples_validate_and_use_every_format_1_1_feature() -> None:
    assert cli.validate(EXAMPLES, [], out=io.StringIO()) == ExitCode.OK
    text = "\n".join(p.read_text() for p in sorted((EXAMPLES / "runbooks").glob("*.yaml")))
    for feature in ("aws.call", "aws.check", "aws.wait", "waiter:", "probe:", "end: succeeded", "for_each:",
                    "concurrency:", "max_failures:", "http.send", "${env.vars.", "type: list", "${each.value}",
                    "equals:", "in:", "all:", "any:", "not:", "matches:", ".stdout}", "select:", "until:",
                    "fail_on:", "expect:", "secret: true"):
        assert feature in text, feature


def test_restore_creates_once_across_a_crash_and_posts_once(world: dict[str, Any]) -> None:
    w = world
    vol = a_volume(w, snapshots=2)
    crashed = go(w, "runbook", "restore-volume", "--env", "moto", "--param", f"volume={vol}", "--param",
                 "severity=SEV-2", "--non-interactive", env={"RUNBOOK_CRASH_AT": "create.vol:after-effect"})
    assert crashed.returncode != 0
    assert len(restored(w)) == 1                                 # the effect happened before the crash
    run_id = runs(w)[-1]
    resumed = go(w, "runbook.resume", "--run-id", run_id, "--non-interactive")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    volumes = restored(w)
    assert len(volumes) == 1                                     # never a second volume
    records = journal(w, run_id)
    vol_result = [r["data"] for r in records if r["type"] == "item.result" and r["data"]["step"] == "create"
                  and r["data"]["item"] == "vol"][-1]
    assert vol_result["recovered"] == "probe" and vol_result["outputs"]["id"] == volumes[0]["VolumeId"]
    posts = w["hooks"].to("/hooks/ops")
    assert len(posts) == 1 and volumes[0]["VolumeId"] in posts[0]["json"]["text"]   # the probe's output, used
    assert posts[0]["json"]["run"] == run_id


def test_restore_ends_early_when_there_is_no_snapshot(world: dict[str, Any]) -> None:
    w = world
    vol = a_volume(w, snapshots=0)
    done = go(w, "runbook", "restore-volume", "--env", "moto", "--param", f"volume={vol}", "--param",
              "severity=SEV-1", "--non-interactive")
    assert done.returncode == 0, done.stdout + done.stderr
    assert restored(w) == [] and w["hooks"].seen == []
    last = journal(w, runs(w)[-1])[-1]
    assert last["type"] == "run.succeeded" and last["data"]["ended_at"] == "none-left"
    assert "No snapshot, nothing to restore" in done.stdout


def test_drain_runs_its_for_each_serially_and_tells_once(world: dict[str, Any]) -> None:
    w = world
    ec2 = w["ec2"]
    image = ec2.describe_images()["Images"][0]["ImageId"]
    ids = [i["InstanceId"] for i in ec2.run_instances(ImageId=image, MinCount=3, MaxCount=3)["Instances"]]
    done = go(w, "runbook", "drain-nodes", "--env", "moto", "--param", f"nodes=[{', '.join(ids)}]",
              "--non-interactive")
    assert done.returncode == 0, done.stdout + done.stderr
    states = {i["InstanceId"]: i["State"]["Name"] for r in ec2.describe_instances(InstanceIds=ids)["Reservations"]
              for i in r["Instances"]}
    assert set(states.values()) == {"stopped"}
    records = journal(w, runs(w)[-1])
    stops = [r for r in records if r["type"] == "item.intent" and r["data"]["item"] == "stop"]
    assert [r["data"]["args"]["params"]["InstanceIds"] for r in stops] == [[i] for i in ids]   # in order
    # serial: each node stopped (and waited for) before the next one is cordoned
    order = [(r["type"], r["data"]["step"]) for r in records if r["type"] in ("step.started", "step.finished")
             and r["data"]["step"].startswith("drain[")]
    started = [step for kind, step in order if kind == "step.started"]
    assert started == sorted(started, key=lambda s: int(s[6:s.index("]")]))
    posts = w["hooks"].to("/hooks/ops")
    assert len(posts) == 1 and posts[0]["json"]["text"] == "Drained 3 node(s) in staging-eu"


def test_incident_checklist_pages_with_a_redacted_token_and_ends_early_for_a_sev3(world: dict[str, Any],
                                                                                 tmp_path: Path) -> None:
    w = world
    answers = tmp_path / "answers.yaml"
    answers.write_text(yaml.safe_dump({"runbook": "incident-checklist", "answers": {
        "bridge[*].joined": {"done": True, "note": "on the bridge"},
        "bridge[1].joined": {"done": True, "note": "joined late, from the train"},
        "night.manager": {"done": True, "note": "called"},
        "review.booked": {"done": True, "link": "https://calendar.example/review-42"}}}))
    sev1 = go(w, "runbook", "incident-checklist", "--env", "moto", "--param", "severity=SEV-1", "--param",
              "summary=API answers 500", "--param", "responders=[ana, bo]", "--answers", str(answers),
              "--non-interactive", env={"RUNBOOK_PARAM_PAGER_TOKEN": TOKEN})
    assert sev1.returncode == 0, sev1.stdout + sev1.stderr
    pages = w["hooks"].to("/pager")
    assert len(pages) == 1 and pages[0]["headers"]["Authorization"] == f"Token {TOKEN}"
    assert pages[0]["json"]["summary"] == "SEV-1: API answers 500"
    for path in w["home"].rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path
    records = journal(w, runs(w)[-1])
    notes = {r["data"]["id"]: r["data"]["answer"].get("note") for r in records if r["type"] == "prompt.answered"}
    assert notes["bridge[0].joined"] == "on the bridge" and notes["bridge[1].joined"] == "joined late, from the train"
    assert any(r["type"] == "step.finished" and r["data"]["step"] == "review" and r["data"]["status"] == "succeeded"
               for r in records)

    sev3 = go(w, "runbook", "incident-checklist", "--env", "moto", "--param", "severity=SEV-3", "--param",
              "summary=slow admin page", "--param", "responders=[ana]", "--answers", str(answers),
              "--non-interactive", env={"RUNBOOK_PARAM_PAGER_TOKEN": TOKEN})
    assert sev3.returncode == 0, sev3.stdout + sev3.stderr
    assert len(w["hooks"].to("/pager")) == 1                     # no page for a SEV-3
    last = journal(w, runs(w)[-1])
    assert last[-1]["data"]["ended_at"] == "minor"
    assert not any(r["type"] == "step.started" and r["data"]["step"] == "review" for r in last)
