"""Reads what the cluster says about an execution's Jobs and turns it into ObservedJob values.

Why the pod and not only the Job: the Job controller batches pod updates for about a second
before it sets the Job's Complete/Failed condition, while the pod's own terminated state is
visible at once. A node whose pod has succeeded, or whose last allowed attempt has failed,
is finished now, which is what makes the step-to-step handoff fast. Outputs are read here,
as soon as a node is seen finished, so the planner can keep them in status before anything
deletes the pod. Objects are handled as plain dicts (as in `kubectl get -o json`), so the
interpretation (`interpret_job`) is a pure function tested without a cluster.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from jobchain.api.models import OutputSource
from jobchain.engine.outputs import LOG_TAIL_BYTES
from jobchain.engine.planner import JobState, ObservedJob
from jobchain.engine.render import ANNOTATION_OUTPUT, CONTAINER, LABEL_NODE, execution_selector
from jobchain.engine.timefmt import iso, parse_time

log = logging.getLogger(__name__)

FAILURE_LOG_BYTES = 2048
JOB_NAME_LABELS = ("batch.kubernetes.io/job-name", "job-name")

Obj = dict[str, Any]


@dataclass(frozen=True)
class NodeToRead:
    """A node not yet finished in status: its Job's result (and output) is wanted."""

    name: str
    source: OutputSource


def utc_stamp(value: Any) -> str | None:
    """A Kubernetes timestamp in the one format status uses (RFC 3339, UTC, "Z")."""
    moment = parse_time(str(value)) if value else None
    return iso(moment) if moment else None


def _true_condition(job: Obj, *types: str) -> Obj | None:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") in types and cond.get("status") == "True":
            return dict(cond)
    return None


def terminated(pod: Obj) -> Obj | None:
    """The terminated state of the node's container, if it has terminated."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == CONTAINER and (status.get("state") or {}).get("terminated"):
            return dict(status["state"]["terminated"])
    return None


@dataclass(frozen=True)
class JobResult:
    """What a Job and its pods say, before any output is read."""

    state: JobState
    pod: Obj | None  # the pod whose result counts (last succeeded, or last failed)
    retries: int
    reason: str  # the Job's Failed condition, if any


def interpret_job(job: Obj, pods: list[Obj]) -> JobResult:
    """Decides whether a node's Job has finished, from the Job and its pods (oldest first)."""
    backoff = (job.get("spec") or {}).get("backoffLimit") or 0
    phases = [(p.get("status") or {}).get("phase") for p in pods]
    succeeded = [p for p, ph in zip(pods, phases, strict=True) if ph == "Succeeded"]
    failed = [p for p, ph in zip(pods, phases, strict=True) if ph == "Failed"]
    complete = _true_condition(job, "Complete", "SuccessCriteriaMet")
    failure = _true_condition(job, "Failed", "FailureTarget")
    if complete is not None or succeeded:
        return JobResult(JobState.SUCCEEDED, succeeded[-1] if succeeded else None, len(failed), "")
    if failure is not None or len(failed) > backoff:
        reason = ""
        if failure is not None:
            reason = str(failure.get("reason") or "Failed")
            if failure.get("message"):
                reason += f": {failure['message']}"
        return JobResult(JobState.FAILED, failed[-1] if failed else None, max(0, len(failed) - 1), reason)
    return JobResult(JobState.RUNNING, None, len(failed), "")


def observed_job(node: str, job: Obj, result: JobResult, raw_output: str | None, log_tail: str | None,
                 read_error: str = "") -> ObservedJob:
    """The planner's view of a finished or running Job."""
    name = job["metadata"]["name"]
    if result.state == JobState.RUNNING:
        return ObservedJob(node, name, JobState.RUNNING, retries=result.retries)
    if result.pod is None:
        message = result.reason or "the Job finished but its pod is gone; no output could be read"
        finished = utc_stamp((job.get("status") or {}).get("completionTime"))
        return ObservedJob(node, name, result.state, message=message, retries=result.retries, finished_at=finished)
    term = terminated(result.pod)
    parts = [result.reason] if result.reason else []
    if result.state == JobState.FAILED:
        if term is not None:
            why = term.get("reason")
            parts.append(f"exit code {term.get('exitCode')}" + (f" ({why})" if why not in (None, "Error") else ""))
        if log_tail:
            parts.append(f"last log lines: {log_tail}")
    if read_error:
        parts.append(read_error)
    return ObservedJob(
        node, name, result.state,
        pod_name=result.pod["metadata"]["name"],
        exit_code=term.get("exitCode") if term else None,
        raw_output=raw_output,
        message="; ".join(p for p in parts if p),
        retries=result.retries,
        finished_at=utc_stamp(term.get("finishedAt")) if term else None,
    )


def output_of(pod: Obj, source: OutputSource, read_log: Callable[[int], str | None]) -> tuple[str | None, str]:
    """(raw output, error) of a finished pod, from the node's output source."""
    if source == OutputSource.TERMINATION_MESSAGE:
        term = terminated(pod)
        return (term.get("message") if term else None), ""
    if source == OutputSource.ANNOTATION:
        return ((pod.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_OUTPUT), ""
    text = read_log(LOG_TAIL_BYTES)
    return (text, "") if text is not None else (None, "the pod log could not be read")


def owned_by(pod: Obj, job: Obj) -> bool:
    """Whether the Job controller made `pod` for `job` (an ownerReference with the Job's uid).

    Why not the labels alone: anyone who may create or relabel pods in the namespace (a step
    with patch rights, for one) could make a pod that carries a node's labels and a forged
    result; only the Job controller makes pods owned by the Job's uid.
    """
    uid = (job.get("metadata") or {}).get("uid")
    return bool(uid) and any(
        ref.get("kind") == "Job" and ref.get("uid") == uid
        for ref in (pod.get("metadata") or {}).get("ownerReferences") or []
    )


def _reader(observer: Observer, pod: Obj) -> Callable[[int], str | None]:
    return lambda size: observer.log_tail(pod, size)


class Observer:
    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.batch = client.BatchV1Api(api)
        self.core = client.CoreV1Api(api)

    def _dicts(self, items: Iterable[Any]) -> list[Obj]:
        return [self.api.sanitize_for_serialization(item) for item in items]  # type: ignore[no-untyped-call]

    def jobs(self, namespace: str, execution: str, uid: str) -> list[Obj]:
        """The execution's Jobs (those of an older execution of the same name are ignored)."""
        listed = self.batch.list_namespaced_job(namespace, label_selector=execution_selector(execution))
        return [
            j for j in self._dicts(listed.items)
            if any(ref.get("uid") == uid for ref in j["metadata"].get("ownerReferences") or [])
        ]

    def pods(self, namespace: str, execution: str) -> dict[str, list[Obj]]:
        """The execution's pods by Job name, oldest first."""
        listed = self.core.list_namespaced_pod(namespace, label_selector=execution_selector(execution))
        by_job: dict[str, list[Obj]] = {}
        for pod in self._dicts(listed.items):
            labels = pod["metadata"].get("labels") or {}
            job = next((labels[k] for k in JOB_NAME_LABELS if k in labels), None)
            if job:
                by_job.setdefault(job, []).append(pod)
        for items in by_job.values():
            items.sort(key=lambda p: p["metadata"].get("creationTimestamp") or "")
        return by_job

    def observe(self, namespace: str, execution: str, uid: str, wanted: Iterable[NodeToRead]) -> dict[str, ObservedJob]:
        wanted_by_name = {w.name: w for w in wanted}
        result: dict[str, ObservedJob] = {}
        pods: dict[str, list[Obj]] | None = None
        for job in self.jobs(namespace, execution, uid):
            node = (job["metadata"].get("labels") or {}).get(LABEL_NODE)
            if node is None:
                continue
            want = wanted_by_name.get(node)
            if want is None:
                # Finished in status already: only whether it still runs matters (a leftover to delete).
                done = _true_condition(job, "Complete", "Failed")
                state = JobState.RUNNING if done is None else JobState.SUCCEEDED
                result[node] = ObservedJob(node, job["metadata"]["name"], state)
                continue
            if pods is None:
                pods = self.pods(namespace, execution)
            interpreted = interpret_job(job, [p for p in pods.get(job["metadata"]["name"], []) if owned_by(p, job)])
            raw, error, tail = None, "", None
            pod = interpreted.pod
            if pod is not None:
                raw, error = output_of(pod, want.source, _reader(self, pod))
                if interpreted.state == JobState.FAILED:
                    tail = self.log_tail(pod, FAILURE_LOG_BYTES)
            result[node] = observed_job(node, job, interpreted, raw, tail, error)
        return result

    def log_tail(self, pod: Obj, size: int) -> str | None:
        meta = pod["metadata"]
        try:
            text = self.core.read_namespaced_pod_log(
                meta["name"], meta["namespace"], container=CONTAINER, tail_lines=max(100, size // 16),
            )
        except ApiException as exc:
            log.warning("cannot read the log of pod %s/%s: %s", meta["namespace"], meta["name"], exc.reason)
            return None
        data = str(text).encode()
        if len(data) > size:
            data = data[-size:]
        return data.decode(errors="ignore").strip()
