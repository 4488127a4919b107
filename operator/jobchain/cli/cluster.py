"""The CLI's few Kubernetes calls: load the kubeconfig, read and write executions, pods and logs.

Why a module of its own: the commands work on plain dicts (the objects as the API server
sends them) and never see the client library, and every API failure is translated here,
once, into a `CliError` that says what was wrong and what to do. The calls themselves are
the operator's too (`k8s.api`: configuration, plural names, selectors, custom objects); what
is the CLI's alone is that translation. Pod lists and logs are read raw
(`_preload_content=False`) so that a log that looks like JSON stays text.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, cast

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from jobchain.api.vocabulary import EXECUTIONS, GROUP, VERSION
from jobchain.cli.errors import CliError, Exit, cluster_error, usage_error
from jobchain.k8s import api as k8s
from jobchain.k8s.api import watch
from jobchain.k8s.errors import api_message, describe_call

REQUEST_TIMEOUT = 30  # seconds, for every call that is not a watch or a followed log
WATCH_SECONDS = 240  # a watch is renewed this often, so a silently dropped connection is noticed
BUSY_SECONDS = 30  # how long a call answered 429 (Too Many Requests) is retried


def retry_after(exc: ApiException) -> float:
    """Seconds to wait before retrying a 429: the server's Retry-After (1 to 5 s), else 1."""
    headers = exc.headers or {}
    try:
        return min(5.0, max(1.0, float(headers.get("Retry-After", 1))))
    except (TypeError, ValueError):
        return 1.0

T = TypeVar("T")


def api_error(exc: ApiException, plural: str, name: str | None, namespace: str) -> CliError:
    """The one line a user sees for a failed API call (worded by `k8s.errors.describe_call`), as
    the CLI's error: a usage error when the user named something wrong, else a cluster error."""
    described = describe_call(exc, plural, name, namespace)
    return usage_error(described.message) if described.usage else cluster_error(described.message)


def _status_message(exc: ApiException) -> str:
    return api_message(exc, default="")


class LogNotReady(Exception):
    """The pod exists but its container has not started, so there is no log yet."""


def connection_error(exc: Exception, host: str) -> CliError:
    reason = getattr(exc, "reason", None) or exc
    text = str(reason)
    for marker in (
        "Connection refused",
        "Name or service not known",
        "timed out",
        "CERTIFICATE_VERIFY_FAILED",
    ):
        if marker in text:
            text = marker
            break
    return cluster_error(
        f"cannot reach the Kubernetes API server at {host} ({text}); check that the cluster is "
        "running and that the kubeconfig context is the right one"
    )


class ClusterCalls(Protocol):
    """What the CLI's commands call on a cluster: `CliCluster` is it; tests use one over dicts."""

    @property
    def namespace(self) -> str: ...
    def get(self, plural: str, name: str) -> dict[str, Any]: ...
    def list_objects(self, plural: str) -> list[dict[str, Any]]: ...
    def list_selected(self, plural: str, selector: str | None, all_namespaces: bool) -> list[dict[str, Any]]: ...
    def delete_execution(self, name: str) -> None: ...
    def create_execution(self, body: dict[str, Any]) -> dict[str, Any]: ...
    def cancel_execution(self, name: str) -> dict[str, Any]: ...
    def stop_execution(self, name: str) -> dict[str, Any]: ...
    def patch_execution(self, name: str, patch: dict[str, Any]) -> dict[str, Any]: ...
    def watch_execution(self, name: str) -> Iterator[dict[str, Any]]: ...
    def node_pods(self, execution: str, node: str) -> list[dict[str, Any]]: ...
    def with_whole_outputs(self, execution: dict[str, Any]) -> dict[str, Any]: ...
    def read_log(self, pod: str) -> str | None: ...
    def follow_log(self, pod: str) -> Iterator[str]: ...


@dataclass
class CliCluster:
    """An API client bound to one namespace."""

    api: client.ApiClient
    namespace: str
    objects: k8s.CustomObjects = field(init=False, repr=False)
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def __post_init__(self) -> None:
        self.objects = k8s.CustomObjects(self.api, timeout=REQUEST_TIMEOUT)

    @property
    def host(self) -> str:
        return str(self.api.configuration.host)

    def _call(self, plural: str, name: str | None, fn: Callable[[], T]) -> T:
        """`fn`, its failure translated; a 429 (the server asks to come back, e.g. while a CRD is
        re-applied: "storage is (re)initializing") is retried for up to BUSY_SECONDS, as kubectl does."""
        waited = 0.0
        while True:
            try:
                return fn()
            except ApiException as exc:
                if exc.status == 429 and waited < BUSY_SECONDS:
                    pause = retry_after(exc)
                    self.sleep(pause)
                    waited += pause
                    continue
                raise api_error(exc, plural, name, self.namespace) from None
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                raise connection_error(exc, self.host) from None

    def _json(self, plural: str, name: str | None, fn: Callable[[], Any]) -> Any:
        response = self._call(plural, name, fn)
        return json.loads(response.data)

    # ---- workflows and executions ------------------------------------------------------
    def get(self, plural: str, name: str) -> dict[str, Any]:
        return self._call(plural, name, lambda: self.objects.get_object(self.namespace, plural, name))

    def list_objects(self, plural: str) -> list[dict[str, Any]]:
        return self._call(plural, None, lambda: self.objects.list_objects(self.namespace, plural))

    def list_selected(self, plural: str, selector: str | None, all_namespaces: bool) -> list[dict[str, Any]]:
        """`list -l SELECTOR` (matched by the API server, as kubectl does) in the namespace or, with
        `all_namespaces` (-A), in every namespace the user may list."""
        api = client.CustomObjectsApi(self.api)
        options: dict[str, Any] = {"_preload_content": False, "_request_timeout": REQUEST_TIMEOUT}
        if selector:
            options["label_selector"] = selector
        if all_namespaces:
            body = self._json(plural, None, lambda: api.list_cluster_custom_object(GROUP, VERSION, plural, **options))
        else:
            body = self._json(plural, None, lambda: api.list_namespaced_custom_object(
                GROUP, VERSION, self.namespace, plural, **options))
        return list(body.get("items") or [])

    def delete_execution(self, name: str) -> None:
        self._call(EXECUTIONS, name, lambda: self.objects.delete_object(self.namespace, EXECUTIONS, name))

    def create_execution(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._call(EXECUTIONS, None, lambda: self.objects.create_object(self.namespace, EXECUTIONS, body))

    def cancel_execution(self, name: str) -> dict[str, Any]:
        return self._call(EXECUTIONS, name, lambda: self.objects.patch_object(
            self.namespace, EXECUTIONS, name, {"spec": {"cancel": True}}))

    def stop_execution(self, name: str) -> dict[str, Any]:
        return self._call(EXECUTIONS, name, lambda: self.objects.patch_object(
            self.namespace, EXECUTIONS, name, {"spec": {"stop": True}}))
    def patch_execution(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        """A JSON merge patch of the execution (spec.approvals: as kubectl patch --type merge does)."""
        return self._call(EXECUTIONS, name, lambda: self.objects.patch_object(self.namespace, EXECUTIONS, name, patch))

    def watch_execution(self, name: str) -> Iterator[dict[str, Any]]:
        """The execution as it is now, then each time it changes; raises CliError when it is deleted."""
        while True:
            stream = self.objects.watch(self.namespace, EXECUTIONS, f"metadata.name={name}", WATCH_SECONDS)
            seen = False
            try:
                for event in stream:
                    seen = True
                    if event["type"] == "DELETED":
                        raise cluster_error(f"workflowexecution {name!r} was deleted while it was watched")
                    if event["type"] in ("ADDED", "MODIFIED"):
                        yield dict(event["raw_object"])
            except ApiException as exc:
                if exc.status == 410:  # the resourceVersion expired: watch again from the current state
                    continue
                raise api_error(exc, EXECUTIONS, name, self.namespace) from None
            except (urllib3.exceptions.ProtocolError, urllib3.exceptions.ReadTimeoutError):
                continue  # the connection dropped: watch again (the first event is the current state)
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                raise connection_error(exc, self.host) from None
            if not seen:
                self.get(EXECUTIONS, name)  # raises "not found" when it is gone

    # ---- pods and logs -----------------------------------------------------------------
    @property
    def _core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    def node_pods(self, execution: str, node: str) -> list[dict[str, Any]]:
        """The node's pods, oldest first (more than one when the node was retried)."""
        selector = k8s.node_selector(execution, node)
        body = self._json(
            "pods",
            None,
            lambda: self._core.list_namespaced_pod(
                self.namespace,
                label_selector=selector,
                _preload_content=False,
                _request_timeout=REQUEST_TIMEOUT,
            ),
        )
        pods = list(body.get("items") or [])
        return sorted(
            pods, key=lambda p: (p["metadata"].get("creationTimestamp") or "", p["metadata"]["name"])
        )

    def with_whole_outputs(self, execution: dict[str, Any]) -> dict[str, Any]:
        """The execution with every output kept in a ConfigMap (outputRef) put back whole in its node's
        `output` (status holds a preview of it). An output whose ConfigMap is gone keeps its preview."""
        nodes = (execution.get("status") or {}).get("nodes") or []
        for item in nodes:
            ref = item.get("outputRef") or {}
            if not ref.get("configMap"):
                continue
            try:
                cm = self._core.read_namespaced_config_map(ref["configMap"], self.namespace,
                                                           _request_timeout=REQUEST_TIMEOUT)
            except ApiException as exc:
                if exc.status in (403, 404):
                    continue  # gone, or not ours to read: the preview stays, still marked truncated
                raise api_error(exc, "configmaps", ref["configMap"], self.namespace) from None
            text = (cm.data or {}).get(ref.get("key") or "output.json")
            if text is not None:
                item["output"] = json.loads(text)
                item["outputTruncated"] = False
        return execution

    def read_log(self, pod: str) -> str | None:
        """The pod's log, or None when the pod is gone. Raises LogNotReady before its container starts."""
        try:
            response = self._core.read_namespaced_pod_log(
                pod, self.namespace, _preload_content=False, _request_timeout=REQUEST_TIMEOUT
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            if exc.status == 400:  # "container ... is waiting to start: ContainerCreating"
                raise LogNotReady(_status_message(exc)) from None
            raise api_error(exc, "pods", pod, self.namespace) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise connection_error(exc, self.host) from None
        return bytes(cast(Any, response).data).decode(errors="replace")

    def follow_log(self, pod: str) -> Iterator[str]:
        """The pod's log lines as they are written, until its container ends or the pod is gone.

        Raises LogNotReady while its container has not started."""
        stream = watch.Watch().stream(self._core.read_namespaced_pod_log, pod, self.namespace)
        try:
            yield from stream
        except ApiException as exc:
            if exc.status == 400:
                raise LogNotReady(_status_message(exc)) from None
            if exc.status == 404:
                return  # the pod is gone
            raise api_error(exc, "pods", pod, self.namespace) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise connection_error(exc, self.host) from None


def connect(
    kubeconfig: str | None = None, context: str | None = None, namespace: str | None = None
) -> CliCluster:
    """A client for the current (or named) kubeconfig context, in -n NAMESPACE or the context's namespace."""
    try:
        # retries: fail within seconds when the server is down, rather than retrying long
        loaded = k8s.load(kubeconfig, context, retries=2)
    except k8s.KubeconfigMissing as exc:
        raise cluster_error(
            f"cannot load a kubeconfig: {', '.join(exc.paths)} ({exc.source}) does not exist; point KUBECONFIG "
            "or --kubeconfig at your cluster's kubeconfig"
        ) from None
    except ValueError as exc:  # an unknown --context
        raise usage_error(str(exc)) from None
    except ConfigException as exc:
        raise cluster_error(f"cannot use the kubeconfig: {exc}") from None
    return CliCluster(loaded.api, namespace or loaded.namespace)


def describe_unexpected(exc: Exception) -> tuple[str, Exit]:
    """The line for an exception no command translated: API and network failures, else a bug."""
    if isinstance(exc, ApiException):
        return api_error(exc, "resource", None, "?").message, Exit.CLUSTER
    if isinstance(exc, ConfigException):
        return f"cannot use the kubeconfig: {exc}", Exit.CLUSTER
    if isinstance(exc, (urllib3.exceptions.HTTPError, OSError)):
        return connection_error(exc, "the configured server").message, Exit.CLUSTER
    return (
        f"unexpected {type(exc).__name__}: {exc}; this is a bug in jobchain, please report it with the "
        "traceback that JOBCHAIN_DEBUG=1 shows",
        Exit.INTERNAL,
    )


__all__ = ["CliCluster", "ClusterCalls", "LogNotReady", "api_error", "connect"]
