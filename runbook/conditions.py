"""Structured conditions (format 1.1): ``when``/``unless`` as data, never as code.

A condition is ``true``/``false``, one ``${...}`` resolving to a boolean, or a mapping with
one operator: ``equals``/``not_equals``/``in``/``gt``/``ge``/``lt``/``le``/``matches`` take
two operands, ``all``/``any`` a list of conditions, ``not`` one condition. Operands are
literals or ``${...}`` lookups; nothing is evaluated as an expression. Validation checks
the operand types before a run (``runbook.validate``); ``evaluate`` decides at run time on
the resolved operands and ``text`` says in words what was decided.
"""

from __future__ import annotations

import json
import re
from typing import Any

COMPARE = {"equals": "==", "not_equals": "!=", "in": "in", "gt": ">", "ge": ">=", "lt": "<", "le": "<=",
           "matches": "matches"}
LOGIC = ("all", "any", "not")
OPERATORS = tuple(COMPARE) + LOGIC
NUMERIC = ("gt", "ge", "lt", "le")


class ConditionError(ValueError):
    """A condition whose resolved operands cannot be compared (a string where a number was needed)."""




def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b     # true is not 1
    if _number(a) and _number(b):
        return bool(a == b)
    return type(a) is type(b) and bool(a == b)


def evaluate(cond: Any) -> bool:
    """The resolved condition's value; ConditionError when it cannot be decided."""
    if isinstance(cond, bool):
        return cond
    if not isinstance(cond, dict) or len(cond) != 1:
        raise ConditionError(f"{_show(cond)} is not a boolean or a condition")
    op, arg = next(iter(cond.items()))
    if op == "all":
        return all(evaluate(c) for c in arg)
    if op == "any":
        return any(evaluate(c) for c in arg)
    if op == "not":
        return not evaluate(arg)
    if op not in COMPARE or not isinstance(arg, list) or len(arg) != 2:
        raise ConditionError(f"{_show(cond)} is not a condition")
    a, b = arg
    if op == "equals":
        return _equal(a, b)
    if op == "not_equals":
        return not _equal(a, b)
    if op == "in":
        if not isinstance(b, list):
            raise ConditionError(f"in: {_show(b)} is not a list")
        return any(_equal(a, x) for x in b)
    if op == "matches":
        if not isinstance(a, str) or not isinstance(b, str):
            raise ConditionError(f"matches: {_show(a)} and {_show(b)} must both be strings")
        try:
            return re.search(b, a) is not None
        except re.error as exc:
            raise ConditionError(f"matches: invalid regular expression {b!r}: {exc}") from None
    if not _number(a) or not _number(b):
        raise ConditionError(f"{op}: {_show(a)} and {_show(b)} must both be numbers")
    return bool({"gt": a > b, "ge": a >= b, "lt": a < b, "le": a <= b}[op])


SHOWN = 60        # characters of a resolved string operand a condition in words quotes


def _show(value: Any) -> str:
    if isinstance(value, str):
        if value.startswith("${"):
            return value
        lines = value.splitlines() or [""]
        if len(lines) == 1 and len(value) <= SHOWN:
            return json.dumps(value, ensure_ascii=False)
        first = lines[0][:SHOWN - 3] + "..." if len(lines[0]) > SHOWN or len(lines) > 1 else lines[0]
        size = f"{len(lines)} lines, {len(value)} characters" if len(lines) > 1 else f"{len(value)} characters"
        return f"{json.dumps(first, ensure_ascii=False)} ({size})"     # a long output is not a condition's words
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return str(value)


def text(cond: Any) -> str:
    """A condition in words (``${steps.find.snap.count} == 0``, ``not (A and B)``)."""
    if not isinstance(cond, dict) or len(cond) != 1:
        return _show(cond)
    op, arg = next(iter(cond.items()))
    if op in ("all", "any") and isinstance(arg, list):
        joined = f" {'and' if op == 'all' else 'or'} ".join(_wrap(c) for c in arg)
        return joined or ("true" if op == "all" else "false")
    if op == "not":
        return f"not {_wrap(arg)}"
    if op in COMPARE and isinstance(arg, list) and len(arg) == 2:
        return f"{_show(arg[0])} {COMPARE[op]} {_show(arg[1])}"
    return _show(cond)


def _wrap(cond: Any) -> str:
    inner = text(cond)
    return f"({inner})" if isinstance(cond, dict) and next(iter(cond), "") in ("all", "any") else inner


def covers(cond: dict[str, Any], other: tuple[str, Any]) -> bool:
    """Whether a step whose conditions are ``cond`` (``{"when": ..., "unless": ...}`` as written)
    runs only when a step conditioned by ``other`` (one key and value) ran: the identical
    condition, or a ``when: {all: [...]}`` that includes it (``{not: X}`` standing for
    ``unless: X``)."""
    key, value = other
    if key in cond and cond[key] == value:
        return True
    when = cond.get("when")
    if isinstance(when, dict) and isinstance(when.get("all"), list) and len(when) == 1:
        wanted = value if key == "when" else {"not": value}
        return any(part == wanted for part in when["all"])
    return False
