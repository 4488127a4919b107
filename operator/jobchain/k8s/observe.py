"""Reads what the cluster says about an execution's Jobs and turns it into ObservedJob values.

Why the pod and not only the Job: the Job controller batches pod updates for about a second
before it sets the Job's Complete/Failed condition, while the pod's own terminated state is
visible at once. A single-attempt node whose pod has terminated is finished now, which is
what makes the step-to-step handoff fast. Outputs are read here, as soon as a node is seen
finished, so that the planner can keep them in status before anything deletes the pod.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from jobchain.api.models import OutputSource
from jobchain.engine.outputs import LOG_TAIL_BYTES
from jobchain.engine.planner import JobState, ObservedJob
from jobchain.engine.render import (
    ANNOTATION_OUTPUT,
    CONTAINER,
    LABEL_NODE,
    execution_selector,
)

log = logging.getLogger(__name__)

FAILURE_LOG_BYTES = 2048


@dataclass(frozen=True)
class NodeToRead:
    """A node not yet finished in status: its Job's result (and output) is wanted."""

    name: str
    source: OutputSource


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return str(value.strftime("%Y-%m-%dT%H:%M:%SZ"))


def _condition(job: client.V1Job, *types: str) -> client.V1JobCondition | None:
    for cond in (job.status and job.status.conditions) or []:
        if cond.type in types and cond.status == "True":
            return cond
    return None


def _terminated(pod: client.V1Pod) -> client.V1ContainerStateTerminated | None:
    for status in (pod.status and pod.status.container_statuses) or []:
        if status.name == CONTAINER and status.state and status.state.terminated:
            return status.state.terminated
    return None


def _created(obj: Any) -> str:
    stamp = obj.metadata.creation_timestamp
    return stamp.isoformat() if stamp else ""


class Observer:
    def __init__(self, api: client.ApiClient) -> None:
        self.batch = client.BatchV1Api(api)
        self.core = client.CoreV1Api(api)

    def jobs(self, namespace: str, execution: str, uid: str) -> list[client.V1Job]:
        """The execution's Jobs (those of an older execution of the same name are ignored)."""
        jobs = self.batch.list_namespaced_job(namespace, label_selector=execution_selector(execution)).items
        return [
            j for j in jobs
            if any(ref.uid == uid for ref in (j.metadata.owner_references or []))
        ]

    def observe(self, namespace: str, execution: str, uid: str,
                wanted: Iterable[NodeToRead]) -> dict[str, ObservedJob]:
        wanted_by_name = {w.name: w for w in wanted}
        jobs = {j.metadata.labels.get(LABEL_NODE): j for j in self.jobs(namespace, execution, uid)}
        result: dict[str, ObservedJob] = {}
        pods_by_job: dict[str, list[client.V1Pod]] | None = None
        for node, job in jobs.items():
            if node is None:
                continue
            want = wanted_by_name.get(node)
            if want is None:
                # Finished in status already: only whether it still runs matters (leftover delete).
                done = _condition(job, "Complete", "Failed")
                result[node] = ObservedJob(node, job.metadata.name,
                                           JobState.RUNNING if done is None else JobState.SUCCEEDED)
                continue
            if pods_by_job is None:
                pods_by_job = self._pods(namespace, execution)
            result[node] = self._observe_job(job, pods_by_job.get(job.metadata.name, []), want)
        return result

    def _pods(self, namespace: str, execution: str) -> dict[str, list[client.V1Pod]]:
        pods = self.core.list_namespaced_pod(namespace, label_selector=execution_selector(execution)).items
        by_job: dict[str, list[client.V1Pod]] = {}
        for pod in pods:
            job = (pod.metadata.labels or {}).get("batch.kubernetes.io/job-name") or (
                pod.metadata.labels or {}).get("job-name")
            if job:
                by_job.setdefault(job, []).append(pod)
        for items in by_job.values():
            items.sort(key=_created)
        return by_job

    def _observe_job(self, job: client.V1Job, pods: list[client.V1Pod], want: NodeToRead) -> ObservedJob:
        name = job.metadata.name
        backoff = job.spec.backoff_limit or 0
        succeeded = [p for p in pods if p.status and p.status.phase == "Succeeded"]
        failed = [p for p in pods if p.status and p.status.phase == "Failed"]
        complete = _condition(job, "Complete", "SuccessCriteriaMet")
        failure = _condition(job, "Failed", "FailureTarget")
        retries = len(failed)
        if complete is not None or succeeded:
            pod = succeeded[-1] if succeeded else None
            return self._finished(JobState.SUCCEEDED, job, pod, want, retries, "")
        if failure is not None or len(failed) > backoff:
            pod = failed[-1] if failed else None
            reason = ""
            if failure is not None:
                reason = f"{failure.reason}: {failure.message}" if failure.message else str(failure.reason)
            return self._finished(JobState.FAILED, job, pod, want, max(0, retries - 1), reason)
        return ObservedJob(want.name, name, JobState.RUNNING, retries=retries)

    def _finished(self, state: JobState, job: client.V1Job, pod: client.V1Pod | None, want: NodeToRead,
                  retries: int, reason: str) -> ObservedJob:
        if pod is None:
            message = reason or "the Job finished but its pod is gone; no output could be read"
            finished = _iso(job.status.completion_time) if job.status else None
            return ObservedJob(want.name, job.metadata.name, state, message=message, retries=retries,
                               finished_at=finished)
        term = _terminated(pod)
        exit_code = term.exit_code if term else None
        raw, read_error = self._read_output(pod, want.source, term)
        parts = [reason] if reason else []
        if state == JobState.FAILED:
            if term is not None:
                parts.append(f"exit code {term.exit_code}" + (f" ({term.reason})" if term.reason not in
                                                               (None, "Error", "Completed") else ""))
            tail = self._log_tail(pod, FAILURE_LOG_BYTES)
            if tail:
                parts.append(f"last log lines: {tail}")
        if read_error:
            parts.append(read_error)
        finished = _iso(term.finished_at) if term else None
        return ObservedJob(want.name, job.metadata.name, state, pod_name=pod.metadata.name, exit_code=exit_code,
                           raw_output=raw, message="; ".join(p for p in parts if p), retries=retries,
                           finished_at=finished)

    def _read_output(self, pod: client.V1Pod, source: OutputSource,
                     term: client.V1ContainerStateTerminated | None) -> tuple[str | None, str]:
        if source == OutputSource.TERMINATION_MESSAGE:
            return (term.message if term else None), ""
        if source == OutputSource.ANNOTATION:
            return (pod.metadata.annotations or {}).get(ANNOTATION_OUTPUT), ""
        text = self._log_tail(pod, LOG_TAIL_BYTES)
        if text is None:
            return None, "the pod log could not be read"
        return text, ""

    def _log_tail(self, pod: client.V1Pod, size: int) -> str | None:
        try:
            text = self.core.read_namespaced_pod_log(
                pod.metadata.name, pod.metadata.namespace, container=CONTAINER,
                tail_lines=max(100, size // 16), _preload_content=True,
            )
        except ApiException as exc:
            log.warning("cannot read log of pod %s/%s: %s", pod.metadata.namespace, pod.metadata.name, exc.reason)
            return None
        data = str(text).encode()
        if len(data) > size:
            data = data[-size:]
        return data.decode(errors="ignore").strip()
