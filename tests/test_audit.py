"""Audit review from journals the engine wrote: list, show, timeline, export, index, verify."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from runbook import audit_cli, cli
from runbook.errors import ExitCode

from helpers import chromium_path, copy_project, invoke, png_pixels, write_answers


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Four runs made by the engine: a failed flow rolled back by its linked cleanup, a gate parked twice (a
    refused approval parks too: nobody to name another approver), a run with a secret."""
    base = tmp_path_factory.mktemp("audit")
    root = copy_project("runtime", base)
    home = base / "home"
    work = base / "work"
    work.mkdir()
    answers = write_answers(base / "flow.yaml", "flow", {"run.on_failure": True})
    flow = invoke("runbook", "flow", "--param", f"dir={work}", "--param", "fail_after=true", "--answers",
                  str(answers), root=root, home=home, env={"RUNBOOK_OPERATOR": "alice@example.com"})
    assert flow.returncode == 1, flow.stdout
    gates = invoke("runbook", "gates", "--non-interactive", root=root, home=home,
                   env={"RUNBOOK_OPERATOR": "bob@example.com"})
    assert gates.returncode == 4
    refused = write_answers(base / "gates.yaml", "gates", {
        "confirm-it.confirm": True, "confirm-it.tick": True, "evidence.link": {"done": True, "link": "https://d/1"},
        "approve.approval": {"approvers": ["carol@example.com", "carol@example.com"]}})
    bad = invoke("runbook", "gates", "--resume", "--answers", str(refused), root=root, home=home,
                 env={"RUNBOOK_OPERATOR": "bob@example.com"})
    assert bad.returncode == 4
    secret = invoke("runbook", "secretive", "--param", f"dir={work}", root=root, home=home,
                    env={"RUNBOOK_OPERATOR": "dana@example.com", "RUNBOOK_PARAM_TOKEN": "hunter2-topsecret"})
    assert secret.returncode == 0, secret.stdout + secret.stderr
    runs = {}
    for folder in sorted((home / "runs").iterdir()):
        first = json.loads((folder / "journal.jsonl").read_text().splitlines()[0])
        runs[first["data"]["runbook"]] = first["run"]
    return {"root": root, "home": home, "runs": runs}


def call(world: dict, fn, *args, **kwargs) -> str:
    os.environ["RUNBOOK_HOME"] = str(world["home"])
    out = io.StringIO()
    assert fn(world["root"], *args, out=out, **kwargs) == ExitCode.OK
    return out.getvalue()


def listed(world: dict, **filters) -> list[str]:
    rows = json.loads(call(world, audit_cli.audit_list, as_json=True, **filters))
    return [r["runbook"] for r in rows]


def test_list_filters(world: dict) -> None:
    assert listed(world) == ["secretive", "gates", "cleanup", "flow"]          # newest first
    assert listed(world, runbook="flow") == ["flow"]
    assert listed(world, status="failed") == []
    assert listed(world, status="rolled-back") == ["flow"]
    assert listed(world, status="parked") == ["gates"]
    assert listed(world, status="succeeded") == ["secretive", "cleanup"]
    assert listed(world, operator="bob@example.com") == ["gates"]
    assert listed(world, env="nowhere") == []
    assert listed(world, since="2h") == ["secretive", "gates", "cleanup", "flow"]
    assert listed(world, until="2000-01-01T00:00:00Z") == []
    text = call(world, audit_cli.audit_list)
    assert world["runs"]["flow"] in text and "rolled-back" in text and "alice@example.com" in text
    assert text.splitlines()[0].split()[:3] == ["RUN", "RUNBOOK", "ENV"]


def test_show_has_everything_a_review_needs(world: dict) -> None:
    flow = call(world, audit_cli.audit_show, world["runs"]["flow"][:22])
    for expected in ("status: rolled-back", "A failure the runbook tolerates [soft]: failed", "tolerated: expected 2, found 1 (on_failure: continue)",
                     "Fails after the mark [late-fail]: failed", "Fails before the mark [early-fail]: skipped", "when: ${params.fail_before} is false",
                     f"linked run: {world['runs']['cleanup']} cleanup (succeeded) from step run.on_failure",
                     "digest: ", "journal: chain verified", "[2 attempts]", "on_failure offered: cleanup: accepted"):
        assert expected in flow, expected
    gates = call(world, audit_cli.audit_show, world["runs"]["gates"])
    assert "run.parked" not in gates and "confirm-it.confirm: yes by bob@example.com" in gates
    assert "REFUSED: the same person is named twice" in gates
    assert "approval refused in approve: the same person is named twice" in gates
    secret = call(world, audit_cli.audit_show, world["runs"]["secretive"])
    assert "token=******** (secret)" in secret and "hunter2" not in secret
    data = json.loads(call(world, audit_cli.audit_show, world["runs"]["flow"], as_json=True))
    assert data["status"] == "rolled-back" and data["children"][0]["run"] == world["runs"]["cleanup"]
    assert [s["id"] for s in data["steps"]][:3] == ["soft", "eventually", "retrying"]


def test_timeline_puts_every_run_in_time_order(world: dict) -> None:
    events = json.loads(call(world, audit_cli.audit_timeline, "2h", as_json=True))
    times = [e["time"] for e in events]
    assert times == sorted(times)
    assert {e["runbook"] for e in events} == {"flow", "cleanup", "gates", "secretive"}
    text = call(world, audit_cli.audit_timeline, "2h")
    assert "started flow" in text and "linked run" in text and "run.parked" in text


def test_exports(world: dict, tmp_path: Path) -> None:
    flow_id, cleanup_id = world["runs"]["flow"], world["runs"]["cleanup"]
    md = call(world, audit_cli.audit_export, flow_id, "md")
    for section in ("# flow run", "## Parameters", "## Linked runs", "## Steps", "## Failed checks",
                    "## Deviations from the runbook", "## Timeline", "| Journal | chain verified |"):
        assert section in md, section
    assert f"Linked run `{cleanup_id}` (cleanup): succeeded" in md
    child = call(world, audit_cli.audit_export, cleanup_id, "md")
    assert f"Started from run `{flow_id}` (flow, step run.on_failure)" in child
    data = json.loads(call(world, audit_cli.audit_export, flow_id, "json"))
    assert data["verification"] == "chain verified" and data["timeline"] and data["links"]["children"]
    out = tmp_path / "report.html"
    call(world, audit_cli.audit_export, flow_id, "html", str(out))
    html = out.read_text()
    assert "<script" not in html and "<link" not in html and "src=" not in html     # self-contained, no network
    svg = html[html.index("<svg"):html.index("</svg>") + 6]
    root = ET.fromstring(svg)
    bars = root.findall(".//{http://www.w3.org/2000/svg}g[@class='step']")
    flow_steps = [s["id"] for s in json.loads(call(world, audit_cli.audit_show, flow_id, as_json=True))["steps"]]
    cleanup_steps = [s["id"] for s in json.loads(call(world, audit_cli.audit_show, cleanup_id, as_json=True))["steps"]]
    assert len(bars) == len(flow_steps) + len(cleanup_steps)              # one bar per step of both runs
    assert {b.get("data-step") for b in bars if b.get("data-run") == flow_id} == set(flow_steps)
    assert root.findall(".//{http://www.w3.org/2000/svg}text[@class='failure']")      # failures marked
    assert root.findall(".//{http://www.w3.org/2000/svg}path[@class='link']")         # release and follow-up linked


@pytest.mark.browser
def test_html_report_renders_in_headless_chromium(world: dict, tmp_path: Path) -> None:
    browser = chromium_path()
    out = tmp_path / "report.html"
    call(world, audit_cli.audit_export, world["runs"]["flow"], "html", str(out))
    shot = tmp_path / "shot.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1000,700",
                    out.as_uri()], check=True, capture_output=True, timeout=120)
    _, _, rows = png_pixels(shot.read_bytes())
    colours = {(row[x], row[x + 1], row[x + 2]) for row in rows for x in range(0, len(row), 12)}
    # the chart's bars are drawn: green (succeeded) and red (failed) pixels beside the white page
    assert any(g > 100 and r < 80 and b < 80 for r, g, b in colours), "no green bar in the screenshot"
    assert any(r > 150 and g < 80 and b < 80 for r, g, b in colours), "no red bar in the screenshot"


def test_index_is_rebuilt_and_never_trusted_over_the_journals(world: dict, tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(world["home"], home)
    copy = dict(world, home=home)
    index = home / "index.json"
    assert index.exists()
    index.unlink()                                                # deleted: rebuilt
    assert listed(copy) == ["secretive", "gates", "cleanup", "flow"]
    assert index.exists()
    data = json.loads(index.read_text())                          # stale: an entry lies about a run's status
    flow_id = world["runs"]["flow"]
    data["runs"][flow_id]["summary"]["status"] = "succeeded"
    data["runs"][flow_id]["stamp"] = [0, 0]
    index.write_text(json.dumps(data))
    assert "flow" in listed(copy, status="rolled-back")
    journal = home / "runs" / flow_id / "journal.jsonl"           # tampered journal, index left looking fine
    lines = journal.read_bytes().splitlines(keepends=True)
    assert b"alice@example.com" in lines[3]
    lines[3] = lines[3].replace(b"alice@example.com", b"mallo@example.com")      # same size: the index's stamp holds
    stamp = json.loads(index.read_text())["runs"][flow_id]["stamp"]
    journal.write_bytes(b"".join(lines))
    os.utime(journal, ns=(stamp[1], stamp[1]))
    os.environ["RUNBOOK_HOME"] = str(home)
    out = io.StringIO()
    assert cli.audit_verify(world["root"], None, out=out) == ExitCode.FAILED
    assert f"run {flow_id} record 5 (line 5): chain broken" in out.getvalue()
