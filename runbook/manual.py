"""Manual items: asked as one checklist, each answer journaled as the item's result, the
evidence an item requires asked for when a person is at hand."""

from __future__ import annotations

from typing import Any, Protocol

from . import results
from .errors import Parked
from .results import StepResult
from .prompts import Prompt
from .state import Event
from .steps import Item, Step, prompt_id


class Host(Protocol):
    """What a checklist needs of the run."""

    asking: Any
    def emit(self, kind: Event, data: dict[str, Any], flush: bool = False) -> None: ...
    def flush(self, anchor: bool = False) -> None: ...
    operator: str
    prompter: Any
    def render(self, text: str, sid: str) -> str: ...
    @property
    def state(self) -> Any: ...


def run_manual(runner: Host, step: Step, items: list[Item]) -> StepResult | None:
    """Ask the items not answered yet, as one checklist; an item not done needs a reason (else
    the step fails: the result returned)."""
    done = runner.state.steps.get(step.id)
    todo = [Prompt(prompt_id(step.id, item.key), "manual", runner.render(str(item.manual), step.id),
                   evidence=item.evidence, extra={"key": item.key})
            for item in items if not (done and item.key in done.items and done.items[item.key].done)]
    if not todo:
        return None
    runner.flush()
    with runner.asking:
        answers = runner.prompter.checklist(todo)
    for prompt in todo:
        answer, source = answers[prompt.id]
        answer = complete_manual(runner, prompt, answer, source)
        runner.emit(Event.PROMPT, {"id": prompt.id, "kind": "manual", "question": prompt.text, "answer": answer,
                                 "source": source, "by": runner.operator})
        problem = record_manual(runner, step.id, prompt.extra["key"], answer, source)
        if problem is not None:
            return problem
    runner.flush()
    return None


def record_manual(runner: Host, sid: str, key: str, answer: dict[str, Any], source: str) -> StepResult | None:
    """A manual item's answer as its result: done (with its evidence), or not done with a reason;
    not done without a reason fails the step."""
    outputs = {"done": bool(answer.get("done")), "note": answer.get("note", ""), "link": answer.get("link", "")}
    if answer.get("done"):
        runner.emit(Event.ITEM_RESULT, {"step": sid, "item": key, "manual": True, "passed": True,
                                      "summary": "done" + (f": {answer['note']}" if answer.get("note") else "")
                                      + (f" ({answer['link']})" if answer.get("link") else ""),
                                      "outputs": outputs, "evidence": {"answered_by": runner.operator,
                                                                        "source": source}})
    elif answer.get("reason"):
        runner.emit(Event.ITEM_RESULT, {"step": sid, "item": key, "manual": True, "passed": False,
                                      "skipped": True, "reason": answer["reason"],
                                      "summary": "not done", "outputs": outputs})
    else:
        runner.flush()
        return results.failed(f"{sid}.{key} is not done and no reason was given")
    return None


def complete_manual(runner: Host, prompt: Prompt, answer: dict[str, Any], source: str) -> dict[str, Any]:
    """Evidence an item requires must be there; ask for it when a person is at hand."""
    if not answer.get("done") or prompt.evidence == "none" or answer.get(prompt.evidence):
        return answer
    from .answers import link_problem

    follow = Prompt(prompt.id, "text", f"{prompt.evidence.capitalize()} for '{prompt.text}':",
                    validate=(lambda v: link_problem(v) or None) if prompt.evidence == "link" else None)
    if runner.prompter.has_person:
        extra = runner.prompter.interactive.answer(follow) or {}
        answer = dict(answer, **{prompt.evidence: extra.get("value", "")})
        if answer.get(prompt.evidence):
            return answer
    raise Parked(f"needs a person: {prompt.id} requires a {prompt.evidence} as evidence ({source} gave none)")
