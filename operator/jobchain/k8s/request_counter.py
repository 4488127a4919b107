"""Counts the operator's own requests to the API server, by verb and resource.

Why: the API server's `apiserver_request_total` has no client label, so on a cluster shared
with other clients it cannot say which requests were ours. This counter can; the scale
benchmark prints both. kopf's own watch connections (aiohttp) are not counted here: they are a
LIST and a WATCH per resource kind and namespace, not per execution.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from kubernetes import client
from prometheus_client import Counter

API_REQUESTS = Counter(
    "jobchain_api_requests_total", "Requests the operator's reconciles sent to the API server.",
    ["verb", "resource", "subresource"],
)

_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def request_kind(method: str, url: str) -> tuple[str, str, str]:
    """(verb, resource, subresource) as the API server names them, from a request's method and URL."""
    # /api/v1/[namespaces/NS/]RESOURCE[/NAME[/SUB]], /apis/GROUP/VERSION/[namespaces/NS/]RESOURCE[/NAME[/SUB]]
    parts = [p for p in urlparse(url).path.split("/") if p]
    rest = parts[2:] if parts[:1] == ["api"] else parts[3:] if parts[:1] == ["apis"] else []
    if len(rest) >= 3 and rest[0] == "namespaces":
        rest = rest[2:]
    if not rest:
        return method.lower(), "", ""
    name = rest[1] if len(rest) > 1 else None
    verb = _VERBS.get(method.upper()) or ("get" if name else "list")
    return verb, rest[0], rest[2] if len(rest) > 2 else ""


def count_requests(api: client.ApiClient) -> None:
    """Makes every request sent through `api` count in jobchain_api_requests_total."""
    send = api.rest_client.request

    def counted(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        API_REQUESTS.labels(*request_kind(method, url)).inc()
        return send(method, url, *args, **kwargs)  # type: ignore[no-untyped-call]

    api.rest_client.request = counted  # type: ignore[method-assign]
