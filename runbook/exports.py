"""What the exports read: a run, its verification, its links (parent, children, the release it
rolled back, the run it took the lock from) and related runs, from the store; the renderers in
``runbook.report`` read nothing themselves."""

from __future__ import annotations

from typing import Any

from .errors import RunbookError


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
    from .report import markdown
    from .review import describe

    run, verified, links, _, _ = export_data(store, run_id)
    events = [f"{e['time'][11:19]} {e.get('operator', '')}: {describe(e)}" for e in run.events]
    return markdown(run, verified, events, links)
