"""`$(...)` substitution: what a node's script, command, args and env end up containing."""

from __future__ import annotations

from typing import Any

import pytest

from jobchain.engine.spec.refs import Reference, Scope, UnresolvedReference, find, parse

SCOPE = Scope(
    params={"env": "prod", "count": "3"},
    execution_name="run-1",
    namespace="team-a",
    input={"url": "http://x", "items": [{"id": 7}, {"id": 8}], "n": 2, "ok": True, "none": None},
    has_input=True,
    outputs={"build": {"image": "app:1.2", "tags": ["a", "b"]}, "plain": "hello world", "empty": None},
)

SUBSTITUTIONS: list[tuple[str, str, str]] = [
    ("param", "deploy to $(params.env)", "deploy to prod"),
    ("two params", "$(params.env)-$(params.count)", "prod-3"),
    ("execution name and namespace", "$(execution.name)@$(execution.namespace)", "run-1@team-a"),
    ("input key", "curl $(input.url)", "curl http://x"),
    ("input list index", "$(input.items.1.id)", "8"),
    ("number as JSON", "n=$(input.n)", "n=2"),
    ("bool as JSON", "$(input.ok)", "true"),
    ("null as JSON", "$(input.none)", "null"),
    ("whole input as compact sorted JSON", "$(input.items)", '[{"id":7},{"id":8}]'),
    ("node output key", "$(nodes.build.output.image)", "app:1.2"),
    ("whole object output", "$(nodes.build.output)", '{"image":"app:1.2","tags":["a","b"]}'),
    ("string output as it is", "echo '$(nodes.plain.output)'", "echo 'hello world'"),
    ("Kubernetes' own $(VAR) is left for Kubernetes", "echo $(HOME) $(params.env)", "echo $(HOME) prod"),
    ("shell $VAR and $(( )) untouched", "echo $X $((1+2))", "echo $X $((1+2))"),
    ("text without references", "plain text", "plain text"),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in SUBSTITUTIONS], ids=[c[0] for c in SUBSTITUTIONS])
def test_a_reference_is_replaced_by_its_value(text: str, expected: str) -> None:
    assert SCOPE.substitute(text) == expected


UNRESOLVED: list[tuple[str, Scope, str, list[str]]] = [
    ("missing input key", SCOPE, "$(input.nope)", ["$(input.nope)", "no key 'nope'", "it is a dict"]),
    ("index past the end", SCOPE, "$(input.items.5)", ["$(input.items.5)", "no key '5'", "list"]),
    ("key into a string", SCOPE, "$(nodes.plain.output.x)", ["$(nodes.plain.output.x)", "it is a str"]),
    ("key into null output", SCOPE, "$(nodes.empty.output.x)", ["$(nodes.empty.output.x)", "null"]),
    ("node that has not run", SCOPE, "$(nodes.later.output)", ["$(nodes.later.output)", "'later' has not run"]),
    ("no input", Scope(params={}, execution_name="r", namespace="n"), "$(input)",
     ["$(input)", "no input"]),
    ("unknown param", SCOPE, "$(params.nope)", ["$(params.nope)", "no such param"]),
    ("malformed", SCOPE, "$(nodes.build)", ["$(nodes.build)", "not a valid reference"]),
]


@pytest.mark.parametrize(("scope", "text", "phrases"), [c[1:] for c in UNRESOLVED], ids=[c[0] for c in UNRESOLVED])
def test_unresolvable_reference_is_an_error_naming_it_never_empty(scope: Scope, text: str, phrases: list[str]) -> None:
    with pytest.raises(UnresolvedReference) as info:
        scope.substitute(f"echo {text}")
    for phrase in phrases:
        assert phrase in str(info.value)


PARSED: list[tuple[str, Reference | None]] = [
    ("params.x", Reference("params.x", "params", "x", ())),
    ("input", Reference("input", "input", None, ())),
    ("input.a.b", Reference("input.a.b", "input", None, ("a", "b"))),
    ("nodes.n.output", Reference("nodes.n.output", "nodes", "n", ())),
    ("nodes.n.output.k.0", Reference("nodes.n.output.k.0", "nodes", "n", ("k", "0"))),
    ("execution.name", Reference("execution.name", "execution", "name", ())),
    ("params", None),
    ("params.a.b", None),
    ("nodes.n", None),
    ("nodes.n.result", None),
    ("execution.uid", None),
    ("input..a", None),
]


@pytest.mark.parametrize(("text", "expected"), PARSED, ids=[p[0] for p in PARSED])
def test_a_reference_parses_to_its_parts_or_to_none_when_malformed(text: str, expected: Reference | None) -> None:
    assert parse(text) == expected


def test_find_yields_only_our_references_in_order() -> None:
    found: list[tuple[str, Any]] = list(find("$(HOME) $(params.a) $(input.x) $(nodes.b) $(PATH)"))
    assert [raw for raw, _ in found] == ["params.a", "input.x", "nodes.b"]
    assert found[2][1] is None
