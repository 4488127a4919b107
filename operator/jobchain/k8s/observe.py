"""Reads what the watches say about an execution's Jobs and turns it into ObservedJob values.

Why the node's container and not the pod phase or the Job: the first pod update that shows the
node's container terminated often still says `phase: Pending` or `Running`; the phase follows
on the kubelet's next status sync (about a second later) and the Job's Complete/Failed
condition a second after that (the Job controller batches pod updates). A node is finished
the moment its container is seen terminated: exit code 0 succeeded, anything else is a failed
attempt, final once no retry is left. That is what makes the step-to-step handoff fast. Only
the node's own container decides: init containers and extra containers from `podTemplate`
do not; a pod that failed without the node's container ever terminating (evicted, an init
container failed) is a failed attempt; the Job's own Complete/Failed conditions still decide
when no pod says anything (a deadline before any pod started, pods deleted).

Everything is read from the store the watches fill (`k8s/store.py`), not from the API server;
the API server is asked only to fill the store once per namespace (the first pass there lists
its Jobs and pods), to confirm that a Job the store does not hold is really gone
(before a Running node is declared failed for it) and for pod logs, which only nodes whose
output is their log or that failed need. Outputs are read as soon as a node is seen finished,
so the planner keeps them in status before anything deletes the pod. A pod counts for a node
only if it is controlled by that node's Job (its owner uid), never by its labels alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from jobchain.api.models import OutputSource
from jobchain.api.vocabulary import ANNOTATION_OUTPUT, CONTAINER, LABEL_MANAGED_BY, MANAGED_BY
from jobchain.engine.execution import pod_refusal
from jobchain.engine.execution.types import JobState, NodeToRead, ObservedJob
from jobchain.engine.spec.outputs import (
    LOG_TAIL_BYTES,
    log_tail_lines,
    output_in_log,
    read_message,
    termination_message_limit,
    unreadable_note,
)
from jobchain.engine.spec.render import key_of, split_key
from jobchain.engine.timefmt import iso, parse_time, utc_stamp
from jobchain.k8s.api import Builtins
from jobchain.k8s.store import Store, has_owner

log = logging.getLogger(__name__)

FAILURE_LOG_BYTES = 2048

Obj = dict[str, Any]


@dataclass
class Observation:
    """The planner's input, and when (monotonic clock) each newly finished node was first seen so."""

    jobs: dict[str, ObservedJob] = field(default_factory=dict)
    finished_seen: dict[str, float] = field(default_factory=dict)
    # when to look again at a Job still without a pod (its FailedCreate Events), even with no event
    recheck_at: datetime | None = None


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


def attempt(pod: Obj) -> JobState:
    """One pod's verdict: the node's container decides; a pod that failed without it, failed."""
    term = terminated(pod)
    if term is not None:
        return JobState.SUCCEEDED if term.get("exitCode") == 0 else JobState.FAILED
    phase = (pod.get("status") or {}).get("phase")
    if phase == "Failed":
        return JobState.FAILED  # evicted, deleted before it ran, an init container failed
    if phase == "Succeeded":
        return JobState.SUCCEEDED
    return JobState.RUNNING


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
    verdicts = [(p, attempt(p)) for p in pods]
    succeeded = [p for p, v in verdicts if v == JobState.SUCCEEDED]
    failed = [p for p, v in verdicts if v == JobState.FAILED]
    # A pod deleted before it finished is gone from the watch; the Job controller counts it.
    failures = max(len(failed), int((job.get("status") or {}).get("failed") or 0))
    if succeeded:
        return JobResult(JobState.SUCCEEDED, succeeded[-1], len(failed), "")
    if _true_condition(job, "Complete", "SuccessCriteriaMet") is not None:
        return JobResult(JobState.SUCCEEDED, None, failures, "")
    failure = _true_condition(job, "Failed", "FailureTarget")
    if failure is not None or failures > backoff:
        reason = ""
        if failure is not None:
            reason = str(failure.get("reason") or "Failed")
            if failure.get("message"):
                reason += f": {failure['message']}"
        return JobResult(JobState.FAILED, failed[-1] if failed else None, max(0, failures - 1), reason)
    return JobResult(JobState.RUNNING, None, failures, "")


def observed_job(node: str, job: Obj, result: JobResult, raw_output: str | None, log_tail: str | None,
                 read_error: str = "", output_error: str = "") -> ObservedJob:
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
        else:
            status = result.pod.get("status") or {}
            why = status.get("reason") or "Failed"
            parts.append(f"pod {why}" + (f": {status['message']}" if status.get("message") else ""))
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
        output_error=output_error,
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


def message_output(pod: Obj, read_end: Callable[[int], bytes | None]) -> tuple[str | None, str]:
    """(raw output, output error) of a finished pod whose output is its termination message: the
    message, or the output a script node's wrapper wrote to the end of its log (`read_end(lines)`:
    the log's last lines, raw), or an error when the output is known or feared to be cut."""
    term = terminated(pod)
    spec = pod.get("spec") or {}
    containers = len(spec.get("containers") or []) + len(spec.get("initContainers") or [])
    said = read_message(term.get("message") if term else None, termination_message_limit(containers))
    if said.in_log is None:
        return said.text, said.error
    data = read_end(log_tail_lines(said.in_log, said.lines))
    text = output_in_log(data, said.in_log) if data is not None else None
    return (text, "") if text is not None else (None, unreadable_note(said.in_log))


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


def log_text(data: bytes, size: int) -> str:
    """The last `size` bytes of a log as text: bytes that are not UTF-8 become U+FFFD, never an error."""
    if len(data) > size:
        data = data[-size:]
        # Cut at a character boundary: skip continuation bytes of a character cut in half.
        start = 0
        while start < min(4, len(data)) and 0x80 <= data[start] < 0xC0:
            start += 1
        data = data[start:]
    return data.decode("utf-8", errors="replace").strip()


class Observer:
    def __init__(self, api: client.ApiClient, store: Store) -> None:
        self.api = api
        self.store = store
        self.builtins = Builtins(api)  # plain dicts, no client models
        self.core = client.CoreV1Api(api)  # pod logs (raw bytes)
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        # Job uid -> its age (seconds) when its FailedCreate Events were last listed (pod_refusal)
        self.refusals_looked: dict[str, float] = {}

    def jobs(self, namespace: str, execution: str, uid: str) -> list[Obj]:
        """The execution's Jobs (those of an older execution of the same name are ignored)."""
        return [j for j in self.store.jobs(namespace, execution) if has_owner(j, uid)]

    def confirm_job(self, namespace: str, name: str, uid: str) -> Obj | None:
        """The Job from the API server, when the store does not hold it (a watch lagging)."""
        try:
            job = self.builtins.read_namespaced_job(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        if not has_owner(job, uid):
            return None
        self.store.put_job(job)
        return job

    def warm(self, namespace: str) -> None:
        """Lists the namespace's Jobs and pods of ours into the store, once per operator start.

        Why not trust the watches alone at start: they start and deliver in no particular order, so
        an execution's event can come before its Jobs'; a Job missing from the store would look
        deleted (its node failed) or never created. After this, the watches keep the store current.
        """
        selector = f"{LABEL_MANAGED_BY}={MANAGED_BY}"
        for job in self.builtins.list_namespaced_job(namespace, label_selector=selector):
            self.store.put_job(job)
        for pod in self.builtins.list_namespaced_pod(namespace, label_selector=selector):
            self.store.put_pod(pod)
        self.store.mark_warm(namespace)

    def observe(self, namespace: str, execution: str, uid: str, wanted: Iterable[NodeToRead],
                started: bool = True) -> Observation:
        """What the execution's Jobs say. `started`: status has nodes (Jobs may exist from before
        this operator started); an execution not started yet has none the store could have missed
        that matter (a Job created by a pass whose status write was lost is adopted at its create)."""
        if started and not self.store.is_warm(namespace):
            self.warm(namespace)
        wanted_by_name = {w.name: w for w in wanted}
        result = Observation()
        jobs = self.jobs(namespace, execution, uid)
        held = {key_of(j) for j in jobs}
        held_names = {j["metadata"]["name"] for j in jobs}
        for want in wanted_by_name.values():
            confirm = [want.job] if want.job and want.name not in held else []
            confirm += [name for name in want.item_jobs if name not in held_names]
            for name in confirm:
                job = self.confirm_job(namespace, name, uid)
                if job is not None:
                    jobs.append(job)
        for job in jobs:
            key = key_of(job)  # the node, or node#index of a forEach item
            if key is None:
                continue
            node, index = split_key(key)
            pods = [p for p in self.store.pods(job["metadata"].get("uid") or "") if owned_by(p, job)]
            interpreted = interpret_job(job, pods)
            wanted_node = wanted_by_name.get(node)
            if wanted_node is None or (index is not None and index in wanted_node.items_done):
                # Finished in status already: only whether it still runs matters (a leftover to
                # delete). A Job whose node container has terminated is not running, even before
                # the Job controller says Complete: deleting it would take its pod and log.
                state = JobState.RUNNING if interpreted.state == JobState.RUNNING else JobState.SUCCEEDED
                result.jobs[key] = ObservedJob(key, job["metadata"]["name"], state)
                continue
            if interpreted.state == JobState.RUNNING:
                refused = self.pod_refused(job, bool(pods), result)
                if refused is not None:
                    result.jobs[key] = ObservedJob(key, job["metadata"]["name"], JobState.FAILED, message=refused,
                                                   finished_at=iso(self.clock()))
                    continue
            raw, error, tail, output_error = None, "", None, ""
            pod = interpreted.pod
            if pod is not None and wanted_node.source == OutputSource.TERMINATION_MESSAGE:
                raw, output_error = message_output(pod, _end_reader(self, pod))
            elif pod is not None:
                raw, error = output_of(pod, wanted_node.source, _reader(self, pod))
            if pod is not None:
                if interpreted.state == JobState.FAILED:
                    tail = self.log_tail(pod, FAILURE_LOG_BYTES)
                seen = self.store.finished_seen(pod["metadata"].get("uid") or "")
                if seen is not None:
                    result.finished_seen[key] = seen
            result.jobs[key] = observed_job(key, job, interpreted, raw, tail, error, output_error)
        return result

    def log_tail(self, pod: Obj, size: int) -> str | None:
        """The end of the node container's log, at most `size` bytes; None when it cannot be read."""
        meta = pod["metadata"]
        # A whole log as an output (size LOG_TAIL_BYTES: one byte past the largest output) is read from
        # its start, up to that size: a log that fills it is known to be too large. A failure's tail is
        # read from the end.
        whole = size >= LOG_TAIL_BYTES
        try:
            response: Any = self.core.read_namespaced_pod_log(
                meta["name"], meta["namespace"], container=CONTAINER,
                limit_bytes=size if whole else None, tail_lines=None if whole else max(100, size // 16),
                _preload_content=False,  # raw bytes: a log need not be UTF-8
            )
            data = bytes(response.data)
            if not 200 <= int(response.status) <= 299:
                raise ApiException(status=response.status, reason=str(response.reason))
        except ApiException as exc:
            log.warning("cannot read the log of pod %s/%s: %s", meta["namespace"], meta["name"], exc.reason)
            return None
        return log_text(data, size)


    def pod_refused(self, job: Obj, has_pods: bool, result: Observation) -> str | None:
        """The node's message when a running Job's pod is refused (Pod Security, a webhook...): read
        from its FailedCreate Events while it has no pod, now and then (engine pod_refusal)."""
        meta = job["metadata"]
        uid = str(meta.get("uid") or "")
        created = parse_time(meta.get("creationTimestamp"))
        if has_pods or not uid or created is None:
            self.refusals_looked.pop(uid, None)
            return None
        age = (self.clock() - created).total_seconds()
        looked = self.refusals_looked.get(uid)
        if pod_refusal.due(age, looked):
            try:
                events = self.builtins.list_namespaced_event(
                    meta["namespace"], field_selector=f"involvedObject.uid={uid},reason={pod_refusal.FAILED_CREATE}")
            except ApiException as exc:
                log.warning("cannot list the Events of Job %s/%s: %s", meta["namespace"], meta["name"], exc.reason)
                events = []
            message = pod_refusal.refusal(events)
            if message is not None:
                self.refusals_looked.pop(uid, None)
                return pod_refusal.refusal_message(message)
            self.refusals_looked[uid] = looked = age
        at = created + timedelta(seconds=(looked or 0.0) + pod_refusal.next_look(looked or 0.0))
        result.recheck_at = at if result.recheck_at is None else min(result.recheck_at, at)
        return None

    def log_end(self, pod: Obj, lines: int) -> bytes | None:
        """The last `lines` lines of the node container's log, raw; None when it cannot be read."""
        meta = pod["metadata"]
        try:
            response: Any = self.core.read_namespaced_pod_log(meta["name"], meta["namespace"], container=CONTAINER,
                                                              tail_lines=lines, _preload_content=False)
            if not 200 <= int(response.status) <= 299:
                raise ApiException(status=response.status, reason=str(response.reason))
        except ApiException as exc:
            log.warning("cannot read the log of pod %s/%s: %s", meta["namespace"], meta["name"], exc.reason)
            return None
        return bytes(response.data)


def _reader(observer: Observer, pod: Obj) -> Callable[[int], str | None]:
    return lambda size: observer.log_tail(pod, size)


def _end_reader(observer: Observer, pod: Obj) -> Callable[[int], bytes | None]:
    return lambda lines: observer.log_end(pod, lines)
