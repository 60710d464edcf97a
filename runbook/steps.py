"""The typed step model: a resolved step and its items, built once in the plan, frozen.

The engine, ``runbook.show``, the prompt list and the docs read these instead of raw
dicts; ``data`` keeps the resolved mapping for what serialises a plan (the digest, `show
--json`). Prompt ids come from one place (``Step.prompts``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Iterator

from .model import Evidence, OnFailure, Section, StepKind, step_kind


def prompt_id(step: str, *parts: str) -> str:
    """The one spelling of a prompt id: ``STEP.confirm``, ``STEP.on_fail``, ``STEP.approval``,
    ``STEP.approval.timeout``, ``STEP.ITEM`` (a manual item), ``STEP.ITEM.on_fail``,
    ``STEP.ITEM.running``. Every prompt the engine asks and every id ``show`` lists comes from here."""
    return ".".join((step, *parts))


@dataclass(frozen=True)
class PromptId:
    id: str
    kind: str          # confirm | manual | on_fail | approval | run
    text: str


@dataclass(frozen=True)
class Item:
    """One item of ``requires``, ``do`` or ``verify``: automated (``uses``) or manual."""

    key: str                   # its id, else SECTION-INDEX
    section: Section
    index: int
    data: dict[str, Any]       # the resolved item (templates known only at run time kept)
    checked: bool = False      # its `with:` was literal as written: validation checked it (see plan)

    @property
    def manual(self) -> str | None:
        return self.data.get("manual")

    @property
    def uses(self) -> str:
        return str(self.data.get("uses", ""))

    @property
    def evidence(self) -> str:
        return str(self.data.get("evidence", Evidence.NONE.value))

    @property
    def is_action(self) -> bool:
        return self.manual is None and self.section is Section.DO

    @property
    def with_(self) -> dict[str, Any]:
        return dict(self.data.get("with") or {})

    @property
    def probe(self) -> dict[str, Any] | None:
        """The author's ``probe:`` (a check that passes when this action's effect exists)."""
        found = self.data.get("probe")
        return found if isinstance(found, dict) else None


@dataclass(frozen=True)
class Condition:
    """``when``/``unless``: its value (a template resolved at run time) and the text as written."""

    key: str                   # when | unless
    value: Any
    written: Any


@dataclass(frozen=True)
class Retry:
    attempts: int = 1
    delay: float = 0.0


@dataclass(frozen=True)
class Step:
    """A resolved step. ``kind`` says which part applies: items (task), ``approval``, ``run``."""

    id: str
    kind: StepKind
    title: str
    data: dict[str, Any] = field(repr=False)
    instructions: str = ""
    conditions: tuple[Condition, ...] = ()
    confirm: str | None = None
    on_failure: OnFailure = OnFailure.ABORT
    retry: Retry = Retry()
    timeout: float | None = None
    items: tuple[Item, ...] = ()
    approval: dict[str, Any] | None = None
    run: dict[str, Any] | None = None
    end: str | None = None     # succeeded | failed: the run ends here when this step succeeds
    each_of: str = ""                  # for_each: the step that runs once per value (this one, or its include)
    members: tuple["Step", ...] = ()   # a for_each step at run time: the steps each iteration runs

    @classmethod
    def of(cls, data: dict[str, Any]) -> "Step":
        """Build the typed step from a resolved step mapping (the plan does, once)."""
        on_failure = OnFailure(data.get("on_failure", OnFailure.ABORT.value))
        retry = data.get("retry") or {}
        conditions = tuple(Condition(k, data[k], (data.get("source") or {}).get(k, data[k]))
                           for k in ("when", "unless") if k in data)
        written = [w for pw in data.get("parent_written", []) for w in pw.values()]
        parents = [(k, v) for pc in data.get("parent_conditions", []) for k, v in pc.items()]
        conditions += tuple(Condition(k, v, written[i] if i < len(written) else v) for i, (k, v) in enumerate(parents))
        checked = set((data.get("source") or {}).get("checked_with") or ())
        items = tuple(Item(str(item.get("id") or f"{section.value}-{index}"), section, index, item,
                           f"{section.value}-{index}" in checked)
                      for section in Section for index, item in enumerate(data.get(section.value) or [])
                      if isinstance(item, dict))
        return cls(id=data["id"], kind=StepKind(data.get("kind") or step_kind(data).value),
                   title=str(data.get("title", "")), data=data, instructions=str(data.get("instructions") or ""),
                   conditions=conditions, confirm=data.get("confirm"), on_failure=on_failure,
                   retry=Retry(int(retry.get("attempts", 3)) if on_failure is OnFailure.RETRY else 1,
                               float(retry.get("delay", 0))),
                   timeout=float(data["timeout"]) if data.get("timeout") else None, items=items,
                   approval=data.get("approval"), run=data.get("run"), end=data.get("end"),
                   each_of=str(data.get("each_of") or (data["id"] if "for_each" in data else "")))

    def section(self, section: Section) -> tuple[Item, ...]:
        return tuple(i for i in self.items if i.section is section)

    def automated(self, section: Section) -> Iterator[Item]:
        return (i for i in self.items if i.section is section and i.manual is None)

    @property
    def continues(self) -> bool:
        return self.on_failure is OnFailure.CONTINUE

    @property
    def always_runs(self) -> bool:
        return not self.conditions and not self.continues

    def prompts(self) -> list[PromptId]:
        """The step's prompt ids, in the order they would be asked: ``STEP.confirm``, ``STEP.ITEM``
        (manual items), ``STEP.ITEM.on_fail`` (a failed check; for an action, its effect unknown
        after an interruption), ``STEP.approval``, and ``STEP.on_fail`` (retry / skip / abort after
        a failed gate, action or linked run)."""
        sid = self.id
        fail = PromptId(prompt_id(sid, "on_fail"), "on_fail", "the step failed: retry, skip with a reason, or abort")
        confirm = [PromptId(prompt_id(sid, "confirm"), "confirm", str(self.confirm))] if self.confirm else []
        if self.kind is StepKind.APPROVAL:
            waits = [PromptId(prompt_id(sid, "approval", "timeout"), "timeout",
                              "approvals still missing when the wait ends: wait again, park or abort")] \
                if (self.approval or {}).get("source") != "prompt" else []
            return [PromptId(prompt_id(sid, "approval"), "approval", self.title or "approval"), *waits, fail]
        if self.kind is StepKind.RUN:
            return confirm + [fail]
        out: list[PromptId] = []
        for item in self.items:
            if item.section is not Section.REQUIRES and confirm:     # asked after the guards, before acting
                out += confirm
                confirm = []
            if item.manual is not None:
                out.append(PromptId(prompt_id(sid, item.key), "manual", str(item.manual)))
            else:
                if item.uses == "shell.run":
                    out.append(PromptId(prompt_id(sid, item.key, "running"), "confirm",
                                        "its command from an interrupted session is still running: wait for it "
                                        "(yes) or stop it (no)"))
                out.append(PromptId(prompt_id(sid, item.key, "on_fail"), "on_fail", (
                    f"{item.uses} was interrupted and its effect is unknown: retry, skip (it took effect) or abort"
                    if item.is_action else f"{item.uses} failed: retry, skip with a reason, or abort")))
        return out + confirm + ([fail] if any(i.is_action for i in self.items) else [])


# -- for_each ----------------------------------------------------------------------------
EACH_KEYS = ("for_each", "each_of", "each_title", "concurrency", "max_failures")


def each_id(owner: str, sid: str, index: int | str) -> str:
    """The id of ``sid`` (the for_each step ``owner`` or one of its included steps) in iteration
    ``index``: ``STEP[i]``, ``STEP[i].INNER``."""
    return f"{owner}[{index}]{sid[len(owner):]}"


def each_values(step: Step) -> list[Any] | None:
    """A for_each step's values when the plan knows them (given parameters), else None."""
    value = step.data.get("for_each")
    return value if isinstance(value, list) else None


def iteration(member: Step, index: int, value: Any) -> Step:
    """One iteration of a for_each step (or of one of its included steps): its own id, ``${each...}``
    filled in."""
    import copy

    from . import templates

    data = templates.render(copy.deepcopy({k: v for k, v in member.data.items() if k not in EACH_KEYS}),
                            templates.each_lookup({"index": index, "value": value}), partial=True)
    data["id"] = each_id(member.each_of, member.id, index)
    data["each"] = {"of": member.each_of, "index": index, "value": value}
    return Step.of(data)


def group_each(steps: list[Step]) -> list[Step]:
    """The plan's steps as a run executes them: the steps of one for_each (one step, or the steps of
    its include) become one step whose ``members`` each iteration runs."""
    out: list[Step] = []
    for step in steps:
        if not step.each_of:
            out.append(step)
            continue
        if out and out[-1].id == step.each_of and out[-1].members:
            shared = tuple(c for c in out[-1].conditions if c in step.conditions)   # an include's own conditions
            out[-1] = replace(out[-1], members=out[-1].members + (step,), conditions=shared)
            continue
        data = step.data
        own = [c for c in step.conditions if "${each." not in str(c.value)]   # the rest is per iteration
        out.append(Step(id=step.each_of, kind=step.kind, title=str(data.get("each_title") or step.title),
                        data={"id": step.each_of, "for_each": data.get("for_each"),
                              "concurrency": int(data.get("concurrency") or 1),
                              "max_failures": int(data.get("max_failures") or 0)},
                        conditions=tuple(own), members=(step,), each_of=step.each_of))
    return out


def each_prompts(steps: tuple[Step, ...]) -> list[PromptId]:
    """The prompt ids of a for_each step (its members): ``STEP[i].ITEM`` for each value the plan
    knows, or ``STEP[*].ITEM`` when the values are known only at run time; then ``STEP.on_fail``."""
    out: list[PromptId] = []
    values = each_values(steps[0])
    for index in (range(len(values)) if values is not None else ["*"]):
        for step in steps:
            out += [PromptId(each_id(step.each_of, p.id, index), p.kind, p.text) for p in step.prompts()]
    out.append(PromptId(f"{steps[0].each_of}.on_fail", "on_fail",
                        "too many iterations failed: retry, skip with a reason, or abort"))
    return out


def each_links(steps: list[Step], link: str) -> list[str]:
    """The links of a ``run:`` step's linked runs: ``STEP[i]`` (``STEP[*]``) for a for_each one."""
    step = next((s for s in steps if s.id == link and s.each_of), None)
    if step is None:
        return [link]
    values = each_values(step)
    return [each_id(link, link, i) for i in (range(len(values)) if values is not None else ["*"])]
