"""Defect 14, per pass: the conditions of one planning pass cost at most its CEL budget.

One evaluation stops at CEL_EVAL_STEPS (about 0.1 s), but a node with 100 out-edges each near
that cap cost about 10 s in one pass, holding the thread that serves every other execution. Now a
pass stops evaluating once it has spent CEL_PASS_STEPS (or CEL_PASS_SECONDS); the edges left are
neither held nor failed: the next pass, asked for at once (`wake_at` is now), decides them, going
on from what earlier passes decided (kept in the waiting node's `edgesDecided`). The end is the
one a run without any budget reaches, and no edge is evaluated twice.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

from jobchain.api.limits import CEL_EVAL_STEPS, CEL_PASS_STEPS
from jobchain.engine.execution.conditions import PassBudget
from jobchain.engine.execution.planner import plan
from jobchain.engine.spec import cel

from . import builders
from .builders import T0, edge, execution, job, node, node_status, observed, phases, simulate, spec, with_status

# Costs about 20.5 * len(xs)^2 steps, then reads one pick: each edge's text is its own.
COSTLY = "output.xs.all(x, output.xs.all(y, x + y >= 0)) && output.pick[{i}]"
UNLIMITED = PassBudget(steps=10**12, seconds=3600.0)


def output(size: int, picks: list[bool]) -> dict[str, Any]:
    return {"xs": list(range(size)), "pick": picks}


def cost(size: int) -> int:
    """Steps one COSTLY evaluation takes over an output with `size` xs (measured, deterministic)."""
    spent = cel.Budget(10**9)
    cel.evaluate_activation(COSTLY.format(i=0), {"output": cel.to_cel(output(size, [True]))}, spent)
    return 10**9 - spent.steps


class Spending:
    """Counts the CEL evaluations of each pass (by the edge's text) and the steps each pass spent."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.evaluations: Counter[str] = Counter()
        self.per_pass: list[int] = []  # steps
        self.evaluated_per_pass: list[int] = []
        evaluate = cel.evaluate_activation

        def counting(expression: str, activation: dict[str, Any], spent: cel.Budget | None = None) -> bool:
            before = spent.steps if spent is not None else 0
            try:
                return evaluate(expression, activation, spent)
            finally:
                self.evaluations[expression] += 1
                self.evaluated_per_pass[-1] += 1
                self.per_pass[-1] += before - (spent.steps if spent is not None else 0)

        monkeypatch.setattr(cel, "evaluate_activation", counting)

    def new_pass(self) -> None:
        self.per_pass.append(0)
        self.evaluated_per_pass.append(0)


def fan_out(n: int, **fields: Any) -> Any:
    return spec(node("a", *(edge(f"t{i:03d}", "condition", COSTLY.format(i=i)) for i in range(n))),
                *(node(f"t{i:03d}") for i in range(n)), **fields)


def test_a_pass_over_100_costly_out_edges_stays_within_its_budget_and_leaves_the_rest_to_the_next(
        monkeypatch: pytest.MonkeyPatch) -> None:
    size = 27
    each = cost(size)
    assert CEL_EVAL_STEPS // 2 < each < CEL_EVAL_STEPS  # near the cap of one evaluation
    picks = [i % 3 != 0 for i in range(100)]
    workflow = fan_out(100, parallelism=100)
    ex = execution(workflow)
    ex = with_status(ex, plan(ex, {}, T0).status)
    seen = observed(job("a", "Succeeded", json.dumps(output(size, picks)), finished_at=T0))
    spending = Spending(monkeypatch)
    spending.new_pass()
    now = T0 + timedelta(seconds=1)
    p = plan(ex, seen, now)
    # Before: all 100 evaluated in this one pass (about 1.5 million steps, 10 s and more).
    assert spending.per_pass[0] <= CEL_PASS_STEPS + CEL_EVAL_STEPS
    assert 1 <= spending.evaluated_per_pass[0] <= CEL_PASS_STEPS // each + 1
    assert p.wake_at == now  # the rest at once, by the next pass
    assert p.status.phase == "Running"
    decided = {n.name: str(n.phase) for n in p.status.nodes if n.name != "a" and n.phase != "Pending"}
    assert decided, "one pass decides some edges"
    # Nothing was decided for want of budget: what is decided is right, the rest waits (Pending).
    for name, phase in decided.items():
        assert phase == ("Running" if picks[int(name[1:])] else "Skipped"), name
    assert all(n.phase == "Pending" and n.message == "" for n in p.status.nodes
               if n.name != "a" and n.name not in decided)


def scenario(size: int) -> tuple[Any, dict[str, tuple[str, str]]]:
    """`a` fans out to 24 nodes; ten start nodes s0..s9 fan in to `z` (join any); all edges costly."""
    picks = [i % 3 != 0 for i in range(24)] + [i in (3, 7) for i in range(10)]
    workflow = spec(
        node("a", *(edge(f"t{i:03d}", "condition", COSTLY.format(i=i)) for i in range(24))),
        *(node(f"s{k}", edge("z", "condition", COSTLY.format(i=24 + k))) for k in range(10)),
        *(node(f"t{i:03d}") for i in range(24)),
        node("z", join="any"),
        parallelism=4,
    )
    raw = json.dumps(output(size, picks))
    results = {name: ("Succeeded", raw) for name in ["a", *(f"s{k}" for k in range(10))]}
    return workflow, results


def test_repeated_passes_end_as_without_a_budget_deciding_each_edge_once(monkeypatch: pytest.MonkeyPatch) -> None:
    size = 8
    each = cost(size)
    workflow, results = scenario(size)
    free = simulate(workflow, results, cel_budget=UNLIMITED)

    spending = Spending(monkeypatch)
    real_plan = builders.plan

    def counted_plan(*args: Any, **kwargs: Any) -> Any:
        spending.new_pass()
        return real_plan(*args, **kwargs)

    monkeypatch.setattr(builders, "plan", counted_plan)
    budget = PassBudget(steps=3 * each, seconds=3600.0)  # about three edges a pass
    run = simulate(workflow, results, cel_budget=budget)

    assert phases(run.status) == phases(free.status)
    assert [(n.name, n.inputFrom) for n in run.status.nodes] == [(n.name, n.inputFrom) for n in free.status.nodes]
    assert run.status.reason == free.status.reason == "Succeeded"
    assert node_status(run.status, "z").phase == "Succeeded"
    assert node_status(run.status, "z").inputFrom == "s7"  # s3 and s7 held; s7 declared last, same finish
    # Each pass kept to its budget (the last evaluation may overrun it by at most one evaluation's cost).
    assert max(spending.per_pass) < 3 * each + each
    assert sum(1 for p in run.plans if p.wake_at is not None and p.status.phase == "Running") >= 5
    # Each of the 34 edges was evaluated exactly once over the whole run: decided edges are kept.
    assert len(spending.evaluations) == 34 and set(spending.evaluations.values()) == {1}
    # z's ten edges took several passes: what was decided waited in its status, then was cleared.
    kept = [node_status(p.status, "z").edgesDecided for p in run.plans]
    assert any(k and 0 < len(k) < 10 for k in kept)
    assert node_status(run.status, "z").edgesDecided is None


def test_the_time_ceiling_stops_a_pass_after_one_evaluation_on_a_slow_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    ticks = itertools.count()
    slow = PassBudget(steps=10**9, seconds=0.5, clock=lambda: float(next(ticks)))  # a second per look
    workflow, results = scenario(4)
    spending = Spending(monkeypatch)
    ex = execution(workflow)
    p = plan(ex, {}, T0, cel_budget=slow)
    ex = with_status(ex, p.status)
    seen = observed(*(job(n, "Succeeded", results[n][1], finished_at=T0) for n in results))
    spending.new_pass()
    p = plan(ex, seen, T0 + timedelta(seconds=1), cel_budget=slow)
    assert spending.evaluated_per_pass == [1]  # the first one always: passes get on
    assert p.wake_at == T0 + timedelta(seconds=1)


def test_a_cancel_waits_for_the_deferred_edges_that_may_end_the_run_as_without_a_budget(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Every t node is skipped: the run ends Succeeded, cancel or not (a cancel after everything
    finished never overrides the result). Edges left by the budget are not taken as cancelled."""
    size = 6
    workflow = fan_out(12)
    raw = json.dumps(output(size, [False] * 12))
    ex = execution(workflow)
    ex = with_status(ex, plan(ex, {}, T0).status)
    seen = observed(job("a", "Succeeded", raw, finished_at=T0))
    budget = PassBudget(steps=3 * cost(size), seconds=3600.0)
    ex = with_status(ex, ex.status, cancel=True)
    now = T0 + timedelta(seconds=1)
    for _ in range(10):
        p = plan(ex, seen, now, cel_budget=budget)
        ex = with_status(ex, p.status)
        if p.status.phase != "Running":
            break
        assert p.wake_at == now and p.delete == [] and p.create == []
        now += timedelta(seconds=1)
    assert (p.status.phase, p.status.reason) == ("Succeeded", "Succeeded")
    assert set(phases(p.status).values()) == {"Succeeded", "Skipped"}


def test_a_condition_error_stops_the_run_once_the_deferred_edges_are_decided() -> None:
    """x's condition errs in the first pass; the skips of t000..t011 are sealed as well (a finished
    when the error was seen): they are made before the stop, over several passes, as without a budget."""
    size = 6
    workflow = spec(node("a", edge("x", "condition", "output.missing"),
                         *(edge(f"t{i:03d}", "condition", COSTLY.format(i=i)) for i in range(12))),
                    node("x"), *(node(f"t{i:03d}") for i in range(12)))
    results = {"a": ("Succeeded", json.dumps(output(size, [False] * 12)))}
    free = simulate(workflow, results, cel_budget=UNLIMITED)
    run = simulate(workflow, results, cel_budget=PassBudget(steps=3 * cost(size), seconds=3600.0))
    assert phases(run.status) == phases(free.status)
    assert set(phases(run.status).values()) == {"Succeeded", "Cancelled", "Skipped"}
    assert node_status(run.status, "x").phase == "Cancelled"
    assert run.status.reason == free.status.reason == "ConditionError"
    assert len(run.plans) > len(free.plans)  # it took more passes
    assert all(p.create == [] for p in run.plans[1:])  # nothing started meanwhile


def test_item_starts_of_a_pass_that_defers_after_a_condition_error_are_taken_back() -> None:
    """A pass starts the next item of a running forEach node, then finds a condition error while its
    budget leaves edges to the next pass: nothing may start in that pass, so the item's start is
    taken back with its Job (it never ran). The run ends as it does without a budget."""
    size = 6
    workflow = spec(node("a", "f", "s"),
                    node("f", forEach="[0, 1, 2, 3]", maxParallel=1),
                    node("s", edge("x", "condition", "output.missing"),
                         *(edge(f"t{i:03d}", "condition", COSTLY.format(i=i)) for i in range(12))),
                    node("x"), *(node(f"t{i:03d}") for i in range(12)), parallelism=2)
    results = {"s": ("Succeeded", json.dumps(output(size, [False] * 12)))}
    free = simulate(workflow, results, cel_budget=UNLIMITED)
    run = simulate(workflow, results, cel_budget=PassBudget(steps=3 * cost(size), seconds=3600.0))
    assert run.status.reason == free.status.reason == "ConditionError"
    assert phases(run.status) == phases(free.status)
    f_free, f_run = node_status(free.status, "f"), node_status(run.status, "f")
    def items(n: Any) -> list[tuple[int, str, str | None]]:
        return [(e.index, e.phase, e.jobName) for e in n.itemResults or []]
    assert (items(f_run), f_run.items, f_run.output) == (items(f_free), f_free.items, f_free.output)
    # Every item Job that was created ran (none was planned, dropped, and left in status as running).
    assert all(e.phase != "Running" for e in f_run.itemResults or [])
    assert len(run.plans) > len(free.plans)
