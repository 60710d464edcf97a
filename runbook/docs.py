"""Markdown guides generated from runbooks: a person can follow them without the engine."""

from __future__ import annotations

import json
from typing import Any

from .conditions import text
from .model import Section, StepKind, step_kind
from .plugins import Registry
from .templates import unescape
from .validate import items_of

SECTION_TITLES = {Section.REQUIRES: "Before you start", Section.DO: "Do", Section.VERIFY: "Check"}


def _value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _args(args: dict[str, Any]) -> str:
    return ", ".join(f"{k}=`{_value(v)}`" for k, v in args.items())


def render(data: dict[str, Any], registry: Registry) -> str:
    """The guide for one runbook (its data as validated)."""
    name = data["name"]
    out = [f"# {unescape(data['title'])}", "", f"*Generated from `runbooks/{name}.yaml` by `invoke runbook.docs`; "
           "edit the runbook, not this file.*", ""]
    if data.get("description"):
        out += [unescape(data["description"]).rstrip(), ""]
    out += ["## Run it", "", "```sh", f"invoke runbook {name} --env ENV"
            + "".join(f" --param {p}=..." for p, s in (data.get("params") or {}).items()
                      if "default" not in s and not s.get("secret")), "```", ""]
    facts = []
    if data.get("emergency"):
        facts.append("**Emergency runbook**: it may take the environment's lock from a live holder after a typed reason.")
    lock = data.get("lock")
    facts.append("Lock: none (read-only)." if lock == "none" else f"Lock: `{lock or 'the environment'}` "
                 "(nobody else changes it while this runs).")
    if data.get("on_failure"):
        of = data["on_failure"]
        after = f" after step `{of['after']}` has finished" if of.get("after") else ""
        facts.append(f"On failure{after}: offers [`{of['runbook']}`]({of['runbook']}.md).")
    out += [f"- {f}" for f in facts] + [""]
    params = data.get("params") or {}
    if params:
        out += ["## Parameters", "", "| Name | Type | Default | Description |", "|---|---|---|---|"]
        for pname, spec in params.items():
            default = "*(secret)*" if spec.get("secret") else (f"`{_value(spec['default'])}`" if "default" in spec
                                                                else "*(required)*")
            desc = spec.get("description", "")
            if spec.get("pattern"):
                desc += f" (pattern `{spec['pattern']}`)"
            if spec.get("choices"):
                desc += f" (one of {', '.join(map(str, spec['choices']))})"
            out.append(f"| `{pname}` | {spec.get('type')} | {default} | {desc} |")
        out.append("")
    out += ["## Steps", ""]
    for n, step in enumerate(data["steps"], 1):
        out += _step(n, step, registry)
    return "\n".join(out).rstrip() + "\n"


def _step(n: int, step: dict[str, Any], registry: Registry) -> list[str]:
    out = [f"### {n}. {unescape(step.get('title') or step['id'])} (`{step['id']}`)", ""]
    conditions = [f"`{k}: {text(step[k])}`" for k in ("when", "unless") if k in step]
    if conditions:
        out += [f"Only {' and '.join(conditions)}.", ""]
    if step.get("end"):
        out += [f"**The run ends here, {step['end']},** when this step {'runs' if conditions else 'succeeds'}.", ""]
    if "for_each" in step:
        limits = f" ({step.get('concurrency', 1)} at a time, up to {step.get('max_failures', 0)} may fail)"
        out += [f"Once for each value of `{_value(step['for_each'])}`{limits}: `${{each.value}}` is the value.", ""]
    if step.get("instructions"):
        out += [unescape(step["instructions"]).rstrip(), ""]
    kind = step_kind(step)
    if kind is StepKind.INCLUDE:
        args = f" with {_args(step['with'])}" if step.get("with") else ""
        out += [f"Follow [{step['include']}]({step['include']}.md){args}.", ""]
    elif kind is StepKind.RUN:
        ask = f" if you answer yes to: *{step['confirm']}*" if step.get("confirm") else ""
        out += [f"Start the linked runbook [{step['run']['runbook']}]({step['run']['runbook']}.md){ask} "
                f"with {_args(step['run'].get('with') or {})}.", ""]
    elif kind is StepKind.APPROVAL:
        a = step["approval"]
        roles = f" covering the roles {', '.join(a['roles'])} (a different person for each)" if a.get("roles") else ""
        where = f" on pull request `{_value(a['pr'])}`" if "pr" in a else ""
        out += [f"- [ ] At least {a.get('min', 1)} approvals ({a['source']}){where}{roles}; the author and the "
                "operator do not count, and only reviews of the current head count.", ""]
    for section in Section:
        items = [(i, it) for s, i, it in items_of(step) if s is section]
        if section is Section.DO and step.get("confirm") and kind is StepKind.TASK:
            out += [f"Confirm: *{step['confirm']}*", ""]
        if not items:
            continue
        out.append(f"**{SECTION_TITLES[section]}:**")
        out.append("")
        for _, item in items:
            out.append(_item(item, registry))
        out.append("")
    if step.get("on_failure") in ("continue", "retry"):
        extra = f" (up to {step.get('retry', {}).get('attempts', 3)} attempts)" if step["on_failure"] == "retry" else ""
        out += [f"If this step fails: {step['on_failure']}{extra}.", ""]
    return out


def _item(item: dict[str, Any], registry: Registry) -> str:
    if "manual" in item:
        evidence = {"note": " - write down a note", "link": " - record a link"}.get(item.get("evidence", "none"), "")
        # a multi-line item (an imported guide's code or nested list) stays inside its box: indented
        first, *rest = unescape(item["manual"]).rstrip().split("\n")
        return "\n".join([f"- [ ] {first}{evidence}"] + [f"  {line}" if line.strip() else "" for line in rest])
    plugin = registry.get(item["uses"])
    what = plugin.description if plugin is not None else item["uses"]
    args = f" ({_args(item['with'])})" if item.get("with") else ""
    wait = f"; keep checking for up to {item['wait']['timeout']} s" if item.get("wait") else ""
    return f"- [ ] {what.rstrip('.')}: `{item['uses']}`{args}{wait}"
