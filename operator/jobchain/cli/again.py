"""`jobchain retry` and `jobchain run --from-schedule`: new executions made from existing objects.

retry: a new execution with spec.resumeFrom naming the old one (and the node to rerun from, --from) and
the old one's spec (what to run, params with -p overrides, deadlines), so the operator copies every node
that Succeeded (and does not depend on that node) and runs the rest. Checked here
first with the operator's own rule (`engine.execution.resume.problem`), so a refusal is said at once; the
operator checks again (InvalidResume) for executions made with kubectl.
run --from-schedule: one execution of a WorkflowSchedule's template now, labelled and owned by the
schedule (it counts in its history and concurrency), as `kubectl create job --from=cronjob/X` does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import IO, Any

from jobchain.api.models import ExecutionStatus, WorkflowExecutionSpec, WorkflowScheduleSpec
from jobchain.api.vocabulary import ANNOTATION_RESUMED_FROM, API_VERSION, EXECUTIONS, KIND_EXECUTION, SCHEDULES
from jobchain.cli.cluster import ClusterCalls
from jobchain.cli.errors import CliError, Exit
from jobchain.cli.run import run_execution
from jobchain.engine.execution.rerun import params_problem
from jobchain.engine.execution.resume import problem
from jobchain.engine.schedules.decide import ScheduleRef, execution_manifest
from jobchain.engine.timefmt import parse_time

_COPIED = ("workflowRef", "workflow", "params", "paramsFrom", "timeoutSeconds", "ttlSecondsAfterFinished")
_RETRY_SUFFIX = re.compile(r"-retry-[a-z0-9]{5}$")


def retry_manifest(old: dict[str, Any], node: str | None = None,
                   params: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The retry of `old` (from `node`, with `params` overriding its own): its spec (what runs,
    params, deadlines) plus resumeFrom."""
    name = old["metadata"]["name"]
    spec = {k: v for k, v in (old.get("spec") or {}).items() if k in _COPIED}
    if params:
        spec["params"] = {**(spec.get("params") or {}), **params}
    spec["resumeFrom"] = {"name": name, **({"node": node} if node else {})}
    base = _RETRY_SUFFIX.sub("", name)[:200]
    return {"apiVersion": API_VERSION, "kind": KIND_EXECUTION,
            "metadata": {"generateName": f"{base}-retry-", "annotations": {ANNOTATION_RESUMED_FROM: name}},
            "spec": spec}


def retry_execution(cluster: ClusterCalls, name: str, mode: str | None, out: IO[str],
                    err: IO[str] | None = None, node: str | None = None,
                    params: Mapping[str, str] | None = None) -> int:
    """Creates the retry of `name` (from `node`, with `params` overriding its own), checked first with
    the operator's rules against what that execution ran (its snapshot, not the Workflow as it is now)."""
    old = cluster.get(EXECUTIONS, name)
    status = ExecutionStatus.model_validate(old.get("status") or {})
    why = problem(name, status, node)
    if why is not None:
        raise CliError(f"InvalidResume: {why}", Exit.USAGE)
    manifest = retry_manifest(old, node, params)
    bad = params_problem(WorkflowExecutionSpec.model_validate(manifest["spec"]), status)
    if bad is not None:
        raise CliError(f"InvalidParams: {bad}; -p sets only the params the workflow declares", Exit.USAGE)
    return run_execution(cluster, manifest, mode, out, err, check=False)


def run_from_schedule(cluster: ClusterCalls, name: str, mode: str | None, out: IO[str],
                      err: IO[str] | None = None, limit: float | None = None) -> int:
    body = cluster.get(SCHEDULES, name)
    meta = body["metadata"]
    spec = WorkflowScheduleSpec.model_validate(body.get("spec") or {})
    now = datetime.now(UTC).replace(microsecond=0)
    ref = ScheduleRef(name, cluster.namespace, meta["uid"], meta.get("generation"),
                      parse_time(meta.get("creationTimestamp")) or now)
    return run_execution(cluster, execution_manifest(ref, spec, now, manual=True), mode, out, err, limit=limit)
