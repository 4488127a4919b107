"""A Workflow spec as a graph: nodes by name, incoming edges, and the queries the planner needs.

Decided from the spec alone. The rules a valid graph keeps (no cycle, known targets, one start
node at least, ...) are checked in `engine.spec.validation`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from jobchain.api.models import EdgeKind, Node, WorkflowSpec


@dataclass(frozen=True)
class InEdge:
    source: str
    kind: EdgeKind
    when: str | None
    index: int  # position in the source's `next`


@dataclass
class Graph:
    """Nodes by name, in declaration order, with incoming edges."""

    nodes: dict[str, Node]
    incoming: dict[str, list[InEdge]] = field(default_factory=dict)

    @classmethod
    def of(cls, spec: WorkflowSpec) -> Graph:
        graph = cls({n.name: n for n in spec.nodes})
        graph.incoming = {n.name: [] for n in spec.nodes}
        for node in spec.nodes:
            for i, edge in enumerate(node.next):
                if edge.node in graph.incoming:
                    graph.incoming[edge.node].append(InEdge(node.name, EdgeKind(edge.type), edge.when, i))
        return graph

    def starts(self) -> list[str]:
        return [name for name, ins in self.incoming.items() if not ins]

    def upstream(self, name: str) -> set[str]:
        """Every node from which `name` can be reached."""
        seen: set[str] = set()
        stack = [e.source for e in self.incoming.get(name, [])]
        while stack:
            current = stack.pop()
            if current not in seen:
                seen.add(current)
                stack.extend(e.source for e in self.incoming.get(current, []))
        return seen


def node_texts(node: Node) -> Iterable[tuple[str, str]]:
    """(field path relative to the node, text) of every field where references are substituted."""
    if node.script is not None:
        yield "script", node.script
    for i, c in enumerate(node.command or []):
        yield f"command[{i}]", c
    for i, a in enumerate(node.args or []):
        yield f"args[{i}]", a
    for i, env in enumerate(node.env):
        if env.value is not None:
            yield f"env[{i}].value", env.value
