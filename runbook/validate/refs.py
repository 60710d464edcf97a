"""Templates and references: ${params.X}, ${env.X}, ${steps.S.I.O} and ${each...}, typed where they are used."""

from __future__ import annotations

from typing import Any, TYPE_CHECKING

from .. import conditions, templates
from ..model import ParamType
from ..schemas import Pending, quote, suggest
from .common import BAD, schema_at, schema_type

if TYPE_CHECKING:
    from . import RunbookRules


class RefRules:
    """Templates and references: ${params.X}, ${env.X}, ${steps.S.I.O} and ${each...}, typed where they are used."""

    def __init__(self, r: "RunbookRules"):
        self.r = r

    def check_git_literals(self, path: tuple[Any, ...], value: Any) -> None:
        """A written value git could read as an option (``--upload-pack=...``) is refused before anything runs."""
        if isinstance(value, dict):
            for k, v in value.items():
                self.check_git_literals(path + (k,), v)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                self.check_git_literals(path + (i,), v)
        elif isinstance(value, str) and value.startswith("-"):
            self.r.err(path, f"{quote(value)} starts with '-': git would read it as an option; use a plain name")

    def pendify(self, path: tuple[Any, ...], value: Any, index: int, allow_steps: bool = True) -> Any:
        """Check every template in ``value`` and replace it by a typed Pending marker."""
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                r = self.pendify(path + (k,), v, index, allow_steps)
                if r is BAD:
                    return BAD
                out[k] = r
            return out
        if isinstance(value, list):
            items = [self.pendify(path + (i,), v, index, allow_steps) for i, v in enumerate(value)]
            return BAD if any(r is BAD for r in items) else items
        if not isinstance(value, str) or "${" not in value:
            return value
        try:
            refs = templates.refs(value)
            whole = templates.whole(value)
        except templates.TemplateError as exc:
            self.r.err(path, str(exc))
            return BAD
        types = [self.ref_type(path, ref, index, allow_steps) for ref in refs]
        if any(t is BAD for t in types):
            return BAD
        if whole is not None:
            return Pending(value, types[0])
        return Pending(value, "string")

    def check_strings(self, path: tuple[Any, ...], value: Any, before: int, allow_steps: bool = True) -> None:
        self.pendify(path, value, before, allow_steps)

    def ref_type(self, path: tuple[Any, ...], ref: templates.Ref, before: int, allow_steps: bool = True) -> Any:
        """The type a reference resolves to, or BAD after reporting why it cannot resolve."""
        if ref.root == "params":
            name = ref.parts[0]
            if name not in self.r.params:
                self.r.err(path, f"{ref.text}: no parameter {name!r}{suggest(name, list(self.r.params))}")
                return BAD
            if len(ref.parts) > 1:
                self.r.err(path, f"{ref.text}: parameters are plain values; nothing below {name!r}")
                return BAD
            ptype = self.r.params[name].get("type")
            if ptype == ParamType.LIST:
                return "array"                                  # a list parameter is a JSON-schema array
            return ptype if isinstance(ptype, str) else None   # a wrong type is reported at params.NAME.type
        if ref.root == "env":
            sub, unknown = schema_at(self.r.v.env_schema, ref.parts)
            if sub is None:
                self.r.err(path, f"{ref.text}: environments have no {unknown} (see schemas/environment.schema.json)")
                return BAD
            if len(ref.parts) >= 2 and ref.parts[0] == "vars":
                known = self.r.v.env_vars()
                name = ref.parts[1]
                if known and not any(name in names for names in known.values()):
                    every = sorted(set().union(*known.values()))
                    self.r.err(path, f"{ref.text}: no environment defines vars.{name}{suggest(name, every)} "
                                   f"(environments/: {', '.join(sorted(known))})")
                    return BAD
            return schema_type(sub)
        if ref.root == "each":
            return self.r.each_rules.each_ref_type(path, ref)
        if ref.root == "run":
            if ref.parts[0] not in templates.RUN_FIELDS or len(ref.parts) > 1:
                self.r.err(path, f"{ref.text}: run has {', '.join('run.' + f for f in templates.RUN_FIELDS)}"
                               f"{suggest(ref.parts[0], templates.RUN_FIELDS)}")
                return BAD
            return "string"
        if not allow_steps:
            self.r.err(path, f"{ref.text}: step outputs are not known here (only params and env are)")
            return BAD
        return self.step_ref_type(path, ref, before)

    def step_ref_type(self, path: tuple[Any, ...], ref: templates.Ref, before: int) -> Any:
        parts = ref.parts
        all_ids = [s.get("id") for s in self.r.data.get("steps", []) if isinstance(s, dict)]
        # the longest prefix naming a step: included steps are OUTER.INNER
        match = None
        for n in range(len(parts), 0, -1):
            candidate = ".".join(parts[:n])
            if candidate in self.r.steps or candidate in all_ids:
                match = (candidate, n)
                break
        if match is None:
            self.r.err(path, f"{ref.text}: no step {parts[0]!r}{suggest(parts[0], [str(i) for i in all_ids])}")
            return BAD
        sid, n = match
        info = self.r.steps.get(sid)
        own = self.r.own if self.r.own is not None and self.r.own.id == sid and len(parts) > n \
            and parts[n] in self.r.own.actions else None
        if own is not None:
            info = own                       # a verify item reading its own step's action outputs
        elif info is None or info.index >= before:
            here = all_ids[before] if before < len(all_ids) else "?"
            which = "its own step" if sid == here else "a later step"
            self.r.err(path, f"{ref.text}: refers to {which} {sid!r}; only outputs of earlier steps are known")
            return BAD
        if own is None and not info.always and not any(
                conditions.covers(self.r.current, c) for c in info.conditions.items()):
            self.r.err(path, f"{ref.text}: step {sid!r} may not run ({info.conditional_reason}), so its outputs "
                           "may not exist; reference it from a step with the identical condition (or a "
                           "'when: {all: [...]}' that includes it), or reference a step that always runs")
            return BAD
        rest = parts[n:]
        if not rest:
            self.r.err(path, f"{ref.text}: name the item and output, like ${{steps.{sid}.ITEM.OUTPUT}}")
            return BAD
        item = rest[0]
        if item not in info.outputs:
            self.r.err(path, f"{ref.text}: step {sid!r} has no item {item!r} with outputs"
                           f"{suggest(item, list(info.outputs))} (automated items need an 'id' to be referenced)")
            return BAD
        if len(rest) == 1:
            self.r.err(path, f"{ref.text}: name the output of {sid}.{item}, one of "
                           f"{', '.join(sorted((info.outputs[item].get('properties') or {}))) or 'its outputs'}")
            return BAD
        sub, unknown = schema_at(info.outputs[item], rest[1:])
        if sub is None:
            self.r.err(path, f"{ref.text}: {sid}.{item} has no output {unknown}")
            return BAD
        if item in info.probed and own is None:
            given, _ = schema_at(info.probed[item], rest[1:])
            if given is None:
                self.r.err(path, f"{ref.text}: the probe of {sid}.{item} does not give {quote(rest[1])}, so after a "
                               "crash recovered by the probe it would be missing; select it in the probe too")
                return BAD
        if item in info.unrecoverable:
            self.r.err(path, f"{ref.text}: {info.unrecoverable[item]} has no probe, so when a crash interrupts "
                           f"{sid}.{item} its outputs cannot be recovered on resume (only its effect can be "
                           "verified); read the value with a check in a later step, or give the action a probe")
            return BAD
        return schema_type(sub)
