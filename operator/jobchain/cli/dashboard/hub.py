"""One watch of WorkflowExecutions per dashboard server, its cache, and the browsers listening.

Why one watch: every open page gets its live updates from this one stream (fanned out over
server-sent events), so ten browsers cost the API server what one costs, and nothing polls.
The watch runs in a thread (the client library blocks) and hands each event to the asyncio
loop. When the cluster goes away the thread keeps trying, pages show "cluster unreachable",
and when it is back a fresh list replaces the cache and every page gets it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import urllib3
from kubernetes.client.exceptions import ApiException

from jobchain.api.vocabulary import EXECUTIONS
from jobchain.cli.dashboard.kube import ReadOnlyClient
from jobchain.engine.timefmt import iso
from jobchain.k8s.errors import describe_call

QUEUE_LIMIT = 2000  # events a slow browser may lag behind before it is asked to reconnect
RETRY_SECONDS = (1.0, 2.0, 3.0, 5.0)  # waits between attempts while the cluster is unreachable

Key = tuple[str, str]
Message = tuple[str, Any]


def describe_failure(exc: Exception, host: str, namespace: str | None) -> str:
    """One line for a failed list or watch, as the page's banner shows it."""
    from jobchain.cli.cluster import connection_error

    if isinstance(exc, ApiException):
        return describe_call(exc, EXECUTIONS, None, namespace or "(all namespaces)").message
    return connection_error(exc, host).message


@dataclass(eq=False)
class Subscriber:
    """A browser's stream: executions of one namespace (or all), or one execution."""

    namespace: str | None
    name: str | None
    queue: asyncio.Queue[Message] = field(default_factory=lambda: asyncio.Queue(QUEUE_LIMIT))
    overflowed: bool = False

    def wants(self, key: Key) -> bool:
        namespace, name = key
        if self.namespace is not None and namespace != self.namespace:
            return False
        return self.name is None or name == self.name

    def put(self, message: Message) -> None:
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.overflowed = True


@dataclass
class ClusterState:
    connected: bool = False
    message: str = "connecting"
    since: str = field(default_factory=lambda: iso_now())

    def as_json(self) -> dict[str, Any]:
        return {"connected": self.connected, "message": self.message, "since": self.since}


def iso_now() -> str:
    from datetime import UTC, datetime

    return iso(datetime.now(UTC))


class Hub:
    """The cache of executions in scope (one namespace, or all when namespace is None)."""

    def __init__(
        self,
        client: ReadOnlyClient,
        namespace: str | None,
        loop: asyncio.AbstractEventLoop,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.loop = loop
        self.sleep = sleep
        self.cache: dict[Key, dict[str, Any]] = {}
        self.state = ClusterState()
        self.subscribers: set[Subscriber] = set()
        self.synced = asyncio.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._response: Any = None

    # ---- the asyncio side --------------------------------------------------------------
    def subscribe(self, namespace: str | None, name: str | None) -> Subscriber:
        subscriber = Subscriber(namespace, name)
        self.subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)

    def objects(self, namespace: str | None) -> list[dict[str, Any]]:
        return [obj for (ns, _), obj in self.cache.items() if namespace is None or ns == namespace]

    def _replace(self, objects: list[dict[str, Any]]) -> None:
        self.cache = {_key(obj): obj for obj in objects}
        for subscriber in self.subscribers:
            subscriber.put(("snapshot", None))
        self.synced.set()

    def _apply(self, kind: str, obj: dict[str, Any]) -> None:
        key = _key(obj)
        if kind == "DELETED":
            self.cache.pop(key, None)
        else:
            self.cache[key] = obj
        for subscriber in self.subscribers:
            if subscriber.wants(key):
                subscriber.put(("deleted" if kind == "DELETED" else "changed", obj))

    def _set_state(self, connected: bool, message: str) -> None:
        if connected == self.state.connected and message == self.state.message:
            return
        self.state = ClusterState(connected, message)
        for subscriber in self.subscribers:
            subscriber.put(("cluster", self.state.as_json()))

    def _call(self, fn: Callable[..., None], *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: the server is stopping
            self.loop.call_soon_threadsafe(fn, *args)

    # ---- the watch thread --------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="executions-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                listing = self.client.list_objects(EXECUTIONS, self.namespace)
                version = str((listing.get("metadata") or {}).get("resourceVersion") or "")
                self._call(self._replace, list(listing.get("items") or []))
                self._call(self._set_state, True, "watching")
                failures = 0
                self._watch(version)
            except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
                if isinstance(exc, ApiException) and exc.status == 410:
                    continue  # our resourceVersion is too old: list again
                self._call(self._set_state, False, describe_failure(exc, self.client.host, self.namespace))
                self.sleep(RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)])
                failures += 1

    def _watch(self, version: str) -> None:
        """Follows the watch from version on, renewing it, until it fails or must list again."""
        while not self._stop.is_set():
            for event in self.client.watch(EXECUTIONS, self.namespace, version):
                kind, obj = event.get("type"), event.get("raw_object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        return  # expired: list again
                    raise ApiException(status=obj.get("code") or 500, reason=obj.get("message"))
                version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                if kind in ("ADDED", "MODIFIED", "DELETED"):
                    self._call(self._apply, kind, obj)
                if self._stop.is_set():
                    return


def _key(obj: dict[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace", "")), str(meta.get("name", ""))
