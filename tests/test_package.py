"""Another team adopts the engine: the wheel builds offline and runs from its install folder, never from
this source tree; ``python -m runbook init`` writes a working project; the plugin API is one module."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from conftest import REPO

BUILTIN = REPO / "runbook" / "builtin"
GUIDE = """# Restart the worker

Restart the queue worker when it stops taking jobs.

## Before

- Tell #ops you are restarting it
- Check the queue depth:

  ```
  redis-cli llen jobs
  ```

## Restart

1. Stop the worker
2. Start it again
"""
PLUGIN = '''"""Our own check: a file in the project says the ticket is open."""

from runbook.api import Context, Outcome, check


@check("team.ticket_open", args={"properties": {"id": {"type": "string"}}, "required": ["id"]},
       outputs={"type": "object", "properties": {"id": {"type": "string"}}})
def ticket_open(ctx: Context) -> Outcome:
    """The ticket is open (tickets/ID exists)."""
    if ctx.path(f"tickets/{ctx.args['id']}").exists():
        return Outcome.ok(f"ticket {ctx.args['id']} is open", id=ctx.args["id"])
    return Outcome.fail(f"ticket {ctx.args['id']}: expected tickets/{ctx.args['id']}, found none")
'''


def environment(site: list[str], home: Path) -> dict[str, str]:
    """A child environment with exactly these import roots (and no site customisation: ``python -S``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNBOOK_", "PYTHON"))}
    env.update({"PYTHONPATH": os.pathsep.join(site), "RUNBOOK_HOME": str(home), "NO_COLOR": "1",
                "RUNBOOK_OPERATOR": "team@example.com", "RUNBOOK_CACHE": str(home / "cache")})
    return env


def py(args: list[str], cwd: Path, env: dict[str, str], isolated: bool) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *(["-S"] if isolated else []), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)


def adopt(project: Path, site: list[str], home: Path, isolated: bool) -> None:
    """From an empty folder: init, validate, run the example, add a plugin that is listed, import a guide."""
    env = environment(site, home)
    project.parent.mkdir(parents=True, exist_ok=True)
    made = py(["-m", "runbook", "init", str(project)], project.parent, env, isolated)
    assert made.returncode == 0, made.stderr
    assert "invoke runbook example --env local" in made.stdout
    assert (project / "checks").is_dir() and not any((project / "checks").iterdir())
    for name in ("runbook", "environment", "answers", "audit-event"):
        assert (project / "schemas" / f"{name}.schema.json").is_file()

    def invoke(*args: str) -> subprocess.CompletedProcess:
        return py(["-m", "invoke", *args], project, env, isolated)

    listed = invoke("--list")
    assert listed.returncode == 0, listed.stderr
    for name in ("runbook.validate", "runbook.import", "audit.show", "backend.init"):
        assert name in listed.stdout
    assert "bench" not in listed.stdout and "reliability" not in listed.stdout
    assert invoke("runbook.validate").returncode == 0
    run = invoke("runbook", "example", "--env", "local", "--answers", "answers/example.yaml", "--non-interactive")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "hello from the example runbook (our team)" in run.stdout

    # a plugin of the team's own, in a file named like a built-in module: found, and shadowing nothing
    (project / "checks" / "shell.py").write_text(PLUGIN)
    checks = invoke("runbook.checks")
    assert checks.returncode == 0, checks.stderr
    assert "team.ticket_open" in checks.stdout and "shell.run" in checks.stdout
    again = invoke("runbook", "example", "--env", "local", "--answers", "answers/example.yaml", "--non-interactive")
    assert again.returncode == 0, again.stdout + again.stderr

    (project / "restart-worker.md").write_text(GUIDE)
    imported = invoke("runbook.import", "--path", "restart-worker.md", "--name", "restart-worker")
    assert imported.returncode == 0, imported.stdout + imported.stderr
    assert "next: invoke runbook.validate --path runbooks/restart-worker.yaml; " in imported.stdout
    for command in imported.stdout.split("next: ", 1)[1].strip().split("; "):     # as printed, typed here
        typed = invoke(*command.split()[1:])
        assert typed.returncode == 0, (command, typed.stdout, typed.stderr)
    text = (project / "runbooks" / "restart-worker.yaml").read_text()
    assert "redis-cli llen jobs" in text and "Stop the worker" in text
    assert invoke("runbook.validate").returncode == 0
    dry = invoke("runbook", "restart-worker", "--dry-run")
    assert dry.returncode == 0 and "nothing was executed" in dry.stdout, dry.stdout + dry.stderr


def test_init_writes_a_project_that_validates_runs_takes_a_plugin_and_imports_a_guide(tmp_path: Path) -> None:
    """The same walk-through from this source tree (fast; the wheel test below repeats it installed)."""
    adopt(tmp_path / "ops", [str(REPO)] + sysconfig.get_paths()["purelib"].split(os.pathsep), tmp_path / "home",
          isolated=False)


def test_init_refuses_to_overwrite_and_explains_itself(tmp_path: Path) -> None:
    env = environment([str(REPO)], tmp_path / "home")
    help_ = py(["-m", "runbook", "init", "--help"], tmp_path, env, False)
    assert help_.returncode == 0 and "Existing files are never overwritten" in help_.stdout
    project = tmp_path / "ops"
    (project / "runbooks").mkdir(parents=True)
    (project / "runbooks" / "example.yaml").write_text("name: mine\n")
    (project / "tasks.py").write_text("# ours\n")
    refused = py(["-m", "runbook", "init", str(project)], tmp_path, env, False)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        f"{project}: would overwrite runbooks/example.yaml, tasks.py; init writes only into a folder without "
        "them (move them away, or init another folder)"]
    assert (project / "tasks.py").read_text() == "# ours\n" and not (project / "README.md").exists()


def test_shipped_plugins_import_only_the_plugin_api() -> None:
    """A built-in plugin (and this project's own) imports ``runbook.api`` and nothing else of the engine: what
    a team's plugin can import is enough to write every one of them."""
    found = []
    for file in sorted(BUILTIN.glob("*.py")) + sorted((REPO / "checks").glob("*.py")):
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                    and node.module.split(".")[0] == "runbook" and node.module != "runbook.api":
                found.append(f"{file.name}: from {node.module} import ...")
            elif isinstance(node, ast.Import):
                found += [f"{file.name}: import {a.name}" for a in node.names
                          if a.name.split(".")[0] == "runbook" and a.name != "runbook.api"]
            elif isinstance(node, ast.ImportFrom) and node.level == 1 and file.parent == BUILTIN:
                known = {p.stem for p in BUILTIN.glob("*.py")}
                found += [f"{file.name}: from . import {a.name}" for a in node.names
                          if (node.module or a.name) not in known]
    assert found == []


def test_without_moto_there_are_no_sandbox_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    import runbook.tasks as engine_tasks

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "moto" else real(name, *a))
    try:
        reloaded = importlib.reload(engine_tasks)
        assert "sandbox" not in reloaded.ns.collections and "runbook" in reloaded.ns.collections
    finally:
        monkeypatch.undo()
        importlib.reload(engine_tasks)
    assert "sandbox" in engine_tasks.ns.collections


def test_the_wheel_builds_offline_and_runs_from_its_install_folder(tmp_path: Path) -> None:
    source = tmp_path / "source"
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        src, dst = REPO / name, source / name
        if not src.exists() and not src.is_symlink():
            continue                                    # deleted in the working tree
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            os.symlink(os.readlink(src), dst)
        else:
            shutil.copy2(src, dst)
    dist = tmp_path / "dist"
    built = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--wheel", "--outdir", str(dist),
                            str(source)], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    wheel = next(dist.glob("*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"runbook", next(n.split("/")[0] for n in names
                                                                if n.split("/")[0].endswith(".dist-info"))}
    assert "runbook/builtin/shell.py" in names and "runbook/schema/runbook.schema.json" in names
    assert "runbook/template/tasks.py" in names and "runbook/api.py" in names
    assert not any(n.startswith("checks/") for n in names)
    extras = next(zipfile.ZipFile(wheel).read(n).decode() for n in names if n.endswith("/METADATA"))
    assert re.search(r"^Provides-Extra: sandbox$", extras, re.M)

    target = tmp_path / "site"
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target",
                                str(target), str(wheel)], capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr
    deps = sysconfig.get_paths()["purelib"]
    env = environment([str(target), deps], tmp_path / "home")
    # the engine comes from the install folder, and no entry of the path holds this source tree's package (the
    # dependencies may live in a virtualenv inside the checkout, as in CI: that is not the source tree)
    where = py(["-c", "import os, runbook, sys; print(runbook.__file__); "
                      "print([p for p in sys.path if os.path.isfile(os.path.join(p or '.', 'runbook', '__init__.py'))])"],
               tmp_path, env, True)
    assert where.returncode == 0, where.stderr
    assert where.stdout.splitlines() == [str(target / "runbook" / "__init__.py"), str([str(target)])]
    adopt(tmp_path / "team" / "ops", [str(target), deps], tmp_path / "home", isolated=True)


def test_the_readmes_example_plugin_and_its_test_work_in_an_init_project(tmp_path: Path) -> None:
    """The README's complete plugin and its test, copied as a team would, pass in a fresh project."""
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("### Plugins\n"):]
    plugin, test = re.findall(r"```python\n(.*?)```", section, re.S)[:2]
    env = environment([str(REPO)] + sysconfig.get_paths()["purelib"].split(os.pathsep), tmp_path / "home")
    project = tmp_path / "ops"
    assert py(["-m", "runbook", "init", str(project)], tmp_path, env, False).returncode == 0
    (project / "checks" / "ticket.py").write_text(plugin)
    (project / "tests").mkdir()
    (project / "tests" / "test_ticket.py").write_text(test)
    done = py(["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], project, env, False)
    assert done.returncode == 0 and "1 passed" in done.stdout, done.stdout + done.stderr
    listed = py(["-m", "invoke", "runbook.checks"], project, env, False)
    assert "team.ticket_open" in listed.stdout
