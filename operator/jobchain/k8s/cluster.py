"""The operator's view of the cluster: the reads of our own objects, and the observer and
writer behind one object the controller holds. Connection, names and the custom-object calls
are `k8s.api`'s, shared with the CLI."""

from __future__ import annotations

from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from jobchain.k8s.api import EXECUTIONS, WORKFLOWS, CustomObjects, connect
from jobchain.k8s.observe import Observer
from jobchain.k8s.writes import Writer

__all__ = ["Cluster", "connect"]


class Cluster:
    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.objects = CustomObjects(api)
        self.observer = Observer(api)
        self.writer = Writer(api)

    def _get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self.objects.get(namespace, plural, name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def get_execution(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get(EXECUTIONS, namespace, name)

    def delete_execution(self, namespace: str, name: str) -> None:
        """Deletes an execution; its Jobs and pods follow through their ownerReferences."""
        try:
            self.objects.delete(namespace, EXECUTIONS, name)
        except ApiException as exc:
            if exc.status != 404:
                raise

    def get_workflow(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get(WORKFLOWS, namespace, name)
