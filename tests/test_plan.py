"""Good runbooks validate, show their plans and prompt ids, and dry-run."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from runbook import cli, params
from runbook.errors import ExitCode, InputError, PluginError, UsageError
from runbook.model import ApprovalSource, Evidence, OnFailure, ParamType
from runbook.plugins import load
from runbook.schemas import load_schema
from runbook.params import param_problem

from conftest import PROJECT, REPO


def run_cli(fn, *args, **kwargs) -> str:
    out = io.StringIO()
    assert fn(*args, out=out, **kwargs) == ExitCode.OK
    return out.getvalue()


def test_scenario_project_validates(state_home: Path) -> None:
    text = run_cli(cli.validate, PROJECT, [])
    assert "4 runbook(s) and 2 environment(s) are valid" in text
    assert not state_home.exists()


def test_show_lists_plan_and_every_prompt_id() -> None:
    text = run_cli(cli.show, PROJECT, "full-feature", "test", [])
    for pid in ("prepare.ready", "prepare.clean.on_fail", "branch.confirm", "branch.bump", "act.poll.on_fail",
                "approve.approval", "verification.health.status.on_fail", "verification.count.eq.on_fail",
                "run.force", "run.on_failure"):
        assert f"    {pid}  (" in text
    assert "verification.health: Health endpoint answers" in text
    assert "lock:        test-api" in text


def test_protected_environment_adds_its_prompt() -> None:
    text = run_cli(cli.show, PROJECT, "full-feature", "guarded", [])
    assert "run.environment  (run)" in text


def test_dry_run_resolves_everything_known(state_home: Path) -> None:
    out = run_cli(cli.dry_run, PROJECT, "full-feature", "test", ["version=v1.2.3", "replicas=3"], None, as_json=True)
    plan = json.loads(out)
    steps = {s["id"]: s for s in plan["steps"]}
    assert steps["prepare"]["do"][0]["with"]["argv"][2] == "print('preparing v1.2.3')"
    assert steps["prepare"]["verify"][1]["with"]["argv"][2] == "print('release v1.2.3')"
    # the include is inlined with namespaced ids, its params bound from with:
    assert steps["verification.health"]["verify"][0]["with"]["url"] == "http://127.0.0.1:9/health"
    assert steps["verification.count"]["verify"][0]["with"]["actual"] == 3
    # references inside the include point at its namespaced steps; outputs stay templates
    assert steps["verification.count"]["verify"][1]["with"]["actual"] == "${steps.verification.health.status.status}"
    assert steps["child"]["run"]["with"]["parent"] == "${run.id}"
    assert plan["lock"] == "test-api"
    assert plan["on_failure"]["with"]["version"] == "v1.2.3"
    assert plan["params"]["version"] == "v1.2.3"
    assert not state_home.exists()


def test_secret_parameter_never_enters_the_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNBOOK_PARAM_TOKEN", "s3cr3t-value-123")
    out = run_cli(cli.dry_run, PROJECT, "full-feature", "test", ["version=v1.2.3"], None, as_json=True)
    assert "s3cr3t-value-123" not in out
    assert json.loads(out)["secret_params"] == ["token"]


def test_digest_is_stable_and_covers_environment_and_params() -> None:
    def digest(env: str, version: str) -> str:
        return cli.build_plan(PROJECT, "full-feature", env, [f"version={version}"], None, True).digest

    assert digest("test", "v1.0.0") == digest("test", "v1.0.0")
    assert digest("test", "v1.0.0") != digest("test", "v1.0.1")
    assert digest("test", "v1.0.0") != digest("guarded", "v1.0.0")


def test_env_references_need_an_environment() -> None:
    with pytest.raises(InputError) as exc:
        cli.build_plan(PROJECT, "full-feature", None, ["version=v1.0.0"], None, True)
    assert "choose an environment with --env (guarded, test)" in str(exc.value)


def test_unknown_runbook_suggests() -> None:
    with pytest.raises(UsageError, match="unknown runbook 'full-featur' \\(did you mean 'full-feature'\\?\\)"):
        cli.build_plan(PROJECT, "full-featur", "test", [], None, True)


def test_checks_lists_builtins_and_team_plugins() -> None:
    text = run_cli(cli.checks, PROJECT)
    for name in ("core.equals", "shell.run", "shell.check", "file.contains", "http.request", "team.greeting"):
        assert f"{name}  (" in text
    assert "* argv: list of string" in text


def test_plugin_registered_twice_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "checks").mkdir()
    (tmp_path / "checks" / "dup.py").write_text(
        "from runbook.plugins import check, Outcome\n\n"
        "@check('core.equals')\ndef again(ctx):\n    return Outcome.ok('x')\n")
    with pytest.raises(PluginError, match="plugin 'core.equals' is already registered by .*runbook/builtin/core.py"):
        load(tmp_path)


def test_schema_enums_match_the_model() -> None:
    rb = load_schema("runbook")["$defs"]
    assert set(rb["param"]["properties"]["type"]["enum"]) == {t.value for t in ParamType}
    assert set(rb["step"]["properties"]["on_failure"]["enum"]) == {t.value for t in OnFailure}
    assert set(rb["item"]["properties"]["evidence"]["enum"]) == {t.value for t in Evidence}
    assert set(rb["approval"]["properties"]["source"]["enum"]) == {t.value for t in ApprovalSource}


def test_schemas_are_valid_2020_12() -> None:
    from jsonschema import Draft202012Validator

    for name in ("runbook", "environment", "answers"):
        schema = load_schema(name)
        assert schema["$schema"].endswith("2020-12/schema")
        Draft202012Validator.check_schema(schema)


def invoke(*args: str, cwd: Path = REPO, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    full = dict(os.environ)
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=cwd, capture_output=True, text=True, env=full)


def test_invoke_reports_errors_as_lines_with_exit_2(tmp_path: Path) -> None:
    bad = REPO / "tests" / "scenarios" / "bad" / "runbooks" / "many-errors.yaml"
    result = invoke("runbook.validate", "--path", str(bad), env={"RUNBOOK_ROOT": str(PROJECT)})
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 3
    assert result.stderr.startswith("tests/scenarios/bad/runbooks/many-errors.yaml:6:1: unknown key 'titel'")


def test_invoke_dry_run_and_secret_refusal() -> None:
    env = {"RUNBOOK_ROOT": str(PROJECT)}
    ok = invoke("runbook", "full-feature", "--env", "test", "--param", "version=v2.0.0", "--dry-run", env=env)
    assert ok.returncode == 0, ok.stderr
    assert "Dry run: nothing was executed" in ok.stdout
    bad = invoke("runbook", "full-feature", "--env", "test", "--param", "token=abc", "--dry-run", env=env)
    assert bad.returncode == 2
    assert bad.stderr.startswith("<command line>: parameter 'token' is secret")
    assert "abc" not in bad.stderr


def test_integer_bounds_are_checked_from_every_source() -> None:
    spec = {"replicas": {"type": "integer", "minimum": 1, "maximum": 50}}
    assert param_problem(spec["replicas"], 50) is None and param_problem(spec["replicas"], 1) is None
    assert param_problem(spec["replicas"], 51) == "51 is above the maximum 50"
    assert param_problem(spec["replicas"], 0) == "0 is below the minimum 1"
    for source, kwargs in (("<command line>", {"cli": ["replicas=99"]}),
                           ("RUNBOOK_PARAM_REPLICAS", {"environ": {"RUNBOOK_PARAM_REPLICAS": "99"}}),
                           ("answers", {"answers": {"replicas": 99}})):
        with pytest.raises(InputError) as caught:
            params.resolve(spec, **kwargs)
        assert [str(d) for d in caught.value.diagnostics] == [
            f"{source}: 99 is above the maximum 50 (at params.replicas)"]
    assert params.resolve(spec, cli=["replicas=50"]).values == {"replicas": 50}


@pytest.mark.parametrize("how", ["command line", "variable", "answers file"])
def test_invoke_refuses_an_integer_above_its_maximum_with_one_line(how: str, tmp_path: Path) -> None:
    env = {"RUNBOOK_ROOT": str(PROJECT)}
    args = ["runbook", "full-feature", "--env", "test", "--param", "version=v1.2.3", "--dry-run"]
    expected = "<command line>: 99 is above the maximum 50 (at params.replicas)"
    if how == "command line":
        args += ["--param", "replicas=99"]
    elif how == "variable":
        env["RUNBOOK_PARAM_REPLICAS"] = "99"
        expected = "RUNBOOK_PARAM_REPLICAS: 99 is above the maximum 50 (at params.replicas)"
    else:
        answers = tmp_path / "answers.yaml"
        answers.write_text("runbook: full-feature\nparams:\n  replicas: 99\nanswers: {}\n")
        args += ["--answers", str(answers)]
        expected = f"{answers}:3:13: 99 is above the maximum 50 (at params.replicas)"
    result = invoke(*args, env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.splitlines() == [expected]
