"""`invoke runbook.import`: a Markdown guide becomes a runbook that validates, dry-runs and reads like the guide."""

from __future__ import annotations

import io
import os
import re
import shutil
import shlex
from pathlib import Path

import pytest
import yaml

from runbook import cli
from runbook.errors import ExitCode, RunbookError
from runbook.importer import convert

from conftest import REPO, SCENARIOS
from helpers import invoke

GUIDES = SCENARIOS / "import"
FIXTURES = sorted(p.stem for p in GUIDES.glob("*.md"))


@pytest.fixture
def proj(tmp_path: Path) -> Path:
    """An empty project with one environment (dry runs need one)."""
    root = tmp_path / "proj"
    (root / "environments").mkdir(parents=True)
    shutil.copy(SCENARIOS / "project" / "environments" / "test.yaml", root / "environments" / "test.yaml")
    return root


def _import(root: Path, guide: Path | str, name: str, force: bool = False) -> str:
    out = io.StringIO()
    assert cli.import_guide(root, str(guide), name, force=force, out=out) == ExitCode.OK
    return out.getvalue()


def _fences(text: str) -> list[str]:
    """Every fenced code block of a Markdown text, fences included, less the fence's own indentation."""
    found = []
    for m in re.finditer(r"(?ms)^( *)(`{3,}|~{3,})[^\n]*\n.*?^ *\2[ \t]*$", text):
        width = len(m.group(1))
        found.append("\n".join(x[min(width, len(x) - len(x.lstrip(" "))):] for x in m.group(0).split("\n")))
    return found


def _headings(text: str) -> list[str]:
    """ATX and setext headings outside code blocks."""
    lines = text.split("\n")
    out, fence = [], None
    for n, line in enumerate(lines):
        m = re.match(r"^(`{3,}|~{3,})", line)
        if fence:
            fence = None if line.strip().startswith(fence) else fence
            continue
        if m:
            fence = m.group(1)
            continue
        if re.match(r"^#{1,6} ", line):
            out.append(line.lstrip("#").strip())
        elif n + 1 < len(lines) and line.strip() and re.match(r"^(=+|-+)\s*$", lines[n + 1]):
            out.append(line.strip())
    return out


@pytest.mark.parametrize("fixture", FIXTURES)
def test_each_guide_imports_validates_dry_runs_and_reads_like_the_original(proj: Path, fixture: str) -> None:
    guide = GUIDES / f"{fixture}.md"
    said = _import(proj, guide, fixture)
    target = proj / "runbooks" / f"{fixture}.yaml"
    assert said.startswith(f"wrote runbooks/{fixture}.yaml: ")
    data = yaml.safe_load(target.read_text())
    assert list(data)[:2] == ["name", "title"] and list(data)[-1] == "steps" and data["name"] == fixture
    out = io.StringIO()
    assert cli.validate(proj, [str(target)], out=out) == ExitCode.OK
    out = io.StringIO()
    assert cli.dry_run(proj, fixture, "test", [], None, out=out) == ExitCode.OK
    assert "Dry run: nothing was executed" in out.getvalue()
    for step in data["steps"]:
        assert f". {step['id']}: " in out.getvalue()
    assert cli.docs(proj, fixture, out=io.StringIO()) == ExitCode.OK
    docs = (proj / "docs" / f"{fixture}.md").read_text()
    source = guide.read_text()
    headings = _headings(source)
    assert headings
    for heading in headings:
        assert heading in docs, heading
    fences = _fences(source)
    for code in fences:
        # at the top level as written; inside an item indented under its box
        assert code in docs or "\n".join(f"  {x}" if x else "" for x in code.split("\n")) in docs, code
    assert fences or fixture == "nested-lists"
    for step in data["steps"]:
        for item in step["do"]:
            assert f"- [ ] {item['manual'].split(chr(10))[0].replace('$${', '${')}" in docs


def test_the_seed_guide_maps_to_steps_items_and_instructions(proj: Path) -> None:
    _import(proj, GUIDES / "deploy-to-production.md", "deploy-to-production")
    data = yaml.safe_load((proj / "runbooks" / "deploy-to-production.yaml").read_text())
    assert data["title"] == "Deploy to Production"
    assert data["description"].startswith("This guide covers the procedures for deploying code to production")
    steps = {s["id"]: s for s in data["steps"]}
    assert "deploy-to-production" not in steps         # the H1 is the title, not a step
    checklist = steps["step-2-pre-deployment-checklist"]
    assert [i["id"] for i in checklist["do"]][:3] == ["update-version-number-in", "update-changelog-md-with",
                                                      "run-full-test-suite"]
    assert checklist["do"][0]["manual"] == "Update version number in `pyproject.toml` or `app/__init__.py`"  # no box
    assert checklist["instructions"] == "Before creating the PR, complete this checklist:\n"
    # a section without a list: its text as instructions, one confirming item
    branch = steps["step-1-create-a-release-branch"]
    assert branch["do"] == [{"id": "done", "manual": "Step 1: Create a Release Branch"}]
    assert "```bash\ngit checkout develop\ngit pull origin develop\ngit checkout -b release/v1.2.0\n```" \
        in branch["instructions"]
    # headings inside a fenced block are code, not steps
    assert "added" not in steps and "release-information" not in steps
    assert "## Release Information" in steps["pr-description-template"]["instructions"]
    # shell's ${...} escaped for the engine, shown as written in the guide
    assert "CURRENT_REVISION=$${CURRENT_TASK##*:}" in steps["fast-rollback-5-30-minutes"]["instructions"]
    assert "| ECS Cluster | `production` |" in steps["production-environment-details"]["instructions"]
    assert [i["id"] for i in steps["on-call-procedures"]["do"]][0] == "assess-severity-is-the"


def test_nested_items_stay_in_their_parent_and_ids_are_unique(proj: Path) -> None:
    data = convert((GUIDES / "nested-lists.md").read_text(), "nested-lists", "nested-lists.md")
    rotate = {s["id"]: s for s in data["steps"]}["rotate"]
    assert [i["id"] for i in rotate["do"]] == ["create-the-new-key", "store-the-key-in", "store-the-key-in-2",
                                               "confirm-the-old-key"]
    assert rotate["do"][0]["manual"] == "Create the new key\n1) open the console\n2) name it after the quarter"
    clean = {s["id"]: s for s in data["steps"]}["clean-up"]
    assert [i["id"] for i in clean["do"]] == ["revoke-the-old-key", "revoke-the-old-key-2", "confirm-item"]
    for step in data["steps"]:
        ids = [i["id"] for i in step["do"]]
        assert len(ids) == len(set(ids))
    assert len({s["id"] for s in data["steps"]}) == len(data["steps"])


def test_setext_tables_groups_and_code_without_language(proj: Path) -> None:
    data = convert((GUIDES / "tables-and-headings.md").read_text(), "tables-and-headings", "t.md")
    assert data["title"] == "Release calendar"
    assert data["description"] == "Who releases what, and when. Costs are in $${CURRENCY}.\n"
    steps = {s["id"]: s for s in data["steps"]}
    assert list(steps) == ["services", "freeze", "background-why-windows", "background-escalation",
                           "empty-at-the-end"]
    assert steps["services"]["instructions"].startswith("| Service | Owner | Window |\n|:--------|:-----:|-------:|\n")
    assert '~~~\n/freeze on --reason "release $${VERSION}"\n~~~' in steps["freeze"]["instructions"]
    assert "\n    phone: +1 555 0100\n    pager: team-a-oncall\n" in steps["background-escalation"]["instructions"]
    assert steps["empty-at-the-end"] == {"id": "empty-at-the-end", "title": "Empty at the end",
                                         "do": [{"id": "done", "manual": "Empty at the end"}]}


def test_code_inside_numbered_items_belongs_to_the_item(proj: Path) -> None:
    data = convert((GUIDES / "numbered-with-code.md").read_text(), "numbered-with-code", "n.md")
    items = {i["id"]: i["manual"] for i in data["steps"][0]["do"]}
    assert items["find-the-newest-snapshot"].startswith("Find the newest snapshot:\n\n```sh\naws rds describe")
    assert items["restore-it-into-a"].endswith("--db-snapshot-identifier SNAPSHOT\n```")   # code at column 0
    assert "prod-restore-$${DATE}" in items["restore-it-into-a"]
    assert items["wait-until-it-is"] == ("Wait until it is available\n```\naws rds wait db-instance-available "
                                         "--db-instance-identifier prod-restore\n```")
    assert items["point-the-app-at"] == "Point the app at it\n\n    export DATABASE_URL=postgres://prod-restore/app"
    assert items["check-the-row-counts"] == "Check the row counts"
    after = data["steps"][1]
    assert "instructions" not in after and after["do"][0]["manual"].endswith("--skip-final-snapshot\n```")


def test_ids_are_stable_across_imports_and_force_overwrites(proj: Path) -> None:
    guide = GUIDES / "deploy-to-production.md"
    _import(proj, guide, "deploy")
    target = proj / "runbooks" / "deploy.yaml"
    first = target.read_text()
    with pytest.raises(RunbookError) as refused:
        cli.import_guide(proj, str(guide), "deploy", out=io.StringIO())
    assert refused.value.exit_code == ExitCode.INVALID
    assert str(refused.value) == "runbooks/deploy.yaml: already exists; nothing was written (add --force to overwrite it)"
    target.write_text(first.replace("title: Deploy to Production", "title: Edited by hand"))
    edited = target.read_text()
    with pytest.raises(RunbookError):
        cli.import_guide(proj, str(guide), "deploy", out=io.StringIO())
    assert target.read_text() == edited                          # never overwritten without --force
    _import(proj, guide, "deploy", force=True)
    assert target.read_text() == first                           # the same text gives the same ids
    # an edited guide: the items it kept keep their ids
    changed = proj / "changed.md"
    changed.write_text(guide.read_text().replace("- [ ] Update `CHANGELOG.md` with release notes\n", "")
                       .replace("## Prerequisites", "## Prerequisites\n\n- A new first item"))
    _import(proj, changed, "deploy", force=True)
    ids = {s["id"]: [i["id"] for i in s["do"]] for s in yaml.safe_load(first)["steps"]}
    now = {s["id"]: [i["id"] for i in s["do"]] for s in yaml.safe_load(target.read_text())["steps"]}
    assert now["prerequisites"] == ["a-new-first-item"] + ids["prerequisites"]
    assert now["step-2-pre-deployment-checklist"] == [i for i in ids["step-2-pre-deployment-checklist"]
                                                      if i != "update-changelog-md-with"]


def _bad(tmp: Path, name: str, content: bytes | None) -> Path:
    path = tmp / name
    if content is not None:
        path.write_bytes(content)
    return path


BAD = [
    ("empty.md", b"", "{f}: the file is empty; a Markdown guide needs headings or list items"),
    ("blank.md", b"  \n\n\t\n", "{f}: the file is empty; a Markdown guide needs headings or list items"),
    ("prose.md", b"Just a paragraph.\n\nAnd another one, with no heading and no list.\n",
     "{f}: no headings and no list items; a runbook needs sections (# Heading) or instructions (- item, 1. item)"),
    ("latin1.md", "# Title\n\n- caf\u00e9\n".encode("latin-1"),
     "{f}:3:6: not UTF-8 text (byte 0xe9); save the guide as UTF-8"),
    ("missing.md", None, "{f}: no such file"),
    ("unclosed.md", b"# T\n\n## Step\n\n```bash\nmake\n\n## Next\n",
     "{f}:5:1: code block opened with ``` is never closed; close it with ```"),
]


@pytest.mark.parametrize("fname,content,message", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_one_line_exit_2_and_nothing_written(proj: Path, tmp_path: Path, fname: str,
                                                          content: bytes | None, message: str) -> None:
    path = _bad(tmp_path, fname, content)
    with pytest.raises(RunbookError) as failed:
        cli.import_guide(proj, str(path), "guide", out=io.StringIO())
    err = io.StringIO()
    assert cli.report_error(failed.value, err) == ExitCode.INVALID
    assert err.getvalue() == message.format(f=path) + "\n"
    assert not (proj / "runbooks").exists()


@pytest.mark.parametrize("name", ["Deploy", "1deploy", "deploy_prod", "-x", "a" * 65, ""])
def test_a_bad_name_is_exit_2_and_nothing_written(proj: Path, name: str) -> None:
    with pytest.raises(RunbookError) as failed:
        cli.import_guide(proj, str(GUIDES / "nested-lists.md"), name, out=io.StringIO())
    assert failed.value.exit_code == ExitCode.INVALID
    assert str(failed.value) == (f"<command line>: invalid runbook name {name!r}: use lowercase letters, digits and "
                                 "'-', starting with a letter (^[a-z][a-z0-9-]*$, at most 64 characters) (at --name)")
    assert not (proj / "runbooks").exists()


def test_list_items_without_headings_make_one_step() -> None:
    data = convert("- one\n- two\n", "checklist", "c.md")
    assert data == {"name": "checklist", "title": "Checklist", "steps": [
        {"id": "checklist", "title": "Checklist", "do": [{"id": "one", "manual": "one"}, {"id": "two", "manual": "two"}]}]}


def test_the_invoke_command_end_to_end(proj: Path, tmp_path: Path) -> None:
    """As a user types it: import, validate, dry-run; and a refusal is one line, exit 2."""
    home = tmp_path / "state"
    guide = str(GUIDES / "deploy-to-production.md")
    done = invoke("runbook.import", "--path", guide, "--name", "deploy-to-production", root=proj, home=home)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("wrote runbooks/deploy-to-production.yaml: 31 steps, ")
    valid = invoke("runbook.validate", root=proj, home=home)
    assert valid.returncode == 0, valid.stderr
    dry = invoke("runbook", "deploy-to-production", "--dry-run", "--env", "test", root=proj, home=home)
    assert dry.returncode == 0, dry.stderr
    assert "step-8-production-verification: Step 8: Production Verification" in dry.stdout
    again = invoke("runbook.import", "--path", guide, "--name", "deploy-to-production", root=proj, home=home)
    assert (again.returncode, again.stderr, again.stdout) == (
        2, "runbooks/deploy-to-production.yaml: already exists; nothing was written (add --force to overwrite it)\n", "")
    helped = invoke("--help", "runbook.import", root=proj, home=home)
    assert "--force" in helped.stdout and "manual item" in helped.stdout
    # the next steps it printed work as printed (the imported runbook needs no environment)
    printed = done.stdout.splitlines()[1].removeprefix("next: ").split("; ")
    assert len(printed) == 3
    written = os.path.relpath(proj / "runbooks" / "deploy-to-production.yaml", REPO)   # helpers.invoke runs in REPO
    assert printed[0] == f"invoke runbook.validate --path {written}"
    for command in printed:
        argv = shlex.split(command)
        assert argv[0] == "invoke"
        ran = invoke(*argv[1:], root=proj, home=home)
        assert ran.returncode == 0, (command, ran.stdout, ran.stderr)


def test_the_repository_tasks_list_the_command() -> None:
    assert "def import_" in (REPO / "runbook" / "tasks.py").read_text()
