"""The interactive prompter: questionary for people at a terminal (the one questionary door)."""

from __future__ import annotations

from typing import Any

from .errors import Interrupted
from .prompts import Answer, Prompt

ON_FAIL = {"retry": "Retry", "skip": "Skip (with a reason)", "abort": "Abort the run"}


def _ask(question: Any) -> Any:
    try:
        return question.unsafe_ask()
    except KeyboardInterrupt:
        raise Interrupted("interrupted by SIGINT (Ctrl-C at a prompt)") from None
    except EOFError:
        raise Interrupted("interrupted: the terminal closed (end of input)") from None


def _required(text: str) -> Any:
    return lambda value: True if str(value).strip() else f"{text} is required"


class QuestionaryPrompter:
    """Asks a person; the console prints context (details) before each question."""

    source = "interactive"

    def __init__(self, show: Any = None):
        self.show = show or (lambda text: None)

    def answer(self, prompt: Prompt) -> Answer | None:
        import questionary

        if prompt.details:
            self.show(prompt.details)
        kind = prompt.kind
        if kind in ("confirm",) or prompt.id == "run.on_failure":
            return {"done": bool(_ask(questionary.confirm(prompt.text, default=False)))}
        if kind == "manual":
            return self._manual(prompt, bool(_ask(questionary.confirm(f"Done: {prompt.text}", default=True))))
        if kind == "on_fail":
            choice = _ask(questionary.select(prompt.text, choices=[questionary.Choice(v, k) for k, v in ON_FAIL.items()]))
            answer: Answer = {"choice": choice}
            if choice == "skip":
                answer["reason"] = _ask(questionary.text("Reason for skipping:", validate=_required("a reason")))
            return answer
        if kind == "approval":
            names = _ask(questionary.text(prompt.text, validate=_required("approver names")))
            return {"approvers": [n.strip() for n in str(names).replace(",", " ").split() if n.strip()]}
        if kind in ("text", "param", "run"):
            validate = prompt.validate
            check = (lambda v: (validate(v) or True)) if validate else _required("an answer")
            if prompt.secret:
                value = _ask(questionary.password(prompt.text, validate=check))
            else:
                default = "" if prompt.default is None else str(prompt.default)
                value = _ask(questionary.text(prompt.text, default=default, validate=check))
            return {"value": value, "reason": value, "choice": value}
        return None

    def _manual(self, prompt: Prompt, done: bool) -> Answer:
        import questionary

        answer: Answer = {"done": done}
        if not done:
            answer["reason"] = _ask(questionary.text(f"Why is '{prompt.text}' not done?", validate=_required("a reason")))
            return answer
        if prompt.evidence == "note":
            answer["note"] = _ask(questionary.text(f"Note for '{prompt.text}':", validate=_required("a note")))
        elif prompt.evidence == "link":
            answer["link"] = _ask(questionary.text(f"Link for '{prompt.text}':", validate=_required("a link")))
        return answer

    def checklist(self, prompts: list[Prompt]) -> dict[str, Answer]:
        import questionary

        if len(prompts) == 1:
            a = self.answer(prompts[0])
            return {prompts[0].id: a} if a is not None else {}
        for p in prompts:
            if p.details:
                self.show(p.details)
                break
        ticked = _ask(questionary.checkbox("Tick what is done (space to tick, enter to confirm):",
                                           choices=[questionary.Choice(p.text, p.id) for p in prompts]))
        out: dict[str, Answer] = {}
        for p in prompts:
            out[p.id] = self._manual(p, p.id in (ticked or []))
        return out
