"""CEL for edge conditions, on top of cel-python (a maintained pure-Python implementation).

Why a wrapper: the rest of the engine sees a few functions and one error type, compiled
programs are cached by their text (a `when` is compiled once, then evaluated for each
execution), and cel-python's errors (returned or raised) become one `CelError` with a
readable message. Values are converted to CEL once (`to_cel`) and the converted values
reused for every edge of a planning pass (`evaluate_activation`): converting every node's
output again for each of 499 edges made one pass take seconds.

Why a step budget: a short `when` can cost without bound (four nested `.all()` over ten
items each are 10^4 evaluations; six take a minute), and it runs on the operator that
serves every namespace. Every evaluation counts its steps (nodes of the expression visited)
and stops at a budget, deterministically: the same input always gets the same answer.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from contextvars import ContextVar
from functools import lru_cache
from typing import Any

import celpy
import lark
from celpy import celtypes
from celpy.adapter import json_to_cel
from celpy.evaluation import CELEvalError, Evaluator

from jobchain.api.limits import CEL_EVAL_STEPS, VALIDATION_CEL_STEPS
from jobchain.engine.spec.suggest import did_you_mean

# lark (under celpy) logs grammar noise at import and parse time.
logging.getLogger("lark").setLevel(logging.ERROR)
logging.getLogger("celpy").setLevel(logging.ERROR)


class CelError(Exception):
    """A `when` expression that does not compile or does not evaluate to a bool."""


class Budget:
    """Evaluation steps left; shared by the evaluations it is passed to (e.g. one validation)."""

    def __init__(self, steps: int) -> None:
        self.steps = steps

    def spend(self) -> None:
        self.steps -= 1
        if self.steps < 0:
            raise _OverBudget


class _OverBudget(BaseException):
    """Raised inside cel-python; a BaseException so that its `except Exception` cannot swallow it."""


_BUDGET: ContextVar[Budget | None] = ContextVar("cel_budget", default=None)


class _CountingEvaluator(Evaluator):
    """cel-python's tree-walking evaluator, spending one step of the current budget per node visited."""

    def visit_children(self, tree: lark.Tree[Any]) -> list[Any]:
        budget = _BUDGET.get()
        if budget is not None:
            budget.spend()
        return super().visit_children(tree)

    def sub_evaluator(self, ast: lark.Tree[Any]) -> Evaluator:  # macros (all, exists, map...) evaluate with it
        return _CountingEvaluator(ast, activation=self.activation)


class _CountingRunner(celpy.InterpretedRunner):
    def evaluate(self, context: Any) -> Any:
        return _CountingEvaluator(ast=self.ast, activation=self.new_activation()).evaluate(context)


_ENV = celpy.Environment(runner_class=_CountingRunner)


@contextlib.contextmanager
def _spending(budget: Budget) -> Iterator[None]:
    token = _BUDGET.set(budget)
    try:
        yield
    finally:
        _BUDGET.reset(token)


def _over_budget(steps: int) -> CelError:
    return CelError(f"costs more than {steps} evaluation steps (nested all/exists/map/filter over long "
                    "lists multiply); simplify the expression")


@lru_cache(maxsize=1024)
def _program(expression: str) -> Any:
    try:
        ast = _ENV.compile(expression)
    except Exception as exc:  # celpy raises CELParseError and lark errors
        text = str(exc).strip().splitlines()
        raise CelError(f"does not compile: {' '.join(line.strip() for line in text if line.strip())}") from None
    return _ENV.program(ast)


VARIABLES = ("output", "input", "params", "node", "nodes")
FOR_EACH_VARIABLES = ("input", "params", "nodes")
_UNDECLARED = re.compile(r"undeclared reference to '([^']+)'")


def check(expression: str, budget: Budget | None = None, variables: tuple[str, ...] = VARIABLES,
          what: str = "`when`") -> None:
    """Raises CelError if the expression does not compile, or names a variable that does not exist.

    Why a trial evaluation: cel-python does not type-check, so a typo such as `outptu.rows`
    would only show at run time, as a ConditionError that fails the execution. Evaluated once
    with every variable empty, such a name is reported at once; other errors of that trial run
    (a key missing from the empty output) are expected and ignored. An expression that costs
    more than one evaluation's budget even with empty inputs is refused; `budget`, shared by
    the checks of one workflow, caps them all together.
    """
    program = _program(expression)
    if _plain(expression, variables):
        return  # every name is a variable and nothing can repeat: the trial run could find nothing
    steps = CEL_EVAL_STEPS if budget is None else min(CEL_EVAL_STEPS, max(budget.steps, 0))
    trial = Budget(steps)
    try:
        with _spending(trial):
            result = program.evaluate({name: json_to_cel({}) for name in variables})
    except _OverBudget:
        if steps < CEL_EVAL_STEPS:  # the workflow's budget ran out, not this expression's
            assert budget is not None
            budget.steps = -1  # said once: the checks after this one are skipped
            raise CelError("not checked: the conditions of this workflow together cost more than the "
                           f"{VALIDATION_CEL_STEPS} steps the operator spends checking one workflow; "
                           "simplify them") from None
        raise _over_budget(CEL_EVAL_STEPS) from None
    except Exception as exc:  # cel-python both raises and returns its errors
        result = exc
    finally:
        if budget is not None and budget.steps >= 0:
            budget.steps -= steps - max(trial.steps, 0)
    if isinstance(result, BaseException):
        match = _UNDECLARED.search(_eval_message(result))
        if match:
            name = match.group(1)
            raise CelError(f"unknown name {name!r}{did_you_mean(name, variables)}: {what} can use "
                           f"{', '.join(variables)}")


@lru_cache(maxsize=1024)
def _plain(expression: str, variables: tuple[str, ...] = VARIABLES) -> bool:
    """True when every bare name is one of `variables` and there is no method call or macro.

    Why: most conditions are like `output.rows > 10 && has(output.key)`; for them the trial
    evaluation of `check` can report nothing (no unknown name; cost linear in the text), and
    skipping it makes validating a workflow with hundreds of conditions several times faster.
    """
    for tree in _program(expression).ast.iter_subtrees():
        if tree.data == "member_dot_arg":  # x.f(...): a macro (all, exists, map, ...) or a method
            return False
        if tree.data == "ident" and str(tree.children[0]) not in variables:
            return False
    return True


def param_names(expression: str) -> set[str]:
    """The params an expression reads by name (`params.X`, `params['X']`); empty if it does not compile.

    Why: secret params are not in the `params` a condition sees, so naming one is a mistake
    the validation reports before a run, rather than a condition that fails or is false.
    """
    try:
        tree = _program(expression).ast
    except CelError:
        return set()
    found: set[str] = set()
    for sub in tree.iter_subtrees():
        if sub.data not in ("member_dot", "member_index") or len(sub.children) != 2:
            continue
        operand, key = sub.children
        idents = [t for t in getattr(operand, "iter_subtrees", lambda: [])() if t.data == "ident"]
        if len(idents) != 1 or str(idents[0].children[0]) != "params" or operand.data != "member" \
                or len(list(operand.iter_subtrees())) != 3:  # exactly member > primary > ident
            continue
        if sub.data == "member_dot":
            found.add(str(key))
        else:
            literals = [t for t in key.iter_subtrees() if t.data == "literal"]
            text = str(literals[0].children[0]) if len(literals) == 1 else ""
            if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
                found.add(text[1:-1])
    return found


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def to_cel(value: Any) -> Any:
    """A JSON value as CEL sees it. An integer outside CEL's int (signed 64-bit) becomes a
    double, as CEL itself reads JSON numbers, instead of failing the whole conversion."""
    if isinstance(value, bool):
        return celtypes.BoolType(value)
    if isinstance(value, int):
        if _INT64_MIN <= value <= _INT64_MAX:
            return celtypes.IntType(value)
        return celtypes.DoubleType(float(value))
    if isinstance(value, dict):
        return celtypes.MapType({celtypes.StringType(str(k)): to_cel(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return celtypes.ListType([to_cel(v) for v in value])
    return json_to_cel(value)


def evaluate_bool(expression: str, variables: dict[str, Any]) -> bool:
    """Evaluates a `when` over plain JSON variables; see evaluate_activation."""
    try:
        activation = {name: to_cel(value) for name, value in variables.items()}
    except (ValueError, TypeError, RecursionError) as exc:
        raise CelError(f"a value cannot be given to CEL: {exc}") from None
    return evaluate_activation(expression, activation)


def evaluate_activation(expression: str, activation: dict[str, Any], spent: Budget | None = None) -> bool:
    """Evaluates a `when` over variables already converted with to_cel; raises CelError on a
    runtime error or a non-bool result. The steps it took are taken from `spent` too (a planning
    pass's budget, which may go below zero: the pass, not this evaluation, decides what to do)."""
    result = _evaluate(expression, activation, spent)
    if not isinstance(result, celtypes.BoolType):
        raise CelError(f"must evaluate to a bool, got {type(result).__name__.replace('Type', '').lower()} {result!r}")
    return bool(result)


def evaluate_value(expression: str, activation: dict[str, Any], spent: Budget | None = None) -> Any:
    """Evaluates an expression over converted variables to a plain JSON value (forEach), within
    the budget of one evaluation as a `when`; the steps it took are taken from `spent` too."""
    return from_cel(_evaluate(expression, activation, spent))


def _evaluate(expression: str, activation: dict[str, Any], spent: Budget | None) -> Any:
    """One evaluation within CEL_EVAL_STEPS; the steps it took are taken from `spent` too.
    Raises CelError for a runtime error or an evaluation over its budget."""
    program = _program(expression)
    budget = Budget(CEL_EVAL_STEPS)
    try:
        with _spending(budget):
            result = program.evaluate(activation)
    except _OverBudget:
        raise _over_budget(CEL_EVAL_STEPS) from None
    except Exception as exc:
        raise CelError(_eval_message(exc)) from None
    finally:
        if spent is not None:
            spent.steps -= CEL_EVAL_STEPS - max(budget.steps, 0)
    if isinstance(result, CELEvalError):
        raise CelError(_eval_message(result))
    return result


def from_cel(value: Any) -> Any:
    """A CEL value as plain JSON; raises CelError for what JSON cannot hold (bytes, types)."""
    if value is None or isinstance(value, celtypes.NullType):
        return None
    if isinstance(value, celtypes.BoolType):
        return bool(value)
    if isinstance(value, celtypes.IntType | celtypes.UintType):
        return int(value)
    if isinstance(value, celtypes.DoubleType):
        number = float(value)
        return int(number) if number.is_integer() and abs(number) < 2**53 else number
    if isinstance(value, celtypes.StringType):
        return str(value)
    if isinstance(value, celtypes.ListType):
        return [from_cel(v) for v in value]
    if isinstance(value, celtypes.MapType):
        return {str(k): from_cel(v) for k, v in value.items()}
    raise CelError(f"a {type(value).__name__.replace('Type', '').lower()} cannot be a JSON value")


def _eval_message(exc: BaseException) -> str:
    args = getattr(exc, "args", ())
    text = str(args[0]) if args else str(exc)
    if "no such member" in text or "no such key" in text:
        return f"{text} (test optional keys with has(...))"
    return text
