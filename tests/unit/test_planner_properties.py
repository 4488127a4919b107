"""The planner's invariants over random workflows, driven by a simulated cluster.

The cluster finishes random running Jobs with random results; the controller around plan() is
simulated too, including its failure modes: a kopf retry calls plan() twice with the same inputs,
and a crash between creating Jobs and writing status loses the status write. Whatever happens:
a node never gets a second Job, a finished node never changes, running Jobs never exceed
parallelism, and the execution ends within a bounded number of steps.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from jobchain.api.models import (
    FINISHED_NODE_PHASES,
    TERMINAL_EXECUTION_PHASES,
    ExecutionStatus,
    NodeStatus,
    WorkflowSpec,
)
from jobchain.engine.graph import Graph
from jobchain.engine.planner import plan
from jobchain.engine.status import NAMED_IN_MESSAGE
from jobchain.engine.validation import validate_workflow

from .builders import T0, Cluster, created_nodes, execution, spec, with_status

KINDS = ["success", "failure", "always", "condition"]
WHENS = ["true", "false", "has(output.ok) && output.ok", "output.ok", "node.exitCode == 0",
         "has(input.ok) && input.ok"]
OUTPUTS = [None, '{"ok": true}', '{"ok": false}', '{"v": 1}', "plain text", '{"ok": true, "v": "x"}']
MAX_DROPS = 4
# More examples for a longer hunt: JOBCHAIN_PROPERTY_EXAMPLES=5000 pytest tests/unit/test_planner_properties.py
EXAMPLES = int(os.environ.get("JOBCHAIN_PROPERTY_EXAMPLES", "300"))


@st.composite
def workflows(draw: st.DrawFn) -> WorkflowSpec:
    """A random DAG: edges only go forward in a hidden topological order; declared in random order."""
    n = draw(st.integers(1, 7))
    names = [f"n{i}" for i in range(n)]
    bodies: list[dict[str, Any]] = []
    has_incoming: set[str] = set()
    for i, name in enumerate(names):
        nxt = []
        for target in names[i + 1:]:
            if draw(st.booleans()):
                kind = draw(st.sampled_from(KINDS))
                e: dict[str, Any] = {"node": target, "type": kind}
                if kind == "condition":
                    e["when"] = draw(st.sampled_from(WHENS))
                nxt.append(e)
                has_incoming.add(target)
        bodies.append({"name": name, "image": "busybox", "next": nxt,
                       "join": draw(st.sampled_from(["all", "any"]))})
    for body in bodies:
        # Some nodes use their input: unresolvable when the predecessor's output lacks the key.
        if body["name"] in has_incoming and draw(st.booleans()):
            body["script"] = draw(st.sampled_from(["echo $(input)", "echo $(input.v)"]))
        else:
            body["script"] = "true"
    order = draw(st.permutations(bodies))
    workflow = spec(*order, parallelism=draw(st.integers(1, 4)))
    assert validate_workflow(workflow) == []
    return workflow


def unchanged_finished_nodes(before: ExecutionStatus, after: ExecutionStatus) -> None:
    later = {n.name: n for n in after.nodes}
    for node in before.nodes:
        if node.phase in FINISHED_NODE_PHASES:
            assert later[node.name] == node, f"finished node {node.name} changed"


class ConditionFails(Exception):
    pass


def expected_when(when: str, output: Any, input: Any, exit_code: int | None) -> bool:
    """What each generated `when` means, written out independently of CEL."""
    if when in ("true", "false"):
        return when == "true"
    if when == "has(output.ok) && output.ok":
        return isinstance(output, dict) and output.get("ok") is True
    if when == "has(input.ok) && input.ok":
        return isinstance(input, dict) and input.get("ok") is True
    if when == "output.ok":
        if isinstance(output, dict) and "ok" in output:
            return bool(output["ok"])
        raise ConditionFails(when)
    assert when == "node.exitCode == 0"
    return exit_code == 0


def input_of(node: NodeStatus, nodes: dict[str, NodeStatus]) -> Any:
    return nodes[node.inputFrom].output if node.inputFrom else None


def check_edge_semantics(workflow: WorkflowSpec, status: ExecutionStatus) -> None:
    """Each node ran iff its join held over its incoming edges; its input is the last finished holder."""
    graph = Graph.of(workflow)
    nodes = {m.name: m for m in status.nodes}
    for spec_node in workflow.nodes:
        incoming = graph.incoming[spec_node.name]
        held = []
        for e in incoming:
            source = nodes[e.source]
            if source.phase == "Succeeded":
                ok = e.kind in ("success", "always") or (
                    e.kind == "condition" and expected_when(e.when or "", source.output, input_of(source, nodes),
                                                            source.exitCode))
            else:
                ok = source.phase == "Failed" and e.kind in ("failure", "always")
            if ok:
                held.append(e.source)
        runs = not incoming or (len(held) == len(incoming) if spec_node.join == "all" else bool(held))
        me = nodes[spec_node.name]
        assert (me.phase in ("Succeeded", "Failed")) == runs, f"{spec_node.name} is {me.phase}, held: {held}"
        if runs and incoming:
            assert me.inputFrom in held
            assert all((nodes[h].finishedAt or "") <= (nodes[me.inputFrom].finishedAt or "") for h in held)


def handled(workflow: WorkflowSpec, name: str) -> bool:
    node = next(n for n in workflow.nodes if n.name == name)
    return any(e.type in ("failure", "always") for e in node.next)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(workflow=workflows(), data=st.data())
def test_invariants_hold_under_random_results_retries_and_crashes(workflow: WorkflowSpec,
                                                                   data: st.DataObject) -> None:
    timeout = data.draw(st.none() | st.integers(3, 30), label="timeoutSeconds")
    cancel_at = data.draw(st.none() | st.integers(0, 15), label="cancel at step")
    ex = execution(workflow, timeout=timeout)
    cluster = Cluster()
    now = T0
    drops = 0
    n = len(workflow.nodes)
    bound = n + MAX_DROPS + 3
    parallelism = workflow.parallelism
    jobs_per_node: dict[str, set[str]] = {}
    incoming = Graph.of(workflow).incoming

    for step in range(bound):
        if cancel_at is not None and step == cancel_at:
            ex = with_status(ex, ex.status, cancel=True)
        seen = cluster.observed()
        p = plan(ex, seen, now)

        # A kopf retry: the same inputs give the same decision.
        if data.draw(st.integers(0, 4), label="retry") == 0:
            again = plan(ex, seen, now)
            assert again.create == p.create and again.delete == p.delete and again.status == p.status

        assert not set(created_nodes(p)) & set(seen), "a Job was planned for a node whose Job is observed"
        running_after = {m.name for m in p.status.nodes if m.phase == "Running"}
        assert set(created_nodes(p)) <= running_after, "a Job was planned for a node that is not Running"
        assert len(running_after) <= parallelism
        unchanged_finished_nodes(ex.status, p.status)
        if p.status.reason in ("Running", "Succeeded", "NodeFailed"):
            # (A stop right after a lost status write may leave an adopted node's input unknown:
            # nothing is decided after a stop, so nothing depends on it.)
            for m in p.status.nodes:
                if m.jobName and incoming[m.name]:
                    assert m.inputFrom is not None, f"{m.name} has a Job but no recorded input"
        if ex.status.phase in TERMINAL_EXECUTION_PHASES:
            assert p.status == ex.status and p.create == []

        cluster.apply(p)
        for manifest in p.create:
            node_name = manifest["metadata"]["labels"]["jobchain.dev/node"]
            jobs_per_node.setdefault(node_name, set()).add(manifest["metadata"]["name"])
            assert len(jobs_per_node[node_name]) == 1
        assert len(cluster.running()) <= parallelism, "more Jobs running than parallelism"

        crash = drops < MAX_DROPS and data.draw(st.integers(0, 5), label="crash before status write") == 0
        if crash:
            drops += 1
        else:
            ex = with_status(ex, p.status)

        if ex.status.phase in TERMINAL_EXECUTION_PHASES:
            later = plan(ex, cluster.observed(), now + timedelta(hours=1))
            assert later.status == ex.status and later.create == [] and later.delete == []
            event(f"ended {ex.status.phase}/{ex.status.reason}")
            event(f"crashes: {drops}")
            check_final(workflow, ex.status, cluster)
            return

        now += timedelta(seconds=data.draw(st.integers(1, 3), label="seconds passing"))
        running = cluster.running()
        if running:
            finishing = data.draw(st.lists(st.sampled_from(running), min_size=1, unique_by=lambda j: j.name),
                                  label="finishing")
            for j in finishing:
                state = data.draw(st.sampled_from(["Succeeded", "Failed"]), label=f"{j.node} result")
                cluster.finish(j.node, state, data.draw(st.sampled_from(OUTPUTS), label=f"{j.node} output"), now)

    raise AssertionError(f"not finished after {bound} steps: {ex.status.phase} "
                         f"{[(m.name, str(m.phase)) for m in ex.status.nodes]}")


def check_final(workflow: WorkflowSpec, status: ExecutionStatus, cluster: Cluster) -> None:
    assert all(m.phase in FINISHED_NODE_PHASES for m in status.nodes)
    if status.nodes:
        assert status.progress == f"{len(status.nodes)}/{len(status.nodes)}"
    assert status.running is None
    assert cluster.running() == [], "a finished execution left a Job running"
    failed = [m.name for m in status.nodes if m.phase == "Failed"]
    if status.phase == "Succeeded":
        assert all(handled(workflow, name) for name in failed)
    if status.reason == "NodeFailed":
        unhandled = [name for name in failed if not handled(workflow, name)]
        assert unhandled
        for name in unhandled[:NAMED_IN_MESSAGE]:  # a few named, then how many more (issue 8, defect 1)
            assert name in status.message
        if len(unhandled) > NAMED_IN_MESSAGE:
            assert f"and {len(unhandled) - NAMED_IN_MESSAGE} more" in status.message
    if status.reason in ("Succeeded", "NodeFailed"):
        assert not any(m.phase == "Cancelled" for m in status.nodes)
        check_edge_semantics(workflow, status)
    if status.reason == "ConditionError":
        event("condition error")
