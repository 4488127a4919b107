"""Kubernetes API errors in words: the one place that reads an ApiException for a person.

Why one module: the operator's Events and logs, the CLI's exit messages and the dashboard's
banner used to parse the API server's answer each their own way (four describers), and said
the same failure differently. The API server's own words come first (its Status `message`),
then what the failure means and what to do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException

from jobchain.api.vocabulary import EXECUTIONS, GROUP, WORKFLOWS

KIND_OF_PLURAL = {WORKFLOWS: "workflow", EXECUTIONS: "workflowexecution", "pods": "pod"}


def _body(exc: ApiException) -> dict[str, Any]:
    try:
        body = json.loads(exc.body or "")
    except (TypeError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


def status_of(exc: ApiException) -> dict[str, Any]:
    """The Status object in an error response; empty when the body is not one (a bare 404 page)."""
    body = _body(exc)
    return body if body.get("kind") == "Status" else {}


def api_message(exc: ApiException, default: str | None = None) -> str:
    """The API server's own message (its Status object's `message`), else the HTTP reason, else
    `default` (None: "HTTP <code>")."""
    message = str(_body(exc).get("message") or exc.reason or "").strip()
    if message:
        return message
    return f"HTTP {exc.status}" if default is None else default


def describe(exc: BaseException) -> str:
    """One line for the operator's Events and logs: the API server's words for API errors, else the exception's."""
    if isinstance(exc, ApiException):
        return f"{exc.status} {exc.reason}: {api_message(exc)}"
    return f"{type(exc).__name__}: {exc}"


@dataclass(frozen=True)
class Described:
    """A failed call as a user reads it: `usage` when the user named something wrong (a name, a
    namespace, an invalid object), else a fault of the cluster or of access to it."""

    message: str
    usage: bool = False


def describe_call(exc: ApiException, plural: str, name: str | None, namespace: str) -> Described:
    """The one line a user sees for a failed call on `plural`/`name` in `namespace` (pure)."""
    kind = KIND_OF_PLURAL.get(plural, plural)
    status = status_of(exc)
    message = api_message(exc, default="")
    if exc.status == 404:
        details = status.get("details") or {}
        if not status:
            # No Status object: the API server does not serve this resource type at all.
            return Described(f"the jobchain CRDs are not installed in this cluster ({plural}.{GROUP} is not served); "
                             "install them with `kubectl apply -f crds/`")
        if details.get("kind") == "namespaces":
            return Described(f"namespace {namespace!r} does not exist; pick another with -n/--namespace", usage=True)
        if name is not None:
            hint = {
                WORKFLOWS: f"list them with `kubectl get workflows -n {namespace}`",
                EXECUTIONS: f"list them with `jobchain list -n {namespace}`",
            }.get(plural, "")
            return Described(f"{kind} {name!r} not found in namespace {namespace!r}" + (f"; {hint}" if hint else ""),
                             usage=True)
        return Described(message or f"{kind} not found", usage=True)
    if exc.status == 401:
        return Described(f"the cluster refused the credentials of the current kubeconfig context ({message})")
    if exc.status == 403:
        return Described(f"forbidden: {message}; ask for RBAC access to {plural}.{GROUP} in {namespace!r}"
                         if plural in (WORKFLOWS, EXECUTIONS) else f"forbidden: {message}")
    if exc.status == 422:
        return Described(f"the API server refused the {kind}: {message}", usage=True)
    return Described(f"the API server answered {exc.status} {exc.reason or ''}".rstrip()
                     + (f": {message}" if message else ""))
