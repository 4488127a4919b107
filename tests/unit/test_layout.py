"""The layered layout: what a reader of the drawing would notice if it broke."""

from __future__ import annotations

import random

import pytest

from jobchain.cli.layout import layered_layout

ROUTING = (
    ["extract", "bulk-load", "small-load", "done", "alert"],
    [("extract", "bulk-load"), ("extract", "small-load"), ("extract", "alert"),
     ("bulk-load", "done"), ("small-load", "done")],
)


def _random_dag(n: int, seed: int) -> tuple[list[str], list[tuple[str, str]]]:
    rng = random.Random(seed)
    names = [f"n{i}" for i in range(n)]
    edges = set()
    for i in range(1, n):
        for _ in range(rng.choice([1, 1, 2, 3])):
            edges.add((names[rng.randrange(max(0, i - 12), i)], names[i]))
    return names, sorted(edges)


def _overlap(a: object, b: object) -> bool:
    return not (a.x + a.width <= b.x or b.x + b.width <= a.x or a.y + a.height <= b.y or b.y + b.height <= a.y)  # type: ignore[attr-defined]


@pytest.mark.parametrize("graph", [ROUTING, _random_dag(40, 1), _random_dag(100, 2)])
def test_no_two_nodes_overlap_and_every_edge_points_right(graph: tuple[list[str], list[tuple[str, str]]]) -> None:
    names, edges = graph
    layout = layered_layout(names, edges)
    boxes = list(layout.boxes.values())
    assert len(boxes) == len(names)
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not _overlap(a, b), (a, b)
        assert a.x >= 0 and a.x + a.width <= layout.width and a.y >= 0 and a.y + a.height <= layout.height
    for route in layout.routes:
        source, target = layout.boxes[route.source], layout.boxes[route.target]
        assert target.layer > source.layer
        assert route.points[0] == (source.x + source.width, source.y + source.height / 2)
        assert route.points[-1] == (target.x, target.y + target.height / 2)
        xs = [x for x, _ in route.points]
        assert xs == sorted(xs), "an edge runs left to right"


def test_a_long_edge_bends_around_the_nodes_in_between() -> None:
    names = ["a", "b", "c", "d"]
    edges = [("a", "b"), ("b", "c"), ("c", "d"), ("a", "d")]
    layout = layered_layout(names, edges)
    long = next(r for r in layout.routes if (r.source, r.target) == ("a", "d"))
    assert len(long.points) == 6  # start, through the columns of b and c, end
    for x, y in long.points[1:-1]:
        for box in layout.boxes.values():
            inside = box.x <= x <= box.x + box.width and box.y < y < box.y + box.height
            assert not inside, f"edge a->d runs through {box.name}"


def test_the_routing_example_has_no_crossing_and_its_join_sits_between_its_inputs() -> None:
    layout = layered_layout(*ROUTING)
    assert layout.crossings == 0
    b = layout.boxes
    assert [b[n].layer for n in ROUTING[0]] == [0, 1, 1, 2, 1]
    centre = b["done"].y + b["done"].height / 2
    assert b["bulk-load"].y <= centre <= b["small-load"].y + b["small-load"].height


def test_crossings_are_reduced_from_the_declaration_order() -> None:
    # Declared so that the naive order crosses: a->y, b->x
    layout = layered_layout(["a", "b", "x", "y"], [("a", "y"), ("b", "x")])
    assert layout.crossings == 0


def test_a_cycle_or_an_unknown_node_is_still_drawn() -> None:
    layout = layered_layout(["a", "b", "c"], [("a", "b"), ("b", "c"), ("c", "a"), ("a", "ghost")])
    assert set(layout.boxes) == {"a", "b", "c"}
    assert len(layout.routes) == 3  # the edge to the unknown node is left to the caller


def test_a_hundred_nodes_lay_out_the_same_every_time() -> None:
    # How fast is measured where a user sees it: the browser tier prints the 100-node render time.
    names, edges = _random_dag(100, 7)
    first = layered_layout(names, edges)
    from jobchain.cli import layout as module

    assert module._compute(tuple(names), tuple(edges)) == first
