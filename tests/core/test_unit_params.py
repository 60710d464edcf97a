"""Parameters below the command line (``runbook.params``): where a value comes from, how text
becomes the parameter's type, and errors that name their source."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from runbook.errors import InputError
from runbook.params import check_value, convert, env_var, resolve
from runbook.yamlfile import load_file

SPEC: dict[str, dict[str, Any]] = {
    "version": {"type": "string", "pattern": r"^v\d+\.\d+\.\d+$", "example": "v1.2.0"},
    "replicas": {"type": "integer", "minimum": 1, "maximum": 50},
    "ratio": {"type": "number"},
    "dry": {"type": "boolean", "default": False},
    "service": {"type": "string", "choices": ["api", "worker"], "default": "api"},
    "token": {"type": "string", "secret": True},
}


def errors(**given: Any) -> list[str]:
    """The lines of the InputError ``resolve`` raises for ``given``."""
    with pytest.raises(InputError) as caught:
        resolve(SPEC, **given)
    return caught.value.lines()


# -- precedence ----------------------------------------------------------------------

@pytest.mark.parametrize("cli,environ,answers,value,source", [
    (["replicas=1"], {"RUNBOOK_PARAM_REPLICAS": "2"}, {"replicas": 3}, 1, "<command line>"),
    ([], {"RUNBOOK_PARAM_REPLICAS": "2"}, {"replicas": 3}, 2, "RUNBOOK_PARAM_REPLICAS"),
    ([], {}, {"replicas": 3}, 3, "answers"),
])
def test_command_line_beats_variable_beats_answers_file(cli: list[str], environ: dict[str, str],
                                                        answers: dict[str, Any], value: int, source: str) -> None:
    params = resolve(SPEC, cli, environ, answers)
    assert params.values["replicas"] == value and params.sources["replicas"] == source


def test_a_default_is_used_last_and_a_parameter_without_one_is_missing() -> None:
    params = resolve(SPEC, ["version=v1.0.0"])
    assert params.values == {"version": "v1.0.0", "dry": False, "service": "api"}
    assert params.sources["dry"] == "default"
    assert params.missing == ["replicas", "ratio", "token"]


def test_a_given_value_replaces_the_default() -> None:
    params = resolve(SPEC, ["dry=yes"], {}, {"service": "worker"})
    assert params.values["dry"] is True and params.values["service"] == "worker"
    assert params.sources == {"dry": "<command line>", "service": "answers"}


def test_a_value_that_loses_on_precedence_is_not_checked() -> None:
    """The answers file's value never counts when the command line gives one, so it is not judged."""
    params = resolve(SPEC, ["replicas=4"], {}, {"replicas": "not a number"})
    assert params.values["replicas"] == 4


def test_a_secret_from_its_variable_is_held_apart_and_never_public() -> None:
    params = resolve(SPEC, [], {"RUNBOOK_PARAM_TOKEN": "hunter2"})
    assert params.secrets == {"token": "hunter2"} and "token" not in params.public()
    assert params.get("token") == "hunter2" and params.sources["token"] == "RUNBOOK_PARAM_TOKEN"


@pytest.mark.parametrize("name,var", [("version", "RUNBOOK_PARAM_VERSION"),
                                      ("release_run", "RUNBOOK_PARAM_RELEASE_RUN"), ("a-b.c", "RUNBOOK_PARAM_A_B_C")])
def test_the_variable_name_is_the_upper_case_name_with_underscores(name: str, var: str) -> None:
    assert env_var(name) == var


def test_the_value_after_the_first_equals_sign_is_kept_whole() -> None:
    spec = {"query": {"type": "string"}}
    assert resolve(spec, [" query =a=b= "]).values == {"query": "a=b= "}


# -- conversion ----------------------------------------------------------------------

@pytest.mark.parametrize("ptype,raw,value", [
    ("integer", " 42 ", 42), ("integer", "-3", -3),
    ("number", "3", 3), ("number", "0.25", 0.25), ("number", "1e3", 1000.0),
    ("boolean", "true", True), ("boolean", " Yes ", True), ("boolean", "1", True), ("boolean", "ON", True),
    ("boolean", "false", False), ("boolean", "no", False), ("boolean", "0", False), ("boolean", "off", False),
    ("string", " as is ", " as is "),
])
def test_text_becomes_the_parameters_type(ptype: str, raw: str, value: Any) -> None:
    converted = convert({"type": ptype}, raw)
    assert converted == value and type(converted) is type(value)


@pytest.mark.parametrize("ptype,raw,message", [
    ("integer", "4.5", "'4.5' is not an integer"),
    ("integer", "ten", "'ten' is not an integer"),
    ("number", "1.2.3", "'1.2.3' is not a number"),
    ("boolean", "maybe", "'maybe' is not a boolean (true/false)"),
])
def test_text_that_is_not_of_the_type_is_refused_with_the_reason(ptype: str, raw: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        convert({"type": ptype}, raw)
    assert str(caught.value) == message


def test_a_typed_value_from_an_answers_file_is_kept_as_it_is() -> None:
    assert convert({"type": "integer"}, 5) == 5
    assert convert({"type": "boolean"}, True) is True


def test_a_value_typed_at_a_prompt_is_converted_and_checked() -> None:
    assert check_value(SPEC["replicas"], "7") == 7
    with pytest.raises(ValueError, match="above the maximum 50"):
        check_value(SPEC["replicas"], "51")
    with pytest.raises(ValueError, match="does not match"):
        check_value(SPEC["version"], "1.2")


# -- errors name their source ----------------------------------------------------------

@pytest.mark.parametrize("given,line", [
    ({"cli": ["replicas=x"]}, "<command line>: 'x' is not an integer (at params.replicas)"),
    ({"cli": ["replicas=0"]}, "<command line>: 0 is below the minimum 1 (at params.replicas)"),
    ({"environ": {"RUNBOOK_PARAM_REPLICAS": "99"}},
     "RUNBOOK_PARAM_REPLICAS: 99 is above the maximum 50 (at params.replicas)"),
    ({"environ": {"RUNBOOK_PARAM_DRY": "perhaps"}},
     "RUNBOOK_PARAM_DRY: 'perhaps' is not a boolean (true/false) (at params.dry)"),
    ({"answers": {"service": "wroker"}}, "answers: 'wroker' is not one of 'api', 'worker' (did you mean 'worker'?) "
                                         "(at params.service)"),
    ({"cli": ["version=1.2"]}, "<command line>: '1.2' does not match '^v\\d+\\.\\d+\\.\\d+$': expected a version "
                               "like v1.2.0 (at params.version)"),
])
def test_an_error_names_where_the_value_came_from(given: dict[str, Any], line: str) -> None:
    assert errors(**given) == [line]


def test_every_error_is_reported_at_once() -> None:
    lines = errors(cli=["replicas=x", "colour=red", "ratio"], environ={"RUNBOOK_PARAM_DRY": "maybe"})
    assert len(lines) == 4
    assert any("'colour'" in x for x in lines) and any("NAME=VALUE" in x for x in lines)
    assert any(x.startswith("RUNBOOK_PARAM_DRY:") for x in lines) and any("'x' is not an integer" in x for x in lines)


def test_an_unknown_parameter_gets_the_nearest_name_suggested() -> None:
    assert errors(cli=["replica=2"]) == ["<command line>: unknown parameter 'replica' (did you mean 'replicas'?) "
                                         "(at params.replica)"]
    assert errors(answers={"verison": "v1.0.0"}) == ["answers: unknown parameter 'verison' (did you mean 'version'?) "
                                                     "(at params.verison)"]


def test_a_parameter_given_twice_on_the_command_line_is_refused() -> None:
    assert errors(cli=["replicas=2", "replicas=3"]) == [
        "<command line>: parameter 'replicas' is given twice ('2' and '3'); give it once (at params.replicas)"]


def test_a_missing_equals_sign_shows_the_expected_form() -> None:
    assert errors(cli=["replicas"]) == ["<command line>: --param 'replicas' needs the form NAME=VALUE"]


def test_a_variable_for_an_unknown_parameter_is_ignored() -> None:
    assert resolve(SPEC, [], {"RUNBOOK_PARAM_COLOUR": "red"}).values == {"dry": False, "service": "api"}


# -- secrets ---------------------------------------------------------------------------

def test_a_secret_is_refused_on_the_command_line_naming_its_variable() -> None:
    assert errors(cli=["token=hunter2"]) == [
        "<command line>: parameter 'token' is secret and may not be given on the command line (shell history, ps); "
        "set RUNBOOK_PARAM_TOKEN or let the engine ask for it (at params.token)"]


def test_a_refused_secret_is_never_echoed() -> None:
    assert not any("hunter2" in line for line in errors(cli=["token=hunter2"]))


def test_a_secret_in_an_answers_file_is_refused_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "answers.yaml"
    path.write_text("runbook: r\nparams:\n  replicas: zz\n  token: hunter2\n")
    doc = load_file(path, tmp_path)
    lines = errors(answers=doc.data["params"], answers_doc=doc)
    assert sorted(lines) == [
        "answers.yaml:3:13: 'zz' is not an integer (at params.replicas)",
        "answers.yaml:4:10: parameter 'token' is secret and may not be written in an answers file; "
        "set RUNBOOK_PARAM_TOKEN (at params.token)"]


def test_without_the_file_an_answers_error_says_answers() -> None:
    assert errors(answers={"token": "hunter2"}) == [
        "answers: parameter 'token' is secret and may not be written in an answers file; set RUNBOOK_PARAM_TOKEN "
        "(at params.token)"]


def test_a_secret_in_an_answers_file_is_refused_even_when_its_variable_is_set() -> None:
    with pytest.raises(InputError, match="may not be written in an answers file"):
        resolve(SPEC, [], {"RUNBOOK_PARAM_TOKEN": "from-the-variable"}, {"token": "written-down"})
