"""Templates are lookups, not code: ``${root.name.name}`` and nothing else.

Roots: ``params``, ``env``, ``run``, ``steps``. Each name is letters, digits, ``_`` and
``-`` and may not start with ``_`` (no ``__class__``). ``$${`` writes a literal ``${``.
A string that is exactly one template keeps the looked-up value's type; a template
inside a longer string is rendered as text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import AbstractSet, Any, Callable, Iterator

ROOTS = ("params", "env", "run", "steps", "each")
EACH_FIELDS = ("value", "index")         # ${each.value}, ${each.index}: inside a for_each step only
RUN_FIELDS = ("id", "operator", "checkout")
_TEMPLATE = re.compile(r"\$\$\{|\$\{([^{}]*)\}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*\Z")


class TemplateError(ValueError):
    """A template that is not a plain dotted lookup."""


@dataclass(frozen=True)
class Ref:
    """A parsed ``${...}``: its root and the names after it."""

    root: str
    parts: tuple[str, ...]
    text: str

    @property
    def dotted(self) -> str:
        return ".".join((self.root,) + self.parts)


class Unresolved(Exception):
    """Raised by a lookup that does not know the value (yet)."""


def parse(expr: str) -> Ref:
    """Parse the inside of ``${...}``; raise TemplateError with a plain message."""
    text = "${" + expr + "}"
    names = expr.strip().split(".") if expr.strip() else []
    if expr != expr.strip():
        raise TemplateError(f"{text}: no spaces inside a template")
    if not names:
        raise TemplateError(f"{text}: empty template")
    for name in names:
        if name.startswith("_"):
            raise TemplateError(f"{text}: private names (starting with '_') cannot be referenced")
        if not _NAME.match(name):
            raise TemplateError(f"{text}: templates are dotted lookups like ${{params.version}}; "
                                f"{name!r} is not a plain name (no expressions, calls or indexing)")
    if names[0] not in ROOTS:
        raise TemplateError(f"{text}: unknown root {names[0]!r}; use one of {', '.join(ROOTS)}")
    if len(names) < 2:
        raise TemplateError(f"{text}: name what to look up under {names[0]!r}")
    return Ref(names[0], tuple(names[1:]), text)


def scan(value: str) -> Iterator[tuple[int, int, str | None]]:
    """Yield (start, end, expr) for each template in a string; expr None for ``$${``."""
    for m in _TEMPLATE.finditer(value):
        yield m.start(), m.end(), m.group(1)
    # an unterminated "${" is an error the caller reports via unterminated()


def unterminated(value: str) -> bool:
    """True when a ``${`` has no closing brace."""
    stripped = _TEMPLATE.sub("", value)
    return "${" in stripped


def refs(value: str) -> list[Ref]:
    """All references in a string (raises TemplateError on the first bad one)."""
    if unterminated(value):
        raise TemplateError(f"unterminated '${{' in {value!r}")
    return [parse(expr) for _, _, expr in scan(value) if expr is not None]


def whole(value: Any) -> Ref | None:
    """The reference when ``value`` is exactly one template, else None."""
    if not isinstance(value, str):
        return None
    m = _TEMPLATE.fullmatch(value)
    if m and m.group(1) is not None:
        return parse(m.group(1))
    return None


def walk_strings(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], str]]:
    """Every string inside a nested value, with its path."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from walk_strings(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from walk_strings(v, path + (i,))


def as_text(value: Any) -> str:
    """How a looked-up value reads inside a longer string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)


def has_template(value: Any) -> bool:
    """Whether a nested value holds a ``${...}`` anywhere (a value without one resolves to itself)."""
    if isinstance(value, str):
        return "$" in value
    if isinstance(value, dict):
        return any(has_template(v) for v in value.values())
    if isinstance(value, list):
        return any(has_template(v) for v in value)
    return False


def render(value: Any, lookup: Callable[[Ref], Any], partial: bool = False) -> Any:
    """Replace templates in a nested value using ``lookup``.

    With ``partial``, a lookup raising Unresolved leaves that template as written
    (plans resolve what is known before the run; outputs arrive later).
    """
    if isinstance(value, dict):
        return {k: render(v, lookup, partial) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, lookup, partial) for v in value]
    if not isinstance(value, str) or "$" not in value:
        return value
    ref = whole(value)
    if ref is not None:
        try:
            return lookup(ref)
        except Unresolved:
            if partial:
                return value
            raise
    out: list[str] = []
    pos = 0
    for start, end, expr in scan(value):
        out.append(value[pos:start])
        if expr is None:
            out.append("$${" if partial else "${")
        else:
            try:
                out.append(as_text(lookup(parse(expr))))
            except Unresolved:
                if not partial:
                    raise
                out.append(value[start:end])
        pos = end
    out.append(value[pos:])
    return "".join(out)


def unescape(value: str) -> str:
    """``$${`` as the ``${`` people read (templates left as written): for guides."""
    return _TEMPLATE.sub(lambda m: "${" if m.group(1) is None else m.group(0), value)


def has_templates(value: Any) -> bool:
    """True when any string inside holds a ``${``."""
    return any("${" in s for _, s in walk_strings(value))


def each_value(ref: Ref, each: dict[str, Any] | None) -> Any:
    """``${each.value}`` (and dotted lookups below a mapping value), ``${each.index}``."""
    from .errors import CheckFailed

    if each is None:
        raise CheckFailed(f"{ref.text}: only known inside a step with 'for_each:'")
    cur: Any = each.get(ref.parts[0])
    for part in ref.parts[1:]:
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        else:
            raise CheckFailed(f"{ref.text}: the value {each.get('value')!r} has no {part!r}")
    return cur


def each_lookup(each: dict[str, Any]) -> Callable[[Ref], Any]:
    """A lookup for ``render(partial=True)`` that fills in ``${each...}`` only."""
    def lookup(ref: Ref) -> Any:
        if ref.root != "each":
            raise Unresolved(ref.text)
        return each_value(ref, each)
    return lookup


class Scope:
    """What ``${...}`` sees while a run executes: parameters (secrets too), the environment (with
    its overlay), the run, and the outputs of earlier items. A reference that has no value is a
    ``CheckFailed`` naming it (the item using it fails, as any failed check does)."""

    def __init__(self, params: dict[str, Any], env: dict[str, Any], run: dict[str, Any], step_ids: AbstractSet[str],
                 outputs: Callable[[str, str], dict[str, Any] | None], known: Callable[[str], bool],
                 each: dict[str, Any] | None = None):
        self.each = each
        self.params = params
        self.env = env
        self.run = run
        self.step_ids = step_ids
        self.outputs = outputs
        self.known = known

    def lookup(self, ref: Ref) -> Any:
        from .errors import CheckFailed

        if ref.root == "params":
            if ref.parts[0] in self.params:
                return self.params[ref.parts[0]]
            raise CheckFailed(f"{ref.text}: parameter has no value")
        if ref.root == "env":
            cur: Any = self.env
            for part in ref.parts:
                if not isinstance(cur, dict) or part not in cur:
                    raise CheckFailed(f"{ref.text}: not in the environment")
                cur = cur[part]
            return cur
        if ref.root == "run":
            return self.run[ref.parts[0]]
        if ref.root == "each":
            return each_value(ref, self.each)
        return self._output(ref)

    def _output(self, ref: Ref) -> Any:
        from .errors import CheckFailed

        parts = ref.parts
        for n in range(len(parts), 0, -1):
            candidate = ".".join(parts[:n])
            if candidate not in self.step_ids and not self.known(candidate):
                continue
            outputs = self.outputs(candidate, parts[n]) if n < len(parts) else None
            if outputs is None:
                raise CheckFailed(f"{ref.text}: {candidate}.{parts[n] if n < len(parts) else ''} has no "
                                  "outputs (it did not run, or was skipped)")
            cur: Any = outputs
            for part in parts[n + 1:]:
                if isinstance(cur, dict) and part in cur:
                    cur = cur[part]
                elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
                    cur = cur[int(part)]
                else:
                    raise CheckFailed(f"{ref.text}: no output {part!r}")
            return cur
        raise CheckFailed(f"{ref.text}: no such step")

    def resolve(self, value: Any) -> Any:
        """Every template in ``value`` looked up (CheckFailed when one has no value)."""
        return render(value, self.lookup)

    def text(self, value: str) -> str:
        """For people: rendered where every reference has a value, else as written."""
        from .errors import CheckFailed

        try:
            return str(render(value, self.lookup))
        except CheckFailed:
            return str(value)
