"""What happens to an execution around its plans: Jobs refused by the API server, Jobs left
running when it ends, and when a finished one is deleted (its time to live)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from jobchain.api.models import (
    TERMINAL_EXECUTION_PHASES,
    ExecutionStatus,
    NodePhase,
    WorkflowExecutionSpec,
)
from jobchain.engine.execution import status as st
from jobchain.engine.execution.types import JobState, ObservedJob
from jobchain.engine.spec.render import item_key, split_key
from jobchain.engine.timefmt import parse_time


def leftovers(status: ExecutionStatus, observed: Mapping[str, ObservedJob], already: list[str]) -> list[str]:
    """Jobs still running that no node of a finished execution should have: those of nodes the
    status does not know as run (created before a crash lost the status write, or cancelled).
    A node recorded Succeeded or Failed had its pod finish, whatever its Job's conditions say
    yet (the Job controller sets them about a second late): its Job, pod and log are kept."""
    ran = {n.name for n in status.nodes if n.phase in (NodePhase.SUCCEEDED, NodePhase.FAILED)}
    # forEach items recorded as run are kept the same way (their Jobs are named node#index)
    ran |= {item_key(n.name, e.index) for n in status.nodes for e in n.itemResults or []
            if e.phase in (NodePhase.SUCCEEDED, NodePhase.FAILED)}
    return [o.name for o in observed.values()
            if o.state == JobState.RUNNING and o.node not in ran and o.name not in already]


def record_refusals(status: ExecutionStatus, refused: Mapping[str, str], now: datetime) -> None:
    """Fails the nodes whose Job the API server refused as invalid (a bad podTemplate, env,
    resources...). Retrying could never help; failing the node lets its failure edges run.

    `refused` is keyed as observed Jobs are: a node, or node#index of a forEach item. A refused
    item fails that item only: the node goes on with its other items (whose Jobs run) and
    finishes when its items say so, as for an item that failed by itself."""
    limit = st.node_message_limit(len(status.nodes))
    for key, message in refused.items():
        name, index = split_key(key)
        node = next((n for n in status.nodes if n.name == name), None)
        if node is not None and index is not None:
            st.mark_item(node, index, NodePhase.FAILED, f"Kubernetes refused the item's Job: {message}. Fix the "
                         "node's podTemplate, env, resources or image in the Workflow", at=now)
    for node in status.nodes:
        if node.name in refused:
            st.mark_node(node, NodePhase.FAILED, now,
                         f"Kubernetes refused the node's Job: {refused[node.name]}. Fix the node's podTemplate, "
                         "env, resources or image in the Workflow", message_limit=limit, jobName=None)
    st.summarize(status, status.observedGeneration, now)


def expires_at(spec: WorkflowExecutionSpec, status: ExecutionStatus) -> datetime | None:
    """When a finished execution is to be deleted (spec.ttlSecondsAfterFinished), if ever."""
    if spec.ttlSecondsAfterFinished is None or status.phase not in TERMINAL_EXECUTION_PHASES:
        return None
    finished = parse_time(status.finishedAt)
    return finished + timedelta(seconds=spec.ttlSecondsAfterFinished) if finished else None


def queue_deadline(spec: WorkflowExecutionSpec, created: str | None) -> datetime | None:
    """When an execution waiting in its Workflow's queue fails (spec.timeoutSeconds counts from its
    creation, the wait included), if ever."""
    start = parse_time(created) if created else None
    if not spec.timeoutSeconds or start is None:
        return None
    return start + timedelta(seconds=spec.timeoutSeconds)
