"""JSON Schema validation (2020-12) with errors a person can act on.

Errors become Diagnostics with the file position of the offending node, unknown keys
get a "did you mean" suggestion, and values that are still templates are checked by
the type they will resolve to, not by their text.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

from .errors import Diagnostic
from .yamlfile import Document

SCHEMA_DIR = Path(__file__).resolve().parent / "schema"      # inside the package: installed with it
TYPE_NAMES = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
              float: "a number", type(None): "nothing (null)"}


@dataclass(frozen=True)
class Pending:
    """A value that is a template until run time; ``type`` is what it will be (None: unknown)."""

    text: str
    type: str | None = None




@lru_cache(maxsize=None)
def load_schema(name: str) -> dict[str, Any]:
    with open(SCHEMA_DIR / f"{name}.schema.json", encoding="utf-8") as fh:
        return json.load(fh)


def suggest(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` or an empty string."""
    match = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def describe(value: Any) -> str:
    if isinstance(value, Pending):
        return f"template {value.text}"
    return TYPE_NAMES.get(type(value), type(value).__name__)


def quote(text: Any) -> str:
    """A string in single quotes as the user wrote it (no doubled backslashes), else repr."""
    if isinstance(text, str) and "'" not in text and text.isprintable():
        return f"'{text}'"
    return repr(text)


SCHEMA_TYPE_NAMES = {"string": "a string", "integer": "an integer", "number": "a number", "boolean": "a boolean",
                     "array": "a list", "object": "a mapping", "null": "nothing (null)"}


def _found(value: Any) -> str:
    """What a value is, with the value itself when it is a short scalar."""
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)) or (isinstance(value, str) and len(value) <= 40):
        kind = {int: "integer", float: "number", str: "string"}[type(value)]
        return f"the {kind} {quote(value)}"
    return describe(value)


@lru_cache(maxsize=None)
def _validator_class() -> Any:
    from jsonschema import Draft202012Validator, validators

    base = Draft202012Validator.VALIDATORS

    def wrap(keyword: str, func: Any) -> Any:
        def check(validator: Any, value: Any, instance: Any, schema: Any) -> Any:
            if isinstance(instance, Pending):
                if keyword == "type":
                    yield from _pending_type(value, instance)
                elif keyword in ("anyOf", "oneOf", "allOf", "$ref", "if", "not"):
                    yield from func(validator, value, instance, schema)
                return
            yield from func(validator, value, instance, schema) or ()
        return check

    checker = Draft202012Validator.TYPE_CHECKER.redefine_many({
        kind: (lambda fn: lambda c, inst: isinstance(inst, Pending) or fn(c, inst))(
            Draft202012Validator.TYPE_CHECKER._type_checkers[kind])
        for kind in ("string", "integer", "number", "boolean", "object", "array", "null")
    })
    return validators.extend(Draft202012Validator, validators={k: wrap(k, f) for k, f in base.items()},
                             type_checker=checker)


def _pending_type(expected: Any, instance: Pending) -> Iterable[Any]:
    from jsonschema import ValidationError

    if instance.type is None:
        return
    wanted = expected if isinstance(expected, list) else [expected]
    have = {"integer": {"integer", "number"}, "number": {"number"}}.get(instance.type, {instance.type})
    if not have & set(wanted):
        names = SCHEMA_TYPE_NAMES
        yield ValidationError(f"{instance.text} is {names.get(instance.type, instance.type)}, but "
                              f"{' or '.join(str(names.get(w, w)) for w in wanted)} is expected")


def validator_for(schema: dict[str, Any]) -> Any:
    """A 2020-12 validator that understands Pending values."""
    return _validator_class()(schema)


def check_schema(schema: dict[str, Any]) -> str | None:
    """The problem with a schema itself, or None."""
    from jsonschema import Draft202012Validator, SchemaError

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        return exc.message
    return None


def validate(doc: Document, instance: Any, schema: dict[str, Any], base: tuple[Any, ...] = (),
             shown_base: tuple[Any, ...] | None = None) -> list[Diagnostic]:
    """Validate ``instance`` (found at ``base`` inside ``doc``) and return its Diagnostics."""
    out: list[Diagnostic] = []
    for error in validator_for(schema).iter_errors(instance):
        out.extend(_translate(doc, error, base, shown_base if shown_base is not None else base))
    return sorted(set(out), key=lambda d: (d.line, d.col, d.message))


def _x_message(error: Any) -> str | None:
    for schema in (error.schema,):
        if isinstance(schema, dict) and "x-message" in schema:
            return str(schema["x-message"])
    return None


def _translate(doc: Document, error: Any, base: tuple[Any, ...], shown: tuple[Any, ...]) -> list[Diagnostic]:
    path = base + tuple(error.absolute_path)
    shown_path = shown + tuple(error.absolute_path)
    kind = error.validator
    instance = error.instance
    schema = error.schema if isinstance(error.schema, dict) else {}
    as_key = False
    if list(error.schema_path)[-2:-1] == ["propertyNames"] and isinstance(instance, str):
        # a key that breaks the naming rule: point at the key itself, not at its mapping
        path, shown_path, as_key = path + (instance,), shown_path + (instance,), True
    if kind == "additionalProperties" and isinstance(instance, dict):
        known = list(schema.get("properties", {}))
        extra = [k for k in instance if k not in known]
        return [doc.diag(path + (k,), f"unknown key {k!r}{suggest(k, known)}", key=True, shown_path=shown_path + (k,))
                for k in extra]
    if kind == "required":
        missing = [k for k in error.validator_value if isinstance(instance, dict) and k not in instance]
        return [doc.diag(path, f"missing required key {k!r}", shown_path=shown_path) for k in missing]
    if kind == "type":
        wanted = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        if isinstance(instance, Pending):
            return [doc.diag(path, error.message, shown_path=shown_path)]
        hint = "; put it in quotes" if "string" in wanted and isinstance(instance, (bool, int, float)) else ""
        return [doc.diag(path, f"expected {' or '.join(str(SCHEMA_TYPE_NAMES.get(w, w)) for w in wanted)}, "
                               f"found {_found(instance)}{hint}", shown_path=shown_path)]
    if kind == "enum":
        options = [str(o) for o in error.validator_value]
        return [doc.diag(path, f"{instance!r} is not one of {', '.join(options)}{suggest(instance, options)}",
                         shown_path=shown_path)]
    if kind == "const":
        return [doc.diag(path, f"must be {error.validator_value!r}, found {instance!r}", shown_path=shown_path)]
    # x-message describes a pattern or a set of alternatives, not a length or a bound
    message = _x_message(error) if kind in ("pattern", "oneOf", "anyOf", "not") else None
    if kind == "pattern":
        return [doc.diag(path, f"{quote(instance)}: {message or 'does not match ' + quote(error.validator_value)}",
                         key=as_key, shown_path=shown_path)]
    bound = error.validator_value
    worded = {
        "minimum": lambda: f"must be at least {bound}, found {instance!r}",
        "maximum": lambda: f"must be at most {bound}, found {instance!r}",
        "exclusiveMinimum": lambda: f"must be greater than {bound}, found {instance!r}",
        "exclusiveMaximum": lambda: f"must be less than {bound}, found {instance!r}",
        "minLength": lambda: "must not be empty" if bound == 1 else f"must be at least {bound} characters long",
        "maxLength": lambda: f"{quote(instance)} is longer than {bound} characters",
        "minItems": lambda: "must not be empty" if bound == 1 else f"needs at least {bound} entries",
        "maxItems": lambda: f"has more than {bound} entries",
        "uniqueItems": lambda: f"lists {_duplicate(instance)} more than once",
    }.get(kind)
    if worded is not None:
        return [doc.diag(path, worded(), key=as_key, shown_path=shown_path)]
    if kind in ("oneOf", "anyOf"):
        if message:
            return [doc.diag(path, message, shown_path=shown_path)]
        from jsonschema.exceptions import best_match

        inner = best_match(error.context) if error.context else None
        if inner is not None:
            return _translate(doc, inner, base, shown)
    return [doc.diag(path, message or error.message, key=as_key, shown_path=shown_path)]


def _duplicate(values: Any) -> str:
    seen: list[Any] = []
    for v in values if isinstance(values, list) else []:
        if v in seen:
            return quote(v) if isinstance(v, str) else repr(v)
        seen.append(v)
    return "an entry"
