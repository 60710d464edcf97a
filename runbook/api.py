"""The plugin API: the one engine module a plugin imports, the engine's built-ins as much as a team's.

    from runbook.api import Context, Outcome, check, action, probe

- ``check(name, args=SCHEMA, outputs=SCHEMA)`` registers a read-only check, ``action(...)``
  something that changes the world (``side_effect=False`` when it does not), ``probe(name)``
  an action's read-only "did it already happen?" (returns an Outcome with the outputs, or
  None), ``static(name, lint=..., outputs=...)`` validate-time checks of an item's ``with:``.
- A plugin function receives a ``Context`` (``args`` resolved, ``env``, ``root``, ``redact``,
  ``progress``, ``timeout``, ``checkout``, ``results`` of this run, ``history`` of others) and
  returns an ``Outcome`` (``Outcome.ok(summary, evidence, **outputs)`` / ``Outcome.fail(...)``).
- Client helpers, one per outside system: ``aws`` (boto3 clients for the environment:
  ``aws.client(env, "ec2")``, ``aws.call(env, service, operation, what, **params)``),
  ``github`` (the GitHub client for the environment), ``git`` (``git.git(argv, cwd)``),
  ``proc`` (``proc.run(argv, cwd=..., timeout=...)``: commands as argument lists).
  ``clock`` is time (``clock.monotonic()``, ``clock.sleep()``, ``clock.wait_until()``): a
  plugin that waits or reads the time goes through it, so tests can run it on virtual time.
- ``ExternalError(what, problem, fix)`` names an outside system's failure and what to do;
  ``RunbookError`` is the root of the engine's errors; ``quote``/``suggest`` format values and
  did-you-means like the engine's own messages; ``has_templates`` tells a ``${...}`` apart;
  ``SECRET_PATTERNS`` are the token shapes the engine redacts.

Anything else under ``runbook.`` is the engine's inside and may change; a test keeps the
built-in plugins to this module.
"""

from __future__ import annotations

from . import aws, clock, git, proc
from . import github_api as github
from .errors import ExternalError, RunbookError
from .plugins import Context, Outcome, action, check, probe, static
from .redact import PATTERNS as SECRET_PATTERNS
from .schemas import quote, suggest
from .templates import has_templates

__all__ = ["Context", "Outcome", "action", "check", "probe", "static", "aws", "clock", "git", "github", "proc",
           "ExternalError", "RunbookError", "quote", "suggest", "has_templates", "SECRET_PATTERNS"]
