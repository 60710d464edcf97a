"""A run as Markdown (`audit.export --format md`)."""

from __future__ import annotations

import json
from typing import Any

from ..prompts import answer_text
from ..review import RunView
from .common import duration, hms, session_lines, shown_params, symbol, takeover_line


def markdown(run: RunView, verified: str, events: list[str], links: dict[str, Any]) -> str:
    """A report that reads well as a GitHub issue."""
    md = [f"# {run.runbook} run `{run.run_id}`: {run.outcome}", ""]
    md += ["| | |", "|---|---|",
           f"| Runbook | {run.runbook}: {esc_md(run.title)} |",
           f"| Environment | {run.environment or '-'} |",
           f"| Status | **{symbol(run.status)} {run.outcome}**" + (f" ({esc_md(run.reason)})" if run.reason else "") + " |",
           f"| Started / ended | {run.started} / {run.ended or '-'} ({duration(run.duration)}) |",
           f"| Operators | {', '.join(run.operators)} |",
           f"| Plan digest | `{run.digest[:16]}` |",
           f"| Journal | {verified} |", ""]
    md += ["## Parameters", ""] + [f"- `{k}`: `{v}`" for k, v in shown_params(run).items()] + [""]
    md += markdown_links(links)
    failed = run.failures
    if failed:
        md += ["## What failed", "", "| Time | Step | Check | Expected / found / where |", "|---|---|---|---|"]
        for s, i in failed:
            md.append(f"| {hms(i.time)} | {esc_md(s.name)} (`{s.id}`) | {esc_md(i.key)}"
                      + (f" ({i.uses})" if i.uses else "") + f" | {esc_md(i.summary)} |")
        md.append("")
        md += ["## Failed checks", ""]
        for s, i in failed:
            md += [f"- **{s.id}.{i.key}** ({i.uses}): {esc_md(i.summary)}", "",
                   "  ```json", "  " + json.dumps(i.evidence, sort_keys=True, default=str)[:1500], "  ```"]
        md.append("")
    md += ["## Steps", "", "| Step | Status | Started | Duration | Notes |", "|---|---|---|---|---|"]
    for s in run.steps:
        md.append(f"| {esc_md(s.name)} (`{s.id}`) | {symbol(s.status)} {s.status} | {hms(s.started)} | "
                  f"{duration(s.duration)} | {esc_md(s.reason)} |")
    md.append("")
    manual = [(s, i) for s in run.steps for i in s.items if i.kind == "manual"]
    if manual:
        md += ["## Checklist", "", "| Step | Item | Answer | By | When | Source |", "|---|---|---|---|---|---|"]
        for s, i in manual:
            md.append(f"| {esc_md(s.name)} | {esc_md(i.text or i.key)} (`{i.key}`) | "
                      f"{esc_md(answer_text(i.answer) if i.answer is not None else i.summary)} | {esc_md(i.answered_by)} | "
                      f"{hms(i.answered_at or i.time)} | {esc_md(i.source)} |")
        md.append("")
    if run.approvals:
        md += ["## Approvals", ""]
        for a in run.approvals:
            sha = f" at `{a['head_sha'][:12]}`" if a.get("head_sha") else ""
            md.append(f"- **{a['step']}**: {', '.join(a['approvers'])}{sha} "
                      f"({'verified on GitHub' if a['verified'] else 'unverified prompt approval'})")
        md.append("")
    if run.deviations:
        md += ["## Deviations from the runbook", ""]
        md += [f"- {hms(d['time'])} **{d['kind']}**{' in ' + d['step'] if d['step'] else ''}: {esc_md(d['detail'])}"
               for d in run.deviations]
        md.append("")
    if run.notes:
        md += ["## Notes (retries, recoveries, offers)", ""]
        md += [f"- {hms(d['time'])} **{d['kind']}**{' in ' + d['step'] if d['step'] else ''}: {esc_md(d['detail'])}"
               for d in run.notes]
        md.append("")
    if len(run.sessions) > 1 or run.takeovers:
        md += ["## Sessions and interruptions", ""] + [f"- {esc_md(line)}" for line in session_lines(run)]
        md += [f"- lock takeover: {esc_md(takeover_line(t))}" for t in run.takeovers] + [""]
    if run.prompts:
        md += ["## Answers", ""]
        md += [f"- `{p['id']}`" + (f" ({esc_md(p['question'])})" if p.get("question") else "")
               + f": {esc_md(answer_text(p['answer']))} by {p['by']} ({p['source']})"
               + (f" **refused: {p['refused']}**" if p.get("refused") else "") for p in run.prompts]
        md.append("")
    md += ["## Timeline", "", "```"] + events + ["```", ""]
    return "\n".join(md)


def markdown_links(links: dict[str, Any]) -> list[str]:
    md: list[str] = []
    if links.get("parent") or links.get("children") or links.get("rolled_back") or links.get("rolled_back_by"):
        md += ["## Linked runs", ""]
        if links.get("parent"):
            md.append(f"- Started from run `{links['parent']['run']}` ({links['parent'].get('runbook', '')}, "
                      f"step {links['parent'].get('step')})")
        for c in links.get("children", []):
            md.append(f"- Linked run `{c['run']}` ({c.get('runbook') or ''}): {c.get('status')}"
                      + (f", started by step `{c['step']}` at {hms(c.get('started', ''))}" if c.get("step") else ""))
        for r in links.get("rolled_back", []):
            md.append(f"- Rolls back release run `{r['run']}` ({r.get('runbook')}, version {r.get('version') or '-'})")
        if links.get("rolled_back_by"):
            md.append(f"- Rolled back by run `{links['rolled_back_by']}`")
        md.append("")
    return md


def esc_md(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")
