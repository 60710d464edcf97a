"""Where things live: the project root, its runbooks and environments, the state home."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InputError, UsageError
from .schemas import suggest
from .yamlfile import Document, display_name, load_file


def project_root(tasks_dir: Path | str | None = None) -> Path:
    """``RUNBOOK_ROOT`` if set, else the folder of the tasks.py invoke loaded."""
    override = os.environ.get("RUNBOOK_ROOT")
    if override:
        return Path(override).resolve()
    if tasks_dir is None:
        return Path.cwd().resolve()
    return Path(tasks_dir).resolve()


def state_home(root: Path) -> Path:
    """``RUNBOOK_HOME``, else the user's state folder for this project (outside the checkout)."""
    override = os.environ.get("RUNBOOK_HOME")
    if override:
        return Path(override).resolve()
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "runbook" / root.name


@dataclass
class Project:
    """A project: its root folder and a cache of the YAML files read from it."""

    root: Path
    _docs: dict[Path, Document] = field(default_factory=dict)

    @property
    def runbooks_dir(self) -> Path:
        return self.root / "runbooks"

    @property
    def environments_dir(self) -> Path:
        return self.root / "environments"

    def load(self, path: Path) -> Document:
        """Read a YAML file once (InputError on syntax problems)."""
        path = Path(path).resolve()
        if path not in self._docs:
            self._docs[path] = load_file(path, self.root)
        return self._docs[path]

    def display(self, path: Path) -> str:
        return display_name(path, self.root)

    def runbook_names(self) -> list[str]:
        return sorted(p.stem for p in self.runbooks_dir.glob("*.yaml")) if self.runbooks_dir.is_dir() else []

    def environment_names(self) -> list[str]:
        return sorted(p.stem for p in self.environments_dir.glob("*.yaml")) if self.environments_dir.is_dir() else []

    def find_runbook(self, name: str, near: Path | None = None) -> Path | None:
        """A runbook by name: beside ``near`` first (a folder of scenarios), then ``runbooks/``."""
        if not name or "/" in name or "\\" in name or name.startswith("."):
            return None
        for folder in ([near] if near else []) + [self.runbooks_dir]:
            candidate = Path(folder) / f"{name}.yaml"
            if candidate.is_file():
                return candidate.resolve()
        return None

    def runbook_path(self, name_or_path: str) -> Path:
        """Resolve what the user typed: a runbook name or a path to a YAML file."""
        if name_or_path.endswith((".yaml", ".yml")) or os.sep in name_or_path:
            path = Path(name_or_path)
            if not path.is_absolute():
                path = Path.cwd() / path
            if not path.is_file():
                raise UsageError(f"{name_or_path}: no such runbook file")
            return path.resolve()
        found = self.find_runbook(name_or_path)
        if found is None:
            names = self.runbook_names()
            raise UsageError(f"<command line>: unknown runbook {name_or_path!r}{suggest(name_or_path, names)}; "
                             f"`invoke runbook.list` shows the {len(names)} runbooks of {self.runbooks_dir}")
        return found

    def environment_path(self, name: str) -> Path:
        path = self.environments_dir / f"{name}.yaml"
        if "/" in name or name.startswith(".") or not path.is_file():
            names = self.environment_names()
            raise InputError([f"<command line>: unknown environment {name!r}{suggest(name, names)}; "
                              f"known: {', '.join(names) or 'none'} (at --env)"])
        return path.resolve()
