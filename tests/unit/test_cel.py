"""CEL `when` expressions: what they see, what compiles, and the errors users get."""

from __future__ import annotations

from typing import Any

import pytest

from jobchain.engine.spec import cel

VARIABLES: dict[str, Any] = {
    "output": {"status": "ok", "count": 3, "items": ["a", "b"], "nested": {"flag": True}},
    "input": {"from": "extract"},
    "params": {"env": "prod"},
    "node": {"name": "check", "phase": "Succeeded", "exitCode": 0},
    "nodes": {"extract": {"phase": "Succeeded", "output": {"rows": 10}}, "lint": {"phase": "Failed", "output": None}},
}

TRUTHS: list[tuple[str, bool]] = [
    ('output.status == "ok"', True),
    ("output.count > 5", False),
    ("output.count >= 3 && size(output.items) == 2", True),
    ('"b" in output.items', True),
    ("output.nested.flag", True),
    ("has(output.missing)", False),
    ("has(output.status)", True),
    ("has(output.missing) && output.missing > 1", False),
    ('!has(output.missing) || output.missing == "x"', True),
    ('input.from == "extract"', True),
    ('params.env == "prod"', True),
    ("node.exitCode == 0", True),
    ('node.phase == "Succeeded"', True),
    ("nodes.extract.output.rows == 10", True),
    ('nodes.lint.phase == "Failed"', True),
    ('output.status.startsWith("o")', True),
    ('output.status.matches("^o.$")', True),
]


@pytest.mark.parametrize(("expression", "expected"), TRUTHS)
def test_when_sees_output_input_params_node_and_nodes(expression: str, expected: bool) -> None:
    assert cel.evaluate_bool(expression, VARIABLES) is expected


def test_output_can_be_a_plain_string_or_null() -> None:
    assert cel.evaluate_bool('output == "done"', {"output": "done"}) is True
    assert cel.evaluate_bool("output == null", {"output": None}) is True


RUNTIME_ERRORS: list[tuple[str, str]] = [
    ("output.missing == 1", "has(...)"),
    ("output.count", "must evaluate to a bool"),
    ('output.status + 1 == 2', ""),
    ("1 / 0 == 1", "divide by zero"),
    ("nope == 1", ""),
]


@pytest.mark.parametrize(("expression", "phrase"), RUNTIME_ERRORS)
def test_runtime_errors_become_cel_error(expression: str, phrase: str) -> None:
    with pytest.raises(cel.CelError) as info:
        cel.evaluate_bool(expression, VARIABLES)
    assert phrase in str(info.value)
    assert str(info.value)


def test_field_of_null_output_is_an_error_not_false() -> None:
    with pytest.raises(cel.CelError):
        cel.evaluate_bool("output.ok", {"output": None})


@pytest.mark.parametrize("expression", ["output.", "a ==", "size(", "output.x ==== 1", "'unterminated"])
def test_check_refuses_what_does_not_compile(expression: str) -> None:
    with pytest.raises(cel.CelError, match="does not compile"):
        cel.check(expression)


@pytest.mark.parametrize("expression", ['output.x == "y"', "has(output.a)", "true", "nodes.a.phase == 'Failed'"])
def test_check_accepts_valid_expressions(expression: str) -> None:
    cel.check(expression)


@pytest.mark.parametrize(
    ("expression", "unknown"),
    [("outptu.rows > 1", "outptu"), ("output.ok && stauts == 'x'", None), ("foo", "foo"),
     ("inputs.k == 1", "inputs")],
)
def test_check_reports_a_misspelt_variable(expression: str, unknown: str | None) -> None:
    # A trial run on empty variables finds a misspelt name only when its error is the one the
    # expression ends with: here `output.ok` already errs on the empty output, and CEL keeps
    # that error. Such a typo still fails at run time, as a ConditionError naming it.
    if unknown is None:
        cel.check(expression)
        return
    with pytest.raises(cel.CelError, match=f"unknown name '{unknown}'"):
        cel.check(expression)


@pytest.mark.parametrize("expression", ["output.rows > 10", "has(output.x) && output.x", "size(nodes) > 0",
                                        "nodes.a.phase == 'Succeeded'", "node.exitCode == 0 || input.k == params.p"])
def test_check_accepts_every_variable(expression: str) -> None:
    cel.check(expression)
