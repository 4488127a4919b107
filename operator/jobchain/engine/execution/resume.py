"""Retry from the failed node (spec.resumeFrom): which executions may be resumed, and what is copied.

A retry runs the same Workflow snapshot with the same params as the execution it resumes (not
the Workflow as it is now: the nodes that are reused ran that spec). Every node that Succeeded
there is copied as it was (phase, output, input, times), marked `reused`; every other node runs.
The execution resumed from is only read, never changed.
"""

from __future__ import annotations

from datetime import datetime

from jobchain.api.models import TERMINAL_EXECUTION_PHASES, ExecutionPhase, ExecutionStatus, NodePhase
from jobchain.engine.execution import status as st
from jobchain.engine.timefmt import iso


def problem(source_name: str, source: ExecutionStatus | None) -> str | None:
    """Why `source` cannot be resumed (InvalidResume), or None."""
    where = f"spec.resumeFrom.name {source_name!r}"
    if source is None:
        return f"{where}: no such execution in this namespace; name a Failed or Cancelled execution"
    if source.phase not in TERMINAL_EXECUTION_PHASES:
        return (f"{where} is still {source.phase}: wait until it finishes (or cancel it), then retry; "
                "a running execution cannot be resumed")
    if source.phase == ExecutionPhase.SUCCEEDED:
        return f"{where} Succeeded: there is nothing to retry; create a new execution to run it again"
    if source.workflowSpec is None:
        return (f"{where} failed before it started ({source.reason}: no node ran), so there is nothing to "
                "reuse; fix the cause and create a new execution")
    return None


def seed(status: ExecutionStatus, source_name: str, source: ExecutionStatus, at: datetime) -> None:
    """Starts `status` from the snapshot of `source` with its Succeeded nodes copied."""
    assert source.workflowSpec is not None
    st.begin(status, source.workflowName or source_name, source.workflowSpec, dict(source.params or {}), at,
             secret_params=source.secretParams)
    done = {n.name: n for n in source.nodes if n.phase == NodePhase.SUCCEEDED}
    limit = st.node_message_limit(len(status.nodes))
    for node in status.nodes:
        old = done.get(node.name)
        if old is None:
            continue
        st.mark_node(node, NodePhase.SUCCEEDED, old.finishedAt or iso(at),
                     f"reused from {source_name} (Succeeded there; not run again)", message_limit=limit,
                     startedAt=old.startedAt, exitCode=old.exitCode, inputFrom=old.inputFrom, output=old.output,
                     outputTruncated=old.outputTruncated, reused=True)
