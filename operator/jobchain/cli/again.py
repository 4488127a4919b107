"""`jobchain retry` and `jobchain run --from-schedule`: new executions made from existing objects.

retry: a new execution with spec.resumeFrom naming the old one and the old one's spec (what to run,
params, deadlines), so the operator copies every node that Succeeded and runs the rest. Checked here
first with the operator's own rule (`engine.execution.resume.problem`), so a refusal is said at once; the
operator checks again (InvalidResume) for executions made with kubectl.
run --from-schedule: one execution of a WorkflowSchedule's template now, labelled and owned by the
schedule (it counts in its history and concurrency), as `kubectl create job --from=cronjob/X` does.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import IO, Any

from jobchain.api.models import ExecutionStatus, WorkflowScheduleSpec
from jobchain.api.vocabulary import ANNOTATION_RESUMED_FROM, API_VERSION, EXECUTIONS, KIND_EXECUTION, SCHEDULES
from jobchain.cli.cluster import ClusterCalls
from jobchain.cli.errors import CliError, Exit
from jobchain.cli.run import run_execution
from jobchain.engine.execution.resume import problem
from jobchain.engine.schedules.decide import ScheduleRef, execution_manifest
from jobchain.engine.timefmt import parse_time

_COPIED = ("workflowRef", "workflow", "params", "paramsFrom", "timeoutSeconds", "ttlSecondsAfterFinished")
_RETRY_SUFFIX = re.compile(r"-retry-[a-z0-9]{5}$")


def retry_manifest(old: dict[str, Any]) -> dict[str, Any]:
    """The retry of `old`: its spec (what runs, params, deadlines) plus resumeFrom."""
    name = old["metadata"]["name"]
    spec = {k: v for k, v in (old.get("spec") or {}).items() if k in _COPIED}
    spec["resumeFrom"] = {"name": name}
    base = _RETRY_SUFFIX.sub("", name)[:200]
    return {"apiVersion": API_VERSION, "kind": KIND_EXECUTION,
            "metadata": {"generateName": f"{base}-retry-", "annotations": {ANNOTATION_RESUMED_FROM: name}},
            "spec": spec}


def retry_execution(cluster: ClusterCalls, name: str, mode: str | None, out: IO[str],
                    err: IO[str] | None = None) -> int:
    old = cluster.get(EXECUTIONS, name)
    why = problem(name, ExecutionStatus.model_validate(old.get("status") or {}))
    if why is not None:
        raise CliError(f"InvalidResume: {why}", Exit.USAGE)
    return run_execution(cluster, retry_manifest(old), mode, out, err)


def run_from_schedule(cluster: ClusterCalls, name: str, mode: str | None, out: IO[str],
                      err: IO[str] | None = None, limit: float | None = None) -> int:
    body = cluster.get(SCHEDULES, name)
    meta = body["metadata"]
    spec = WorkflowScheduleSpec.model_validate(body.get("spec") or {})
    now = datetime.now(UTC).replace(microsecond=0)
    ref = ScheduleRef(name, cluster.namespace, meta["uid"], meta.get("generation"),
                      parse_time(meta.get("creationTimestamp")) or now)
    return run_execution(cluster, execution_manifest(ref, spec, now, manual=True), mode, out, err, limit)
