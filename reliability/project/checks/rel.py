"""Actions for the reliability suite: each effect appends one line to a file."""

from __future__ import annotations

from pathlib import Path

from runbook.plugins import Context, Outcome, action, probe

ARGS = {"properties": {"file": {"type": "string"}, "line": {"type": "string"}}, "required": ["file", "line"]}
OUTS = {"type": "object", "properties": {"count": {"type": "integer"}}}


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _append(ctx: Context) -> Outcome:
    path = ctx.path(ctx.args["file"])
    with open(path, "a") as fh:
        fh.write(ctx.args["line"] + "\n")
    return Outcome.ok(f"appended {ctx.args['line']!r}", count=len(_lines(path)))


@action("rel.append", args=ARGS, outputs=OUTS)
def append(ctx: Context) -> Outcome:
    """Append a line; its probe finds the line."""
    return _append(ctx)


@probe("rel.append")
def append_done(ctx: Context) -> Outcome | None:
    path = ctx.path(ctx.args["file"])
    if ctx.args["line"] in _lines(path):
        return Outcome.ok(f"{ctx.args['line']!r} is already there", count=len(_lines(path)))
    return None


@action("rel.append_badprobe", args=ARGS, outputs=OUTS)
def append_badprobe(ctx: Context) -> Outcome:
    """Append a line; its probe cannot tell (it fails), so the step's verify decides."""
    return _append(ctx)


@probe("rel.append_badprobe")
def append_badprobe_done(ctx: Context) -> Outcome | None:
    return Outcome.fail("the probe could not reach the system")


@action("rel.append_noprobe", args=ARGS, outputs=OUTS)
def append_noprobe(ctx: Context) -> Outcome:
    """Append a line; no probe."""
    return _append(ctx)
