"""The declared parameters: list parameters, their checks and defaults."""

from __future__ import annotations

import re
from typing import Any, TYPE_CHECKING

from .. import templates
from ..model import ParamType, PluginKind
from ..params import is_type, param_problem
from ..schemas import quote, suggest, validate as schema_validate
from .common import BAD

if TYPE_CHECKING:
    from . import RunbookRules


class ParamRules:
    """The declared parameters: list parameters, their checks and defaults."""

    def __init__(self, r: "RunbookRules"):
        self.r = r

    def check_params(self) -> None:
        for pname, spec in self.r.params.items():
            base = ("params", pname)
            ptype = spec.get("type")
            if not isinstance(ptype, str) or ptype not in {t.value for t in ParamType}:
                continue
            self.check_list_param(base, spec, ptype)
            pattern = spec.get("pattern")
            compiled = None
            if isinstance(pattern, str):
                if ptype != ParamType.STRING:
                    self.r.err(base + ("pattern",), f"a pattern applies to string parameters, not {ptype}")
                try:
                    compiled = re.compile(pattern)
                except re.error as exc:
                    self.r.err(base + ("pattern",), f"invalid regular expression {quote(pattern)}: {exc}")
            if spec.get("secret") and "default" in spec:
                self.r.err(base + ("default",), "a secret parameter cannot have a default (it would be written down)")
            if spec.get("secret") and ptype != ParamType.STRING:
                self.r.err(base + ("secret",), "only string parameters can be secret")
            choices = spec.get("choices")
            if isinstance(choices, list):
                for i, choice in enumerate(choices):
                    if not is_type(choice, ptype):
                        article = "an" if ptype == "integer" else "a"
                        self.r.err(base + ("choices", i), f"choice {choice!r} is not {article} {ptype}")
            if "default" in spec:
                problem = param_problem(spec, spec["default"], compiled)
                if problem:
                    self.r.err(base + ("default",), f"default {problem}")
            if "example" in spec:
                problem = param_problem({k: v for k, v in spec.items() if k != "example"}, spec["example"], compiled)
                if problem:
                    self.r.err(base + ("example",), f"example {problem}")
            if isinstance(spec.get("check"), dict):
                self.check_param_check(base + ("check",), spec["check"])

    def check_list_param(self, base: tuple[Any, ...], spec: dict[str, Any], ptype: str) -> None:
        """``items``, ``min_items`` and ``max_items`` belong to list parameters, and must make sense."""
        if ptype != ParamType.LIST:
            for key in ("items", "min_items", "max_items"):
                if key in spec:
                    self.r.err(base + (key,), f"'{key}:' applies to list parameters, not {ptype}", key=True)
            return
        low, high = spec.get("min_items"), spec.get("max_items")
        if isinstance(low, int) and isinstance(high, int) and low > high:
            self.r.err(base + ("max_items",), f"max_items {high} is below min_items {low}")
        items = spec.get("items")
        if not isinstance(items, dict):
            return
        itype = items.get("type", "string")
        if isinstance(items.get("pattern"), str):
            if itype != ParamType.STRING:
                self.r.err(base + ("items", "pattern"), f"a pattern applies to string values, not {itype}")
            try:
                re.compile(items["pattern"])
            except re.error as exc:
                self.r.err(base + ("items", "pattern"), f"invalid regular expression {quote(items['pattern'])}: {exc}")
        if isinstance(items.get("choices"), list) and isinstance(itype, str):
            for i, choice in enumerate(items["choices"]):
                if not is_type(choice, itype):
                    self.r.err(base + ("items", "choices", i), f"choice {choice!r} is not a{'n' if itype == 'integer' else ''} {itype}")

    def check_param_check(self, path: tuple[Any, ...], spec: dict[str, Any]) -> None:
        """A parameter's ``check:``: a read-only check whose arguments may use params and env only
        (it runs before the run exists)."""
        uses = spec.get("uses")
        if not isinstance(uses, str):
            return
        plugin = self.r.v.registry.get(uses)
        if plugin is None:
            self.r.err(path + ("uses",), f"unknown check {uses!r}{suggest(uses, list(self.r.v.registry))}; "
                                       "`invoke runbook.checks` lists them")
            return
        if plugin.kind is not PluginKind.CHECK:
            self.r.err(path + ("uses",), f"{uses} is an action; a parameter's check must be a read-only check")
            return
        args = spec.get("with", {})
        if not isinstance(args, dict):
            return
        for spath, text in templates.walk_strings(args, path + ("with",)):
            try:
                run_refs = [r.text for r in templates.refs(text) if r.root == "run"]
            except templates.TemplateError:
                run_refs = []          # pendify reports it
            if run_refs:
                self.r.err(spath, f"{run_refs[0]} is not known when a parameter is checked (only params and env are)")
                return
        pending = self.r.refs.pendify(path + ("with",), args, 0, allow_steps=False)
        if pending is not BAD:
            self.r.diags.extend(schema_validate(self.r.doc, pending, plugin.args, base=path + ("with",)))
