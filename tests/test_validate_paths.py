"""`runbook.validate --path`: environment files recognised wherever they live, a runbook reached
through a link reported once, and the validation cache never saying ok where a fresh validation
fails (every way its key could miss a change)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from helpers import REPO


def validate(root: Path, *paths: Path, cache: Path) -> tuple[int, list[str]]:
    """`invoke runbook.validate [--path P]...` in its own process (a project's plugins are imported
    once per process), with the validation cache in ``cache``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNBOOK_")}
    env.update({"RUNBOOK_ROOT": str(root), "RUNBOOK_HOME": str(root.parent / "home"), "RUNBOOK_CACHE": str(cache),
                "NO_COLOR": "1"})
    args = [a for p in paths for a in ("--path", str(p))]
    done = subprocess.run([sys.executable, "-m", "invoke", "runbook.validate", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    return done.returncode, (done.stdout + done.stderr).splitlines()


# -- environment files wherever they live ----------------------------------------------------

def test_environment_file_outside_environments_is_validated_as_an_environment(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    (root / "runbooks").mkdir(parents=True)
    elsewhere = tmp_path / "team-settings"
    elsewhere.mkdir()
    good = elsewhere / "eu.yaml"
    good.write_text("name: eu\nprotected: true\nvars: {kube_context: eks-eu, replicas: 3}\n")
    bad = elsewhere / "us.yaml"
    bad.write_text("name: us\nvars: [kube_context]\naws: {region: 7}\n")
    code, lines = validate(root, good, cache=tmp_path / "cache")
    assert (code, lines) == (0, ["ok: 0 runbook(s) and 1 environment(s) are valid"])
    code, lines = validate(root, bad, cache=tmp_path / "cache")
    assert code == 2
    assert lines == [f"{bad}:2:7: expected a mapping, found a list (at vars)",
                     f"{bad}:3:15: expected a string, found the integer 7; put it in quotes (at aws.region)"]
    # the folder decides too: an environments/ folder anywhere, whatever the content looks like
    other = tmp_path / "x" / "environments"
    other.mkdir(parents=True)
    (other / "plain.yaml").write_text("name: plain\ndescription: only a name\n")
    assert validate(root, other / "plain.yaml", cache=tmp_path / "cache") == (
        0, ["ok: 0 runbook(s) and 1 environment(s) are valid"])
    # a runbook stays a runbook
    (root / "runbooks" / "r.yaml").write_text("name: r\ntitle: t\nsteps: []\nvars: {}\n")
    code, lines = validate(root, root / "runbooks" / "r.yaml", cache=tmp_path / "cache")
    assert code == 2 and any("unknown key 'vars'" in line for line in lines), lines


# -- a runbook reached through links ----------------------------------------------------------

def test_runbook_through_a_symlink_reports_each_error_once(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    (root / "runbooks").mkdir(parents=True)
    real = root / "runbooks" / "bad.yaml"
    real.write_text("name: bad\ntitle: t\nsteps:\n  - id: a\n    timeout: 0\n    do: [{uses: shell.run, with: {argv: [x]}}]\n")
    (root / "runbooks" / "alias.yaml").symlink_to("bad.yaml")
    outside = tmp_path / "shared"
    outside.mkdir()
    (outside / "link.yaml").symlink_to(real)
    expected = "runbooks/bad.yaml:5:14: must be greater than 0, found 0 (at steps[0].timeout)"
    for paths in [(), (root / "runbooks",), (root / "runbooks" / "alias.yaml", real, outside / "link.yaml"),
                  (outside, root / "runbooks")]:
        code, lines = validate(root, *paths, cache=tmp_path / "cache")
        assert code == 2 and lines == [expected], (paths, lines)


# -- the validation cache -----------------------------------------------------------------------

MAIN = """\
name: main
title: Main
steps:
  - id: ping
    timeout: 5
    verify: [{uses: team.ping, with: {target: db}}]
  - id: part
    include: part
"""
PART = """\
name: part
title: Part
steps:
  - id: one
    timeout: 5
    do: [{uses: shell.run, with: {argv: ["true"]}}]
"""
PLUGIN = """\
from runbook.plugins import Context, Outcome, check


@check("team.ping", args={"properties": {"target": {"type": "string"}}, "required": ["target"]})
def ping(ctx: Context) -> Outcome:
    return Outcome.ok("pong")
"""


def edit_keeping_size_and_mtime(path: Path, old: str, new: str) -> None:
    """A same-size edit with the file's times put back: size and mtime cannot tell it changed."""
    st = path.stat()
    text = path.read_text()
    assert len(old) == len(new) and old in text
    path.write_text(text.replace(old, new, 1))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (st.st_size, st.st_mtime_ns)


def test_validation_cache_never_says_ok_where_a_fresh_validation_fails(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    for folder in ("runbooks", "environments", "checks"):
        (root / folder).mkdir(parents=True)
    main, part, plugin = root / "runbooks" / "main.yaml", root / "runbooks" / "part.yaml", root / "checks" / "team.py"
    main.write_text(MAIN)
    part.write_text(PART)
    plugin.write_text(PLUGIN)
    (root / "runbooks" / "other.yaml").write_text("name: other\ntitle: Other\nsteps: [{id: a, timeout: 0}]\n")
    cache = tmp_path / "cache"
    fresh_count = 0

    def check(*paths: Path, ok: bool) -> list[str]:
        """The cached verdict equals a fresh one (an empty cache folder), and is the one expected."""
        nonlocal fresh_count
        fresh_count += 1
        cached = validate(root, *paths, cache=cache)
        fresh = validate(root, *paths, cache=tmp_path / f"fresh-{fresh_count}")
        assert cached == fresh, (paths, cached, fresh)
        assert (cached[0] == 0) is ok, cached
        return cached[1]

    def valid_again() -> None:
        assert check(main, ok=True) == ["ok: 1 runbook(s) and 0 environment(s) are valid"]
        assert check(ok=False)                     # the whole project: other.yaml is bad
        assert (cache / "validated.json").is_file()

    valid_again()
    # 1. the runbook itself, edited in place: same size, same mtime
    edit_keeping_size_and_mtime(main, "timeout: 5", "timeout: 0")
    assert check(main, ok=False) == ["runbooks/main.yaml:5:14: must be greater than 0, found 0 (at steps[0].timeout)"]
    edit_keeping_size_and_mtime(main, "timeout: 0", "timeout: 5")
    valid_again()
    # 2. the file it includes, edited the same way
    edit_keeping_size_and_mtime(part, "timeout: 5", "timeout: 0")
    assert check(main, ok=False) == ["runbooks/part.yaml:5:14: must be greater than 0, found 0 (at steps[0].timeout)"]
    edit_keeping_size_and_mtime(part, "timeout: 0", "timeout: 5")
    valid_again()
    # 3. the include replaced by a symlink to a file elsewhere (a bad one)
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "part.yaml").write_text(PART.replace("timeout: 5", "timeout: 0"))
    part.unlink()
    part.symlink_to(shared / "part.yaml")
    lines = check(main, ok=False)
    assert len(lines) == 1 and lines[0].endswith("must be greater than 0, found 0 (at steps[0].timeout)"), lines
    # ... and the link's target edited in place (same size, same mtime) to be valid again
    edit_keeping_size_and_mtime(shared / "part.yaml", "timeout: 0", "timeout: 5")
    valid_again()
    part.unlink()
    part.write_text(PART)
    valid_again()
    # 4. the project's own plugin edited: same size, same mtime, its argument now an object
    edit_keeping_size_and_mtime(plugin, '"type": "string"', '"type": "object"')
    assert check(main, ok=False) == [
        "runbooks/main.yaml:6:47: expected a mapping, found the string 'db' (at steps[0].verify[0].with.target)"]
    edit_keeping_size_and_mtime(plugin, '"type": "object"', '"type": "string"')
    valid_again()
    # 5. another file of the same folder asked about (the folder's files are the same: the question differs)
    assert check(root / "runbooks" / "other.yaml", ok=False) == [
        "runbooks/other.yaml:3:26: must be greater than 0, found 0 (at steps[0].timeout)"]
    # 6. the same environment content, asked about through an environments/ folder and outside one
    (root / "environments" / "eu.yaml").write_text("name: eu\ndescription: d\n")
    (shared / "eu.yaml").symlink_to(root / "environments" / "eu.yaml")
    assert check(root / "environments" / "eu.yaml", ok=True) == ["ok: 0 runbook(s) and 1 environment(s) are valid"]
    assert check(shared / "eu.yaml", ok=True) == ["ok: 0 runbook(s) and 1 environment(s) are valid"]
    edit_keeping_size_and_mtime(root / "environments" / "eu.yaml", "description: d", "protected: 1xx")
    check(shared / "eu.yaml", ok=False)
