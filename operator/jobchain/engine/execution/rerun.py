"""A retry's link to the execution it resumes: pinned when first read, then what the retry inherits.

Why a pin: a retry made with only spec.resumeFrom (kubectl, GitOps) takes the resumed execution's
workflowRef, paramsFrom, timeoutSeconds and ttlSecondsAfterFinished, and copies its nodes and
outputs. The first pass that reads it only records what it found (name, uid, the fields inherited,
its params) in status.resumedFrom and does nothing else; the next pass seeds from it, checking the
uid read again is the pinned one. So a status write lost after seeding is replayed against the same
execution, and one deleted or re-created with the same name meanwhile refuses the retry rather than
mixing two runs (ConfigMaps copied from one, nodes from the other). Every later pass reads the
spec through `inherit`, so the deadline and time to live are those the retry was pinned with.
"""

from __future__ import annotations

from collections.abc import Mapping

from jobchain.api.models import (
    ExecutionStatus,
    ResumedFrom,
    WorkflowExecutionSpec,
    WorkflowRef,
)
from jobchain.engine.spec.validation import join, validate_params


def pin(spec: WorkflowExecutionSpec, source_uid: str, source_spec: WorkflowExecutionSpec | None,
        source: ExecutionStatus) -> ResumedFrom:
    """What the retry `spec` takes from the execution it resumes, as first read."""
    assert spec.resumeFrom is not None
    old = source_spec or WorkflowExecutionSpec()
    return ResumedFrom(
        name=spec.resumeFrom.name, uid=source_uid, node=spec.resumeFrom.node, params=dict(source.params or {}),
        workflowRef=old.workflowRef.name if old.workflowRef else None,
        paramsFrom=list(old.paramsFrom) or None, timeoutSeconds=old.timeoutSeconds,
        ttlSecondsAfterFinished=old.ttlSecondsAfterFinished,
    )


def workflow_problem(spec: WorkflowExecutionSpec, source_spec: WorkflowExecutionSpec | None) -> str | None:
    """Why the retry's own workflowRef cannot be: it names another Workflow than the resumed run's."""
    if spec.workflowRef is None or spec.resumeFrom is None:
        return None
    old = source_spec.workflowRef.name if source_spec and source_spec.workflowRef else None
    if spec.workflowRef.name == old:
        return None
    ran = f"Workflow {old!r}" if old else "an inline workflow (spec.workflow)"
    return (f"spec.workflowRef.name {spec.workflowRef.name!r}: the execution resumed "
            f"({spec.resumeFrom.name!r}) ran {ran}, and a retry runs what it ran (its snapshot); leave "
            "workflowRef unset (it is inherited) or create a new execution of the other Workflow")


def changed_problem(pinned: ResumedFrom, uid: str | None) -> str | None:
    """Why a retry pinned to one execution cannot go on: the one of that name now is another, or none."""
    if uid == pinned.uid:
        return None
    what = "was deleted" if uid is None else f"was deleted and created again (uid {uid})"
    return (f"spec.resumeFrom.name {pinned.name!r} {what} after this retry first read it (uid {pinned.uid}); "
            "a retry never mixes two runs. Create a new retry of the execution you mean")


def params_problem(spec: WorkflowExecutionSpec, source: ExecutionStatus) -> str | None:
    """Why spec.params cannot override the resumed run's params: one is not declared, secret, ..."""
    if not spec.params or source.workflowSpec is None:
        return None
    where = f"the Workflow snapshot of {spec.resumeFrom.name if spec.resumeFrom else ''!r}"
    merged = {**(source.params or {}), **spec.params}
    secret = [p.name for p in spec.paramsFrom] or list(source.secretParams or [])
    problems = validate_params(merged, source.workflowSpec.params, where, from_secrets=secret)
    return join(problems) if problems else None


def inherit(spec: WorkflowExecutionSpec, status: ExecutionStatus) -> WorkflowExecutionSpec:
    """The spec a retry runs by: its own, with what it leaves unset taken from the pinned execution."""
    pinned = status.resumedFrom
    if pinned is None or spec.resumeFrom is None:
        return spec
    update: dict[str, object] = {}
    if spec.workflowRef is None and spec.workflow is None and pinned.workflowRef:
        update["workflowRef"] = WorkflowRef(name=pinned.workflowRef)
    if not spec.paramsFrom and pinned.paramsFrom:
        update["paramsFrom"] = list(pinned.paramsFrom)
    fields: Mapping[str, int | None] = {"timeoutSeconds": pinned.timeoutSeconds,
                                        "ttlSecondsAfterFinished": pinned.ttlSecondsAfterFinished}
    update.update({k: v for k, v in fields.items() if v is not None and getattr(spec, k) is None})
    return spec.model_copy(update=update) if update else spec
