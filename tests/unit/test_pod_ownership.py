"""A node's result comes only from a pod its Job made: labels alone can be forged."""

from __future__ import annotations

from typing import Any

import pytest

from jobchain.k8s.observe import owned_by

JOB = {"metadata": {"name": "run-1-a-1234", "uid": "job-uid"}}


def pod(*owners: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "p", "labels": {"batch.kubernetes.io/job-name": "run-1-a-1234"},
                         "ownerReferences": list(owners)}}


@pytest.mark.parametrize(("candidate", "counts"), [
    (pod({"kind": "Job", "name": "run-1-a-1234", "uid": "job-uid"}), True),
    (pod(), False),  # the Job's labels, no owner: made by someone else
    (pod({"kind": "Job", "name": "run-1-a-1234", "uid": "older-job-uid"}), False),  # a Job of the same name before
    (pod({"kind": "ReplicaSet", "name": "x", "uid": "job-uid"}), False),
    ({"metadata": {"name": "p"}}, False),
])
def test_only_a_pod_owned_by_the_jobs_uid_counts(candidate: dict[str, Any], counts: bool) -> None:
    assert owned_by(candidate, JOB) is counts


def test_a_job_without_uid_owns_nothing() -> None:
    assert owned_by(pod({"kind": "Job", "uid": ""}), {"metadata": {"name": "j"}}) is False
