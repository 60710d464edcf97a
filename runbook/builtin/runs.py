"""runs.output, runs.param, runs.report: read what another run recorded in its journal (read-only).

A rollback reads what its release recorded: the merge commit to revert, whether the
release changed migrations. ``run`` is a run id (any unique prefix); ``item`` is
``STEP.ITEM``; ``field`` the output's name.
"""

from __future__ import annotations

from typing import Any, Callable

from runbook.api import RunbookError
from runbook.api import Context, Outcome, check

_MISSING = object()


def _run(ctx: Context, read: Callable[[Any, str], Any]) -> Any:
    """What ``read(history, run)`` returns, or a failed Outcome saying why it could not be read."""
    if ctx.history is None:
        return Outcome.fail("no run history is available to this check")
    try:
        return read(ctx.history, ctx.args["run"])
    except RunbookError as exc:
        return Outcome.fail(f"run {ctx.args['run']!r}: {exc}")


@check("runs.output",
       args={"properties": {"run": {"type": "string", "minLength": 1}, "item": {"type": "string", "minLength": 3},
                            "field": {"type": "string", "minLength": 1}, "expected": {},
                            "label": {"type": "string"},
                            "default": {"description": "the value when the run has not recorded it (yet): then "
                                                       "the check passes with it instead of failing"}},
             "required": ["run", "item", "field"]},
       outputs={"type": "object", "properties": {"value": {}, "run": {"type": "string"},
                                                  "recorded": {"type": "boolean"}}})
def output(ctx: Context) -> Outcome:
    """Pass when the run recorded `item`.`field` (and it equals `expected`, when given)."""
    run = _run(ctx, lambda history, run_id: history.run(run_id))
    if isinstance(run, Outcome):
        return run
    outputs = run.outputs.get(ctx.args["item"])
    value = (outputs or {}).get(ctx.args["field"], _MISSING)
    label = ctx.args.get("label") or f"{ctx.args['item']}.{ctx.args['field']} of run {run.run_id}"
    evidence = {"run": run.run_id, "runbook": run.runbook, "item": ctx.args["item"], "field": ctx.args["field"]}
    if value is _MISSING and "default" in ctx.args:
        return Outcome.ok(f"{label}: not recorded by run {run.run_id} ({run.status}) so far; "
                          f"{ctx.args['default']!r} instead", {**evidence, "recorded": False},
                          value=ctx.args["default"], run=run.run_id, recorded=False)
    if value is _MISSING:
        return Outcome.fail(f"{label}: run {run.run_id} ({run.runbook}, {run.status}) recorded no such output "
                            f"(see `invoke audit.show {run.run_id}`)", evidence, run=run.run_id)
    if "expected" in ctx.args and value != ctx.args["expected"]:
        return Outcome.fail(f"{label}: expected {ctx.args['expected']!r}, found {value!r}", {**evidence, "value": value},
                            value=value, run=run.run_id)
    return Outcome.ok(f"{label}: {value!r}", {**evidence, "value": value}, value=value, run=run.run_id, recorded=True)


@check("runs.param",
       args={"properties": {"run": {"type": "string", "minLength": 1}, "name": {"type": "string", "minLength": 1},
                            "default": {"description": "the value when the run has no such parameter"}},
             "required": ["run", "name"]},
       outputs={"type": "object", "properties": {"value": {}, "run": {"type": "string"},
                                                  "runbook": {"type": "string"}, "status": {"type": "string"}}})
def param(ctx: Context) -> Outcome:
    """A parameter another run was started with (a rollback's reason); secret parameters are never read."""
    run = _run(ctx, lambda history, run_id: history.run(run_id))
    if isinstance(run, Outcome):
        return run
    name = ctx.args["name"]
    evidence = {"run": run.run_id, "runbook": run.runbook, "param": name, "status": run.status}
    if name not in run.params:
        if "default" in ctx.args:
            return Outcome.ok(f"run {run.run_id} ({run.runbook}) has no parameter {name}; {ctx.args['default']!r} "
                              "instead", evidence, value=ctx.args["default"], run=run.run_id, runbook=run.runbook,
                              status=run.status)
        return Outcome.fail(f"run {run.run_id} ({run.runbook}) has no parameter {name} (see `invoke audit.show "
                            f"{run.run_id}`)", evidence, run=run.run_id, runbook=run.runbook, status=run.status)
    value = run.params[name]
    return Outcome.ok(f"{name} of run {run.run_id} ({run.runbook}, {run.status}): {ctx.redact(str(value))!r}",
                      {**evidence, "value": value}, value=value, run=run.run_id, runbook=run.runbook,
                      status=run.status)


@check("runs.report",
       args={"properties": {"run": {"type": "string", "minLength": 1}}, "required": ["run"]},
       outputs={"type": "object", "properties": {"markdown": {"type": "string"}, "run": {"type": "string"}}})
def report(ctx: Context) -> Outcome:
    """The Markdown report of a run (its incident timeline), for an issue body."""
    text = _run(ctx, lambda history, run_id: history.markdown(run_id))
    if isinstance(text, Outcome):
        return text
    return Outcome.ok(f"report of run {ctx.args['run']}: {len(text.splitlines())} lines", {"lines": len(text.splitlines())},
                      markdown=ctx.redact(text), run=ctx.args["run"])
