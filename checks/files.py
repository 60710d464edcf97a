"""file.contains: a regular expression found in a file."""

from __future__ import annotations

import re

from runbook.plugins import Context, Outcome, check


@check("file.contains",
       args={"properties": {"path": {"type": "string", "minLength": 1},
                            "pattern": {"type": "string", "minLength": 1, "format": "regex"}},
             "required": ["path", "pattern"]},
       outputs={"type": "object", "properties": {"match": {"type": "string"}, "line": {"type": "integer"},
                                                  "groups": {"type": "array", "items": {"type": "string"}}}})
def contains(ctx: Context) -> Outcome:
    """Pass when the file at `path` contains a match for `pattern` (multi-line mode)."""
    path = ctx.path(ctx.args["path"])
    pattern = re.compile(ctx.args["pattern"], re.MULTILINE)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return Outcome.fail(f"{path}: no such file (expected it to contain /{pattern.pattern}/)", {"path": str(path)})
    except OSError as exc:
        return Outcome.fail(f"{path}: cannot read ({exc.strerror})", {"path": str(path)})
    m = pattern.search(text)
    if not m:
        return Outcome.fail(f"{path}: no match for /{pattern.pattern}/", {"path": str(path), "size": len(text)})
    line = text.count("\n", 0, m.start()) + 1
    found = ctx.redact(m.group(0))[:500]
    groups = [ctx.redact(g or "")[:500] for g in m.groups()]
    return Outcome.ok(f"{path}:{line} matches /{pattern.pattern}/", {"path": str(path), "line": line, "match": found},
                      match=found, line=line, groups=groups)
