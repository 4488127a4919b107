"""Reads and writes the leader election Lease (coordination.k8s.io/v1) in the operator's namespace.

Every write carries the resourceVersion last read (create: none exists), so the API server lets
exactly one of two replicas writing at once succeed; the other gets 409 and learns it lost.
The decisions are made in jobchain.engine.coordination.election; this module only moves the record.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from jobchain.api.vocabulary import LABEL_MANAGED_BY, MANAGED_BY
from jobchain.engine.coordination.election import Record


class Conflict(Exception):
    """Another replica wrote the Lease first (409), or it was deleted under us (404)."""


def _micro_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _record(obj: dict[str, Any]) -> Record:
    spec = obj.get("spec") or {}
    return Record(
        holder=str(spec.get("holderIdentity") or ""),
        lease_duration=float(spec.get("leaseDurationSeconds") or 0),
        renew_time=str(spec.get("renewTime") or ""),
        transitions=int(spec.get("leaseTransitions") or 0),
        version=str((obj.get("metadata") or {}).get("resourceVersion") or ""),
    )


class LeaseClient:
    def __init__(self, api: client.ApiClient, namespace: str, name: str) -> None:
        self.api = api
        self.coordination = client.CoordinationV1Api(api)
        self.namespace = namespace
        self.name = name

    def read(self) -> Record | None:
        """The Lease as it is now, or None if there is none."""
        try:
            obj = self.coordination.read_namespaced_lease(self.name, self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return _record(self.api.sanitize_for_serialization(obj))  # type: ignore[no-untyped-call]

    def _spec(self, holder: str, duration: float, transitions: int, acquired: bool) -> dict[str, Any]:
        now = _micro_time(datetime.now(UTC))
        spec: dict[str, Any] = {"holderIdentity": holder or None, "leaseDurationSeconds": max(1, round(duration)),
                                "renewTime": now, "leaseTransitions": transitions}
        if acquired:
            spec["acquireTime"] = now
        return spec

    def create(self, identity: str, duration: float) -> Record:
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace,
                             "labels": {LABEL_MANAGED_BY: MANAGED_BY}},
                "spec": self._spec(identity, duration, 0, acquired=True)}
        try:
            created = self.coordination.create_namespaced_lease(self.namespace, body)  # type: ignore[arg-type]
        except ApiException as exc:
            if exc.status == 409:
                raise Conflict("another replica created the Lease first") from None
            raise
        return _record(self.api.sanitize_for_serialization(created))  # type: ignore[no-untyped-call]

    def write(self, old: Record, holder: str, duration: float, transitions: int, acquired: bool) -> Record:
        """Replaces the Lease's spec if it is still at `old.version` (else Conflict)."""
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace, "resourceVersion": old.version,
                             "labels": {LABEL_MANAGED_BY: MANAGED_BY}},
                "spec": self._spec(holder, duration, transitions, acquired)}
        try:
            written = self.coordination.replace_namespaced_lease(self.name, self.namespace, body)  # type: ignore[arg-type]
        except ApiException as exc:
            if exc.status in (404, 409):
                raise Conflict(f"the Lease changed under us ({exc.status})") from None
            raise
        return _record(self.api.sanitize_for_serialization(written))  # type: ignore[no-untyped-call]
