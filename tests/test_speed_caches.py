"""The caches that keep a run's start-up short, and the invalidation each one depends on.

Plugin versions are remembered under the cache folder (RUNBOOK_CACHE) by content
digests; compiled modules are written again although invoke turns that off. No timing is
asserted anywhere: each test fails when its invalidation is broken.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import linecache
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO
from helpers import invoke
from runbook import plugins
from runbook.model import PluginKind
from runbook.plugins import Plugin, save_caches


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("RUNBOOK_CACHE", str(folder))
    plugins._forget_caches()
    yield folder
    plugins._forget_caches()


def new_process() -> None:
    """Forget everything this process remembers, keep the cache folder (as a new command would)."""
    plugins._forget_caches()
    linecache.clearcache()


def same_size_edit(path: Path, old: str, new: str) -> None:
    """Change the file without changing its size or its mtime (a quick edit, a branch switch)."""
    assert len(old) == len(new)
    st = path.stat()
    path.write_text(path.read_text().replace(old, new))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns


def import_file(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PLUGIN_SOURCE = '''
def helper(x):
    return x


def probe_me(ctx):
    return None


def plugin(ctx):
    """A plugin whose summary is the letter at the end."""
    return helper("answer-a")
'''


def make_plugin(module: Any) -> Plugin:
    return Plugin("t.plugin", PluginKind.ACTION, module.plugin, {"type": "object"}, {"type": "object"},
                  probe=module.probe_me)


# -- plugin versions ---------------------------------------------------------------------------

def test_a_plugin_version_is_remembered_and_used(tmp_path: Path, cache: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "plug_remembered.py"
    file.write_text(PLUGIN_SOURCE)
    plugin = make_plugin(import_file(file, "plug_remembered"))
    first = plugin.version
    assert first == plugins._version(inspect.getsource(plugin.func) + inspect.getsource(plugin.probe), plugin)
    save_caches()
    assert len(json.loads((cache / "plugin-versions.json").read_text())["entries"]) == 1

    new_process()
    monkeypatch.setattr(plugins, "_source_of", lambda *a: pytest.fail("the remembered version was not used"))
    assert plugin.version == first


@pytest.mark.parametrize("part", ["plugin", "probe_me"])
def test_a_same_size_edit_with_the_same_mtime_makes_a_new_version(tmp_path: Path, cache: Path, part: str) -> None:
    """The key is the file's content, not its size and mtime: an edit that keeps both still counts."""
    file = tmp_path / f"plug_edit_{part}.py"
    file.write_text(PLUGIN_SOURCE)
    before = make_plugin(import_file(file, f"plug_edit_{part}_1")).version
    save_caches()

    new_process()
    if part == "plugin":
        same_size_edit(file, 'helper("answer-a")', 'helper("answer-b")')
    else:
        same_size_edit(file, "return None", "return 1234")
    module = import_file(file, f"plug_edit_{part}_2")
    plugin = make_plugin(module)
    fresh = plugins._version(inspect.getsource(module.plugin) + inspect.getsource(module.probe_me), plugin)
    assert plugin.version == fresh != before


def test_a_changed_schema_makes_a_new_version(tmp_path: Path, cache: Path) -> None:
    file = tmp_path / "plug_schema.py"
    file.write_text(PLUGIN_SOURCE)
    module = import_file(file, "plug_schema")
    plugin = make_plugin(module)
    before = plugin.version
    save_caches()
    new_process()
    changed = Plugin(plugin.name, plugin.kind, plugin.func, {"type": "object", "required": ["x"]}, plugin.outputs,
                     probe=plugin.probe)
    assert changed.version != before


PROJECT_PLUGIN = '''from runbook.plugins import Context, Outcome, check


@check("mine.letter", args={"properties": {}})
def letter(ctx: Context) -> Outcome:
    return Outcome.ok("answer-a")
'''

PROJECT_RUNBOOK = '''name: one
title: One step with a project plugin
lock: none
steps:
  - id: only
    title: Only
    verify:
      - id: letter
        uses: mine.letter
'''


def test_an_edited_project_plugin_changes_the_plan_digest_and_runs_its_new_code(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Across processes sharing one cache folder, with compiled modules written: a same-size,
    same-mtime edit of a project plugin gives a new version, a new plan digest, and new behaviour."""
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
    root = tmp_path / "project"
    (root / "runbooks").mkdir(parents=True)
    (root / "environments").mkdir()
    (root / "checks").mkdir()
    (root / "runbooks" / "one.yaml").write_text(PROJECT_RUNBOOK)
    plugin_file = root / "checks" / "mine.py"
    plugin_file.write_text(PROJECT_PLUGIN)
    env = {"RUNBOOK_CACHE": str(tmp_path / "cache"), "PYTHONPYCACHEPREFIX": str(tmp_path / "pyc")}

    def plan() -> dict[str, Any]:
        out = invoke("runbook.show", "one", "--json", root=root, home=tmp_path / "home", env=env)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def run() -> str:
        out = invoke("runbook", "one", "--non-interactive", root=root, home=tmp_path / "home", env=env)
        assert out.returncode == 0, out.stdout + out.stderr
        return out.stdout

    before = plan()
    assert "answer-a" in run()
    assert json.loads((tmp_path / "cache" / "plugin-versions.json").read_text())["entries"]
    same_size_edit(plugin_file, "answer-a", "answer-b")
    after = plan()
    assert after["plugins"]["mine.letter"] != before["plugins"]["mine.letter"]
    assert after["digest"] != before["digest"]
    output = run()
    assert "answer-b" in output and "answer-a" not in output


# -- compiled modules and the process exit -----------------------------------------------------

def _compiled(prefix: Path) -> set[str]:
    """The engine's modules compiled under ``prefix`` (a package by its folder's name)."""
    return {p.parent.name if p.name.startswith("__init__.") else p.name.split(".")[0]
            for p in prefix.rglob("*.pyc") if "runbook" in p.parts}


def test_commands_write_compiled_modules_unless_told_not_to(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """invoke turns writing .pyc files off; tasks.py gives the interpreter its own setting back."""
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
    env = {"PYTHONPYCACHEPREFIX": str(tmp_path / "pyc"), "RUNBOOK_CACHE": str(tmp_path / "cache")}
    env_off = {**env, "PYTHONPYCACHEPREFIX": str(tmp_path / "pyc-off"), "PYTHONDONTWRITEBYTECODE": "1"}
    for settings in (env, env_off):
        out = invoke("runbook.validate", root=REPO, home=tmp_path / "home", env=settings)
        assert out.returncode == 0, out.stderr
    assert {"cli", "validate", "schemas", "plugins"} <= _compiled(tmp_path / "pyc")
    assert _compiled(tmp_path / "pyc-off") == set()


def test_quick_exit_freezes_the_heap_last_and_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import atexit
    import gc

    from runbook import cli

    registered: list[Any] = []
    monkeypatch.setattr(atexit, "register", registered.append)
    monkeypatch.setattr(cli, "_QUICK_EXIT", [])
    cli.quick_exit()
    cli.quick_exit()
    assert registered == [gc.freeze]


def test_a_command_still_flushes_and_exits_with_its_code(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "invoke", "runbook", "no-such-runbook"], cwd=REPO,
                         capture_output=True, text=True,
                         env={**os.environ, "RUNBOOK_HOME": str(tmp_path / "home"),
                              "RUNBOOK_CACHE": str(tmp_path / "cache")})
    assert out.returncode == 2 and "no-such-runbook" in out.stderr
    listing = subprocess.run([sys.executable, "-m", "invoke", "runbook.list"], cwd=REPO, capture_output=True,
                             text=True, env={**os.environ, "RUNBOOK_HOME": str(tmp_path / "home")})
    assert listing.returncode == 0 and "rollback-fast" in listing.stdout
