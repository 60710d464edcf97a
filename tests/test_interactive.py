"""A person at a real terminal (pexpect): checklist, retry, skip, Ctrl-C, then --resume."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pexpect

from helpers import REPO, copy_project, invoke

DOWN = "\x1b[B"


def spawn(args: list[str], root: Path, home: Path) -> pexpect.spawn:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNBOOK_")}
    env.update({"RUNBOOK_ROOT": str(root), "RUNBOOK_HOME": str(home), "RUNBOOK_OPERATOR": "alice@example.com",
                "TERM": "xterm", "NO_COLOR": "1", "PROMPT_TOOLKIT_NO_CPR": "1"})   # pexpect answers no CPR
    return pexpect.spawn(sys.executable, ["-m", "invoke", *args], cwd=str(REPO), env=env, encoding="utf-8",
                         timeout=30, dimensions=(40, 160))


def test_person_at_a_terminal(tmp_path: Path) -> None:
    root = copy_project("runtime", tmp_path)
    home = tmp_path / "home"
    work = tmp_path / "work"
    work.mkdir()
    child = spawn(["runbook", "interactive", "--param", f"dir={work}"], root, home)
    child.expect("Tick what is done")
    child.send(" ")            # tick the first item
    child.send(DOWN)
    child.send(" ")            # and the second
    child.send("\r")
    child.expect("ready failed.*Retry, skip or abort")        # the question itself is on the screen
    (work / "ready.txt").write_text("ready\n")
    child.send("\r")           # Retry (the first choice), now that the file exists
    child.expect("never failed.*Retry, skip or abort")
    child.send(DOWN)
    child.send("\r")           # Skip
    child.expect("Reason for skipping")
    child.send("known issue, tracked in OPS-12\r")
    child.expect("Write the final marker")
    child.sendcontrol("c")     # Ctrl-C at the confirmation
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130, child.before
    assert not (work / "final.txt").exists()

    again = spawn(["runbook", "interactive", "--resume"], root, home)
    again.expect("Write the final marker")
    again.send("y")
    again.expect("Yes")               # a yes/no takes its answer, then waits for Enter
    again.send("\r")
    again.expect("succeeded")
    again.expect(pexpect.EOF)
    again.close()
    assert again.exitstatus == 0
    assert (work / "final.txt").read_text() == "final\n"

    journal = next((home / "runs").iterdir()) / "journal.jsonl"
    text = journal.read_text()
    assert '"id":"checklist.staging","kind":"manual"' in text and '"source":"interactive"' in text
    assert '"reason":"known issue, tracked in OPS-12"' in text
    assert '"type":"run.interrupted"' in text
    assert text.count('"item":"ready","uses":"file.contains","kind":"check","passed":false') == 1
    assert text.count('"item":"ready","uses":"file.contains","kind":"check","passed":true') == 1
    assert invoke("audit.verify", root=root, home=home).returncode == 0


TYPEAHEAD = """\
name: typeahead
title: A confirmation, then a failing check
params: {dir: {type: string}, size: {type: string, choices: [small, large]}, link_it: {type: boolean},
         replicas: {type: integer}}
steps:
  - id: go
    title: Go
    confirm: Start?
    verify:
      - id: slow
        uses: shell.check
        with: {argv: [python3, -c, "import time; time.sleep(2)"]}
      - id: broken
        uses: core.equals
        with: {actual: 1, expected: 2}
  - id: record
    title: Record
    do:
      - id: dash
        manual: Link the dashboard
        evidence: link
"""


def test_keys_typed_ahead_never_answer_the_next_prompt(tmp_path: Path) -> None:
    """An Enter typed while the engine works after a yes/no is discarded, not taken as the answer to the
    retry/skip/abort menu that follows (which would have chosen Retry)."""
    import json

    root = copy_project("runtime", tmp_path)
    (root / "runbooks" / "typeahead.yaml").write_text(TYPEAHEAD)
    home = tmp_path / "home"
    child = spawn(["runbook", "typeahead", "--param", f"dir={tmp_path}"], root, home)
    child.expect(r"\(size")                            # a parameter with choices is a menu
    child.expect("small")
    child.send(DOWN + "\r")
    child.expect(r"\(link_it")                         # a boolean is a yes/no
    child.send("n\r")
    child.expect(r"\(replicas, a whole number\)")        # a number says so, and is checked as it is typed
    child.send("\x15three\r")
    child.expect("is not an integer")
    child.send("\x153\r")
    child.expect("Start?")
    child.send("y\r")
    child.expect("Yes")                                # answered; the engine works for two seconds...
    child.send(DOWN + "\r")                            # ...while keys are typed ahead (they would choose Skip)
    child.expect("Retry, skip or abort")
    child.expect("Abort the run")                      # the menu is drawn and waits
    child.send(DOWN + DOWN + "\r")                     # the person chooses: abort
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1
    run = next((home / "runs").iterdir())
    records = [json.loads(line) for line in (run / "journal.jsonl").read_text().splitlines()]
    answers = {r["data"]["id"]: r["data"]["answer"] for r in records if r["type"] == "prompt.answered"}
    assert answers["go.broken.on_fail"] == {"choice": "abort"}
    started = next(r for r in records if r["type"] == "run.started")
    assert started["data"]["params"]["size"] == "large" and started["data"]["params"]["link_it"] is False
    assert started["data"]["params"]["replicas"] == 3


def test_a_link_must_be_an_http_url(tmp_path: Path) -> None:
    root = copy_project("runtime", tmp_path)
    (root / "runbooks" / "typeahead.yaml").write_text(TYPEAHEAD)
    home = tmp_path / "home"
    answers = tmp_path / "a.yaml"
    answers.write_text("runbook: typeahead\nparams: {size: small, link_it: true, replicas: 1}\nanswers:\n"
                       "  go.confirm: true\n"
                       "  go.broken.on_fail: {choice: skip, reason: known}\n"
                       "  record.dash: {done: true, link: not a link}\n")
    bad = invoke("runbook", "typeahead", "--param", f"dir={tmp_path}", "--answers", str(answers), root=root, home=home)
    assert bad.returncode == 2 and "'not a link' is not a link: give an http(s) URL" in bad.stderr
    assert not home.exists()
    child = spawn(["runbook", "typeahead", "--param", f"dir={tmp_path}", "--param", "replicas=1", "--param", "size=small", "--param",
                   "link_it=true"], root, home)
    child.expect(r"Start\? .*\(y/N\)")
    child.send("y\r")
    child.expect("Abort the run")                      # the menu is drawn (keys typed earlier are discarded)
    child.send(DOWN + "\r")
    child.expect("Reason for skipping")
    child.send("known\r")
    child.expect(r"Done: Link the dashboard.*\(Y/n\)")
    child.send("y\r")
    child.expect(r"Link \(https://... or s3://...\) for")
    child.send("not a link\r")
    child.expect("is not a link")                      # refused at the prompt, asked again on an empty line
    child.expect(r"Link \(https://... or s3://...\) for")
    child.send("s3://evidence-bucket/dash/1.png\r")    # an S3 object is a link too
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    journal = next((home / "runs").iterdir()) / "journal.jsonl"
    assert '"link":"s3://evidence-bucket/dash/1.png"' in journal.read_text().replace(": ", ":")
    assert "not a link" not in journal.read_text()            # the refused answer was never taken


def test_the_takeover_prompt_asks_its_question_first(tmp_path: Path) -> None:
    from helpers import spawn as spawn_plain, wait_for

    root = copy_project("runtime", tmp_path)
    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    holder = spawn_plain("runbook", "sleeper", "--env", "local", "--param", f"dir={work}", "--param", "seconds=30",
                         root=root, home=home)
    try:
        wait_for(lambda: (work / "marker.txt").exists())
        child = spawn(["runbook", "emergency", "--env", "local", "--param", f"dir={work}"], root, home)
        child.expect(r"Take over lock 'local' in an emergency\? \(Ctrl-C leaves it[^\n]*\n")
        child.expect(r"held by:  tester@example.com on [^\n]*live[^\n]*\n")
        child.expect(r"run:      \S+ \(sleeper\)")
        child.expect("Reason for taking it over:")
        child.send("prod is down\r")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0
        holder.communicate(timeout=30)
        assert holder.returncode == 3
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.communicate()


def test_a_parameter_with_a_default_is_asked_offering_the_default(tmp_path: Path) -> None:
    """Issue 23.10: at a terminal, a defaulted parameter nobody gave is asked, its default offered;
    -n (--non-interactive, as on runbook.resume) and --yes keep the default without asking."""
    root = copy_project("runtime", tmp_path)
    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    child = spawn(["runbook", "guard-small-things", "--param", f"dir={work}"], root, home)
    child.expect(r"How many replicas \(replicas\):.*3")               # the default offered
    child.send("\x155\r")                                              # cleared and typed over
    child.expect(r"Done: Tell the channel.*\(Y/n\)")
    child.send("y\r")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert (work / "scaled.txt").read_text().split() == ["5"]
    unattended = invoke("runbook", "guard-small-things", "-n", "--yes", "--param", f"dir={work}", root=root,
                        home=home)
    assert unattended.returncode == 0, unattended.stdout + unattended.stderr
    assert (work / "scaled.txt").read_text().split() == ["5", "3"]


def test_dash_n_is_non_interactive_on_runbook_as_on_resume(tmp_path: Path) -> None:
    """At a terminal, -n means --non-interactive on `runbook` as on `runbook.resume`: nothing is
    asked, the run parks where it needs a person (it was --name, taking the next word as a value)."""
    root = copy_project("runtime", tmp_path)
    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    for args in (["runbook", "guard-small-things", "-n", "--param", f"dir={work}"], ["runbook.resume", "-n"]):
        child = spawn(args, root, home)
        child.expect("parked")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 4, args
    assert (work / "scaled.txt").read_text().split() == ["3"]       # the default, not asked
