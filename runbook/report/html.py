"""A run as one self-contained HTML page (inline CSS and the SVG timeline, no network)."""

from __future__ import annotations

import json
from typing import Any

from ..prompts import answer_text
from ..review import RunView
from .common import clock_time, duration, esc_html, hms, shown_params, symbol
from .timeline import svg_timeline


LEGEND = ("<p class=\"legend\"><strong>Reading the timeline:</strong> a row per step, its title first and its id "
          "below; ✓ succeeded, ✗ failed (red, marked “✗ failed” where it failed), – skipped. Solid bars are work, "
          "striped bars a wait on another system (a rollout, a pipeline, a monitoring window), outlined bars a wait "
          "for a person (a checklist, a confirmation, an approval), dashed lines time without a session (an "
          "interruption or a parked run). Blue dashed arrows lead from the step that started a linked run.</p>")


CSS = """
@page { size: A4; margin: 12mm 11mm; }
* { box-sizing: border-box; }
body { font: 15px/1.45 "DejaVu Sans", "Liberation Sans", Arial, sans-serif; color: #161616; background: #ffffff;
       max-width: 62rem; margin: 1.2rem auto; padding: 0 1rem; }
h1 { font-size: 1.45rem; margin: .2rem 0 .4rem; overflow-wrap: anywhere; }
h2 { font-size: 1.15rem; margin: 1.6rem 0 .4rem; border-bottom: 2px solid #d0d4d8; padding-bottom: .15rem; }
h3 { font-size: 1rem; margin: 1rem 0 .3rem; }
table { border-collapse: collapse; width: 100%; margin: .3rem 0 .8rem; }
th, td { border: 1px solid #c4c8cc; padding: .25rem .45rem; text-align: left; vertical-align: top;
         overflow-wrap: break-word; }
td.long { overflow-wrap: anywhere; }
time { white-space: nowrap; }
thead th { background: #e8ebee; }
tbody.step th[scope=rowgroup] { background: #f3f5f7; font-weight: bold; }
tr.failed td, tr.failed th { background: #fdecea; }
code, .id { font-family: "DejaVu Sans Mono", "Liberation Mono", monospace; font-size: .85em; overflow-wrap: anywhere;
            color: #37474f; }
.status { font-weight: bold; }
.s-failed, .s-FAILED, .s-rolled-back { color: #b71c1c; }
.s-succeeded, .s-ok, .s-done { color: #1b5e20; }
.s-skipped, .s-not.done { color: #5d4037; }
pre { white-space: pre-wrap; overflow-wrap: anywhere; background: #f6f8fa; border: 1px solid #dde1e4;
      padding: .4rem .6rem; margin: .2rem 0; font-size: .8rem; }
figure { margin: .4rem 0; }
svg.timeline { width: 100%; height: auto; display: block; border: 1px solid #d0d4d8; }
.legend { font-size: .85rem; color: #333; }
.summary { border-left: 5px solid #b71c1c; background: #fff8f7; padding: .4rem .8rem; }
.summary.ok { border-left-color: #2e7d32; background: #f5fbf5; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .15rem 1rem; margin: .4rem 0; }
dl.facts dt { font-weight: bold; } dl.facts dd { margin: 0; overflow-wrap: anywhere; }
@media print {
  body { max-width: none; margin: 0; padding: 0; font-size: 10pt; }
  h2 { break-after: avoid; } tr, figure, .summary { break-inside: avoid; }
  thead { display: table-header-group; }
  a { color: inherit; text-decoration: none; }
}
"""


def status_badge(status: str, text: str | None = None) -> str:
    return f'<span class="status s-{esc_html(status.replace(" ", "."))}">{esc_html(symbol(status))} {esc_html(text or status)}</span>'


def fact_list(pairs: list[tuple[str, str]]) -> str:
    """A definition list: label, value (already HTML)."""
    return '<dl class="facts">' + "".join(f"<dt>{esc_html(k)}</dt><dd>{v}</dd>" for k, v in pairs) + "</dl>"


def table(head: list[str], rows: list[list[str]], cls: str = "", long: int = -1) -> str:
    """A table; cells are already HTML; the ``long`` column may break anywhere (URLs, ids)."""
    long = long % len(head)
    return (f'<table{f" class={chr(34)}{cls}{chr(34)}" if cls else ""}><thead><tr>'
            + "".join(f'<th scope="col">{esc_html(h)}</th>' for h in head) + "</tr></thead><tbody>"
            + "".join("<tr>" + "".join(f'<td class="long">{c}</td>' if n == long else f"<td>{c}</td>"
                                       for n, c in enumerate(row)) + "</tr>" for row in rows)
            + "</tbody></table>")


def step_name(step: Any) -> str:
    return f'{esc_html(step.name)}' + (f' <span class="id">{esc_html(step.id)}</span>' if step.title else "")


def item_cells(item: Any) -> tuple[str, str]:
    """An item's name and what it found (a manual item: its text; its answer, evidence, who, when)."""
    if item.kind == "manual":
        name = f'{esc_html(item.text or item.key)} <span class="id">{esc_html(item.key)}</span>'
        if item.answer is not None:
            said = (f"{esc_html(answer_text(item.answer))}<br><small>by {esc_html(item.answered_by or '-')} at "
                    f"{clock_time(item.answered_at)}{' via ' + esc_html(item.source) if item.source else ''}</small>")
        else:
            said = esc_html(item.summary)
        if item.reason and "reason" not in answer_text(item.answer):
            said += f"<br>reason: {esc_html(item.reason)}"
        return name, said
    name = f'{esc_html(item.key)}' + (f' <span class="id">{esc_html(item.uses)}</span>' if item.uses else "")
    found = esc_html(item.summary)
    if item.reason:
        found += f"<br>reason: {esc_html(item.reason)}"
    if item.attempts > 1:
        found += f" <small>({item.attempts} attempts)</small>"
    if item.recovered:
        found += f" <small>(recovered after an interruption: {esc_html(item.recovered)})</small>"
    if item.passed is False and not item.skipped and item.evidence:
        found += f"<pre>{esc_html(json.dumps(item.evidence, sort_keys=True, indent=1, default=str)[:2000])}</pre>"
    return name, found


def run_sections(run: RunView, verified: str, links: dict[str, Any], level: int = 2,
                 events: list[dict[str, Any]] | None = None, anchor: str = "") -> str:
    """A run's sections (semantic headings and tables); ``level`` is its sections' heading level, ``anchor``
    prefixes their ids (several runs on one page)."""
    h = f"h{level}"
    out: list[str] = []
    failures = run.failures
    if failures or run.status in ("failed", "rolled-back"):
        rows = []
        for s, i in failures:
            rows.append([clock_time(i.time), step_name(s), f"{esc_html(i.key)} <span class=\"id\">{esc_html(i.uses)}</span>",
                         f"<strong>✗</strong> {esc_html(i.summary)}"])
        for s in run.steps:
            if s.status == "failed" and not any(s is f for f, _ in failures):
                rows.append([clock_time(s.finished), step_name(s), "-", f"<strong>✗</strong> {esc_html(s.reason)}"])
        out.append(f'<section class="failures" id="{anchor}failures"><{h}>What failed</{h}>'
                   + (table(["Time", "Step", "Check", "Expected / found / where"], rows, "failures", 3) if rows else
                      f"<p>{esc_html(run.reason or run.status)}</p>")
                   + "</section>")
    # steps and their items
    parts = ['<table class="steps"><thead><tr><th scope="col">Result</th><th scope="col">Item</th>'
             '<th scope="col">Found, answered</th><th scope="col">Time</th></tr></thead>']
    for s in run.steps:
        head = (f'{status_badge(s.status)} · {step_name(s)} · started {clock_time(s.started)}, took {esc_html(duration(s.duration))}'
                + (f" · {esc_html(s.reason)}" if s.reason else ""))
        parts.append(f'<tbody class="step" data-step="{esc_html(s.id)}"><tr class="{ "failed" if s.status == "failed" else "" }">'
                     f'<th scope="rowgroup" colspan="4">{head}</th></tr>')
        for i in s.items:
            name, found = item_cells(i)
            cls = "failed" if i.passed is False and not i.skipped else ""
            parts.append(f'<tr class="{cls}"><td>{status_badge(i.mark.replace(" ", "."), i.mark)}</td><td>{name}</td>'
                         f'<td class="long">{found}</td><td>{clock_time(i.time)}</td></tr>')
        for p in s.prompts:
            parts.append(f'<tr><td>{status_badge("asked", "asked")}</td><td>{esc_html(p.get("question") or p["id"])} '
                         f'<span class="id">{esc_html(p["id"])}</span></td><td class="long">{esc_html(answer_text(p["answer"]))}<br>'
                         f'<small>by {esc_html(p["by"])} via {esc_html(p["source"])}</small>'
                         + (f'<br><strong>refused:</strong> {esc_html(p["refused"])}' if p.get("refused") else "")
                         + f"</td><td>{clock_time(p['time'])}</td></tr>")
        parts.append("</tbody>")
    parts.append("</table>")
    out.append(f'<section class="steps" id="{anchor}steps"><{h}>Steps</{h}>' + "".join(parts) + "</section>")
    manual = [(s, i) for s in run.steps for i in s.items if i.kind == "manual"]
    if manual:
        rows = [[esc_html(s.name), f'{esc_html(i.text or i.key)} <span class="id">{esc_html(s.id)}.{esc_html(i.key)}</span>',
                 status_badge("succeeded" if i.passed else "skipped", answer_text(i.answer) if i.answer is not None
                         else i.summary), esc_html(i.answered_by or "-"), clock_time(i.answered_at or i.time), esc_html(i.source)]
                for s, i in manual]
        out.append(f'<section class="checklist" id="{anchor}checklist"><{h}>Checklist answers</{h}>'
                   + table(["Step", "Item", "Answer and evidence", "By", "When", "Source"], rows, "answers", 2)
                   + "</section>")
    others = [p for p in run.prompts if p.get("kind") != "manual" and run.step_of(str(p["id"])) is None]
    if others:
        rows = [[clock_time(p["time"]), f'{esc_html(p.get("question") or p["id"])} <span class="id">{esc_html(p["id"])}</span>',
                 esc_html(answer_text(p["answer"])), esc_html(p["by"]), esc_html(p["source"])] for p in others]
        out.append(f'<section class="decisions" id="{anchor}decisions"><{h}>Run-level decisions</{h}>'
                   + table(["Time", "Question", "Answer", "By", "Source"], rows) + "</section>")
    if run.approvals:
        rows = [[esc_html(a["step"]), esc_html(", ".join(a["approvers"])), f'<code>{esc_html(a.get("head_sha", "")[:12])}</code>',
                 esc_html("verified on GitHub" if a["verified"] else "unverified prompt approval")] for a in run.approvals]
        out.append(f'<section class="approvals" id="{anchor}approvals"><{h}>Approvals</{h}>'
                   + table(["Step", "Approvers", "Head", "Verified"], rows) + "</section>")
    if run.deviations:
        rows = [[clock_time(d["time"]), esc_html(d["kind"]), esc_html(d["step"] or "-"), esc_html(d["detail"])] for d in run.deviations]
        out.append(f'<section class="deviations" id="{anchor}deviations"><{h}>Deviations from the runbook</{h}>'
                   f"<p>The run went on without what the runbook asked for {len(run.deviations)} time(s).</p>"
                   + table(["Time", "Deviation", "Step", "Detail"], rows) + "</section>")
    if run.notes:
        rows = [[clock_time(d["time"]), esc_html(d["kind"]), esc_html(d["step"] or "-"), esc_html(d["detail"])] for d in run.notes]
        out.append(f'<section class="notes" id="{anchor}notes"><{h}>Notes (retries, recoveries, offers; not deviations)</{h}>'
                   + table(["Time", "Note", "Step", "Detail"], rows) + "</section>")
    if run.sessions:
        rows = []
        for n, sess in enumerate(run.sessions, 1):
            how = "started the run" if not sess.get("resume") else (
                f"resumed after {duration(sess.get('gap_s'))}" + (f" (the previous session ended: {sess['after']})"
                                                              if sess.get("after") else ""))
            rows.append([str(n), clock_time(sess["time"]), esc_html(sess.get("operator") or "-"), esc_html(sess.get("host") or "-"),
                         esc_html(how), esc_html((hms(sess["ended"]) + " " + (sess.get("end") or "")) if sess.get("ended") else "-")])
        out.append(f'<section class="sessions" id="{anchor}sessions"><{h}>Sessions and interruptions</{h}>'
                   + table(["#", "Started", "Operator", "Host", "How", "Ended"], rows) + "</section>")
    if run.takeovers:
        rows = [[clock_time(t["time"]), esc_html(t.get("by") or "-"), f"<code>{esc_html(t.get('key'))}</code>",
                 f"<code>{esc_html(t.get('from_run') or '-')}</code> ({esc_html(t.get('from_operator') or '-')})", esc_html(t.get("reason"))]
                for t in run.takeovers]
        out.append(f'<section class="takeovers" id="{anchor}takeovers"><{h}>Lock takeovers</{h}>'
                   + table(["Time", "By", "Lock", "Taken from run", "Reason"], rows) + "</section>")
    link_rows = []
    if links.get("parent"):
        p = links["parent"]
        link_rows.append(["started by", f"<code>{esc_html(p.get('run'))}</code>", esc_html(p.get("runbook", "")),
                          f"step <code>{esc_html(p.get('step'))}</code>", "-"])
    for c in links.get("children", run.children):
        link_rows.append(["started", f"<code>{esc_html(c.get('run'))}</code>", esc_html(c.get("runbook") or ""),
                          f"step <code>{esc_html(c.get('step'))}</code> at {clock_time(c.get('started', ''))}",
                          status_badge(str(c.get("status") or "running"))])
    for r in links.get("rolled_back", []):
        link_rows.append(["rolls back", f"<code>{esc_html(r['run'])}</code>", esc_html(r.get("runbook")),
                          f"version {esc_html(r.get('version') or '-')}", "-"])
    if run.rolled_back_by:
        link_rows.append(["rolled back by", f"<code>{esc_html(run.rolled_back_by)}</code>", "", "", "-"])
    if link_rows:
        out.append(f'<section class="links" id="{anchor}links"><{h}>Linked runs</{h}>'
                   + table(["Link", "Run", "Runbook", "Where", "Status"], link_rows) + "</section>")
    params = shown_params(run)
    if params:
        out.append(f'<section class="params" id="{anchor}params"><{h}>Parameters</{h}>'
                   + table(["Name", "Value"], [[f"<code>{esc_html(k)}</code>", f"<code>{esc_html(v)}</code>"]
                                                for k, v in params.items()]) + "</section>")
    if events:
        rows = [[clock_time(e["time"]), esc_html(e.get("operator") or ""), esc_html(e["text"])] for e in events]
        out.append(f'<section class="journal" id="{anchor}journal"><{h}>Journal, in brief</{h}>'
                   + table(["Time", "Who", "What"], rows) + "</section>")
    return "".join(out)


def page(title: str, body: str) -> str:
    """A self-contained HTML page: inline CSS and SVG, no scripts, nothing from the network."""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{esc_html(title)}</title>\n<style>{CSS}</style></head>\n<body>\n{body}\n</body></html>\n")


def html_report(run: RunView, verified: str, links: dict[str, Any], related: list[RunView], edges: list[Any],
                events: list[dict[str, Any]] | None = None) -> str:
    """One run's report as one self-contained HTML file."""
    facts = [("Runbook", f"{esc_html(run.name)} <span class=\"id\">{esc_html(run.runbook)}</span>"),
             ("Outcome", status_badge(run.status, run.outcome) + (f" — {esc_html(run.reason)}" if run.reason else "")),
             ("Environment", esc_html(run.environment or "-")),
             ("Started / ended", f"{esc_html(run.started)} / {esc_html(run.ended or '-')} ({esc_html(duration(run.duration))})"),
             ("Operators", esc_html(", ".join(run.operators) or "-")),
             ("Sessions", esc_html(f"{len(run.sessions)}" + (f", {len(run.interruptions)} resume(s)"
                                                         if run.interruptions else ""))),
             ("Plan digest", f"<code>{esc_html(run.digest[:16])}</code>"),
             ("Journal", esc_html(verified))]
    if run.version:
        facts.insert(2, ("Version", esc_html(run.version)))
    body = (f'<header><h1>{esc_html(run.name)}: run <span class="id">{esc_html(run.run_id)}</span></h1>'
            f'<p class="summary{" ok" if run.status == "succeeded" else ""}">{status_badge(run.status, run.outcome)}'
            + (f" — {esc_html(run.reason)}" if run.reason else "") + "</p></header>"
            f'<section class="facts"><h2>Summary</h2>{fact_list(facts)}</section>'
            f'<section class="timeline"><h2>Timeline</h2><figure id="timeline">'
            f"{svg_timeline([run] + related, edges)}<figcaption>{LEGEND}</figcaption></figure></section>"
            + run_sections(run, verified, links, events=events))
    return page(f"{run.name} — {run.run_id}: {run.outcome}", body)
