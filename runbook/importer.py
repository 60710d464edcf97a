"""Markdown guide -> runbook data: the gradual way from a wiki page to automation.

Pure: text in, data out (reading the file and writing the YAML happen in ``runbook.cli``).
No Markdown library: a small line-based parser knows what runbooks on wikis are made of.

What maps to what:

- The first heading, when it is the only level-1 heading, is the runbook's ``title``; the
  text before it (and under it, up to the next heading) its ``description``. Without one
  the title comes from the runbook's name.
- Every other heading (ATX ``#`` or setext ``===``/``---``) is a step: its text the step's
  title, its id a slug of it (lowercase, hyphenated, unique). A heading with nothing
  under it that is directly followed by deeper headings is a group: its text prefixes its
  sub-steps' titles ("Rollback: Fast rollback") instead of making an empty step.
- Every top-level list item (``-``, ``*``, ``+``, ``1.``, ``1)``) of a section is a manual
  item (in ``do:``); its id a slug of its first words, unique within the step and the same
  on every import of the same text. Task-list boxes (``[ ]``, ``[x]``) are dropped: the
  item is a box already. Everything indented under an item (nested list items, further
  paragraphs, code blocks) stays in that item's text, verbatim: nested items are details
  of their parent, not steps of their own. A code block that directly follows an item
  ending in ``:``, or that sits between two items, belongs to that item too.
- Paragraphs, tables, block quotes and the other code blocks (fenced with ``` or ~~~,
  with or without a language, or indented) are the step's ``instructions``, verbatim.
- A section without list items is a step with its text as instructions and one manual
  item ``done`` whose text is the heading: the operator confirms it was done.
- Code is never run. ``${`` is written ``$${`` (a literal ``${`` for the engine's templates).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from .errors import Diagnostic, InputError

NAME_RE = re.compile(r"^[a-z][a-z0-9-]*$")
NAME_MAX = 64
RESERVED_ITEM_IDS = ("confirm", "approval", "run")

_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^( *)(`{3,}|~{3,})(.*)$")
_RULE = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_ITEM = re.compile(r"^( *)([-*+]|\d{1,9}[.)])(?:([ \t]+)(.*))?$")
_TABLE_DELIM = re.compile(r"^ *\|? *:?-+:? *(\| *:?-+:? *)*\|? *$")
_TASK_BOX = re.compile(r"^\[[ xX]\][ \t]+")
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")


@dataclass
class Block:
    """One block of the guide: a heading, a list item, code, a table or a paragraph."""

    kind: str            # heading | item | code | table | para
    line: int            # 1-based line where it starts
    text: str            # heading text, item text, or the block's lines as written
    level: int = 0       # heading level; 4 for indented code
    ends_with_colon: bool = False


@dataclass
class Section:
    heading: Block | None
    blocks: list[Block] = field(default_factory=list)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _detab(line: str) -> str:
    """Tabs in the indentation count as 4 spaces (the rest of the line is kept as written)."""
    stripped = line.lstrip(" \t")
    lead = line[:len(line) - len(stripped)]
    return (lead.expandtabs(4) + stripped).rstrip() if "\t" in lead else line.rstrip()


def _dedent(line: str, n: int) -> str:
    return line[min(n, _indent(line)):]


def _fence_closes(line: str, marker: str) -> bool:
    s = line.strip()
    return bool(s) and len(s) >= len(marker) and set(s) == {marker[0]}


def _opens_fence(line: str) -> re.Match[str] | None:
    m = _FENCE.match(line)
    if m is None or (m.group(2)[0] == "`" and "`" in m.group(3)):
        return None
    return m


def _is_item(line: str) -> re.Match[str] | None:
    return None if _RULE.match(line) else _ITEM.match(line)


def _starts_block(line: str) -> bool:
    """Whether a line cannot continue a paragraph (it starts a block of its own)."""
    return bool(_ATX.match(line) or _opens_fence(line) or _RULE.match(line) or _is_item(line)
                or line.lstrip().startswith("|"))


class _Parser:
    def __init__(self, text: str, file: str):
        self.lines = [_detab(line) for line in text.split("\n")]
        self.file = file
        self.blocks: list[Block] = []

    def error(self, line: int, message: str) -> InputError:
        return InputError([Diagnostic(self.file, line, 1, message)])

    def fence_end(self, start: int, marker: str) -> int:
        """The index of the line closing the fence opened at ``start``."""
        for j in range(start + 1, len(self.lines)):
            if _fence_closes(self.lines[j], marker):
                return j
        raise self.error(start + 1, f"code block opened with {marker} is never closed; close it with {marker}")

    def parse(self) -> list[Block]:
        lines = self.lines
        i = 0
        previous_blank = True
        while i < len(lines):
            line = lines[i]
            if not line.strip():
                i += 1
                previous_blank = True
                continue
            fence = _opens_fence(line)
            if fence:
                end = self.fence_end(i, fence.group(2))
                width = len(fence.group(1))
                self.blocks.append(Block("code", i + 1, "\n".join(_dedent(x, width) for x in lines[i:end + 1])))
                i = end + 1
            elif _ATX.match(line):
                m = _ATX.match(line)
                assert m is not None
                self.blocks.append(Block("heading", i + 1, (m.group(2) or "").strip(), level=len(m.group(1))))
                i += 1
            elif _indent(line) >= 4 and previous_blank:
                j = i
                while j < len(lines) and (not lines[j].strip() or _indent(lines[j]) >= 4):
                    j += 1
                while not lines[j - 1].strip():
                    j -= 1
                self.blocks.append(Block("code", i + 1, "\n".join(lines[i:j]), level=4))
                i = j
            elif _RULE.match(line):
                i += 1
            elif _is_item(line):
                i = self.item(i)
            elif "|" in line and i + 1 < len(lines) and "|" in lines[i + 1] and _TABLE_DELIM.match(lines[i + 1]):
                j = i + 2
                while j < len(lines) and lines[j].strip() and "|" in lines[j]:
                    j += 1
                self.blocks.append(Block("table", i + 1, "\n".join(x.strip() for x in lines[i:j])))
                i = j
            else:
                i = self.paragraph(i)
            previous_blank = self.blocks[-1].kind != "para" if self.blocks else True
        return self.blocks

    def paragraph(self, i: int) -> int:
        lines = self.lines
        j = i
        para: list[str] = []
        while j < len(lines) and lines[j].strip() and (j == i or not _starts_block(lines[j])):
            para.append(lines[j].strip() if _indent(lines[j]) < 4 else lines[j])
            j += 1
            if j < len(lines) and _SETEXT.match(lines[j]):
                level = 1 if lines[j].strip()[0] == "=" else 2
                self.blocks.append(Block("heading", i + 1, " ".join(para), level=level))
                return j + 1
        self.blocks.append(Block("para", i + 1, "\n".join(para)))
        return j

    def item(self, i: int) -> int:
        """One top-level list item with everything that belongs to it; returns the next line's index."""
        lines = self.lines
        m = _is_item(lines[i])
        assert m is not None
        marker_indent = len(m.group(1))
        spaces = m.group(3) or ""
        first = m.group(4) or ""
        gap = len(spaces) if 1 <= len(spaces) <= 4 and first else 1
        content = marker_indent + len(m.group(2)) + gap
        body: list[str] = []
        j = i + 1
        last_blank = False
        while j < len(lines):
            line = lines[j]
            if not line.strip():
                body.append("")
                last_blank = True
                j += 1
                continue
            ind = _indent(line)
            fence = _opens_fence(line)
            if ind >= content or (ind > marker_indent and (_is_item(line) or fence)):
                if fence:
                    end = self.fence_end(j, fence.group(2))
                    width = len(fence.group(1))
                    body.extend(_dedent(x, width) for x in lines[j:end + 1])
                    j = end + 1
                else:
                    body.append(_dedent(line, content))
                    j += 1
            elif not last_blank and not _starts_block(line) and not _SETEXT.match(line):
                body.append(line.strip())      # a lazy continuation of the item's paragraph
                j += 1
            else:
                break
            last_blank = False
        while body and not body[-1].strip():
            body.pop()
        # the first paragraph reads as one line; the rest stays as written
        head = [first.strip()]
        k = 0
        while k < len(body) and body[k].strip() and not _starts_block(body[k]) and _indent(body[k]) < 4:
            head.append(body[k].strip())
            k += 1
        text = " ".join(h for h in head if h)
        text = _TASK_BOX.sub("", text)
        rest = body[k:]
        ends_with_colon = text.endswith(":") and not rest
        if rest:
            text = text + "\n" + "\n".join(rest)
        self.blocks.append(Block("item", i + 1, text, ends_with_colon=ends_with_colon))
        return j


# -- ids -----------------------------------------------------------------------------------

def _plain(text: str) -> str:
    """Inline Markdown removed and letters folded to ASCII: what an id is made from."""
    text = _LINK.sub(r"\1", text)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return text.lower()


def slug(text: str, max_words: int, max_len: int, fallback: str) -> str:
    """The first words of ``text`` as an id: lowercase letters and digits joined by '-'."""
    words = re.findall(r"[a-z0-9]+", _plain(text.split("\n", 1)[0]))
    out = ""
    for word in words[:max_words]:
        candidate = f"{out}-{word}" if out else word
        if len(candidate) > max_len:
            break
        out = candidate
    if not out and words:
        out = words[0][:max_len]
    return out or fallback


def _unique(base: str, seen: set[str]) -> str:
    candidate, n = base, 2
    while candidate in seen:
        suffix = f"-{n}"
        candidate = base[:64 - len(suffix)] + suffix
        n += 1
    seen.add(candidate)
    return candidate


def escape(text: str) -> str:
    """A literal ``${`` for the engine's templates (``$${``, see runbook.templates)."""
    return text.replace("${", "$${")


# -- sections to steps -------------------------------------------------------------------------

def _title_from_name(name: str) -> str:
    words = name.replace("-", " ").strip()
    return words[:1].upper() + words[1:]


def _items_and_instructions(blocks: list[Block]) -> tuple[list[str], list[str]]:
    """The section's list items (with the code that belongs to them) and its other text."""
    items: list[str] = []
    other: list[str] = []
    for n, block in enumerate(blocks):
        if block.kind == "item":
            items.append(block.text)
        elif block.kind == "code" and items and n > 0 and blocks[n - 1].kind in ("item", "code") \
                and _code_belongs(blocks, n):
            # indented code needs a blank line before it, or it would read as the item's text
            items[-1] = items[-1] + ("\n\n" if block.level else "\n") + block.text
        else:
            other.append(block.text)
    return items, other


def _code_belongs(blocks: list[Block], n: int) -> bool:
    """A code block right after an item belongs to it when the item ends in ':' or another item follows."""
    k = n - 1
    while blocks[k].kind == "code":
        k -= 1
    if blocks[k].kind != "item":
        return False
    if blocks[k].ends_with_colon:
        return True
    after = n + 1
    while after < len(blocks) and blocks[after].kind == "code":
        after += 1
    return after < len(blocks) and blocks[after].kind == "item"


def _sections(blocks: list[Block]) -> tuple[list[Block], list[Section]]:
    preamble: list[Block] = []
    sections: list[Section] = []
    for block in blocks:
        if block.kind == "heading":
            sections.append(Section(block))
        elif sections:
            sections[-1].blocks.append(block)
        else:
            preamble.append(block)
    return preamble, sections


def convert(text: str, name: str, file: str) -> dict[str, Any]:
    """The runbook data for a Markdown guide (InputError naming ``file`` when it cannot be one)."""
    if text.startswith("\ufeff"):
        text = text[1:]
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise InputError([Diagnostic(file, 0, 0, "the file is empty; a Markdown guide needs headings or list items")])
    lines = text.split("\n")
    if lines[0].strip() == "---":          # YAML front matter, as some wikis keep it
        for end in range(1, len(lines)):
            if lines[end].strip() in ("---", "..."):
                text = "\n" * (end + 1) + "\n".join(lines[end + 1:])
                break
    blocks = _Parser(text, file).parse()
    if not any(b.kind in ("heading", "item") for b in blocks):
        raise InputError([Diagnostic(file, 0, 0, "no headings and no list items; a runbook needs sections "
                                                 "(# Heading) or instructions (- item, 1. item)")])
    preamble, sections = _sections(blocks)
    title = _title_from_name(name)
    description = [b.text for b in preamble]
    h1 = [s for s in sections if s.heading is not None and s.heading.level == 1]
    if sections and len(h1) == 1 and sections[0] is h1[0] and h1[0].heading is not None:
        top = sections[0]
        assert top.heading is not None
        title = top.heading.text or title
        if not any(b.kind == "item" for b in top.blocks) and len(sections) > 1:
            description += [b.text for b in top.blocks]
            sections = sections[1:]
    if not sections:                       # list items without any heading: one step
        sections = [Section(Block("heading", 1, title, level=1), preamble)]
        description = []

    steps: list[dict[str, Any]] = []
    step_ids: set[str] = set()
    groups: list[tuple[int, str]] = []
    for n, section in enumerate(sections):
        heading = section.heading
        assert heading is not None
        groups = [g for g in groups if g[0] < heading.level]
        nxt = sections[n + 1].heading if n + 1 < len(sections) else None
        if not section.blocks and nxt is not None and nxt.level > heading.level:
            groups.append((heading.level, heading.text))
            continue
        step_title = ": ".join([g[1] for g in groups] + [heading.text]) or f"Section at line {heading.line}"
        sid = _unique(slug(step_title, 8, 48, "step"), step_ids)
        items, other = _items_and_instructions(section.blocks)
        step: dict[str, Any] = {"id": sid, "title": escape(step_title)}
        if other:
            step["instructions"] = escape("\n\n".join(other).rstrip("\n") + "\n")
        item_ids: set[str] = set()
        manual: list[dict[str, Any]] = []
        for item in items:
            base = slug(item, 4, 32, "item")
            if base in RESERVED_ITEM_IDS:
                base += "-item"
            text = item if item.strip() else "(empty list item)"
            manual.append({"id": _unique(base, item_ids), "manual": escape(text)})
        if not manual:
            manual.append({"id": "done", "manual": escape(step_title)})
        step["do"] = manual
        steps.append(step)

    data: dict[str, Any] = {"name": name, "title": escape(title)}
    if description:
        data["description"] = escape("\n\n".join(description).rstrip("\n") + "\n")
    data["steps"] = steps
    return data


def decode(raw: bytes, file: str) -> str:
    """A guide's bytes as text; not UTF-8 is an InputError naming the line of the first bad byte."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise InputError([Diagnostic(file, line, col, f"not UTF-8 text (byte 0x{raw[exc.start]:02x}); "
                                                      "save the guide as UTF-8")]) from None


def check_name(name: str) -> str | None:
    """Why ``name`` cannot name a runbook, or None."""
    if not NAME_RE.match(name) or len(name) > NAME_MAX:
        return (f"invalid runbook name {name!r}: use lowercase letters, digits and '-', starting with a letter "
                f"(^[a-z][a-z0-9-]*$, at most {NAME_MAX} characters)")
    return None


# -- YAML ------------------------------------------------------------------------------------

def dump(data: dict[str, Any]) -> str:
    """Block-style YAML in the order written; multi-line and long strings as literal blocks (``|``)."""
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
        style = "|" if "\n" in value or len(value) > 100 else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, text)
    header = "# yaml-language-server: $schema=../schemas/runbook.schema.json\n"
    return header + yaml.dump(data, Dumper=Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True,
                              width=100)
