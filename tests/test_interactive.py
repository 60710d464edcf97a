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
                "TERM": "xterm", "NO_COLOR": "1"})
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
    child.expect("ready failed")
    (work / "ready.txt").write_text("ready\n")
    child.send("\r")           # Retry (the first choice), now that the file exists
    child.expect("never failed")
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
