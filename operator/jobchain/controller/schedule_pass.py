"""One pass over a WorkflowSchedule: read it and its executions from the watch store, ask the engine
(`engine.schedules.decide.decide`), apply what it says, write status once.

Order of side effects, for restart safety: executions are created (deterministic names) before the
status that records them is written; a crash in between leaves an execution that the next pass
finds by its name and label, and adopts. Deletes (history limits) and cancels (Replace) are
repeatable as they are.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from jobchain.api.errors import describe_validation_error
from jobchain.api.models import WorkflowScheduleSpec, WorkflowScheduleStatus
from jobchain.api.vocabulary import KIND_SCHEDULE, LABEL_SCHEDULE, SCHEDULES
from jobchain.engine.execution.types import Event
from jobchain.engine.schedules.decide import Decision, ScheduleRef, decide, execution_manifest, next_look, run_of
from jobchain.engine.timefmt import parse_time
from jobchain.k8s.cluster import OperatorCluster
from jobchain.k8s.store import has_owner

log = logging.getLogger(__name__)
KIND = KIND_SCHEDULE


def owned_runs(cluster: OperatorCluster, namespace: str, name: str, uid: str) -> list[dict[str, Any]]:
    """The executions of this schedule: its label, and owned by this very object (not by an older
    schedule of the same name)."""
    out = []
    for body in cluster.store.executions_in(namespace):
        meta = body.get("metadata") or {}
        if (meta.get("labels") or {}).get(LABEL_SCHEDULE) != name or meta.get("deletionTimestamp"):
            continue
        if has_owner(body, uid):
            out.append(body)
    return out


def reconcile_schedule(cluster: OperatorCluster, namespace: str, name: str,
                       now: datetime | None = None) -> datetime | None:
    """One pass; returns when to look again without an event (the next scheduled time)."""
    body = cluster.store.schedule(namespace, name)
    if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
        return None
    now = now or datetime.now(UTC)
    meta = body["metadata"]
    old = WorkflowScheduleStatus.model_validate(body.get("status") or {})
    try:
        spec = WorkflowScheduleSpec.model_validate(body.get("spec") or {})
    except ValidationError as exc:
        log.warning("%s/%s: invalid spec: %s", namespace, name, describe_validation_error(exc, "spec"))
        return None
    created = parse_time(meta.get("creationTimestamp")) or now
    ref = ScheduleRef(name, namespace, meta["uid"], meta.get("generation"), created)
    runs = [run_of(b) for b in owned_runs(cluster, namespace, name, meta["uid"])]
    decision = decide(ref, spec, old, runs, now)
    apply(cluster, body, ref, spec, decision)
    _write(cluster, body, old, decision.status, decision.events)
    if decision.create or decision.delete or decision.cancel:
        log.info("%s/%s: created %s, cancelled %s, deleted %s", namespace, name,
                 [n for n, _ in decision.create], decision.cancel, decision.delete)
    return next_look(decision, now)


def apply(cluster: OperatorCluster, body: dict[str, Any], ref: ScheduleRef, spec: WorkflowScheduleSpec,
          decision: Decision) -> None:
    for victim in decision.cancel:
        cluster.writer.cancel_execution(ref.namespace, victim)
    for exec_name, at in decision.create:
        written = cluster.writer.create_execution(execution_manifest(ref, spec, at))
        if written is not None:
            cluster.store.put_execution(written)
        else:
            log.info("%s/%s: %s exists already (adopted)", ref.namespace, ref.name, exec_name)
    for victim in decision.delete:
        cluster.delete_execution(ref.namespace, victim)


def _write(cluster: OperatorCluster, body: dict[str, Any], old: WorkflowScheduleStatus, new: WorkflowScheduleStatus,
           events: list[Event]) -> None:
    meta = body["metadata"]
    data = new.model_dump(mode="json", exclude_none=True)
    if data != old.model_dump(mode="json", exclude_none=True):
        # A merge patch: fields set to None are removed (nextScheduleTime of a suspended schedule).
        patch = new.model_dump(mode="json")
        written = cluster.writer.patch_status(SCHEDULES, meta["namespace"], meta["name"], patch)
        cluster.store.put_schedule(written)
    for event in events:
        cluster.writer.event(body, KIND, event.type, event.reason, event.message)
