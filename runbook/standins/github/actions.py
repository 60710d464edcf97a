"""Workflow runs, as the deploy pipeline reports them."""

from __future__ import annotations

import zlib
from typing import Any, Mapping

from .common import JSON, Family, HTTPError, Request, now, route


class Actions(Family):
    """Workflow runs, as the deploy pipeline reports them."""

    def _run_json(self, run: JSON) -> JSON:
        return {**run, "url": f"{self.hub.api}/actions/runs/{run['id']}",
                "html_url": f"{self.hub.web}/actions/runs/{run['id']}",
                "jobs_url": f"{self.hub.api}/actions/runs/{run['id']}/jobs",
                "logs_url": f"{self.hub.api}/actions/runs/{run['id']}/logs",
                "workflow_url": f"{self.hub.api}/actions/workflows/{run['workflow_id']}",
                "repository": self.hub.repo_json()}

    def add_workflow_run(self, head_sha: str, status: str = "completed", conclusion: str | None = "success",
                         branch: str | None = None, workflow: str = "deploy-production.yml",
                         event: str = "push", name: str | None = None) -> JSON:
        """A workflow run for a commit, as the deploy pipeline reports it; returns its JSON."""
        with self.hub.lock:
            run_id = next(self.hub.ids)
            run = {"id": run_id, "name": name or workflow.rsplit(".", 1)[0], "display_title": name or workflow,
                   "head_branch": branch or self.hub.default_branch, "head_sha": head_sha, "event": event,
                   "status": status, "conclusion": conclusion if status == "completed" else None,
                   "path": f".github/workflows/{workflow}", "workflow_id": zlib.crc32(workflow.encode()),
                   "run_number": len(self.hub.all_runs) + 1, "run_attempt": 1, "created_at": now(),
                   "updated_at": now(), "run_started_at": now()}
            self.hub.all_runs.append(run)
            return self._run_json(run)

    def update_workflow_run(self, run_id: int, status: str, conclusion: str | None = None) -> None:
        """Move a run on (queued -> in_progress -> completed with a conclusion)."""
        with self.hub.lock:
            for run in self.hub.all_runs:
                if run["id"] == run_id:
                    run.update(status=status, conclusion=conclusion if status == "completed" else None,
                               updated_at=now())
                    return
        raise KeyError(run_id)

    def _runs_matching(self, query: Mapping[str, str], workflow: str | None = None) -> JSON:
        runs = [r for r in reversed(self.hub.all_runs)
                if all(not query.get(k) or str(r[k]) == query[k] for k in ("head_sha", "status", "event"))
                and (not query.get("branch") or r["head_branch"] == query["branch"])
                and (workflow is None or workflow in (r["path"].rsplit("/", 1)[-1], str(r["workflow_id"])))]
        return {"total_count": len(runs), "workflow_runs": [self._run_json(r) for r in runs]}

    @route("GET", r"/actions/runs")
    def list_runs(self, req: Request) -> tuple[int, Any]:
        return 200, self._runs_matching(req.query)

    @route("GET", r"/actions/workflows/([^/]+)/runs")
    def list_workflow_runs(self, req: Request) -> tuple[int, Any]:
        return 200, self._runs_matching(req.query, req.groups[0])

    @route("GET", r"/actions/runs/(\d+)")
    def get_run(self, req: Request) -> tuple[int, Any]:
        for run in self.hub.all_runs:
            if run["id"] == int(req.groups[0]):
                return 200, self._run_json(run)
        raise HTTPError(404, "Not Found")
