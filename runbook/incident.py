"""An incident, from the journals alone: every run of an environment in a window and the runs linked to
them (the release, its rollback, the on-call run that took its lock, the analysis), on one time axis, with
a summary on top: what was released, when it failed, when the service was healthy again, who did what.

The summary's rules, stated in the report too:

- *released*: the window's first run with a ``version`` parameter that no other run started;
- *went live*: the end of that run's last succeeded deploy step (an id or title naming deploy, rollout or
  pipeline, not a verification) before it failed; else its start;
- *failed* (detected): the earliest step that ended a run failed (a run that failed or was rolled back);
- *healthy again*: after the failure, the end of the first unbroken group of succeeded verification steps
  (ids or titles starting ``verif``) in the run that rolled the failed run back or in a run it started;
  without one, that run's success;
- *time to detect* = failed - went live; *time to restore* = healthy again - failed.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from .errors import RunbookError
from .report.common import duration, hms, seconds_between
from .review import RunView

DEPLOY = re.compile(r"deploy|rollout|pipeline", re.I)
VERIFY = re.compile(r"^verif", re.I)


def linked_ids(run: RunView) -> list[str]:
    """Every run a run's journal names: its parent, children, the release it rolls back, the run it took
    the lock from, the run that rolled it back."""
    out = [str((run.parent or {}).get("run") or "")]
    out += [str(c.get("run") or "") for c in run.children]
    out += [str(run.params.get(k) or "") for k in ("release_run", "rollback_run")]
    out += [str(t.get("from_run") or "") for t in run.takeovers]
    out.append(run.rolled_back_by)
    return [r for r in out if r and r != run.run_id]


def gather(store: Any, env: str | None, since: datetime | None, until: datetime | None) -> list[RunView]:
    """The runs of ``env`` in the window and every run linked to them (transitively), oldest first."""
    from .review import Index, load_view, select

    queue = [s["run"] for s in select(Index(store).summaries(), env=env, since=since, until=until)]
    views: dict[str, RunView] = {}
    while queue:
        rid = queue.pop(0)
        if rid in views:
            continue
        try:
            found = load_view(store, rid)
        except RunbookError:
            continue
        views[found.run_id] = found
        queue += [r for r in linked_ids(found) if r not in views]
    return sorted(views.values(), key=lambda r: (r.started, r.run_id))


def links_of(runs: list[RunView]) -> list[dict[str, Any]]:
    """What the timeline connects: linked runs from the step that started them, a rollback to the release
    it rolls back (when another run started it), a takeover from the run that held the lock."""
    ids = {r.run_id for r in runs}
    out: list[dict[str, Any]] = []
    for run in runs:
        for child in run.children:
            if child.get("run") in ids:
                out.append({"from": run.run_id, "to": child["run"], "kind": "child", "step": child.get("step"),
                            "label": ""})
        release = str(run.params.get("release_run") or "")
        if release in ids and not run.parent:          # a rollback started on its own (not by the release)
            out.append({"from": release, "to": run.run_id, "kind": "rollback", "step": "", "label": "rolls back"})
        for t in run.takeovers:
            if t.get("from_run") in ids:
                out.append({"from": t["from_run"], "to": run.run_id, "kind": "takeover", "step": "",
                            "time": t["time"], "label": f"lock taken by {run.runbook}"})
    return out


def summarize(runs: list[RunView]) -> dict[str, Any]:
    """The incident's summary, from the journals (the rules are in this module's docstring)."""
    by_id = {r.run_id: r for r in runs}
    started_by_another = {c.get("run") for r in runs for c in r.children}
    releases = [r for r in runs if r.version and r.run_id not in started_by_another]
    release = releases[0] if releases else None
    failing = []                                   # (time, run, step) of each step that ended a run failed
    for r in runs:
        if r.status in ("failed", "rolled-back"):
            failed = [s for s in r.steps if s.status == "failed" and s.finished]
            if failed:
                step = max(failed, key=lambda s: s.finished)
                failing.append((step.finished, r, step))
    failing.sort(key=lambda f: f[0])
    out: dict[str, Any] = {"runs": len(runs), "released": None, "went_live": None, "failed": None,
                           "restored_by": None, "healthy": None, "time_to_detect_s": None,
                           "time_to_restore_s": None, "rules": __doc__.split("The summary's rules, stated in the "
                                                                            "report too:", 1)[-1].strip()}
    if release is not None:
        out["released"] = {"run": release.run_id, "runbook": release.runbook, "title": release.name,
                           "version": release.version, "operator": (release.operators or [""])[0],
                           "started": release.started, "outcome": release.outcome}
    if not failing:
        return out
    failed_at, failed_run, failed_step = failing[0]
    item = next((i for i in failed_step.items if i.passed is False and not i.skipped), None)
    out["failed"] = {"time": failed_at, "run": failed_run.run_id, "runbook": failed_run.runbook,
                     "step": failed_step.id, "title": failed_step.name,
                     "check": item.key if item else "", "summary": item.summary if item else failed_step.reason}
    origin = release if release is not None and release.run_id == failed_run.run_id else failed_run
    live = [s for s in origin.steps if s.status == "succeeded" and s.finished and s.finished <= failed_at
            and (DEPLOY.search(s.id) or DEPLOY.search(s.title)) and not (VERIFY.search(s.id) or VERIFY.search(s.title))]
    went = max(live, key=lambda s: s.finished) if live else None
    out["went_live"] = {"time": went.finished if went else origin.started, "run": origin.run_id,
                        "step": went.id if went else "", "title": went.name if went else "(the run's start)"}
    # the run that restored the service: the one that rolled the failed run back, and the runs it started
    restorer = by_id.get(failed_run.rolled_back_by)
    candidates: list[RunView] = []
    if restorer is not None:
        stack = [restorer]
        while stack:
            r = stack.pop(0)
            if r in candidates:
                continue
            candidates.append(r)
            stack += [by_id[str(c["run"])] for c in r.children if c.get("run") in by_id]
    else:
        candidates = [r for r in runs if r.started > failed_at and r.status == "succeeded"]
    healthy: dict[str, Any] | None = None
    for r in sorted(candidates, key=lambda x: x.started):
        steps = [s for s in r.steps if s.finished and s.finished >= failed_at]
        for n, s in enumerate(steps):
            if s.status == "succeeded" and (VERIFY.search(s.id) or VERIFY.search(s.title)):
                group = [s]
                for nxt in steps[n + 1:]:
                    if nxt.status == "succeeded" and (VERIFY.search(nxt.id) or VERIFY.search(nxt.title)):
                        group.append(nxt)
                    else:
                        break
                at = group[-1].finished
                if healthy is None or at < healthy["time"]:
                    healthy = {"time": at, "run": r.run_id, "runbook": r.runbook,
                               "steps": [g.id for g in group], "how": "verification passed"}
                break
    if healthy is None and restorer is not None and restorer.status == "succeeded":
        healthy = {"time": restorer.ended, "run": restorer.run_id, "runbook": restorer.runbook, "steps": [],
                   "how": "it succeeded"}
    if restorer is not None:
        out["restored_by"] = {"run": restorer.run_id, "runbook": restorer.runbook, "title": restorer.name,
                              "started": restorer.started, "operator": (restorer.operators or [""])[0],
                              "outcome": restorer.outcome}
    out["healthy"] = healthy
    out["time_to_detect_s"] = seconds_between(out["went_live"]["time"], failed_at)
    out["time_to_restore_s"] = seconds_between(failed_at, healthy["time"]) if healthy else None
    return out


def actions(runs: list[RunView]) -> list[dict[str, Any]]:
    """Who did what, in time order: each run's start and end, every answer a person gave (checklists,
    confirmations, decisions, rollback offers), approvals, lock takeovers, deviations."""
    out: list[dict[str, Any]] = []
    for r in runs:
        who = (r.operators or ["-"])[0]
        start = "started" if not r.parent else f"started (by {r.parent.get('step')} of {r.parent.get('run')})"
        out.append({"time": r.started, "who": who, "run": r.run_id, "runbook": r.runbook,
                    "what": f"{start} {r.name}" + (f" {r.version}" if r.version else "")})
        for s in r.sessions[1:]:
            out.append({"time": s["time"], "who": s.get("operator") or "-", "run": r.run_id, "runbook": r.runbook,
                        "what": f"resumed after {duration(s.get('gap_s'))}"})
        for p in r.prompts:
            step = r.step_of(str(p["id"]))
            about = p.get("question") or p["id"]
            from .prompts import answer_text

            out.append({"time": p["time"], "who": p.get("by") or who, "run": r.run_id, "runbook": r.runbook,
                        "what": f"answered {about!r} ({step.name if step else p['id']}): {answer_text(p['answer'])}"
                                + (f" - refused: {p['refused']}" if p.get("refused") else "")})
        for a in r.approvals:
            out.append({"time": a["time"], "who": ", ".join(a["approvers"]), "run": r.run_id, "runbook": r.runbook,
                        "what": f"approved {a['step']}"})
        for t in r.takeovers:
            out.append({"time": t["time"], "who": t.get("by") or who, "run": r.run_id, "runbook": r.runbook,
                        "what": f"took lock {t.get('key')!r} from run {t.get('from_run')} "
                                f"({t.get('from_operator')}): {t.get('reason')}"})
        for d in r.deviations:
            if d["kind"] != "emergency lock takeover":
                out.append({"time": d["time"], "who": who, "run": r.run_id, "runbook": r.runbook,
                            "what": f"deviation: {d['kind']}{' in ' + d['step'] if d['step'] else ''}: {d['detail']}"})
        if r.ended:
            out.append({"time": r.ended, "who": (r.sessions[-1].get("operator") if r.sessions else None) or who,
                        "run": r.run_id, "runbook": r.runbook,
                        "what": f"{r.name}: {r.outcome}" + (f" ({r.reason})" if r.reason else "")})
    return sorted(out, key=lambda a: (a["time"], a["run"]))


def summary_lines(s: dict[str, Any]) -> list[tuple[str, str]]:
    """The summary as (label, sentence) pairs, shared by every format."""
    out = []
    rel = s.get("released")
    if rel:
        out.append(("Released", f"{rel['title']} {rel['version']} (run {rel['run']}) by {rel['operator']}, "
                                f"started {rel['started']}: {rel['outcome']}"))
    live = s.get("went_live")
    if live:
        out.append(("Went live", f"{live['time']} (end of step {live['title']} [{live['step'] or '-'}])"))
    failed = s.get("failed")
    if failed:
        out.append(("Failed", f"{failed['time']}: {failed['title']} [{failed['step']}] in {failed['runbook']}"
                              + (f" - {failed['check']}: " if failed["check"] else " - ") + str(failed["summary"])))
    else:
        out.append(("Failed", "no run in the window ended failed"))
    restorer = s.get("restored_by")
    if restorer:
        out.append(("Rolled back by", f"{restorer['title']} (run {restorer['run']}) by {restorer['operator']}, "
                                      f"started {restorer['started']}: {restorer['outcome']}"))
    healthy = s.get("healthy")
    if healthy:
        out.append(("Healthy again", f"{healthy['time']}: {healthy['how']} in {healthy['runbook']}"
                                     + (f" ({', '.join(healthy['steps'])})" if healthy["steps"] else "")))
    elif failed:
        out.append(("Healthy again", "not recorded in the window (no rollback's verification passed)"))
    if failed:
        out.append(("Time to detect", f"{duration(s.get('time_to_detect_s'))} (from going live to the failure)"))
        out.append(("Time to restore", f"{duration(s.get('time_to_restore_s'))} (from the failure to healthy again)"
                    if s.get("time_to_restore_s") is not None else "not restored in the window"))
    return out


def as_json(env: str, since: str, until: str, runs: list[RunView], summary: dict[str, Any],
            did: list[dict[str, Any]], links: list[dict[str, Any]]) -> str:
    from .report import shown_params

    data: dict[str, Any] = {"environment": env, "since": since, "until": until, "summary": summary, "actions": did,
            "links": links, "runs": []}
    for r in runs:
        d = r.to_dict()
        d["params"] = shown_params(r)
        data["runs"].append(d)
    return json.dumps(data, indent=2, default=str) + "\n"


def as_markdown(env: str, since: str, until: str, runs: list[RunView], summary: dict[str, Any],
                did: list[dict[str, Any]], links: list[dict[str, Any]], verified: dict[str, str]) -> str:
    from .report import markdown_links, symbol
    from .report.markdown import esc_md

    md = [f"# Incident report: {env}, {since} to {until}", ""]
    md += ["## Summary", "", "| | |", "|---|---|"]
    md += [f"| {k} | {esc_md(v)} |" for k, v in summary_lines(summary)]
    md += ["", "## Who did what", "", "| Time | Who | Run | What |", "|---|---|---|---|"]
    md += [f"| {hms(a['time'])} | {esc_md(a['who'])} | {a['runbook']} `{a['run'][-6:]}` | {esc_md(a['what'])} |"
           for a in did]
    md += ["", "## Runs", "", "| Run | Runbook | Operator | Started | Ended | Outcome | Journal |",
           "|---|---|---|---|---|---|---|"]
    md += [f"| `{r.run_id}` | {esc_md(r.name)} (`{r.runbook}`) | {', '.join(r.operators)} | {r.started} | "
           f"{r.ended or '-'} | {symbol(r.status)} {r.outcome} | {verified.get(r.run_id, '-')} |" for r in runs]
    md.append("")
    for r in runs:
        md += [f"## {r.name}: `{r.run_id}`", ""]
        md += [l.replace("## Linked runs", "### Linked runs") for l in markdown_links(_links_for(r))]
        failures = r.failures
        if failures:
            md += ["### What failed", ""]
            md += [f"- {hms(i.time)} {esc_md(s.name)} (`{s.id}`) > {i.key} ({i.uses}): {esc_md(i.summary)}"
                   for s, i in failures]
            md.append("")
        md += ["### Steps", "", "| Step | Status | Started | Duration | Notes |", "|---|---|---|---|---|"]
        md += [f"| {esc_md(s.name)} (`{s.id}`) | {symbol(s.status)} {s.status} | {hms(s.started)} | "
               f"{duration(s.duration)} | {esc_md(s.reason)} |" for s in r.steps]
        md.append("")
    md += ["## How the summary is computed", "", summary["rules"], ""]
    return "\n".join(md)


def marks(summary: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The summary's moments on the timeline: went live, failed, healthy again."""
    out = []
    if summary.get("went_live") and summary.get("failed"):
        out.append((summary["went_live"]["time"], f"▲ went live {hms(summary['went_live']['time'])}", "#37474f"))
    if summary.get("failed"):
        out.append((summary["failed"]["time"], f"✗ failed {hms(summary['failed']['time'])}", "#c62828"))
    if summary.get("healthy"):
        out.append((summary["healthy"]["time"], f"✓ healthy again {hms(summary['healthy']['time'])} "
                                                f"(time to restore {duration(summary.get('time_to_restore_s'))})",
                    "#2e7d32"))
    return out


def _links_for(r: RunView) -> dict[str, Any]:
    links: dict[str, Any] = {"children": r.children}
    if r.parent:
        links["parent"] = dict(r.parent)
    if r.params.get("release_run"):
        links["rolled_back"] = [{"run": r.params["release_run"], "runbook": "", "version": ""}]
    if r.rolled_back_by:
        links["rolled_back_by"] = r.rolled_back_by
    return links


def as_html(env: str, since: str, until: str, runs: list[RunView], summary: dict[str, Any],
            did: list[dict[str, Any]], links: list[dict[str, Any]], verified: dict[str, str]) -> str:
    from .report import LEGEND, page, run_sections, svg_timeline
    from .report.common import clock_time, esc_html
    from .report.html import fact_list, status_badge, table

    failed = summary.get("failed")
    facts = fact_list([(k, esc_html(v)) for k, v in summary_lines(summary)])
    ttr = summary.get("time_to_restore_s")
    headline = (f"Failed at {esc_html(hms(failed['time']))}; healthy again after {esc_html(duration(ttr))}" if failed and ttr
                is not None else f"Failed at {esc_html(hms(failed['time']))}; not restored in the window" if failed
                else "No run in the window failed")
    body = [f'<header><h1>Incident report: {esc_html(env)}</h1><p>{esc_html(since)} to {esc_html(until)} · {len(runs)} run(s), '
            f'from their journals</p>'
            f'<p class="summary{"" if failed else " ok"}"><strong>{"✗ " if failed else "✓ "}{headline}</strong></p>'
            f"</header>",
            f'<section class="incident-summary"><h2>Summary</h2>{facts}</section>',
            '<section class="timeline"><h2>Timeline</h2><figure id="timeline">'
            + svg_timeline(runs, links, marks(summary)) + f"<figcaption>{LEGEND}</figcaption></figure></section>",
            '<section class="who"><h2>Who did what</h2>'
            + table(["Time", "Who", "Run", "What"],
                     [[clock_time(a["time"]), esc_html(a["who"]), f'<a href="#run-{esc_html(a["run"])}">{esc_html(a["runbook"])}</a>',
                       esc_html(a["what"])] for a in did]) + "</section>",
            '<section class="runs"><h2>Runs</h2>'
            + table(["Run", "Runbook", "Operator", "Started", "Ended", "Outcome", "Journal"],
                     [[f'<a href="#run-{esc_html(r.run_id)}"><code>{esc_html(r.run_id)}</code></a>',
                       f'{esc_html(r.name)} <span class="id">{esc_html(r.runbook)}</span>', esc_html(", ".join(r.operators)),
                       esc_html(r.started), esc_html(r.ended or "-"), status_badge(r.status, r.outcome), esc_html(verified.get(r.run_id, "-"))]
                      for r in runs]) + "</section>"]
    for r in runs:
        body.append(f'<section class="run" id="run-{esc_html(r.run_id)}"><h2>{esc_html(r.name)}: run '
                    f'<span class="id">{esc_html(r.run_id)}</span></h2><p>{status_badge(r.status, r.outcome)}'
                    + (f" — {esc_html(r.reason)}" if r.reason else "") + f" · {esc_html(', '.join(r.operators))} · "
                    f"{clock_time(r.started)} to {clock_time(r.ended)}</p>"
                    + run_sections(r, verified.get(r.run_id, ""), _links_for(r), level=3, anchor=f"{r.run_id}-")
                    + "</section>")
    body.append(f'<section class="rules"><h2>How the summary is computed</h2><pre>{esc_html(summary["rules"])}</pre></section>')
    return page(f"Incident report: {env} {since} to {until}", "".join(body))
