"""Kubernetes API errors are worded in one module (k8s.errors): the operator's Events and logs, the
CLI and the dashboard's banner say one failure with the API server's own words."""

from __future__ import annotations

import json

from kubernetes.client.exceptions import ApiException

from jobchain.cli.cluster import api_error
from jobchain.cli.dashboard.hub import describe_failure
from jobchain.k8s.errors import api_message, describe, describe_call

FORBIDDEN = 'workflowexecutions.jobchain.dev is forbidden: User "dev" cannot list resource "workflowexecutions"'


def failure(status: int, reason: str, body: object) -> ApiException:
    exc = ApiException(status=status, reason=reason)
    exc.body = body if isinstance(body, str) else json.dumps(body)
    return exc


def test_one_failure_is_worded_alike_everywhere() -> None:
    exc = failure(403, "Forbidden", {"kind": "Status", "message": FORBIDDEN})
    assert describe(exc) == f"403 Forbidden: {FORBIDDEN}"
    cli = api_error(exc, "workflowexecutions", None, "team-a").message
    assert cli == f"forbidden: {FORBIDDEN}; ask for RBAC access to workflowexecutions.jobchain.dev in 'team-a'"
    assert describe_failure(exc, "https://k8s:6443", "team-a") == cli


def test_the_api_servers_words_first_then_the_reason_then_the_code() -> None:
    assert api_message(failure(422, "Unprocessable Entity", {"message": "spec.template is invalid"})) == (
        "spec.template is invalid")
    assert api_message(failure(500, "Internal Server Error", "<html>")) == "Internal Server Error"
    assert api_message(failure(500, "", "")) == "HTTP 500"
    assert describe_call(failure(404, "Not Found", "404 page not found"), "workflows", "etl", "ns").message.startswith(
        "the jobchain CRDs are not installed")
    assert describe(ValueError("boom")) == "ValueError: boom"
