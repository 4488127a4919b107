"""The operator's view of the cluster: the reads of our own objects, and the observer and
writer behind one object the controller holds. Connection, names and the custom-object calls
are `k8s.api`'s, shared with the CLI.

Executions are read from the store the watches fill (`k8s/store.py`), but for one decision that
must not be made from a copy that lags: whether an execution of a Workflow with a queue may start
(`controller/queue.py` lists them then). Workflows are read from the API server once per
execution, at start (a Workflow created just before its execution may not have reached the watch yet).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from jobchain.api.vocabulary import EXECUTIONS, WORKFLOWS
from jobchain.engine.execution.types import NodeToRead
from jobchain.k8s.api import Builtins, CustomObjects, connect
from jobchain.k8s.observe import Observation, Observer
from jobchain.k8s.store import Store, has_owner
from jobchain.k8s.writes import ForgedOutputError, Writer

__all__ = ["ExecutionCluster", "OperatorCluster", "connect"]

Obj = dict[str, Any]

# Whole outputs kept in memory, by the size of their JSON text: 64 of 1 MiB, or the thousands of small
# ones a large fan-out keeps per item (each read on every pass until the node finishes).
OUTPUT_CACHE_BYTES = 64 * 1024 * 1024


class PassStore(Protocol):
    """What a pass tells the watch store (its own writes) and asks it (the queue's members)."""

    def put_job(self, job: Obj) -> object: ...
    def put_execution(self, obj: Obj, own: bool = False) -> object: ...
    def executions_in(self, namespace: str) -> list[Obj]: ...
    def drop_execution(self, namespace: str, name: str) -> None: ...


class PassObserver(Protocol):
    def observe(self, namespace: str, execution: str, uid: str, wanted: Iterable[NodeToRead],
                started: bool = True) -> Observation: ...


class PassWriter(Protocol):
    def create_config_map(self, manifest: Obj) -> None: ...
    def create_job(self, manifest: Obj) -> Obj: ...
    def dry_run_job(self, manifest: Obj) -> str | None: ...
    def delete_job(self, namespace: str, name: str) -> None: ...
    def patch_status(self, plural: str, namespace: str, name: str, status: Obj) -> Obj: ...
    def json_patch_status(self, plural: str, namespace: str, name: str, ops: list[Obj]) -> Obj: ...
    def event(self, obj: Obj, kind: str, type_: str, reason: str, message: str) -> None: ...


class ExecutionCluster(Protocol):
    """What a reconcile pass uses of the cluster: `OperatorCluster` is it; the unit tests' fake
    (tests/unit/builders.FakeCluster) records it, and mypy checks both against this."""

    @property
    def store(self) -> PassStore: ...
    @property
    def observer(self) -> PassObserver: ...
    @property
    def writer(self) -> PassWriter: ...
    def get_execution(self, namespace: str, name: str) -> Obj | None: ...
    def list_executions(self, namespace: str) -> list[Obj]: ...
    def delete_execution(self, namespace: str, name: str) -> None: ...
    def get_workflow(self, namespace: str, name: str) -> Obj | None: ...
    def secret_values(self, namespace: str, refs: Iterable[Mapping[str, Any]]) -> list[str] | None: ...
    def output_value(self, namespace: str, config_map: str, key: str, owner_uid: str,
                     sha256: str | None = None) -> tuple[bool, Any]: ...


class OperatorCluster:
    def __init__(self, api: client.ApiClient, store: Store | None = None, event_threads: int = 0) -> None:
        self.api = api
        self.store = store or Store()
        self.objects = CustomObjects(api)
        self.observer = Observer(api, self.store)
        self.writer = Writer(api, event_threads)
        # Output ConfigMaps are immutable: a value read once is the value for good, for the execution
        # that owns it (one deleted and re-created with the same name has ConfigMaps of the same names).
        self._outputs: OrderedDict[tuple[str, str, str], tuple[Any, int]] = OrderedDict()  # -> (value, bytes)
        self._outputs_bytes = 0
        self._outputs_lock = threading.Lock()  # passes of different executions run in several workers

    def _get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self.objects.get_object(namespace, plural, name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def get_execution(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The execution as the watch last delivered it (or as our last write left it)."""
        return self.store.execution(namespace, name)

    def list_executions(self, namespace: str) -> list[dict[str, Any]]:
        """The executions of a namespace as the API server holds them now (a consistent read, unlike
        the store, which is as current as the watch events received so far)."""
        return self.objects.list_objects(namespace, EXECUTIONS)

    def delete_execution(self, namespace: str, name: str) -> None:
        """Deletes an execution; its Jobs and pods follow through their ownerReferences."""
        self.writer.guard()
        try:
            self.objects.delete_object(namespace, EXECUTIONS, name)
        except ApiException as exc:
            if exc.status != 404:
                raise

    def secret_values(self, namespace: str, refs: Iterable[Mapping[str, Any]]) -> list[str] | None:
        """The values of Secret keys ({name, key}), to redact them; None if one cannot be read.

        A Secret or key that does not exist has no value to leak (the pod cannot start without
        it) and is skipped; any other error returns None, and the caller keeps no text at all.
        """
        builtins = Builtins(self.api)
        values: list[str] = []
        secrets: dict[str, dict[str, Any] | None] = {}
        for ref in refs:
            name, key = str(ref["name"]), str(ref["key"])
            if name not in secrets:
                try:
                    secrets[name] = builtins.read_namespaced_secret(name, namespace).get("data") or {}
                except ApiException as exc:
                    if exc.status != 404:
                        return None
                    secrets[name] = None
            data = secrets[name]
            if data and key in data:
                values.append(base64.b64decode(str(data[key])).decode(errors="replace"))
        return values

    def output_value(self, namespace: str, config_map: str, key: str, owner_uid: str,
                     sha256: str | None = None) -> tuple[bool, Any]:
        """(found, value) of a whole output kept in a ConfigMap owned by the execution of `owner_uid`;
        (False, None) if it is gone. Cached by owner (up to OUTPUT_CACHE_BYTES of JSON text): the
        ConfigMaps are immutable, and an execution re-created under the same name is another owner.

        Raises ForgedOutputError when it is not owned by that execution (status names only ConfigMaps
        the execution created: an older one of the same name is refused at create, see Writer) or its
        text is not the one whose `sha256` status recorded: one replaced by someone else."""
        cache_key = (namespace, config_map, owner_uid)
        with self._outputs_lock:
            if cache_key in self._outputs:
                self._outputs.move_to_end(cache_key)
                return True, self._outputs[cache_key][0]
        try:
            found = Builtins(self.api).read_namespaced_config_map(config_map, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return False, None
            raise
        data = found.get("data") or {}
        if key not in data:
            return False, None
        where = f"ConfigMap {namespace}/{config_map}, where an output is kept whole,"
        if not has_owner(found, owner_uid):  # status names only ConfigMaps this execution created
            raise ForgedOutputError(f"{where} is not owned by this execution: someone else made it")
        if sha256 is not None and hashlib.sha256(data[key].encode()).hexdigest() != sha256:
            raise ForgedOutputError(f"{where} does not hold the output written (its sha256 differs from the one "
                                    "in status): someone replaced it")
        value = json.loads(data[key])
        with self._outputs_lock:
            if cache_key not in self._outputs:
                self._outputs[cache_key] = (value, len(data[key]))
                self._outputs_bytes += len(data[key])
            while self._outputs_bytes > OUTPUT_CACHE_BYTES and len(self._outputs) > 1:
                self._outputs_bytes -= self._outputs.popitem(last=False)[1][1]
        return True, value

    def get_workflow(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get(WORKFLOWS, namespace, name)
