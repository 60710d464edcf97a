"""The step loop's decisions as tables: tests/scenarios/decide/*.yaml, one row per rule of DESIGN
"Resume" (step state x answers x probe result -> next action). A new rule is a new row.

Rows of ``from_journal`` start from journal records: folded into the run's state, as the engine
folds them, and read with ``decide.journal_facts``, as the engine reads them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from runbook import decide
from runbook.state import derive

TABLES = Path(__file__).resolve().parent.parent / "scenarios" / "decide"


def rows() -> list[Any]:
    out = []
    for path in sorted(TABLES.glob("*.yaml")):
        spec = yaml.safe_load(path.read_text())
        for i, row in enumerate(spec["rows"]):
            out.append(pytest.param(spec["function"], row, id=f"{path.stem}[{i}]"))
    return out


def records(raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
    head = [{"type": "run.started", "data": {"runbook": "release"}}]
    return [{"time": f"2026-11-30T10:00:{i:02d}.000000Z", "run": "R1", "operator": "op", **r}
            for i, r in enumerate(head + raw)]


@pytest.mark.parametrize("function,row", rows())
def test_decision_table(function: str, row: dict[str, Any]) -> None:
    facts = row["facts"]
    if function == "item_next":
        found = decide.item_next(decide.ItemFacts(**facts))
    elif function == "from_journal":
        sid, key = row["item"].split(".")
        known = decide.journal_facts(derive(records(row["records"])), sid, key)
        found = decide.item_next(decide.ItemFacts(**known, **facts))
    elif function == "step_next":
        found = decide.step_next(**facts)
    elif function == "on_fail_next":
        found = decide.on_fail_next(decide.FailFacts(**facts))
    elif function == "resume_next":
        found = decide.resume_next(**facts)
    else:
        assert function == "run_next", function
        found = decide.run_next(**facts)
    assert (found.value if found is not None else None) == row["next"], row


def test_every_decision_and_every_outcome_appears_in_a_table() -> None:
    """The tables cover each function and each of its answers."""
    seen: dict[str, set[Any]] = {}
    for param in rows():
        function, row = param.values
        seen.setdefault(function, set()).add(row["next"])
    assert seen["item_next"] | seen["from_journal"] == {n.value for n in decide.ItemNext}
    assert seen["step_next"] == {n.value for n in decide.StepNext}
    assert seen["on_fail_next"] == {n.value for n in decide.FailNext} | {None}
    assert seen["run_next"] == {n.value for n in decide.RunNext}
    assert seen["resume_next"] == {n.value for n in decide.ResumeNext}
