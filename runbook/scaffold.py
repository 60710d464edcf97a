"""``python -m runbook init [DIR]``: a working project in an empty folder.

Writes a thin ``tasks.py``, an example runbook and environment that run on this machine
without any cloud, an answers file for it, an empty ``checks/`` (the project's own
plugins, loaded by path), the JSON Schemas for editors and a short README. Existing files
are never overwritten: the command refuses, naming them, and writes nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from .errors import UsageError

TEMPLATE = Path(__file__).resolve().parent / "template"
SCHEMAS = Path(__file__).resolve().parent / "schema"


def files() -> dict[str, bytes]:
    """What ``init`` writes: path relative to the project -> content."""
    out = {str(p.relative_to(TEMPLATE)): p.read_bytes() for p in sorted(TEMPLATE.rglob("*"))
           if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}
    out.update({f"schemas/{p.name}": p.read_bytes() for p in sorted(SCHEMAS.glob("*.json"))})
    return out


def init(folder: Path, out: TextIO) -> int:
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder}: exists and is not a folder")
    wanted = files()
    clash = sorted(name for name in wanted if (folder / name).exists() or (folder / name).is_symlink())
    if (folder / "checks").exists() and not (folder / "checks").is_dir():
        clash.append("checks")
    if clash:
        raise UsageError(f"{folder}: would overwrite {', '.join(clash)}; init writes only into a folder without "
                         "them (move them away, or init another folder)")
    for name, data in wanted.items():
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    (folder / "checks").mkdir(parents=True, exist_ok=True)
    where = "" if folder.resolve() == Path.cwd().resolve() else f"cd {folder}\n  "
    out.write(f"Wrote a runbook project in {folder} ({len(wanted)} files and an empty checks/). Next:\n"
              f"  {where}invoke runbook.validate\n"
              "  invoke runbook example --env local\n")
    return 0
