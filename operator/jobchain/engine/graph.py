"""Validation of a Workflow spec as a graph, and the graph queries the planner needs.

Everything here is decided from the spec alone, so the operator (Workflow Ready condition,
execution start) and `jobchain lint` (offline) refuse exactly the same workflows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from jobchain.api.models import EdgeKind, Node, WorkflowSpec
from jobchain.engine import cel, refs


@dataclass(frozen=True)
class Problem:
    path: str  # e.g. spec.nodes[1].next[0].when
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


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


def _find_cycle(graph: Graph) -> list[str] | None:
    white, grey, black = 0, 1, 2
    color = dict.fromkeys(graph.nodes, white)
    stack: list[str] = []

    def visit(name: str) -> list[str] | None:
        color[name] = grey
        stack.append(name)
        for edge in graph.nodes[name].next:
            target = edge.node
            if target not in color:
                continue
            if color[target] == grey:
                return [*stack[stack.index(target):], target]
            if color[target] == white:
                found = visit(target)
                if found:
                    return found
        stack.pop()
        color[name] = black
        return None

    for name in graph.nodes:
        if color[name] == white:
            found = visit(name)
            if found:
                return found
    return None


def validate(spec: WorkflowSpec, prefix: str = "spec") -> list[Problem]:
    """All problems of a workflow spec that the pydantic model alone cannot see."""
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for i, node in enumerate(spec.nodes):
        if node.name in seen:
            problems.append(Problem(f"{prefix}.nodes[{i}].name",
                                    f"duplicate node name {node.name!r} (also nodes[{seen[node.name]}])"))
        seen.setdefault(node.name, i)
    names = set(seen)
    param_names = {p.name for p in spec.params}
    dup_params = {p.name for p in spec.params if [q.name for q in spec.params].count(p.name) > 1}
    for name in sorted(dup_params):
        problems.append(Problem(f"{prefix}.params", f"duplicate param name {name!r}"))

    for i, node in enumerate(spec.nodes):
        path = f"{prefix}.nodes[{i}]"
        if node.script is not None and (node.command or node.args):
            problems.append(Problem(path, "set either script or command/args, not both"))
        if not (node.image or spec.defaults.image):
            problems.append(Problem(f"{path}.image", "no image: set it on the node or in spec.defaults.image"))
        targets: set[str] = set()
        for j, edge in enumerate(node.next):
            epath = f"{path}.next[{j}]"
            if edge.node not in names:
                problems.append(Problem(f"{epath}.node", f"edge to unknown node {edge.node!r}"
                                        f" (nodes: {', '.join(sorted(names))})"))
            if edge.node in targets:
                problems.append(Problem(f"{epath}.node", f"second edge from {node.name!r} to {edge.node!r}; "
                                        "use one edge (type: always covers success and failure)"))
            targets.add(edge.node)
            if edge.type == EdgeKind.CONDITION:
                if not edge.when:
                    problems.append(Problem(f"{epath}.when", "an edge with type: condition needs `when`"))
                else:
                    try:
                        cel.check(edge.when)
                    except cel.CelError as exc:
                        problems.append(Problem(f"{epath}.when", f"CEL {exc}"))
            elif edge.when is not None:
                problems.append(Problem(f"{epath}.when", "`when` only goes with type: condition "
                                        f"(this edge is type: {edge.type})"))

        problems.extend(_fan_out_problems(node, path))

    graph = Graph.of(spec)
    cycle = _find_cycle(graph)
    if cycle:
        problems.append(Problem(f"{prefix}.nodes", f"cycle: {' -> '.join(cycle)}; a workflow must be acyclic"))
    elif not graph.starts():
        problems.append(Problem(f"{prefix}.nodes", "no start node (every node has an incoming edge)"))

    starts = set(graph.starts())
    for i, node in enumerate(spec.nodes):
        upstream = graph.upstream(node.name) if not cycle else set(names)
        for rel, text in node_texts(node):
            for raw, ref in refs.find(text):
                where = f"{prefix}.nodes[{i}].{rel}"
                if ref is None:
                    problems.append(Problem(where, f"$({raw}) is not a valid reference; use $(params.X), $(input), "
                                            "$(input.KEY), $(nodes.NAME.output[.KEY]) or $(execution.name)"))
                elif ref.kind == "params" and ref.target not in param_names:
                    problems.append(Problem(where, f"$({raw}) names an unknown param"
                                            f" (declared: {', '.join(sorted(param_names)) or 'none'})"))
                elif ref.kind == "nodes" and ref.target not in names:
                    problems.append(Problem(where, f"$({raw}) names an unknown node"))
                elif ref.kind == "nodes" and ref.target not in upstream:
                    problems.append(Problem(where, f"$({raw}): node {ref.target!r} does not run before "
                                            f"{node.name!r}; only upstream nodes' outputs can be used"))
                elif ref.kind == "item" and node.forEach is None:
                    problems.append(Problem(where, f"$({raw}): only a node with forEach has an item; add "
                                            "forEach to this node or use another reference"))
                elif ref.kind == "input" and node.name in starts:
                    problems.append(Problem(where, f"$({raw}): {node.name!r} is a start node and has no input"))
    return problems


def _fan_out_problems(node: Node, path: str) -> list[Problem]:
    """forEach is checked like `when`; its settings make no sense without it."""
    problems: list[Problem] = []
    if node.forEach is None:
        for setting in ("maxParallel", "maxItems"):
            if getattr(node, setting) is not None:
                problems.append(Problem(f"{path}.{setting}", f"{setting} only goes with forEach"))
        if node.failFast:
            problems.append(Problem(f"{path}.failFast", "failFast only goes with forEach"))
        return problems
    if not node.forEach.strip():
        return [Problem(f"{path}.forEach", "forEach is empty: give a CEL expression that yields a list")]
    try:
        cel.check(node.forEach, cel.FOR_EACH_VARIABLES, "forEach")
    except cel.CelError as exc:
        problems.append(Problem(f"{path}.forEach", f"CEL {exc}"))
    return problems
