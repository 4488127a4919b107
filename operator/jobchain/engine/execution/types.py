"""The planner's vocabulary: what it is told (observed Jobs, the Workflow found, the execution)
and what it answers (a Plan). Plain frozen data, so a plan can be compared and replayed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from jobchain.api.models import ExecutionStatus, OutputSource, WorkflowExecutionSpec, WorkflowSpec


class JobState(StrEnum):
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


@dataclass(frozen=True)
class ObservedJob:
    """What the Kubernetes layer saw of one node's Job (and its pod), output already read."""

    node: str
    name: str
    state: JobState
    pod_name: str | None = None
    exit_code: int | None = None
    raw_output: str | None = None
    message: str = ""
    retries: int = 0
    finished_at: str | None = None
    # The output could not be read whole (cut by the kubelet, or its log read back cut): the node
    # fails saying so, as a cut value passed on would give the next node wrong data silently.
    output_error: str = ""


@dataclass(frozen=True)
class NodeToRead:
    """A node not yet finished in status: its Job's result (and output) is wanted.

    `job`: the Job status says the node runs as, if any (confirmed with the API server before
    the node is declared failed because the store does not hold it).
    """

    name: str
    source: OutputSource
    job: str | None = None
    # forEach: the Jobs of items status has running (confirmed like `job`), and the indexes of
    # items finished in status (their Jobs are only checked for still running, like finished nodes)
    item_jobs: tuple[str, ...] = ()
    items_done: frozenset[int] = frozenset()


@dataclass(frozen=True)
class ResumeSource:
    """The execution a retry resumes (spec.resumeFrom), as read: status None when there is none."""

    name: str
    status: ExecutionStatus | None
    # The whole values of its outputs a retry may copy (`resume.wanted_outputs`), as read: by node,
    # or node#index of a forEach item. One missing (its ConfigMap gone) makes that node run again.
    outputs: Mapping[str, Any] = field(default_factory=dict)
    uid: str | None = None  # its metadata.uid (pinned by the retry's first pass: `engine.execution.rerun`)
    spec: WorkflowExecutionSpec | None = None  # its spec: what a retry inherits


@dataclass(frozen=True)
class WorkflowLookup:
    """The referenced Workflow as found at start: spec None when missing or unparsable."""

    name: str
    spec: WorkflowSpec | None
    found: bool = True
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExecutionInput:
    name: str
    namespace: str
    uid: str
    generation: int
    spec: WorkflowExecutionSpec
    status: ExecutionStatus
    # metadata.creationTimestamp: the start of the execution (and of its deadline) whatever pass
    # first recorded it, so a lost status write cannot move the deadline.
    created: str | None = None
    scheduled_time: str | None = None  # a WorkflowSchedule's time for this execution (its annotation)
    # The whole outputs of finished nodes whose status holds a preview and an outputRef (read from
    # their ConfigMaps by the controller): the values edges and inputs use.
    outputs: Mapping[str, Any] = field(default_factory=dict)
    # Nodes whose output ConfigMap was found forged (not owned by the execution, or not holding the
    # text whose sha256 status recorded), with what was wrong: each fails, its output not passed on.
    forged: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass
class Plan:
    """The new status, and the Jobs to create and to delete. (Events are derived from old and
    new status by engine.execution.events, not collected here.) A plan may also say that the
    execution is gone (nothing to do) or is to be deleted (its time to live is over)."""

    status: ExecutionStatus
    create: list[dict[str, Any]] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    # ConfigMaps keeping whole outputs, created (or adopted) before the status that names them is written.
    config_maps: list[dict[str, Any]] = field(default_factory=list)
    wake_at: datetime | None = None  # when to look again without any event (the deadline)
    gone: bool = False  # the API server no longer holds the execution: nothing is written
    delete_execution: bool = False  # finished, and its ttlSecondsAfterFinished is over
