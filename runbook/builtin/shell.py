"""shell.run (action) and shell.check (check): a command as an argument list."""

from __future__ import annotations

import json
import re
from typing import Any

from runbook.api import proc
from runbook.api import Context, Outcome, action, check, quote, static

from . import jmes

ARGS: dict[str, Any] = {
    "properties": {
        "argv": {"type": "array", "items": {"type": "string"}, "minItems": 1,
                 "description": "the command and its arguments; never a shell string"},
        "cwd": {"type": "string", "description": "working folder (default: the project root)"},
        "env": {"type": "object", "additionalProperties": {"type": "string"}},
        "timeout": {"type": "number", "exclusiveMinimum": 0},
        "expect_exit": {"anyOf": [{"type": "integer"}, {"type": "array", "items": {"type": "integer"}}]},
    },
    "required": ["argv"],
}
EXPECTATIONS: dict[str, Any] = {
    "stdout_matches": {"type": "string", "description": "a regular expression stdout must match (a line: ^...$)"},
    "stdout_not_matches": {"type": "string", "description": "a regular expression stdout must not match"},
    "json": {"type": "object", "minProperties": 1,
             "description": "stdout is JSON: JMESPath -> the value it must find, or a list of allowed values"},
}
CHECK_ARGS: dict[str, Any] = {**ARGS, "properties": {**ARGS["properties"], **EXPECTATIONS}}
OUTPUTS: dict[str, Any] = {"type": "object", "properties": {
    "exit_code": {"type": "integer"},
    "stdout": {"type": "string", "description": "standard output without its final newline"},
    "stderr": {"type": "string", "description": "standard error without its final newline"},
    "stdout_lines": {"type": "array", "items": {"type": "string"}}}}
SUMMARY_LINES = 5
MAX_OUTPUT = 64 * 1024


def _execute(ctx: Context) -> Outcome:
    args = ctx.args
    cwd = ctx.path(args.get("cwd"))
    timeout = args.get("timeout") or ctx.timeout
    done = proc.run(args["argv"], cwd=cwd, env=args.get("env"), timeout=timeout, on_line=ctx.output,
                    on_start=ctx.child_started)
    expected = args.get("expect_exit", 0)
    allowed = expected if isinstance(expected, list) else [expected]
    stdout, stderr = ctx.redact(done.stdout), ctx.redact(done.stderr)
    evidence: dict[str, Any] = {
        "argv": [ctx.redact(a) for a in done.argv], "cwd": str(cwd), "exit_code": done.exit_code,
        "duration_s": round(done.duration, 3),
        "stdout_tail": proc.tail(stdout), "stderr_tail": proc.tail(stderr),
    }
    if ctx.store_blob is not None:
        for label, text in (("stdout", stdout), ("stderr", stderr)):
            if text and text != proc.tail(text):
                evidence[f"{label}_sha256"] = ctx.store_blob(text.encode())
    out, err = _chomp(stdout)[-MAX_OUTPUT:], _chomp(stderr)[-MAX_OUTPUT:]
    outputs = {"exit_code": done.exit_code, "stdout": out, "stderr": err, "stdout_lines": out.splitlines()}
    command = " ".join(_word(a) for a in done.argv[:3])
    command += " ..." if len(done.argv) > 3 and not command.endswith("...") else ""
    if done.timed_out:
        return Outcome(False, f"`{ctx.redact(command)}` timed out after {timeout} s (see stdout_tail in the evidence)",
                       evidence, outputs)
    if done.exit_code in allowed:
        return Outcome(True, f"`{ctx.redact(command)}` exited {done.exit_code}", evidence, outputs)
    which = "stderr" if stderr.strip() else "stdout"
    last = [line.strip() for line in proc.tail(stderr or stdout, lines=SUMMARY_LINES, max_chars=600).splitlines()
            if line.strip()]
    quoted = f"; last lines of {which}: " + " | ".join(last) if last else ""
    where = f"; full {which} in the evidence ({which}_sha256 {evidence[which + '_sha256'][:12]})" \
        if f"{which}_sha256" in evidence else ""
    return Outcome(False, f"`{ctx.redact(command)}`: expected exit {' or '.join(map(str, allowed))}, found "
                          f"{done.exit_code}{quoted} (cwd {cwd}){where}",
                   evidence, outputs)


def _word(arg: str, limit: int = 60) -> str:
    """One argument as a summary names it: one line (an inline script's first), not too long."""
    first = arg.splitlines()[0] if arg.strip() else arg
    cut = first if len(first) <= limit else first[:limit - 3]
    return cut + ("..." if cut != arg else "")


def _chomp(text: str) -> str:
    """Output as a value: without its final newline (what `$(...)` gives in a shell)."""
    return text[:-1] if text.endswith("\n") else text


@action("shell.run", args=ARGS, outputs=OUTPUTS)
def run(ctx: Context) -> Outcome:
    """Run a command; passes when its exit code is the expected one."""
    return _execute(ctx)


@check("shell.check", args=CHECK_ARGS, outputs=OUTPUTS)
def check_(ctx: Context) -> Outcome:
    """Run a read-only command as a check; passes on the expected exit code (and expected output).

    ``stdout_matches``, ``stdout_not_matches`` and ``json`` (JMESPath -> value) say what its
    output must say; under ``wait:`` it runs again until exit code and output both hold."""
    done = _execute(ctx)
    if not done.passed or not any(k in ctx.args for k in EXPECTATIONS):
        return done
    misses, held = _expectations(ctx.args, done.outputs["stdout"])
    if misses:
        return Outcome(False, f"{done.summary}, but " + "; ".join(misses), done.evidence, done.outputs)
    return Outcome(True, f"{done.summary}; " + "; ".join(held), done.evidence, done.outputs)


def _expectations(args: dict[str, Any], stdout: str) -> tuple[list[str], list[str]]:
    """(what does not hold, what does) of a check's output expectations."""
    misses: list[str] = []
    held: list[str] = []
    for key, want in (("stdout_matches", True), ("stdout_not_matches", False)):
        if key not in args:
            continue
        found = re.search(args[key], stdout, re.MULTILINE)
        where = f" (line {stdout.count(chr(10), 0, found.start()) + 1}: {jmes.short(_line_at(stdout, found.start()))})" \
            if found else ""
        if bool(found) == want:
            held.append(f"stdout {'matches' if want else 'does not match'} {quote(args[key])}")
        else:
            misses.append(f"stdout {'does not match' if want else 'matches'} {quote(args[key])}{where}")
    if "json" in args:
        try:
            document = json.loads(stdout)
        except ValueError as exc:
            misses.append(f"stdout is not JSON ({exc}): {jmes.short(stdout)}")
            return misses, held
        found_values, not_held = jmes.evaluate(dict(args["json"]), document)
        misses += not_held
        held += [f"{k} = {jmes.short(v)}" for k, v in found_values.items() if not any(m.startswith(f"{k}:")
                                                                                     for m in not_held)]
    return misses, held


def _line_at(text: str, index: int) -> str:
    start = text.rfind("\n", 0, index) + 1
    end = text.find("\n", index)
    return text[start:end if end >= 0 else len(text)]


def _lint(args: dict[str, Any]) -> list[tuple[tuple[Any, ...], str]]:
    out: list[tuple[tuple[Any, ...], str]] = []
    for key in ("stdout_matches", "stdout_not_matches"):
        pattern = args.get(key)
        if isinstance(pattern, str) and "${" not in pattern:
            try:
                re.compile(pattern)
            except re.error as exc:
                out.append(((key,), f"invalid regular expression {quote(pattern)}: {exc}"))
    condition = args.get("json")
    for expression in condition if isinstance(condition, dict) else ():
        problem = jmes.problem(expression)
        if problem:
            out.append((("json", expression), problem))
    return out


static("shell.check", lint=_lint)
