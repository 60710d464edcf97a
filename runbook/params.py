"""Parameters from the command line, environment variables and the answers file.

Each value is converted to the parameter's type and checked against its pattern,
choices and bounds; errors name their source. Secret parameters are refused on the
command line (shell history, ``ps``) and never leave memory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from .errors import Diagnostic, InputError
from .model import PY_TYPES, ParamType
from .schemas import quote, suggest
from .yamlfile import Document


def is_type(value: Any, ptype: str) -> bool:
    types = PY_TYPES.get(ParamType(ptype)) if isinstance(ptype, str) and ptype in {t.value for t in ParamType} else None
    if types is None:
        return False
    if isinstance(value, bool) and ptype != ParamType.BOOLEAN:
        return False
    return isinstance(value, types)


def param_problem(spec: dict[str, Any], value: Any, compiled: re.Pattern[str] | None = None,
                  name: str = "") -> str | None:
    """Why ``value`` does not fit a parameter spec, or None."""
    ptype = spec.get("type", "string")
    if not is_type(value, ptype):
        return f"{value!r} is not a{'n' if ptype == 'integer' else ''} {ptype}"
    if ptype == ParamType.LIST:
        return list_problem(spec, value, name)
    pattern = spec.get("pattern")
    if isinstance(pattern, str) and isinstance(value, str):
        try:
            compiled = compiled or re.compile(pattern)
        except re.error:
            return None
        if not compiled.search(value):
            example = f": expected {name or 'a value'} like {spec['example']}" if "example" in spec else ""
            return f"{quote(value)} does not match {quote(pattern)}{example}"
    choices = spec.get("choices")
    if isinstance(choices, list) and value not in choices:
        return f"{value!r} is not one of {', '.join(map(repr, choices))}{suggest(str(value), [str(c) for c in choices])}"
    for bound, op in (("minimum", lambda a, b: a < b), ("maximum", lambda a, b: a > b)):
        if isinstance(spec.get(bound), (int, float)) and isinstance(value, (int, float)) and op(value, spec[bound]):
            return f"{value!r} is {'below the minimum' if bound == 'minimum' else 'above the maximum'} {spec[bound]}"
    return None


def list_problem(spec: dict[str, Any], value: list[Any], name: str = "") -> str | None:
    """Why a list does not fit a list parameter (its length, then each value against ``items``), or None."""
    low, high = spec.get("min_items"), spec.get("max_items")
    if isinstance(low, int) and len(value) < low:
        return f"{value!r} has {len(value)} value(s), fewer than min_items {low}"
    if isinstance(high, int) and len(value) > high:
        return f"{value!r} has {len(value)} value(s), more than max_items {high}"
    found = spec.get("items")
    items: dict[str, Any] = found if isinstance(found, dict) else {"type": "string"}
    for i, one in enumerate(value):
        problem = param_problem(dict(items, type=items.get("type", "string")), one, name=name)
        if problem:
            return f"value [{i}]: {problem}"
    return None

CLI = "<command line>"
TRUE = {"true", "yes", "1", "on"}
FALSE = {"false", "no", "0", "off"}


def env_var(name: str) -> str:
    return "RUNBOOK_PARAM_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper()


@dataclass
class Params:
    """Resolved parameters: values known now, secret ones held apart, missing ones named."""

    values: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)

    def public(self) -> dict[str, Any]:
        """What may be written down: every non-secret value."""
        return dict(self.values)

    def get(self, name: str) -> Any:
        return self.secrets[name] if name in self.secrets else self.values[name]


def convert(spec: Mapping[str, Any], raw: Any) -> Any:
    """Text from a command line or variable to the parameter's type; ValueError with a reason."""
    ptype = spec.get("type", "string")
    if ptype == "list":
        return convert_list(spec, raw)
    if not isinstance(raw, str):
        return raw
    if ptype == "integer":
        try:
            return int(raw.strip())
        except ValueError:
            raise ValueError(f"{raw!r} is not an integer") from None
    if ptype == "number":
        try:
            return float(raw.strip()) if any(c in raw for c in ".eE") else int(raw.strip())
        except ValueError:
            raise ValueError(f"{raw!r} is not a number") from None
    if ptype == "boolean":
        low = raw.strip().lower()
        if low in TRUE:
            return True
        if low in FALSE:
            return False
        raise ValueError(f"{raw!r} is not a boolean (true/false)")
    return raw


def convert_list(spec: Mapping[str, Any], raw: Any, prompt: bool = False) -> Any:
    """A list parameter: a YAML flow list (``[a, b]``) from a command line or variable, comma-separated
    values at a prompt; each value converted to the type of ``items``."""
    if isinstance(raw, str):
        if prompt:
            raw = [v.strip() for v in raw.split(",") if v.strip()]
        else:
            import yaml

            try:
                raw = yaml.safe_load(raw) if raw.strip() else []
            except yaml.YAMLError:
                raise ValueError(f"{raw!r} is not a list: write a YAML flow list like '[a, b]'") from None
            if not isinstance(raw, list):
                raise ValueError(f"{raw!r} is not a list: write a YAML flow list like '[a, b]'")
    if not isinstance(raw, list):
        return raw
    items = dict(spec.get("items") or {"type": "string"})
    out = []
    for value in raw:
        if items.get("type", "string") == "string" and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)              # [1, 2] as names, not numbers
        elif isinstance(value, str):
            value = convert(items, value)
        out.append(value)
    return out


def resolve(spec: Mapping[str, Mapping[str, Any]], cli: Sequence[str] = (), environ: Mapping[str, str] | None = None,
            answers: Mapping[str, Any] | None = None, answers_doc: Document | None = None) -> Params:
    """Collect parameters by precedence: command line, environment variable, answers file, default."""
    environ = environ or {}
    out = Params()
    errors: list[Diagnostic | str] = []
    given: dict[str, tuple[Any, str, Any]] = {}   # name -> (raw, source label, diag factory)

    for item in cli:
        if "=" not in item:
            errors.append(f"{CLI}: --param {item!r} needs the form NAME=VALUE")
            continue
        name, raw = item.split("=", 1)
        name = name.strip()
        if name not in spec:
            errors.append(f"{CLI}: unknown parameter {name!r}{suggest(name, list(spec))} (at params.{name})")
            continue
        if spec[name].get("secret"):
            errors.append(f"{CLI}: parameter {name!r} is secret and may not be given on the command line "
                          f"(shell history, ps); set {env_var(name)} or let the engine ask for it (at params.{name})")
            continue
        if name in given:
            errors.append(f"{CLI}: parameter {name!r} is given twice ({given[name][0]!r} and {raw!r}); "
                          f"give it once (at params.{name})")
            continue
        given[name] = (raw, CLI, None)
    for name, pspec in spec.items():
        if name in given:
            continue
        var = env_var(name)
        if var in environ:
            given[name] = (environ[var], var, None)
    if answers:
        for name, raw in answers.items():
            if name not in spec:
                errors.append(_answers_diag(answers_doc, name, f"unknown parameter {name!r}{suggest(name, list(spec))}"))
                continue
            if spec[name].get("secret"):          # refused even when another source gives it too
                errors.append(_answers_diag(answers_doc, name, f"parameter {name!r} is secret and may not be written in "
                                                               f"an answers file; set {env_var(name)}"))
                continue
            if name not in given:
                given[name] = (raw, "answers", None)

    for name, pspec in spec.items():
        if name in given:
            raw, source, _ = given[name]
            try:
                value = convert(pspec, raw)
            except ValueError as exc:
                errors.append(_source_error(source, name, str(exc), answers_doc))
                continue
            problem = param_problem(dict(pspec), value, name=("an " if name[:1] in "aeiou" else "a ") + name)
            if problem:
                errors.append(_source_error(source, name, problem, answers_doc))
                continue
            if pspec.get("secret"):
                out.secrets[name] = value
            else:
                out.values[name] = value
            out.sources[name] = source
        elif "default" in pspec:
            out.values[name] = pspec["default"]
            out.sources[name] = "default"
        else:
            out.missing.append(name)
    if errors:
        raise InputError(errors)
    return out


def check_value(spec: Mapping[str, Any], raw: Any) -> Any:
    """Convert and check one value typed at a prompt; ValueError with the reason."""
    value = convert_list(spec, raw, prompt=True) if spec.get("type") == "list" else convert(spec, raw)
    problem = param_problem(dict(spec), value)
    if problem:
        raise ValueError(problem)
    return value


def _answers_diag(doc: Document | None, name: str, message: str) -> Diagnostic | str:
    if doc is None:
        return f"answers: {message} (at params.{name})"
    return doc.diag(("params", name), message)


def _source_error(source: str, name: str, message: str, doc: Document | None) -> Diagnostic | str:
    if source == "answers":
        return _answers_diag(doc, name, message)
    return f"{source}: {message} (at params.{name})"
