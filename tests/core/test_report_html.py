"""The reports a reviewer reads, from a failed run the engine wrote in-process: `audit.show`, the
Markdown and the HTML export speak the runbook's words (step titles, item texts with their answers,
who and when), the HTML is real (headings, tables, an inline SVG timeline with an axis, wrapped titles,
the failure and the connector to the linked run) and everything from the journal is escaped."""

from __future__ import annotations

import io
import json
import os
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Iterator

import pytest

from core.harness import world
from runbook import audit_cli, plugins, report
from runbook.report import timeline
from runbook.errors import ExitCode

SVG = "{http://www.w3.org/2000/svg}"
LONG_ID = "verify-endpoints-after-the-deployment-of-the-new-version"
LONG_TITLE = ("The key endpoints answer after the deployment: login, the patient list and the appointment "
              "calendar, each within its latency budget")
NASTY = '<script>alert("x")</script> & "quoted" <b>bold</b>'

DRILL = f"""
name: drill
title: Release drill for the review
params:
  dir: {{type: string}}
on_failure:
  runbook: cleanup
  after: deploy
  with: {{source: "${{run.id}}", dir: "${{params.dir}}"}}
steps:
  - id: prerequisites
    title: Prerequisites are met before anything changes
    do:
      - id: staging-tested
        manual: All code is merged to develop and tested in staging for 24 hours
        evidence: note
      - id: dashboards
        manual: The dashboards are open
        evidence: link
  - id: deploy
    title: Deploy the new version
    confirm: Deploy now?
    do:
      - id: write
        uses: effects.append
        with: {{file: "${{params.dir}}/deploy.txt", line: deployed}}
  - id: {LONG_ID}
    title: "{LONG_TITLE}"
    verify:
      - id: login
        uses: core.equals
        with: {{actual: 500, expected: 200, label: login status}}
"""


@pytest.fixture(scope="module")
def drill(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A failed run made by the engine: parked at its checklist by one operator, resumed by another, its
    check failed, its on_failure cleanup accepted and succeeded (the run ends rolled-back)."""
    base = tmp_path_factory.mktemp("report")
    saved_env = {k: os.environ.get(k) for k in ("RUNBOOK_OPERATOR", "RUNBOOK_HOME")}
    plugins.load(None)                      # the built-ins, registered once for the whole session
    saved = plugins.reset_for_tests()
    try:
        w = world(base)
        (w.root / "runbooks" / "drill.yaml").write_text(DRILL)
        os.environ["RUNBOOK_HOME"] = str(w.home)
        os.environ["RUNBOOK_OPERATOR"] = "alice@example.com"
        assert w.run("drill", env="local") == ExitCode.PARKED
        run_id = w.runs()[0]
        os.environ["RUNBOOK_OPERATOR"] = "bob@example.com"
        code = w.run(resume=run_id, answers={
            "prerequisites.staging-tested": {"done": True, "note": NASTY},
            "prerequisites.dashboards": {"done": True, "link": "https://dashboards.example.invalid/api?x=1&y=2"},
            "deploy.confirm": True, "run.on_failure": True})
        assert code == ExitCode.FAILED
        runs = {w.records(r)[0]["data"]["runbook"]: r for r in w.runs()}
        yield {"root": w.root, "home": w.home, "run": runs["drill"], "child": runs["cleanup"]}
    finally:
        plugins.restore_for_tests(saved)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def call(drill: dict[str, Any], fn: Any, *args: Any, **kwargs: Any) -> str:
    os.environ["RUNBOOK_HOME"] = str(drill["home"])
    out = io.StringIO()
    assert fn(drill["root"], *args, out=out, **kwargs) == ExitCode.OK
    return out.getvalue()


class Page(HTMLParser):
    """The page's elements (tag names in order), its text, and every table's header cells."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []
        self.headings: list[tuple[str, str]] = []
        self._heading: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if re.fullmatch(r"h[1-4]", tag):
            self._heading, self._htext = tag, ""

    def handle_endtag(self, tag: str) -> None:
        if tag == self._heading:
            self.headings.append((tag, self._htext.strip()))
            self._heading = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._heading:
            self._htext += data


def parse(html_text: str) -> Page:
    page = Page()
    page.feed(html_text)
    return page


def test_show_speaks_the_runbooks_words(drill: dict[str, Any]) -> None:
    text = call(drill, audit_cli.audit_show, drill["run"])
    for part in ("status: rolled-back",
                 "Prerequisites are met before anything changes [prerequisites]: succeeded",
                 "All code is merged to develop and tested in staging for 24 hours [staging-tested]: yes; note: "
                 + NASTY + " (by bob@example.com at ",
                 "Deploy now? [deploy.confirm]: yes by bob@example.com",
                 f"{LONG_TITLE} [{LONG_ID}]: failed",
                 "what failed:", f"[{LONG_ID}] > login (core.equals): login status: expected 200, found 500",
                 f"linked run: {drill['child']} cleanup (succeeded) from step run.on_failure",
                 f"rolled back by: run {drill['child']}",
                 "sessions:", "1. ", "alice@example.com", "2. ", "bob@example.com", "resumed after ",
                 "(the previous session ended: parked"):
        assert part in text, part


def test_markdown_has_titles_the_checklist_and_what_failed(drill: dict[str, Any]) -> None:
    md = call(drill, audit_cli.audit_export, drill["run"], "md")
    for part in ("## What failed", f"| {LONG_TITLE} (`{LONG_ID}`) | login (core.equals) | login status: expected 200, "
                 "found 500 |", "## Checklist", "| The dashboards are open (`dashboards`) | yes; link: "
                 "https://dashboards.example.invalid/api?x=1&y=2 | bob@example.com |",
                 "| Deploy the new version (`deploy`) | ✓ succeeded |", "## Sessions and interruptions",
                 f"Linked run `{drill['child']}` (cleanup): succeeded, started by step `run.on_failure`"):
        assert part in md, part


def test_html_is_semantic_self_contained_and_escaped(drill: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    call(drill, audit_cli.audit_export, drill["run"], "html", str(out))
    html_text = out.read_text()
    assert "<script" not in html_text and "<link" not in html_text and "src=" not in html_text
    assert "http://www.w3.org/2000/svg" in html_text and "<pre>" not in html_text.split("<h2>Steps")[0][-50:]
    assert html.escape(NASTY) in html_text or "&lt;script&gt;" in html_text
    page = parse(html_text)
    headings = [t for _, t in page.headings]
    for h in ("Summary", "Timeline", "What failed", "Steps", "Checklist answers", "Sessions and interruptions",
              "Linked runs", "Parameters"):
        assert h in headings, (h, headings)
    assert page.tags.count("table") >= 6 and "thead" in page.tags and "th" in page.tags
    assert "|---" not in html_text                              # no Markdown table pipes left over
    text = " ".join(page.text)
    for part in ("Prerequisites are met before anything changes", "All code is merged to develop and tested in "
                 "staging for 24 hours", NASTY, "bob@example.com", "The dashboards are open",
                 "login status: expected 200, found 500", "Deploy now?", drill["child"]):
        assert part in text, part
    assert "✗" in text and "✓" in text                           # symbols carry the status, not colour alone


import html  # noqa: E402  (the escaping the test checks against)


def test_the_timeline_has_an_axis_wrapped_titles_the_failure_and_the_connector(drill: dict[str, Any],
                                                                             tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    call(drill, audit_cli.audit_export, drill["run"], "html", str(out))
    html_text = out.read_text()
    root = ET.fromstring(html_text[html_text.index("<svg"):html_text.index("</svg>") + 6])
    labels = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "tick-label"]
    assert len(labels) >= 3 and all(re.fullmatch(r"\d\d:\d\d(:\d\d(\.\d)?)?", label or "") for label in labels)
    steps = [g for g in root.iter(f"{SVG}g") if g.get("class") == "step"]
    assert {g.get("data-step") for g in steps if g.get("data-run") == drill["run"]} == {
        "prerequisites", "deploy", LONG_ID}
    failed = next(g for g in steps if g.get("data-step") == LONG_ID)
    words = " ".join(span.text or "" for span in failed.iter(f"{SVG}tspan"))
    assert LONG_TITLE in words and LONG_ID in words.replace(" ", "")          # wrapped, never cut
    assert len(list(failed.iter(f"{SVG}tspan"))) >= 3
    assert [t for t in root.iter(f"{SVG}text") if t.get("class") == "failure" and "failed" in (t.text or "")]
    [link] = [p for p in root.iter(f"{SVG}path") if p.get("class") == "link"]
    assert (link.get("data-from"), link.get("data-to"), link.get("data-step")) == (drill["run"], drill["child"], LONG_ID)
    # the connector starts on the failed step's row: at the failure, not on the run's header
    x, y = map(float, re.match(r"M ([\d.]+) ([\d.]+)", link.get("d") or "").groups())
    tick = next(l for l in root.iter(f"{SVG}line") if l.get("class") == "failure-tick")
    assert abs(x - float(tick.get("x1") or 0)) < 1 and float(tick.get("y1") or 0) < y < float(tick.get("y2") or 0)
    kinds = {r.get("class") for r in root.iter(f"{SVG}rect")}
    assert {"seg work", "seg person"} <= kinds                   # the checklist waited for a person
    assert [l for l in root.iter(f"{SVG}line") if (l.get("class") or "").endswith("gap")]   # the parked time
    width = float((root.get("viewBox") or "0 0 0 0").split()[2])
    for el in root.iter():
        for attr in ("x", "x1", "x2"):
            if el.get(attr) is not None:
                assert 0 <= float(el.get(attr) or 0) <= width, (el.tag, el.attrib)


def test_the_json_export_and_show_carry_answers_sessions_and_failures(drill: dict[str, Any]) -> None:
    data = json.loads(call(drill, audit_cli.audit_show, drill["run"], as_json=True))
    item = data["steps"][0]["items"][0]
    assert (item["text"], item["answer"]["note"], item["answered_by"]) == (
        "All code is merged to develop and tested in staging for 24 hours", NASTY, "bob@example.com")
    assert [s["operator"] for s in data["sessions"]] == ["alice@example.com", "bob@example.com"]
    assert data["interruptions"][0]["gap_s"] >= 0 and data["interruptions"][0]["after"].startswith("parked")
    assert data["rolled_back_by"] == drill["child"]


def test_wrap_never_cuts_and_ticks_are_sensible() -> None:
    words = timeline.wrap("a " + "x" * 95 + " tail", 40)
    assert "".join(words).replace(" ", "") == "a" + "x" * 95 + "tail" and all(len(w) <= 40 for w in words)
    assert [timeline.tick_step(s) for s in (4, 27, 70, 600, 3 * 3600, 3 * 86400)] == [0.5, 5, 10, 120, 1800, 43200]
    assert timeline.tick_step(0.5) == 0.1


def test_the_incident_report_of_the_window(drill: dict[str, Any], tmp_path: Path) -> None:
    data = json.loads(call(drill, audit_cli.audit_incident, "local", "1h", None, "json"))
    summary = data["summary"]
    assert [r["runbook"] for r in data["runs"]] == ["drill", "cleanup"]
    assert summary["failed"]["step"] == LONG_ID and summary["failed"]["check"] == "login"
    assert summary["restored_by"]["run"] == drill["child"] and summary["healthy"]["how"] == "it succeeded"
    assert summary["time_to_restore_s"] is not None and summary["time_to_restore_s"] >= 0
    assert summary["went_live"]["step"] == "deploy"
    whats = [a["what"] for a in data["actions"]]
    assert any("The dashboards are open" in w for w in whats) and any("resumed after" in w for w in whats)
    md = call(drill, audit_cli.audit_incident, "local", "1h", None, "md")
    assert "| Time to restore | " in md and "## Who did what" in md and LONG_TITLE in md
    out = tmp_path / "incident.html"
    call(drill, audit_cli.audit_incident, "local", "1h", None, "html", str(out))
    page = parse(out.read_text())
    assert [t for _, t in page.headings][:4] == ["Incident report: local", "Summary", "Timeline", "Who did what"]
    assert "Time to restore" in " ".join(page.text)
    with pytest.raises(Exception, match="--env is required"):
        call(drill, audit_cli.audit_incident, None, "1h")


def test_takeovers_bracketed_ids_unknown_fields_and_a_crash_are_read() -> None:
    from runbook.review import view

    def rec(i: int, kind: str, op: str, data: dict[str, Any]) -> dict[str, Any]:
        return {"seq": i, "time": f"2026-11-30T10:{i:02d}:00.000000Z", "run": "R2", "operator": op, "type": kind,
                "data": data, "future_field": {"x": 1}}

    records = [rec(0, "run.started", "oncall", {"runbook": "on-call-incident", "title": "On-call", "environment": "prod",
                                                "params": {}, "new_thing": True}),
               rec(1, "session.started", "oncall", {"resume": False, "host": "pager"}),
               rec(2, "lock.takeover", "oncall", {"key": "prod", "reason": "API answers 500", "from_run": "R1",
                                                  "from_operator": "alice"}),
               rec(3, "step.started", "oncall", {"step": "hosts[0]", "title": "Drain host a"}),
               rec(4, "prompt.answered", "oncall", {"id": "hosts[0].drained", "kind": "manual", "question": "Drained?",
                                                    "answer": {"done": True}, "source": "interactive", "by": "oncall"}),
               rec(5, "item.result", "oncall", {"step": "hosts[0]", "item": "drained", "manual": True, "passed": True,
                                                "summary": "done"}),
               # killed here: no record; a new session resumes it
               rec(9, "session.started", "bob", {"resume": True, "host": "laptop"}),
               rec(10, "step.finished", "bob", {"step": "hosts[0]", "status": "succeeded"}),
               rec(11, "run.succeeded", "bob", {"deviations": 1, "ended_at": "hosts[0]"})]
    run = view(records)
    assert run.takeovers[0]["from_run"] == "R1" and run.deviations[0]["kind"] == "emergency lock takeover"
    [item] = run.steps[0].items
    assert (item.text, item.answered_by) == ("Drained?", "oncall")
    second = run.sessions[1]
    assert second["gap_s"] == 4 * 60 and second["after"].startswith("stopped without a record")
    assert [s["kind"] for s in run.steps[0].segments] == ["person", "gap", "work"]
    text = report.text(run, "ok")
    assert "took lock 'prod' from run R1 (alice): API answers 500" in text
    assert "Drained? [drained]: yes (by oncall at 10:04:00, interactive)" in text
    assert "resumed after 4m00s (the previous session ended: stopped without a record" in text
    page = report.html_report(run, "ok", {}, [], [])
    assert "Lock takeovers" in page and "R1" in page and "Drain host a" in page
