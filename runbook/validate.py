"""Validation of runbooks and environments: the schema, then the semantic rules.

Pure: reads the files through the Project cache and returns every Diagnostic at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from . import conditions, templates
from .errors import Diagnostic, InputError
from .model import PY_TYPES, SECTION_KIND, ParamType, PluginKind, Section, StepKind, step_kind
from .plugins import Plugin, Registry
from .project import Project
from .schemas import SCHEMA_TYPE_NAMES, Pending, describe, load_schema, quote, suggest, validate as schema_validate
from .yamlfile import Document

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


class RunbookValidator:
    """Validates one runbook file (and what it includes) against schema and rules."""

    def __init__(self, project: Project, registry: Registry):
        self.project = project
        self.registry = registry
        self.env_schema = load_schema("environment")
        self._checked: dict[Path, tuple[Checked | None, list[Diagnostic]]] = {}
        self._env_vars: dict[str, set[str]] | None = None

    def env_vars(self) -> dict[str, set[str]]:
        """Each environment of the project -> the names under its ``vars:`` (read once)."""
        if self._env_vars is None:
            self._env_vars = {}
            for name in self.project.environment_names():
                try:
                    data = self.project.load(self.project.environments_dir / f"{name}.yaml").data
                except InputError:
                    continue               # reported when the environment itself is validated
                found = data.get("vars") if isinstance(data, dict) else None
                self._env_vars[name] = set(map(str, found)) if isinstance(found, dict) else set()
        return self._env_vars

    # -- entry points -------------------------------------------------------------
    def check(self, path: Path) -> tuple[Checked | None, list[Diagnostic]]:
        """Validate a runbook; returns it (when readable) and every problem found (once per file)."""
        key = Path(path).resolve()
        if key not in self._checked:
            self._checked[key] = self._check(key, stack=())
        return self._checked[key]

    def _check(self, path: Path, stack: tuple[str, ...]) -> tuple[Checked | None, list[Diagnostic]]:
        try:
            doc = self.project.load(path)
        except InputError as exc:
            return None, [d for d in exc.diagnostics if isinstance(d, Diagnostic)]
        diags = schema_validate(doc, doc.data, load_schema("runbook"))
        if not isinstance(doc.data, dict):
            found = "an empty file" if doc.data is None else describe(doc.data)
            return None, [doc.diag((), f"a runbook is a mapping with name, title and steps; found {found}")]
        checked = Checked(path, doc, doc.data)
        _RunbookRules(self, checked, stack, diags).run()
        return checked, sorted(set(diags), key=lambda d: (d.file, d.line, d.col, d.message))


class _RunbookRules:
    """The semantic rules for one runbook, collecting diagnostics."""

    def __init__(self, v: RunbookValidator, checked: Checked, stack: tuple[str, ...], diags: list[Diagnostic]):
        self.v = v
        self.c = checked
        self.doc = checked.doc
        self.data = checked.data
        name = checked.data.get("name")
        self.stack: tuple[str, ...] = stack + (name if isinstance(name, str) else "?",)
        self.diags = diags
        self.params: dict[str, dict[str, Any]] = {
            k: p for k, p in (self.data.get("params") or {}).items() if isinstance(p, dict)
        } if isinstance(self.data.get("params"), dict) else {}
        self.steps: dict[str, StepInfo] = {}
        self.own: StepInfo | None = None      # the step whose verify items are being checked
        self.current: dict[str, Any] = {}     # the when/unless of the step being checked
        self.each: dict[str, Any] | None = None   # inside a for_each step: what ${each.value} is

    def err(self, path: tuple[Any, ...], message: str, key: bool = False) -> None:
        self.diags.append(self.doc.diag(path, message, key=key))

    def run(self) -> None:
        name = self.data.get("name")
        if isinstance(name, str) and name != self.c.path.stem:
            self.err(("name",), f"name {name!r} must equal the file name {self.c.path.stem!r}")
        self.check_params()
        steps = self.data.get("steps")
        if isinstance(steps, list):
            for index, step in enumerate(steps):
                if isinstance(step, dict):
                    self.check_step(index, step)
        self.check_lock()
        self.check_runbook_on_failure()
        if isinstance(self.data.get("description"), str):
            self.check_strings(("description",), self.data["description"], before=0)
        if isinstance(self.data.get("title"), str):
            self.check_strings(("title",), self.data["title"], before=0, allow_steps=False)
        self.c.steps = self.steps

    # -- parameters ---------------------------------------------------------------
    def check_params(self) -> None:
        for pname, spec in self.params.items():
            base = ("params", pname)
            ptype = spec.get("type")
            if not isinstance(ptype, str) or ptype not in {t.value for t in ParamType}:
                continue
            self.check_list_param(base, spec, ptype)
            pattern = spec.get("pattern")
            compiled = None
            if isinstance(pattern, str):
                if ptype != ParamType.STRING:
                    self.err(base + ("pattern",), f"a pattern applies to string parameters, not {ptype}")
                try:
                    compiled = re.compile(pattern)
                except re.error as exc:
                    self.err(base + ("pattern",), f"invalid regular expression {quote(pattern)}: {exc}")
            if spec.get("secret") and "default" in spec:
                self.err(base + ("default",), "a secret parameter cannot have a default (it would be written down)")
            if spec.get("secret") and ptype != ParamType.STRING:
                self.err(base + ("secret",), "only string parameters can be secret")
            choices = spec.get("choices")
            if isinstance(choices, list):
                for i, choice in enumerate(choices):
                    if not _is_type(choice, ptype):
                        article = "an" if ptype == "integer" else "a"
                        self.err(base + ("choices", i), f"choice {choice!r} is not {article} {ptype}")
            if "default" in spec:
                problem = param_problem(spec, spec["default"], compiled)
                if problem:
                    self.err(base + ("default",), f"default {problem}")
            if "example" in spec:
                problem = param_problem({k: v for k, v in spec.items() if k != "example"}, spec["example"], compiled)
                if problem:
                    self.err(base + ("example",), f"example {problem}")
            if isinstance(spec.get("check"), dict):
                self.check_param_check(base + ("check",), spec["check"])

    def check_list_param(self, base: tuple[Any, ...], spec: dict[str, Any], ptype: str) -> None:
        """``items``, ``min_items`` and ``max_items`` belong to list parameters, and must make sense."""
        if ptype != ParamType.LIST:
            for key in ("items", "min_items", "max_items"):
                if key in spec:
                    self.err(base + (key,), f"'{key}:' applies to list parameters, not {ptype}", key=True)
            return
        low, high = spec.get("min_items"), spec.get("max_items")
        if isinstance(low, int) and isinstance(high, int) and low > high:
            self.err(base + ("max_items",), f"max_items {high} is below min_items {low}")
        items = spec.get("items")
        if not isinstance(items, dict):
            return
        itype = items.get("type", "string")
        if isinstance(items.get("pattern"), str):
            if itype != ParamType.STRING:
                self.err(base + ("items", "pattern"), f"a pattern applies to string values, not {itype}")
            try:
                re.compile(items["pattern"])
            except re.error as exc:
                self.err(base + ("items", "pattern"), f"invalid regular expression {quote(items['pattern'])}: {exc}")
        if isinstance(items.get("choices"), list) and isinstance(itype, str):
            for i, choice in enumerate(items["choices"]):
                if not _is_type(choice, itype):
                    self.err(base + ("items", "choices", i), f"choice {choice!r} is not a{'n' if itype == 'integer' else ''} {itype}")

    def check_param_check(self, path: tuple[Any, ...], spec: dict[str, Any]) -> None:
        """A parameter's ``check:``: a read-only check whose arguments may use params and env only
        (it runs before the run exists)."""
        uses = spec.get("uses")
        if not isinstance(uses, str):
            return
        plugin = self.v.registry.get(uses)
        if plugin is None:
            self.err(path + ("uses",), f"unknown check {uses!r}{suggest(uses, list(self.v.registry))}; "
                                       "`invoke runbook.checks` lists them")
            return
        if plugin.kind is not PluginKind.CHECK:
            self.err(path + ("uses",), f"{uses} is an action; a parameter's check must be a read-only check")
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
                self.err(spath, f"{run_refs[0]} is not known when a parameter is checked (only params and env are)")
                return
        pending = self.pendify(path + ("with",), args, 0, allow_steps=False)
        if pending is not _BAD:
            self.diags.extend(schema_validate(self.doc, pending, plugin.args, base=path + ("with",)))

    # -- steps --------------------------------------------------------------------
    def check_step(self, index: int, step: dict[str, Any]) -> None:
        base: tuple[Any, ...] = ("steps", index)
        sid = step.get("id")
        if not isinstance(sid, str):
            return
        if sid in self.steps:
            self.err(base + ("id",), f"duplicate step id {sid!r} (first at steps[{self.steps[sid].index}])")
            return
        kind = step_kind(step)
        self.check_kind_keys(base, step, kind)
        self.current = {k: step[k] for k in ("when", "unless") if k in step}
        self.each = self.check_for_each(base, step, index, kind)
        for cond in ("when", "unless"):
            if cond in step:
                self.check_condition(base + (cond,), step[cond], index)
        if "end" in step:
            self.check_end(base, step, index)
        for key in ("title", "instructions", "confirm"):
            if isinstance(step.get(key), str):
                self.check_strings(base + (key,), step[key], before=index)
        info = StepInfo(sid, index, always_runs(step), conditions=dict(self.current)
                        if step.get("on_failure") != "continue" else {})
        if not info.always:
            info.conditional_reason = ("it has 'when:'" if "when" in step else "it has 'unless:'" if "unless" in step
                                       else "it has 'on_failure: continue'")
        if "for_each" in step:
            info.always = False
            info.conditional_reason = "it has 'for_each:', so its outputs are per iteration"
        if step.get("retry") is not None and step.get("on_failure") != "retry":
            self.err(base + ("retry",), "'retry:' needs 'on_failure: retry' on the same step")
        if kind is StepKind.TASK:
            self.check_items(base, step, index, info)
            self.own = None
            if "confirm" in step:
                info.outputs["confirm"] = CONFIRM_OUTPUTS
        elif kind is StepKind.APPROVAL:
            self.check_approval(base + ("approval",), step.get("approval"), index)
            info.outputs["approval"] = APPROVAL_OUTPUTS
        elif kind is StepKind.INCLUDE:
            self.check_include(base, step, index, info)
        elif kind is StepKind.RUN:
            run = step.get("run")
            if isinstance(run, dict):
                self.check_linked(base + ("run",), run, index, require_all=False)
            info.outputs["run"] = RUN_OUTPUTS
        self.each = None
        self.steps[sid] = info

    def check_for_each(self, base: tuple[Any, ...], step: dict[str, Any], index: int,
                       kind: StepKind) -> dict[str, Any] | None:
        """``for_each`` resolves to a list (a list parameter or a list output of an earlier step that
        always runs); ``concurrency``/``max_failures`` need it. What ``${each.value}`` is, or None
        outside a for_each step."""
        self.each = None
        if "for_each" not in step:
            for key in ("concurrency", "max_failures"):
                if key in step:
                    self.err(base + (key,), f"'{key}:' belongs to a step with 'for_each:'", key=True)
            return None
        if kind is StepKind.APPROVAL:
            self.err(base + ("for_each",), "'for_each:' applies to task, include and run steps, not approval gates",
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
            self.err(base + ("for_each",), str(exc))
            return unknown
        if ref is None:
            return unknown                      # the schema reported it
        t = self.ref_type(base + ("for_each",), ref, index)
        if t is _BAD:
            return unknown
        if t != "array":
            self.err(base + ("for_each",), f"{ref.text} resolves to "
                                           f"{SCHEMA_TYPE_NAMES.get(t, t) if t else 'a value of unknown type'}, but "
                                           "for_each needs a list (a list parameter or a list output)")
            return unknown
        items = self.each_items(ref)
        return {"type": schema_type(items), "schema": items}

    def each_items(self, ref: templates.Ref) -> dict[str, Any] | None:
        """The schema of one value of the list ``ref`` names (a list parameter's ``items``, an output's)."""
        if ref.root == "params":
            items = self.params[ref.parts[0]].get("items")
            return {"type": str(items.get("type", "string"))} if isinstance(items, dict) else {"type": "string"}
        if ref.root == "env":
            sub, _ = schema_at(self.v.env_schema, ref.parts)
        else:
            parts, sub = ref.parts, None
            for n in range(len(parts) - 1, 0, -1):
                info = self.steps.get(".".join(parts[:n]))
                if info is not None and parts[n] in info.outputs:
                    sub, _ = schema_at(info.outputs[parts[n]], parts[n + 1:])
                    break
        items = sub.get("items") if isinstance(sub, dict) else None
        return items if isinstance(items, dict) else None

    def each_ref_type(self, path: tuple[Any, ...], ref: templates.Ref) -> Any:
        """``${each.value}`` (below it, when its values are mappings) and ``${each.index}``, inside a
        for_each step only."""
        if self.each is None:
            self.err(path, f"{ref.text}: only known inside a step with 'for_each:'")
            return _BAD
        field_ = ref.parts[0]
        if field_ not in templates.EACH_FIELDS or (field_ == "index" and len(ref.parts) > 1):
            self.err(path, f"{ref.text}: each has each.value and each.index{suggest(field_, templates.EACH_FIELDS)}")
            return _BAD
        if field_ == "index":
            return "integer"
        if len(ref.parts) == 1:
            return self.each["type"]
        schema = self.each.get("schema")
        if not schema:
            return None
        sub, unknown = schema_at(schema, ref.parts[1:])
        if sub is None:
            self.err(path, f"{ref.text}: the values of for_each have no {unknown}")
            return _BAD
        return schema_type(sub)

    def check_kind_keys(self, base: tuple[Any, ...], step: dict[str, Any], kind: StepKind) -> None:
        task_keys = ("requires", "confirm", "do", "verify")
        special = [k.value for k in (StepKind.APPROVAL, StepKind.INCLUDE, StepKind.RUN) if k.value in step]
        if len(special) > 1:
            self.err(base + (special[1],), f"a step is one of approval, include or run; this one has {' and '.join(special)}",
                     key=True)
        if kind is not StepKind.TASK:
            for key in task_keys:
                if key == "confirm" and kind is StepKind.RUN:
                    continue   # a linked run may be offered: declining skips the step
                if key in step:
                    self.err(base + (key,), f"'{key}:' cannot be combined with '{kind.value}:' in one step; "
                                            f"use a separate step", key=True)
        if "with" in step and kind is not StepKind.INCLUDE:
            self.err(base + ("with",), "'with:' on a step belongs to 'include:' (items and 'run:' have their own)", key=True)

    def check_items(self, base: tuple[Any, ...], step: dict[str, Any], index: int, info: StepInfo) -> None:
        seen: dict[str, tuple[Any, ...]] = {}
        for section, i, item in items_of(step):
            ipath = base + (section.value, i)
            self.own = info if section is Section.VERIFY else None    # verify may use this step's do outputs
            iid = item.get("id")
            if "manual" in item and "id" not in item:
                self.err(ipath, "a manual item needs an 'id' (its answer is recorded under STEP.ITEM)")
            if isinstance(iid, str):
                if iid in ("confirm", "approval", "run"):
                    self.err(ipath + ("id",), f"item id {iid!r} is reserved for the step's own prompts")
                elif iid in seen:
                    self.err(ipath + ("id",), f"duplicate item id {iid!r} in step {step['id']!r} "
                                              f"(first at {_fmt(seen[iid])})")
                else:
                    seen[iid] = ipath
            if "manual" in item and "uses" in item:
                continue  # both kinds at once: the schema reported it, and neither kind's rules apply
            if "manual" in item:
                if isinstance(item.get("manual"), str):
                    self.check_strings(ipath + ("manual",), item["manual"], before=index)
                for key in ("with", "wait"):
                    if key in item:
                        self.err(ipath + (key,), f"'{key}:' belongs to automated items ('uses:'), not manual ones", key=True)
                if isinstance(iid, str):
                    info.outputs[iid] = MANUAL_OUTPUTS
                continue
            if "evidence" in item:
                self.err(ipath + ("evidence",), "'evidence:' applies to manual items; automated items record their own",
                         key=True)
            uses = item.get("uses")
            if not isinstance(uses, str):
                continue
            plugin = self.v.registry.get(uses)
            if plugin is None:
                self.err(ipath + ("uses",), f"unknown check or action {uses!r}{suggest(uses, list(self.v.registry))}; "
                                            "`invoke runbook.checks` lists them")
                continue
            wanted = SECTION_KIND[section]
            if plugin.kind is not wanted:
                where = "'do:'" if plugin.kind is PluginKind.ACTION else "'requires:' or 'verify:'"
                self.err(ipath + ("uses",), f"{uses} is an {plugin.kind.value}, not a {wanted.value}; it belongs under {where}"
                         if plugin.kind is PluginKind.ACTION else
                         f"{uses} is a {plugin.kind.value}, not an {wanted.value}; it belongs under {where}")
            if "wait" in item and plugin.kind is not PluginKind.CHECK:
                self.err(ipath + ("wait",), "only checks can 'wait:' (poll until they pass)", key=True)
            required = [str(r) for r in plugin.args.get("required") or []]
            if "with" not in item and required:
                self.err(ipath, f"missing 'with:'; {uses} needs {', '.join(repr(r) for r in required)}")
                args = None
            else:
                args = item.get("with", {})
            if isinstance(args, dict):
                self.check_plugin_args(ipath + ("with",), plugin.args, args, index)
                if uses.startswith("git."):
                    self.check_git_literals(ipath + ("with",), args)
                self.lint(ipath + ("with",), plugin, args)
            probed = self.check_probe(ipath + ("probe",), item["probe"], plugin, index) if "probe" in item else None
            if isinstance(iid, str):
                info.outputs[iid] = plugin.outputs_of(args)
                if section is Section.DO:
                    info.actions.add(iid)
                if probed is not None:
                    info.probed[iid] = probed
                elif plugin.kind is PluginKind.ACTION and plugin.side_effect and plugin.probe is None \
                        and "probe" not in item:
                    info.unrecoverable[iid] = uses

    def check_plugin_args(self, path: tuple[Any, ...], schema: dict[str, Any], args: dict[str, Any], index: int) -> None:
        pending = self.pendify(path, args, index)
        if pending is _BAD:
            return
        self.diags.extend(schema_validate(self.doc, pending, schema, base=path))
        for key, sub in (schema.get("properties") or {}).items():
            if isinstance(sub, dict) and sub.get("format") == "regex" and isinstance(args.get(key), str) \
                    and not templates.has_templates(args[key]):
                try:
                    re.compile(args[key])
                except re.error as exc:
                    self.err(path + (key,), f"invalid regular expression {quote(args[key])}: {exc}")

    def check_probe(self, path: tuple[Any, ...], probe: Any, action: Plugin, index: int) -> dict[str, Any] | None:
        """An action's ``probe:``: a read-only check that passes when the action's effect exists;
        returns the output schema it gives (None when it is not usable)."""
        if action.kind is not PluginKind.ACTION:
            self.err(path, f"'probe:' belongs to actions (under 'do:'); {action.name} is a check", key=True)
            return None
        if not isinstance(probe, dict):
            return None                          # the schema reported it
        uses = probe.get("uses")
        if not isinstance(uses, str):
            return None
        plugin = self.v.registry.get(uses)
        if plugin is None:
            self.err(path + ("uses",), f"unknown check {uses!r}{suggest(uses, list(self.v.registry))}; "
                                       "`invoke runbook.checks` lists them")
            return None
        if plugin.kind is not PluginKind.CHECK:
            self.err(path + ("uses",), f"{uses} is an action; a probe must be a read-only check (it runs on resume "
                                       "to find out whether the effect already exists)")
            return None
        args = probe.get("with", {})
        required = [str(r) for r in plugin.args.get("required") or []]
        if "with" not in probe and required:
            self.err(path, f"missing 'with:'; {uses} needs {', '.join(repr(r) for r in required)}")
            return None
        if not isinstance(args, dict):
            return None
        own, self.own = self.own, None           # a probe runs before its action's outputs exist
        self.check_plugin_args(path + ("with",), plugin.args, args, index)
        self.lint(path + ("with",), plugin, args)
        self.own = own
        return plugin.outputs_of(args)

    def check_end(self, base: tuple[Any, ...], step: dict[str, Any], index: int) -> None:
        """``end: succeeded|failed`` ends the run at this step: the steps after it need a way to run."""
        if step.get("end") not in ("succeeded", "failed"):
            return                               # the schema reported it
        steps = self.data.get("steps")
        later = [s.get("id") for s in steps[index + 1:] if isinstance(s, dict)] if isinstance(steps, list) else []
        if later and "when" not in step and "unless" not in step:
            self.err(base + ("end",), f"step {step.get('id')!r} ends the run whenever it runs (it has no 'when:' or "
                                      f"'unless:'), so {', '.join(map(repr, later[:3]))}"
                                      f"{' ...' if len(later) > 3 else ''} would never run; give it a condition "
                                      "or move it last")

    def lint(self, path: tuple[Any, ...], plugin: Plugin, args: dict[str, Any]) -> None:
        """The plugin's own static checks of its arguments (an AWS operation and its parameters
        against botocore's service model, say)."""
        if plugin.lint is None:
            return
        try:
            found = plugin.lint(args)
        except Exception as exc:   # a plugin's lint is foreign code: its crash is a finding, not ours
            self.err(path, f"{plugin.name}: its static check raised {type(exc).__name__}: {exc}")
            return
        for rel, message in found:
            self.err(path + tuple(rel), message)

    def check_git_literals(self, path: tuple[Any, ...], value: Any) -> None:
        """A written value git could read as an option (``--upload-pack=...``) is refused before anything runs."""
        if isinstance(value, dict):
            for k, v in value.items():
                self.check_git_literals(path + (k,), v)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                self.check_git_literals(path + (i,), v)
        elif isinstance(value, str) and value.startswith("-"):
            self.err(path, f"{quote(value)} starts with '-': git would read it as an option; use a plain name")

    def pendify(self, path: tuple[Any, ...], value: Any, index: int, allow_steps: bool = True) -> Any:
        """Check every template in ``value`` and replace it by a typed Pending marker."""
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                r = self.pendify(path + (k,), v, index, allow_steps)
                if r is _BAD:
                    return _BAD
                out[k] = r
            return out
        if isinstance(value, list):
            items = [self.pendify(path + (i,), v, index, allow_steps) for i, v in enumerate(value)]
            return _BAD if any(r is _BAD for r in items) else items
        if not isinstance(value, str) or "${" not in value:
            return value
        try:
            refs = templates.refs(value)
            whole = templates.whole(value)
        except templates.TemplateError as exc:
            self.err(path, str(exc))
            return _BAD
        types = [self.ref_type(path, ref, index, allow_steps) for ref in refs]
        if any(t is _BAD for t in types):
            return _BAD
        if whole is not None:
            return Pending(value, types[0])
        return Pending(value, "string")

    def check_strings(self, path: tuple[Any, ...], value: Any, before: int, allow_steps: bool = True) -> None:
        self.pendify(path, value, before, allow_steps)

    def ref_type(self, path: tuple[Any, ...], ref: templates.Ref, before: int, allow_steps: bool = True) -> Any:
        """The type a reference resolves to, or _BAD after reporting why it cannot resolve."""
        if ref.root == "params":
            name = ref.parts[0]
            if name not in self.params:
                self.err(path, f"{ref.text}: no parameter {name!r}{suggest(name, list(self.params))}")
                return _BAD
            if len(ref.parts) > 1:
                self.err(path, f"{ref.text}: parameters are plain values; nothing below {name!r}")
                return _BAD
            ptype = self.params[name].get("type")
            if ptype == ParamType.LIST:
                return "array"                                  # a list parameter is a JSON-schema array
            return ptype if isinstance(ptype, str) else None   # a wrong type is reported at params.NAME.type
        if ref.root == "env":
            sub, unknown = schema_at(self.v.env_schema, ref.parts)
            if sub is None:
                self.err(path, f"{ref.text}: environments have no {unknown} (see schemas/environment.schema.json)")
                return _BAD
            if len(ref.parts) >= 2 and ref.parts[0] == "vars":
                known = self.v.env_vars()
                name = ref.parts[1]
                if known and not any(name in names for names in known.values()):
                    every = sorted(set().union(*known.values()))
                    self.err(path, f"{ref.text}: no environment defines vars.{name}{suggest(name, every)} "
                                   f"(environments/: {', '.join(sorted(known))})")
                    return _BAD
            return schema_type(sub)
        if ref.root == "each":
            return self.each_ref_type(path, ref)
        if ref.root == "run":
            if ref.parts[0] not in templates.RUN_FIELDS or len(ref.parts) > 1:
                self.err(path, f"{ref.text}: run has {', '.join('run.' + f for f in templates.RUN_FIELDS)}"
                               f"{suggest(ref.parts[0], templates.RUN_FIELDS)}")
                return _BAD
            return "string"
        if not allow_steps:
            self.err(path, f"{ref.text}: step outputs are not known here (only params and env are)")
            return _BAD
        return self.step_ref_type(path, ref, before)

    def step_ref_type(self, path: tuple[Any, ...], ref: templates.Ref, before: int) -> Any:
        parts = ref.parts
        all_ids = [s.get("id") for s in self.data.get("steps", []) if isinstance(s, dict)]
        # the longest prefix naming a step: included steps are OUTER.INNER
        match = None
        for n in range(len(parts), 0, -1):
            candidate = ".".join(parts[:n])
            if candidate in self.steps or candidate in all_ids:
                match = (candidate, n)
                break
        if match is None:
            self.err(path, f"{ref.text}: no step {parts[0]!r}{suggest(parts[0], [str(i) for i in all_ids])}")
            return _BAD
        sid, n = match
        info = self.steps.get(sid)
        own = self.own if self.own is not None and self.own.id == sid and len(parts) > n \
            and parts[n] in self.own.actions else None
        if own is not None:
            info = own                       # a verify item reading its own step's action outputs
        elif info is None or info.index >= before:
            here = all_ids[before] if before < len(all_ids) else "?"
            which = "its own step" if sid == here else "a later step"
            self.err(path, f"{ref.text}: refers to {which} {sid!r}; only outputs of earlier steps are known")
            return _BAD
        if own is None and not info.always and not any(
                conditions.covers(self.current, c) for c in info.conditions.items()):
            self.err(path, f"{ref.text}: step {sid!r} may not run ({info.conditional_reason}), so its outputs "
                           "may not exist; reference it from a step with the identical condition (or a "
                           "'when: {all: [...]}' that includes it), or reference a step that always runs")
            return _BAD
        rest = parts[n:]
        if not rest:
            self.err(path, f"{ref.text}: name the item and output, like ${{steps.{sid}.ITEM.OUTPUT}}")
            return _BAD
        item = rest[0]
        if item not in info.outputs:
            self.err(path, f"{ref.text}: step {sid!r} has no item {item!r} with outputs"
                           f"{suggest(item, list(info.outputs))} (automated items need an 'id' to be referenced)")
            return _BAD
        if len(rest) == 1:
            self.err(path, f"{ref.text}: name the output of {sid}.{item}, one of "
                           f"{', '.join(sorted((info.outputs[item].get('properties') or {}))) or 'its outputs'}")
            return _BAD
        sub, unknown = schema_at(info.outputs[item], rest[1:])
        if sub is None:
            self.err(path, f"{ref.text}: {sid}.{item} has no output {unknown}")
            return _BAD
        if item in info.probed and own is None:
            given, _ = schema_at(info.probed[item], rest[1:])
            if given is None:
                self.err(path, f"{ref.text}: the probe of {sid}.{item} does not give {quote(rest[1])}, so after a "
                               "crash recovered by the probe it would be missing; select it in the probe too")
                return _BAD
        if item in info.unrecoverable:
            self.err(path, f"{ref.text}: {info.unrecoverable[item]} has no probe, so when a crash interrupts "
                           f"{sid}.{item} its outputs cannot be recovered on resume (only its effect can be "
                           "verified); read the value with a check in a later step, or give the action a probe")
            return _BAD
        return schema_type(sub)

    def check_condition(self, path: tuple[Any, ...], value: Any, index: int) -> None:
        if isinstance(value, bool):
            return
        if isinstance(value, dict):
            self.check_structured(path, value, index)
            return
        nested = any(isinstance(part, str) and part in conditions.OPERATORS for part in path[2:])
        if not isinstance(value, str) or "${" not in value:
            if nested:   # the schema checks a step's when/unless, not what is inside a structured one
                self.err(path, f"{conditions.text(value) if not isinstance(value, str) else quote(value)} is not a "
                               "condition: true, false, one ${...} resolving to a boolean, or {OPERATOR: ...}")
            return  # the schema reported it
        try:
            ref = templates.whole(value)
        except templates.TemplateError as exc:
            self.err(path, str(exc))
            return
        if ref is None:
            if nested:
                self.err(path, f"{quote(value)} is not a condition: a condition is exactly one ${{...}} resolving to "
                               "a boolean (or {OPERATOR: ...})")
            return  # not exactly one ${...}: the schema reported it
        t = self.ref_type(path, ref, index)
        if t is _BAD:
            return
        if t != "boolean":
            self.err(path, f"{ref.text} resolves to {SCHEMA_TYPE_NAMES.get(t, t) if t else 'a value of unknown type'}, "
                           "but a condition needs a boolean")

    def check_structured(self, path: tuple[Any, ...], cond: dict[str, Any], index: int) -> None:
        """A structured condition: one operator, its operands' types checked before the run."""
        if len(cond) != 1:
            self.err(path, f"a condition has exactly one operator ({', '.join(conditions.OPERATORS)}); "
                           f"found {', '.join(map(str, cond)) or 'none'}")
            return
        op, arg = next(iter(cond.items()))
        where = path + (op,)
        if op not in conditions.OPERATORS:
            self.err(path + (op,), f"unknown condition operator {quote(str(op))}"
                                   f"{suggest(str(op), list(conditions.OPERATORS))}; one of "
                                   f"{', '.join(conditions.OPERATORS)}", key=True)
            return
        if op == "not":
            self.check_condition(where, arg, index)
            return
        if op in ("all", "any"):
            if not isinstance(arg, list) or not arg:
                self.err(where, f"'{op}:' takes a list of conditions")
                return
            for i, part in enumerate(arg):
                self.check_condition(where + (i,), part, index)
            return
        if not isinstance(arg, list) or len(arg) != 2:
            self.err(where, f"'{op}:' takes two operands, like {{{op}: [A, B]}}")
            return
        a, b = (self.operand_type(where + (i,), v, index) for i, v in enumerate(arg))
        if a is _BAD or b is _BAD:
            return
        name = {t: SCHEMA_TYPE_NAMES.get(t, t) for t in (a, b) if isinstance(t, str)}
        if op in conditions.NUMERIC:
            for i, t in enumerate((a, b)):
                if t is not None and t not in ("integer", "number"):
                    self.err(where + (i,), f"{_operand(arg[i])} is {name[t]}, but '{op}:' compares numbers")
        elif op in ("equals", "not_equals"):
            if a is not None and b is not None and not _comparable(a, b):
                self.err(where + (1,), f"{_operand(arg[0])} is {name[a]} and {_operand(arg[1])} is {name[b]}: "
                                       f"they are never equal")
        elif op == "in":
            if b is not None and b != "array":
                self.err(where + (1,), f"{_operand(arg[1])} is {name[b]}, but 'in:' needs a list as its second operand")
            elif isinstance(arg[1], list) and a is not None:
                for i, v in enumerate(arg[1]):
                    t = _literal_type(v)
                    if not templates.has_templates(v) and t is not None and not _comparable(a, t):
                        self.err(where + (1, i), f"{_operand(v)} is {SCHEMA_TYPE_NAMES.get(t, t)}, but "
                                                 f"{_operand(arg[0])} is {name[a]}: it can never be in the list")
                        break
        elif op == "matches":
            if a is not None and a != "string":
                self.err(where + (0,), f"{_operand(arg[0])} is {name[a]}, but 'matches:' tests strings")
            if isinstance(arg[1], str) and not templates.has_templates(arg[1]):
                try:
                    re.compile(arg[1])
                except re.error as exc:
                    self.err(where + (1,), f"invalid regular expression {quote(arg[1])}: {exc}")
            elif b is not None and b != "string":
                self.err(where + (1,), f"{_operand(arg[1])} is {name[b]}, but a pattern is a string")

    def operand_type(self, path: tuple[Any, ...], value: Any, index: int) -> Any:
        """The type an operand has at run time (None: unknown), or _BAD after an error."""
        pend = self.pendify(path, value, index)
        if pend is _BAD:
            return _BAD
        if isinstance(pend, Pending):
            return pend.type
        if isinstance(value, (dict, list)) and templates.has_templates(value):
            return "array" if isinstance(value, list) else "object"
        return _literal_type(value)

    def check_approval(self, path: tuple[Any, ...], approval: Any, index: int) -> None:
        if not isinstance(approval, dict):
            return
        source = approval.get("source")
        if source == "github-pr" and "pr" not in approval:
            self.err(path, "a github-pr approval needs 'pr:' (the pull request number, often ${steps.STEP.ITEM.number})")
        if source == "prompt" and "pr" in approval:
            self.err(path + ("pr",), "'pr:' belongs to github-pr approvals", key=True)
        if "pr" in approval:
            pr = approval["pr"]
            if isinstance(pr, str):
                pend = self.pendify(path + ("pr",), pr, index)
                if isinstance(pend, Pending) and pend.type not in (None, "integer", "number") \
                        or (isinstance(pr, str) and templates.whole(pr) is None and "${" in pr):
                    self.err(path + ("pr",), f"{pr!r}: the pull request is a number or one ${{...}} resolving to one")
                elif not isinstance(pend, Pending) and pend is not _BAD:
                    self.err(path + ("pr",), f"{pr!r}: the pull request is a number or one ${{...}} resolving to one")
        roles = approval.get("roles")
        minimum = approval.get("min", 1)
        if isinstance(roles, list) and isinstance(minimum, int) and len(roles) > minimum:
            self.err(path + ("min",) if "min" in approval else path,
                     f"{len(roles)} roles each need their own approver, so 'min' must be at least {len(roles)}")
        if isinstance(approval.get("message"), str):
            self.check_strings(path + ("message",), approval["message"], before=index)

    # -- include / run / on_failure --------------------------------------------------
    def target(self, path: tuple[Any, ...], name: Any, what: str) -> tuple[Path | None, dict[str, Any] | None]:
        if not isinstance(name, str):
            return None, None
        found = self.v.project.find_runbook(name, near=self.c.path.parent)
        if found is None:
            names = sorted({p.stem for p in self.c.path.parent.glob("*.yaml")} | set(self.v.project.runbook_names()))
            self.err(path, f"{what} {name!r}: no such runbook{suggest(name, names)}")
            return None, None
        try:
            doc = self.v.project.load(found)
        except InputError:
            self.err(path, f"{what} {name!r}: {self.v.project.display(found)} is not valid YAML; "
                           "`invoke runbook.validate` shows why")
            return found, None
        if not isinstance(doc.data, dict):
            self.err(path, f"{what} {name!r}: {self.v.project.display(found)} is not a runbook")
            return found, None
        return found, doc.data

    def check_include(self, base: tuple[Any, ...], step: dict[str, Any], index: int, info: StepInfo) -> None:
        name = step.get("include")
        if isinstance(name, str) and name in self.stack:
            cycle = " -> ".join(self.stack[self.stack.index(name):] + (name,))
            self.err(base + ("include",), f"include cycle: {cycle}")
            return
        found, data = self.target(base + ("include",), name, "include")
        if found is None or data is None:
            return
        checked, inner_diags = self.v._check(found, self.stack)
        cycles = [d for d in inner_diags if d.message.startswith("include cycle")]
        if cycles:
            self.err(base + ("include",), cycles[0].message)
            return
        self.diags.extend(inner_diags)
        if checked is None:
            return
        if "for_each" in step and any(isinstance(s, dict) and "for_each" in s for s in checked.data.get("steps") or []):
            self.err(base + ("for_each",), f"include {name!r} has for_each steps itself; for_each does not nest",
                     key=True)
        self.c.includes[str(name)] = found
        self.c.includes.update(checked.includes)
        self.check_with(base + ("with",), step.get("with") or {}, data, index, require_all=True,
                        label=f"include {name!r}")
        for inner_id, inner in checked.steps.items():
            nested = StepInfo(f"{info.id}.{inner_id}", info.index, info.always and inner.always,
                              dict(inner.outputs), info.conditional_reason or inner.conditional_reason,
                              dict(inner.unrecoverable))
            self.steps[nested.id] = nested

    def check_linked(self, path: tuple[Any, ...], linked: dict[str, Any], index: int, require_all: bool) -> None:
        found, data = self.target(path + ("runbook",), linked.get("runbook"), "runbook")
        if data is None:
            return
        self.check_with(path + ("with",), linked.get("with") or {}, data, index, require_all,
                        label=f"runbook {linked.get('runbook')!r}")

    def check_with(self, path: tuple[Any, ...], given: Any, target: dict[str, Any], index: int,
                   require_all: bool, label: str) -> None:
        if not isinstance(given, dict):
            return
        found = target.get("params")
        params: dict[str, Any] = found if isinstance(found, dict) else {}
        for key, value in given.items():
            if key not in params:
                self.err(path + (key,), f"{label} has no parameter {key!r}{suggest(key, list(params))}", key=True)
                continue
            spec = params[key] if isinstance(params[key], dict) else {}
            if spec.get("secret"):
                self.err(path + (key,), f"{label}: secret parameter {key!r} cannot be passed in a runbook; "
                                        "it is asked for or read from its environment variable", key=True)
                continue
            pend = self.pendify(path + (key,), value, index)
            if pend is _BAD:
                continue
            if isinstance(pend, Pending):
                if isinstance(pend.type, str) and isinstance(spec.get("type"), str) \
                        and not _types_fit(pend.type, spec["type"]):
                    have, want = (SCHEMA_TYPE_NAMES.get(t, t) for t in (pend.type, spec["type"]))
                    self.err(path + (key,), f"{pend.text} is {have}, but {label} expects {key} as {want}")
                continue
            problem = param_problem(spec, value)
            if problem:
                self.err(path + (key,), f"{label}: {key} {problem}")
        if require_all:
            for pname, spec in params.items():
                if isinstance(spec, dict) and pname not in given and "default" not in spec and not spec.get("secret"):
                    self.err(path if "with" in path and given else path[:-1],
                             f"{label} needs parameter {pname!r} (it has no default)")

    def check_lock(self) -> None:
        lock = self.data.get("lock")
        if isinstance(lock, str) and lock != "none":
            self.check_strings(("lock",), lock, before=0, allow_steps=False)

    def check_runbook_on_failure(self) -> None:
        of = self.data.get("on_failure")
        if not isinstance(of, dict):
            return
        after = of.get("after")
        step_ids = [s.get("id") for s in self.data.get("steps", []) if isinstance(s, dict)]
        if after is not None and after not in step_ids:
            self.err(("on_failure", "after"), f"no step {after!r}{suggest(str(after), [str(s) for s in step_ids])}")
        found, data = self.target(("on_failure", "runbook"), of.get("runbook"), "on_failure runbook")
        if data is not None:
            self.check_with(("on_failure", "with"), of.get("with") or {}, data, len(step_ids), False,
                            label=f"runbook {of.get('runbook')!r}")


class _Bad:
    def __repr__(self) -> str:
        return "<bad>"


_BAD: Any = _Bad()


def _fmt(path: tuple[Any, ...]) -> str:
    from .errors import format_path

    return format_path(path)


def _is_type(value: Any, ptype: str) -> bool:
    types = PY_TYPES.get(ParamType(ptype)) if isinstance(ptype, str) and ptype in {t.value for t in ParamType} else None
    if types is None:
        return False
    if isinstance(value, bool) and ptype != ParamType.BOOLEAN:
        return False
    return isinstance(value, types)


def _literal_type(value: Any) -> str | None:
    for py, name in ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"), (list, "array"),
                     (dict, "object"), (type(None), "null")):
        if isinstance(value, py):
            return name
    return None


def _comparable(a: str, b: str) -> bool:
    """Values of types a and b can be equal: the same type, two numbers, or null beside anything (a
    typed output is null when its JMESPath finds nothing: comparing it to null asks exactly that)."""
    return a == b or {a, b} <= {"integer", "number"} or "null" in (a, b)


def _operand(value: Any) -> str:
    return value if isinstance(value, str) and value.startswith("${") else conditions.text(value) \
        if not isinstance(value, str) else quote(value)


def _types_fit(have: str, want: str) -> bool:
    return have == want or (have == "integer" and want == "number") or (have == "array" and want == "list")


def param_problem(spec: dict[str, Any], value: Any, compiled: re.Pattern[str] | None = None,
                  name: str = "") -> str | None:
    """Why ``value`` does not fit a parameter spec, or None."""
    ptype = spec.get("type", "string")
    if not _is_type(value, ptype):
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


# -- environments ------------------------------------------------------------------

def check_environment(project: Project, path: Path) -> tuple[Document | None, list[Diagnostic]]:
    """Validate one environment file."""
    try:
        doc = project.load(path)
    except InputError as exc:
        return None, [d for d in exc.diagnostics if isinstance(d, Diagnostic)]
    diags = schema_validate(doc, doc.data, load_schema("environment"))
    data = doc.data
    if not isinstance(data, dict):
        found = "an empty file" if data is None else describe(data)
        return None, [doc.diag((), f"an environment is a mapping with at least 'name'; found {found}")]
    if isinstance(data.get("name"), str) and data["name"] != Path(path).stem:
        diags.append(doc.diag(("name",), f"name {data['name']!r} must equal the file name {Path(path).stem!r}"))
    ecs = data.get("ecs")
    if isinstance(ecs, dict) and ecs.get("deployment_controller") == "CODE_DEPLOY":
        diags.append(doc.diag(("ecs", "deployment_controller"),
                              "CODE_DEPLOY blue/green services are not supported yet: the engine drives ECS rolling "
                              "deployments (deployment_controller: ECS)"))
    deploy = data.get("deploy")
    if isinstance(deploy, dict):
        for key in ("release_tag_pattern", "rollback_tag_pattern"):
            if isinstance(deploy.get(key), str):
                try:
                    re.compile(deploy[key])
                except re.error as exc:
                    diags.append(doc.diag(("deploy", key), f"invalid regular expression {quote(deploy[key])}: {exc}"))
    return doc, sorted(set(diags), key=lambda d: (d.line, d.col, d.message))
