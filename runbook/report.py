"""Rendering a run for people: the text of `audit.show`, Markdown and self-contained HTML exports."""

from __future__ import annotations

import html
import json
from typing import Any

from .errors import RunbookError
from .review import RunView, parse_time


def _dur(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def _params(run: RunView) -> dict[str, Any]:
    shown: dict[str, Any] = dict(run.params)
    for name in run.secret_params:
        shown[name] = "******** (secret)"
    return shown


def text(run: RunView, verified: str) -> str:
    """What `invoke audit.show RUN_ID` prints."""
    out = [f"Run {run.run_id}: {run.runbook} ({run.title})",
           f"  environment: {run.environment or '-'}    status: {run.outcome}"
           + (f" ({run.reason})" if run.reason else ""),
           f"  started: {run.started}    ended: {run.ended or '-'}    duration: {_dur(run.duration)}",
           f"  operators: {', '.join(run.operators)}    sessions: {len(run.sessions)}",
           f"  digest: {run.digest}",
           f"  journal: {verified}",
           "  parameters: " + (", ".join(f"{k}={v}" for k, v in _params(run).items()) or "none")]
    if run.parent:
        out.append(f"  linked from: run {run.parent.get('run')} (step {run.parent.get('step')})")
    for child in run.children:
        out.append(f"  linked run: {child['run']} {child.get('runbook') or ''} ({child.get('status')}) "
                   f"from step {child.get('step')}")
    out.append("  steps:")
    for step in run.steps:
        out.append(f"    {step.id}: {step.status}  started {step.started[11:19] if step.started else '-'}  "
                   f"took {_dur(step.duration)}" + (f"  -- {step.reason}" if step.reason else ""))
        for item in step.items:
            mark = "skipped" if item.skipped else "ok" if item.passed else "FAILED"
            line = f"      {mark:<7} {item.key}"
            if item.uses:
                line += f" ({item.uses})"
            line += f": {item.summary}"
            if item.reason:
                line += f" [reason: {item.reason}]"
            if item.attempts > 1:
                line += f" [{item.attempts} attempts]"
            out.append(line)
            if not item.passed and not item.skipped and item.evidence:
                out.append("              evidence: " + json.dumps(item.evidence, sort_keys=True, default=str)[:600])
    if run.prompts:
        out.append("  prompts:")
        for p in run.prompts:
            out.append(f"    {p['time'][11:19]} {p['id']}: {json.dumps(p['answer'], sort_keys=True)} by {p['by']} "
                       f"({p['source']})" + (f" REFUSED: {p['refused']}" if p.get("refused") else ""))
    if run.approvals:
        out.append("  approvals:")
        for a in run.approvals:
            sha = f" at {a['head_sha'][:12]}" if a.get("head_sha") else ""
            out.append(f"    {a['step']}: {', '.join(a['approvers'])}{sha}"
                       f" ({'verified on GitHub' if a['verified'] else 'unverified prompt approval'})")
    if run.deviations:
        out.append("  deviations from the runbook:")
        for d in run.deviations:
            out.append(f"    {d['time'][11:19]} {d['kind']}{' in ' + d['step'] if d['step'] else ''}: {d['detail']}")
    if run.notes:
        out.append("  notes (retries, recoveries, offers; not deviations):")
        for d in run.notes:
            out.append(f"    {d['time'][11:19]} {d['kind']}{' in ' + d['step'] if d['step'] else ''}: {d['detail']}")
    return "\n".join(out) + "\n"


def markdown(run: RunView, verified: str, events: list[str], links: dict[str, Any]) -> str:
    """A report that reads well as a GitHub issue."""
    md = [f"# {run.runbook} run `{run.run_id}`: {run.outcome}", ""]
    md += ["| | |", "|---|---|",
           f"| Runbook | {run.runbook}: {run.title} |",
           f"| Environment | {run.environment or '-'} |",
           f"| Status | **{run.outcome}**" + (f" ({_esc(run.reason)})" if run.reason else "") + " |",
           f"| Started / ended | {run.started} / {run.ended or '-'} ({_dur(run.duration)}) |",
           f"| Operators | {', '.join(run.operators)} |",
           f"| Plan digest | `{run.digest[:16]}` |",
           f"| Journal | {verified} |", ""]
    md += ["## Parameters", ""] + [f"- `{k}`: `{v}`" for k, v in _params(run).items()] + [""]
    if links.get("parent") or links.get("children") or links.get("rolled_back"):
        md += ["## Linked runs", ""]
        if links.get("parent"):
            md.append(f"- Started from run `{links['parent']['run']}` ({links['parent'].get('runbook', '')}, "
                      f"step {links['parent'].get('step')})")
        for c in links.get("children", []):
            md.append(f"- Linked run `{c['run']}` ({c.get('runbook') or ''}): {c.get('status')}")
        for r in links.get("rolled_back", []):
            md.append(f"- Rolls back release run `{r['run']}` ({r.get('runbook')}, version {r.get('version') or '-'})")
        md.append("")
    md += ["## Steps", "", "| Step | Status | Started | Duration | Notes |", "|---|---|---|---|---|"]
    for s in run.steps:
        md.append(f"| {s.id} | {s.status} | {s.started[11:19] if s.started else '-'} | {_dur(s.duration)} | "
                  f"{_esc(s.reason)} |")
    md.append("")
    if run.approvals:
        md += ["## Approvals", ""]
        for a in run.approvals:
            sha = f" at `{a['head_sha'][:12]}`" if a.get("head_sha") else ""
            md.append(f"- **{a['step']}**: {', '.join(a['approvers'])}{sha} "
                      f"({'verified on GitHub' if a['verified'] else 'unverified prompt approval'})")
        md.append("")
    failed = [(s, i) for s in run.steps for i in s.items if i.passed is False and not i.skipped]
    if failed:
        md += ["## Failed checks", ""]
        for s, i in failed:
            md += [f"- **{s.id}.{i.key}** ({i.uses}): {_esc(i.summary)}", "",
                   "  ```json", "  " + json.dumps(i.evidence, sort_keys=True, default=str)[:1500], "  ```"]
        md.append("")
    if run.deviations:
        md += ["## Deviations from the runbook", ""]
        md += [f"- {d['time'][11:19]} **{d['kind']}**{' in ' + d['step'] if d['step'] else ''}: {_esc(d['detail'])}"
               for d in run.deviations]
        md.append("")
    if run.notes:
        md += ["## Notes (retries, recoveries, offers)", ""]
        md += [f"- {d['time'][11:19]} **{d['kind']}**{' in ' + d['step'] if d['step'] else ''}: {_esc(d['detail'])}"
               for d in run.notes]
        md.append("")
    if run.prompts:
        md += ["## Answers", ""]
        md += [f"- `{p['id']}`: `{json.dumps(p['answer'], sort_keys=True)}` by {p['by']} ({p['source']})"
               + (f" **refused: {p['refused']}**" if p.get("refused") else "") for p in run.prompts]
        md.append("")
    md += ["## Timeline", "", "```"] + events + ["```", ""]
    return "\n".join(md)


def _esc(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


# -- HTML with an inline SVG timeline --------------------------------------------------

COLORS = {"succeeded": "#2e7d32", "failed": "#c62828", "skipped": "#9e9e9e", "running": "#f9a825"}


def svg_timeline(runs: list[RunView], links: list[tuple[str, str]]) -> str:
    """Steps as bars over time, one row per step, failures marked, lines linking related runs."""
    rows = [(run, step) for run in runs for step in run.steps]
    times = [parse_time(t) for run in runs for t in (run.started, run.ended) if t]
    times += [parse_time(t) for _, s in rows for t in (s.started, s.finished) if t]
    if not times:
        return '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>'
    t0, t1 = min(times), max(times)
    span = max((t1 - t0).total_seconds(), 1.0)
    label_w, chart_w, row_h = 260, 640, 22
    height = 40 + row_h * len(rows)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + chart_w + 20}" height="{height}" '
             f'viewBox="0 0 {label_w + chart_w + 20} {height}" font-family="sans-serif" font-size="12" '
             f'role="img" aria-label="timeline">',
             f'<rect x="0" y="0" width="{label_w + chart_w + 20}" height="{height}" fill="#ffffff"/>',
             f'<text x="{label_w}" y="16" fill="#333">{html.escape(t0.strftime("%H:%M:%S"))}</text>',
             f'<text x="{label_w + chart_w}" y="16" text-anchor="end" fill="#333">'
             f'{html.escape(t1.strftime("%H:%M:%S"))} ({_dur(span)})</text>']
    anchors: dict[str, float] = {}
    for n, (run, step) in enumerate(rows):
        y = 28 + n * row_h
        start = parse_time(step.started) if step.started else t0
        end = parse_time(step.finished) if step.finished else (parse_time(run.ended) if run.ended else t1)
        x = label_w + chart_w * (start - t0).total_seconds() / span
        w = max(3.0, chart_w * (end - start).total_seconds() / span)
        color = COLORS.get(step.status, "#1565c0")
        anchors.setdefault(run.run_id, y + row_h / 2)
        label = f"{run.runbook}: {step.id}" if len(runs) > 1 else step.id
        parts.append(f'<text x="4" y="{y + 14}" fill="#222">{html.escape(label[:40])}</text>')
        parts.append(f'<rect class="bar" data-step="{html.escape(step.id)}" data-run="{html.escape(run.run_id)}" '
                     f'x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="{row_h - 6}" fill="{color}" rx="2">'
                     f'<title>{html.escape(step.id)}: {html.escape(step.status)} ({_dur(step.duration)})</title></rect>')
        if step.status == "failed":
            parts.append(f'<text class="failure" x="{x + w + 4:.1f}" y="{y + 15}" fill="#c62828" '
                         f'font-weight="bold">✗</text>')
    for a, b in links:
        if a in anchors and b in anchors:
            parts.append(f'<line class="link" x1="{label_w - 6}" y1="{anchors[a]:.1f}" x2="{label_w - 6}" '
                         f'y2="{anchors[b]:.1f}" stroke="#6a1b9a" stroke-width="2" stroke-dasharray="4 2"/>')
    parts.append("</svg>")
    return "".join(parts)


def html_report(run: RunView, verified: str, md_text: str, related: list[RunView], links: list[tuple[str, str]]) -> str:
    """One self-contained HTML file: no scripts, no external resources."""
    body = html.escape(md_text)
    svg = svg_timeline([run] + related, links)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{html.escape(run.runbook)} {html.escape(run.run_id)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
h1 {{ font-size: 1.4em; }} pre {{ background: #f6f8fa; padding: 1em; overflow-x: auto; white-space: pre-wrap; }}
.status-{html.escape(run.status)} {{ font-weight: bold; }}
</style></head><body>
<h1>{html.escape(run.runbook)} run {html.escape(run.run_id)}: <span class="status-{html.escape(run.status)}">{html.escape(run.status)}</span></h1>
<p>Environment {html.escape(run.environment or '-')} · operators {html.escape(', '.join(run.operators))} · journal {html.escape(verified)}</p>
<h2>Timeline</h2>
<figure id="timeline">{svg}</figure>
<h2>Report</h2>
<pre>{body}</pre>
</body></html>
"""


# -- what the exports gather -----------------------------------------------------------

def verified_text(store: Any, run_id: str) -> str:
    """One line: the run's chain (and its ledger marks) verified, or the first problems."""
    from .audit import verify

    report = verify(store, run_id, whole_ledger=False)
    return "chain verified" if report.ok else "VERIFICATION FAILED: " + "; ".join(map(str, report.problems[:3]))


def export_data(store: Any, run_id: str) -> tuple[Any, str, dict[str, Any], list[Any], list[tuple[str, str]]]:
    """A run, its verification, its links (parent, children, the release it rolled back) and related runs."""
    from .review import load_view

    run = load_view(store, run_id)
    verified = verified_text(store, run.run_id)
    links: dict[str, Any] = {"children": run.children}
    related, edges = [], []
    if run.parent:
        parent = load_view(store, run.parent["run"])
        links["parent"] = {**run.parent, "runbook": parent.runbook}
        related.append(parent)
        edges.append((parent.run_id, run.run_id))
    release = run.params.get("release_run")
    if release:
        try:
            undone = load_view(store, str(release))
            links["rolled_back"] = [{"run": undone.run_id, "runbook": undone.runbook, "version": undone.version}]
            if undone.run_id not in [r.run_id for r in related]:
                related.append(undone)
            edges.append((undone.run_id, run.run_id))
        except RunbookError:
            links["rolled_back"] = [{"run": release, "runbook": "(not in this state home)", "version": ""}]
    for child in run.children:
        try:
            related.append(load_view(store, child["run"]))
            edges.append((run.run_id, child["run"]))
        except RunbookError:
            continue
    return run, verified, links, related, edges


def export_markdown(store: Any, run_id: str) -> str:
    """A run's Markdown report."""
    from . import report
    from .review import describe

    run, verified, links, _, _ = export_data(store, run_id)
    events = [f"{e['time'][11:19]} {e.get('operator', '')}: {describe(e)}" for e in run.events]
    return report.markdown(run, verified, events, links)
