"""A layered (Sugiyama-style) drawing of a workflow graph, left to right, as coordinates.

Why our own and in Python: the dashboard then ships no layout library (nothing to vendor,
no Node to rebuild it), the same function can serve `jobchain graph`, and it is a pure
function of names and edges, so its promises (no overlap, edges point forward, few
crossings) are unit-tested. The steps are the classic ones:

1. layers by longest path from the start nodes; an edge that closes a cycle is set aside
   (an invalid workflow is still drawn, the edge drawn straight);
2. an edge spanning several layers gets a bend point in each layer it crosses, so it runs
   between the nodes of that column instead of through them;
3. the order inside each layer by barycentre sweeps, keeping the order with fewest crossings;
4. positions: each layer a column, every node as near the mean of its neighbours as the
   order and the spacing allow (a weighted isotonic fit, so long edges straighten out).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import pairwise

NODE_WIDTH = 184.0
NODE_HEIGHT = 56.0
COLUMN_GAP = 120.0  # between columns: room for an edge's label
ROW_GAP = 22.0
BEND_GAP = 10.0  # between a bend point and its neighbours in a column
MARGIN = 24.0
SWEEPS = 8


@dataclass(frozen=True)
class Box:
    """A node's rectangle: (x, y) is its top-left corner."""

    name: str
    x: float
    y: float
    width: float
    height: float
    layer: int


@dataclass(frozen=True)
class Route:
    """An edge as a polyline from the source's right side to the target's left side."""

    source: str
    target: str
    points: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class Layout:
    boxes: dict[str, Box]
    routes: tuple[Route, ...]
    width: float
    height: float
    crossings: int = 0

    def as_json(self) -> dict[str, object]:
        return {
            "width": round(self.width),
            "height": round(self.height),
            "nodes": {
                b.name: {"x": round(b.x, 1), "y": round(b.y, 1), "w": b.width, "h": b.height, "layer": b.layer}
                for b in self.boxes.values()
            },
            "edges": [
                {"source": r.source, "target": r.target, "points": [[round(x, 1), round(y, 1)] for x, y in r.points]}
                for r in self.routes
            ],
        }


@dataclass
class _Item:
    """A node or a bend point of a long edge, in one layer."""

    key: str
    layer: int
    height: float
    weight: float
    preds: list[str] = field(default_factory=list)
    succs: list[str] = field(default_factory=list)
    y: float = 0.0


def _layers(names: Sequence[str], edges: Sequence[tuple[str, str]]) -> tuple[dict[str, int], set[tuple[str, str]]]:
    """Longest-path layers, and the edges set aside because they close a cycle."""
    succs: dict[str, list[str]] = {n: [] for n in names}
    for s, t in edges:
        if s != t:
            succs[s].append(t)
    back: set[tuple[str, str]] = set()
    state = dict.fromkeys(names, 0)  # 0 new, 1 on the stack, 2 done
    topo: list[str] = []
    for root in names:
        if state[root]:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        state[root] = 1
        while stack:
            node, i = stack[-1]
            if i < len(succs[node]):
                stack[-1] = (node, i + 1)
                nxt = succs[node][i]
                if state[nxt] == 1:
                    back.add((node, nxt))
                elif state[nxt] == 0:
                    state[nxt] = 1
                    stack.append((nxt, 0))
            else:
                state[node] = 2
                topo.append(node)
                stack.pop()
    topo.reverse()
    forward = [(s, t) for s, t in edges if s != t and (s, t) not in back]
    preds: dict[str, list[str]] = {n: [] for n in names}
    for s, t in forward:
        preds[t].append(s)
    layer: dict[str, int] = {}
    for node in topo:
        layer[node] = max((layer[p] + 1 for p in preds[node]), default=0)
    # A start node feeding only deep nodes moves right, next to its first successor.
    for node in topo:
        outs = [t for s, t in forward if s == node]
        if not preds[node] and outs:
            layer[node] = max(layer[node], min(layer[t] for t in outs) - 1)
    return layer, back


def _crossings(upper: list[str], lower: list[str], items: dict[str, _Item]) -> int:
    """Crossings between two adjacent layers: inversions of the lower ends, counted with a Fenwick tree."""
    pos = {k: i for i, k in enumerate(lower)}
    ends = [e for k in upper for e in sorted(pos[s] for s in items[k].succs if s in pos)]
    tree = [0] * (len(lower) + 1)
    count = 0
    for seen, end in enumerate(ends):
        i, below = end + 1, 0
        while i > 0:
            below += tree[i]
            i -= i & -i
        count += seen - below
        i = end + 1
        while i <= len(lower):
            tree[i] += 1
            i += i & -i
    return count


def _total_crossings(order: list[list[str]], items: dict[str, _Item]) -> int:
    return sum(_crossings(order[i], order[i + 1], items) for i in range(len(order) - 1))


def _sweep(order: list[list[str]], items: dict[str, _Item], down: bool) -> None:
    indices = range(1, len(order)) if down else range(len(order) - 2, -1, -1)
    for li in indices:
        ref = {k: i for i, k in enumerate(order[li - 1 if down else li + 1])}
        def bary(pair: tuple[int, str], ref: dict[str, int] = ref) -> float:
            index, key = pair
            item = items[key]
            near = [ref[n] for n in (item.preds if down else item.succs) if n in ref]
            return sum(near) / len(near) if near else float(index)
        order[li] = [k for _, k in sorted(enumerate(order[li]), key=lambda p: (bary(p), p[0]))]


def _fit(desired: list[float], weights: list[float], offsets: list[float]) -> list[float]:
    """Positions y_i >= y_{i-1} + gap nearest (weighted least squares) to desired: pool adjacent violators."""
    blocks: list[list[float]] = []  # [weighted mean, total weight, count]
    for d, w, o in zip(desired, weights, offsets, strict=True):
        blocks.append([d - o, w, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2, c2 = blocks.pop()
            m1, w1, c1 = blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2, c1 + c2])
    fitted: list[float] = []
    for mean, _, count in blocks:
        fitted.extend([mean] * int(count))
    return [f + o for f, o in zip(fitted, offsets, strict=True)]


def _place(order: list[list[str]], items: dict[str, _Item]) -> None:
    def offsets(layer: list[str]) -> list[float]:
        out, at = [], 0.0
        for i, key in enumerate(layer):
            if i:
                prev = items[layer[i - 1]]
                gap = ROW_GAP if prev.height and items[key].height else BEND_GAP
                at += (prev.height + items[key].height) / 2 + gap
            out.append(at)
        return out

    spans = [offsets(layer) for layer in order]
    tallest = max((s[-1] for s in spans if s), default=0.0)
    for layer, span in zip(order, spans, strict=True):
        shift = (tallest - (span[-1] if span else 0.0)) / 2
        for key, at in zip(layer, span, strict=True):
            items[key].y = at + shift

    def relax(layer: list[str], span: list[float], use: str) -> None:
        desired = []
        for key in layer:
            item = items[key]
            near = item.preds if use == "preds" else item.succs if use == "succs" else item.preds + item.succs
            desired.append(sum(items[n].y for n in near) / len(near) if near else item.y)
        placed = _fit(desired, [items[k].weight for k in layer], span)
        for key, y in zip(layer, placed, strict=True):
            items[key].y = y

    for _ in range(3):
        for li in range(1, len(order)):
            relax(order[li], spans[li], "preds")
        for li in range(len(order) - 2, -1, -1):
            relax(order[li], spans[li], "succs")
    for li in range(len(order)):
        relax(order[li], spans[li], "both")


@lru_cache(maxsize=256)
def _cached(names: tuple[str, ...], edges: tuple[tuple[str, str], ...]) -> Layout:
    return _compute(names, edges)


def layered_layout(names: Sequence[str], edges: Sequence[tuple[str, str]]) -> Layout:
    """Boxes and routes for nodes `names` (declaration order) and edges (source, target).

    Edges naming an unknown node are left out: callers add such nodes to `names` when they
    want them drawn. Results are cached: a live page asks again on every status change.
    """
    known = set(names)
    return _cached(tuple(dict.fromkeys(names)), tuple((s, t) for s, t in edges if s in known and t in known))


def _compute(names: tuple[str, ...], edges: tuple[tuple[str, str], ...]) -> Layout:
    if not names:
        return Layout({}, (), 2 * MARGIN, 2 * MARGIN)
    layer, back = _layers(names, edges)
    items = {n: _Item(n, layer[n], NODE_HEIGHT, 1.0) for n in names}
    chains: dict[tuple[str, str], list[str]] = {}
    for s, t in dict.fromkeys(edges):
        if s == t or (s, t) in back:
            continue
        chain = [s]
        for li in range(layer[s] + 1, layer[t]):
            key = f"\0{s}\0{t}\0{li}"
            items[key] = _Item(key, li, 0.0, 4.0)  # bend points pull harder: long edges straighten
            chain.append(key)
        chain.append(t)
        for upper, lower in pairwise(chain):
            items[upper].succs.append(lower)
            items[lower].preds.append(upper)
        chains[(s, t)] = chain
    depth = max(layer.values()) + 1
    order: list[list[str]] = [[] for _ in range(depth)]
    for key, item in items.items():  # declaration order first, bend points after their source
        order[item.layer].append(key)
    best = [list(layer_keys) for layer_keys in order]
    best_count = _total_crossings(order, items)
    for i in range(SWEEPS):
        _sweep(order, items, down=i % 2 == 0)
        count = _total_crossings(order, items)
        if count < best_count:
            best, best_count = [list(layer_keys) for layer_keys in order], count
        if best_count == 0:
            break
    order = best
    _place(order, items)

    top = min(item.y - item.height / 2 for item in items.values())
    def column(li: int) -> float:
        return MARGIN + li * (NODE_WIDTH + COLUMN_GAP)
    boxes = {
        n: Box(n, column(layer[n]), items[n].y - top + MARGIN - NODE_HEIGHT / 2, NODE_WIDTH, NODE_HEIGHT, layer[n])
        for n in names
    }
    routes: list[Route] = []
    for s, t in edges:
        if s == t:
            continue
        a, b = boxes[s], boxes[t]
        start = (a.x + a.width, a.y + a.height / 2)
        end = (b.x, b.y + b.height / 2)
        points = [start]
        for key in chains.get((s, t), [])[1:-1]:
            y = items[key].y - top + MARGIN
            points += [(column(items[key].layer), y), (column(items[key].layer) + NODE_WIDTH, y)]
        if (s, t) in back:
            start, end = (a.x + a.width / 2, a.y + a.height), (b.x + b.width / 2, b.y + b.height)
            points = [start]
        routes.append(Route(s, t, (*points, end)))
    width = MARGIN * 2 + depth * NODE_WIDTH + (depth - 1) * COLUMN_GAP
    height = max(b.y + b.height for b in boxes.values()) + MARGIN
    bends = [items[k].y - top + MARGIN for k in items if k.startswith("\0")]
    height = max([height, *(y + MARGIN for y in bends)])
    return Layout(boxes, tuple(routes), width, height, best_count)
