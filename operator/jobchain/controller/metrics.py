"""Prometheus metrics of the operator, served on --metrics-port at /metrics."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from jobchain.api.models import TERMINAL_EXECUTION_PHASES, ExecutionPhase, ExecutionStatus, NodePhase
from jobchain.api.vocabulary import LABEL_NODE
from jobchain.engine.timefmt import parse_time

EXECUTIONS_STARTED = Counter(
    "jobchain_executions_started_total", "WorkflowExecutions that started running their first node."
)
EXECUTIONS_FINISHED = Counter(
    "jobchain_executions_finished_total", "WorkflowExecutions that reached a terminal phase.", ["phase", "reason"]
)
EXECUTIONS_RUNNING = Gauge("jobchain_executions_running", "WorkflowExecutions currently Running.")
APPROVALS_WAITING = Gauge(
    "jobchain_approvals_waiting",
    "Approval gates waiting for a decision (spec.approvals), over the executions this operator holds.")
NODE_DURATION = Histogram(
    "jobchain_node_duration_seconds",
    "From a node's Job being created to the node finishing.",
    ["phase"],
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
NODE_HANDOFF = Histogram(
    "jobchain_node_handoff_seconds",
    "From a node finishing (its container's termination time) to the next node's Job being created.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 1.5, 2, 3, 5, 10, 30),
)
HANDOFF_OPERATOR = Histogram(
    "jobchain_handoff_operator_seconds",
    "The operator's own share of a handoff: from receiving the pod event that showed a node finished "
    "to the next node's Job create returning (monotonic clock).",
    buckets=(0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 2, 5),
)
HANDOFF_BEFORE_CREATE = Histogram(
    "jobchain_handoff_before_create_seconds",
    "The part of jobchain_handoff_operator_seconds before the Job create request is sent (queueing, "
    "reading the store, planning); the rest is the API server answering the create.",
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1, 2, 5),
)
STORE_OBJECTS = Gauge("jobchain_store_objects", "Objects held in the operator's watch store.", ["kind"])
RECONCILE_ERRORS = Counter("jobchain_reconcile_errors_total", "Reconciles that raised and were retried.")
LEADER = Gauge("jobchain_leader",
               "1 while this replica is the active one (holds the leader Lease), 0 while it stands by.")

ADMISSION_POLICY = Gauge(
    "jobchain_admission_policy_in_force",
    "1 when the admission policy is installed and bound to deny at the operator's start, 0 when not "
    "(docs/security.md).", ["policy"])


def record_pass(old: ExecutionStatus, new: ExecutionStatus, created: list[dict[str, Any]],
                now: datetime, finished_seen: dict[str, float],
                created_at: dict[str, tuple[float, float]]) -> None:
    """What one pass changed, as metrics: derived from the status before and after (and the Jobs it
    created), like Events."""
    if old.phase != ExecutionPhase.RUNNING and new.phase == ExecutionPhase.RUNNING:
        EXECUTIONS_STARTED.inc()
    if old.phase not in TERMINAL_EXECUTION_PHASES and new.phase in TERMINAL_EXECUTION_PHASES:
        EXECUTIONS_FINISHED.labels(str(new.phase), new.reason).inc()
    before = {n.name: n.phase for n in old.nodes}
    by_name = {n.name: n for n in new.nodes}
    for node in new.nodes:
        if before.get(node.name) in (None, NodePhase.PENDING, NodePhase.RUNNING) and node.phase in (
            NodePhase.SUCCEEDED, NodePhase.FAILED
        ):
            start, end = parse_time(node.startedAt), parse_time(node.finishedAt)
            if start and end:
                NODE_DURATION.labels(str(node.phase)).observe(max(0.0, (end - start).total_seconds()))
    for job in created:
        started = by_name.get(job["metadata"]["labels"][LABEL_NODE])
        source = by_name.get(started.inputFrom or "") if started else None
        finished = parse_time(source.finishedAt) if source else None
        if finished:
            NODE_HANDOFF.observe(max(0.0, (now - finished).total_seconds()))
        # The operator's own share: the event that finished the predecessor received -> this
        # Job's create returned (monotonic clock), for a predecessor that finished in this pass.
        source_name = (started.inputFrom if started else None) or ""
        seen = finished_seen.get(source_name)
        times = created_at.get(job["metadata"]["name"])
        if seen is not None and times is not None and before.get(source_name) in (
            None, NodePhase.PENDING, NodePhase.RUNNING,
        ):
            HANDOFF_OPERATOR.observe(max(0.0, times[1] - seen))
            HANDOFF_BEFORE_CREATE.observe(max(0.0, times[0] - seen))


def serve(port: int, address: str = "0.0.0.0") -> None:
    if port > 0:
        start_http_server(port, addr=address)
