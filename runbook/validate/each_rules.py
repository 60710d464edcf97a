"""for_each: what it iterates over, and what ${each.value} is inside."""

from __future__ import annotations

from typing import Any, TYPE_CHECKING

from .. import templates
from ..model import StepKind
from ..schemas import SCHEMA_TYPE_NAMES, suggest
from .common import BAD, schema_at, schema_type

if TYPE_CHECKING:
    from . import RunbookRules


class EachRules:
    """for_each: what it iterates over, and what ${each.value} is inside."""

    def __init__(self, r: "RunbookRules"):
        self.r = r

    def check_for_each(self, base: tuple[Any, ...], step: dict[str, Any], index: int,
                       kind: StepKind) -> dict[str, Any] | None:
        """``for_each`` resolves to a list (a list parameter or a list output of an earlier step that
        always runs); ``concurrency``/``max_failures`` need it. What ``${each.value}`` is, or None
        outside a for_each step."""
        self.r.each = None
        if "for_each" not in step:
            for key in ("concurrency", "max_failures"):
                if key in step:
                    self.r.err(base + (key,), f"'{key}:' belongs to a step with 'for_each:'", key=True)
            return None
        if kind is StepKind.APPROVAL:
            self.r.err(base + ("for_each",), "'for_each:' applies to task, include and run steps, not approval gates",
                     key=True)
            return None
        unknown: dict[str, Any] = {"type": None, "schema": None}
        value = step["for_each"]
        if isinstance(value, list):
            types = {schema_type({"const": v}) for v in value}
            return {"type": types.pop() if len(types) == 1 else None, "schema": None}
        try:
            ref = templates.whole(value) if isinstance(value, str) else None
        except templates.TemplateError as exc:
            self.r.err(base + ("for_each",), str(exc))
            return unknown
        if ref is None:
            return unknown                      # the schema reported it
        t = self.r.refs.ref_type(base + ("for_each",), ref, index)
        if t is BAD:
            return unknown
        if t != "array":
            self.r.err(base + ("for_each",), f"{ref.text} resolves to "
                                           f"{SCHEMA_TYPE_NAMES.get(t, t) if t else 'a value of unknown type'}, but "
                                           "for_each needs a list (a list parameter or a list output)")
            return unknown
        items = self.each_items(ref)
        return {"type": schema_type(items), "schema": items}

    def each_items(self, ref: templates.Ref) -> dict[str, Any] | None:
        """The schema of one value of the list ``ref`` names (a list parameter's ``items``, an output's)."""
        if ref.root == "params":
            items = self.r.params[ref.parts[0]].get("items")
            return {"type": str(items.get("type", "string"))} if isinstance(items, dict) else {"type": "string"}
        if ref.root == "env":
            sub, _ = schema_at(self.r.v.env_schema, ref.parts)
        else:
            parts, sub = ref.parts, None
            for n in range(len(parts) - 1, 0, -1):
                info = self.r.steps.get(".".join(parts[:n]))
                if info is not None and parts[n] in info.outputs:
                    sub, _ = schema_at(info.outputs[parts[n]], parts[n + 1:])
                    break
        items = sub.get("items") if isinstance(sub, dict) else None
        return items if isinstance(items, dict) else None

    def each_ref_type(self, path: tuple[Any, ...], ref: templates.Ref) -> Any:
        """``${each.value}`` (below it, when its values are mappings) and ``${each.index}``, inside a
        for_each step only."""
        if self.r.each is None:
            self.r.err(path, f"{ref.text}: only known inside a step with 'for_each:'")
            return BAD
        field_ = ref.parts[0]
        if field_ not in templates.EACH_FIELDS or (field_ == "index" and len(ref.parts) > 1):
            self.r.err(path, f"{ref.text}: each has each.value and each.index{suggest(field_, templates.EACH_FIELDS)}")
            return BAD
        if field_ == "index":
            return "integer"
        if len(ref.parts) == 1:
            return self.r.each["type"]
        schema = self.r.each.get("schema")
        if not schema:
            return None
        sub, unknown = schema_at(schema, ref.parts[1:])
        if sub is None:
            self.r.err(path, f"{ref.text}: the values of for_each have no {unknown}")
            return BAD
        return schema_type(sub)
