"""Closed sets of the runbook format, declared once (a test checks the schemas agree)."""

from __future__ import annotations

from enum import Enum


class StrEnum(str, Enum):
    def __str__(self) -> str:
        return self.value


class ParamType(StrEnum):
    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    LIST = "list"              # items: a param-like spec of each value; min_items, max_items


class OnFailure(StrEnum):
    ABORT = "abort"
    CONTINUE = "continue"
    RETRY = "retry"


class Evidence(StrEnum):
    NONE = "none"
    NOTE = "note"
    LINK = "link"


class ApprovalSource(StrEnum):
    GITHUB_PR = "github-pr"
    PROMPT = "prompt"


class Section(StrEnum):
    """Where an item sits in a step; checks go in requires/verify, actions in do."""

    REQUIRES = "requires"
    DO = "do"
    VERIFY = "verify"


class StepKind(StrEnum):
    TASK = "task"          # requires / confirm / do / verify
    APPROVAL = "approval"
    INCLUDE = "include"
    RUN = "run"


class LedgerRecord(StrEnum):
    """Every kind of ledger record."""

    START = "run.start"
    ANCHOR = "run.anchor"
    TAKEOVER = "lock.takeover"
    UNLOCK = "lock.unlock"
    APPROVAL = "run.approval"


class PluginKind(StrEnum):
    CHECK = "check"
    ACTION = "action"


SECTION_KIND = {Section.REQUIRES: PluginKind.CHECK, Section.VERIFY: PluginKind.CHECK, Section.DO: PluginKind.ACTION}
PY_TYPES = {ParamType.STRING: (str,), ParamType.INTEGER: (int,), ParamType.NUMBER: (int, float),
            ParamType.BOOLEAN: (bool,), ParamType.LIST: (list,)}
ID_PATTERN = r"^[a-z0-9][a-z0-9-]*$"
NAME_PATTERN = r"^[a-z0-9][a-z0-9-]*$"
PARAM_PATTERN = r"^[a-z][a-z0-9_]*$"


def step_kind(step: dict) -> StepKind:
    """The kind of a step, from which of its keys are present."""
    for kind in (StepKind.APPROVAL, StepKind.INCLUDE, StepKind.RUN):
        if kind.value in step:
            return kind
    return StepKind.TASK
