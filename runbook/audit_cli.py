"""The `audit.*` review commands: list, show, timeline, export (`audit.verify` is in
``backends.commands``, beside the team backend's own checks)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TextIO

from . import clock
from .backends import store_of
from .errors import ExitCode, InputError
from .exports import export_data, verified_text


def audit_list(root: Path, runbook: str | None = None, env: str | None = None, status: str | None = None,
               operator: str | None = None, since: str | None = None, until: str | None = None,
               as_json: bool = False, out: TextIO = sys.stdout) -> int:
    """`invoke audit.list`: runs newest first, a line each (``--env`` also selects its team backend)."""
    from .review import Index, parse_since, select, shown_status
    from .state import outcome_text

    store = store_of(root, env)
    holders = {h.run_id: h for h in store.locks.all()}
    rows = []
    for r in Index(store).summaries():
        shown = shown_status(r["status"], r["run"], r.get("parent"), holders)
        rows.append(dict(r, status=shown, outcome=outcome_text(shown, r["deviations"])))
    rows = select(rows, runbook, env, status, operator, parse_since(since), parse_since(until, "--until"))
    if as_json:
        out.write(json.dumps(rows, indent=2) + "\n")
        return ExitCode.OK
    if not rows:
        out.write("No runs match.\n")
        return ExitCode.OK
    out.write(f"{'RUN':<30}  {'RUNBOOK':<22} {'ENV':<11} {'OPERATOR':<28} {'STARTED':<19}  {'TOOK':>7}  "
              f"{'DEV':>3}  {'OUTCOME':<30} VERSION\n")
    for r, depth in linked_order(rows):
        dur = "-" if r["duration_s"] is None else f"{r['duration_s']:.0f}s"
        name = ("  " * (depth - 1) + " +- " if depth else "") + r["runbook"]
        out.write(f"{r['run']:<30}  {name:<22} {r['environment'] or '-':<11} {r['operator']:<28} "
                  f"{r['started'][:19]}  {dur:>7}  {r['deviations']:>3}  {r['outcome']:<30} {r['version']}\n")
    return ExitCode.OK


def linked_order(rows: list[dict]) -> list[tuple[dict, int]]:
    """Newest first, each linked run right under the run that started it (with its depth)."""
    listed = {r["run"] for r in rows}
    children: dict[str, list[dict]] = {}
    for r in rows:
        parent = str((r.get("parent") or {}).get("run") or "")
        if parent in listed:
            children.setdefault(parent, []).append(r)
    out: list[tuple[dict, int]] = []

    def walk(r: dict, depth: int) -> None:
        out.append((r, depth))
        for child in sorted(children.get(r["run"], []), key=lambda c: c["run"]):
            walk(child, depth + 1)
    for r in rows:
        if (r.get("parent") or {}).get("run") not in listed:
            walk(r, 0)
    return out


def audit_show(root: Path, run_id: str, as_json: bool = False, out: TextIO = sys.stdout,
               env: str | None = None) -> int:
    """`invoke audit.show RUN_ID`: everything a review needs about one run."""
    from . import report
    from .review import load_view

    store = store_of(root, env)
    run = load_view(store, run_id)
    verified = verified_text(store, run.run_id)
    if as_json:
        data = run.to_dict()
        data["params"] = report.shown_params(run)
        data["verification"] = verified
        out.write(json.dumps(data, indent=2, default=str) + "\n")
        return ExitCode.OK
    out.write(report.text(run, verified))
    return ExitCode.OK


def audit_timeline(root: Path, since: str | None = "2h", until: str | None = None, env: str | None = None,
                   as_json: bool = False, out: TextIO = sys.stdout, verbose: bool = False) -> int:
    """`invoke audit.timeline --since 2h`: the runs of a window in time order, a line per step outcome,
    answer and failure (``--verbose``: every record, intents and passing checks too); who operated is
    said once per session."""
    from .review import parse_since, timeline

    events = timeline(store_of(root, env), parse_since(since or "2h"), parse_since(until, "--until"), env)
    if not verbose:
        events = [e for e in events if e["type"] in BRIEF or (e["type"] == "item.result" and not e.get("passed"))]
    if as_json:
        out.write(json.dumps(events, indent=2) + "\n")
        return ExitCode.OK
    if not events:
        out.write("No events in that window.\n")
    operator_of: dict[str, str] = {}
    for e in events:
        who = ""
        if e["type"] in ("run.started", "session.started") or operator_of.get(e["run"]) != e["operator"]:
            who = f"  [{e['operator']}]"
            operator_of[e["run"]] = e["operator"]
        out.write(f"{e['time'][11:19]}  {e['runbook']:<20} {e['run'][-6:]}  {e['text']}{who}\n")
    return ExitCode.OK


# What the timeline shows by default: the steps' outcomes, answers, failures and the runs' own events.
BRIEF = frozenset({"run.started", "session.started", "step.finished", "prompt.answered", "child.started",
                   "child.finished", "run.offer", "lock.takeover", "run.forced", "run.parked", "run.interrupted",
                   "run.failed", "run.succeeded", "run.rolled-back", "run.abandoned"})


def audit_export(root: Path, run_id: str, fmt: str = "md", output: str | None = None,
                 out: TextIO = sys.stdout, env: str | None = None) -> int:
    """`invoke audit.export RUN_ID --format md|json|html [--output F]`."""
    from . import report
    from .review import describe

    if fmt not in ("md", "json", "html"):
        raise InputError([f"<command line>: --format must be md, json or html, not {fmt!r} (at --format)"])
    store = store_of(root, env)
    run, verified, links, related, edges = export_data(store, run_id)
    events = [f"{e['time'][11:19]} {e.get('operator', '')}: {describe(e)}" for e in run.events]
    if fmt == "json":
        data = run.to_dict()
        data.update({"params": report.shown_params(run), "verification": verified, "links": links,
                     "timeline": [{"time": e["time"], "type": e["type"], "operator": e.get("operator"),
                                   "text": describe(e)} for e in run.events]})
        text = json.dumps(data, indent=2, default=str) + "\n"
    elif fmt == "md":
        text = report.markdown(run, verified, events, links)
    else:
        brief = [{"time": e["time"], "operator": e.get("operator"), "text": describe(e)} for e in run.events
                 if e.get("type") in BRIEF or (e.get("type") == "item.result" and not (e.get("data") or {}).get("passed"))]
        text = report.html_report(run, verified, links, related, edges, brief)
    return _deliver(text, output, out)


def audit_incident(root: Path, env: str | None = None, since: str | None = None, until: str | None = None,
                   fmt: str = "md", output: str | None = None, out: TextIO = sys.stdout) -> int:
    """`invoke audit.incident --env ENV --since T [--until T] --format html|md|json [--output F]`: every run
    of the window and the runs linked to them on one time axis, a summary on top."""

    from . import incident
    from .review import parse_since, stamp

    problems = []
    if not env:
        problems.append("<command line>: --env is required: the environment the incident happened in (at --env)")
    if not since:
        problems.append("<command line>: --since is required: 2h, 3d or an ISO time (at --since)")
    if fmt not in ("md", "json", "html"):
        problems.append(f"<command line>: --format must be md, json or html, not {fmt!r} (at --format)")
    if problems:
        raise InputError(problems)
    start, end = parse_since(since), parse_since(until, "--until")
    store = store_of(root, env)
    runs = incident.gather(store, env, start, end)
    links = incident.links_of(runs)
    summary = incident.summarize(runs)
    did = incident.actions(runs)
    since_s = stamp(start) if start else ""
    until_s = stamp(end) if end else f"now ({stamp(clock.now())})"
    assert env is not None
    if fmt == "json":
        text = incident.as_json(env, since_s, until_s, runs, summary, did, links)
    else:
        verified = {r.run_id: verified_text(store, r.run_id) for r in runs}
        render = incident.as_html if fmt == "html" else incident.as_markdown
        text = render(env, since_s, until_s, runs, summary, did, links, verified)
    return _deliver(text, output, out, f" ({len(runs)} run(s))")


def _deliver(text: str, output: str | None, out: TextIO, note: str = "") -> int:
    """A report to its file (saying so) or to standard output."""
    if output:
        Path(output).write_text(text, encoding="utf-8")
        out.write(f"wrote {output}{note}\n")
    else:
        out.write(text)
    return ExitCode.OK
