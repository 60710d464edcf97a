"""The state fold, rehearsed: journal records (YAML files under tests/scenarios/fold/) in, the run's
state out (orquesta's rehearsal style). A new case is a new file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from runbook.state import TERMINAL, derive, outcome_text

FOLD = Path(__file__).resolve().parent.parent / "scenarios" / "fold"


def records(raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"time": f"2026-11-30T10:00:{i:02d}.000000Z", "run": "R1", "operator": "op", **r}
            for i, r in enumerate(raw)]


@pytest.mark.parametrize("case", sorted(p.name for p in FOLD.glob("*.yaml")))
def test_rehearsal(case: str) -> None:
    spec = yaml.safe_load((FOLD / case).read_text())
    state = derive(records(spec["records"]))
    expect = spec["expect"]
    assert state.status.value == expect["status"]
    if "terminal" in expect:
        assert (state.status in TERMINAL) is expect["terminal"]
    if "finished" in expect:
        assert sorted(s for s in state.steps if state.finished(s)) == sorted(expect["finished"])
    if "items" in expect:
        assert {sid: sorted(st.items) for sid, st in state.steps.items() if sid in expect["items"]} == \
            {sid: sorted(keys) for sid, keys in expect["items"].items()}
    if "intents" in expect:
        assert sorted(f"{sid}.{k}" for sid, st in state.steps.items() for k, it in st.items.items()
                      if it.intent is not None and it.result is None) == sorted(expect["intents"])
    if "prompts" in expect:
        assert sorted(state.prompts) == sorted(expect["prompts"])
    if "outputs" in expect:
        for ref, outputs in expect["outputs"].items():
            assert state.outputs(*ref.split(".")) == outputs
    if "deviations" in expect:
        assert [d["kind"] for d in state.deviations] == expect["deviations"]
    if "active_s" in expect:
        assert {sid: state.steps[sid].active_s for sid in expect["active_s"]} == expect["active_s"]
    if "outcome" in expect:
        assert outcome_text(state.status.value, len(state.deviations)) == expect["outcome"]


def test_the_audit_event_schema_matches_the_enums_and_real_journals(tmp_path: Path, monkeypatch) -> None:
    """schemas/audit-event.schema.json declares every event and ledger type the engine writes, and the
    records of a real run (journal and ledger) validate against it."""
    import json

    import jsonschema

    from core.harness import world
    from runbook.model import LedgerRecord
    from runbook.state import Event

    schema = json.loads((FOLD.parent.parent.parent / "schemas" / "audit-event.schema.json").read_text())
    defs = schema["$defs"]
    assert set(defs["journal"]["allOf"][1]["properties"]["type"]["enum"]) == {e.value for e in Event}
    assert set(defs["ledger"]["allOf"][1]["properties"]["type"]["enum"]) == {e.value for e in LedgerRecord}
    monkeypatch.setenv("RUNBOOK_OPERATOR", "tester@example.com")
    w = world(tmp_path)
    assert w.run("flow", params={"fail_after": "true"}, answers={"run.on_failure": True}) == 1
    lines = [json.loads(line) for run in w.runs() for line in (w.home / "runs" / run / "journal.jsonl").read_text()
             .splitlines()] + [json.loads(line) for line in (w.home / "ledger.jsonl").read_text().splitlines()]
    validator = jsonschema.Draft202012Validator(schema)
    assert {"run.rolled-back", "run.anchor", "run.start"} <= {r["type"] for r in lines}
    for record in lines:
        validator.validate(record)
