"""Loading YAML safely, keeping the source position of every node.

The C safe loader's event stream is read and composed here into plain dicts, lists
and scalars. Anchors and aliases, explicit tags outside YAML's core set, duplicate
keys, non-string keys, nesting deeper than ``MAX_DEPTH`` and files over ``MAX_BYTES``
are refused with their position. Scalars are typed by PyYAML's own safe resolver and
constructor, so values mean exactly what ``yaml.safe_load`` would make of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import Diagnostic, InputError, format_path

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 64
SAFE_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:map",
    "tag:yaml.org,2002:seq",
}

Path_ = tuple[Any, ...]


@dataclass
class Document:
    """A loaded file: its data and where every value and key came from."""

    file: str
    data: Any
    values: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path_, tuple[int, int]] = field(default_factory=dict)

    def position(self, path: Path_, key: bool = False) -> tuple[int, int]:
        """Line and column (1-based) of the node at ``path``, or its nearest parent."""
        path = tuple(path)
        if key and path in self.keys:
            return self.keys[path]
        while path:
            if path in self.values:
                return self.values[path]
            path = path[:-1]
        return self.values.get((), (1, 1))

    def diag(self, path: Path_, message: str, key: bool = False, shown_path: Path_ | None = None) -> Diagnostic:
        line, col = self.position(path, key=key)
        return Diagnostic(self.file, line, col, message, format_path(shown_path if shown_path is not None else path))


def display_name(path: Path, root: Path | None = None) -> str:
    """A path as errors show it: relative to the current folder or root when inside."""
    path = Path(path)
    for base in (Path.cwd(), root):
        if base is None:
            continue
        try:
            return str(path.resolve().relative_to(Path(base).resolve()))
        except ValueError:
            continue
    return str(path)


def load_file(path: Path, root: Path | None = None) -> Document:
    """Read and parse one YAML file; raise InputError naming its position on any problem."""
    name = display_name(path, root)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise InputError([Diagnostic(name, 0, 0, "no such file")]) from None
    except OSError as exc:
        raise InputError([Diagnostic(name, 0, 0, f"cannot read: {exc.strerror}")]) from None
    if len(raw) > MAX_BYTES:
        raise InputError([Diagnostic(name, 1, 1, f"file is larger than {MAX_BYTES // 1024} KiB; runbooks are kept small")])
    return load_bytes(raw, name)


def load_bytes(raw: bytes | str, name: str) -> Document:
    """Parse YAML text into a Document."""
    if isinstance(raw, bytes):
        if len(raw) > MAX_BYTES:
            raise InputError([Diagnostic(name, 1, 1, f"file is larger than {MAX_BYTES // 1024} KiB; runbooks are kept small")])
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError([Diagnostic(name, 1, 1, f"not UTF-8 text (byte {exc.start})")]) from None
    else:
        text = raw
    return _Composer(name).compose(text)


def _char_at(text: str, line: int, column: int) -> str:
    """The character at a 0-based line and column, or ''."""
    lines = text.split("\n")
    return lines[line][column:column + 1] if 0 <= line < len(lines) and column >= 0 else ""


def _short(tag: str) -> str:
    return "!!" + tag[len("tag:yaml.org,2002:"):] if tag.startswith("tag:yaml.org,2002:") else tag


class _Composer:
    def __init__(self, name: str):
        self.name = name

    def _fail(self, mark: Any, message: str, path: Path_) -> InputError:
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        return InputError([Diagnostic(self.name, line, col, message, format_path(path))])

    def compose(self, text: str) -> Document:
        import yaml

        loader_cls = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        doc = Document(self.name, None)
        try:
            events = list(yaml.parse(text, Loader=loader_cls))
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            problem = exc.problem or exc.context or "invalid YAML"
            if exc.problem and exc.context and exc.context_mark is not None and exc.problem_mark is not None \
                    and exc.context_mark.line != exc.problem_mark.line:
                # where the unfinished construct began is often where the mistake is
                problem += f" ({exc.context} that starts at {exc.context_mark.line + 1}:{exc.context_mark.column + 1})"
            if mark is not None and _char_at(text, mark.line, mark.column) == "\t" and "tab" not in problem:
                problem += "; indent with spaces, not tabs"
            raise self._fail(mark, f"YAML syntax error: {problem}", ()) from None
        except yaml.reader.ReaderError as exc:  # bad characters in the text: one line, at the character
            pos = max(0, min(int(exc.position), len(text)))
            line = text.count("\n", 0, pos) + 1
            col = pos - (text.rfind("\n", 0, pos) + 1) + 1
            char = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "?")
            raise InputError([Diagnostic(self.name, line, col, f"YAML error: character #x{char:04x} is not allowed "
                                         "in YAML (control characters must be escaped in a quoted string)")]) from None
        except yaml.YAMLError as exc:  # anything else: one line
            message = " ".join(str(exc).split())
            raise InputError([Diagnostic(self.name, 1, 1, f"YAML error: {message}")]) from None
        documents = [e for e in events if isinstance(e, yaml.DocumentStartEvent)]
        if len(documents) > 1:
            second = documents[1]
            raise self._fail(second.start_mark, "more than one YAML document in the file", ())
        body = [e for e in events if not isinstance(e, (yaml.StreamStartEvent, yaml.StreamEndEvent,
                                                          yaml.DocumentStartEvent, yaml.DocumentEndEvent))]
        if not body:
            doc.data = None
            return doc
        doc.data = self._build(body, doc, yaml)
        return doc

    def _scalar(self, event: Any, yaml: Any, path: Path_) -> Any:
        from yaml.constructor import ConstructorError, SafeConstructor
        from yaml.nodes import ScalarNode
        from yaml.resolver import Resolver

        tag = event.tag
        if tag in (None, "!"):
            tag = Resolver().resolve(ScalarNode, event.value, event.implicit)
            if tag == "tag:yaml.org,2002:timestamp":
                return event.value  # dates stay text: runbooks compare and print them as written
        if tag not in SAFE_TAGS:
            raise self._fail(event.start_mark, f"YAML tag {_short(tag)!r} is not allowed; write plain values", path)
        node = ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
        try:
            return SafeConstructor().construct_object(node)
        except (ConstructorError, ValueError) as exc:
            raise self._fail(event.start_mark, f"cannot read value {event.value!r} as {tag.rsplit(':', 1)[-1]}: {exc}", path) from None

    def _build(self, events: list[Any], doc: Document, yaml: Any) -> Any:
        # An explicit stack instead of recursion: deep nesting gets a clear error, not a crash.
        root_holder: list[Any] = []
        stack: list[dict[str, Any]] = []
        for event in events:
            if isinstance(event, yaml.AliasEvent):
                path = self._child_path(stack)
                raise self._fail(event.start_mark, f"YAML alias '*{event.anchor}' is not allowed; repeat the value instead", path)
            if isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                frame = stack.pop()
                self._attach(stack, root_holder, frame["value"], frame["start"], doc, yaml)
                continue
            path = self._child_path(stack)
            anchor = getattr(event, "anchor", None)
            if anchor is not None:
                raise self._fail(event.start_mark, f"YAML anchor '&{anchor}' is not allowed; repeat the value instead", path)
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                tag = event.tag
                expected = "tag:yaml.org,2002:map" if isinstance(event, yaml.MappingStartEvent) else "tag:yaml.org,2002:seq"
                if tag not in (None, "!", expected):
                    raise self._fail(event.start_mark, f"YAML tag {_short(tag)!r} is not allowed; write plain values", path)
                if len(stack) >= MAX_DEPTH:
                    raise self._fail(event.start_mark, f"nested deeper than {MAX_DEPTH} levels", path)
                if stack and stack[-1]["kind"] == "map" and stack[-1]["key"] is None:
                    raise self._fail(event.start_mark, "a key must be a string, not a mapping or list", path)
                kind = "map" if isinstance(event, yaml.MappingStartEvent) else "seq"
                stack.append({"kind": kind, "value": {} if kind == "map" else [], "path": path,
                              "key": None, "start": event.start_mark})
                continue
            if isinstance(event, yaml.ScalarEvent):
                if stack and stack[-1]["kind"] == "map" and stack[-1]["key"] is None:
                    self._key(stack[-1], event, doc, yaml)
                    continue
                value = self._scalar(event, yaml, path)
                self._attach(stack, root_holder, value, event.start_mark, doc, yaml)
        return root_holder[0] if root_holder else None

    def _key(self, frame: dict[str, Any], event: Any, doc: Document, yaml: Any) -> None:
        key = self._scalar(event, yaml, frame["path"])
        kpath = frame["path"] + (key,)
        if not isinstance(key, str):
            kind = "null" if key is None else {bool: "a boolean", int: "an integer", float: "a number"}.get(
                type(key), type(key).__name__)
            raise self._fail(event.start_mark, f"key {event.value!r} is read as {kind}, not a string; quote it",
                             frame["path"])
        if key in frame["value"]:
            first = doc.keys.get(kpath, (0, 0))[0]
            raise self._fail(event.start_mark, f"duplicate key {key!r} (first at line {first})", kpath)
        frame["key"] = key
        doc.keys[kpath] = (event.start_mark.line + 1, event.start_mark.column + 1)

    @staticmethod
    def _child_path(stack: list[dict[str, Any]]) -> Path_:
        if not stack:
            return ()
        top = stack[-1]
        if top["kind"] == "seq":
            return top["path"] + (len(top["value"]),)
        return top["path"] + ((top["key"],) if top["key"] is not None else ())

    def _attach(self, stack: list[dict[str, Any]], root_holder: list[Any], value: Any, mark: Any,
                doc: Document, yaml: Any) -> None:
        path = self._child_path(stack)
        doc.values[path] = (mark.line + 1, mark.column + 1)
        if not stack:
            root_holder.append(value)
            return
        top = stack[-1]
        if top["kind"] == "seq":
            top["value"].append(value)
        else:
            top["value"][top["key"]] = value
            top["key"] = None
