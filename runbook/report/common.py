"""What every rendering of a run shares: durations, times, symbols, item labels, sessions, takeovers."""

from __future__ import annotations

import html
from typing import Any

from ..review import RunView, parse_time


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds >= 3600:
        return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def shown_params(run: RunView) -> dict[str, Any]:
    shown: dict[str, Any] = dict(run.params)
    for name in run.secret_params:
        shown[name] = "******** (secret)"
    return shown


def hms(when: str) -> str:
    return when[11:19] if when else "-"


def seconds_between(start: str, end: str) -> float | None:
    if not start or not end:
        return None
    return (parse_time(end) - parse_time(start)).total_seconds()


SYMBOL = {"succeeded": "✓", "failed": "✗", "skipped": "–", "running": "…", "rolled-back": "↺", "parked": "⏸",
          "interrupted": "⏸", "abandoned": "⊘", "ok": "✓", "done": "✓", "FAILED": "✗", "not done": "⚠",
          "not.done": "⚠", "asked": "?"}


def symbol(status: str) -> str:
    return SYMBOL.get(status, "•")


def item_label(item: Any) -> str:
    """A manual item by its text (its key beside it); a check or action by its key and plugin."""
    if item.kind == "manual" and item.text:
        return f"{item.text} [{item.key}]"
    return item.key + (f" ({item.uses})" if item.uses else "")


def session_lines(run: RunView) -> list[str]:
    """Each session: who, where, how it ended; a resume says after how long."""
    out = []
    for n, s in enumerate(run.sessions, 1):
        head = f"{n}. {hms(s['time'])} {s.get('operator') or '-'} on {s.get('host') or '-'}"
        if s.get("resume"):
            head += f" resumed after {duration(s.get('gap_s'))}"
            if s.get("after"):
                head += f" (the previous session ended: {s['after']})"
        if s.get("ended"):
            head += f"; ended {hms(s['ended'])} {s.get('end') or ''}".rstrip()
        out.append(head)
    return out


def takeover_line(t: dict[str, Any]) -> str:
    return (f"{hms(t['time'])} {t.get('by') or '-'} took lock {t.get('key')!r} from run {t.get('from_run') or '-'} "
            f"({t.get('from_operator') or '-'}): {t.get('reason') or ''}")


def esc_html(value: Any) -> str:
    return html.escape(str(value if value is not None else ""), quote=True)


def clock_time(when: str | None) -> str:
    """A journal time as HH:MM:SS that never wraps, the full time in its ``datetime``."""
    return f'<time datetime="{esc_html(when or "")}">{esc_html(hms(when or ""))}</time>' if when else "-"
