"""Every write the operator makes: Jobs (create-or-adopt, delete), status patches, Events.

Why one module: these are the side effects kopf may repeat when it retries, so each one is
written to be safe to repeat: a Job that exists already is adopted when it belongs to the
same execution, a delete of a missing Job is done, and status is written as a whole.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from jobchain.api.vocabulary import ANNOTATION_CREATED_BY, API_VERSION, EVENT_COMPONENT, EXECUTIONS
from jobchain.k8s.api import Builtins, CustomObjects
from jobchain.k8s.errors import api_message
from jobchain.k8s.store import has_owner

log = logging.getLogger(__name__)

# On each Job: the replica (Lease identity) that created it, so "only the active replica creates
# Jobs" can be checked from the cluster alone.


class JobRefused(Exception):
    """The API server refused a node's Job as invalid (400/422): retrying cannot help."""


class ForeignJobError(RuntimeError):
    """A Job with the deterministic name exists but belongs to another (older) execution."""


def namespace_terminating(exc: ApiException) -> bool:
    """The API server refused a create because the namespace is being deleted."""
    return exc.status == 403 and "NamespaceTerminating" in str(exc.body or "")


class ForgedOutputError(RuntimeError):
    """An output ConfigMap that the operator did not write as it is: its content (or owner) differs
    from the output status records. Never adopted, never read: the execution fails, saying why."""


class Writer:
    def __init__(self, api: client.ApiClient, event_threads: int = 0) -> None:
        """`event_threads`: post Events from that many background threads instead of the caller's
        (Events are best effort; a pass that waited for them would hold back the next handoff)."""
        self.api = api
        self._events = ThreadPoolExecutor(event_threads, thread_name_prefix="events") if event_threads else None
        self.builtins = Builtins(api)  # plain dicts in and out, no client models
        self.objects = CustomObjects(api)
        self.instance = os.environ.get("HOSTNAME") or socket.gethostname()
        # Raises when this replica may not act (it is not the leader): called before every write,
        # so a replica that lost its Lease stops at once, even in the middle of a reconcile.
        self.guard: Callable[[], None] = lambda: None
        self.identity = self.instance

    def dry_run_job(self, manifest: dict[str, Any]) -> str | None:
        """Why the API server would refuse to create this Job (strict field validation), or None.

        Only a refusal of the Job itself (400, 422) is an answer; anything else (no right, the
        server busy, a Job of that name existing) says nothing about the Job and is logged."""
        try:
            self.builtins.create_namespaced_job(manifest["metadata"]["namespace"], manifest, dry_run=True)
        except ApiException as exc:
            if exc.status in (400, 422):
                return api_message(exc)
            log.info("dry run of Job %s not answered: %s", manifest["metadata"]["name"], api_message(exc))
        return None

    def create_job(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Creates the Job, or adopts it if it already exists for the same execution.

        Returns the Job as the API server has it (for the store: the next pass must see it even
        before its watch event arrives).
        """
        self.guard()
        meta = manifest["metadata"]
        meta.setdefault("annotations", {})[ANNOTATION_CREATED_BY] = self.identity
        try:
            return self.builtins.create_namespaced_job(meta["namespace"], manifest)
        except ApiException as exc:
            # 403 NamespaceTerminating: the namespace (with the execution) is being deleted; no Job
            # can ever be made there, so the node fails saying so instead of a retry loop until it is gone
            if exc.status in (400, 422) or namespace_terminating(exc):
                raise JobRefused(api_message(exc)) from None
            if exc.status != 409:
                raise
        existing = self.builtins.read_namespaced_job(meta["name"], meta["namespace"])
        owner_uid = manifest["metadata"]["ownerReferences"][0]["uid"]
        if has_owner(existing, owner_uid):
            return existing
        if not _of_an_older_execution(existing, manifest):  # never garbage-collected: waiting would never end
            raise JobRefused(
                f"Job {meta['namespace']}/{meta['name']}, this node's Job, exists already and was not made by an "
                "execution of this name (someone created it); it is not adopted. Delete it and run the workflow "
                "again; find out who may create Jobs in this namespace")
        raise ForeignJobError(
            f"Job {meta['namespace']}/{meta['name']} exists and belongs to another execution "
            "(an older one of the same name, still being garbage-collected?); will retry"
        )

    def create_config_map(self, manifest: dict[str, Any]) -> None:
        """Creates an output ConfigMap, or adopts it if it exists for the same execution with exactly
        this content (it is immutable and its name and content derive from the execution and node: a
        retried pass made it). The name and the execution's uid are readable by anyone: one with other
        content was made by someone else, and is refused (ForgedOutputError)."""
        self.guard()
        meta = manifest["metadata"]
        try:
            self.builtins.create_namespaced_config_map(meta["namespace"], manifest)
            return
        except ApiException as exc:
            if namespace_terminating(exc):
                return  # being deleted with its namespace: the Job's create is refused next, failing its node
            if exc.status != 409:
                raise
        existing = self.builtins.read_namespaced_config_map(meta["name"], meta["namespace"])
        if not has_owner(existing, meta["ownerReferences"][0]["uid"]):
            if not _of_an_older_execution(existing, manifest):
                raise ForgedOutputError(
                    f"ConfigMap {meta['namespace']}/{meta['name']}, where this node's whole output is kept, exists "
                    "already and was not made by an execution of this name: someone forged it; the output is not "
                    "adopted")
            raise ForeignJobError(
                f"ConfigMap {meta['namespace']}/{meta['name']} exists and belongs to another execution "
                "(an older one of the same name, still being garbage-collected?); will retry"
            )
        if (existing.get("data") or {}) != manifest["data"] or existing.get("binaryData"):
            raise ForgedOutputError(
                f"ConfigMap {meta['namespace']}/{meta['name']}, where this node's whole output is kept, was "
                "created before the operator wrote it, with other content: someone forged it (output ConfigMap "
                "names and the execution's uid are readable); the output is not adopted")

    def create_execution(self, manifest: dict[str, Any]) -> dict[str, Any] | None:
        """Creates a schedule's execution; None when one of that name exists already (created by an
        earlier pass whose status write was lost: that time has run, it is adopted, never doubled)."""
        self.guard()
        try:
            return self.objects.create_object(manifest["metadata"]["namespace"], EXECUTIONS, manifest)
        except ApiException as exc:
            if exc.status == 409:
                return None
            if namespace_terminating(exc):
                log.info("not creating %s: its namespace is being deleted", manifest["metadata"].get("name"))
                return None
            raise

    def cancel_execution(self, namespace: str, name: str) -> None:
        """Sets spec.cancel on an execution (a schedule's Replace policy)."""
        self.guard()
        try:
            self.objects.patch_object(namespace, EXECUTIONS, name, {"spec": {"cancel": True}})
        except ApiException as exc:
            if exc.status != 404:
                raise

    def delete_job(self, namespace: str, name: str) -> None:
        self.guard()
        try:
            self.builtins.delete_namespaced_job(name, namespace, propagation_policy="Background")
        except ApiException as exc:
            if exc.status != 404:
                raise

    def patch_status(self, plural: str, namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
        """Writes status. Returns the object as written (its new resourceVersion), for the store."""
        self.guard()
        return self.objects.patch_object_status(namespace, plural, name, status)

    def json_patch_status(self, plural: str, namespace: str, name: str, ops: list[dict[str, Any]]) -> dict[str, Any]:
        """Applies a JSON patch (RFC 6902) to the status subresource; returns the object as written.

        Why, for executions: a merge patch deletes every null member it carries, also inside the
        `nodes` list, so an output such as {"result": null} would be stored as {}. A JSON patch
        stores values exactly (see engine.execution.status_write).
        """
        self.guard()
        return self.objects.json_patch_object_status(namespace, plural, name, ops)

    def event(self, obj: dict[str, Any], kind: str, type_: str, reason: str, message: str) -> None:
        """Posts a Kubernetes Event on the object. Never raises: events are best effort."""
        try:
            self.guard()
        except Exception:
            return  # a standby says nothing: the active replica posts the events
        meta = obj["metadata"]
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        involved = {"apiVersion": API_VERSION, "kind": kind, "name": meta["name"], "namespace": meta["namespace"],
                    "uid": meta.get("uid"), "resourceVersion": meta.get("resourceVersion")}
        # A plain dict, as the API server reads it (no client models: they cost a validation each).
        body = {
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {k: v for k, v in involved.items() if v is not None},
            "reason": reason,
            "message": message[:1024],
            "type": type_,
            "source": {"component": "jobchain"},
            "reportingComponent": EVENT_COMPONENT,
            "reportingInstance": self.instance[:128],
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        if self._events is not None:
            self._events.submit(self._post_event, meta["namespace"], meta["name"], reason, body)
        else:
            self._post_event(meta["namespace"], meta["name"], reason, body)

    def _post_event(self, namespace: str, name: str, reason: str, body: dict[str, Any]) -> None:
        try:
            self.builtins.create_namespaced_event(namespace, body)
        except Exception as exc:  # an event that cannot be posted must not stop the execution
            log.warning("cannot post event %s on %s/%s: %s", reason, namespace, name, exc)


def _of_an_older_execution(existing: dict[str, Any], manifest: dict[str, Any]) -> bool:
    """Whether `existing` (named as what `manifest` would create) is owned by an execution of the same
    name with another uid: an older one, deleted, whose dependents the garbage collector removes
    soon (it also removes one whose owner uid never existed). Anything else stays for ever."""
    ours = manifest["metadata"]["ownerReferences"][0]
    return any(ref.get("kind") == ours.get("kind") and ref.get("name") == ours.get("name")
               for ref in (existing.get("metadata") or {}).get("ownerReferences") or [])
