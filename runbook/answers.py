"""Answers files: every prompt answered in advance, checked before the run starts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import Diagnostic, InputError
from .prompts import every_iteration
from .schemas import describe, load_schema, suggest, validate as schema_validate
from .yamlfile import Document, display_name, load_file

ON_FAIL_CHOICES = ("retry", "skip", "abort")
SHAPES: dict[str, set[str]] = {
    "confirm": {"done"},
    "manual": {"done", "note", "link", "reason"},
    "on_fail": {"choice", "reason"},
    "approval": {"approvers", "done", "note"},
    "run": {"done", "choice", "reason"},
    "timeout": {"choice"},
}
TIMEOUT_CHOICES = ("wait", "park", "abort")


@dataclass
class Answers:
    """A checked answers file."""

    runbook: str
    answers: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    doc: Document | None = None
    file: str = ""


def load(path: Path | str, root: Path | None = None) -> Answers:
    """Read an answers file and check it against its schema (not yet against a plan)."""
    doc = load_file(Path(path), root)
    diags = schema_validate(doc, doc.data, load_schema("answers"))
    if not isinstance(doc.data, dict):
        found = "an empty file" if doc.data is None else describe(doc.data)
        raise InputError([doc.diag((), f"an answers file is a mapping with 'runbook' and 'answers'; found {found}")])
    if diags:
        raise InputError(diags)
    return Answers(doc.data["runbook"], dict(doc.data.get("answers") or {}), dict(doc.data.get("params") or {}),
                   doc, display_name(Path(path), root))


def link_problem(value: Any) -> str:
    """Why a value is not a link evidence can point at (an http(s) URL, or an s3:// object), or ''."""
    import urllib.parse

    text = str(value or "").strip()
    parts = urllib.parse.urlparse(text)
    if parts.scheme in ("http", "https", "s3") and parts.netloc and " " not in text:
        return ""
    return f"{text!r} is not a link: give an http(s) URL (https://...) or an S3 object (s3://bucket/key)"


def check_against(answers: Answers, runbook: str, prompts: list[Any]) -> None:
    """Every id must exist in the plan and every answer have the shape its prompt takes."""
    diags: list[Diagnostic | str] = []
    doc = answers.doc
    assert doc is not None
    if answers.runbook != runbook:
        diags.append(doc.diag(("runbook",), f"this answers file is for runbook {answers.runbook!r}, not {runbook!r}"))
    kinds = {p.id: p.kind for p in prompts}
    every = {every_iteration(k): v for k, v in kinds.items()}     # STEP[*].ITEM answers every iteration
    for pid, answer in answers.answers.items():
        path = ("answers", pid)
        if pid not in kinds and ("[*]" in pid and pid in every or every_iteration(pid) in kinds):
            kinds[pid] = every[every_iteration(pid)]
        if pid not in kinds:
            diags.append(doc.diag(path, f"no prompt {pid!r} in runbook {runbook!r}{suggest(pid, list(kinds))}; "
                                        f"`invoke runbook.show {runbook}` lists the prompt ids", key=True))
            continue
        kind = kinds[pid]
        if isinstance(answer, bool):
            if kind == "on_fail":
                diags.append(doc.diag(path, f"{pid} takes {{choice: retry|skip|abort, reason: ...}}, "
                                            f"not {str(answer).lower()}"))
            continue
        allowed = SHAPES[kind]
        for key in answer:
            if key not in allowed:
                diags.append(doc.diag(path + (key,), f"{pid} is a {kind} prompt; it takes "
                                                     f"{', '.join(sorted(allowed))}{suggest(key, allowed)}", key=True))
        if kind == "on_fail":
            choice = answer.get("choice")
            if "choice" not in answer:
                diags.append(doc.diag(path, f"{pid}: missing 'choice' (retry, skip or abort)"))
            elif choice not in ON_FAIL_CHOICES:
                diags.append(doc.diag(path + ("choice",), f"{pid}: choice must be retry, skip or abort, not {choice!r}"
                                                          f"{suggest(str(choice), ON_FAIL_CHOICES)}"))
            elif choice == "skip" and not answer.get("reason"):
                diags.append(doc.diag(path, f"{pid}: a skip needs a reason"))
        if kind == "timeout" and answer.get("choice") not in TIMEOUT_CHOICES:
            diags.append(doc.diag(path, f"{pid}: choice must be wait, park or abort, not {answer.get('choice')!r}"
                                        f"{suggest(str(answer.get('choice')), TIMEOUT_CHOICES)}"))
        if kind == "manual" and answer.get("done") is False and not answer.get("reason"):
            diags.append(doc.diag(path, f"{pid}: an item not done needs a reason"))
        if kind == "manual" and "link" in answer and link_problem(answer["link"]):
            diags.append(doc.diag(path + ("link",), f"{pid}: {link_problem(answer['link'])}"))
    if diags:
        raise InputError(diags)
