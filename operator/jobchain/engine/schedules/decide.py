"""What a WorkflowSchedule should do now: which execution to create, cancel or delete, and its status.

`decide()` is pure (the clock passed in) and works from the cluster's state alone: the schedule,
its status and the executions it owns. That is what makes it restart-safe:
- Each scheduled time has one deterministic execution name, `<schedule>-<unix time>`; the
  controller creates it or, finding it there, adopts it. A pass replayed after a crash decides the
  same name, so no time ever runs twice.
- The last time handled is the latest of status.lastScheduleTime, status.lastSkippedTime and the
  scheduled-time label of the executions it owns. A create whose status write was lost still counts,
  and is written to lastScheduleTime by the replayed pass (adopted), so deleting that execution later
  does not make its time due again.
- Missed times (operator down, schedule suspended): only the most recent one runs, and only if it
  is at most startingDeadlineSeconds late, as a CronJob does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from jobchain.api.models import (
    TERMINAL_EXECUTION_PHASES,
    ConcurrencyPolicy,
    Condition,
    ExecutionPhase,
    WorkflowScheduleSpec,
    WorkflowScheduleStatus,
)
from jobchain.api.vocabulary import (
    ANNOTATION_MANUAL,
    ANNOTATION_SCHEDULED_TIME,
    API_VERSION,
    KIND_EXECUTION,
    KIND_SCHEDULE,
    LABEL_MANAGED_BY,
    LABEL_SCHEDULE,
    LABEL_SCHEDULED_UNIX,
    MANAGED_BY,
)
from jobchain.engine.execution import status as st
from jobchain.engine.execution.types import Event
from jobchain.engine.schedules.cron import ScheduleError, parse
from jobchain.engine.timefmt import iso, parse_time

# A schedule's name plus "-" and a 10-digit Unix time must stay a valid label value (63).
MAX_NAME = 52


@dataclass(frozen=True)
class ScheduleRef:
    name: str
    namespace: str
    uid: str
    generation: int | None
    created: datetime  # its creationTimestamp: no time before it is ever run


@dataclass(frozen=True)
class Run:
    """One execution owned by the schedule, as the watch store holds it."""

    name: str
    scheduled: datetime | None  # from its label (None: a manual run)
    created: str  # creationTimestamp, orders manual runs
    phase: str | None
    finished_at: str | None
    cancel: bool = False

    @property
    def finished(self) -> bool:
        return self.phase in TERMINAL_EXECUTION_PHASES


@dataclass
class Decision:
    status: WorkflowScheduleStatus
    create: list[tuple[str, datetime]] = field(default_factory=list)  # (execution name, scheduled time)
    cancel: list[str] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    wake_at: datetime | None = None


def execution_name(schedule: str, at: datetime) -> str:
    return f"{schedule}-{int(at.timestamp())}"


def run_of(body: dict[str, Any]) -> Run:
    """A Run from an execution's body."""
    meta = body.get("metadata") or {}
    labels = meta.get("labels") or {}
    status = body.get("status") or {}
    unix = labels.get(LABEL_SCHEDULED_UNIX)
    scheduled = datetime.fromtimestamp(int(unix), UTC) if unix and str(unix).isdigit() else None
    return Run(meta.get("name", ""), scheduled, meta.get("creationTimestamp") or "", status.get("phase"),
               status.get("finishedAt"), bool((body.get("spec") or {}).get("cancel")))


def execution_manifest(ref: ScheduleRef, spec: WorkflowScheduleSpec, at: datetime, manual: bool = False,
                       ) -> dict[str, Any]:
    """The WorkflowExecution of one scheduled time (or of a manual run: generateName, no time label)."""
    template = spec.executionTemplate.model_dump(mode="json", by_alias=True, exclude_none=True,
                                                 exclude_defaults=True)
    if spec.executionTemplate.workflowRef is not None:
        template["workflowRef"] = {"name": spec.executionTemplate.workflowRef.name}
    labels = {LABEL_SCHEDULE: ref.name, LABEL_MANAGED_BY: MANAGED_BY}
    annotations = {ANNOTATION_SCHEDULED_TIME: iso(at)}
    meta: dict[str, Any] = {"namespace": ref.namespace, "labels": labels, "annotations": annotations,
                            "ownerReferences": [{"apiVersion": API_VERSION, "kind": KIND_SCHEDULE,
                                                 "name": ref.name, "uid": ref.uid, "controller": True}]}
    if manual:
        meta["generateName"] = f"{ref.name}-manual-"
        annotations[ANNOTATION_MANUAL] = "true"
    else:
        meta["name"] = execution_name(ref.name, at)
        labels[LABEL_SCHEDULED_UNIX] = str(int(at.timestamp()))
    return {"apiVersion": API_VERSION, "kind": KIND_EXECUTION, "metadata": meta, "spec": template}


def _ready(old: WorkflowScheduleStatus, ref: ScheduleRef, ok: bool, reason: str, message: str,
           now: datetime) -> list[Condition]:
    return st.set_condition(old.conditions, Condition(type="Ready", status="True" if ok else "False", reason=reason,
                                                      message=message, observedGeneration=ref.generation), now)


def _later(*stamps: str | datetime | None) -> datetime | None:
    times = [s if isinstance(s, datetime) else parse_time(s) for s in stamps]
    present = [t for t in times if t is not None]
    return max(present) if present else None


def decide(ref: ScheduleRef, spec: WorkflowScheduleSpec, old: WorkflowScheduleStatus, runs: list[Run],
           now: datetime) -> Decision:
    """The whole decision of one pass over a schedule."""
    new = old.model_copy(deep=True)
    new.observedGeneration = ref.generation
    decision = Decision(status=new)
    was_ready = next((c.status for c in old.conditions if c.type == "Ready"), None)
    try:
        if len(ref.name) > MAX_NAME:
            raise ScheduleError(f"metadata.name is {len(ref.name)} characters; a schedule's name is at most "
                                f"{MAX_NAME} (its executions are named <schedule>-<unix time>)")
        schedule = parse(spec.schedule, spec.timeZone)
    except ScheduleError as exc:
        new.nextScheduleTime = None
        new.conditions = _ready(old, ref, False, "InvalidSchedule", f"{exc}. No execution is created until it is fixed",
                                now)
        old_message = next((c.message for c in old.conditions if c.type == "Ready"), None)
        if was_ready != "False" or old_message != next(c.message for c in new.conditions if c.type == "Ready"):
            decision.events.append(Event("Warning", "InvalidSchedule", str(exc)))
        _history(spec, runs, old, decision)
        return decision

    active = [r for r in runs if not r.finished]
    # An execution of a time that status does not record yet (its create's status write was lost) is
    # adopted and recorded now: deleted later (history limit, TTL, by hand), it must not run again.
    started = _later(old.lastScheduleTime, *(r.scheduled for r in runs))
    if started is not None and started != _later(old.lastScheduleTime):
        new.lastScheduleTime = iso(started)
    handled = _later(started, old.lastSkippedTime, ref.created)
    assert handled is not None
    due = None if spec.suspend else schedule.latest_between(handled, now)
    if due is not None:
        late = (now - due).total_seconds()
        name = execution_name(ref.name, due)
        if spec.startingDeadlineSeconds is not None and late > spec.startingDeadlineSeconds:
            new.lastSkippedTime = iso(due)
            decision.events.append(Event("Warning", "MissedSchedule",
                                         f"missed {iso(due)} by {int(late)}s, more than startingDeadlineSeconds "
                                         f"({spec.startingDeadlineSeconds}); waiting for the next time"))
        elif active and spec.concurrencyPolicy == ConcurrencyPolicy.FORBID:
            new.lastSkippedTime = iso(due)
            decision.events.append(Event("Normal", "Skipped",
                                         f"skipped {iso(due)}: {', '.join(r.name for r in active)} still running "
                                         "(concurrencyPolicy: Forbid)"))
        else:
            if spec.concurrencyPolicy == ConcurrencyPolicy.REPLACE:
                decision.cancel = [r.name for r in active if not r.cancel]
                if decision.cancel:
                    decision.events.append(Event("Normal", "Replaced", f"cancelled {', '.join(decision.cancel)} "
                                                 f"to start {name} (concurrencyPolicy: Replace)"))
            decision.create.append((name, due))
            new.lastScheduleTime = iso(due)
            decision.events.append(Event("Normal", "Scheduled", f"created {name} for {iso(due)}"
                                         + (f" ({int(late)}s late)" if late >= 60 else "")))
    names = sorted({r.name for r in active if r.name not in decision.cancel} | {n for n, _ in decision.create})
    new.active = names
    new.activeCount = len(names)
    succeeded = [r.finished_at for r in runs if r.phase == ExecutionPhase.SUCCEEDED]
    latest_success = _later(old.lastSuccessfulTime, *succeeded)
    new.lastSuccessfulTime = iso(latest_success) if latest_success else None
    nxt = None if spec.suspend else schedule.next_after(now)
    new.nextScheduleTime = iso(nxt) if nxt else None
    decision.wake_at = nxt
    # The next time is in nextScheduleTime, not in the message: the condition changes only when its
    # meaning does.
    zone = spec.timeZone or "UTC"
    message = "suspended (spec.suspend): no new executions" if spec.suspend else \
        f"runs on {spec.schedule!r} ({zone})" if nxt else f"{spec.schedule!r} names no time in the next five years"
    new.conditions = _ready(old, ref, True, "Suspended" if spec.suspend else "Scheduled", message, now)
    if was_ready == "False":
        decision.events.append(Event("Normal", "ScheduleValid", f"schedule {spec.schedule!r} is valid again"))
    _history(spec, runs, old, decision)
    return decision


def _history(spec: WorkflowScheduleSpec, runs: list[Run], old: WorkflowScheduleStatus, decision: Decision) -> None:
    """Deletes finished executions beyond the history limits, oldest first; but not one whose time
    the written status (`old`) does not record yet: if this pass's status write is lost, that
    execution is the only record that its time ran. It goes on a later pass."""
    def newest_first(r: Run) -> tuple[str, str]:
        return (r.finished_at or "", r.created)

    recorded = _later(old.lastScheduleTime)
    finished = sorted((r for r in runs if r.finished), key=newest_first, reverse=True)
    ok = [r for r in finished if r.phase == ExecutionPhase.SUCCEEDED]
    bad = [r for r in finished if r.phase != ExecutionPhase.SUCCEEDED]
    beyond = ok[spec.successfulExecutionsHistoryLimit:] + bad[spec.failedExecutionsHistoryLimit:]
    decision.delete = [r.name for r in beyond
                       if r.scheduled is None or (recorded is not None and r.scheduled <= recorded)]


def next_look(decision: Decision, now: datetime) -> datetime | None:
    """When to look again without an event: the next time (a little after, never before)."""
    return decision.wake_at + timedelta(milliseconds=50) if decision.wake_at else None
