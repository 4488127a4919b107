"""What the dashboard's pages show, as JSON-ready dicts: pure functions of the objects.

Why here and not in the browser: the page stays a thin drawer of boxes and lines, and what
it shows (which workflow, which edge fired, where each node sits) is decided by code that
is unit-tested without a browser or a cluster, reusing the CLI's readers of status.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from jobchain.api.models import EdgeKind, ExecutionStatus, NodePhase, NodeStatus, WorkflowSpec
from jobchain.cli.layout import layered_layout
from jobchain.cli.tables import status_of, workflow_of
from jobchain.engine.execution.conditions import EdgeDecisions
from jobchain.engine.spec import cel
from jobchain.engine.spec.graph import InEdge

# How an edge of an execution is drawn: it held (fired), it was decided and did not hold,
# or its source has not finished yet.
FIRED, NOT_HELD, UNDECIDED = "fired", "not-held", "undecided"
FINISHED = {NodePhase.SUCCEEDED, NodePhase.FAILED, NodePhase.SKIPPED, NodePhase.CANCELLED}


def execution_summary(execution: dict[str, Any]) -> dict[str, Any]:
    """One row of the executions table."""
    meta = execution.get("metadata") or {}
    status = status_of(execution)
    return {
        "namespace": meta.get("namespace", ""),
        "name": meta.get("name", ""),
        "uid": meta.get("uid", ""),
        "created": meta.get("creationTimestamp"),
        "workflow": workflow_of(execution),
        "phase": str(status.phase) if execution.get("status") else "",
        "reason": status.reason,
        "message": status.message,
        "progress": status.progress or "",
        "running": status.running or "",
        "startedAt": status.startedAt,
        "finishedAt": status.finishedAt,
        "duration": status.duration or "",
    }


def spec_of(execution: dict[str, Any], workflow: dict[str, Any] | None = None) -> WorkflowSpec | None:
    """The spec the execution runs: its snapshot in status, its inline spec, else the Workflow given."""
    candidates = [
        (execution.get("status") or {}).get("workflowSpec"),
        (execution.get("spec") or {}).get("workflow"),
        (workflow or {}).get("spec"),
    ]
    for raw in candidates:
        if raw:
            try:
                return WorkflowSpec.model_validate(raw)
            except ValidationError:
                continue
    return None


def _node_info(spec: WorkflowSpec) -> dict[str, dict[str, Any]]:
    info = {}
    for node in spec.nodes:
        info[node.name] = {
            "image": node.image or spec.defaults.image or "",
            "script": node.script,
            "command": node.command,
            "args": node.args,
            "join": str(node.join),
            "retries": node.retries if node.retries is not None else spec.defaults.retries,
            "timeoutSeconds": node.timeoutSeconds if node.timeoutSeconds is not None else spec.defaults.timeoutSeconds,
            "outputFrom": str(node.output.from_),
        }
    return info


def graph_of(spec: WorkflowSpec) -> dict[str, Any]:
    """Nodes, edges (kind, `when`) and their layout; an edge to an unknown node draws that node, marked."""
    names = [n.name for n in spec.nodes]
    known = set(names)
    unknown = [e.node for n in spec.nodes for e in n.next if e.node not in known]
    edges = [
        {"source": n.name, "target": e.node, "kind": str(EdgeKind(e.type)), "when": e.when}
        for n in spec.nodes
        for e in n.next
    ]
    all_names = names + list(dict.fromkeys(unknown))
    layout = layered_layout(all_names, [(n.name, e.node) for n in spec.nodes for e in n.next])
    info = _node_info(spec)
    return {
        "nodes": [{"name": n, "unknown": n not in known, **info.get(n, {})} for n in all_names],
        "edges": edges,
        "layout": layout.as_json(),
    }


def edge_state(
    kind: str, when: str | None, source: NodeStatus | None, nodes: dict[str, NodeStatus], params: dict[str, str],
    whole: Mapping[str, Any] | None = None,
) -> str:
    """Whether an edge held: the engine's own rule (`EdgeDecisions`), not a copy of it."""
    status = ExecutionStatus(params=dict(params), nodes=list(nodes.values()))
    return _edge_state(EdgeDecisions(status, whole), InEdge(source.name if source else "", EdgeKind(kind), when, 0),
                       nodes)


def _edge_state(decisions: EdgeDecisions, edge: InEdge, nodes: dict[str, NodeStatus]) -> str:
    """A condition is evaluated again, as the planner did, on the whole outputs where status holds a
    preview (outputRef); one that cannot be evaluated counts as not held (the execution then failed
    with ConditionError)."""
    source = nodes.get(edge.source)
    if source is None or source.phase not in FINISHED:
        return UNDECIDED
    if edge.kind == EdgeKind.CONDITION and not edge.when:
        return NOT_HELD
    try:
        return FIRED if decisions.holds(edge, nodes, budgeted=False) else NOT_HELD
    except cel.CelError:
        return NOT_HELD


def execution_view(execution: dict[str, Any], workflow: dict[str, Any] | None = None,
                   whole: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The execution page: the summary, params, the graph with each node's status and each edge's state.
    `whole`: the whole outputs of nodes whose status holds a preview (outputRef), by node."""
    status = status_of(execution)
    spec = spec_of(execution, workflow)
    view = execution_summary(execution)
    view["params"] = status.params or (execution.get("spec") or {}).get("params") or {}
    view["cancel"] = bool((execution.get("spec") or {}).get("cancel"))
    view["resourceVersion"] = (execution.get("metadata") or {}).get("resourceVersion", "")
    view["waiting"] = waiting_gates(execution)
    nodes = {n.name: n for n in status.nodes}
    if spec is None:
        view["graph"] = None
        view["statuses"] = {}
        return view
    graph = graph_of(spec)
    decisions = EdgeDecisions(status, whole)
    indexes = [i for n in spec.nodes for i, _ in enumerate(n.next)]  # graph_of's edges, in order
    for edge, index in zip(graph["edges"], indexes, strict=True):
        in_edge = InEdge(edge["source"], EdgeKind(edge["kind"]), edge["when"], index)
        edge["state"] = _edge_state(decisions, in_edge, nodes)
    view["graph"] = graph
    view["statuses"] = {n.name: n.model_dump(mode="json", exclude={"name"}) for n in status.nodes}
    return view


def waiting_gates(execution: dict[str, Any]) -> list[dict[str, Any]]:
    """The approval gates waiting in status, each with what it asks and the commands that decide it."""
    meta = execution.get("metadata") or {}
    where = f"-n {meta.get('namespace', '')} {meta.get('name', '')}"
    return [{"name": g.name, "message": g.message, "since": g.since, "deadline": g.deadline,
             "approve": f"jobchain approve {where} {g.name} --message TEXT",
             "deny": f"jobchain deny {where} {g.name} --message TEXT"}
            for g in status_of(execution).waiting or []]


def workflow_summary(workflow: dict[str, Any]) -> dict[str, Any]:
    meta = workflow.get("metadata") or {}
    spec = workflow.get("spec") or {}
    status = workflow.get("status") or {}
    ready: dict[str, Any] = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
    return {
        "namespace": meta.get("namespace", ""),
        "name": meta.get("name", ""),
        "created": meta.get("creationTimestamp"),
        "nodes": len(spec.get("nodes") or []),
        "params": [p.get("name") for p in spec.get("params") or []],
        "ready": ready.get("status", ""),
        "message": ready.get("message", ""),
    }


def workflow_view(workflow: dict[str, Any]) -> dict[str, Any]:
    """The workflow page: its params, defaults and graph (with each node's script or command)."""
    view = workflow_summary(workflow)
    spec = spec_of({}, workflow)
    raw = workflow.get("spec") or {}
    view["paramSpecs"] = raw.get("params") or []
    view["defaults"] = raw.get("defaults") or {}
    view["parallelism"] = raw.get("parallelism", 1)
    view["graph"] = graph_of(spec) if spec is not None else None
    return view
