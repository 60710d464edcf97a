"""Test plugins with observable side effects: every effect appends one line to a file."""

from __future__ import annotations

from pathlib import Path

from runbook.plugins import Context, Outcome, action, check, probe


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


@action("effects.append", args={"properties": {"file": {"type": "string"}, "line": {"type": "string"}},
                                "required": ["file", "line"]},
        outputs={"type": "object", "properties": {"count": {"type": "integer"}}})
def append(ctx: Context) -> Outcome:
    """Append a line to a file (the side effect the tests count)."""
    path = ctx.path(ctx.args["file"])
    with open(path, "a") as fh:
        fh.write(ctx.args["line"] + "\n")
    return Outcome.ok(f"appended {ctx.args['line']!r} to {path}", count=len(_lines(path)))


@probe("effects.append")
def append_done(ctx: Context) -> Outcome | None:
    path = ctx.path(ctx.args["file"])
    if ctx.args["line"] in _lines(path):
        return Outcome.ok(f"{ctx.args['line']!r} is already in {path}", count=len(_lines(path)))
    return None


@check("effects.has_line", args={"properties": {"file": {"type": "string"}, "line": {"type": "string"}},
                                 "required": ["file", "line"]},
       outputs={"type": "object", "properties": {"line": {"type": "string"}}})
def has_line(ctx: Context) -> Outcome:
    """The line is in the file (a file that cannot be read raises: the check cannot tell)."""
    path = ctx.path(ctx.args["file"])
    lines = path.read_text().splitlines() if path.exists() else []
    if ctx.args["line"] in lines:
        return Outcome.ok(f"{ctx.args['line']!r} is in {path}", line=ctx.args["line"])
    return Outcome.fail(f"{ctx.args['line']!r} is not in {path}")


@check("effects.echo", args={"properties": {"value": {}}, "required": ["value"]}, outputs={"type": "object"})
def echo(ctx: Context) -> Outcome:
    """Passes, with ``value`` as its output (of a type known only at run time)."""
    return Outcome.ok(f"value {ctx.args['value']!r}", value=ctx.args["value"])
