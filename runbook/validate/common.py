"""What the validation rules share: the facts a checked runbook carries (``Checked``,
``StepInfo``), schema walking, and small type helpers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from .. import conditions
from ..model import Section
from ..schemas import quote, suggest
from ..yamlfile import Document


MANUAL_OUTPUTS = {"type": "object", "properties": {"done": {"type": "boolean"}, "note": {"type": "string"},
                                                    "link": {"type": "string"}}}


APPROVAL_OUTPUTS = {"type": "object", "properties": {
    "approvers": {"type": "array", "items": {"type": "string"}}, "head_sha": {"type": "string"},
    "count": {"type": "integer"}, "verified": {"type": "boolean"}}}


RUN_OUTPUTS = {"type": "object", "properties": {"id": {"type": "string"}, "status": {"type": "string"}}}


CONFIRM_OUTPUTS = {"type": "object", "properties": {"answer": {"type": "boolean"}}}


def items_of(step: dict[str, Any]) -> Iterator[tuple[Section, int, dict[str, Any]]]:
    """Every item of a step with its section and index."""
    for section in Section:
        seq = step.get(section.value)
        if isinstance(seq, list):
            for i, item in enumerate(seq):
                if isinstance(item, dict):
                    yield section, i, item


def always_runs(step: dict[str, Any]) -> bool:
    return "when" not in step and "unless" not in step and step.get("on_failure") != "continue"


@dataclass
class StepInfo:
    """What later steps may reference: a step's items and their output schemas."""

    id: str
    index: int
    always: bool
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)   # item id -> output schema
    conditional_reason: str = ""
    unrecoverable: dict[str, str] = field(default_factory=dict)  # item id -> action with no probe
    actions: set[str] = field(default_factory=set)     # ids of its do items (its verify may use their outputs)
    conditions: dict[str, Any] = field(default_factory=dict)     # its when/unless as written
    probed: dict[str, dict[str, Any]] = field(default_factory=dict)  # action id -> its author probe's outputs


@dataclass
class Checked:
    """A validated runbook: its document and the facts resolution needs."""

    path: Path
    doc: Document
    data: dict[str, Any]
    includes: dict[str, Path] = field(default_factory=dict)   # include name -> file
    steps: dict[str, StepInfo] = field(default_factory=dict)  # what later steps may reference


def schema_type(schema: dict[str, Any] | None) -> str | None:
    if not isinstance(schema, dict):
        return None
    t = schema.get("type")
    if isinstance(t, str):
        return t
    if "enum" in schema and all(isinstance(v, str) for v in schema["enum"]):
        return "string"
    if "const" in schema:
        return {bool: "boolean", int: "integer", str: "string"}.get(type(schema["const"]))
    return None


def schema_at(schema: dict[str, Any], parts: tuple[str, ...]) -> tuple[dict[str, Any] | None, str]:
    """Walk ``properties`` along ``parts``; (subschema, '') or (None, the first unknown part, quoted, with a
    "did you mean")."""
    cur = schema
    for i, part in enumerate(parts):
        if not isinstance(cur, dict):
            return None, quote(part)
        props = cur.get("properties")
        if isinstance(props, dict) and part in props:
            cur = props[part]
            continue
        extra = cur.get("additionalProperties")
        if isinstance(extra, dict):
            cur = extra
            continue
        if cur.get("type") == "array" and part.isdigit():
            cur = cur.get("items", {})
            continue
        if cur.get("type") in (None, "object") and not props and extra is not False and "additionalProperties" not in cur:
            return {}, ""   # a free-form object: anything below is allowed, type unknown
        known = list(props) if isinstance(props, dict) else []
        return None, quote(part) + suggest(part, known)
    return cur, ""


class _Bad:
    def __repr__(self) -> str:
        return "<bad>"


BAD: Any = _Bad()


def fmt_path(path: tuple[Any, ...]) -> str:
    from ..errors import format_path

    return format_path(path)


def literal_type(value: Any) -> str | None:
    for py, name in ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"), (list, "array"),
                     (dict, "object"), (type(None), "null")):
        if isinstance(value, py):
            return name
    return None


def comparable(a: str, b: str) -> bool:
    """Values of types a and b can be equal: the same type, two numbers, or null beside anything (a
    typed output is null when its JMESPath finds nothing: comparing it to null asks exactly that)."""
    return a == b or {a, b} <= {"integer", "number"} or "null" in (a, b)


def operand_text(value: Any) -> str:
    return value if isinstance(value, str) and value.startswith("${") else conditions.text(value) \
        if not isinstance(value, str) else quote(value)


def types_fit(have: str, want: str) -> bool:
    return have == want or (have == "integer" and want == "number") or (have == "array" and want == "list")
