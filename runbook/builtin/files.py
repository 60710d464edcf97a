"""file.contains: a regular expression found in a file."""

from __future__ import annotations

import re
from pathlib import Path

from runbook.api import Context, Outcome, action, check, clock, probe


@check("file.contains",
       args={"properties": {"path": {"type": "string", "minLength": 1},
                            "pattern": {"type": "string", "minLength": 1, "format": "regex"}},
             "required": ["path", "pattern"]},
       outputs={"type": "object", "properties": {"match": {"type": "string"}, "line": {"type": "integer"},
                                                  "groups": {"type": "array", "items": {"type": "string"}}}})
def contains(ctx: Context) -> Outcome:
    """Pass when the file at `path` contains a match for `pattern` (multi-line mode)."""
    path = ctx.path(ctx.args["path"])
    pattern = re.compile(ctx.args["pattern"], re.MULTILINE)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return Outcome.fail(f"{path}: no such file (expected it to contain /{pattern.pattern}/)", {"path": str(path)})
    except OSError as exc:
        return Outcome.fail(f"{path}: cannot read ({exc.strerror})", {"path": str(path)})
    m = pattern.search(text)
    if not m:
        return Outcome.fail(f"{path}: no match for /{pattern.pattern}/", {"path": str(path), "size": len(text)})
    line = text.count("\n", 0, m.start()) + 1
    found = ctx.redact(m.group(0))[:500]
    groups = [ctx.redact(g or "")[:500] for g in m.groups()]
    return Outcome.ok(f"{path}:{line} matches /{pattern.pattern}/", {"path": str(path), "line": line, "match": found},
                      match=found, line=line, groups=groups)


# -- versions and the changelog ------------------------------------------------------

VERSION_FILES = ("pyproject.toml", "app/__init__.py")
PYPROJECT_VERSION = re.compile(r'^(version\s*=\s*["\'])([^"\']+)(["\'])', re.MULTILINE)
INIT_VERSION = re.compile(r'^(__version__\s*=\s*["\'])([^"\']+)(["\'])', re.MULTILINE)
SECTION = re.compile(r"^## \[(?P<version>[^\]]+)\](?: - (?P<date>\d{4}-\d{2}-\d{2}))?[ \t]*$", re.MULTILINE)
CATEGORIES = ("Added", "Changed", "Deprecated", "Removed", "Fixed", "Security")


def _plain(version: str) -> str:
    return version[1:] if version.startswith("v") else version


def _base(ctx: Context) -> Path:
    value = ctx.args.get("repo")
    if value:
        return ctx.path(value)
    return Path(ctx.checkout) if ctx.checkout is not None else ctx.root


def _versions(ctx: Context) -> dict[str, str]:
    """The version found in each version file of the repository."""
    base = _base(ctx)
    found = {}
    for name in ([ctx.args["path"]] if ctx.args.get("path") else VERSION_FILES):
        path = base / name
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        m = (PYPROJECT_VERSION if path.name == "pyproject.toml" else INIT_VERSION).search(text)
        if m:
            found[name] = m.group(2)
    return found


@check("file.version_equals",
       args={"properties": {"version": {"type": "string"}, "repo": {"type": "string"}, "path": {"type": "string"}},
             "required": ["version"]},
       outputs={"type": "object", "properties": {"found": {"type": "object"}}})
def version_equals(ctx: Context) -> Outcome:
    """The version in pyproject.toml and/or app/__init__.py equals `version` (a leading v ignored)."""
    wanted = _plain(ctx.args["version"])
    found = _versions(ctx)
    if not found:
        return Outcome.fail(f"no version found in {', '.join(VERSION_FILES)} under {_base(ctx)}")
    wrong = {k: v for k, v in found.items() if v != wanted}
    if wrong:
        return Outcome.fail(f"expected version {wanted}, found " + ", ".join(f"{v} in {k}" for k, v in wrong.items()),
                            {"found": found}, found=found)
    return Outcome.ok(f"version {wanted} in {', '.join(found)}", {"found": found}, found=found)


@action("file.set_version",
        args={"properties": {"version": {"type": "string"}, "repo": {"type": "string"}, "path": {"type": "string"}},
              "required": ["version"]},
        outputs={"type": "object", "properties": {"files": {"type": "array", "items": {"type": "string"}}}})
def set_version(ctx: Context) -> Outcome:
    """Write `version` into pyproject.toml and/or app/__init__.py (the guide's version bump)."""
    wanted = _plain(ctx.args["version"])
    base = _base(ctx)
    changed = []
    for name in ([ctx.args["path"]] if ctx.args.get("path") else VERSION_FILES):
        path = base / name
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        rx = PYPROJECT_VERSION if path.name == "pyproject.toml" else INIT_VERSION
        new = rx.sub(lambda m: m.group(1) + wanted + m.group(3), text, count=1)
        if new != text:
            path.write_text(new, encoding="utf-8")
            changed.append(name)
    if not _versions(ctx):
        return Outcome.fail(f"no version line to update in {', '.join(VERSION_FILES)} under {base}")
    return Outcome.ok(f"version {wanted} in {', '.join(_versions(ctx))}" + ("" if changed else " (already)"),
                      files=changed)


@probe("file.set_version")
def set_version_probe(ctx: Context) -> Outcome | None:
    """Already done when every version file holds the version."""
    wanted = _plain(ctx.args["version"])
    found = _versions(ctx)
    if found and all(v == wanted for v in found.values()):
        return Outcome.ok(f"version {wanted} in {', '.join(found)} (already)", files=[])
    return None


def _sections(text: str) -> list[tuple[str, str | None, str]]:
    """(version, date, body) for each `## [...]` section."""
    matches = list(SECTION.finditer(text))
    out = []
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        out.append((m.group("version"), m.group("date"), text[m.end():end].strip("\n")))
    return out


def _has_entries(body: str) -> bool:
    current = None
    for line in body.splitlines():
        head = re.match(r"^### (\w+)", line)
        if head:
            current = head.group(1)
        elif current in CATEGORIES and re.match(r"^\s*[-*] \S", line):
            return True
    return False


@check("file.changelog_section",
       args={"properties": {"version": {"type": "string"}, "repo": {"type": "string"}, "path": {"type": "string"}},
             "required": ["version"]},
       outputs={"type": "object", "properties": {"section": {"type": "string"}, "date": {"type": "string"}}})
def changelog_section(ctx: Context) -> Outcome:
    """CHANGELOG.md has `## [X.Y.Z] - YYYY-MM-DD` with at least one entry under a category; its text is an output."""
    path = _base(ctx) / ctx.args.get("path", "CHANGELOG.md")
    wanted = _plain(ctx.args["version"])
    if not path.is_file():
        return Outcome.fail(f"{path}: no changelog")
    for version, date, body in _sections(path.read_text(encoding="utf-8")):
        if version != wanted:
            continue
        if not date:
            return Outcome.fail(f"{path}: section [{wanted}] has no date (## [{wanted}] - YYYY-MM-DD)")
        if not _has_entries(body):
            return Outcome.fail(f"{path}: section [{wanted}] has no entries under {', '.join(CATEGORIES)}")
        return Outcome.ok(f"{path.name}: [{wanted}] - {date}", {"date": date, "lines": body.count(chr(10)) + 1},
                          section=body, date=date)
    return Outcome.fail(f"{path}: no section ## [{wanted}] - YYYY-MM-DD (found "
                        f"{', '.join(v for v, _, _ in _sections(path.read_text(encoding='utf-8'))[:3]) or 'none'})")


@action("file.changelog_release",
        args={"properties": {"version": {"type": "string"}, "date": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"},
                             "repo": {"type": "string"}, "path": {"type": "string"}},
              "required": ["version"]},
        outputs={"type": "object", "properties": {"section": {"type": "string"}, "date": {"type": "string"}}})
def changelog_release(ctx: Context) -> Outcome:
    """Turn `## [Unreleased]` into `## [X.Y.Z] - DATE` (today, UTC, by default)."""

    path = _base(ctx) / ctx.args.get("path", "CHANGELOG.md")
    wanted = _plain(ctx.args["version"])
    if not path.is_file():
        return Outcome.fail(f"{path}: no changelog")
    text = path.read_text(encoding="utf-8")
    if any(v == wanted for v, _, _ in _sections(text)):
        return changelog_section(ctx)
    date = ctx.args.get("date") or clock.now().strftime("%Y-%m-%d")
    new, n = re.subn(r"^## \[Unreleased\][ \t]*$", f"## [{wanted}] - {date}", text, count=1,
                     flags=re.MULTILINE | re.IGNORECASE)
    if not n:
        return Outcome.fail(f"{path}: no '## [Unreleased]' section to release as {wanted}")
    path.write_text(new, encoding="utf-8")
    return changelog_section(ctx)


@probe("file.changelog_release")
def changelog_release_probe(ctx: Context) -> Outcome | None:
    """Already done when the changelog has the version's section."""
    path = _base(ctx) / ctx.args.get("path", "CHANGELOG.md")
    wanted = _plain(ctx.args["version"])
    if path.is_file() and any(v == wanted for v, _, _ in _sections(path.read_text(encoding="utf-8"))):
        return changelog_section(ctx)
    return None
