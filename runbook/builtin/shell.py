"""shell.run (action) and shell.check (check): a command as an argument list."""

from __future__ import annotations

from typing import Any

from runbook.api import proc
from runbook.api import Context, Outcome, action, check

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
    done = proc.run(args["argv"], cwd=cwd, env=args.get("env"), timeout=timeout, on_line=ctx.output)
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
    command = " ".join(done.argv[:3]) + (" ..." if len(done.argv) > 3 else "")
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


def _chomp(text: str) -> str:
    """Output as a value: without its final newline (what `$(...)` gives in a shell)."""
    return text[:-1] if text.endswith("\n") else text


@action("shell.run", args=ARGS, outputs=OUTPUTS)
def run(ctx: Context) -> Outcome:
    """Run a command; passes when its exit code is the expected one."""
    return _execute(ctx)


@check("shell.check", args=ARGS, outputs=OUTPUTS)
def check_(ctx: Context) -> Outcome:
    """Run a read-only command as a check; passes on the expected exit code."""
    return _execute(ctx)
