"""The planner, which ready nodes start: declaration order, never more running than `parallelism`."""

from __future__ import annotations

import pytest

from jobchain.api.models import WorkflowSpec

from .builders import (
    created_nodes,
    edge,
    node,
    simulate,
    spec,
)

# ---- parallelism and order -----------------------------------------------------------------

PARALLEL: list[tuple[str, WorkflowSpec, list[list[str]]]] = [
    ("parallelism 1 runs one at a time in declaration order",
     spec(node("s", "c", "a", "b"), node("c"), node("a"), node("b"), parallelism=1),
     [["s"], ["c"], ["a"], ["b"]]),
    ("parallelism 2 starts the first two declared",
     spec(node("s", "c", "a", "b"), node("c"), node("a"), node("b"), parallelism=2),
     [["s"], ["c", "a"], ["b"]]),
    ("parallelism larger than the ready nodes", spec(node("x"), node("y"), node("z"), parallelism=5),
     [["x", "y", "z"]]),
    ("start nodes in declaration order", spec(node("z"), node("y"), node("x"), parallelism=1),
     [["z"], ["y"], ["x"]]),
    ("a node made ready by a skip is not overtaken by a later-declared node",
     spec(node("s", edge("d", "failure"), "b", "c"), node("b", join="any"), node("c"), node("d", "b"),
          parallelism=1),
     [["s"], ["b"], ["c"]]),
]


@pytest.mark.parametrize(("workflow", "waves"), [c[1:] for c in PARALLEL], ids=[c[0] for c in PARALLEL])
def test_ready_nodes_start_in_declaration_order_up_to_parallelism(workflow: WorkflowSpec,
                                                                   waves: list[list[str]]) -> None:
    run = simulate(workflow)  # every step finishes all running Jobs: one wave per step
    assert [created_nodes(p) for p in run.plans if p.create] == waves
    assert run.status.phase == "Succeeded"


@pytest.mark.parametrize("parallelism", [1, 2, 3])
def test_running_never_exceeds_parallelism_and_a_slot_is_refilled(parallelism: int) -> None:
    workflow = spec(*(node(f"n{i}") for i in range(7)), parallelism=parallelism)
    run = simulate(workflow, finish_per_step=1)
    for p in run.plans:
        assert sum(1 for n in p.status.nodes if n.phase == "Running") <= parallelism
    assert run.started_order() == [f"n{i}" for i in range(7)]
    assert max(len(p.create) for p in run.plans) == parallelism
