"""The command-line layer: each task of tasks.py calls one function here.

Functions return an exit code or raise a RunbookError; ``tasks.py`` turns errors into
exits. All printing happens here (and in the console module), never in the engine.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Sequence, TextIO

from . import conditions
from .backends import store_of
from .errors import Diagnostic, ExitCode, InputError, RunbookError, UsageError


def _project(root: Path) -> Any:
    from .project import Project

    return Project(root)


def _registry(root: Path, check: bool = False) -> Any:
    from .plugins import load

    return load(root, check=check)


def _yaml_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*.y*ml") if p.suffix in (".yaml", ".yml"))
    return [path]


def list_runbooks(root: Path, out: TextIO = sys.stdout, as_json: bool = False) -> int:
    """`runbook.list`: name, title and parameters of every runbook."""
    project = _project(root)
    rows = []
    for name in project.runbook_names():
        path = project.runbooks_dir / f"{name}.yaml"
        try:
            data = project.load(path).data
        except InputError:
            data = None
        if not isinstance(data, dict):
            rows.append({"name": name, "title": "(invalid: see `invoke runbook.validate`)", "params": []})
            continue
        found = data.get("params")
        params: dict[str, Any] = found if isinstance(found, dict) else {}
        rows.append({"name": name, "title": str(data.get("title", "")),
                     "params": [_param_label(k, v) for k, v in params.items()]})
    if as_json:
        out.write(json.dumps(rows, indent=2) + "\n")
        return ExitCode.OK
    if not rows:
        out.write(f"No runbooks in {project.runbooks_dir}.\n")
        return ExitCode.OK
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        listed = ("  [" + ", ".join(r["params"]) + "]") if r["params"] else ""
        out.write(f"{r['name']:<{width}}  {r['title']}{listed}\n")
    return ExitCode.OK


def _param_label(name: str, spec: Any) -> str:
    if not isinstance(spec, dict):
        return name
    label = f"{name}: {spec.get('type', '?')}"
    if spec.get("secret"):
        label += ", secret"
    elif "default" in spec:
        label += f" = {spec['default']!r}"
    return label


def validate(root: Path, paths: Sequence[str] = (), out: TextIO = sys.stdout) -> int:
    """`runbook.validate`: every runbook and environment (or the given files/folders)."""
    project = _project(root)
    if paths:
        given = [f for p in paths for f in _yaml_files(Path(p) if Path(p).is_absolute() else Path.cwd() / p)]
        missing = [p for p in paths if not (Path(p) if Path(p).is_absolute() else Path.cwd() / p).exists()]
        if missing:
            raise InputError([Diagnostic(m, 0, 0, "no such file or folder") for m in missing])
        seen: set[Path] = set()
        files = []
        for f in given:                 # one file reached by two paths (a symlink, a folder and a file in it) once
            real = f.resolve()
            if real not in seen:
                seen.add(real)
                files.append(f)
    else:
        files = [project.runbooks_dir / f"{n}.yaml" for n in project.runbook_names()]
        files += [project.environments_dir / f"{n}.yaml" for n in project.environment_names()]
    cache, key = _validated_cache(root, files)
    if cache is not None:
        try:
            hit = json.loads(cache.read_text()).get(key)
        except (OSError, ValueError, AttributeError):
            hit = None
        if hit:
            out.write(f"ok: {hit['runbook']} runbook(s) and {hit['environment']} environment(s) are valid\n")
            return ExitCode.OK
    from .validate import RunbookValidator, check_environment

    registry = _registry(root, check=True)
    validator = RunbookValidator(project, registry)
    diags: list[Diagnostic | str] = []
    counts = {"runbook": 0, "environment": 0}
    for file in files:
        kind = "environment" if is_environment_file(project, file) else "runbook"
        counts[kind] += 1
        if kind == "environment":
            _, found = check_environment(project, file)
        else:
            _, found = validator.check(file)
        diags.extend(found)
    if diags:
        raise InputError(sorted(set(diags), key=lambda d: (d.file, d.line, d.col, d.message) if isinstance(d, Diagnostic)
                                else (str(d), 0, 0, "")))
    if cache is not None:
        _remember_valid(cache, key, counts)
    out.write(f"ok: {counts['runbook']} runbook(s) and {counts['environment']} environment(s) are valid\n")
    return ExitCode.OK


def is_environment_file(project: Any, file: Path) -> bool:
    """An environment file wherever it lives: in a folder named ``environments`` (where it is, or
    where its link points), or a mapping without ``steps`` that has a key only environments have
    (``vars``, ``aws``, ``protected``...). Anything else is validated as a runbook."""
    if "environments" in (file.parent.name, file.resolve().parent.name):
        return True
    try:
        data = project.load(file).data
    except InputError:
        return False
    return isinstance(data, dict) and "steps" not in data and bool(set(data) & _environment_only_keys())


def _environment_only_keys() -> set[str]:
    from .schemas import load_schema

    return set(load_schema("environment").get("properties") or {}) - set(load_schema("runbook").get("properties") or {})


VALIDATED_CACHE = "validated.json"


def _validated_cache(root: Path, files: Sequence[Path]) -> tuple[Path | None, str]:
    """Where successful validations are remembered, and the key of this one.

    The key is a SHA-256 over the content of everything a verdict depends on: the files
    asked about and every YAML file beside them and in runbooks/ and environments/
    (includes and links), the schemas, the engine's and the plugins' code, and the
    Python, jsonschema and PyYAML installed. Any change makes a new key, so a stale
    "ok" cannot be printed; failures are never remembered (their messages are always fresh).
    """
    import hashlib
    import importlib.util

    from .plugins import cache_home

    here = Path(__file__).resolve().parent
    checks_dirs = [Path(root) / "checks"]       # the engine's built-ins are under ``here`` (rglob below)
    sources: set[Path] = set()
    folders = {Path(root) / "runbooks", Path(root) / "environments"} | {Path(f).resolve().parent for f in files}
    for folder in folders:
        if folder.is_dir():
            sources.update(p for p in folder.glob("*.y*ml"))
    sources.update(Path(f).resolve() for f in files)
    for folder in [Path(root) / "schemas", here / "schema"]:
        if folder.is_dir():
            sources.update(folder.glob("*.json"))
    sources.update(here.rglob("*.py"))
    for folder in checks_dirs:
        if folder.is_dir():
            sources.update(folder.glob("*.py"))
    h = hashlib.sha256(sys.version.encode())
    # the files asked about, as given and as resolved: another file of the same folder, or the same file
    # reached through a link from an environments/ folder, is another question with its own verdict
    h.update(json.dumps([[str(Path(f).absolute()), str(Path(f).resolve())] for f in files]).encode())
    for mod in ("jsonschema", "yaml", "botocore"):
        found = importlib.util.find_spec(mod)
        origin = Path(found.origin) if found is not None and found.origin else None
        if origin is not None and origin.exists():
            st = origin.stat()
            h.update(f"{mod}:{origin}:{st.st_size}:{st.st_mtime_ns}".encode())
    for path in sorted(p.resolve() for p in sources):
        try:
            data = path.read_bytes()
        except OSError:
            continue
        h.update(str(path).encode() + b"\0" + hashlib.sha256(data).digest())
    return cache_home() / VALIDATED_CACHE, h.hexdigest()


def _remember_valid(cache: Path, key: str, counts: dict[str, int]) -> None:
    from .journal import atomic_write

    try:
        try:
            known = json.loads(cache.read_text())
            known = known if isinstance(known, dict) else {}
        except (OSError, ValueError):
            known = {}
        known = dict(list(known.items())[-15:])        # the last few verdicts (branches switched back and forth)
        known[key] = counts
        cache.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(cache, json.dumps(known).encode(), durable=False)
    except OSError:
        pass


def checks(root: Path, out: TextIO = sys.stdout, as_json: bool = False) -> int:
    """`runbook.checks`: every plugin with its arguments and outputs."""
    registry = _registry(root, check=True)
    if as_json:
        out.write(json.dumps([{"name": p.name, "kind": p.kind.value, "description": p.description,
                               "args": p.args, "outputs": p.outputs, "probe": p.probe is not None,
                               "module": p.module} for p in registry.values()], indent=2) + "\n")
        return ExitCode.OK
    for plugin in registry.values():
        flags = [plugin.kind.value] + (["probe"] if plugin.probe else [])
        out.write(f"{plugin.name}  ({', '.join(flags)})  {plugin.description}\n")
        props = plugin.args.get("properties", {})
        required = set(plugin.args.get("required", []))
        for arg, schema in props.items():
            mark = "*" if arg in required else " "
            out.write(f"    {mark} {arg}: {_schema_label(schema)}\n")
        outs = plugin.outputs.get("properties", {})
        if outs:
            out.write(f"    -> {', '.join(f'{k}: {_schema_label(v)}' for k, v in outs.items())}\n")
    out.write("(* required)\n")
    return ExitCode.OK


def _schema_label(schema: Any) -> str:
    if not isinstance(schema, dict):
        return "any"
    if "enum" in schema:
        return "|".join(map(str, schema["enum"]))
    if "anyOf" in schema:
        return " or ".join(_schema_label(s) for s in schema["anyOf"])
    t = schema.get("type")
    if t == "array":
        return f"list of {_schema_label(schema.get('items', {}))}"
    return str(t or "any")


def build_plan(root: Path, name: str, env_name: str | None, cli_params: Sequence[str],
               answers_file: str | None, require_env: bool) -> Any:
    """Load, validate and resolve a runbook into a plan: the preparation's first stages, with
    nothing brought up, locked, asked or written."""
    from .prepare import PLAN_ONLY, Prepared, prepare
    from .session import Options, Session

    session = Session(root, Options(env=env_name, params=list(cli_params), answers_file=answers_file,
                                    non_interactive=True))
    p = prepare(session, Prepared(name=name, env_name=env_name, sandbox=False, require_env=require_env), PLAN_ONLY)
    return p.plan


def show(root: Path, name: str, env_name: str | None = None, params: Sequence[str] = (),
         out: TextIO = sys.stdout, as_json: bool = False) -> int:
    """`runbook.show`: the plan and every prompt id."""
    plan = build_plan(root, name, env_name, params, None, require_env=False)
    if as_json:
        out.write(json.dumps(plan.to_dict(), indent=2, default=str) + "\n")
        return ExitCode.OK
    write_plan(plan, out, show_prompts=True)
    return ExitCode.OK


def dry_run(root: Path, name: str, env_name: str | None, params: Sequence[str], answers_file: str | None,
            out: TextIO = sys.stdout, as_json: bool = False) -> int:
    """`runbook NAME --dry-run`: the fully resolved plan; nothing runs, nothing is written."""
    plan = build_plan(root, name, env_name, params, answers_file, require_env=True)
    if as_json:
        out.write(json.dumps(plan.to_dict(), indent=2, default=str) + "\n")
        return ExitCode.OK
    write_plan(plan, out, show_prompts=False)
    out.write("\nDry run: nothing was executed and nothing was written.\n")
    return ExitCode.OK


def write_plan(plan: Any, out: TextIO, show_prompts: bool) -> None:

    out.write(f"{plan.name}: {plan.title}\n")
    out.write(f"  file:        {plan.file}\n")
    out.write(f"  environment: {plan.env.name if plan.env else '(none given)'}"
              f"{' (protected)' if plan.env and plan.env.protected else ''}\n")
    out.write(f"  lock:        {plan.lock or 'none'}{'  (emergency: may take over a live lock)' if plan.emergency else ''}\n")
    out.write(f"  digest:      {plan.digest}\n")
    if plan.param_specs:
        out.write("  parameters:\n")
        for pname, spec in plan.param_specs.items():
            if pname in plan.params.secrets:
                value = "******** (secret)"
            elif pname in plan.params.values:
                value = f"{plan.params.values[pname]!r} ({plan.params.sources.get(pname, 'given')})"
            elif spec.get("secret"):
                value = f"(secret: asked at run time or RUNBOOK_PARAM_{pname.upper()})"
            else:
                value = "(asked at run time)"
            out.write(f"    {pname} = {value}\n")
    if plan.on_failure:
        after = f" after step {plan.on_failure['after']!r}" if plan.on_failure.get("after") else ""
        out.write(f"  on failure:  offer {plan.on_failure['runbook']}{after}\n")
    out.write("  steps:\n")
    for n, step in enumerate(plan.steps, 1):
        cond = [f"{c.key} {conditions.text(c.value)}" for c in step.conditions] \
            + ([f"ends the run, {step.end}"] if step.end else [])
        extra = f"  [{'; '.join(cond)}]" if cond else ""
        out.write(f"  {n:>3}. {step.id}: {step.title}{extra}\n")
        if step.each_of and all(s.each_of != step.each_of for s in plan.steps[:n - 1]):
            out.write(f"         for each {step.data.get('for_each')!r} (concurrency {step.data.get('concurrency', 1)}, "
                      f"max_failures {step.data.get('max_failures', 0)}): ids {step.each_of}[i]\n")
        if step.approval is not None:
            a = step.approval
            roles = f", roles {', '.join(a['roles'])}" if a.get("roles") else ""
            pr = f" on PR {a['pr']}" if "pr" in a else ""
            out.write(f"         approval ({a['source']}{pr}): at least {a.get('min', 1)}{roles}\n")
        elif step.run is not None:
            out.write(f"         runs {step.run['runbook']} as a linked run with {step.run.get('with', {})}\n")
        for item in step.items:
            label = f"manual: {item.manual}" if item.manual is not None else \
                f"{item.uses} {json.dumps(item.data.get('with', {}), default=str)}"
            iid = f"{item.data['id']}: " if item.data.get("id") else ""
            out.write(f"         {item.section.value:<8} {iid}{label}\n")
            if item.probe is not None:      # how a resume after a crash finds out whether it took effect
                probe = item.probe
                out.write(f"         {'probe':<8} {probe.get('uses')} "
                          f"{json.dumps(probe.get('with', {}), default=str)}\n")
            if item.data.get("wait"):
                wait = item.data["wait"]
                out.write(f"         {'wait':<8} until it passes: up to {wait.get('timeout')} s, every "
                          f"{wait.get('interval', 5)} s\n")
        if step.confirm:
            out.write(f"         confirm  {step.confirm}\n")
    if show_prompts:
        out.write("  prompt ids (for an answers file):\n")
        for p in plan.prompts():
            out.write(f"    {p.id}  ({p.kind})\n")


_QUICK_EXIT: list[bool] = []


def quick_exit() -> None:
    """Let this command's process end without the interpreter's final garbage collections.

    At exit Python clears every module and collects garbage over every object still alive;
    once a run has loaded boto3 and its service models that costs 0.1-0.2 s of the operator's
    time for nothing (the operating system takes the memory back anyway). ``gc.freeze`` as the
    last exit handler skips those passes; the other exit handlers still run before it and
    objects are still freed by reference counting. Nothing depends on the collections: every
    write the engine makes is complete when it returns (journals fsynced, files written whole,
    locks released explicitly). Called once per command process, by tasks.py.
    """
    if _QUICK_EXIT:
        return
    import atexit
    import gc

    atexit.register(gc.freeze)    # registered first, so it runs last
    _QUICK_EXIT.append(True)


def _from_here(path: Path) -> str:
    """A path as a command typed here must give it: relative to the current folder (quoted for a shell)."""
    import os
    import shlex

    return shlex.quote(os.path.relpath(path))


def report_error(exc: RunbookError, err: TextIO = sys.stderr) -> int:
    """Print an error the way users see it; return its exit code."""
    for line in exc.lines():
        err.write(f"{line}\n")
    return exc.exit_code




# -- running ---------------------------------------------------------------------------

def sandbox_up(home: Path, env: Any, console: Any) -> None:
    """Bring the sandbox up for a run on a sandbox environment (the command line's job: it starts
    a process and sets this process's environment; validate, show and --dry-run never come here)."""
    from .sandbox import control

    spec = env.data["sandbox"]
    scenario = os.environ.get("RUNBOOK_SANDBOX_SCENARIO") or spec.get("scenario", "healthy")
    state = control.running(home)
    if state is None:
        if console is not None:
            console.line(f"Starting the sandbox (scenario {scenario}) under {home}/sandbox ...")
        state = control.up(home, scenario, review_delay=float(spec.get("review_delay", 1)))
    env.overlay = control.overlay(home)
    operator_token = next(t for t, login in state["github"]["tokens"].items()
                          if login == state["github"]["operator"])
    api = env.data.get("api") or {}
    for var, value in (((env.data.get("github") or {}).get("token_env"), operator_token),
                       (api.get("token_env"), "sandbox-api-token"),
                       (api.get("login_password_env"), "sandbox-password")):
        if var:
            os.environ.setdefault(var, value)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")


def _session(root: Path, options: Any, person: bool = True) -> Any:
    from .console import Console
    from .session import Session

    console = Console()
    interactive = None
    if person and not options.non_interactive and sys.stdin.isatty():
        from .tui import QuestionaryPrompter

        interactive = QuestionaryPrompter(show=console.show)
    from .faults import Faults

    # the fault hook of the reliability suite and the tests: read here, at the command line, only
    return Session(root, options, console=console, person=interactive, faults=Faults.from_env(os.environ),
                   sandbox_up=sandbox_up)


def execute(root: Path, name: str, env: str | None = None, params: Sequence[str] = (), answers_file: str | None = None,
            yes: bool = False, non_interactive: bool = False, resume: bool = False, wait_lock: str | None = None,
            verbose: bool = False) -> int:
    """`invoke runbook NAME`: run (or resume) a runbook."""
    from .session import Options, parse_duration

    options = Options(env=env, params=list(params), answers_file=answers_file, yes=yes,
                      non_interactive=non_interactive, resume=resume, wait_lock=parse_duration(wait_lock),
                      verbose=verbose)
    return _session(root, options).start(name)


def resume(root: Path, run_id: str | None, answers_file: str | None = None, yes: bool = False,
           non_interactive: bool = False, params: Sequence[str] = (), env: str | None = None,
           verbose: bool = False) -> int:
    """`invoke runbook.resume [--run-id ID]`: continue a run where it stopped."""
    from .session import Options

    options = Options(env=env, answers_file=answers_file, yes=yes, non_interactive=non_interactive,
                      params=list(params), verbose=verbose)
    session = _session(root, options)
    if env:
        from .plan import load_environment

        session.use_backend(load_environment(session.project, env).data)
    return session.resume(run_id or session.unfinished())


def status(root: Path, out: TextIO = sys.stdout, as_json: bool = False, env: str | None = None) -> int:
    """`invoke runbook.status [--env E]`: active, parked and interrupted runs, and the locks they hold."""
    from .review import shown_status, unfinished_states

    store = store_of(root, env)
    locks = {h.run_id: h for h in store.locks.all()}
    rows = []
    for st in unfinished_states(store):
        shown = shown_status(st.status.value, st.run_id, st.parent, locks)
        rows.append({"run": st.run_id, "runbook": st.runbook, "environment": st.env, "status": shown,
                     "operators": st.operators, "started": st.started, "updated": st.updated, "reason": st.reason})
    held = [{"key": h.key, "run": h.run_id, "runbook": h.runbook, "operator": h.operator, "host": h.host,
             "pid": h.pid, "since": h.since, "epoch": h.epoch, "stale": h.is_stale()} for h in store.locks.all()]
    if as_json:
        out.write(json.dumps({"runs": rows, "locks": held}, indent=2) + "\n")
        return ExitCode.OK
    if not rows and not held:
        out.write("No unfinished runs and no locks held.\n")
        return ExitCode.OK
    out.write("Unfinished runs:\n" if rows else "No unfinished runs.\n")
    for r in rows:
        env = f" in {r['environment']}" if r["environment"] else ""
        reason = f" -- {r['reason']}" if r["reason"] else ""
        out.write(f"  {r['run']}  {r['runbook']}{env}  {r['status']}  by {', '.join(r['operators'])}  "
                  f"since {r['started']}{reason}\n")
    out.write("Locks:\n" if held else "No locks held.\n")
    for h in held:
        state = "STALE (process gone)" if h["stale"] else "live"
        out.write(f"  {h['key']}: run {h['run']} ({h['runbook']}) by {h['operator']} on {h['host']} pid {h['pid']} "
                  f"since {h['since']}  [{state}]\n")
    return ExitCode.OK


def _admin_session(root: Path, env: str | None) -> Any:
    from .session import Options

    session = _session(root, Options(env=env, non_interactive=True), person=False)
    session.store = store_of(root, env)
    return session


def abandon(root: Path, run_id: str, reason: str, out: TextIO = sys.stdout, env: str | None = None) -> int:
    session = _admin_session(root, env)
    session.abandon(run_id, reason)
    out.write(f"Run {session.store.find(run_id)} abandoned: {reason}\n")
    return ExitCode.OK


def unlock(root: Path, key: str, reason: str, out: TextIO = sys.stdout, env: str | None = None) -> int:
    session = _admin_session(root, env)
    holder = session.unlock(key, reason)
    out.write(f"Lock {key!r} freed (was run {holder.run_id} by {holder.operator}); the ledger records why.\n")
    return ExitCode.OK


def audit_verify(root: Path, run_id: str | None = None, out: TextIO = sys.stdout, env: str | None = None) -> int:
    """`invoke audit.verify [--run-id ID] [--env E]`: the chains and the ledger (and, on the team
    backend, its objects and versions); names the first bad record."""
    from .backends import commands

    return commands.audit_verify(root, run_id, env, out=out)


# -- stores ------------------------------------------------------------------------------

def docs(root: Path, name: str | None = None, check: bool = False, out: TextIO = sys.stdout) -> int:
    """`invoke runbook.docs [--name NAME]`: write docs/NAME.md for every runbook (or one)."""
    from .docs import render
    from .validate import RunbookValidator

    project = _project(root)
    registry = _registry(root)
    validator = RunbookValidator(project, registry)
    names = [name] if name else project.runbook_names()
    stale = []
    for rb in names:
        checked, diags = validator.check(project.runbook_path(rb))
        if diags or checked is None:
            raise InputError(diags)
        text = render(checked.data, registry)
        target = root / "docs" / f"{rb}.md"
        if check:
            if not target.is_file() or target.read_text(encoding="utf-8") != text:
                stale.append(str(target.relative_to(root)))
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        out.write(f"wrote {target.relative_to(root)}\n")
    if stale:
        out.write("stale (run `invoke runbook.docs`): " + ", ".join(stale) + "\n")
        return ExitCode.FAILED
    return ExitCode.OK


def import_guide(root: Path, path: str, name: str, force: bool = False, out: TextIO = sys.stdout) -> int:
    """`invoke runbook.import --path GUIDE.md --name NAME [--force]`: a Markdown runbook becomes
    runbooks/NAME.yaml (one step per section, one manual item per list item, code kept, never run)."""
    from .importer import check_name, convert, decode, dump
    from .journal import atomic_write
    from .validate import RunbookValidator

    problem = check_name(name)
    if problem:
        raise UsageError(f"<command line>: {problem} (at --name)")
    source = Path(path) if Path(path).is_absolute() else Path.cwd() / path
    if not source.exists():
        raise InputError([Diagnostic(path, 0, 0, "no such file")])
    if not source.is_file():
        raise InputError([Diagnostic(path, 0, 0, "not a file (a Markdown guide is one file)")])
    try:
        raw = source.read_bytes()
    except OSError as exc:
        raise InputError([Diagnostic(path, 0, 0, f"cannot be read ({exc.strerror or exc})")]) from None
    data = convert(decode(raw, path), name, path)
    project = _project(root)
    target = project.runbooks_dir / f"{name}.yaml"
    shown = project.display(target)
    if target.exists() and not force:
        raise UsageError(f"{shown}: already exists; nothing was written (add --force to overwrite it)")
    previous = target.read_bytes() if target.exists() else None
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, dump(data).encode("utf-8"))
    _, diags = RunbookValidator(project, _registry(root)).check(target)
    if diags:       # the importer's own mistake: put back what was there and say what is wrong
        if previous is None:
            target.unlink()
        else:
            atomic_write(target, previous)
        raise InputError(diags)
    items = sum(len(step["do"]) for step in data["steps"])
    out.write(f"wrote {shown}: {len(data['steps'])} steps, {items} manual items from {path} (code is kept as "
              f"text, never run)\nnext: invoke runbook.validate --path {_from_here(target)}; "
              f"invoke runbook {name} --dry-run; invoke runbook.docs --name {name}\n")
    return ExitCode.OK
