"""Prometheus metrics of the operator, served on --metrics-port at /metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

EXECUTIONS_STARTED = Counter(
    "jobchain_executions_started_total", "WorkflowExecutions that started running their first node."
)
EXECUTIONS_FINISHED = Counter(
    "jobchain_executions_finished_total", "WorkflowExecutions that reached a terminal phase.", ["phase", "reason"]
)
EXECUTIONS_RUNNING = Gauge("jobchain_executions_running", "WorkflowExecutions currently Running.")
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


def serve(port: int, address: str = "0.0.0.0") -> None:
    if port > 0:
        start_http_server(port, addr=address)
