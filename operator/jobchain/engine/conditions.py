"""Whether an edge holds, decided once per planning pass, with CEL values converted once.

Why a class with caches: one node with 499 condition edges used to convert every node's
output to CEL again for each edge evaluated, and to evaluate each edge again on every
loop of the scheduler, which made a single pass quadratic (seconds, holding the GIL while
other executions waited). Here each output is converted once per pass, the `nodes` map is
built once and updated in place when a node changes, and an edge, once decided, is never
evaluated again in the pass (its source has finished and its source's input is known, so
the answer cannot change).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from celpy import celtypes

from jobchain.api.models import EdgeKind, ExecutionStatus, NodePhase, NodeStatus
from jobchain.engine import cel
from jobchain.engine.graph import InEdge


def _safe_cel(value: Any) -> Any:
    """to_cel, or null for a value CEL cannot hold (only an edge that reads it then fails)."""
    try:
        return cel.to_cel(value)
    except (ValueError, TypeError, RecursionError):
        return None


class EdgeDecisions:
    """The edges of one pass over one status (which it reads as the pass changes it)."""

    def __init__(self, status: ExecutionStatus, whole: Mapping[str, Any] | None = None) -> None:
        self.status = status
        # node -> its whole output, where status holds only a preview (outputRef): CEL sees the whole
        self.whole = whole if whole is not None else {}
        self._outputs: dict[str, Any] = {}
        self._params = _safe_cel(dict(status.params or {}))
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

    def holds(self, edge: InEdge, nodes: dict[str, NodeStatus]) -> bool:
        """Whether a decided edge holds; raises cel.CelError for a condition that errs."""
        key = (edge.source, edge.index)
        if key not in self._decided:
            try:
                self._decided[key] = self._holds(edge, nodes)
            except cel.CelError as exc:
                self._decided[key] = exc
        decided = self._decided[key]
        if isinstance(decided, cel.CelError):
            raise decided
        return decided

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
        return cel.evaluate_activation(edge.when, activation)
