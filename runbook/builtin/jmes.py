"""JMESPath for plugins: conditions (``expect:``, ``until:``, ``json:``) and the type of a ``select:``.

A condition maps a JMESPath to the value it must find, or to a list of allowed values; it
holds when every entry does (``True`` is never ``1`` here, unlike Python). ``result_schema``
gives the JSON-schema type an expression yields over a document described by a botocore
output shape (``length(Snapshots)`` is an integer, ``Reservations[].Instances[].InstanceId``
a list of strings), so the validator can type ``${steps.S.I.NAME}`` before the run; what it
cannot tell is left untyped (``{}``). jmespath and botocore are imported inside functions.
"""

from __future__ import annotations

import json
from typing import Any

SHORT = 160                # characters of a value quoted in a summary


def short(value: Any) -> str:
    """A value as a summary quotes it: null named, long values cut."""
    from runbook.api import quote

    if value is None:
        return "nothing (null)"
    text = quote(value) if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= SHORT else text[:SHORT - 3] + "..."


def _same(found: Any, wanted: Any) -> bool:
    if isinstance(found, bool) != isinstance(wanted, bool):
        return False      # True == 1 in Python, not here
    return bool(found == wanted)


def matches(found: Any, wanted: Any) -> bool:
    """``found`` is ``wanted``, or one of the list ``wanted``."""
    if isinstance(wanted, list):
        return any(_same(found, w) for w in wanted)
    return _same(found, wanted)


def wanted_text(wanted: Any) -> str:
    if isinstance(wanted, list):
        return "one of " + ", ".join(short(w) for w in wanted)
    return short(wanted)


def search(expression: str, document: Any) -> Any:
    import jmespath

    return jmespath.search(expression, document)


def evaluate(condition: dict[str, Any], document: Any) -> tuple[dict[str, Any], list[str]]:
    """(what each JMESPath found, one 'X: expected ..., found ...' per entry that does not hold)."""
    found: dict[str, Any] = {}
    misses: list[str] = []
    for expression, wanted in condition.items():
        value = search(str(expression), document)
        found[str(expression)] = value
        if not matches(value, wanted):
            misses.append(f"{expression}: expected {wanted_text(wanted)}, found {short(value)}")
    return found, misses


def problem(expression: Any) -> str:
    """Why ``expression`` is not valid JMESPath, or ''."""
    from runbook.api import quote

    if not isinstance(expression, str):
        return ""      # the argument schema reports it
    import jmespath
    import jmespath.exceptions

    try:
        jmespath.compile(expression)
    except jmespath.exceptions.JMESPathError as exc:
        text = str(exc).split("\n", 1)[0].replace("Invalid jmespath expression: ", "").strip().rstrip(":")
        text = text.removesuffix(", for expression")
        return f"invalid JMESPath {quote(expression)}: {text}"
    return ""


# -- types -------------------------------------------------------------------------------------
# A type while walking an expression: ("shape", botocore Shape), ("array", element type or None),
# ("scalar", JSON-schema type name), ("object", None), or None (unknown).
_SCALAR = {"string": "string", "timestamp": "string", "blob": "string", "integer": "integer", "long": "integer",
           "float": "number", "double": "number", "boolean": "boolean"}
_NUMBER = ("abs", "avg", "ceil", "floor", "sum", "to_number")
_BOOLEAN = ("contains", "ends_with", "starts_with")
_STRING = ("join", "to_string", "type")
_SAME_AS_FIRST = ("reverse", "sort", "sort_by", "not_null")
_ELEMENT_OF_FIRST = ("max", "min", "max_by", "min_by")


def result_schema(expression: str, shape: Any) -> dict[str, Any]:
    """The JSON schema of what ``expression`` finds in a response of botocore ``shape`` ({} if unknown)."""
    import jmespath

    try:
        tree = jmespath.compile(expression).parsed
    except Exception:      # noqa: BLE001 - an invalid expression is reported by the lint, not typed
        return {}
    return _schema(_walk(tree, ("shape", shape) if shape is not None else None))


def _schema(t: Any, depth: int = 0) -> dict[str, Any]:
    if t is None:
        return {}
    kind, inner = t
    if kind == "shape":
        type_name = str(inner.type_name)
        if type_name in ("structure", "map"):
            return {"type": "object"}
        if type_name == "list":
            return {"type": "array", "items": _schema(("shape", inner.member), depth + 1) if depth < 2 else {}}
        return {"type": _SCALAR[type_name]} if type_name in _SCALAR else {}
    if kind == "array":
        return {"type": "array", "items": _schema(inner, depth + 1) if depth < 2 else {}}
    if kind == "object":
        return {"type": "object"}
    return {"type": inner}


def _elements(t: Any) -> Any:
    """The type of one element of a list type (None: unknown)."""
    if t is None:
        return None
    kind, inner = t
    if kind == "array":
        return inner
    if kind == "shape" and str(inner.type_name) == "list":
        return ("shape", inner.member)
    return None


def _is_list(t: Any) -> bool:
    return t is not None and (t[0] == "array" or (t[0] == "shape" and str(t[1].type_name) == "list"))


def _literal(value: Any) -> Any:
    for py, name in ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string")):
        if isinstance(value, py):
            return ("scalar", name)
    if isinstance(value, list):
        return ("array", None)
    if isinstance(value, dict):
        return ("object", None)
    return None


def _walk(node: dict[str, Any], t: Any) -> Any:   # noqa: C901 - one branch per JMESPath node type
    kind = node["type"]
    kids = node.get("children") or []
    if kind in ("identity", "current"):
        return t
    if kind == "field":
        if t is not None and t[0] == "shape":
            shape = t[1]
            if str(shape.type_name) == "structure":
                member = shape.members.get(node["value"])
                return ("shape", member) if member is not None else None
            if str(shape.type_name) == "map":
                return ("shape", shape.value)
        return None
    if kind in ("subexpression", "pipe", "index_expression"):      # each child applies to what the last found
        for kid in kids:
            t = _walk(kid, t)
        return t
    if kind == "index":
        return _elements(t)
    if kind == "slice":
        return t if _is_list(t) else None
    if kind in ("projection", "filter_projection"):
        left = _walk(kids[0], t)
        if left is not None and not _is_list(left):
            return None
        return ("array", _walk(kids[1], _elements(left)))
    if kind == "value_projection":
        left = _walk(kids[0], t)
        value = ("shape", left[1].value) if left is not None and left[0] == "shape" \
            and str(left[1].type_name) == "map" else None
        return ("array", _walk(kids[1], value))
    if kind == "flatten":
        inner = _walk(kids[0], t)
        element = _elements(inner)
        return ("array", _elements(element) if _is_list(element) else element)
    if kind == "literal":
        return _literal(node.get("value"))
    if kind in ("comparator", "not_expression"):
        return ("scalar", "boolean")
    if kind in ("and_expression", "or_expression"):
        a, b = (_walk(k, t) for k in kids)
        return a if a == b else None
    if kind == "multi_select_list":
        return ("array", None)
    if kind == "multi_select_dict":
        return ("object", None)
    if kind == "function_expression":
        return _function(node["value"], kids, t)
    return None


def _function(name: str, kids: list[dict[str, Any]], t: Any) -> Any:
    if name == "length":
        return ("scalar", "integer")
    if name in _NUMBER:
        return ("scalar", "number")
    if name in _BOOLEAN:
        return ("scalar", "boolean")
    if name in _STRING:
        return ("scalar", "string")
    if name == "keys":
        return ("array", ("scalar", "string"))
    if name in ("values", "to_array", "map"):
        return ("array", None)
    if name == "merge":
        return ("object", None)
    first = _walk(kids[0], t) if kids and kids[0]["type"] != "expref" else None
    if name in _SAME_AS_FIRST:
        return first
    if name in _ELEMENT_OF_FIRST:
        return _elements(first)
    return None
