"""core.equals: the simplest check, comparing two resolved values."""

from __future__ import annotations

from runbook.api import Context, Outcome, check


@check("core.equals",
       args={"properties": {"actual": {}, "expected": {}, "label": {"type": "string"}},
             "required": ["actual", "expected"]},
       outputs={"type": "object", "properties": {"actual": {}}})
def equals(ctx: Context) -> Outcome:
    """Pass when `actual` equals `expected`."""
    actual, expected = ctx.args["actual"], ctx.args["expected"]
    label = ctx.args.get("label", "value")
    if actual == expected:
        return Outcome.ok(f"{label} is {actual!r}", {"actual": actual}, actual=actual)
    return Outcome.fail(f"{label}: expected {expected!r}, found {actual!r}",
                        {"actual": actual, "expected": expected}, actual=actual)
