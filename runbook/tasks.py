"""The engine's invoke tasks, for any project: ``runbook.*``, ``audit.*``, ``backend.*`` (and
``sandbox.*`` with the ``[sandbox]`` extra). A project's ``tasks.py`` is thin:

    from pathlib import Path
    from runbook.tasks import namespace
    ns = namespace(Path(__file__).resolve().parent)

Nothing heavy is imported here: each task imports what it needs when it runs, so
``invoke --list`` stays as fast as invoke itself.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any, Callable

from invoke import Collection, Task, task
from invoke.exceptions import Exit

# invoke switches off writing compiled modules (unless `--write-pyc`) before it loads a tasks file, so
# every module a task imports - the engine, its plugins, jsonschema - would be compiled from source on
# every command (about 0.1 s of a run). Give the interpreter its own setting back: -B and
# PYTHONDONTWRITEBYTECODE still turn writing off.
sys.dont_write_bytecode = bool(sys.flags.dont_write_bytecode)


_HERE: Path | None = None      # the folder of the project's tasks.py (set by ``namespace``)


def _root() -> Path:
    from .project import project_root

    return project_root(_HERE)


def _call(fn: Callable[..., int], *args: Any, **kwargs: Any) -> None:
    """Run one engine command; turn its errors into a message and an exit code."""
    from runbook.cli import quick_exit, report_error
    from runbook.errors import RunbookError

    quick_exit()
    try:
        code = fn(_root(), *args, **kwargs)
    except RunbookError as exc:
        raise Exit(code=report_error(exc)) from None
    except BrokenPipeError:   # output piped into `head`: stop quietly
        import os
        import sys

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return
    if code:
        raise Exit(code=code)


class _SameFlags(Task):
    """``-n`` is ``--non-interactive`` here as on ``runbook.resume`` (invoke would give it to the
    positional NAME, which needs no flag)."""

    def get_arguments(self, ignore_unknown_help: bool | None = None) -> list[Any]:
        args = super().get_arguments(ignore_unknown_help)
        for arg in args:
            if arg.name == "name":
                arg.names = tuple(n for n in arg.names if len(n) > 1)
            elif arg.name == "non_interactive":
                arg.names = ("non-interactive", "n")
        return args


@task(klass=_SameFlags, default=True, positional=["name"], iterable=["param"], help={
    "name": "the runbook to run (see `invoke runbook.list`)",
    "env": "environment from environments/ (production, staging, sandbox, ...)",
    "param": "a parameter as NAME=VALUE; repeat for several (secrets: RUNBOOK_PARAM_NAME or the prompt)",
    "answers": "answers file (schemas/answers.schema.json) for unattended runs",
    "yes": "answer confirmations and manual items with yes (never on protected environments)",
    "non_interactive": "never prompt; park (exit 4) when a person is needed",
    "dry_run": "print the fully resolved plan; run nothing, write nothing",
    "resume": "resume the one unfinished run of this runbook in this environment",
    "wait_lock": "wait up to DURATION (e.g. 10m) for the lock instead of exiting 3",
    "json": "with --dry-run: the plan as JSON",
    "verbose": "show each command's output as it is written (redacted)",
})
def run(c: Any, name: str, env: str | None = None, param: list[str] | None = None, answers: str | None = None,
        yes: bool = False, non_interactive: bool = False, dry_run: bool = False, resume: bool = False,
        wait_lock: str | None = None, json: bool = False, verbose: bool = False) -> None:
    """Run a runbook step by step.

    invoke runbook NAME [--env ENV] [--param K=V]... [--answers FILE] [--yes]
                        [--non-interactive] [--dry-run] [--resume] [--wait-lock 10m]

    invoke runbook production-release --env sandbox
    invoke runbook production-release --env production --param version=v1.4.0
    invoke runbook production-release --env sandbox --resume       (the unfinished run)
    invoke runbook.resume --run-id ID                              (any run, by id)
    invoke runbook.list                                            (the runbooks and their parameters)

    Exit: 0 succeeded, 1 failed or rolled back, 2 invalid input, 3 locked, 4 parked (needs a
    person), 130 interrupted. A flag invoke does not know, or a missing NAME, is invoke's own
    error (exit 1): `invoke --help runbook` shows this page.
    """
    from runbook import cli

    if dry_run:
        _call(cli.dry_run, name, env, param or [], answers, as_json=json)
        return
    _call(cli.execute, name, env=env, params=param or [], answers_file=answers, yes=yes,
          non_interactive=non_interactive, resume=resume, wait_lock=wait_lock, verbose=verbose)


@task(name="list", help={"json": "print JSON"})
def list_(c: Any, json: bool = False) -> None:
    """List the project's runbooks with their titles and parameters."""
    from runbook import cli

    _call(cli.list_runbooks, as_json=json)


@task(iterable=["path"], help={"path": "a runbook or environment file, or a folder; repeat for several "
                                        "(default: every runbook and environment of the project)"})
def validate(c: Any, path: list[str] | None = None) -> None:
    """Validate runbooks and environments; every error at once as FILE:LINE:COL: message (at path)."""
    from runbook import cli

    _call(cli.validate, path or [])


@task(positional=["name"], iterable=["param"], help={
    "name": "the runbook", "env": "resolve against this environment", "param": "NAME=VALUE",
    "json": "print the plan as JSON"})
def show(c: Any, name: str, env: str | None = None, param: list[str] | None = None, json: bool = False) -> None:
    """Show a runbook's resolved plan and every prompt id an answers file can use."""
    from runbook import cli

    _call(cli.show, name, env, param or [], as_json=json)


@task(help={"json": "print JSON with the full argument and output schemas"})
def checks(c: Any, json: bool = False) -> None:
    """List every check and action plugin with its arguments and outputs."""
    from runbook import cli

    _call(cli.checks, as_json=json)


@task(name="docs", help={"name": "one runbook (default: all)", "check": "only report guides that are stale"})
def docs_(c: Any, name: str | None = None, check: bool = False) -> None:
    """Write docs/NAME.md, a guide a person can follow without the engine, for every runbook."""
    from runbook import cli

    _call(cli.docs, name, check)


@task(name="import", help={
    "path": "the Markdown guide (a wiki page saved as .md)",
    "name": "the new runbook's name: runbooks/NAME.yaml (lowercase letters, digits and '-', starting with a letter)",
    "force": "overwrite an existing runbooks/NAME.yaml"})
def import_(c: Any, path: str, name: str, force: bool = False) -> None:
    """Turn a Markdown runbook into runbooks/NAME.yaml: the first step from a wiki page to automation.

    invoke runbook.import --path GUIDE.md --name NAME [--force]

    Each heading becomes a step (its title; its id a slug of it); each list item or numbered
    instruction a manual item (its id a slug of its first words, the same on every import);
    code blocks, tables and paragraphs are kept verbatim as instructions and never run; nested
    list items and the code under an item stay in that item's text; a section without a list
    gets one manual item confirming it. The H1 is the title, the text before the first step
    the description. `${` is written `$${` so nothing reads as a template.

    invoke runbook.import --path wiki/deploy.md --name deploy-to-production
    invoke runbook deploy-to-production --dry-run --env staging

    Exit 2, nothing written: a bad NAME, a guide that is missing, empty, not UTF-8 or has
    neither headings nor list items, or an existing runbooks/NAME.yaml without --force.
    """
    from runbook import cli

    _call(cli.import_guide, path, name, force=force)


runbook_ns = Collection("runbook", run, list_, validate, show, checks, docs_, import_)
ns = Collection()
ns.add_collection(runbook_ns)


@task(name="resume", positional=[], iterable=["param"], help={
    "run_id": "the run (any unique prefix); default: the only unfinished run",
    "env": "the environment (selects its team backend, if it names one)",
    "answers": "answers file", "yes": "answer confirmations with yes",
    "non_interactive": "never prompt", "param": "secret parameters cannot be given here; use RUNBOOK_PARAM_*",
    "verbose": "show each command's output as it is written (redacted)"})
def resume(c: Any, run_id: str | None = None, answers: str | None = None, yes: bool = False,
           non_interactive: bool = False, param: list[str] | None = None, env: str | None = None,
           verbose: bool = False) -> None:
    """Resume an interrupted, parked or failed run exactly where it stopped (its failed step starts again)."""
    from runbook import cli

    _call(cli.resume, run_id, answers_file=answers, yes=yes, non_interactive=non_interactive, params=param or [],
          env=env, verbose=verbose)


@task(help={"json": "print JSON", "env": "the environment (selects its team backend, if it names one)"})
def status(c: Any, json: bool = False, env: str | None = None) -> None:
    """Show active, parked and interrupted runs and the locks they hold: who is in production now."""
    from runbook import cli

    _call(cli.status, as_json=json, env=env)


@task(positional=["run_id"], help={"run_id": "the run (any unique prefix)", "reason": "why it will never finish",
                                   "env": "the environment (selects its team backend)"})
def abandon(c: Any, run_id: str, reason: str = "", env: str | None = None) -> None:
    """Close a run that will never finish (recorded with the reason; frees its lock)."""
    from runbook import cli

    _call(cli.abandon, run_id, reason, env=env)


@task(positional=["key"], help={"key": "the lock key (see runbook.status)", "reason": "why it is safe to free",
                                "env": "the environment (selects its team backend)"})
def unlock(c: Any, key: str, reason: str = "", env: str | None = None) -> None:
    """Free a stale lock whose run will not resume (recorded in the ledger)."""
    from runbook import cli

    _call(cli.unlock, key, reason, env=env)


@task(name="verify", help={"run_id": "one run (any unique prefix); default: every run",
                           "env": "the environment (verifies its team backend's objects and versions too)"})
def audit_verify(c: Any, run_id: str | None = None, env: str | None = None) -> None:
    """Verify the hash chains of the journals and the ledger; name the first bad record."""
    from runbook import cli

    _call(cli.audit_verify, run_id, env=env)


@task(positional=["run_id"], help={"run_id": "the run (any unique prefix)",
                                   "env": "the environment (names the team backend)"})
def approve(c: Any, run_id: str, env: str | None = None) -> None:
    """Approve a run under your own AWS identity (team backend), bound to its digest, parameters and environment."""
    from runbook.backends import commands

    _call(commands.approve, run_id, env)


@task(name="init", help={"env": "the environment whose backend to create"})
def backend_init(c: Any, env: str | None = None) -> None:
    """Create the team backend's DynamoDB table and S3 bucket (versioning, Object Lock)."""
    from runbook.backends import commands

    _call(commands.backend_init, env)


@task(name="doctor", help={"env": "the environment whose backend to check"})
def backend_doctor(c: Any, env: str | None = None) -> None:
    """Check the team backend: access, versioning, Object Lock, conditional writes, IAM; say what is wrong."""
    from runbook.backends import commands

    _call(commands.backend_doctor, env)


@task(name="list", help={"runbook": "only this runbook", "env": "only this environment",
                         "status": "running|parked|interrupted|failed|succeeded|abandoned",
                         "operator": "only runs this operator took part in", "since": "2h, 3d or an ISO time",
                         "until": "an ISO time or 2h", "json": "print JSON"})
def audit_list(c: Any, runbook: str | None = None, env: str | None = None, status: str | None = None,
               operator: str | None = None, since: str | None = None, until: str | None = None,
               json: bool = False) -> None:
    """List runs newest first: id, runbook, environment, operator, start, duration, outcome, version."""
    from runbook import audit_cli

    _call(audit_cli.audit_list, runbook, env, status, operator, since, until, as_json=json)


@task(name="show", positional=["run_id"], help={"run_id": "the run (any unique prefix)", "json": "print JSON"})
def audit_show(c: Any, run_id: str, json: bool = False, env: str | None = None) -> None:
    """Everything about one run: steps, checks, answers and who gave them, approvals, skips, failures, links."""
    from runbook import audit_cli

    _call(audit_cli.audit_show, run_id, as_json=json, env=env)


@task(name="timeline", help={"since": "window start: 2h, 3d or an ISO time (default 2h)", "until": "window end",
                             "env": "only this environment", "json": "print JSON",
                             "verbose": "every record: intents and passing checks too"})
def audit_timeline(c: Any, since: str = "2h", until: str | None = None, env: str | None = None,
                   json: bool = False, verbose: bool = False) -> None:
    """The runs of a window in time order, a line per step outcome, answer and failure: one page for an incident."""
    from runbook import audit_cli

    _call(audit_cli.audit_timeline, since, until, env, as_json=json, verbose=verbose)


@task(name="export", positional=["run_id"], help={"run_id": "the run (any unique prefix)",
                                                  "format": "md (reads well as a GitHub issue), json or html",
                                                  "output": "write to this file instead of standard output"})
def audit_export(c: Any, run_id: str, format: str = "md", output: str | None = None, env: str | None = None) -> None:
    """Export a run's report: summary, parameters, timeline, approvals, failures, deviations, links."""
    from runbook import audit_cli

    _call(audit_cli.audit_export, run_id, format, output, env=env)


@task(name="incident", help={"env": "the environment the incident happened in (required)",
                             "since": "window start: 2h, 3d or an ISO time (required)", "until": "window end",
                             "format": "md, json or html (one self-contained file, print-friendly)",
                             "output": "write to this file instead of standard output"})
def audit_incident(c: Any, env: str | None = None, since: str | None = None, until: str | None = None,
                   format: str = "md", output: str | None = None) -> None:
    """An incident's report: every run of the window and the runs linked to them on one time axis, with a
    summary (what was released, when it failed, when healthy again, time to detect and restore, who did what)."""
    from runbook import audit_cli

    _call(audit_cli.audit_incident, env, since, until, format, output)


runbook_ns.add_task(approve)
runbook_ns.add_task(resume)
runbook_ns.add_task(status)
runbook_ns.add_task(abandon)
runbook_ns.add_task(unlock)
audit_ns = Collection("audit", audit_list, audit_show, audit_timeline, audit_export, audit_incident,
                      audit_verify)
ns.add_collection(audit_ns)


BAD_VERSION_HELP = ("this one version (vX.Y.Z) answers 500 on the API, every other is good (an automatic start "
                    "reads RUNBOOK_SANDBOX_BAD_VERSION)")


@task(name="up", help={"scenario": "healthy (default), bad-release, slow-rollout, stale-approval, failing-rollout",
                       "bad_version": BAD_VERSION_HELP})
def sandbox_up(c: Any, scenario: str = "healthy", bad_version: str | None = None) -> None:
    """Start the sandbox: MenoTime's production on loopback (AWS, GitHub, the app, its repo, the pipeline)."""
    from runbook.sandbox import commands

    _call(commands.up, scenario, bad_version)


@task(name="down")
def sandbox_down(c: Any) -> None:
    """Stop the sandbox (exactly the processes it recorded)."""
    from runbook.sandbox import commands

    _call(commands.down)


@task(name="status", help={"json": "print JSON"})
def sandbox_status(c: Any, json: bool = False) -> None:
    """What the sandbox runs where, and which version the service serves."""
    from runbook.sandbox import commands

    _call(commands.status, as_json=json)


@task(name="reset", help={"scenario": "the scenario of the fresh world", "bad_version": BAD_VERSION_HELP})
def sandbox_reset(c: Any, scenario: str = "healthy", bad_version: str | None = None) -> None:
    """Throw the sandbox's world away and start a fresh one."""
    from runbook.sandbox import commands

    _call(commands.reset, scenario, bad_version)


@task(name="review", positional=["pr"], help={"pr": "pull request number", "as": "the sandbox reviewer's login",
                                              "approve": "approve the current head",
                                              "request_changes": "request changes"})
def sandbox_review(c: Any, pr: int, as_: str = "", approve: bool = False, request_changes: bool = False) -> None:
    """Review a sandbox pull request as one of its reviewers (eng-lead, devops-lead, product-manager, ...)."""
    from runbook.sandbox import commands

    if approve == request_changes:
        raise Exit("give exactly one of --approve and --request-changes", code=2)
    _call(commands.review, pr, as_, approve)


ns.add_collection(Collection("backend", backend_init, backend_doctor))
sandbox_ns = Collection("sandbox", sandbox_up, sandbox_down, sandbox_status, sandbox_reset, sandbox_review)
if importlib.util.find_spec("moto") is not None:      # the [sandbox] extra: a search, not an import
    ns.add_collection(sandbox_ns)


def namespace(tasks_dir: Path | str) -> Collection:
    """The engine's tasks for the project whose ``tasks.py`` is in ``tasks_dir``: ``runbook.*``,
    ``audit.*``, ``backend.*``, and ``sandbox.*`` where the ``[sandbox]`` extra (moto) is installed.

        # tasks.py
        from pathlib import Path
        from runbook.tasks import namespace
        ns = namespace(Path(__file__).resolve().parent)

    ``RUNBOOK_ROOT`` overrides the project root, as everywhere.
    """
    global _HERE
    _HERE = Path(tasks_dir).resolve()
    return ns


