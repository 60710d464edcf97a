"""Running the engine in-process: a Session over a LocalStore in a temp folder, with a scripted
person (a ``ScriptedPrompter``) or an answers file, and the journal read back as records."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from runbook.errors import RunbookError
from runbook.faults import NONE, Faults
from runbook.prompts import ScriptedPrompter
from runbook.session import Options, Session
from runbook.store import LocalStore

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"


@dataclass
class World:
    """A copy of a scenario project, a state home and a work folder for side effects."""

    root: Path
    home: Path
    work: Path
    asked: list[str] = field(default_factory=list)
    faults: Faults = NONE          # the fault hook its runs get (the command line reads it from the environment)

    @property
    def store(self) -> LocalStore:
        return LocalStore(self.home)

    def run(self, name: str = "", *, params: dict[str, Any] | None = None, script: dict[str, Any] | None = None,
            answers: dict[str, Any] | None = None, resume: str | None = None, env: str | None = None,
            yes: bool = False) -> int:
        """`invoke runbook NAME` (or `runbook.resume --run-id RESUME`) in-process; the exit code.

        ``script`` is a person at a terminal answering by prompt id; without it nobody is there.
        """
        answers_file = None
        if answers is not None:
            answers_file = self.root / f"answers-{len(list(self.root.glob('answers-*')))}.yaml"
            answers_file.write_text(yaml.safe_dump({"runbook": name or self.state(resume or "").runbook,
                                                    "answers": answers}))
        given = {"dir": str(self.work), **(params or {})} if not resume else dict(params or {})
        options = Options(env=env, params=[f"{k}={v}" for k, v in given.items()],
                          answers_file=str(answers_file) if answers_file else None, yes=yes,
                          non_interactive=script is None)
        person = ScriptedPrompter(script, strict=True) if script is not None else None
        session = Session(self.root, options, console=None, person=person, store=LocalStore(self.home),
                          faults=self.faults)
        try:
            code = session.resume(resume) if resume else session.start(name)
        finally:
            if person is not None:
                self.asked.extend(person.asked)
        return int(code)

    def expect_error(self, *args: Any, **kwargs: Any) -> RunbookError:
        try:
            code = self.run(*args, **kwargs)
        except RunbookError as exc:
            return exc
        raise AssertionError(f"no error; exit {code}")

    def runs(self) -> list[str]:
        return sorted(p.name for p in (self.home / "runs").iterdir()) if (self.home / "runs").is_dir() else []

    def last(self) -> str:
        return self.runs()[-1]

    def records(self, run_id: str | None = None) -> list[dict[str, Any]]:
        path = self.home / "runs" / (run_id or self.runs()[0]) / "journal.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()]

    def state(self, run_id: str) -> Any:
        return self.store.state(run_id or self.runs()[0])

    def lines(self, name: str) -> list[str]:
        path = self.work / name
        return path.read_text().splitlines() if path.exists() else []


def world(tmp_path: Path, project: str = "runtime") -> World:
    root = tmp_path / project
    shutil.copytree(SCENARIOS / project, root, ignore=shutil.ignore_patterns("__pycache__"))
    work = tmp_path / "work"
    work.mkdir()
    return World(root, tmp_path / "home", work)


def of_type(records: list[dict[str, Any]], kind: str, **match: Any) -> list[dict[str, Any]]:
    """The records of one type whose data has every ``match`` value."""
    return [r for r in records if r["type"] == kind and all(r["data"].get(k) == v for k, v in match.items())]
