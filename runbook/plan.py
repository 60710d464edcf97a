"""Resolution: a runbook, an environment and parameters become a plan.

Includes are inlined with namespaced ids (``OUTER.INNER``), templates are resolved
where their values are known now (params, env) and kept where they are not (run ids,
step outputs, secrets), and one digest covers the resolved plan, the included files,
the environment and the versions of the plugins it uses.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import templates
from .errors import Diagnostic, InputError
from .model import Section, StepKind, step_kind
from .steps import PromptId, Step, each_links, each_prompts, group_each
from .params import Params
from .plugins import Registry, save_caches
from .project import Project
from .schemas import suggest
from .validate import Checked, RunbookValidator, check_environment, items_of
from .yamlfile import Document


@dataclass
class Environment:
    """A validated environment: its values, its file, and an overlay applied after validation."""

    name: str
    data: dict[str, Any]
    path: Path | None = None
    doc: Document | None = None
    overlay: dict[str, Any] = field(default_factory=dict)

    @property
    def protected(self) -> bool:
        return bool(self.data.get("protected"))


def load_environment(project: Project, name: str) -> Environment:
    path = project.environment_path(name)
    doc, diags = check_environment(project, path)
    if diags or doc is None:
        raise InputError(diags)
    return Environment(name, doc.data, path, doc)


def merge(base: Any, overlay: Any) -> Any:
    """Deep-merge ``overlay`` onto ``base`` (mappings merge, everything else replaces)."""
    if isinstance(base, dict) and isinstance(overlay, dict):
        out = dict(base)
        for k, v in overlay.items():
            out[k] = merge(base.get(k), v) if k in base else v
        return out
    return overlay


@dataclass
class Plan:
    """A resolved runbook, ready to show, dry-run or execute."""

    name: str
    title: str
    file: Path
    description: str
    env: Environment | None
    params: Params
    param_specs: dict[str, dict[str, Any]]
    steps: list[Step]
    lock: str | None
    emergency: bool
    on_failure: dict[str, Any] | None
    includes: dict[str, Path]
    plugins: dict[str, str]
    digest: str = ""
    linked: dict[str, list["PromptId"]] = field(default_factory=dict)   # link -> the linked runbook's prompts

    @property
    def step_ids(self) -> frozenset[str]:
        """Every step id of the plan (what ``${steps.ID...}`` may name), computed once."""
        known = self.__dict__.get("_step_ids")
        if known is None:
            known = self.__dict__["_step_ids"] = frozenset(s.id for s in self.steps)
        return known

    def prompts(self) -> list[PromptId]:
        """Every prompt id an answers file can use, in the order they would be asked."""
        out: list[PromptId] = []
        if self.env is not None and self.env.protected:
            out.append(PromptId("run.environment", "run", f"type the environment name ({self.env.name}) to start"))
        for step in group_each(self.steps):
            out.extend(each_prompts(step.members) if step.members else step.prompts())
        for link, prompts in self.linked.items():
            out.extend(PromptId(f"{each}/{p.id}", p.kind, p.text) for each in each_links(self.steps, link)
                       for p in prompts if p.id != "run.takeover")
        out.append(PromptId("run.force", "run", "resume although the plan changed (with a reason)"))
        if self.emergency:
            out.append(PromptId("run.takeover", "run", "take the lock over from a live holder (with a reason)"))
        if self.on_failure:
            out.append(PromptId("run.on_failure", "run", f"start {self.on_failure['runbook']} after the failure"))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "runbook": self.name, "title": self.title, "file": str(self.file),
            "environment": self.env.name if self.env else None,
            "params": self.params.public(), "secret_params": sorted(self.params.secrets),
            "missing_params": list(self.params.missing), "lock": self.lock, "emergency": self.emergency,
            "on_failure": self.on_failure, "digest": self.digest, "plugins": self.plugins,
            "includes": {k: str(v) for k, v in self.includes.items()},
            "steps": [s.data for s in self.steps], "prompts": [p.__dict__ for p in self.prompts()],
        }


class Resolver:
    """Turns validated runbooks into plans."""

    def __init__(self, project: Project, registry: Registry):
        self.project = project
        self.registry = registry
        self.validator = RunbookValidator(project, registry)

    def check(self, path: Path) -> Checked:
        checked, diags = self.validator.check(path)
        if diags or checked is None:
            raise InputError(diags)
        return checked

    def plan(self, path: Path, env: Environment | None, params: Params, require_env: bool = True,
             depth: int = 0) -> Plan:
        """Resolve a validated runbook; env references need an environment when ``require_env``."""
        checked = self.check(path)
        data = checked.data
        diags: list[Diagnostic] = []
        if env is None and require_env:
            uses = _first_env_ref(checked.doc, data)
            if uses:
                where, ref = uses
                envs = ", ".join(self.project.environment_names()) or "none defined"
                raise InputError([f"<command line>: runbook {data['name']!r} uses {ref} ({where}); "
                                  f"choose an environment with --env ({envs})"])
        scope = _Scope(params, env, checked.doc, diags, prefix="")
        steps = self._steps(checked, scope, env, diags)
        lock = data.get("lock")
        if isinstance(lock, str) and lock != "none":
            lock = templates.render(lock, scope.lookup_at(("lock",)), partial=True)
        elif lock is None:
            lock = env.name if env is not None else data["name"]
        on_failure = data.get("on_failure")
        if isinstance(on_failure, dict):
            on_failure = templates.render(copy.deepcopy(on_failure), scope.lookup_at(("on_failure",)), partial=True)
        if diags:
            raise InputError(sorted(set(diags)))
        used = sorted({item["uses"] for step in steps for _, _, item in items_of(step) if "uses" in item})
        plan = Plan(
            name=data["name"], title=data["title"], file=checked.path, description=data.get("description", ""),
            env=env, params=params, param_specs=dict(data.get("params") or {}), steps=[Step.of(s) for s in steps],
            lock=None if lock == "none" else str(lock), emergency=bool(data.get("emergency")),
            on_failure=on_failure, includes=dict(checked.includes),
            plugins={name: self.registry[name].version for name in used},
        )
        save_caches()
        plan.digest = digest(plan)
        plan.linked = self._linked(plan, depth)
        return plan

    def _linked(self, plan: Plan, depth: int) -> dict[str, list[PromptId]]:
        """The prompts of the runbooks this plan may start (run: steps, on_failure), a few levels deep."""
        if depth >= 3:
            return {}
        links = {s.id: (s.run or {})["runbook"] for s in plan.steps if s.kind is StepKind.RUN}
        if plan.on_failure:
            links["run.on_failure"] = plan.on_failure["runbook"]
        out: dict[str, list[PromptId]] = {}
        for link, name in links.items():
            path = self.project.find_runbook(str(name), near=plan.file.parent)
            if path is None:
                continue
            child = self.plan(path, plan.env, Params(), require_env=False, depth=depth + 1)
            out[link] = [p for p in child.prompts() if p.id not in ("run.force", "run.environment")]
        return out

    def _steps(self, checked: Checked, scope: "_Scope", env: Environment | None,
               diags: list[Diagnostic]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for index, raw in enumerate(checked.data["steps"]):
            path = ("steps", index)
            kind = step_kind(raw)
            if kind is StepKind.INCLUDE:
                out.extend(self._include(checked, raw, index, scope, env, diags))
                continue
            # this runbook's own ${steps.X} first (an include's are its own steps), then the values of
            # its parameters, which may name the including runbook's steps (already qualified)
            step = templates.render(scope.prefix_steps(copy.deepcopy(raw)), scope.lookup_at(path), partial=True)
            step["id"] = scope.prefix + raw["id"]
            step["kind"] = kind.value
            step["source"] = {"file": checked.doc.file, "line": checked.doc.position(path)[0],
                              **{k: raw[k] for k in ("when", "unless") if k in raw},
                              # items whose `with:` is literal as written: validation checked them against the
                              # plugin's schema, so the run does not check them again
                              "checked_with": [f"{section.value}-{i}" for section in Section
                                               for i, item in enumerate(raw.get(section.value) or [])
                                               if isinstance(item, dict) and not templates.has_template(item.get("with"))]}
            if "for_each" in raw:
                step.update(_each_of(raw, scope, index))
            out.append(step)
        return out

    def _include(self, checked: Checked, raw: dict[str, Any], index: int, scope: "_Scope",
                 env: Environment | None, diags: list[Diagnostic]) -> list[dict[str, Any]]:
        target = self.check(checked.includes[raw["include"]])
        given = scope.prefix_steps(templates.render(copy.deepcopy(raw.get("with") or {}),
                                                    scope.lookup_at(("steps", index, "with")), partial=True))
        inner_specs = target.data.get("params") or {}
        inner = Params()
        for name, spec in inner_specs.items():
            if name in given:
                inner.values[name] = given[name]
            elif "default" in spec:
                inner.values[name] = spec["default"]
        inner_scope = _Scope(inner, env, target.doc, diags, prefix=scope.prefix + raw["id"] + ".")
        steps = self._steps(target, inner_scope, env, diags)
        for step in steps:
            for cond in ("when", "unless"):
                if cond in raw:
                    step.setdefault("parent_conditions", []).append(
                        {cond: templates.render(raw[cond], scope.lookup_at(("steps", index, cond)), partial=True)})
                    step.setdefault("parent_written", []).append({cond: raw[cond]})
            step["included_from"] = scope.prefix + raw["id"]
            if "for_each" in raw:
                step.update(_each_of(raw, scope, index))
        return steps


class _Scope:
    """What templates see while resolving one runbook (an included one sees only its own params)."""

    def __init__(self, params: Params, env: Environment | None, doc: Document, diags: list[Diagnostic], prefix: str):
        self.params = params
        self.env = env
        self.doc = doc
        self.diags = diags
        self.prefix = prefix

    def lookup_at(self, path: tuple[Any, ...]) -> Callable[[templates.Ref], Any]:
        def lookup(ref: templates.Ref) -> Any:
            if ref.root == "params":
                name = ref.parts[0]
                if name in self.params.values:
                    return self.params.values[name]
                raise templates.Unresolved(ref.text)   # secret or asked at run time
            if ref.root == "env":
                if self.env is None:
                    raise templates.Unresolved(ref.text)
                data = merge(self.env.data, self.env.overlay)
                cur: Any = data
                for part in ref.parts:
                    if isinstance(cur, dict) and part in cur:
                        cur = cur[part]
                    else:
                        near = suggest(part, [str(k) for k in cur]) if isinstance(cur, dict) else ""
                        self.diags.append(self.doc.diag(path, f"{ref.text}: environment {self.env.name!r} has no "
                                                              f"{'.'.join(ref.parts)}{near} (add it to "
                                                              f"environments/{self.env.name}.yaml)"))
                        raise templates.Unresolved(ref.text)
                return cur
            raise templates.Unresolved(ref.text)
        return lookup

    def prefix_steps(self, value: Any) -> Any:
        """Inside an include, ``${steps.X...}`` means this include's own step X."""
        if not self.prefix:
            return value

        def fix(ref: templates.Ref) -> Any:
            if ref.root == "steps":
                return "${steps." + self.prefix + ".".join(ref.parts) + "}"
            raise templates.Unresolved(ref.text)

        def walk(v: Any) -> Any:
            if isinstance(v, dict):
                return {k: walk(x) for k, x in v.items()}
            if isinstance(v, list):
                return [walk(x) for x in v]
            if isinstance(v, str) and "${steps." in v:
                return templates.render(v, fix, partial=True)
            return v
        return walk(value)


def _each_of(raw: dict[str, Any], scope: "_Scope", index: int) -> dict[str, Any]:
    """What a step of a for_each step (or of its include) carries: the values (a list once known),
    the step running once per value, its title, concurrency and max_failures."""
    values = scope.prefix_steps(templates.render(raw["for_each"], scope.lookup_at(("steps", index, "for_each")),
                                                 partial=True))
    return {"for_each": values, "each_of": scope.prefix + raw["id"], "each_title": raw.get("title", ""),
            "concurrency": raw.get("concurrency", 1), "max_failures": raw.get("max_failures", 0)}


def _first_env_ref(doc: Document, data: dict[str, Any]) -> tuple[str, str] | None:
    for path, text in templates.walk_strings(data):
        if "${env." in text:
            try:
                refs = templates.refs(text)
            except templates.TemplateError:
                continue
            for ref in refs:
                if ref.root == "env":
                    line, col = doc.position(path)
                    return f"{doc.file}:{line}", ref.text
    return None


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def digest(plan: Plan) -> str:
    """One SHA-256 over everything that decides what a run does."""
    h = hashlib.sha256()
    steps = [{k: v for k, v in s.data.items() if k != "source"} for s in plan.steps]
    h.update(canonical({
        "format": 1, "runbook": plan.name, "steps": steps, "lock": plan.lock, "emergency": plan.emergency,
        "on_failure": plan.on_failure, "params": plan.params.public(), "secret_params": sorted(plan.params.secrets),
        "environment": merge(plan.env.data, plan.env.overlay) if plan.env else None, "plugins": plan.plugins,
    }))
    for name in sorted(plan.includes):
        h.update(name.encode() + b"\0" + hashlib.sha256(Path(plan.includes[name]).read_bytes()).digest())
    h.update(hashlib.sha256(Path(plan.file).read_bytes()).digest())
    return h.hexdigest()



