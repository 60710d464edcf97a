"""The SVG timeline: a row per step of every run shown, links between runs, marks; print-safe, no colour needed."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from ..review import RunView, parse_time
from .common import duration, esc_html, symbol


COLORS = {"succeeded": "#2e7d32", "failed": "#c62828", "skipped": "#757575", "running": "#f9a825",
          "rolled-back": "#6a1b9a", "parked": "#ef6c00", "interrupted": "#ef6c00", "abandoned": "#616161"}


TICKS: tuple[float, ...] = (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


FONT = "DejaVu Sans, Liberation Sans, Arial, sans-serif"


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


def tspans(lines: list[str], x: float, first_y: float, gap: float, **attrs: str) -> str:
    extra = "".join(f' {k.replace("_", "-")}="{esc_html(v)}"' for k, v in attrs.items())
    spans = "".join(f'<tspan x="{x:.1f}" y="{first_y + n * gap:.1f}">{esc_html(line)}</tspan>' for n, line in enumerate(lines))
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
        body.append(f'<g class="run" data-run="{esc_html(run.run_id)}">')
        body.append(f'<rect x="0" y="{y:.1f}" width="{width}" height="{h:.1f}" fill="#eef1f4"/>')
        body.append(tspans(head, indent, y + 16, 16, font_weight="bold", fill="#111", font_size="13"))
        body.append(tspans(sub, indent, y + 16 * len(head) + 12, 14, fill="#444", font_size="11"))
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
                    note = f"⏸ resumed by {sess.get('operator') or '-'} after {duration(sess.get('gap_s'))}"
                    body.append(f'<text class="interruption" x="{min(gx0, x1 - 200):.1f}" y="{mid - 6:.1f}" '
                                f'font-size="11" fill="#333">{esc_html(note)}</text>')
        body.append("</g>")
        rows[(run.run_id, "")] = (y, y + h)
        y += h + 2
        for step in run.steps:
            title = wrap(f"{symbol(step.status)} {step.name}", (label_w - indent - 20) // 7, 4)
            ident = wrap(step.id, (label_w - indent - 20) // 7, 2) if step.title else []
            h = max(24.0, 8 + 15 * len(title) + 13 * len(ident))
            colour = COLORS.get(step.status, "#1565c0")
            body.append(f'<g class="step" data-run="{esc_html(run.run_id)}" data-step="{esc_html(step.id)}" '
                        f'data-status="{esc_html(step.status)}">')
            body.append(tspans(title, indent + 10, y + 15, 15, fill="#111", font_size="12",
                                **({"font_weight": "bold"} if step.status == "failed" else {})))
            if ident:
                body.append(tspans(ident, indent + 10, y + 15 * len(title) + 12, 13, fill="#555", font_size="10.5",
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
                                f'fill="url(#stripes-{esc_html(step.status)})" stroke="{colour}" stroke-width="1" '
                                f'data-label="{esc_html(label)}"/>')
                elif kind == "person":
                    body.append(f'<rect class="seg person" x="{sx:.1f}" y="{bar_y + 2:.1f}" width="{w:.1f}" '
                                f'height="{bar_h - 4}" fill="#ffffff" stroke="{colour}" stroke-width="1.5" '
                                f'stroke-dasharray="2 1.5" data-label="{esc_html(label)}"/>')
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
                         f'font-weight="bold" text-anchor="{anchor}" fill="{colour}">{esc_html(label)}</text>')
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
        body.append(f'<path class="link" data-from="{esc_html(src.run_id)}" data-to="{esc_html(dst.run_id)}" '
                    f'data-step="{esc_html(key[1])}" d="{route}" fill="none" '
                    f'stroke="#1565c0" stroke-width="2" stroke-dasharray="5 3" marker-end="url(#arrow)"/>')
        body.append(f'<circle class="link-start" cx="{sx:.1f}" cy="{sy:.1f}" r="3.5" fill="#1565c0"/>')
        if label:
            text_w = 6.5 * (len(label) + 2)
            anchor, lx = ("start", sx + 6) if sx + 6 + text_w <= width - 4 else ("end", sx - 6)
            body.append(f'<text class="link-label" x="{lx:.1f}" y="{(sy + ty) / 2 + 4:.1f}" font-size="11" '
                        f'text-anchor="{anchor}" fill="#0d47a1">{esc_html("↓ " + label)}</text>')
    # the axis: ticks at sensible intervals, a light grid through every row
    step_s, tick_marks = ticks(t0, t1)
    axis = [f'<line x1="{x0}" y1="34" x2="{x1}" y2="34" stroke="#333"/>']
    for offset, label in tick_marks:
        x = x0 + chart_w * offset / span
        axis.append(f'<line class="tick" x1="{x:.1f}" y1="30" x2="{x:.1f}" y2="{height - 4:.1f}" stroke="#d0d4d8" '
                    f'stroke-width="1"/><text class="tick-label" x="{x:.1f}" y="24" text-anchor="middle" '
                    f'font-size="11" fill="#333">{label}</text>')
    axis.append(f'<text x="6" y="24" font-size="11" fill="#333">UTC, ticks every {duration(step_s) if step_s >= 1 else f"{step_s:.1f}s"}; '
                f'{duration(span)} in all</text>')
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
