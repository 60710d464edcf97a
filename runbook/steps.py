"""The typed step model: a resolved step and its items, built once in the plan, frozen.

The engine, ``runbook.show``, the prompt list and the docs read these instead of raw
dicts; ``data`` keeps the resolved mapping for what serialises a plan (the digest, `show
--json`). Prompt ids come from one place (``Step.prompts``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

from .model import Evidence, OnFailure, Section, StepKind, step_kind


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
        items = tuple(Item(str(item.get("id") or f"{section.value}-{index}"), section, index, item)
                      for section in Section for index, item in enumerate(data.get(section.value) or [])
                      if isinstance(item, dict))
        return cls(id=data["id"], kind=StepKind(data.get("kind") or step_kind(data).value),
                   title=str(data.get("title", "")), data=data, instructions=str(data.get("instructions") or ""),
                   conditions=conditions, confirm=data.get("confirm"), on_failure=on_failure,
                   retry=Retry(int(retry.get("attempts", 3)) if on_failure is OnFailure.RETRY else 1,
                               float(retry.get("delay", 0))),
                   timeout=float(data["timeout"]) if data.get("timeout") else None, items=items,
                   approval=data.get("approval"), run=data.get("run"), end=data.get("end"))

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
        fail = PromptId(f"{sid}.on_fail", "on_fail", "the step failed: retry, skip with a reason, or abort")
        confirm = [PromptId(f"{sid}.confirm", "confirm", str(self.confirm))] if self.confirm else []
        if self.kind is StepKind.APPROVAL:
            waits = [PromptId(f"{sid}.approval.timeout", "timeout",
                              "approvals still missing when the wait ends: wait again, park or abort")] \
                if (self.approval or {}).get("source") != "prompt" else []
            return [PromptId(f"{sid}.approval", "approval", self.title or "approval"), *waits, fail]
        if self.kind is StepKind.RUN:
            return confirm + [fail]
        out: list[PromptId] = []
        for item in self.items:
            if item.section is not Section.REQUIRES and confirm:     # asked after the guards, before acting
                out += confirm
                confirm = []
            if item.manual is not None:
                out.append(PromptId(f"{sid}.{item.key}", "manual", str(item.manual)))
            else:
                out.append(PromptId(f"{sid}.{item.key}.on_fail", "on_fail", (
                    f"{item.uses} was interrupted and its effect is unknown: retry, skip (it took effect) or abort"
                    if item.is_action else f"{item.uses} failed: retry, skip with a reason, or abort")))
        return out + confirm + ([fail] if any(i.is_action for i in self.items) else [])
