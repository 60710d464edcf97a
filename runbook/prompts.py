"""The Prompter interface and its non-interactive implementations.

Every question the engine asks is a ``Prompt`` with a stable id. A prompter answers
with a dict (``done``, ``note``, ``link``, ``reason``, ``choice``, ``approvers``,
``value``) or ``None`` when it cannot. The chain asks the answers file, then ``--yes``,
then a person (questionary, in ``tui.py``) when there is a terminal; when nobody can
answer, the run parks (exit 4).
"""

from __future__ import annotations

import json

from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

from .errors import Parked, RunbookError

Answer = dict[str, Any]


@dataclass
class Prompt:
    id: str
    kind: str                  # confirm | manual | on_fail | approval | run | text | param
    text: str
    evidence: str = "none"     # manual items: none | note | link
    details: str = ""          # context shown before the question
    choices: Sequence[str] = ()
    secret: bool = False
    default: Any = None
    validate: Any = None       # callable(value) -> error message or None
    extra: dict[str, Any] = field(default_factory=dict)


class Prompter(Protocol):
    source: str

    def answer(self, prompt: Prompt) -> Answer | None: ...

    def checklist(self, prompts: list[Prompt]) -> dict[str, Answer]: ...


def normalize(value: Any) -> Answer:
    if isinstance(value, bool):
        return {"done": value}
    if isinstance(value, dict):
        return dict(value)
    return {"value": value}


class AnswersPrompter:
    """Answers from an answers file (checked against the plan before the run)."""

    def __init__(self, answers: dict[str, Any], source: str = "answers-file"):
        self.answers = answers
        self.source = source

    def answer(self, prompt: Prompt) -> Answer | None:
        if prompt.id in self.answers:
            return normalize(self.answers[prompt.id])
        every = every_iteration(prompt.id)          # STEP[*].ITEM answers each iteration STEP[i].ITEM
        if every != prompt.id and every in self.answers:
            return normalize(self.answers[every])
        return None

    def checklist(self, prompts: list[Prompt]) -> dict[str, Answer]:
        return {p.id: a for p in prompts if (a := self.answer(p)) is not None}


def every_iteration(pid: str) -> str:
    """A for_each iteration's prompt id ``STEP[i].ITEM`` as the id answering every iteration, ``STEP[*].ITEM``."""
    import re

    return re.sub(r"\[\d+\]", "[*]", pid, count=1) if "[" in pid else pid


class YesPrompter:
    """``--yes``: confirmations and manual items without required evidence."""

    source = "--yes"

    def answer(self, prompt: Prompt) -> Answer | None:
        if prompt.kind == "confirm" or (prompt.kind == "run" and prompt.id == "run.on_failure"):
            return {"done": True}
        if prompt.kind == "manual" and prompt.evidence == "none":
            return {"done": True}
        return None

    def checklist(self, prompts: list[Prompt]) -> dict[str, Answer]:
        return {p.id: a for p in prompts if (a := self.answer(p)) is not None}


class ScriptError(RunbookError):
    """A scripted prompter was asked something its script does not answer."""

    exit_code = 2


class ScriptedPrompter:
    """For tests: answers from a script; fails loudly on anything unscripted.

    A script value may be a list: each time the prompt is asked, the next answer is used.
    """

    source = "script"

    def __init__(self, script: dict[str, Any], strict: bool = True):
        self.script = {k: (list(v) if isinstance(v, list) and k != "approvers" else v) for k, v in script.items()}
        self.strict = strict
        self.asked: list[str] = []

    def answer(self, prompt: Prompt) -> Answer | None:
        self.asked.append(prompt.id)
        if prompt.id not in self.script:
            if prompt.kind == "param" and prompt.default is not None:
                return {"value": prompt.default}     # Enter at the offered default
            if self.strict:
                raise ScriptError(f"unscripted prompt {prompt.id!r} ({prompt.kind}): {prompt.text}")
            return None
        value = self.script[prompt.id]
        if isinstance(value, list):
            if not value:
                raise ScriptError(f"prompt {prompt.id!r} asked more often than scripted")
            value = value.pop(0)
        return normalize(value)

    def checklist(self, prompts: list[Prompt]) -> dict[str, Answer]:
        return {p.id: a for p in prompts if (a := self.answer(p)) is not None}


class Scoped:
    """A linked run's view of a prompter: its prompt ids are looked up as ``LINK/ID``."""

    def __init__(self, inner: Any, prefix: str):
        self.inner = inner
        self.prefix = prefix
        self.source = inner.source

    def _scoped(self, prompt: Prompt) -> Prompt:
        import dataclasses

        return dataclasses.replace(prompt, id=f"{self.prefix}/{prompt.id}")

    def answer(self, prompt: Prompt) -> Answer | None:
        return self.inner.answer(self._scoped(prompt))

    def checklist(self, prompts: list[Prompt]) -> dict[str, Answer]:
        got = self.inner.checklist([self._scoped(p) for p in prompts])
        return {k.split("/", 1)[1] if k.startswith(self.prefix + "/") else k: v for k, v in got.items()}


class Chain:
    """Asks each prompter in turn; parks when none can answer."""

    def __init__(self, prompters: Sequence[Any], interactive: Any = None):
        self.prompters = list(prompters)
        self.interactive = interactive

    def scoped(self, link: str) -> "Chain":
        """The chain a linked run started at ``link`` uses (answers files address it as LINK/ID)."""
        return Chain([p if isinstance(p, YesPrompter) else Scoped(p, link) for p in self.prompters], self.interactive)

    @property
    def has_person(self) -> bool:
        return self.interactive is not None

    def ask(self, prompt: Prompt) -> tuple[Answer, str]:
        for p in self.prompters:
            a = p.answer(prompt)
            if a is not None:
                return a, p.source
        if self.interactive is not None:
            a = self.interactive.answer(prompt)
            if a is not None:
                return a, self.interactive.source
        raise Parked(f"needs a person: {prompt.id} ({prompt.text}); add it to the answers file or run in a terminal")

    def checklist(self, prompts: list[Prompt]) -> dict[str, tuple[Answer, str]]:
        out: dict[str, tuple[Answer, str]] = {}
        remaining = list(prompts)
        for p in self.prompters:
            got = p.checklist(remaining)
            for pid, a in got.items():
                out[pid] = (a, p.source)
            remaining = [x for x in remaining if x.id not in out]
        if remaining and self.interactive is not None:
            got = self.interactive.checklist(remaining)
            for pid, a in got.items():
                out[pid] = (a, self.interactive.source)
            remaining = [x for x in remaining if x.id not in out]
        if remaining:
            ids = ", ".join(p.id + (f" (with a {p.evidence})" if p.evidence != "none" else "") for p in remaining)
            raise Parked(f"needs a person: {ids}; add them to the answers file or run in a terminal")
        return out


def answer_text(answer: Any) -> str:
    """An answer in words: done / not done, with its note, link or reason."""
    if not isinstance(answer, dict):
        return json.dumps(answer, sort_keys=True, default=str)
    if "approvers" in answer:
        return "approvers: " + ", ".join(map(str, answer.get("approvers") or []))
    words = []
    if "choice" in answer:
        words.append(str(answer["choice"]))
    elif "done" in answer:
        words.append("yes" if answer.get("done") else "no")
    for key in ("note", "link", "reason"):
        if answer.get(key):
            words.append(f"{key}: {answer[key]}")
    rest = {k: v for k, v in answer.items() if k not in ("done", "note", "link", "reason", "choice")}
    if rest:
        words.append(json.dumps(rest, sort_keys=True, default=str))
    return "; ".join(words) or "-"
