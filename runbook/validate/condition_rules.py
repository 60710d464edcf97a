"""Conditions (when/unless, structured comparisons): operands typed and comparable."""

from __future__ import annotations

import re
from typing import Any, TYPE_CHECKING

from .. import conditions, templates
from ..schemas import SCHEMA_TYPE_NAMES, Pending, quote, suggest
from .common import BAD, comparable, literal_type, operand_text

if TYPE_CHECKING:
    from . import RunbookRules


class ConditionRules:
    """Conditions (when/unless, structured comparisons): operands typed and comparable."""

    def __init__(self, r: "RunbookRules"):
        self.r = r

    def check_condition(self, path: tuple[Any, ...], value: Any, index: int) -> None:
        if isinstance(value, bool):
            return
        if isinstance(value, dict):
            self.check_structured(path, value, index)
            return
        nested = any(isinstance(part, str) and part in conditions.OPERATORS for part in path[2:])
        if not isinstance(value, str) or "${" not in value:
            if nested:   # the schema checks a step's when/unless, not what is inside a structured one
                self.r.err(path, f"{conditions.text(value) if not isinstance(value, str) else quote(value)} is not a "
                               "condition: true, false, one ${...} resolving to a boolean, or {OPERATOR: ...}")
            return  # the schema reported it
        try:
            ref = templates.whole(value)
        except templates.TemplateError as exc:
            self.r.err(path, str(exc))
            return
        if ref is None:
            if nested:
                self.r.err(path, f"{quote(value)} is not a condition: a condition is exactly one ${{...}} resolving to "
                               "a boolean (or {OPERATOR: ...})")
            return  # not exactly one ${...}: the schema reported it
        t = self.r.refs.ref_type(path, ref, index)
        if t is BAD:
            return
        if t != "boolean":
            self.r.err(path, f"{ref.text} resolves to {SCHEMA_TYPE_NAMES.get(t, t) if t else 'a value of unknown type'}, "
                           "but a condition needs a boolean")

    def check_structured(self, path: tuple[Any, ...], cond: dict[str, Any], index: int) -> None:
        """A structured condition: one operator, its operands' types checked before the run."""
        if len(cond) != 1:
            self.r.err(path, f"a condition has exactly one operator ({', '.join(conditions.OPERATORS)}); "
                           f"found {', '.join(map(str, cond)) or 'none'}")
            return
        op, arg = next(iter(cond.items()))
        where = path + (op,)
        if op not in conditions.OPERATORS:
            self.r.err(path + (op,), f"unknown condition operator {quote(str(op))}"
                                   f"{suggest(str(op), list(conditions.OPERATORS))}; one of "
                                   f"{', '.join(conditions.OPERATORS)}", key=True)
            return
        if op == "not":
            self.check_condition(where, arg, index)
            return
        if op in ("all", "any"):
            if not isinstance(arg, list) or not arg:
                self.r.err(where, f"'{op}:' takes a list of conditions")
                return
            for i, part in enumerate(arg):
                self.check_condition(where + (i,), part, index)
            return
        if not isinstance(arg, list) or len(arg) != 2:
            self.r.err(where, f"'{op}:' takes two operands, like {{{op}: [A, B]}}")
            return
        a, b = (self.operand_type(where + (i,), v, index) for i, v in enumerate(arg))
        if a is BAD or b is BAD:
            return
        name = {t: SCHEMA_TYPE_NAMES.get(t, t) for t in (a, b) if isinstance(t, str)}
        if op in conditions.NUMERIC:
            for i, t in enumerate((a, b)):
                if t is not None and t not in ("integer", "number"):
                    self.r.err(where + (i,), f"{operand_text(arg[i])} is {name[t]}, but '{op}:' compares numbers")
        elif op in ("equals", "not_equals"):
            if a is not None and b is not None and not comparable(a, b):
                self.r.err(where + (1,), f"{operand_text(arg[0])} is {name[a]} and {operand_text(arg[1])} is {name[b]}: "
                                       f"they are never equal")
        elif op == "in":
            if b is not None and b != "array":
                self.r.err(where + (1,), f"{operand_text(arg[1])} is {name[b]}, but 'in:' needs a list as its second operand")
            elif isinstance(arg[1], list) and a is not None:
                for i, v in enumerate(arg[1]):
                    t = literal_type(v)
                    if not templates.has_templates(v) and t is not None and not comparable(a, t):
                        self.r.err(where + (1, i), f"{operand_text(v)} is {SCHEMA_TYPE_NAMES.get(t, t)}, but "
                                                 f"{operand_text(arg[0])} is {name[a]}: it can never be in the list")
                        break
        elif op == "matches":
            if a is not None and a != "string":
                self.r.err(where + (0,), f"{operand_text(arg[0])} is {name[a]}, but 'matches:' tests strings")
            if isinstance(arg[1], str) and not templates.has_templates(arg[1]):
                try:
                    re.compile(arg[1])
                except re.error as exc:
                    self.r.err(where + (1,), f"invalid regular expression {quote(arg[1])}: {exc}")
            elif b is not None and b != "string":
                self.r.err(where + (1,), f"{operand_text(arg[1])} is {name[b]}, but a pattern is a string")

    def operand_type(self, path: tuple[Any, ...], value: Any, index: int) -> Any:
        """The type an operand has at run time (None: unknown), or BAD after an error."""
        pend = self.r.refs.pendify(path, value, index)
        if pend is BAD:
            return BAD
        if isinstance(pend, Pending):
            return pend.type
        if isinstance(value, (dict, list)) and templates.has_templates(value):
            return "array" if isinstance(value, list) else "object"
        return literal_type(value)
