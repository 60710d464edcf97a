"""Rendering a run for people: the text of `audit.show`, Markdown and self-contained HTML exports."""

from __future__ import annotations

import html
import json
from datetime import datetime, timezone
from typing import Any

from .errors import RunbookError
from .prompts import answer_text
from .review import RunView, parse_time


def _dur(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds >= 3600:
        return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def _params(run: RunView) -> dict[str, Any]:
    shown: dict[str, Any] = dict(run.params)
    for name in run.secret_params:
        shown[name] = "******** (secret)"
    return shown


def _hms(when: str) -> str:
    return when[11:19] if when else "-"


def _since(start: str, end: str) -> float | None:
    if not start or not end:
        return None
    return (parse_time(end) - parse_time(start)).total_seconds()


SYMBOL = {"succeeded": "✓", "failed": "✗", "skipped": "–", "running": "…", "rolled-back": "↺", "parked": "⏸",
          "interrupted": "⏸", "abandoned": "⊘", "ok": "✓", "done": "✓", "FAILED": "✗", "not done": "⚠",
          "not.done": "⚠", "asked": "?"}


def symbol(status: str) -> str:
    return SYMBOL.get(status, "•")


def item_label(item: Any) -> str:
    """A manual item by its text (its key beside it); a check or action by its key and plugin."""
    if item.kind == "manual" and item.text:
        return f"{item.text} [{item.key}]"
    return item.key + (f" ({item.uses})" if item.uses else "")


def session_lines(run: RunView) -> list[str]:
    """Each session: who, where, how it ended; a resume says after how long."""
    out = []
    for n, s in enumerate(run.sessions, 1):
        head = f"{n}. {_hms(s['time'])} {s.get('operator') or '-'} on {s.get('host') or '-'}"
        if s.get("resume"):
            head += f" resumed after {_dur(s.get('gap_s'))}"
            if s.get("after"):
                head += f" (the previous session ended: {s['after']})"
        if s.get("ended"):
            head += f"; ended {_hms(s['ended'])} {s.get('end') or ''}".rstrip()
        out.append(head)
    return out


def takeover_line(t: dict[str, Any]) -> str:
    return (f"{_hms(t['time'])} {t.get('by') or '-'} took lock {t.get('key')!r} from run {t.get('from_run') or '-'} "
            f"({t.get('from_operator') or '-'}): {t.get('reason') or ''}")


def text(run: RunView, verified: str) -> str:
    """What `invoke audit.show RUN_ID` prints: the runbook's words, ids beside them."""
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
    if run.rolled_back_by:
        out.append(f"  rolled back by: run {run.rolled_back_by}")
    failures = run.failures
    if failures:
        out.append("  what failed:")
        for step, item in failures:
            out.append(f"    {_hms(item.time)} {step.name} [{step.id}] > {item.key}"
                       + (f" ({item.uses})" if item.uses else "") + f": {item.summary}")
    if len(run.sessions) > 1 or any(s.get("end", "").startswith(("interrupted", "parked")) for s in run.sessions):
        out.append("  sessions:")
        out += [f"    {line}" for line in session_lines(run)]
    if run.takeovers:
        out.append("  lock takeovers:")
        out += [f"    {takeover_line(t)}" for t in run.takeovers]
    out.append("  steps:")
    for step in run.steps:
        out.append(f"    {step.title + ' [' + step.id + ']' if step.title else step.id}: {step.status}  "
                   f"started {_hms(step.started)}  "
                   f"took {_dur(step.duration)}" + (f"  -- {step.reason}" if step.reason else ""))
        for item in step.items:
            if item.kind == "manual":
                line = f"      {item.mark:<8} {item_label(item)}"
                if item.answer is not None:
                    line += f": {answer_text(item.answer)} (by {item.answered_by or '-'} at {_hms(item.answered_at)}"
                    line += f", {item.source})" if item.source else ")"
                elif item.summary:
                    line += f": {item.summary}"
                if item.reason and "reason" not in str(item.answer):
                    line += f" [reason: {item.reason}]"
                out.append(line)
                continue
            line = f"      {item.mark:<8} {item_label(item)}: {item.summary}"
            if item.reason:
                line += f" [reason: {item.reason}]"
            if item.attempts > 1:
                line += f" [{item.attempts} attempts]"
            out.append(line)
            if not item.passed and not item.skipped and item.evidence:
                out.append("              evidence: " + json.dumps(item.evidence, sort_keys=True, default=str)[:600])
        for p in step.prompts:
            out.append(f"      asked    {p.get('question') or p['id']} [{p['id']}]: {answer_text(p['answer'])} "
                       f"by {p['by']} at {_hms(p['time'])} ({p['source']})"
                       + (f" REFUSED: {p['refused']}" if p.get("refused") else ""))
    if run.prompts:
        out.append("  prompts:")
        for p in run.prompts:
            out.append(f"    {_hms(p['time'])} {p['id']}: {answer_text(p['answer'])} by {p['by']} "
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
            out.append(f"    {_hms(d['time'])} {d['kind']}{' in ' + d['step'] if d['step'] else ''}: {d['detail']}")
    if run.notes:
        out.append("  notes (retries, recoveries, offers; not deviations):")
        for d in run.notes:
            out.append(f"    {_hms(d['time'])} {d['kind']}{' in ' + d['step'] if d['step'] else ''}: {d['detail']}")
    return "\n".join(out) + "\n"


def markdown(run: RunView, verified: str, events: list[str], links: dict[str, Any]) -> str:
    """A report that reads well as a GitHub issue."""
    md = [f"# {run.runbook} run `{run.run_id}`: {run.outcome}", ""]
    md += ["| | |", "|---|---|",
           f"| Runbook | {run.runbook}: {_esc(run.title)} |",
           f"| Environment | {run.environment or '-'} |",
           f"| Status | **{symbol(run.status)} {run.outcome}**" + (f" ({_esc(run.reason)})" if run.reason else "") + " |",
           f"| Started / ended | {run.started} / {run.ended or '-'} ({_dur(run.duration)}) |",
           f"| Operators | {', '.join(run.operators)} |",
           f"| Plan digest | `{run.digest[:16]}` |",
           f"| Journal | {verified} |", ""]
    md += ["## Parameters", ""] + [f"- `{k}`: `{v}`" for k, v in _params(run).items()] + [""]
    md += markdown_links(links)
    failed = run.failures
    if failed:
        md += ["## What failed", "", "| Time | Step | Check | Expected / found / where |", "|---|---|---|---|"]
        for s, i in failed:
            md.append(f"| {_hms(i.time)} | {_esc(s.name)} (`{s.id}`) | {_esc(i.key)}"
                      + (f" ({i.uses})" if i.uses else "") + f" | {_esc(i.summary)} |")
        md.append("")
        md += ["## Failed checks", ""]
        for s, i in failed:
            md += [f"- **{s.id}.{i.key}** ({i.uses}): {_esc(i.summary)}", "",
                   "  ```json", "  " + json.dumps(i.evidence, sort_keys=True, default=str)[:1500], "  ```"]
        md.append("")
    md += ["## Steps", "", "| Step | Status | Started | Duration | Notes |", "|---|---|---|---|---|"]
    for s in run.steps:
        md.append(f"| {_esc(s.name)} (`{s.id}`) | {symbol(s.status)} {s.status} | {_hms(s.started)} | "
                  f"{_dur(s.duration)} | {_esc(s.reason)} |")
    md.append("")
    manual = [(s, i) for s in run.steps for i in s.items if i.kind == "manual"]
    if manual:
        md += ["## Checklist", "", "| Step | Item | Answer | By | When | Source |", "|---|---|---|---|---|---|"]
        for s, i in manual:
            md.append(f"| {_esc(s.name)} | {_esc(i.text or i.key)} (`{i.key}`) | "
                      f"{_esc(answer_text(i.answer) if i.answer is not None else i.summary)} | {_esc(i.answered_by)} | "
                      f"{_hms(i.answered_at or i.time)} | {_esc(i.source)} |")
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
        md += [f"- {_hms(d['time'])} **{d['kind']}**{' in ' + d['step'] if d['step'] else ''}: {_esc(d['detail'])}"
               for d in run.deviations]
        md.append("")
    if run.notes:
        md += ["## Notes (retries, recoveries, offers)", ""]
        md += [f"- {_hms(d['time'])} **{d['kind']}**{' in ' + d['step'] if d['step'] else ''}: {_esc(d['detail'])}"
               for d in run.notes]
        md.append("")
    if len(run.sessions) > 1 or run.takeovers:
        md += ["## Sessions and interruptions", ""] + [f"- {_esc(line)}" for line in session_lines(run)]
        md += [f"- lock takeover: {_esc(takeover_line(t))}" for t in run.takeovers] + [""]
    if run.prompts:
        md += ["## Answers", ""]
        md += [f"- `{p['id']}`" + (f" ({_esc(p['question'])})" if p.get("question") else "")
               + f": {_esc(answer_text(p['answer']))} by {p['by']} ({p['source']})"
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
                      + (f", started by step `{c['step']}` at {_hms(c.get('started', ''))}" if c.get("step") else ""))
        for r in links.get("rolled_back", []):
            md.append(f"- Rolls back release run `{r['run']}` ({r.get('runbook')}, version {r.get('version') or '-'})")
        if links.get("rolled_back_by"):
            md.append(f"- Rolled back by run `{links['rolled_back_by']}`")
        md.append("")
    return md


def _esc(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


# -- HTML with an inline SVG timeline --------------------------------------------------

COLORS = {"succeeded": "#2e7d32", "failed": "#c62828", "skipped": "#757575", "running": "#f9a825",
          "rolled-back": "#6a1b9a", "parked": "#ef6c00", "interrupted": "#ef6c00", "abandoned": "#616161"}
TICKS: tuple[float, ...] = (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
FONT = "DejaVu Sans, Liberation Sans, Arial, sans-serif"


def _e(value: Any) -> str:
    return html.escape(str(value if value is not None else ""), quote=True)


def _t(when: str | None) -> str:
    """A journal time as HH:MM:SS that never wraps, the full time in its ``datetime``."""
    return f'<time datetime="{_e(when or "")}">{_e(_hms(when or ""))}</time>' if when else "-"


def wrap(text: str, width: int, lines: int = 4) -> list[str]:
    """Words onto lines of at most ``width`` characters; a word longer than a line is broken, never cut."""
    out: list[str] = []
    line = ""
    for word in str(text).split():
        while len(word) > width:
            if line:
                out.append(line)
                line = ""
            out.append(word[:width])
            word = word[width:]
        if line and len(line) + 1 + len(word) > width:
            out.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    if line:
        out.append(line)
    if len(out) > lines:            # very long: the last line carries the rest (wraps in the table too)
        out = out[:lines - 1] + [" ".join(out[lines - 1:])]
    return out or [""]


def tick_step(span: float, most: int = 8) -> float:
    """A tick interval a reader expects (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30 s, 1, 2, 5, 10, 15, 30 min, 1 h...)."""
    for step in TICKS:
        if span / step <= most:
            return step
    return float(int(span // most) + 1)


def ticks(t0: datetime, t1: datetime, most: int = 8) -> tuple[float, list[tuple[float, str]]]:
    """The interval and each tick as (seconds after t0, label): at multiples of the interval, in UTC."""
    span = max((t1 - t0).total_seconds(), 0.5)
    step = tick_step(span, most)
    start = t0.timestamp()
    n = int(start // step) + (0 if abs(start / step - round(start / step)) < 1e-9 else 1)
    out = []
    while n * step <= start + span + 1e-9:
        at = datetime.fromtimestamp(round(n * step, 3), timezone.utc)
        label = at.strftime("%H:%M:%S.%f")[:10] if step < 1 else at.strftime("%H:%M:%S" if step < 60 else "%H:%M")
        out.append((n * step - start, label))
        n += 1
    return step, out


def _tspans(lines: list[str], x: float, first_y: float, gap: float, **attrs: str) -> str:
    extra = "".join(f' {k.replace("_", "-")}="{_e(v)}"' for k, v in attrs.items())
    spans = "".join(f'<tspan x="{x:.1f}" y="{first_y + n * gap:.1f}">{_e(line)}</tspan>' for n, line in enumerate(lines))
    return f'<text{extra}>{spans}</text>'


def ordered(runs: list[RunView], links: list[dict[str, Any]]) -> list[tuple[RunView, int]]:
    """Runs in start order, each linked run right below the run that started it (with its depth)."""
    by_id = {r.run_id: r for r in runs}
    parent_of = {l["to"]: l["from"] for l in links if l.get("kind") == "child" and l["from"] in by_id}
    kids: dict[str, list[RunView]] = {}
    for r in runs:
        if r.run_id in parent_of:
            kids.setdefault(parent_of[r.run_id], []).append(r)
    out: list[tuple[RunView, int]] = []

    def walk(r: RunView, depth: int) -> None:
        if any(r is seen for seen, _ in out):
            return
        out.append((r, depth))
        for k in sorted(kids.get(r.run_id, []), key=lambda x: x.started):
            walk(k, depth + 1)
    for r in sorted(runs, key=lambda x: x.started):
        if r.run_id not in parent_of:
            walk(r, 0)
    for r in runs:                       # a cycle (never written by the engine): still shown
        walk(r, 0)
    return out


def normal_links(links: list[Any]) -> list[dict[str, Any]]:
    """Links as dicts {from, to, kind, step, label}; (from, to) pairs mean a linked run."""
    out = []
    for link in links:
        if isinstance(link, dict):
            out.append(link)
        else:
            out.append({"from": link[0], "to": link[1], "kind": "child", "step": "", "label": ""})
    return out


def svg_timeline(runs: list[RunView], links: list[Any], marks: list[tuple[str, str, str]] | None = None) -> str:
    """One time axis: a header row per run, a row per step (title, id, status symbol), segments for work,
    waits on a system (striped), waits for a person (outlined) and gaps without a session (dashed);
    failures marked in colour and in words; a connector from the step that started a linked run; ``marks``
    (time, label, colour) are drawn as vertical lines through every row, labelled below the chart."""
    links = normal_links(links)
    order = ordered(runs, links)
    times = [parse_time(t) for run in runs for t in (run.started, run.ended) if t]
    times += [parse_time(t) for run in runs for s in run.steps for t in (s.started, s.finished) if t]
    if not times:
        return (f'<svg xmlns="http://www.w3.org/2000/svg" width="100%" viewBox="0 0 1000 40" role="img" '
                f'aria-label="timeline: no steps recorded"><text x="10" y="24" font-family="{FONT}" font-size="13">'
                f'No steps recorded.</text></svg>')
    t0, t1 = min(times), max(times)
    span = max((t1 - t0).total_seconds(), 0.5)
    width, label_w, right = 1000, 340, 90
    x0, x1 = label_w + 10, width - right
    chart_w = x1 - x0

    def xat(when: str) -> float:
        return x0 + chart_w * (parse_time(when) - t0).total_seconds() / span

    body: list[str] = []
    rows: dict[tuple[str, str], tuple[float, float]] = {}      # (run, step or "") -> (top, bottom)
    anchors: dict[tuple[str, str], tuple[float, float]] = {}   # (run, step) -> its bars' first and last x
    y = 44.0
    for run, depth in order:
        indent = 6 + 14 * min(depth, 4)
        chars = (label_w - indent - 8) // 8
        head = wrap(f"{symbol(run.status)} {run.name}", chars, 3)
        sub = wrap(f"{run.runbook} · {run.run_id} · {run.outcome}", (label_w - indent - 8) // 7, 2)
        h = 10.0 + 16 * len(head) + 14 * len(sub)
        body.append(f'<g class="run" data-run="{_e(run.run_id)}">')
        body.append(f'<rect x="0" y="{y:.1f}" width="{width}" height="{h:.1f}" fill="#eef1f4"/>')
        body.append(_tspans(head, indent, y + 16, 16, font_weight="bold", fill="#111", font_size="13"))
        body.append(_tspans(sub, indent, y + 16 * len(head) + 12, 14, fill="#444", font_size="11"))
        mid = y + h / 2
        if run.started:
            sessions = run.sessions or [{"time": run.started, "ended": run.ended}]
            for n, sess in enumerate(sessions):
                start, end = sess.get("time") or run.started, sess.get("ended") or run.ended or stamp_of(t1)
                body.append(f'<rect class="session" x="{xat(start):.1f}" y="{mid - 3:.1f}" '
                            f'width="{max(2.0, xat(end) - xat(start)):.1f}" height="6" fill="{COLORS.get(run.status, "#1565c0")}"/>')
                if n and sessions[n - 1].get("ended"):
                    gx0, gx1 = xat(sessions[n - 1]["ended"]), xat(start)
                    body.append(f'<line class="gap" x1="{gx0:.1f}" y1="{mid:.1f}" x2="{gx1:.1f}" y2="{mid:.1f}" '
                                f'stroke="#555" stroke-width="1.5" stroke-dasharray="3 3"/>')
                    note = f"⏸ resumed by {sess.get('operator') or '-'} after {_dur(sess.get('gap_s'))}"
                    body.append(f'<text class="interruption" x="{min(gx0, x1 - 200):.1f}" y="{mid - 6:.1f}" '
                                f'font-size="11" fill="#333">{_e(note)}</text>')
        body.append("</g>")
        rows[(run.run_id, "")] = (y, y + h)
        y += h + 2
        for step in run.steps:
            title = wrap(f"{symbol(step.status)} {step.name}", (label_w - indent - 20) // 7, 4)
            ident = wrap(step.id, (label_w - indent - 20) // 7, 2) if step.title else []
            h = max(24.0, 8 + 15 * len(title) + 13 * len(ident))
            colour = COLORS.get(step.status, "#1565c0")
            body.append(f'<g class="step" data-run="{_e(run.run_id)}" data-step="{_e(step.id)}" '
                        f'data-status="{_e(step.status)}">')
            body.append(_tspans(title, indent + 10, y + 15, 15, fill="#111", font_size="12",
                                **({"font_weight": "bold"} if step.status == "failed" else {})))
            if ident:
                body.append(_tspans(ident, indent + 10, y + 15 * len(title) + 12, 13, fill="#555", font_size="10.5",
                                    font_family="DejaVu Sans Mono, monospace"))
            bar_y, bar_h = y + 5, 14.0
            segments = step.segments or ([{"start": step.started or step.finished, "end": step.finished
                                           or step.started, "kind": "work", "label": ""}]
                                         if (step.started or step.finished) else [])
            first = last_x = None
            for seg in segments:
                sx, ex = xat(seg["start"]), xat(seg["end"])
                first = sx if first is None else min(first, sx)
                last_x = ex if last_x is None else max(last_x, ex)
                w = max(2.0, ex - sx)
                kind = seg["kind"]
                label = f"{kind}" + (f" {seg['label']}" if seg.get("label") else "")
                if kind == "gap":
                    body.append(f'<line class="seg gap" x1="{sx:.1f}" y1="{bar_y + bar_h / 2:.1f}" x2="{ex:.1f}" '
                                f'y2="{bar_y + bar_h / 2:.1f}" stroke="#555" stroke-width="1.5" stroke-dasharray="3 3"/>')
                elif kind == "wait":
                    body.append(f'<rect class="seg wait" x="{sx:.1f}" y="{bar_y:.1f}" width="{w:.1f}" height="{bar_h}" '
                                f'fill="url(#stripes-{_e(step.status)})" stroke="{colour}" stroke-width="1" '
                                f'data-label="{_e(label)}"/>')
                elif kind == "person":
                    body.append(f'<rect class="seg person" x="{sx:.1f}" y="{bar_y + 2:.1f}" width="{w:.1f}" '
                                f'height="{bar_h - 4}" fill="#ffffff" stroke="{colour}" stroke-width="1.5" '
                                f'stroke-dasharray="2 1.5" data-label="{_e(label)}"/>')
                else:
                    body.append(f'<rect class="seg work" x="{sx:.1f}" y="{bar_y:.1f}" width="{w:.1f}" height="{bar_h}" '
                                f'fill="{colour}"/>')
            if step.status == "skipped" and not step.started:
                sx = xat(step.finished) if step.finished else x0
                body.append(f'<text class="skipped" x="{sx:.1f}" y="{bar_y + 11:.1f}" font-size="11" fill="#555">'
                            f'– skipped</text>')
                first = last_x = sx
            if step.status == "failed" and last_x is not None:
                body.append(f'<line class="failure-tick" x1="{last_x:.1f}" y1="{y + 1:.1f}" x2="{last_x:.1f}" '
                            f'y2="{y + h - 1:.1f}" stroke="#c62828" stroke-width="2"/>')
                fx = min(last_x + 5, width - 60)
                body.append(f'<text class="failure" x="{fx:.1f}" y="{bar_y + 11:.1f}" font-size="12" '
                            f'font-weight="bold" fill="#c62828">✗ failed</text>')
            body.append("</g>")
            rows[(run.run_id, step.id)] = (y, y + h)
            anchors[(run.run_id, step.id)] = (first if first is not None else x0, last_x if last_x is not None else x0)
            y += h
        y += 6
    mark_rows = []
    for n, (when, label, colour) in enumerate(marks or []):
        mx = xat(when)
        ly = y + 16 + 16 * n
        text_w = 6.5 * len(label)
        anchor, lx = ("start", mx + 4) if mx + 4 + text_w <= width - 4 else ("end", mx - 4)
        mark_rows.append(f'<line class="mark" x1="{mx:.1f}" y1="36" x2="{mx:.1f}" y2="{ly - 10:.1f}" stroke="{colour}" '
                         f'stroke-width="1.5"/><text class="mark-label" x="{lx:.1f}" y="{ly:.1f}" font-size="11" '
                         f'font-weight="bold" text-anchor="{anchor}" fill="{colour}">{_e(label)}</text>')
    y += 16 * len(marks or [])
    body += mark_rows
    height = y + 8
    # connectors: from the step that started a linked run (an on_failure offer: from the failure) to the run
    by_id = {r.run_id: r for r in runs}
    for link in links:
        src, dst = by_id.get(link["from"]), by_id.get(link["to"])
        if src is None or dst is None or not dst.started:
            continue
        step_id = str(link.get("step") or "")
        key = (src.run_id, step_id)
        if key not in rows:                     # run.on_failure, a takeover: from the failed step, else the run
            failed = [s for s in src.steps if s.status == "failed" and (src.run_id, s.id) in rows]
            key = (src.run_id, failed[-1].id) if failed and link.get("kind") == "child" else (src.run_id, "")
        top, bottom = rows[key]
        tx = xat(dst.started)
        if key[1] and key in anchors:
            a, b = anchors[key]
            sx = min(max(tx, a), b) if a <= b else tx
        else:
            sx = xat(link.get("time") or dst.started)
        sy = (top + bottom) / 2
        dtop, dbottom = rows[(dst.run_id, "")]
        ty = (dtop + dbottom) / 2
        label = link.get("label") or (f"started {dst.runbook}" if link.get("kind") == "child" else "")
        route = f"M {sx:.1f} {sy:.1f} V {dtop + 1:.1f}" if abs(tx - sx) < 8 and dtop > sy else \
            f"M {sx:.1f} {sy:.1f} V {ty:.1f} H {tx:.1f}"
        body.append(f'<path class="link" data-from="{_e(src.run_id)}" data-to="{_e(dst.run_id)}" '
                    f'data-step="{_e(key[1])}" d="{route}" fill="none" '
                    f'stroke="#1565c0" stroke-width="2" stroke-dasharray="5 3" marker-end="url(#arrow)"/>')
        body.append(f'<circle class="link-start" cx="{sx:.1f}" cy="{sy:.1f}" r="3.5" fill="#1565c0"/>')
        if label:
            text_w = 6.5 * (len(label) + 2)
            anchor, lx = ("start", sx + 6) if sx + 6 + text_w <= width - 4 else ("end", sx - 6)
            body.append(f'<text class="link-label" x="{lx:.1f}" y="{(sy + ty) / 2 + 4:.1f}" font-size="11" '
                        f'text-anchor="{anchor}" fill="#0d47a1">{_e("↓ " + label)}</text>')
    # the axis: ticks at sensible intervals, a light grid through every row
    step_s, tick_marks = ticks(t0, t1)
    axis = [f'<line x1="{x0}" y1="34" x2="{x1}" y2="34" stroke="#333"/>']
    for offset, label in tick_marks:
        x = x0 + chart_w * offset / span
        axis.append(f'<line class="tick" x1="{x:.1f}" y1="30" x2="{x:.1f}" y2="{height - 4:.1f}" stroke="#d0d4d8" '
                    f'stroke-width="1"/><text class="tick-label" x="{x:.1f}" y="24" text-anchor="middle" '
                    f'font-size="11" fill="#333">{label}</text>')
    axis.append(f'<text x="6" y="24" font-size="11" fill="#333">UTC, ticks every {_dur(step_s) if step_s >= 1 else f"{step_s:.1f}s"}; '
                f'{_dur(span)} in all</text>')
    defs = ['<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
            'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#1565c0"/></marker>']
    for status, colour in COLORS.items():
        defs.append(f'<pattern id="stripes-{status}" width="6" height="6" patternUnits="userSpaceOnUse" '
                    f'patternTransform="rotate(45)"><rect width="6" height="6" fill="#ffffff"/>'
                    f'<rect width="3" height="6" fill="{colour}"/></pattern>')
    defs.append("</defs>")
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" width="100%" viewBox="0 0 {width} {height:.0f}" '
            f'font-family="{FONT}" font-size="12" role="img" aria-label="timeline of {len(runs)} run(s)">'
            + "".join(defs) + f'<rect x="0" y="0" width="{width}" height="{height:.0f}" fill="#ffffff"/>'
            + "".join(axis) + "".join(body) + "</svg>")


def stamp_of(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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


def _status(status: str, text: str | None = None) -> str:
    return f'<span class="status s-{_e(status.replace(" ", "."))}">{_e(symbol(status))} {_e(text or status)}</span>'


def _facts(pairs: list[tuple[str, str]]) -> str:
    """A definition list: label, value (already HTML)."""
    return '<dl class="facts">' + "".join(f"<dt>{_e(k)}</dt><dd>{v}</dd>" for k, v in pairs) + "</dl>"


def _table(head: list[str], rows: list[list[str]], cls: str = "", long: int = -1) -> str:
    """A table; cells are already HTML; the ``long`` column may break anywhere (URLs, ids)."""
    long = long % len(head)
    return (f'<table{f" class={chr(34)}{cls}{chr(34)}" if cls else ""}><thead><tr>'
            + "".join(f'<th scope="col">{_e(h)}</th>' for h in head) + "</tr></thead><tbody>"
            + "".join("<tr>" + "".join(f'<td class="long">{c}</td>' if n == long else f"<td>{c}</td>"
                                       for n, c in enumerate(row)) + "</tr>" for row in rows)
            + "</tbody></table>")


def _step_name(step: Any) -> str:
    return f'{_e(step.name)}' + (f' <span class="id">{_e(step.id)}</span>' if step.title else "")


def _item_cells(item: Any) -> tuple[str, str]:
    """An item's name and what it found (a manual item: its text; its answer, evidence, who, when)."""
    if item.kind == "manual":
        name = f'{_e(item.text or item.key)} <span class="id">{_e(item.key)}</span>'
        if item.answer is not None:
            said = (f"{_e(answer_text(item.answer))}<br><small>by {_e(item.answered_by or '-')} at "
                    f"{_t(item.answered_at)}{' via ' + _e(item.source) if item.source else ''}</small>")
        else:
            said = _e(item.summary)
        if item.reason and "reason" not in answer_text(item.answer):
            said += f"<br>reason: {_e(item.reason)}"
        return name, said
    name = f'{_e(item.key)}' + (f' <span class="id">{_e(item.uses)}</span>' if item.uses else "")
    found = _e(item.summary)
    if item.reason:
        found += f"<br>reason: {_e(item.reason)}"
    if item.attempts > 1:
        found += f" <small>({item.attempts} attempts)</small>"
    if item.recovered:
        found += f" <small>(recovered after an interruption: {_e(item.recovered)})</small>"
    if item.passed is False and not item.skipped and item.evidence:
        found += f"<pre>{_e(json.dumps(item.evidence, sort_keys=True, indent=1, default=str)[:2000])}</pre>"
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
            rows.append([_t(i.time), _step_name(s), f"{_e(i.key)} <span class=\"id\">{_e(i.uses)}</span>",
                         f"<strong>✗</strong> {_e(i.summary)}"])
        for s in run.steps:
            if s.status == "failed" and not any(s is f for f, _ in failures):
                rows.append([_t(s.finished), _step_name(s), "-", f"<strong>✗</strong> {_e(s.reason)}"])
        out.append(f'<section class="failures" id="{anchor}failures"><{h}>What failed</{h}>'
                   + (_table(["Time", "Step", "Check", "Expected / found / where"], rows, "failures", 3) if rows else
                      f"<p>{_e(run.reason or run.status)}</p>")
                   + "</section>")
    # steps and their items
    parts = ['<table class="steps"><thead><tr><th scope="col">Result</th><th scope="col">Item</th>'
             '<th scope="col">Found, answered</th><th scope="col">Time</th></tr></thead>']
    for s in run.steps:
        head = (f'{_status(s.status)} · {_step_name(s)} · started {_t(s.started)}, took {_e(_dur(s.duration))}'
                + (f" · {_e(s.reason)}" if s.reason else ""))
        parts.append(f'<tbody class="step" data-step="{_e(s.id)}"><tr class="{ "failed" if s.status == "failed" else "" }">'
                     f'<th scope="rowgroup" colspan="4">{head}</th></tr>')
        for i in s.items:
            name, found = _item_cells(i)
            cls = "failed" if i.passed is False and not i.skipped else ""
            parts.append(f'<tr class="{cls}"><td>{_status(i.mark.replace(" ", "."), i.mark)}</td><td>{name}</td>'
                         f'<td class="long">{found}</td><td>{_t(i.time)}</td></tr>')
        for p in s.prompts:
            parts.append(f'<tr><td>{_status("asked", "asked")}</td><td>{_e(p.get("question") or p["id"])} '
                         f'<span class="id">{_e(p["id"])}</span></td><td class="long">{_e(answer_text(p["answer"]))}<br>'
                         f'<small>by {_e(p["by"])} via {_e(p["source"])}</small>'
                         + (f'<br><strong>refused:</strong> {_e(p["refused"])}' if p.get("refused") else "")
                         + f"</td><td>{_t(p['time'])}</td></tr>")
        parts.append("</tbody>")
    parts.append("</table>")
    out.append(f'<section class="steps" id="{anchor}steps"><{h}>Steps</{h}>' + "".join(parts) + "</section>")
    manual = [(s, i) for s in run.steps for i in s.items if i.kind == "manual"]
    if manual:
        rows = [[_e(s.name), f'{_e(i.text or i.key)} <span class="id">{_e(s.id)}.{_e(i.key)}</span>',
                 _status("succeeded" if i.passed else "skipped", answer_text(i.answer) if i.answer is not None
                         else i.summary), _e(i.answered_by or "-"), _t(i.answered_at or i.time), _e(i.source)]
                for s, i in manual]
        out.append(f'<section class="checklist" id="{anchor}checklist"><{h}>Checklist answers</{h}>'
                   + _table(["Step", "Item", "Answer and evidence", "By", "When", "Source"], rows, "answers", 2)
                   + "</section>")
    others = [p for p in run.prompts if p.get("kind") != "manual" and run.step_of(str(p["id"])) is None]
    if others:
        rows = [[_t(p["time"]), f'{_e(p.get("question") or p["id"])} <span class="id">{_e(p["id"])}</span>',
                 _e(answer_text(p["answer"])), _e(p["by"]), _e(p["source"])] for p in others]
        out.append(f'<section class="decisions" id="{anchor}decisions"><{h}>Run-level decisions</{h}>'
                   + _table(["Time", "Question", "Answer", "By", "Source"], rows) + "</section>")
    if run.approvals:
        rows = [[_e(a["step"]), _e(", ".join(a["approvers"])), f'<code>{_e(a.get("head_sha", "")[:12])}</code>',
                 _e("verified on GitHub" if a["verified"] else "unverified prompt approval")] for a in run.approvals]
        out.append(f'<section class="approvals" id="{anchor}approvals"><{h}>Approvals</{h}>'
                   + _table(["Step", "Approvers", "Head", "Verified"], rows) + "</section>")
    if run.deviations:
        rows = [[_t(d["time"]), _e(d["kind"]), _e(d["step"] or "-"), _e(d["detail"])] for d in run.deviations]
        out.append(f'<section class="deviations" id="{anchor}deviations"><{h}>Deviations from the runbook</{h}>'
                   f"<p>The run went on without what the runbook asked for {len(run.deviations)} time(s).</p>"
                   + _table(["Time", "Deviation", "Step", "Detail"], rows) + "</section>")
    if run.notes:
        rows = [[_t(d["time"]), _e(d["kind"]), _e(d["step"] or "-"), _e(d["detail"])] for d in run.notes]
        out.append(f'<section class="notes" id="{anchor}notes"><{h}>Notes (retries, recoveries, offers; not deviations)</{h}>'
                   + _table(["Time", "Note", "Step", "Detail"], rows) + "</section>")
    if run.sessions:
        rows = []
        for n, sess in enumerate(run.sessions, 1):
            how = "started the run" if not sess.get("resume") else (
                f"resumed after {_dur(sess.get('gap_s'))}" + (f" (the previous session ended: {sess['after']})"
                                                              if sess.get("after") else ""))
            rows.append([str(n), _t(sess["time"]), _e(sess.get("operator") or "-"), _e(sess.get("host") or "-"),
                         _e(how), _e((_hms(sess["ended"]) + " " + (sess.get("end") or "")) if sess.get("ended") else "-")])
        out.append(f'<section class="sessions" id="{anchor}sessions"><{h}>Sessions and interruptions</{h}>'
                   + _table(["#", "Started", "Operator", "Host", "How", "Ended"], rows) + "</section>")
    if run.takeovers:
        rows = [[_t(t["time"]), _e(t.get("by") or "-"), f"<code>{_e(t.get('key'))}</code>",
                 f"<code>{_e(t.get('from_run') or '-')}</code> ({_e(t.get('from_operator') or '-')})", _e(t.get("reason"))]
                for t in run.takeovers]
        out.append(f'<section class="takeovers" id="{anchor}takeovers"><{h}>Lock takeovers</{h}>'
                   + _table(["Time", "By", "Lock", "Taken from run", "Reason"], rows) + "</section>")
    link_rows = []
    if links.get("parent"):
        p = links["parent"]
        link_rows.append(["started by", f"<code>{_e(p.get('run'))}</code>", _e(p.get("runbook", "")),
                          f"step <code>{_e(p.get('step'))}</code>", "-"])
    for c in links.get("children", run.children):
        link_rows.append(["started", f"<code>{_e(c.get('run'))}</code>", _e(c.get("runbook") or ""),
                          f"step <code>{_e(c.get('step'))}</code> at {_t(c.get('started', ''))}",
                          _status(str(c.get("status") or "running"))])
    for r in links.get("rolled_back", []):
        link_rows.append(["rolls back", f"<code>{_e(r['run'])}</code>", _e(r.get("runbook")),
                          f"version {_e(r.get('version') or '-')}", "-"])
    if run.rolled_back_by:
        link_rows.append(["rolled back by", f"<code>{_e(run.rolled_back_by)}</code>", "", "", "-"])
    if link_rows:
        out.append(f'<section class="links" id="{anchor}links"><{h}>Linked runs</{h}>'
                   + _table(["Link", "Run", "Runbook", "Where", "Status"], link_rows) + "</section>")
    params = _params(run)
    if params:
        out.append(f'<section class="params" id="{anchor}params"><{h}>Parameters</{h}>'
                   + _table(["Name", "Value"], [[f"<code>{_e(k)}</code>", f"<code>{_e(v)}</code>"]
                                                for k, v in params.items()]) + "</section>")
    if events:
        rows = [[_t(e["time"]), _e(e.get("operator") or ""), _e(e["text"])] for e in events]
        out.append(f'<section class="journal" id="{anchor}journal"><{h}>Journal, in brief</{h}>'
                   + _table(["Time", "Who", "What"], rows) + "</section>")
    return "".join(out)


def page(title: str, body: str) -> str:
    """A self-contained HTML page: inline CSS and SVG, no scripts, nothing from the network."""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{_e(title)}</title>\n<style>{CSS}</style></head>\n<body>\n{body}\n</body></html>\n")


def html_report(run: RunView, verified: str, links: dict[str, Any], related: list[RunView], edges: list[Any],
                events: list[dict[str, Any]] | None = None) -> str:
    """One run's report as one self-contained HTML file."""
    facts = [("Runbook", f"{_e(run.name)} <span class=\"id\">{_e(run.runbook)}</span>"),
             ("Outcome", _status(run.status, run.outcome) + (f" — {_e(run.reason)}" if run.reason else "")),
             ("Environment", _e(run.environment or "-")),
             ("Started / ended", f"{_e(run.started)} / {_e(run.ended or '-')} ({_e(_dur(run.duration))})"),
             ("Operators", _e(", ".join(run.operators) or "-")),
             ("Sessions", _e(f"{len(run.sessions)}" + (f", {len(run.interruptions)} resume(s)"
                                                         if run.interruptions else ""))),
             ("Plan digest", f"<code>{_e(run.digest[:16])}</code>"),
             ("Journal", _e(verified))]
    if run.version:
        facts.insert(2, ("Version", _e(run.version)))
    body = (f'<header><h1>{_e(run.name)}: run <span class="id">{_e(run.run_id)}</span></h1>'
            f'<p class="summary{" ok" if run.status == "succeeded" else ""}">{_status(run.status, run.outcome)}'
            + (f" — {_e(run.reason)}" if run.reason else "") + "</p></header>"
            f'<section class="facts"><h2>Summary</h2>{_facts(facts)}</section>'
            f'<section class="timeline"><h2>Timeline</h2><figure id="timeline">'
            f"{svg_timeline([run] + related, edges)}<figcaption>{LEGEND}</figcaption></figure></section>"
            + run_sections(run, verified, links, events=events))
    return page(f"{run.name} — {run.run_id}: {run.outcome}", body)


# -- what the exports gather -----------------------------------------------------------

def verified_text(store: Any, run_id: str) -> str:
    """One line: the run's chain (and its ledger marks) verified, or the first problems."""
    from .audit import verify

    report = verify(store, run_id, whole_ledger=False)
    return "chain verified" if report.ok else "VERIFICATION FAILED: " + "; ".join(map(str, report.problems[:3]))


def export_data(store: Any, run_id: str) -> tuple[Any, str, dict[str, Any], list[Any], list[dict[str, Any]]]:
    """A run, its verification, its links (parent, children, the release it rolled back, the run it took the
    lock from) and related runs, with the links the timeline draws."""
    from .review import load_view

    run = load_view(store, run_id)
    verified = verified_text(store, run.run_id)
    links: dict[str, Any] = {"children": run.children}
    related: list[Any] = []
    edges: list[dict[str, Any]] = []

    def load(other: str) -> Any:
        if other == run.run_id:
            return run
        for r in related:
            if r.run_id == other:
                return r
        try:
            found = load_view(store, other)
        except RunbookError:
            return None
        related.append(found)
        return found

    if run.parent:
        parent = load(str(run.parent.get("run")))
        links["parent"] = {**run.parent, "runbook": parent.runbook if parent else "(not in this state home)"}
        if parent is not None:
            edges.append({"from": parent.run_id, "to": run.run_id, "kind": "child", "step": run.parent.get("step"),
                          "label": ""})
    release = run.params.get("release_run")
    if release:
        undone = load(str(release))
        if undone is not None:
            links["rolled_back"] = [{"run": undone.run_id, "runbook": undone.runbook, "version": undone.version}]
            if not run.parent:                      # started on its own: the timeline links it to the release
                edges.append({"from": undone.run_id, "to": run.run_id, "kind": "rollback", "step": "",
                              "label": "rolls back"})
        else:
            links["rolled_back"] = [{"run": release, "runbook": "(not in this state home)", "version": ""}]
    for child in run.children:
        if load(str(child["run"])) is not None:
            edges.append({"from": run.run_id, "to": child["run"], "kind": "child", "step": child.get("step"),
                          "label": ""})
    for taken in run.takeovers:
        if taken.get("from_run") and load(str(taken["from_run"])) is not None:
            edges.append({"from": taken["from_run"], "to": run.run_id, "kind": "takeover", "step": "",
                          "time": taken["time"], "label": f"lock taken by {run.runbook}"})
    if run.rolled_back_by:
        links["rolled_back_by"] = run.rolled_back_by
    return run, verified, links, related, edges


def export_markdown(store: Any, run_id: str) -> str:
    """A run's Markdown report."""
    from . import report
    from .review import describe

    run, verified, links, _, _ = export_data(store, run_id)
    events = [f"{e['time'][11:19]} {e.get('operator', '')}: {describe(e)}" for e in run.events]
    return report.markdown(run, verified, events, links)
