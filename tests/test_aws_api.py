"""aws.call, aws.check, aws.wait against moto: in-process (``moto.mock_aws``) for the plugin
functions, and a moto server on loopback for a runbook run end to end through the CLI.

Dummy credentials; no network beyond 127.0.0.1.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

from runbook import aws, cli, clock
from runbook.errors import ExitCode
from runbook.plugins import Context, Outcome, load

from helpers import REPO, aws_dummy_credentials, invoke

REGION = "us-east-1"
ENV = {"aws": {"region": REGION}}


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    aws_dummy_credentials(monkeypatch, tmp_path)
    yield
    aws.reset()


@pytest.fixture
def mocked(credentials: None) -> Iterator[None]:
    from moto import mock_aws

    with mock_aws():
        yield


def run(name: str, args: dict[str, Any], env: dict[str, Any] | None = None, **extra: Any) -> Outcome:
    """Call a registered plugin as the engine would."""
    plugin = load()[name]
    ctx = Context(args=args, env=env or ENV, root=REPO, env_name="test", run_id="20260101T000000-test", **extra)
    return plugin.func(ctx)


def boto(service: str) -> Any:
    import boto3

    return boto3.client(service, region_name=REGION)


def volume(size: int = 8) -> str:
    return str(boto("ec2").create_volume(AvailabilityZone=f"{REGION}a", Size=size)["VolumeId"])


# -- aws.call ------------------------------------------------------------------------------------

def test_call_has_its_effect_and_select_gives_the_outputs(mocked: None) -> None:
    out = run("aws.call", {"service": "ec2", "operation": "create_volume",
                           "params": {"AvailabilityZone": f"{REGION}a", "Size": 12,
                                      "TagSpecifications": [{"ResourceType": "volume",
                                                             "Tags": [{"Key": "run", "Value": "r1"}]}]},
                           "select": {"id": "VolumeId", "size": "Size", "created": "CreateTime",
                                      "tag": "Tags[?Key=='run'].Value | [0]"}})
    assert out.passed, out.summary
    assert out.outputs["id"].startswith("vol-") and out.outputs["size"] == 12 and out.outputs["tag"] == "r1"
    assert isinstance(out.outputs["created"], str) and out.outputs["created"].endswith("Z")   # JSON-safe
    json.dumps(out.to_dict())
    found = boto("ec2").describe_volumes(VolumeIds=[out.outputs["id"]])["Volumes"]
    assert found[0]["Size"] == 12                                             # the effect is real
    assert out.summary.startswith(f"ec2 CreateVolume in {REGION}: done")
    assert out.evidence["call"] == "ec2 CreateVolume" and out.evidence["params"]["Size"] == 12
    assert out.evidence["selected"]["id"] == out.outputs["id"]


def test_call_evidence_and_summary_are_redacted(mocked: None) -> None:
    out = run("aws.call", {"service": "ssm", "operation": "put_parameter",
                           "params": {"Name": "/app/token", "Value": "s3cret-value", "Type": "SecureString"},
                           "select": {"version": "Version"}},
              redact=lambda text: text.replace("s3cret-value", "********"))
    assert out.passed, out.summary
    assert out.outputs == {"version": 1}
    assert out.evidence["params"]["Value"] == "********"
    assert "s3cret" not in json.dumps(out.to_dict())


# -- aws.check -----------------------------------------------------------------------------------

def test_check_expect_passes_and_a_mismatch_says_expected_found_where(mocked: None) -> None:
    vid = volume()
    ok = run("aws.check", {"service": "ec2", "operation": "describe_volumes", "params": {"VolumeIds": [vid]},
                           "expect": {"Volumes[0].State": "available", "length(Volumes)": 1},
                           "select": {"state": "Volumes[0].State"}})
    assert ok.passed, ok.summary
    assert ok.outputs == {"state": "available"}
    assert ok.evidence["checked"] == {"Volumes[0].State": "available", "length(Volumes)": 1}
    bad = run("aws.check", {"service": "ec2", "operation": "describe_volumes", "params": {"VolumeIds": [vid]},
                            "expect": {"Volumes[0].State": ["in-use", "deleting"], "length(Volumes)": 1,
                                       "Volumes[0].Encrypted": 0},
                            "select": {"state": "Volumes[0].State"}})
    assert not bad.passed
    assert bad.summary == (f"ec2 DescribeVolumes in {REGION}: Volumes[0].State: expected one of 'in-use', "
                           "'deleting', found 'available'; Volumes[0].Encrypted: expected 0, found false")
    assert bad.outputs == {"state": "available"}                          # recorded even when it fails


def test_check_missing_value_is_found_as_null(mocked: None) -> None:
    out = run("aws.check", {"service": "ec2", "operation": "describe_volumes",
                            "params": {"Filters": [{"Name": "tag:run", "Values": ["nothing"]}]},
                            "expect": {"Volumes[0].VolumeId": "vol-1"}})
    assert not out.passed
    assert out.summary.endswith("Volumes[0].VolumeId: expected 'vol-1', found nothing (null)")


def test_paginated_operations_are_merged_across_pages(mocked: None) -> None:
    ssm = boto("ssm")
    for i in range(23):
        ssm.put_parameter(Name=f"/app/p{i:02d}", Value="x" * 100, Type="String", Description="d" * 100)
    one_page = ssm.describe_parameters(MaxResults=10)
    assert len(one_page["Parameters"]) == 10 and one_page.get("NextToken")  # one call is not enough
    out = run("aws.check", {"service": "ssm", "operation": "describe_parameters", "params": {"MaxResults": 10},
                            "expect": {"length(Parameters)": 23},
                            "select": {"count": "length(Parameters)", "last": "sort(Parameters[].Name)[-1]"}})
    assert out.passed, out.summary
    assert out.outputs == {"count": 23, "last": "/app/p22"}
    assert out.evidence["paginated"] is True
    assert "response" not in out.evidence                                 # large: summarised, not stored
    assert out.evidence["response_omitted"]["keys"] == ["Parameters"]


def test_client_error_is_a_failed_outcome_naming_call_region_and_code(mocked: None) -> None:
    out = run("aws.check", {"service": "ssm", "operation": "get_parameter", "params": {"Name": "/nope"}})
    assert not out.passed
    assert out.summary.startswith(f"ssm GetParameter in {REGION}: ParameterNotFound")
    assert out.evidence["error_code"] == "ParameterNotFound" and out.evidence["params"] == {"Name": "/nope"}
    invalid = run("aws.call", {"service": "ssm", "operation": "get_parameter", "params": {"Nmae": "/x"}})
    assert not invalid.passed and "\n" not in invalid.summary
    assert invalid.summary.startswith(f"ssm GetParameter in {REGION}: invalid request: Parameter validation failed")
    assert invalid.evidence["error_code"] == "ParamValidationError"
    unknown = run("aws.check", {"service": "ssm", "operation": "get_parameterz", "params": {}})
    assert not unknown.passed and "ssm has no operation 'get_parameterz'" in unknown.summary


def test_unreachable_endpoint_is_translated(credentials: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    env = {"aws": {"region": REGION, "endpoint_url": "http://127.0.0.1:9"}}
    out = run("aws.check", {"service": "ssm", "operation": "get_parameter", "params": {"Name": "/x"}}, env=env)
    assert not out.passed
    assert out.summary.startswith(f"ssm GetParameter in {REGION} at http://127.0.0.1:9: cannot reach AWS at "
                                  "http://127.0.0.1:9 (EndpointConnectionError)")
    assert out.evidence["error_code"] == "EndpointConnectionError"


# -- aws.wait ------------------------------------------------------------------------------------

def test_wait_polls_until_the_value_holds(mocked: None) -> None:
    ssm = boto("ssm")
    ssm.put_parameter(Name="/deploy/state", Value="pending", Type="String")
    progress: list[str] = []

    def advance(message: str) -> None:      # the world changes between two polls
        progress.append(message)
        if len(progress) == 2:
            ssm.put_parameter(Name="/deploy/state", Value="done", Type="String", Overwrite=True)

    out = run("aws.wait", {"service": "ssm", "operation": "get_parameter", "params": {"Name": "/deploy/state"},
                           "until": {"Parameter.Value": "done"}, "fail_on": {"Parameter.Value": ["failed"]},
                           "select": {"version": "Parameter.Version"}, "timeout": 10, "interval": 0.05},
              progress=advance)
    assert out.passed, out.summary
    assert out.evidence["calls"] == 3 and out.outputs == {"version": 2}
    assert "Parameter.Value: expected 'done', found 'pending'" in progress[0]


def test_wait_fails_fast_on_fail_on_and_times_out_otherwise(mocked: None) -> None:
    ssm = boto("ssm")
    ssm.put_parameter(Name="/deploy/state", Value="failed", Type="String")
    with clock.installed(clock.VirtualClock()) as virtual:
        out = run("aws.wait", {"service": "ssm", "operation": "get_parameter", "params": {"Name": "/deploy/state"},
                               "until": {"Parameter.Value": "done"},
                               "fail_on": {"Parameter.Value": ["failed", "error"]}, "timeout": 30, "interval": 5})
    assert not out.passed and virtual.monotonic() == 0                      # no waiting for the budget: not one sleep
    assert out.evidence["calls"] == 1
    assert out.summary == (f"ssm GetParameter in {REGION}: gave up after 1 call(s): Parameter.Value: found "
                           "'failed', a fail_on value (one of 'failed', 'error'); expected 'done'")
    ssm.put_parameter(Name="/deploy/state", Value="pending", Type="String", Overwrite=True)
    late = run("aws.wait", {"service": "ssm", "operation": "get_parameter", "params": {"Name": "/deploy/state"},
                            "until": {"Parameter.Value": "done"}, "timeout": 0.3, "interval": 0.1})
    assert not late.passed and late.evidence["calls"] >= 2
    assert "still not there after" in late.summary
    assert late.summary.endswith("Parameter.Value: expected 'done', found 'pending'")


def test_wait_with_a_boto3_waiter(mocked: None) -> None:
    vid = volume()
    out = run("aws.wait", {"service": "ec2", "waiter": "volume_available", "params": {"VolumeIds": [vid]},
                           "select": {"state": "Volumes[0].State"}, "timeout": 10, "interval": 1})
    assert out.passed, out.summary
    assert out.outputs == {"state": "available"} and out.evidence["waiter"] == "volume_available"
    assert out.summary.startswith(f"ec2 DescribeVolumes in {REGION}: waiter volume_available succeeded")
    never = run("aws.wait", {"service": "ec2", "waiter": "volume_in_use", "params": {"VolumeIds": [vid]},
                             "select": {"state": "Volumes[0].State"}, "timeout": 2, "interval": 1})
    assert not never.passed
    assert "waiter volume_in_use gave up: Max attempts exceeded" in never.summary
    assert never.outputs == {"state": "available"}                     # what the last attempt found


# -- validate time -------------------------------------------------------------------------------

def test_lint_accepts_good_uses_and_leaves_templates_alone() -> None:
    registry = load()
    assert registry["aws.call"].lint is not None
    good = {"service": "ec2", "operation": "create_volume",
            "params": {"AvailabilityZone": "${params.az}", "Size": "${params.size}",
                       "TagSpecifications": [{"ResourceType": "volume", "Tags": "${params.tags}"}]},
            "select": {"id": "VolumeId"}}
    assert registry["aws.call"].lint(good) == []
    typed = dict(good, params={"Size": "eight"})
    assert registry["aws.call"].lint(typed) == [(("params", "Size"), "ec2 CreateVolume parameter Size must be an "
                                                                     "integer (Integer), found 'eight'")]
    nested = {"service": "ec2", "operation": "describe_volumes", "params": {"Filters": [{"Nmae": "x"}]}}
    assert registry["aws.check"].lint(nested) == [(("params", "Filters", 0, "Nmae"),
                                                   "ec2 DescribeVolumes Filter has no member 'Nmae' (did you mean "
                                                   "'Name'?)")]
    pascal = {"service": "ec2", "operation": "DescribeVolumes"}
    assert "use boto3's snake_case name 'describe_volumes'" in registry["aws.check"].lint(pascal)[0][1]
    assert registry["aws.wait"].lint({"service": "ec2", "operation": "describe_volumes"})[0][1].startswith(
        "aws.wait needs 'until:'")
    assert registry["aws.check"].outputs_of({"select": {"id": "VolumeId"}}) == {
        "type": "object", "properties": {"id": {}}, "additionalProperties": False}


def test_validating_without_aws_items_does_not_import_botocore() -> None:
    probe = ("import sys; from pathlib import Path; from runbook import cli; import io; "
             "cli.validate(Path('tests/scenarios/project'), [], out=io.StringIO()); "
             "print('botocore' in sys.modules, 'jmespath' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True,
                         env={"PYTHONPATH": str(REPO), "RUNBOOK_CACHE": "/nonexistent-cache-dir-x",
                              "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]


def test_checks_lists_the_three_plugins() -> None:
    out = io.StringIO()
    assert cli.checks(REPO, out=out) == ExitCode.OK
    text = out.getvalue()
    assert "aws.call  (action)" in text and "aws.check  (check)" in text and "aws.wait  (check)" in text
    assert "      waiter: string" in text


# -- end to end: a runbook through the CLI against a moto server -----------------------------------

RUNBOOK = """\
name: volume-restore
title: Create a volume, wait for it, find it by its tag, snapshot it
lock: none
params:
  size: {type: integer, default: 4}
  bad_state: {type: string, default: error}
steps:
  - id: create
    title: Create the volume
    do:
      - id: vol
        uses: aws.call
        with:
          service: ec2
          operation: create_volume
          params:
            AvailabilityZone: us-east-1a
            Size: "${params.size}"
            TagSpecifications: [{ResourceType: volume, Tags: [{Key: run, Value: "${run.id}"}]}]
          select: {id: VolumeId}
    verify:
      - uses: aws.wait
        with:
          service: ec2
          operation: describe_volumes
          params: {Filters: [{Name: "tag:run", Values: ["${run.id}"]}]}
          until: {"Volumes[0].State": available}
          fail_on: {"Volumes[0].State": ["${params.bad_state}", deleted]}
          timeout: 20
          interval: 0.2
  - id: find
    title: Find it by the run's tag
    verify:
      - id: vol
        uses: aws.check
        with:
          service: ec2
          operation: describe_volumes
          params: {Filters: [{Name: "tag:run", Values: ["${run.id}"]}]}
          select: {id: "Volumes[0].VolumeId", size: "Volumes[0].Size"}
          expect: {"length(Volumes)": 1, "Volumes[0].Size": "${params.size}"}
  - id: snapshot
    title: Snapshot it
    do:
      - uses: aws.call
        with:
          service: ec2
          operation: create_snapshot
          params: {VolumeId: "${steps.find.vol.id}", Description: "run ${run.id}"}
    verify:
      - uses: aws.wait
        with:
          service: ec2
          waiter: snapshot_completed
          params: {Filters: [{Name: volume-id, Values: ["${steps.find.vol.id}"]}]}
          timeout: 10
          interval: 1
"""


@pytest.fixture
def moto_server(credentials: None) -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def project(tmp_path: Path, endpoint: str) -> Path:
    root = tmp_path / "proj"
    (root / "runbooks").mkdir(parents=True)
    (root / "environments").mkdir()
    (root / "runbooks" / "volume-restore.yaml").write_text(RUNBOOK)
    (root / "environments" / "sim.yaml").write_text(
        f"name: sim\ndescription: moto on loopback\naws: {{region: {REGION}, endpoint_url: \"{endpoint}\"}}\n"
        "backend: {kind: local}\n")
    return root


def test_a_runbook_runs_end_to_end_against_a_moto_server(moto_server: str, tmp_path: Path) -> None:
    import boto3

    root = project(tmp_path, moto_server)
    assert cli.validate(root, [], out=io.StringIO()) == ExitCode.OK
    home = tmp_path / "home"
    done = invoke("runbook", "volume-restore", "--env", "sim", "--param", "size=6", "--non-interactive",
                  root=root, home=home, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    ec2 = boto3.client("ec2", region_name=REGION, endpoint_url=moto_server)
    volumes = ec2.describe_volumes()["Volumes"]
    assert len(volumes) == 1 and volumes[0]["Size"] == 6
    run_id = next(t["Value"] for t in volumes[0]["Tags"] if t["Key"] == "run")
    snapshots = ec2.describe_snapshots(Filters=[{"Name": "volume-id", "Values": [volumes[0]["VolumeId"]]}])["Snapshots"]
    assert [s["VolumeId"] for s in snapshots] == [volumes[0]["VolumeId"]]
    journal = [json.loads(line) for line in (home / "runs" / run_id / "journal.jsonl").read_text().splitlines()]
    results = {f"{r['data']['step']}.{r['data'].get('item')}": r["data"] for r in journal
               if r["type"] == "item.result"}
    assert results["find.vol"]["outputs"] == {"id": volumes[0]["VolumeId"], "size": 6}
    assert results["create.vol"]["outputs"] == {"id": volumes[0]["VolumeId"]}
    assert journal[-1]["type"] == "run.succeeded"

    # the same runbook told that 'available' is a failure: the wait fails at once, the run fails
    failed = invoke("runbook", "volume-restore", "--env", "sim", "--param", "bad_state=available",
                    "--non-interactive", root=root, home=home, timeout=120)
    assert failed.returncode == ExitCode.FAILED, failed.stdout + failed.stderr
    assert (f"ec2 DescribeVolumes in {REGION} at {moto_server}: gave up after 1 call(s): Volumes[0].State: found "
            "'available', a fail_on value (one of 'available', 'deleted'); expected 'available'") in failed.stdout
    assert "> find:" not in failed.stdout                                       # no later step ran
