"""Honest outcomes as the operator and the reviewer see them, through the command line."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import copy_project, invoke, write_answers


def test_an_undone_manual_item_reads_succeeded_with_one_deviation_everywhere(tmp_path: Path) -> None:
    root = copy_project("runtime", tmp_path)
    home = tmp_path / "home"
    answers = write_answers(tmp_path / "a.yaml", "gates", {
        "confirm-it.confirm": True, "confirm-it.tick": {"done": False, "reason": "ticket system down"},
        "evidence.link": {"done": True, "link": "https://dash.example/1"},
        "approve.approval": {"approvers": ["bob@example.com", "carol@example.com"]}})
    result = invoke("runbook", "gates", "--answers", str(answers), root=root, home=home)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "succeeded with 1 deviation(s)" in result.stdout
    listed = invoke("audit.list", root=root, home=home).stdout
    assert "succeeded with 1 deviation(s)" in listed and listed.splitlines()[0].startswith("RUN")
    row = json.loads(invoke("audit.list", "--json", root=root, home=home).stdout)[0]
    assert row["deviations"] == 1 and row["outcome"] == "succeeded with 1 deviation(s)"
    run_id = row["run"]
    assert "status: succeeded with 1 deviation(s)" in invoke("audit.show", run_id, root=root, home=home).stdout
    md = invoke("audit.export", run_id, "--format", "md", root=root, home=home).stdout
    assert "succeeded with 1 deviation(s)" in md and "ticket system down" in md


def test_resume_with_yes_on_a_protected_environment_exits_2_and_changes_nothing(tmp_path: Path) -> None:
    root = copy_project("runtime", tmp_path)
    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    (root / "runbooks" / "confirmed.yaml").write_text(
        "name: confirmed\ntitle: Parks at a confirmation\nparams: {dir: {type: string}}\nsteps:\n"
        "  - id: change\n    title: Change production\n    confirm: Change it?\n    do:\n      - id: write\n"
        "        uses: effects.append\n        with: {file: \"${params.dir}/changed.txt\", line: changed}\n")
    typed = write_answers(tmp_path / "t.yaml", "confirmed", {"run.environment": {"choice": "prod-like"}})
    parked = invoke("runbook", "confirmed", "--env", "prod-like", "--param", f"dir={work}", "--answers", str(typed),
                    root=root, home=home)
    assert parked.returncode == 4, parked.stdout + parked.stderr
    run_id = next((home / "runs").iterdir()).name
    journal = home / "runs" / run_id / "journal.jsonl"
    before = journal.read_bytes()
    yes = invoke("runbook.resume", "--run-id", run_id, "--yes", "--non-interactive", "--answers", str(typed),
                 root=root, home=home)
    assert yes.returncode == 2 and "--yes is refused on protected environment 'prod-like'" in yes.stderr
    assert journal.read_bytes() == before and not (work / "changed.txt").exists()


def test_audit_list_marks_linked_runs_and_the_timeline_is_one_line_per_outcome(tmp_path: Path) -> None:
    root = copy_project("runtime", tmp_path)
    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    answers = write_answers(tmp_path / "a.yaml", "flow", {"run.on_failure": True})
    flow = invoke("runbook", "flow", "--param", f"dir={work}", "--param", "fail_after=true", "--answers", str(answers),
                  root=root, home=home)
    assert flow.returncode == 1
    lines = invoke("audit.list", root=root, home=home).stdout.splitlines()
    assert lines[0].split()[:2] == ["RUN", "RUNBOOK"]
    assert " flow " in lines[1] and "rolled-back" in lines[1]            # the parent, then its linked run under it
    assert " +- cleanup " in lines[2] and "succeeded" in lines[2]
    brief = invoke("audit.timeline", "--since", "1h", root=root, home=home).stdout.splitlines()
    verbose = invoke("audit.timeline", "--since", "1h", "--verbose", root=root, home=home).stdout.splitlines()
    assert any("step late-fail failed" in line for line in brief)
    assert any("late-fail.verify-0 FAILED" in line for line in brief)       # a failed check is shown
    assert not any("about to run" in line for line in brief)                 # intents only with --verbose
    assert any("about to run" in line for line in verbose) and len(verbose) > len(brief)
    assert sum("[tester@example.com]" in line for line in brief) == 4         # once per session of each run


def test_the_help_says_what_to_type(tmp_path: Path) -> None:
    root = copy_project("runtime", tmp_path)
    shown = invoke("--help", "runbook", root=root, home=tmp_path / "home").stdout
    assert "invoke runbook NAME [--env ENV] [--param K=V]..." in shown
    assert "invoke runbook.resume --run-id ID" in shown and "--wait-lock" in shown
    missing = invoke("runbook", root=root, home=tmp_path / "home")
    assert missing.returncode == 1 and "did not receive required positional arguments" in missing.stderr


def test_verbose_streams_command_output_as_it_is_written(tmp_path: Path) -> None:
    """With --verbose a command's lines appear while it runs (before it ends), redacted."""
    import subprocess
    import sys

    root = copy_project("runtime", tmp_path)
    (root / "runbooks" / "chatty.yaml").write_text(
        "name: chatty\ntitle: A command that talks, then waits\nparams: {token: {type: string, secret: true}, go: {type: string}}\n"
        "steps:\n  - id: talk\n    title: Talk\n    do:\n      - id: say\n        uses: shell.run\n"
        "        with: {argv: [python3, -u, -c, \"import os, sys, time; print('hello from the command'); "
        "print('token', sys.argv[1]); end = time.time() + 60\\nwhile not os.path.exists(sys.argv[2]) and "
        "time.time() < end: time.sleep(0.05)\\nprint('bye' if os.path.exists(sys.argv[2]) else 'nobody read me')\", "
        "\"${params.token}\", \"${params.go}\"]}\n")
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("RUNBOOK_")}
    env.update({"RUNBOOK_ROOT": str(root), "RUNBOOK_HOME": str(tmp_path / "home"), "NO_COLOR": "1",
                "RUNBOOK_OPERATOR": "tester@example.com", "RUNBOOK_PARAM_TOKEN": "s3cr3t-t0ken-value"})
    go = tmp_path / "go"
    proc = subprocess.Popen([sys.executable, "-m", "invoke", "runbook", "chatty", "--verbose", "--param", f"go={go}"],
                            env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "hello from the command" in line:
            break
    # shown while the command still runs: it waits for this file, which only now exists
    go.touch()
    rest = proc.stdout.read()              # the same buffered reader: nothing it read ahead is lost
    proc.wait(timeout=60)
    proc.stdout.close()
    assert proc.stderr is not None
    proc.stderr.close()
    text = "".join(seen) + rest
    assert proc.returncode == 0 and "| bye" in text and "| token [REDACTED]" in text
    assert "s3cr3t-t0ken-value" not in text
    quiet = invoke("runbook", "chatty", "--param", f"go={go}", root=root, home=tmp_path / "home2",
                   env={"RUNBOOK_PARAM_TOKEN": "x" * 12})
    assert quiet.returncode == 0 and "hello from the command" not in quiet.stdout
