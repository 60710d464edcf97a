"""The review of the sandbox's bad release (production-release -> rollback-fast -> post-rollback) as a
reviewer gets it: `audit.export` of the failed release and `audit.incident` of the window, in Markdown,
JSON and HTML, and the HTML rendered by Debian's headless Chromium (its DOM, a screenshot's pixels, an
A4 PDF's page count). The bad release is the session's recording (tests/recorded.py), shared with the end-to-end test."""

from __future__ import annotations

import json
import os
import re
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

import pytest


from helpers import REPO, chromium_path, png_pixels
from recorded import run

pytestmark = pytest.mark.browser          # the slow tier: `python -m pytest -q -m slow` (or -m browser)

SVG = "{http://www.w3.org/2000/svg}"
RED = (198, 40, 40)                    # the failure colour (#c62828)


@pytest.fixture(scope="module")
def incident(tmp_path_factory: pytest.TempPathFactory, bad_release: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The bad release rolled back, and every report of it written to files."""
    chromium_path()                      # skipped (or, under CI, failed) before a minute of sandbox without a browser
    base = tmp_path_factory.mktemp("incident")
    home, runs = bad_release["home"], bad_release["runs"]
    files = {}
    for fmt in ("md", "json", "html"):
        out = base / f"incident.{fmt}"
        done = run(home, "audit.incident", "--env", "sandbox", "--since", "1h", "--format", fmt, "--output", str(out))
        assert done.returncode == 0, done.stdout + done.stderr
        files[f"incident.{fmt}"] = out
    out = base / "release.html"
    done = run(home, "audit.export", runs["production-release"], "--format", "html", "--output", str(out))
    assert done.returncode == 0, done.stderr
    files["release.html"] = out
    yield {"home": home, "runs": runs, "files": files, "base": base}


def test_the_incident_summary_states_time_to_restore_from_the_journals(incident: dict[str, Any]) -> None:
    data = json.loads(incident["files"]["incident.json"].read_text())
    s, runs = data["summary"], incident["runs"]
    assert [r["runbook"] for r in data["runs"]] == ["production-release", "rollback-fast", "post-rollback"]
    assert s["released"]["run"] == runs["production-release"] and s["released"]["version"] == "v1.2.0"
    assert (s["failed"]["step"], s["failed"]["check"]) == ("verification.endpoints", "login")
    assert "status 500, expected 200" in s["failed"]["summary"]
    assert s["restored_by"]["run"] == runs["rollback-fast"]
    assert s["healthy"]["run"] == runs["rollback-fast"] and s["healthy"]["steps"][0] == "verification.health"
    records = [json.loads(line) for line in (incident["home"] / "runs" / runs["rollback-fast"] / "journal.jsonl")
               .read_text().splitlines()]
    last_verified = [r["time"] for r in records if r["type"] == "step.finished"
                     and r["data"]["step"] == s["healthy"]["steps"][-1]][0]
    assert s["healthy"]["time"] == last_verified                 # from the journal, to the microsecond
    # the figures are the journals' own times subtracted (logic, not how fast this machine ran the rollback)
    def at(stamp: str) -> datetime:
        return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ")

    assert s["time_to_restore_s"] == (at(s["healthy"]["time"]) - at(s["failed"]["time"])).total_seconds() > 0
    assert s["time_to_detect_s"] == (at(s["failed"]["time"]) - at(s["went_live"]["time"])).total_seconds() >= 0
    md = incident["files"]["incident.md"].read_text()
    assert re.search(r"\| Time to restore \| \d+(\.\d)?s \(from the failure to healthy again\) \|", md)
    assert "| Failed | " in md and "Key endpoints answer [verification.endpoints]" in md


def test_the_html_reports_have_tables_titles_answers_the_failure_and_the_connectors(incident: dict[str, Any]) -> None:
    import xml.etree.ElementTree as ET

    runs = incident["runs"]
    for name in ("release.html", "incident.html"):
        text = incident["files"][name].read_text()
        assert "<script" not in text and "<link" not in text and "src=" not in text and "<pre>|" not in text
        for part in ("<table", "<thead>", "Key endpoints answer", "Prerequisites",
                     "All code is merged to develop and tested in staging", "status 500, expected 200",
                     "Start rollback-fast now?", "release@menotime.example"):
            assert part in text, (name, part)
        svg = ET.fromstring(text[text.index("<svg"):text.index("</svg>") + 6])
        links = {(p.get("data-from"), p.get("data-to"), p.get("data-step")) for p in svg.iter(f"{SVG}path")
                 if p.get("class") == "link"}
        assert (runs["production-release"], runs["rollback-fast"], "verification.endpoints") in links, links
    incident_svg = incident["files"]["incident.html"].read_text()
    assert f'data-from="{runs["rollback-fast"]}" data-to="{runs["post-rollback"]}" data-step="post-rollback"' \
        in incident_svg
    assert "Review the logs and error traces and write down the root cause" in incident_svg   # post-rollback's item


# -- in a real browser ------------------------------------------------------------------------------

def chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    browser = chromium_path()
    profile = tmp / f"profile-{len(list(tmp.glob('profile-*')))}"
    return subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                           "--disable-background-networking", "--disable-component-update", "--disable-sync",
                           "--hide-scrollbars", f"--user-data-dir={profile}", *args],
                          check=True, capture_output=True, timeout=180)


@pytest.mark.parametrize("name", ["release.html", "incident.html"])
def test_each_report_renders_in_headless_chromium(incident: dict[str, Any], name: str, tmp_path: Path) -> None:
    page = incident["files"][name]
    dom = chromium(tmp_path, "--dump-dom", page.as_uri()).stdout.decode()
    for part in ("<h1>", "<h2>Timeline</h2>", "<table", "Key endpoints answer", "Deploy to Production",
                 "All code is merged to develop and tested in staging", "status 500, expected 200",
                 'class="link"', "✗ failed"):
        assert part in dom, (name, part)
    shot = tmp_path / "shot.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=900,1400", page.as_uri())
    width, height, rows = png_pixels(shot.read_bytes())
    assert (width, height) == (900, 1400)
    reds = sum(1 for row in rows for x in range(0, len(row), 3)
               if abs(row[x] - RED[0]) < 24 and abs(row[x + 1] - RED[1]) < 24 and abs(row[x + 2] - RED[2]) < 24)
    assert reds > 50, "the failure's colour is not on the first screen"
    # nothing drawn outside the page: the page's side margins (1rem) stay white from top to bottom
    for row in rows:
        assert set(row[:8 * 3]) <= {255} and set(row[-8 * 3:]) <= {255}, "something reaches the window's edge"
    pdf = tmp_path / "report.pdf"
    chromium(tmp_path, f"--print-to-pdf={pdf}", "--no-pdf-header-footer", page.as_uri())
    data = pdf.read_bytes()
    assert data[:5] == b"%PDF-"
    pages = len(re.findall(rb"/Type\s*/Page(?![a-z])", data))
    low, high = {"release.html": (3, 12), "incident.html": (6, 24)}[name]
    assert low <= pages <= high, f"{name}: {pages} A4 pages"
    if os.environ.get("RUNBOOK_WRITE_DOCS"):     # regenerate the screenshots the README shows
        docs = REPO / "docs" / {"release.html": "report-failed-run.png", "incident.html": "incident-report.png"}[name]
        chromium(tmp_path, f"--screenshot={docs}", "--window-size=1100,2600", page.as_uri())
