"""Approvals, includes and linked runs (on_failure offers, run: items) and the values passed to them."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TYPE_CHECKING

from .. import templates
from ..errors import InputError
from ..params import param_problem
from ..schemas import SCHEMA_TYPE_NAMES, Pending, suggest
from .common import BAD, StepInfo, types_fit

if TYPE_CHECKING:
    from . import RunbookRules


class LinkRules:
    """Approvals, includes and linked runs (on_failure offers, run: items) and the values passed to them."""

    def __init__(self, r: "RunbookRules"):
        self.r = r

    def check_approval(self, path: tuple[Any, ...], approval: Any, index: int) -> None:
        if not isinstance(approval, dict):
            return
        source = approval.get("source")
        if source == "github-pr" and "pr" not in approval:
            self.r.err(path, "a github-pr approval needs 'pr:' (the pull request number, often ${steps.STEP.ITEM.number})")
        if source == "prompt" and "pr" in approval:
            self.r.err(path + ("pr",), "'pr:' belongs to github-pr approvals", key=True)
        if "pr" in approval:
            pr = approval["pr"]
            if isinstance(pr, str):
                pend = self.r.refs.pendify(path + ("pr",), pr, index)
                if isinstance(pend, Pending) and pend.type not in (None, "integer", "number") \
                        or (isinstance(pr, str) and templates.whole(pr) is None and "${" in pr):
                    self.r.err(path + ("pr",), f"{pr!r}: the pull request is a number or one ${{...}} resolving to one")
                elif not isinstance(pend, Pending) and pend is not BAD:
                    self.r.err(path + ("pr",), f"{pr!r}: the pull request is a number or one ${{...}} resolving to one")
        roles = approval.get("roles")
        minimum = approval.get("min", 1)
        if isinstance(roles, list) and isinstance(minimum, int) and len(roles) > minimum:
            self.r.err(path + ("min",) if "min" in approval else path,
                     f"{len(roles)} roles each need their own approver, so 'min' must be at least {len(roles)}")
        if isinstance(approval.get("message"), str):
            self.r.refs.check_strings(path + ("message",), approval["message"], before=index)

    def target(self, path: tuple[Any, ...], name: Any, what: str) -> tuple[Path | None, dict[str, Any] | None]:
        if not isinstance(name, str):
            return None, None
        found = self.r.v.project.find_runbook(name, near=self.r.c.path.parent)
        if found is None:
            names = sorted({p.stem for p in self.r.c.path.parent.glob("*.yaml")} | set(self.r.v.project.runbook_names()))
            self.r.err(path, f"{what} {name!r}: no such runbook{suggest(name, names)}")
            return None, None
        try:
            doc = self.r.v.project.load(found)
        except InputError:
            self.r.err(path, f"{what} {name!r}: {self.r.v.project.display(found)} is not valid YAML; "
                           "`invoke runbook.validate` shows why")
            return found, None
        if not isinstance(doc.data, dict):
            self.r.err(path, f"{what} {name!r}: {self.r.v.project.display(found)} is not a runbook")
            return found, None
        return found, doc.data

    def check_include(self, base: tuple[Any, ...], step: dict[str, Any], index: int, info: StepInfo) -> None:
        name = step.get("include")
        if isinstance(name, str) and name in self.r.stack:
            cycle = " -> ".join(self.r.stack[self.r.stack.index(name):] + (name,))
            self.r.err(base + ("include",), f"include cycle: {cycle}")
            return
        found, data = self.target(base + ("include",), name, "include")
        if found is None or data is None:
            return
        checked, inner_diags = self.r.v._check(found, self.r.stack)
        cycles = [d for d in inner_diags if d.message.startswith("include cycle")]
        if cycles:
            self.r.err(base + ("include",), cycles[0].message)
            return
        self.r.diags.extend(inner_diags)
        if checked is None:
            return
        if "for_each" in step and any(isinstance(s, dict) and "for_each" in s for s in checked.data.get("steps") or []):
            self.r.err(base + ("for_each",), f"include {name!r} has for_each steps itself; for_each does not nest",
                     key=True)
        self.r.c.includes[str(name)] = found
        self.r.c.includes.update(checked.includes)
        self.check_with(base + ("with",), step.get("with") or {}, data, index, require_all=True,
                        label=f"include {name!r}")
        for inner_id, inner in checked.steps.items():
            nested = StepInfo(f"{info.id}.{inner_id}", info.index, info.always and inner.always,
                              dict(inner.outputs), info.conditional_reason or inner.conditional_reason,
                              dict(inner.unrecoverable))
            self.r.steps[nested.id] = nested

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
                self.r.err(path + (key,), f"{label} has no parameter {key!r}{suggest(key, list(params))}", key=True)
                continue
            spec = params[key] if isinstance(params[key], dict) else {}
            if spec.get("secret"):
                self.r.err(path + (key,), f"{label}: secret parameter {key!r} cannot be passed in a runbook; "
                                        "it is asked for or read from its environment variable", key=True)
                continue
            pend = self.r.refs.pendify(path + (key,), value, index)
            if pend is BAD:
                continue
            if isinstance(pend, Pending):
                if isinstance(pend.type, str) and isinstance(spec.get("type"), str) \
                        and not types_fit(pend.type, spec["type"]):
                    have, want = (SCHEMA_TYPE_NAMES.get(t, t) for t in (pend.type, spec["type"]))
                    self.r.err(path + (key,), f"{pend.text} is {have}, but {label} expects {key} as {want}")
                continue
            problem = param_problem(spec, value)
            if problem:
                self.r.err(path + (key,), f"{label}: {key} {problem}")
        if require_all:
            for pname, spec in params.items():
                if isinstance(spec, dict) and pname not in given and "default" not in spec and not spec.get("secret"):
                    self.r.err(path if "with" in path and given else path[:-1],
                             f"{label} needs parameter {pname!r} (it has no default)")
