"""The text of `audit.show`."""

from __future__ import annotations

import json

from ..prompts import answer_text
from ..review import RunView
from .common import duration, hms, item_label, session_lines, shown_params, takeover_line


def text(run: RunView, verified: str) -> str:
    """What `invoke audit.show RUN_ID` prints: the runbook's words, ids beside them."""
    out = [f"Run {run.run_id}: {run.runbook} ({run.title})",
           f"  environment: {run.environment or '-'}    status: {run.outcome}"
           + (f" ({run.reason})" if run.reason else ""),
           f"  started: {run.started}    ended: {run.ended or '-'}    duration: {duration(run.duration)}",
           f"  operators: {', '.join(run.operators)}    sessions: {len(run.sessions)}",
           f"  digest: {run.digest}",
           f"  journal: {verified}",
           "  parameters: " + (", ".join(f"{k}={v}" for k, v in shown_params(run).items()) or "none")]
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
            out.append(f"    {hms(item.time)} {step.name} [{step.id}] > {item.key}"
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
                   f"started {hms(step.started)}  "
                   f"took {duration(step.duration)}" + (f"  -- {step.reason}" if step.reason else ""))
        for item in step.items:
            if item.kind == "manual":
                line = f"      {item.mark:<8} {item_label(item)}"
                if item.answer is not None:
                    line += f": {answer_text(item.answer)} (by {item.answered_by or '-'} at {hms(item.answered_at)}"
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
                       f"by {p['by']} at {hms(p['time'])} ({p['source']})"
                       + (f" REFUSED: {p['refused']}" if p.get("refused") else ""))
    if run.prompts:
        out.append("  prompts:")
        for p in run.prompts:
            out.append(f"    {hms(p['time'])} {p['id']}: {answer_text(p['answer'])} by {p['by']} "
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
            out.append(f"    {hms(d['time'])} {d['kind']}{' in ' + d['step'] if d['step'] else ''}: {d['detail']}")
    if run.notes:
        out.append("  notes (retries, recoveries, offers; not deviations):")
        for d in run.notes:
            out.append(f"    {hms(d['time'])} {d['kind']}{' in ' + d['step'] if d['step'] else ''}: {d['detail']}")
    return "\n".join(out) + "\n"
