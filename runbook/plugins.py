"""The plugin registry: checks and actions, one dict filled by decorators.

A plugin module (the engine's built-ins in ``runbook.builtin``, or a file in a project's
own ``checks/`` folder, loaded by path under a private module name) registers with ``@check(...)`` or ``@action(...)``. A name
registered twice is an error. Dispatch is a lookup in the registry, never a chain of
``if``s. Plugin modules must keep heavy imports (boto3, github) inside functions.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.machinery
import importlib.util
import inspect
import json
import os
import pkgutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from .errors import PluginError
from .model import PluginKind

ANY_OUTPUTS: dict[str, Any] = {"type": "object", "properties": {}}


@dataclass
class Outcome:
    """What a check or action found: the value an audit event stores."""

    passed: bool
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "summary": self.summary, "evidence": self.evidence, "outputs": self.outputs}

    @classmethod
    def ok(cls, summary: str, evidence: dict[str, Any] | None = None, **outputs: Any) -> "Outcome":
        return cls(True, summary, evidence or {}, outputs)

    @classmethod
    def fail(cls, summary: str, evidence: dict[str, Any] | None = None, **outputs: Any) -> "Outcome":
        return cls(False, summary, evidence or {}, outputs)


@dataclass
class Context:
    """The narrow view a plugin gets: its arguments, the environment, and helpers.

    The engine builds one per call; plugins never see the engine or the run state.
    """

    args: dict[str, Any]
    env: Mapping[str, Any]
    root: Path
    redact: Callable[[str], str] = lambda text: text
    store_blob: Callable[[bytes], str] | None = None
    results: Any = None            # read-only access to this run's results so far (outputs, summaries)
    clients: Any = None
    progress: Callable[[str], None] = lambda message: None
    timeout: float | None = None
    checkout: Path | None = None
    operator: str = ""
    run_id: str = ""
    item: Mapping[str, Any] = field(default_factory=dict)
    history: Any = None           # runbook.history.History: other runs' journals, read-only
    env_name: str = ""
    step_started: str = ""        # ISO time the current step first started (survives resumes)
    step_active_s: float = 0.0    # seconds the current step ran in earlier sessions (not while interrupted)
    output: Callable[[str, str], None] | None = None   # --verbose: (stream, line) of a command as it runs
    child_started: Callable[[int], None] | None = None  # an action's command runs as this pid (journaled)

    def path(self, value: str | None) -> Path:
        """A path argument: relative paths are relative to the project root."""
        if not value:
            return self.root
        p = Path(value)
        return p if p.is_absolute() else self.root / p


@dataclass(frozen=True)
class Plugin:
    name: str
    kind: PluginKind
    func: Callable[[Context], Outcome]
    args: dict[str, Any]
    outputs: dict[str, Any]
    probe: Callable[[Context], Outcome | None] | None = None
    side_effect: bool = False
    description: str = ""
    module: str = ""
    source: str = ""
    lint: Callable[[dict[str, Any]], list[tuple[tuple[Any, ...], str]]] | None = None
    outputs_for: Callable[[dict[str, Any]], dict[str, Any]] | None = None

    def outputs_of(self, args: Any) -> dict[str, Any]:
        """The output schema of one use: what ``outputs_for`` derives from its written arguments
        (``select:`` keys of aws.call, say), else the registered one."""
        if self.outputs_for is not None and isinstance(args, dict):
            try:
                return self.outputs_for(args)
            except Exception:     # a half-written item: the lint reports what is wrong with it
                return self.outputs
        return self.outputs

    @property
    def version(self) -> str:
        """A digest of the plugin's code and schemas: a change makes plans differ.

        The code is read when a version is first asked for (a plan asks only for the
        plugins it uses), not at registration: reading 60 functions' source costs more
        than importing them. Finding a function's source tokenizes it (about 1.5 ms a
        plugin), so a version is remembered in ``plugin-versions.json`` under the cache
        folder by the digest of everything it is computed from: the content of the files
        the function and its probe come from, where they start there, the schemas and the
        Python version. Any edit to those files makes a new key (content, not mtime:
        a same-size edit within one clock tick is seen too).
        """
        if self.source:
            return _version(self.source, self)
        key = _version_key(self)
        if key is not None:
            known = _VERSIONS.get(key)
            if isinstance(known, str):
                return known
        version = _version(_source_of(self.func, self.name) + (_source_of(self.probe, "") if self.probe else ""),
                           self)
        if key is not None:
            _VERSIONS.put(key, version)
        return version


def _version(source: str, plugin: Plugin) -> str:
    h = hashlib.sha256(source.encode())
    h.update(repr((plugin.args, plugin.outputs)).encode())
    return h.hexdigest()[:16]


_REGISTRY: dict[str, Plugin] = {}


def _source_of(func: Callable[..., Any], fallback: str) -> str:
    try:
        return inspect.getsource(func)
    except (OSError, TypeError):
        return fallback


class DiskCache:
    """Facts derived from content, remembered in one JSON file under the cache folder.

    Every key is a digest of everything its value depends on, so an entry is never stale,
    only unused. The file is read once per process (again when ``RUNBOOK_CACHE`` points
    elsewhere) and written by ``save`` - whole, merged with what other processes added
    meanwhile, the newest ``limit`` entries. A missing, corrupt or read-only cache only
    costs the computation it would have saved.
    """

    instances: list["DiskCache"] = []

    def __init__(self, name: str, limit: int = 4096):
        self.name = name
        self.limit = limit
        self._path: Path | None = None
        self._known: dict[str, Any] = {}
        self._new: dict[str, Any] = {}
        DiskCache.instances.append(self)

    def _current(self) -> dict[str, Any]:
        path = cache_home() / self.name
        if path != self._path:
            self._path, self._known, self._new = path, self._read(path), {}
        return self._known

    @staticmethod
    def _read(path: Path) -> dict[str, Any]:
        try:
            data = json.loads(path.read_bytes())
        except (OSError, ValueError):
            return {}
        entries = data.get("entries") if isinstance(data, dict) and data.get("format") == 1 else None
        return dict(entries) if isinstance(entries, dict) else {}

    def get(self, key: str) -> Any:
        return self._current().get(key)

    def put(self, key: str, value: Any) -> None:
        known = self._current()
        if known.get(key) != value:
            known[key] = value
            self._new[key] = value

    def save(self) -> None:
        if not self._new or self._path is None:
            return
        path, new, self._new = self._path, self._new, {}
        merged = self._read(path)
        for key in new:
            merged.pop(key, None)          # the newest entries last: trimming drops the oldest
        merged.update(new)
        if len(merged) > self.limit:
            merged = dict(list(merged.items())[-self.limit:])
        try:
            from .journal import atomic_write

            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, json.dumps({"format": 1, "entries": merged}).encode(), durable=False)
        except OSError:
            pass

    def forget(self) -> None:
        """Drop what this process holds in memory (tests: as if a new process started)."""
        self._path, self._known, self._new = None, {}, {}

    @classmethod
    def save_all(cls) -> None:
        for cache in cls.instances:
            cache.save()


_VERSIONS = DiskCache("plugin-versions.json")
_FILE_DIGESTS: dict[tuple[str, int, int, int], str] = {}


def _file_digest(path: str) -> str | None:
    """SHA-256 of a source file's content (kept per process while size, mtime and inode stay)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    stamp = (path, st.st_size, st.st_mtime_ns, st.st_ino)
    known = _FILE_DIGESTS.get(stamp)
    if known is None:
        try:
            with open(path, "rb") as fh:
                known = hashlib.sha256(fh.read()).hexdigest()
        except OSError:
            return None
        _FILE_DIGESTS[stamp] = known
    return known


def _code_key(func: Callable[..., Any]) -> str | None:
    """What ``inspect.getsource(func)`` is a function of: the unwrapped function's file content
    and the line its code starts at (None when that file cannot be read)."""
    try:
        code = inspect.unwrap(func).__code__
    except (AttributeError, ValueError):
        return None
    digest = _file_digest(code.co_filename)
    if digest is None:
        return None
    return f"{code.co_filename}:{digest}:{code.co_firstlineno}:{code.co_qualname}"


def _version_key(plugin: Plugin) -> str | None:
    func = _code_key(plugin.func)
    probe = _code_key(plugin.probe) if plugin.probe is not None else "-"
    if func is None or probe is None:
        return None
    text = "\0".join(["v1", sys.version, plugin.name, func, probe, repr((plugin.args, plugin.outputs))])
    return hashlib.sha256(text.encode()).hexdigest()


def save_caches() -> None:
    """Write what this process added to the disk caches (plugin versions)."""
    DiskCache.save_all()


def _register(kind: PluginKind, name: str, args: dict[str, Any] | None, outputs: dict[str, Any] | None,
              side_effect: bool, description: str) -> Callable[[Callable[[Context], Outcome]], Callable[[Context], Outcome]]:
    def deco(func: Callable[[Context], Outcome]) -> Callable[[Context], Outcome]:
        module = sys.modules.get(func.__module__)
        where = getattr(module, "__file__", func.__module__)
        if name in _REGISTRY:
            raise PluginError(f"{where}: plugin {name!r} is already registered by {_REGISTRY[name].module}")
        arg_schema = {"type": "object", "additionalProperties": False, "properties": {}}
        arg_schema.update(args or {})
        out_schema = dict(outputs or ANY_OUTPUTS)
        doc = description or (inspect.getdoc(func) or "").split("\n")[0]
        _REGISTRY[name] = Plugin(name, kind, func, arg_schema, out_schema, _EARLY_PROBES.pop(name, None), side_effect,
                                 doc, str(where))
        func.plugin_name = name  # type: ignore[attr-defined]
        return func
    return deco


def check(name: str, args: dict[str, Any] | None = None, outputs: dict[str, Any] | None = None,
          description: str = "") -> Callable[[Callable[[Context], Outcome]], Callable[[Context], Outcome]]:
    """Register a read-only check."""
    return _register(PluginKind.CHECK, name, args, outputs, False, description)


def action(name: str, args: dict[str, Any] | None = None, outputs: dict[str, Any] | None = None,
           side_effect: bool = True, description: str = "") -> Callable[[Callable[[Context], Outcome]], Callable[[Context], Outcome]]:
    """Register an action (something that changes the world unless ``side_effect=False``)."""
    return _register(PluginKind.ACTION, name, args, outputs, side_effect, description)


_EARLY_PROBES: dict[str, Callable[[Context], Outcome | None]] = {}   # probes written above their action


def _no_early_probes_left(where: str) -> None:
    if _EARLY_PROBES:
        names = sorted(_EARLY_PROBES)
        _EARLY_PROBES.clear()
        raise PluginError(f"{where}: probe for unknown plugin {names[0]!r}")


def probe(name: str) -> Callable[[Callable[[Context], Outcome | None]], Callable[[Context], Outcome | None]]:
    """Attach a read-only probe to an action: did its effect already happen? The probe may come
    before its action in the module (an action that looks first, as ``git_actions.probed``); one
    whose action never comes is an error when the module has been loaded."""
    def deco(func: Callable[[Context], Outcome | None]) -> Callable[[Context], Outcome | None]:
        plugin = _REGISTRY.get(name)
        if plugin is None:
            if name in _EARLY_PROBES:
                raise PluginError(f"plugin {name!r} already has a probe")
            _EARLY_PROBES[name] = func
            return func
        if plugin.probe is not None:
            raise PluginError(f"plugin {name!r} already has a probe")
        _REGISTRY[name] = dataclasses.replace(plugin, probe=func)
        return func
    return deco


def static(name: str, lint: Callable[[dict[str, Any]], list[tuple[tuple[Any, ...], str]]] | None = None,
           outputs: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> None:
    """Attach validate-time knowledge to a registered plugin.

    ``lint(args)`` gets an item's ``with:`` as written (values may still be ``${...}``
    templates: leave those alone) and returns ``(path below with:, message)`` pairs, each
    reported as ``FILE:LINE:COL`` like any other error; ``outputs(args)`` returns the
    output schema of that use, so references to its outputs are checked against it.
    """
    plugin = _REGISTRY.get(name)
    if plugin is None:
        raise PluginError(f"static checks for unknown plugin {name!r}")
    _REGISTRY[name] = dataclasses.replace(plugin, lint=lint or plugin.lint, outputs_for=outputs or plugin.outputs_for)


class Registry(Mapping[str, Plugin]):
    """A read-only view of the loaded plugins."""

    def __init__(self, plugins: dict[str, Plugin]):
        self._plugins = dict(plugins)

    def __getitem__(self, key: str) -> Plugin:
        return self._plugins[key]

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._plugins))

    def __len__(self) -> int:
        return len(self._plugins)


_LOADED: dict[str, Registry] = {}


class _SourceOnly(importlib.machinery.SourceFileLoader):
    """A project's own plugin module, compiled from its source on every load, never from a
    ``.pyc``: Python trusts a ``.pyc`` while the source's size and mtime (in whole seconds)
    match, so a same-size edit within a second could run old code under the new file's
    version. The engine's own modules and the built-in plugins are installed as any package."""

    def get_code(self, fullname: str) -> Any:
        return self.source_to_code(self.get_data(self.path), self.path)


def _builtin_dir() -> Path:
    from . import builtin

    return Path(builtin.__file__).resolve().parent


def load(root: Path | None = None, check: bool = False) -> Registry:
    """Import the built-in plugins and the project's own ``checks/*.py``; return the registry.

    With ``check``, every argument and output schema is checked against JSON Schema's
    meta-schema (`runbook.validate` and `runbook.checks` do; a run skips the cost).
    """
    key = str(Path(root).resolve()) if root else ""
    if key in _LOADED:
        if check:
            _check_schemas(_LOADED[key])
        return _LOADED[key]
    from . import builtin

    for info in sorted(pkgutil.iter_modules(builtin.__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"runbook.builtin.{info.name}")
    _no_early_probes_left("runbook.builtin")
    if root is not None:
        folder = Path(root).resolve() / "checks"
        if folder.is_dir() and folder != _builtin_dir():
            for file in sorted(folder.glob("*.py")):
                if file.name.startswith("_"):
                    continue
                modname = f"runbook_project_checks.{hashlib.sha256(str(folder).encode()).hexdigest()[:8]}.{file.stem}"
                if modname in sys.modules:
                    continue
                spec = importlib.util.spec_from_file_location(modname, file, loader=_SourceOnly(modname, str(file)))
                if spec is None or spec.loader is None:
                    continue
                module = importlib.util.module_from_spec(spec)
                sys.modules[modname] = module
                try:
                    spec.loader.exec_module(module)
                    _no_early_probes_left(str(file))
                except PluginError:
                    del sys.modules[modname]
                    raise
    visible = {_builtin_dir()} | ({(Path(root).resolve() / "checks")} if root is not None else set())
    registry = Registry({n: p for n, p in _REGISTRY.items() if Path(p.module).resolve().parent in visible})
    if check:
        _check_schemas(registry)
    _LOADED[key] = registry
    return registry


_SCHEMAS_OK = DiskCache("plugin-schemas.json")     # schemas found valid, by the digest of their content


def _schema_key(schema: dict[str, Any]) -> str:
    return hashlib.sha256(("2020-12\0" + json.dumps(schema, sort_keys=True, default=repr)).encode()).hexdigest()


def _check_schemas(registry: Registry) -> None:
    """Check every argument and output schema against the 2020-12 meta-schema.

    A schema found valid once is remembered by the digest of its content (in
    ``plugin-schemas.json`` under the cache folder), so `runbook.validate` pays the
    meta-check (about 0.4 s for 98 schemas) only when a plugin's schema changed; a changed
    schema has a new digest and is checked again.
    """
    for plugin in registry.values():
        for label, schema in (("argument", plugin.args), ("output", plugin.outputs)):
            key = _schema_key(schema)
            if _SCHEMAS_OK.get(key):
                continue
            from .schemas import check_schema

            problem = check_schema(schema)
            if problem:
                raise PluginError(f"{plugin.module}: plugin {plugin.name!r} has an invalid {label} schema: {problem}")
            _SCHEMAS_OK.put(key, True)
    _SCHEMAS_OK.save()


def cache_home() -> Path:
    """Where derived, disposable results are remembered: ``RUNBOOK_CACHE``, else the user's
    cache folder. Never the state home: reading commands write nothing there."""
    override = os.environ.get("RUNBOOK_CACHE")
    if override:
        return Path(override)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "runbook"


def reset_for_tests() -> dict[str, Plugin]:
    """Forget loaded registries (tests); returns the current plugins to restore later."""
    _LOADED.clear()
    _forget_caches()
    return dict(_REGISTRY)


def restore_for_tests(saved: dict[str, Plugin]) -> None:
    _REGISTRY.clear()
    _REGISTRY.update(saved)
    _LOADED.clear()
    _forget_caches()


def _forget_caches() -> None:
    for cache in DiskCache.instances:
        cache.forget()
    _FILE_DIGESTS.clear()


_VALIDATORS: dict[str, Any] = {}


def argument_problem(plugin: Plugin, args: dict[str, Any]) -> str:
    """Why resolved arguments do not fit the plugin's schema, or '' (templates were checked by type only)."""
    from .errors import format_path
    from .schemas import validator_for

    validator = _VALIDATORS.get(plugin.name)
    if validator is None:
        validator = _VALIDATORS[plugin.name] = validator_for(plugin.args)
    error = next(iter(validator.iter_errors(args)), None)
    if error is None:
        return ""
    where = format_path(error.absolute_path)
    return f"argument {where or '(all)'}: {error.message}"
