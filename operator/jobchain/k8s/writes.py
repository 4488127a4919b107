"""Every write the operator makes: Jobs (create-or-adopt, delete), status patches, Events.

Why one module: these are the side effects kopf may repeat when it retries, so each one is
written to be safe to repeat: a Job that exists already is adopted when it belongs to the
same execution, a delete of a missing Job is done, and status is written as a whole.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from jobchain.api.models import API_VERSION
from jobchain.k8s.api import EXECUTIONS, CustomObjects

log = logging.getLogger(__name__)

SCHEDULES = "workflowschedules"


class JobRefused(Exception):
    """The API server refused a node's Job as invalid (400/422): retrying cannot help."""


class ForeignJobError(RuntimeError):
    """A Job with the deterministic name exists but belongs to another (older) execution."""


def api_message(exc: ApiException) -> str:
    """The API server's own message (a Status object's `message`), else the HTTP reason."""
    try:
        message = json.loads(exc.body or "{}").get("message")
    except ValueError:
        message = None
    return str(message or exc.reason or f"HTTP {exc.status}")


def describe(exc: BaseException) -> str:
    """One line for a user: the API server's words for API errors, else the exception's."""
    if isinstance(exc, ApiException):
        return f"{exc.status} {exc.reason}: {api_message(exc)}"
    return f"{type(exc).__name__}: {exc}"


class Writer:
    def __init__(self, api: client.ApiClient, event_threads: int = 0) -> None:
        """`event_threads`: post Events from that many background threads instead of the caller's
        (Events are best effort; a pass that waited for them would hold back the next handoff)."""
        self.api = api
        self._events = ThreadPoolExecutor(event_threads, thread_name_prefix="events") if event_threads else None
        self.batch = client.BatchV1Api(api)
        self.core = client.CoreV1Api(api)
        self.objects = CustomObjects(api)
        self.instance = os.environ.get("HOSTNAME") or socket.gethostname()

    def create_job(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Creates the Job, or adopts it if it already exists for the same execution.

        Returns the Job as the API server has it (for the store: the next pass must see it even
        before its watch event arrives).
        """
        meta = manifest["metadata"]
        try:
            created = self.batch.create_namespaced_job(meta["namespace"], manifest)  # type: ignore[arg-type]
            return self._dict(created)
        except ApiException as exc:
            if exc.status in (400, 422):
                raise JobRefused(api_message(exc)) from None
            if exc.status != 409:
                raise
        existing = self.batch.read_namespaced_job(meta["name"], meta["namespace"])
        owner_uid = manifest["metadata"]["ownerReferences"][0]["uid"]
        owners = existing.metadata.owner_references if existing.metadata else None
        if any(ref.uid == owner_uid for ref in owners or []):
            return self._dict(existing)
        raise ForeignJobError(
            f"Job {meta['namespace']}/{meta['name']} exists and belongs to another execution "
            "(an older one of the same name, still being garbage-collected?); will retry"
        )

    def create_execution(self, manifest: dict[str, Any]) -> dict[str, Any] | None:
        """Creates a schedule's execution; None when one of that name exists already (created by an
        earlier pass whose status write was lost: that time has run, it is adopted, never doubled)."""
        try:
            return self.objects.create_object(manifest["metadata"]["namespace"], EXECUTIONS, manifest)
        except ApiException as exc:
            if exc.status == 409:
                return None
            if exc.status == 403 and "NamespaceTerminating" in str(exc.body or ""):
                log.info("not creating %s: its namespace is being deleted", manifest["metadata"].get("name"))
                return None
            raise

    def cancel_execution(self, namespace: str, name: str) -> None:
        """Sets spec.cancel on an execution (a schedule's Replace policy)."""
        try:
            self.objects.patch_object(namespace, EXECUTIONS, name, {"spec": {"cancel": True}})
        except ApiException as exc:
            if exc.status != 404:
                raise

    def delete_job(self, namespace: str, name: str) -> None:
        try:
            self.batch.delete_namespaced_job(
                name, namespace, body=client.V1DeleteOptions(propagation_policy="Background")
            )
        except ApiException as exc:
            if exc.status != 404:
                raise

    def _dict(self, obj: Any) -> dict[str, Any]:
        return dict(self.api.sanitize_for_serialization(obj))  # type: ignore[no-untyped-call]

    def patch_status(self, plural: str, namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
        """Writes status. Returns the object as written (its new resourceVersion), for the store."""
        return self.objects.patch_object_status(namespace, plural, name, status)

    def json_patch_status(self, plural: str, namespace: str, name: str, ops: list[dict[str, Any]]) -> dict[str, Any]:
        """Applies a JSON patch (RFC 6902) to the status subresource; returns the object as written.

        Why, for executions: a merge patch deletes every null member it carries, also inside the
        `nodes` list, so an output such as {"result": null} would be stored as {}. A JSON patch
        stores values exactly (see controller.reconcile.status_patch).
        """
        return self.objects.json_patch_object_status(namespace, plural, name, ops)

    def event(self, obj: dict[str, Any], kind: str, type_: str, reason: str, message: str) -> None:
        """Posts a Kubernetes Event on the object. Never raises: events are best effort."""
        meta = obj["metadata"]
        now = datetime.now(UTC)
        body = client.CoreV1Event(
            metadata=client.V1ObjectMeta(generate_name=f"{meta['name']}.", namespace=meta["namespace"]),
            involved_object=client.V1ObjectReference(
                api_version=API_VERSION, kind=kind, name=meta["name"], namespace=meta["namespace"],
                uid=meta.get("uid"), resource_version=meta.get("resourceVersion"),
            ),
            reason=reason,
            message=message[:1024],
            type=type_,
            source=client.V1EventSource(component="jobchain"),
            reporting_component="jobchain.dev/operator",
            reporting_instance=self.instance[:128],
            first_timestamp=now,
            last_timestamp=now,
            count=1,
        )
        if self._events is not None:
            self._events.submit(self._post_event, meta["namespace"], meta["name"], reason, body)
        else:
            self._post_event(meta["namespace"], meta["name"], reason, body)

    def _post_event(self, namespace: str, name: str, reason: str, body: client.CoreV1Event) -> None:
        try:
            self.core.create_namespaced_event(namespace, body)
        except Exception as exc:  # an event that cannot be posted must not stop the execution
            log.warning("cannot post event %s on %s/%s: %s", reason, namespace, name, exc)
