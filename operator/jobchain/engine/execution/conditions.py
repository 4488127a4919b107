"""Whether an edge holds, decided once per planning pass, with CEL values converted once.

Why a class with caches: one node with 499 condition edges used to convert every node's
output to CEL again for each edge evaluated, and to evaluate each edge again on every
loop of the scheduler, which made a single pass quadratic (seconds, holding the GIL while
other executions waited). Here each output is converted once per pass, the `nodes` map is
built once and updated in place when a node changes, and an edge, once decided, is never
evaluated again in the pass (its source has finished and its source's input is known, so
the answer cannot change).

Why a budget per pass: one evaluation stops at CEL_EVAL_STEPS (about 0.1 s), but a node with
100 costly out-edges would still hold the operator's thread for 10 s in one pass, while every
other execution waits. A pass spends at most CEL_PASS_STEPS (and CEL_PASS_SECONDS, should the
machine be slow); an edge it could not afford is `Deferred`: neither held nor failed, decided by
the next pass, which the planner asks for at once. What a pass decided for a node still waiting
is kept in its status (`edgesDecided`), so later passes go on from there instead of deciding
those edges again (maybe differently: `nodes` changes between passes), and passes converge.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from celpy import celtypes

from jobchain.api.limits import CEL_PASS_SECONDS, CEL_PASS_STEPS
from jobchain.api.models import EdgeKind, ExecutionStatus, NodePhase, NodeStatus
from jobchain.engine.spec import cel, param_types
from jobchain.engine.spec.graph import InEdge


def _safe_cel(value: Any) -> Any:
    """to_cel, or null for a value CEL cannot hold (only an edge that reads it then fails)."""
    try:
        return cel.to_cel(value)
    except (ValueError, TypeError, RecursionError):
        return None


@dataclass(frozen=True)
class PassBudget:
    """What the condition edges of one planning pass may cost together: CEL steps, and a ceiling
    of seconds by `clock` (monotonic; a test passes its own)."""

    steps: int = CEL_PASS_STEPS
    seconds: float = CEL_PASS_SECONDS
    clock: Callable[[], float] = time.monotonic


class Deferred(Exception):
    """The pass's CEL budget is spent before this edge was decided: the next pass decides it."""


class EdgeDecisions:
    """The edges of one pass over one status (which it reads as the pass changes it)."""

    def __init__(self, status: ExecutionStatus, whole: Mapping[str, Any] | None = None,
                 budget: PassBudget | None = None) -> None:
        self.status = status
        budget = budget or PassBudget()
        self.spent = cel.Budget(budget.steps)  # steps left to this pass (may go below zero)
        self._steps = budget.steps
        self._clock = budget.clock
        self._stop_at = budget.clock() + budget.seconds
        self.deferred = False  # an edge was left to the next pass
        # node -> its whole output, where status holds only a preview (outputRef): CEL sees the whole
        self.whole = whole if whole is not None else {}
        self._outputs: dict[str, Any] = {}
        self._params = _safe_cel(param_types.of_status(status))
        self._nodes: Any = None  # celtypes.MapType, built on first use, updated in place
        self._node_vars: dict[str, Any] = {}  # `node` of each source (finished: never changes)
        self._decided: dict[tuple[str, int], bool | cel.CelError] = {}

    def changed(self, node: NodeStatus) -> None:
        """A node's phase changed in this pass: `nodes.NAME.phase` must say so. (Its output did not:
        outputs are recorded before the first edge is decided; but a forEach node's list is complete
        only when the node finishes, which may be later in the pass.)"""
        if node.items is not None:
            self._outputs.pop(node.name, None)
        if self._nodes is not None:
            self._nodes[celtypes.StringType(node.name)] = self._entry(node)

    def _output(self, node: NodeStatus) -> Any:
        if node.name not in self._outputs:
            self._outputs[node.name] = _safe_cel(self.whole.get(node.name, node.output))
        return self._outputs[node.name]

    def _entry(self, node: NodeStatus) -> Any:
        return celtypes.MapType({celtypes.StringType("phase"): celtypes.StringType(str(node.phase)),
                                 celtypes.StringType("output"): self._output(node)})

    def _node_var(self, source: NodeStatus) -> Any:
        if source.name not in self._node_vars:
            self._node_vars[source.name] = _safe_cel(
                {"name": source.name, "phase": str(source.phase), "exitCode": source.exitCode})
        return self._node_vars[source.name]

    def _nodes_map(self) -> Any:
        if self._nodes is None:
            self._nodes = celtypes.MapType({celtypes.StringType(n.name): self._entry(n) for n in self.status.nodes})
        return self._nodes

    def seed(self, edge: InEdge, held: bool) -> None:
        """What an earlier pass decided for `edge` (kept in the status of the node it leads to)."""
        self._decided[(edge.source, edge.index)] = held

    def decision(self, edge: InEdge) -> bool | None:
        """Whether `edge` held, if this pass knows (decided or seeded), else None."""
        decided = self._decided.get((edge.source, edge.index))
        return decided if isinstance(decided, bool) else None

    def exhausted(self) -> bool:
        """The budget is spent (steps, or the time ceiling once anything was spent: a pass on a
        machine too slow for its ceiling still decides one edge, so passes always get on)."""
        if self.spent.steps <= 0:
            return True
        return self.spent.steps < self._steps and self._clock() >= self._stop_at

    def holds(self, edge: InEdge, nodes: dict[str, NodeStatus], budgeted: bool = True) -> bool:
        """Whether a decided edge holds; raises cel.CelError for a condition that errs, and
        Deferred for a condition left to the next pass (`budgeted` and the budget spent)."""
        key = (edge.source, edge.index)
        if key not in self._decided:
            if budgeted and self._costs(edge, nodes) and self.exhausted():
                self.deferred = True
                raise Deferred(f"{edge.source} -> {edge.index}")
            try:
                self._decided[key] = self._holds(edge, nodes)
            except cel.CelError as exc:
                self._decided[key] = exc
        decided = self._decided[key]
        if isinstance(decided, cel.CelError):
            raise decided
        return decided

    @staticmethod
    def _costs(edge: InEdge, nodes: dict[str, NodeStatus]) -> bool:
        """Whether deciding `edge` evaluates CEL (only a condition after its source succeeded)."""
        return edge.kind == EdgeKind.CONDITION and nodes[edge.source].phase == NodePhase.SUCCEEDED

    def _holds(self, edge: InEdge, nodes: dict[str, NodeStatus]) -> bool:
        source = nodes[edge.source]
        if source.phase == NodePhase.SUCCEEDED:
            if edge.kind in (EdgeKind.SUCCESS, EdgeKind.ALWAYS):
                return True
            if edge.kind == EdgeKind.CONDITION:
                return self._condition(edge, source, nodes)
            return False
        if source.phase == NodePhase.FAILED:
            return edge.kind in (EdgeKind.FAILURE, EdgeKind.ALWAYS)
        return False  # Skipped or Cancelled: holds for nothing

    def _condition(self, edge: InEdge, source: NodeStatus, nodes: dict[str, NodeStatus]) -> bool:
        assert edge.when is not None
        feeder = nodes.get(source.inputFrom or "")
        activation = {
            "output": self._output(source),
            "input": self._output(feeder) if feeder is not None else None,
            "params": self._params,
            "node": self._node_var(source),
            "nodes": self._nodes_map(),
        }
        return cel.evaluate_activation(edge.when, activation, self.spent)
