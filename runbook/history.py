"""Read-only access to other runs' journals, for plugins (a rollback finds its release here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .state import RunState


@dataclass
class RunSummary:
    run_id: str
    runbook: str
    env: str | None
    status: str
    started: str
    params: dict[str, Any]
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)   # "STEP.ITEM" -> outputs
    parent: dict[str, Any] | None = None


def summarize(state: RunState) -> RunSummary:
    outputs = {}
    for sid, step in state.steps.items():
        for key, item in step.items.items():
            if item.result is not None and item.result.get("outputs"):
                outputs[f"{sid}.{key}"] = dict(item.result["outputs"])
    return RunSummary(state.run_id, state.runbook, state.env, state.status.value, state.started, dict(state.params),
                      outputs, state.parent)


class History:
    """Runs of this state home, newest first; plugins may read, never write."""

    def __init__(self, store: Any, exclude: str = ""):
        self._store = store
        self._exclude = exclude

    def runs(self, runbook: str | None = None, env: str | None = None, status: str | None = None) -> list[RunSummary]:
        out = []
        for run_id in reversed(self._store.run_ids()):
            if run_id == self._exclude:
                continue
            summary = summarize(self._store.state(run_id))
            if runbook and summary.runbook != runbook:
                continue
            if env and summary.env != env:
                continue
            if status and summary.status != status:
                continue
            out.append(summary)
        return out

    def run(self, run_id: str) -> RunSummary:
        return summarize(self._store.state(self._store.find(run_id)))

    def markdown(self, run_id: str) -> str:
        """A run's Markdown report (what `invoke audit.export RUN_ID --format md` writes)."""
        from .exports import export_markdown

        return export_markdown(self._store, self._store.find(run_id))
