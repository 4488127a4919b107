"""forEach CEL costs what `when` may: one evaluation, one pass, and only once per node.

A forEach expression passes validation with empty inputs, then meets its real input: nested
macros over 60 items took 14 s of the operator's CPU, on every pass. Now one evaluation stops at
CEL_EVAL_STEPS (the node fails, ConditionError, saying so), the evaluations of a pass together
at its PassBudget (a list it cannot pay waits for the next pass, woken at once), and the list is
kept in a ConfigMap when the node starts, so later passes read it instead of evaluating it again.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta

from jobchain.api.limits import CEL_EVAL_STEPS
from jobchain.engine.execution.conditions import PassBudget
from jobchain.engine.execution.planner import plan
from jobchain.engine.execution.status import output_refs
from jobchain.engine.spec.render import output_config_map_name

from .builders import (
    EXECUTION,
    T0,
    FakeOperatorCluster,
    created_nodes,
    execution,
    node,
    node_status,
    simulate,
    spec,
    with_status,
)

COSTLY = "input.xs.filter(a, input.xs.all(b, input.xs.all(c, true)))"  # 30^3 steps and more


def frozen(steps: int) -> PassBudget:
    """A pass budget of `steps`, its time ceiling never reached (the clock stands still)."""
    return PassBudget(steps=steps, seconds=1.0, clock=lambda: 0.0)


def test_a_costly_for_each_fails_its_node_with_a_condition_error() -> None:
    wf = spec(node("list", "each"), node("each", forEach=COSTLY, script="true"), parallelism=2)
    run = simulate(wf, {"list": ("Succeeded", json.dumps({"xs": list(range(30))}))})
    each = node_status(run.status, "each")
    assert each.phase == "Failed" and run.status.reason == "NodeFailed"
    assert each.message.startswith(f"ConditionError: spec.nodes[1].forEach `{COSTLY}`: costs more than "
                                   f"{CEL_EVAL_STEPS} evaluation steps"), each.message
    assert "simplify the expression" in each.message
    assert not [n for n in run.started_order() if n.startswith("each")], "no item was started"


def test_for_each_lists_a_pass_cannot_pay_wait_for_the_next_pass() -> None:
    # Each list costs 400 steps (a map over 30 items); a pass spends at most 300 before it stops.
    wf = spec(node("list", "one", "two"), node("one", forEach="input.xs.map(a, a * 2)", script="true"),
              node("two", forEach="input.xs.map(a, a + 1)", script="true"), parallelism=100)
    ex = execution(wf)
    cluster = FakeOperatorCluster()
    begun = plan(ex, cluster.observed(), T0, cel_budget=frozen(300))
    cluster.apply(begun)
    ex = with_status(ex, begun.status)
    cluster.finish("list", "Succeeded", json.dumps({"xs": list(range(30))}), T0 + timedelta(seconds=1))
    first = plan(ex, cluster.observed(), T0 + timedelta(seconds=2), cel_budget=frozen(300))
    assert node_status(first.status, "one").phase == "Running"
    assert node_status(first.status, "two").phase == "Pending"
    assert first.wake_at == T0 + timedelta(seconds=2), "the next pass is asked for at once"
    cluster.apply(first)
    second = plan(with_status(ex, first.status), cluster.observed(), T0 + timedelta(seconds=3),
                  cel_budget=frozen(300))
    two = node_status(second.status, "two")
    assert two.phase == "Running" and two.items is not None and two.items.total == 30
    assert [n for n in created_nodes(second) if n.startswith("two#")][:2] == ["two#0", "two#1"]


def test_the_list_is_kept_when_the_node_starts_and_read_back_on_later_passes() -> None:
    wf = spec(node("list", "each"), node("each", forEach="input.xs.map(a, a * 2)", script="true"), parallelism=2)
    ex = execution(wf)
    cluster = FakeOperatorCluster()
    begun = plan(ex, cluster.observed(), T0)
    cluster.apply(begun)
    ex = with_status(ex, begun.status)
    cluster.finish("list", "Succeeded", json.dumps({"xs": list(range(30))}), T0 + timedelta(seconds=1))
    started = plan(ex, cluster.observed(), T0 + timedelta(seconds=2))
    cluster.apply(started)
    kept = output_config_map_name(EXECUTION, "each#items")
    assert cluster.config_maps[kept] == [2 * i for i in range(30)]
    assert created_nodes(started)[-2:] == ["each#0", "each#1"]
    # The next pass has no CEL budget at all: the list is read from its ConfigMap, items go on.
    ex = with_status(ex, started.status)
    refs = output_refs(started.status, EXECUTION)
    assert refs["each#items"].configMap == kept
    reading = dataclasses.replace(ex, outputs={key: cluster.config_maps[ref.configMap] for key, ref in refs.items()})
    cluster.finish("each#0", "Succeeded", None, T0 + timedelta(seconds=3))
    later = plan(reading, cluster.observed(), T0 + timedelta(seconds=4), cel_budget=frozen(0))
    assert created_nodes(later) == ["each#2"] and later.wake_at is None
    # With the ConfigMap gone (deleted by hand), the list is evaluated again, within the budget.
    unread = plan(ex, cluster.observed(), T0 + timedelta(seconds=4), cel_budget=frozen(0))
    assert created_nodes(unread) == [] and unread.wake_at == T0 + timedelta(seconds=4)
    again = plan(ex, cluster.observed(), T0 + timedelta(seconds=4))
    assert created_nodes(again) == ["each#2"]


def test_a_list_a_config_map_cannot_hold_fails_its_node_saying_so() -> None:
    wf = spec(node("list", "each"), node("each", forEach="input.xs.map(a, input.xs)", maxItems=5000,
                                         script="true"))
    run = simulate(wf, {"list": ("Succeeded", json.dumps({"xs": ["x" * 40] * 200}))})
    each = node_status(run.status, "each")
    assert each.phase == "Failed" and each.message.startswith("ItemsTooLarge: spec.nodes[1].forEach"), each.message
    assert "more than the 1047552 bytes (1 MiB) kept for it" in each.message
