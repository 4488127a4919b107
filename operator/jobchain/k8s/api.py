"""The one way jobchain reaches the Kubernetes API: configuration, our resources' names, label
selectors, and the calls on our own custom objects. The operator (`k8s.cluster`, `k8s.writes`)
and the CLI (`cli.cluster`) both go through it.

Why one layer: two `connect()`s and two sets of plural names drift apart (the CLI honoured
--context and a namespace in the kubeconfig, the operator did not; each spelled the selectors
itself). Errors are left as the client raises them (ApiException, ConfigException, urllib3
errors): the operator logs and retries them, the CLI turns them into one line for a user
(`cli.cluster`), and neither policy belongs here. Custom objects are read raw
(`_preload_content=False`) and decoded here, so they are plain dicts, as `kubectl get -o json`
shows them; the operator's calls on built-in resources are plain dicts too (`Builtins`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes import config as _config
from kubernetes import watch as _watch
from kubernetes.config.config_exception import ConfigException

from jobchain.api.vocabulary import GROUP, LABEL_NODE, VERSION
from jobchain.engine.spec.render import execution_selector

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

# The config and watch helpers carry no type annotations; used through Any, they type-check.
config: Any = _config
watch: Any = _watch

__all__ = [
    "JSON_PATCH", "MERGE_PATCH", "Builtins", "ConfigException", "CustomObjects",
    "KubeconfigMissing", "Loaded", "connect", "execution_selector", "load", "node_selector",
]


def node_selector(execution: str, node: str) -> str:
    """The label selector of one node's Jobs and pods (execution_selector: all of an execution's)."""
    return f"{execution_selector(execution)},{LABEL_NODE}={node}"


# ---- configuration -------------------------------------------------------------------------
class KubeconfigMissing(Exception):
    """No kubeconfig file where one was looked for, and not running in a pod."""

    def __init__(self, paths: list[str], source: str) -> None:
        super().__init__(f"{', '.join(paths)} ({source}) does not exist")
        self.paths = paths
        self.source = source


@dataclass(frozen=True)
class Loaded:
    api: client.ApiClient
    namespace: str  # the context's namespace (or the pod's), the default for namespaced calls
    contexts: tuple[str, ...] = ()  # names in the kubeconfig, for a message when --context is wrong


def _kubeconfig_paths(explicit: str | None) -> tuple[list[str], str | None]:
    """(paths, who named them) following kubectl: --kubeconfig, $KUBECONFIG, ~/.kube/config (None)."""
    if explicit:
        return [os.path.expanduser(explicit)], "--kubeconfig"
    env = os.environ.get("KUBECONFIG")
    if env:
        return [os.path.expanduser(p) for p in env.split(os.pathsep) if p], "KUBECONFIG"
    return [os.path.expanduser("~/.kube/config")], None


def load(kubeconfig: str | None = None, context: str | None = None, prefer_in_cluster: bool = False,
         retries: int | None = None, pool_size: int | None = None) -> Loaded:
    """A client as kubectl would build it: --kubeconfig, $KUBECONFIG, ~/.kube/config, else in-cluster.

    `prefer_in_cluster` (the operator in its pod) tries the pod's ServiceAccount first; `retries`
    caps urllib3's retries of a failed connection; `pool_size` is how many HTTP connections are
    kept open, for a caller sending from that many threads at once (urllib3 otherwise opens and
    discards a connection per request past its default of 10). Raises KubeconfigMissing, ConfigException,
    or ValueError naming the contexts when `context` is unknown.
    """
    configuration = client.Configuration()
    if retries is not None:
        configuration.retries = retries
    if pool_size:
        configuration.connection_pool_maxsize = pool_size
    in_pod = bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
    paths, named = _kubeconfig_paths(kubeconfig)
    existing = [p for p in paths if os.path.isfile(p)]
    if in_pod and (prefer_in_cluster or (not existing and named is None)):
        config.load_incluster_config(client_configuration=configuration)
        return Loaded(client.ApiClient(configuration), _read(SERVICE_ACCOUNT_NAMESPACE) or "default")
    if not existing:
        raise KubeconfigMissing(paths, named or "the default kubeconfig")
    joined = os.pathsep.join(existing)
    listed, active = config.list_kube_config_contexts(config_file=joined)
    names = tuple(str(c.get("name", "?")) for c in listed)
    chosen = active
    if context is not None:
        chosen = next((c for c in listed if c.get("name") == context), None)
        if chosen is None:
            raise ValueError(f"kubeconfig context {context!r} not found in {joined} "
                             f"(contexts: {', '.join(names) or 'none'})")
    config.load_kube_config(config_file=joined, context=context, client_configuration=configuration)
    namespace = ((chosen or {}).get("context") or {}).get("namespace") or "default"
    return Loaded(client.ApiClient(configuration), namespace, names)


def connect(pool_size: int | None = None) -> client.ApiClient:
    """The operator's client: in-cluster config when running as a pod, otherwise the kubeconfig."""
    return load(prefer_in_cluster=True, pool_size=pool_size).api


def _read(path: str) -> str | None:
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return None


# ---- our custom objects --------------------------------------------------------------------
class CustomObjects:
    """Workflows and WorkflowExecutions of one API client, as plain dicts.

    `timeout`: seconds for one request (None: the client's default, no limit).
    """

    def __init__(self, api: client.ApiClient, timeout: float | None = None) -> None:
        self.api = client.CustomObjectsApi(api)
        self.timeout = timeout

    def _options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"_preload_content": False}
        if self.timeout is not None:
            options["_request_timeout"] = self.timeout
        return options

    # Each method calls the client itself, with the plural as an argument: tests/unit/test_rbac_calls.py
    # reads the operator's rights from these calls, so they stay plain calls.
    def get_object(self, namespace: str, plural: str, name: str) -> dict[str, Any]:
        return _decoded(self.api.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name,
                                                              **self._options()))

    def list_objects(self, namespace: str, plural: str) -> list[dict[str, Any]]:
        body = _decoded(self.api.list_namespaced_custom_object(GROUP, VERSION, namespace, plural, **self._options()))
        return list(body.get("items") or [])

    def create_object(self, namespace: str, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        return _decoded(self.api.create_namespaced_custom_object(GROUP, VERSION, namespace, plural, body,
                                                                 **self._options()))

    def patch_object(self, namespace: str, plural: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        """A JSON merge patch of the object (spec, metadata)."""
        return _decoded(self.api.patch_namespaced_custom_object(GROUP, VERSION, namespace, plural, name, patch,
                                                                _content_type=MERGE_PATCH, **self._options()))

    def patch_object_status(self, namespace: str, plural: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
        """A JSON merge patch of the status subresource; returns the object as written."""
        return _decoded(self.api.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, plural, name, {"status": status}, _content_type=MERGE_PATCH,
            **self._options()))

    def json_patch_object_status(self, namespace: str, plural: str, name: str,
                                 ops: list[dict[str, Any]]) -> dict[str, Any]:
        """A JSON patch (RFC 6902) of the status subresource; returns the object as written."""
        return _decoded(self.api.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, plural, name, ops, _content_type=JSON_PATCH, **self._options()))

    def delete_object(self, namespace: str, plural: str, name: str) -> None:
        """Deletes the object; what it owns (Jobs, pods) follows in the background."""
        self.api.delete_namespaced_custom_object(GROUP, VERSION, namespace, plural, name,
                                                 propagation_policy="Background", **self._options())

    def watch(self, namespace: str, plural: str, field_selector: str, seconds: int) -> Iterator[dict[str, Any]]:
        """Watch events ({type, raw_object}) until the server ends the watch after `seconds`."""
        stream = watch.Watch().stream(
            self.api.list_namespaced_custom_object, GROUP, VERSION, namespace, plural,
            field_selector=field_selector, timeout_seconds=seconds,
            _request_timeout=seconds + 30,  # a connection that died silently ends, and is renewed
        )
        yield from stream


def _decoded(response: Any) -> dict[str, Any]:
    """The JSON body of a raw (`_preload_content=False`) response."""
    return dict(json.loads(response.data))


# ---- built-in resources, as plain dicts --------------------------------------------------------
class Builtins:
    """The operator's calls on Jobs, pods, ConfigMaps, Secrets and Events, sending and returning
    plain dicts (as `kubectl get -o json` shows them).

    Why not the client's typed methods: they validate every request body into the client's
    pydantic models, and every response again, then the caller turns the models back into dicts.
    For a Job that cost milliseconds of CPU per create, on the handoff path and under the GIL that
    all 16 pass threads share. Same requests, same errors (ApiException with the server's status
    and body), same names as the client's methods (tests/unit/test_rbac_calls.py reads the rights
    from them).
    """

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api

    def _send(self, method: str, path: str, body: Any = None, query: list[tuple[str, Any]] | None = None,
              accept: str = "application/json") -> Any:
        headers = {"Accept": accept}
        if body is not None:
            headers["Content-Type"] = "application/json"
        request = self.api.param_serialize(method=method, resource_path=path, query_params=query or None,
                                           header_params=headers, body=body, auth_settings=["BearerToken"])
        response: Any = self.api.call_api(*request)
        response.read()
        if not 200 <= response.status <= 299:
            raise client.ApiException.from_response(http_resp=response, body=None, data=None)
        return response

    def _json(self, method: str, path: str, body: Any = None, query: list[tuple[str, Any]] | None = None) -> Any:
        return json.loads(self._send(method, path, body, query).data)

    def create_namespaced_job(self, namespace: str, body: dict[str, Any], dry_run: bool = False) -> dict[str, Any]:
        """`dry_run`: the API server validates (fields strictly: an unknown one is an error) and
        stores nothing; the rights asked are those of a create."""
        query = [("dryRun", "All"), ("fieldValidation", "Strict")] if dry_run else None
        return dict(self._json("POST", f"/apis/batch/v1/namespaces/{namespace}/jobs", body, query))

    def read_namespaced_job(self, name: str, namespace: str) -> dict[str, Any]:
        return dict(self._json("GET", f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}"))

    def list_namespaced_job(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        found = self._json("GET", f"/apis/batch/v1/namespaces/{namespace}/jobs",
                           query=[("labelSelector", label_selector)])
        return list(found.get("items") or [])

    def delete_namespaced_job(self, name: str, namespace: str, propagation_policy: str = "Background") -> None:
        self._send("DELETE", f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}",
                   {"propagationPolicy": propagation_policy})

    def list_namespaced_pod(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        found = self._json("GET", f"/api/v1/namespaces/{namespace}/pods", query=[("labelSelector", label_selector)])
        return list(found.get("items") or [])

    def create_namespaced_config_map(self, namespace: str, body: dict[str, Any]) -> None:
        self._send("POST", f"/api/v1/namespaces/{namespace}/configmaps", body)

    def read_namespaced_config_map(self, name: str, namespace: str) -> dict[str, Any]:
        return dict(self._json("GET", f"/api/v1/namespaces/{namespace}/configmaps/{name}"))

    def read_namespaced_secret(self, name: str, namespace: str) -> dict[str, Any]:
        return dict(self._json("GET", f"/api/v1/namespaces/{namespace}/secrets/{name}"))

    def list_namespaced_event(self, namespace: str, field_selector: str) -> list[dict[str, Any]]:
        found = self._json("GET", f"/api/v1/namespaces/{namespace}/events", query=[("fieldSelector", field_selector)])
        return list(found.get("items") or [])

    def create_namespaced_event(self, namespace: str, body: dict[str, Any]) -> None:
        self._send("POST", f"/api/v1/namespaces/{namespace}/events", body)

    def read_validating_admission_policy(self, name: str) -> dict[str, Any]:
        return dict(self._json("GET", f"/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies/{name}"))

    def read_validating_admission_policy_binding(self, name: str) -> dict[str, Any]:
        return dict(self._json(
            "GET", f"/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings/{name}"))

    def server_version(self) -> dict[str, Any]:
        """GET /version (readable by every authenticated user: no RBAC rule needed)."""
        return dict(self._json("GET", "/version"))
