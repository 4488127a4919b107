"""The dashboard's read-only Kubernetes calls, blocking, for worker threads.

Why its own small wrapper: the dashboard only ever reads (list, get, watch, pod logs), as
the user whose kubeconfig it was started with, so it can never do what that user may not.
Responses are read raw so objects stay plain dicts, and failures are left as the client
library raises them: the server turns them into a JSON error or a "cluster unreachable"
state, and never dies of them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, cast

from kubernetes import client
from kubernetes import watch as _watch
from kubernetes.client.exceptions import ApiException

from jobchain.api.vocabulary import GROUP, LABEL_EXECUTION, LABEL_NODE, VERSION
from jobchain.engine.spec.render import label_value

REQUEST_TIMEOUT = 15  # seconds for a read: a page waits at most this long on a dead cluster
WATCH_SECONDS = 240  # a watch is renewed this often, so a silently dropped connection is noticed
LOG_TAIL_BYTES = 256 * 1024
FOLLOW_TAIL_LINES = 5000
FOLLOW_IDLE_SECONDS = 3600  # a followed log silent this long is closed (the page then re-reads it)

watch: Any = _watch


def _body(response: Any) -> dict[str, Any]:
    return cast(dict[str, Any], json.loads(response.data))


class ReadOnlyClient:
    """list/get/watch of the jobchain kinds, pods of a node, and pod logs; nothing that writes.

    The two reviews (TokenReview, SubjectAccessReview) are POSTs that store nothing: questions
    to the API server about a viewer of the in-cluster dashboard (cli/dashboard/access.py)."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)

    @property
    def host(self) -> str:
        return str(self.api.configuration.host)

    def list_objects(self, plural: str, namespace: str | None) -> dict[str, Any]:
        """A list of objects (all namespaces when namespace is None), with its resourceVersion."""
        if namespace is None:
            response = self.custom.list_cluster_custom_object(
                GROUP, VERSION, plural, _preload_content=False, _request_timeout=REQUEST_TIMEOUT
            )
        else:
            response = self.custom.list_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, _preload_content=False, _request_timeout=REQUEST_TIMEOUT
            )
        return _body(response)

    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            response = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, name, _preload_content=False, _request_timeout=REQUEST_TIMEOUT
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return _body(response)

    def watch(self, plural: str, namespace: str | None, resource_version: str) -> Iterator[dict[str, Any]]:
        """Watch events ({type, raw_object}) from resource_version on, for WATCH_SECONDS at most."""
        fn: Any = self.custom.list_cluster_custom_object
        args: tuple[str, ...] = (GROUP, VERSION, plural)
        if namespace is not None:
            fn, args = self.custom.list_namespaced_custom_object, (GROUP, VERSION, namespace, plural)
        stream = watch.Watch().stream(
            fn,
            *args,
            resource_version=resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=WATCH_SECONDS,
            _request_timeout=(REQUEST_TIMEOUT, WATCH_SECONDS + 30),
        )
        for event in stream:
            yield cast(dict[str, Any], event)

    def output_value(self, namespace: str, config_map: str, key: str) -> tuple[bool, Any]:
        """(found, value) of a whole output kept in a ConfigMap (status holds a preview of it)."""
        try:
            response = self.core.read_namespaced_config_map(config_map, namespace, _preload_content=False,
                                                            _request_timeout=REQUEST_TIMEOUT)
        except ApiException as exc:
            if exc.status in (403, 404):
                return False, None  # gone, or not ours to read: the preview is used
            raise
        text = (_body(response).get("data") or {}).get(key)
        return (True, json.loads(text)) if text is not None else (False, None)

    def namespaces(self) -> list[str]:
        response = self.core.list_namespace(_preload_content=False, _request_timeout=REQUEST_TIMEOUT)
        return sorted(item["metadata"]["name"] for item in _body(response).get("items") or [])

    def review_token(self, token: str) -> dict[str, Any] | None:
        """The user a bearer token belongs to (TokenReview), or None when the API server refuses it."""
        body: Any = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}
        response = client.AuthenticationV1Api(self.api).create_token_review(
            body, _preload_content=False, _request_timeout=REQUEST_TIMEOUT)
        status = _body(response).get("status") or {}
        return cast(dict[str, Any], status.get("user") or {}) if status.get("authenticated") else None

    def review_access(self, viewer: dict[str, Any], attributes: dict[str, str]) -> bool:
        """Whether the viewer (user, groups, ...) may do what `attributes` say (SubjectAccessReview)."""
        body: Any = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                "spec": {**viewer, "resourceAttributes": attributes}}
        response = client.AuthorizationV1Api(self.api).create_subject_access_review(
            body, _preload_content=False, _request_timeout=REQUEST_TIMEOUT)
        return bool((_body(response).get("status") or {}).get("allowed"))

    def node_pods(self, namespace: str, execution: str, node: str) -> list[dict[str, Any]]:
        """The node's pods, oldest first (more than one when it was retried)."""
        selector = f"{LABEL_EXECUTION}={label_value(execution)},{LABEL_NODE}={node}"
        response = self.core.list_namespaced_pod(
            namespace, label_selector=selector, _preload_content=False, _request_timeout=REQUEST_TIMEOUT
        )
        pods = list(_body(response).get("items") or [])
        return sorted(pods, key=lambda p: (p["metadata"].get("creationTimestamp") or "", p["metadata"]["name"]))

    def read_log(self, namespace: str, pod: str) -> str:
        """The tail of a pod's log (the last LOG_TAIL_BYTES)."""
        response = self.core.read_namespaced_pod_log(
            pod, namespace, limit_bytes=LOG_TAIL_BYTES, _preload_content=False, _request_timeout=REQUEST_TIMEOUT
        )
        return bytes(cast(Any, response).data).decode(errors="replace")

    def open_log_stream(self, namespace: str, pod: str) -> Any:
        """A followed log from its last FOLLOW_TAIL_LINES lines on (an open urllib3 response).

        The caller reads its chunks and closes it; it ends when the container ends."""
        return self.core.read_namespaced_pod_log(
            pod,
            namespace,
            follow=True,
            tail_lines=FOLLOW_TAIL_LINES,
            _preload_content=False,
            _request_timeout=(REQUEST_TIMEOUT, FOLLOW_IDLE_SECONDS),
        )
