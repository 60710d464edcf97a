"""Validation of runbooks and environments: the schema, then the semantic rules.

Pure: reads the files through the Project cache and returns every Diagnostic at once. The
rules are grouped by the part of the format they check: steps and items (here),
parameters (``param_rules``), templates and references (``refs``), conditions
(``condition_rules``), for_each (``each_rules``), approvals, includes and linked runs
(``links``), environment files (``environments``); the facts they share in ``common``.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from .. import templates
from ..errors import Diagnostic, InputError
from ..model import SECTION_KIND, PluginKind, Section, StepKind, step_kind
from ..plugins import DiskCache, Plugin, Registry
from ..project import Project
from ..schemas import describe, load_schema, quote, suggest, validate as schema_validate
from .common import (APPROVAL_OUTPUTS, BAD, CONFIRM_OUTPUTS, MANUAL_OUTPUTS, RUN_OUTPUTS, Checked, StepInfo,
                     always_runs, fmt_path, items_of)
from .environments import check_environment
from .param_rules import ParamRules
from .refs import RefRules
from .condition_rules import ConditionRules
from .each_rules import EachRules
from .links import LinkRules


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
        diags = _schema_problems(path, doc)
        if not isinstance(doc.data, dict):
            found = "an empty file" if doc.data is None else describe(doc.data)
            return None, [doc.diag((), f"a runbook is a mapping with name, title and steps; found {found}")]
        checked = Checked(path, doc, doc.data)
        RunbookRules(self, checked, stack, diags).run()
        return checked, sorted(set(diags), key=lambda d: (d.file, d.line, d.col, d.message))


_VALID_DOCUMENTS = DiskCache("valid-runbooks.json")    # files whose content fits the runbook schema


@lru_cache(maxsize=1)
def _jsonschema_version() -> str:
    from importlib.metadata import version

    return version("jsonschema")


def _schema_problems(path: Path, doc: Any) -> list[Diagnostic]:
    """The file against the runbook schema: remembered when it fits (under the cache folder, by the
    digest of its content, of the schema and of the jsonschema installed), so a 1,000-step runbook is
    schema-checked once, not at every run; problems are never remembered (always found afresh)."""
    import hashlib

    schema = load_schema("runbook")
    try:
        content = Path(path).read_bytes()
    except OSError:
        return schema_validate(doc, doc.data, schema)
    key = hashlib.sha256(b"\0".join([content, json.dumps(schema, sort_keys=True).encode(),
                                      _jsonschema_version().encode()])).hexdigest()
    if _VALID_DOCUMENTS.get(key):
        return []
    diags = schema_validate(doc, doc.data, schema)
    if not diags:
        _VALID_DOCUMENTS.put(key, True)
    return diags


class RunbookRules:
    """The rules of one runbook, collecting diagnostics: the steps and their items here; parameters,
    references, conditions, for_each and links (approvals, includes, linked runs) each in their own
    module, reached through this object (``r``)."""

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
        self.param_rules = ParamRules(self)
        self.refs = RefRules(self)
        self.condition_rules = ConditionRules(self)
        self.each_rules = EachRules(self)
        self.links = LinkRules(self)

    def err(self, path: tuple[Any, ...], message: str, key: bool = False) -> None:
        self.diags.append(self.doc.diag(path, message, key=key))

    def run(self) -> None:
        name = self.data.get("name")
        if isinstance(name, str) and name != self.c.path.stem:
            self.err(("name",), f"name {name!r} must equal the file name {self.c.path.stem!r}")
        self.param_rules.check_params()
        steps = self.data.get("steps")
        if isinstance(steps, list):
            for index, step in enumerate(steps):
                if isinstance(step, dict):
                    self.check_step(index, step)
        self.check_lock()
        self.check_runbook_on_failure()
        if isinstance(self.data.get("description"), str):
            self.refs.check_strings(("description",), self.data["description"], before=0)
        if isinstance(self.data.get("title"), str):
            self.refs.check_strings(("title",), self.data["title"], before=0, allow_steps=False)
        self.c.steps = self.steps

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
        self.each = self.each_rules.check_for_each(base, step, index, kind)
        for cond in ("when", "unless"):
            if cond in step:
                self.condition_rules.check_condition(base + (cond,), step[cond], index)
        if "end" in step:
            self.check_end(base, step, index)
        for key in ("title", "instructions", "confirm"):
            if isinstance(step.get(key), str):
                self.refs.check_strings(base + (key,), step[key], before=index)
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
            self.links.check_approval(base + ("approval",), step.get("approval"), index)
            info.outputs["approval"] = APPROVAL_OUTPUTS
        elif kind is StepKind.INCLUDE:
            self.links.check_include(base, step, index, info)
        elif kind is StepKind.RUN:
            run = step.get("run")
            if isinstance(run, dict):
                self.links.check_linked(base + ("run",), run, index, require_all=False)
            info.outputs["run"] = RUN_OUTPUTS
        self.each = None
        self.steps[sid] = info

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
                                              f"(first at {fmt_path(seen[iid])})")
                else:
                    seen[iid] = ipath
            if "manual" in item and "uses" in item:
                continue  # both kinds at once: the schema reported it, and neither kind's rules apply
            if "manual" in item:
                if isinstance(item.get("manual"), str):
                    self.refs.check_strings(ipath + ("manual",), item["manual"], before=index)
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
                    self.refs.check_git_literals(ipath + ("with",), args)
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
        pending = self.refs.pendify(path, args, index)
        if pending is BAD:
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

    def check_lock(self) -> None:
        lock = self.data.get("lock")
        if isinstance(lock, str) and lock != "none":
            self.refs.check_strings(("lock",), lock, before=0, allow_steps=False)

    def check_runbook_on_failure(self) -> None:
        of = self.data.get("on_failure")
        if not isinstance(of, dict):
            return
        after = of.get("after")
        step_ids = [s.get("id") for s in self.data.get("steps", []) if isinstance(s, dict)]
        if after is not None and after not in step_ids:
            self.err(("on_failure", "after"), f"no step {after!r}{suggest(str(after), [str(s) for s in step_ids])}")
        found, data = self.links.target(("on_failure", "runbook"), of.get("runbook"), "on_failure runbook")
        if data is not None:
            self.links.check_with(("on_failure", "with"), of.get("with") or {}, data, len(step_ids), False,
                            label=f"runbook {of.get('runbook')!r}")


__all__ = ["Checked", "RunbookValidator", "check_environment", "items_of"]
