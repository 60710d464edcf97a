"""Templates below the command line (``runbook.templates``): dotted lookups and nothing else,
typed whole templates, text inside longer strings, ``$${`` escapes and partial rendering."""

from __future__ import annotations

from typing import Any

import pytest

from runbook import templates
from runbook.templates import Ref, TemplateError, Unresolved

KNOWN: dict[str, Any] = {"params.replicas": 3, "params.dry": True, "params.off": False, "params.none": None,
                         "params.version": "v1.2.0", "env.ecs.cluster": "production",
                         "params.tags": ["a", "b"]}


def lookup(ref: Ref) -> Any:
    if ref.dotted in KNOWN:
        return KNOWN[ref.dotted]
    raise Unresolved(ref.text)


# -- parse -----------------------------------------------------------------------------

@pytest.mark.parametrize("expr,root,parts", [
    ("params.version", "params", ("version",)),
    ("env.ecs.cluster", "env", ("ecs", "cluster")),
    ("run.id", "run", ("id",)),
    ("steps.release-pr.open.number", "steps", ("release-pr", "open", "number")),
    ("steps.inc.inner.w.0", "steps", ("inc", "inner", "w", "0")),
])
def test_a_dotted_lookup_parses_into_its_root_and_names(expr: str, root: str, parts: tuple[str, ...]) -> None:
    ref = templates.parse(expr)
    assert (ref.root, ref.parts, ref.text, ref.dotted) == (root, parts, "${" + expr + "}", expr)


@pytest.mark.parametrize("expr,message", [
    ("__class__", "${__class__}: private names (starting with '_') cannot be referenced"),
    ("params.__class__", "${params.__class__}: private names (starting with '_') cannot be referenced"),
    ("params._secret", "${params._secret}: private names (starting with '_') cannot be referenced"),
    ("params.a[0]", "${params.a[0]}: templates are dotted lookups like ${params.version}; 'a[0]' is not a plain name "
                    "(no expressions, calls or indexing)"),
    ("params.f()", "${params.f()}: templates are dotted lookups like ${params.version}; 'f()' is not a plain name "
                   "(no expressions, calls or indexing)"),
    ("params.a+1", "${params.a+1}: templates are dotted lookups like ${params.version}; 'a+1' is not a plain name "
                   "(no expressions, calls or indexing)"),
    ("params..a", "${params..a}: templates are dotted lookups like ${params.version}; '' is not a plain name "
                  "(no expressions, calls or indexing)"),
    (" params.a", "${ params.a}: no spaces inside a template"),
    ("params.a ", "${params.a }: no spaces inside a template"),
    ("", "${}: empty template"),
    ("params", "${params}: name what to look up under 'params'"),
    ("secrets.token", "${secrets.token}: unknown root 'secrets'; use one of params, env, run, steps, each"),
])
def test_anything_but_a_plain_dotted_lookup_is_refused(expr: str, message: str) -> None:
    with pytest.raises(TemplateError) as caught:
        templates.parse(expr)
    assert str(caught.value) == message


# -- refs, whole, unterminated ---------------------------------------------------------

def test_refs_finds_every_template_and_skips_escapes() -> None:
    found = templates.refs("release/${params.version} on $${env.x} in ${env.ecs.cluster}")
    assert [r.dotted for r in found] == ["params.version", "env.ecs.cluster"]


def test_refs_raises_on_the_first_bad_template() -> None:
    with pytest.raises(TemplateError, match="private names"):
        templates.refs("${params.ok} ${params._bad}")


@pytest.mark.parametrize("value,torn", [
    ("${params.version", True),
    ("v=${params.version} and ${", True),
    ("${params.a}", False),
    ("$${params.version", False),           # an escaped, literal ``${``
    ("price: $5 {", False),
])
def test_an_unterminated_template_is_found(value: str, torn: bool) -> None:
    assert templates.unterminated(value) is torn
    if torn:
        with pytest.raises(TemplateError, match="unterminated"):
            templates.refs(value)


@pytest.mark.parametrize("value,dotted", [
    ("${params.version}", "params.version"),
    (" ${params.version}", None),
    ("${params.a}${params.b}", None),
    ("$${params.version}", None),
    ("v${params.version}", None),
    (3, None),
    (None, None),
])
def test_whole_is_a_string_that_is_exactly_one_template(value: Any, dotted: str | None) -> None:
    ref = templates.whole(value)
    assert (ref.dotted if ref else None) == dotted


def test_whole_refuses_a_bad_template() -> None:
    with pytest.raises(TemplateError):
        templates.whole("${params.__class__}")


# -- render ----------------------------------------------------------------------------

@pytest.mark.parametrize("value,rendered", [
    ("${params.replicas}", 3),
    ("${params.dry}", True),
    ("${params.none}", None),
    ("${params.tags}", ["a", "b"]),
    ("n=${params.replicas}", "n=3"),
    ("dry=${params.dry}, off=${params.off}", "dry=true, off=false"),
    ("[${params.none}]", "[]"),
    ("${env.ecs.cluster}/${params.version}", "production/v1.2.0"),
    ("cost $${price} ${params.replicas}", "cost ${price} 3"),
    ("$${params.version}", "${params.version}"),
    ("no templates $5", "no templates $5"),
])
def test_a_whole_template_keeps_its_type_and_one_inside_text_reads_as_text(value: str, rendered: Any) -> None:
    assert templates.render(value, lookup) == rendered


def test_render_walks_mappings_and_lists_and_leaves_other_values_alone() -> None:
    value = {"argv": ["scale", "${params.replicas}", "--cluster=${env.ecs.cluster}"], "count": 2, "on": True,
             "nested": {"v": "${params.version}"}}
    assert templates.render(value, lookup) == {"argv": ["scale", 3, "--cluster=production"], "count": 2, "on": True,
                                               "nested": {"v": "v1.2.0"}}


def test_an_unknown_value_raises_unless_rendering_is_partial() -> None:
    for value in ("${steps.a.b.c}", "n=${params.replicas} pr=${steps.a.b.c}"):
        with pytest.raises(Unresolved):
            templates.render(value, lookup)
    assert templates.render("${steps.a.b.c}", lookup, partial=True) == "${steps.a.b.c}"
    assert templates.render("n=${params.replicas} pr=${steps.a.b.c}", lookup, partial=True) == \
        "n=3 pr=${steps.a.b.c}"


def test_partial_rendering_keeps_escapes_so_a_second_pass_gives_the_same_text() -> None:
    value = "$${literal} ${params.replicas} ${steps.a.b.c}"
    once = templates.render(value, lookup, partial=True)
    assert once == "$${literal} 3 ${steps.a.b.c}"

    def later(ref: Ref) -> Any:
        return "42" if ref.dotted == "steps.a.b.c" else lookup(ref)
    assert templates.render(once, later) == templates.render(value, later) == "${literal} 3 42"


def test_a_lookup_error_other_than_unresolved_is_never_swallowed() -> None:
    def broken(ref: Ref) -> Any:
        raise KeyError(ref.text)
    with pytest.raises(KeyError):
        templates.render("x ${params.a}", broken, partial=True)


# -- helpers -----------------------------------------------------------------------------

def test_walk_strings_yields_every_string_with_its_path() -> None:
    value = {"a": ["x", {"b": "y"}, 3], "c": "z"}
    assert list(templates.walk_strings(value)) == [(("a", 0), "x"), (("a", 1, "b"), "y"), (("c",), "z")]


@pytest.mark.parametrize("value,has", [({"a": ["${params.x}"]}, True), ({"a": ["$5"]}, False), ("plain", False),
                                       (7, False)])
def test_has_templates(value: Any, has: bool) -> None:
    assert templates.has_templates(value) is has


@pytest.mark.parametrize("value,text", [(True, "true"), (False, "false"), (None, ""), (3, "3"), (0.5, "0.5"),
                                        ("s", "s")])
def test_as_text(value: Any, text: str) -> None:
    assert templates.as_text(value) == text
