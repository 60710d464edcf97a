"""The interactive prompter: questionary for people at a terminal (the one questionary door).

Safe against type-ahead: keys typed before a question appears are discarded (a stray Enter
never answers the next prompt), and a yes/no needs its answer and Enter (no single-key accept).
"""

from __future__ import annotations

import sys
from typing import Any

from .errors import Interrupted
from .prompts import Answer, Prompt

ON_FAIL = {"retry": "Retry", "skip": "Skip (with a reason)", "abort": "Abort the run"}


def discard_typeahead() -> None:
    """Throw away what was typed before the question was shown."""
    try:
        import termios

        if sys.stdin.isatty():
            termios.tcflush(sys.stdin.fileno(), termios.TCIFLUSH)
    except (ImportError, OSError, ValueError):
        pass            # not a terminal we can flush: nothing was typed ahead into it


def confirm(text: str, default: bool) -> Any:
    """A yes/no that waits for Enter after the answer."""
    import questionary

    return questionary.confirm(text, default=default, auto_enter=False)


def _ask_link(text: str) -> str:
    """A link, asked again on an empty line until it is one (a refused answer is said once and
    cleared, not left in the line to be edited around)."""
    import questionary

    from .answers import link_problem

    while True:
        value = str(_ask(questionary.text(f"Link (https://... or s3://...) for '{text}':")) or "").strip()
        problem = link_problem(value)
        if not problem:
            return value
        print(f"  {problem}", flush=True)


def _ask(question: Any) -> Any:
    discard_typeahead()
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
            return {"done": bool(_ask(confirm(prompt.text, default=False)))}
        if kind == "manual":
            return self._manual(prompt, bool(_ask(confirm(f"Done: {prompt.text}", default=True))))
        if kind == "timeout":
            return {"choice": _ask(questionary.select(prompt.text, choices=[
                questionary.Choice("Keep waiting", "wait"), questionary.Choice("Park the run (resume it later)", "park"),
                questionary.Choice("Abort the run", "abort")]))}
        if kind == "on_fail":
            choice = _ask(questionary.select(prompt.text, choices=[questionary.Choice(v, k) for k, v in ON_FAIL.items()]))
            answer: Answer = {"choice": choice}
            if choice == "skip":
                answer["reason"] = _ask(questionary.text("Reason for skipping:", validate=_required("a reason")))
            return answer
        if kind == "approval":
            names = _ask(questionary.text(prompt.text, validate=_required("approver names")))
            return {"approvers": [n.strip() for n in str(names).replace(",", " ").split() if n.strip()]}
        if kind == "param" and prompt.choices:
            return {"value": _ask(questionary.select(prompt.text, choices=[str(c) for c in prompt.choices],
                                                     default=None if prompt.default is None else str(prompt.default)))}
        if kind == "param" and prompt.extra.get("type") == "boolean":
            return {"value": "true" if _ask(confirm(prompt.text, default=bool(prompt.default))) else "false"}
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
            answer["link"] = _ask_link(prompt.text)
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
