"""Retry (spec.resumeFrom) of an execution with secret params (spec.paramsFrom): the retry runs
with the same params, so a retry made with kubectl that names no paramsFrom inherits them, and one
whose paramsFrom leaves one out is not run without it (the nodes would get no value, silently)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.unit.builders import T0, FakeCluster, env_of, execution_body, node, pass_of, spec

TOKEN_REF = {"name": "token", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "api-token"}}}
WORKFLOW = spec(node("fetch", "push"), node("push", script='curl -H "Authorization: $(params.token)" x'),
                params=[{"name": "token", "secret": True}])


def failed_source() -> FakeCluster:
    body = execution_body(WORKFLOW, paramsFrom=[TOKEN_REF])
    body["metadata"].update(name="first", uid="uid-first")
    cluster = FakeCluster(body)
    pass_of(cluster, "first", 0)
    cluster.finish("fetch", "Succeeded", None, T0 + timedelta(seconds=1))
    pass_of(cluster, "first", 1)
    cluster.finish("push", "Failed", None, T0 + timedelta(seconds=2))
    pass_of(cluster, "first", 2)
    assert cluster.status("first").phase == "Failed"
    cluster.seen, cluster.jobs = {}, {}
    return cluster


def retry(cluster: FakeCluster, **spec_: Any) -> None:
    body = execution_body(spec_={"resumeFrom": {"name": "first"}, **spec_})
    body["metadata"].update(name="second", uid="uid-second")
    cluster.executions["second"] = body
    pass_of(cluster, "second", 10)  # pins "first"
    pass_of(cluster, "second", 10)  # seeds from it
    pass_of(cluster, "second", 11)


def test_a_retry_without_params_from_inherits_the_resumed_ones() -> None:
    # made with kubectl, naming only resumeFrom: the secret still reaches the node that runs again
    cluster = failed_source()
    retry(cluster)
    assert cluster.status("second").phase == "Running"
    assert cluster.status("second").resumedFrom.paramsFrom[0].name == "token"  # type: ignore[union-attr,index]
    [push] = cluster.jobs.values()
    assert env_of(push)["JOBCHAIN_SECRET_token"] == {"secretKeyRef": {"name": "creds", "key": "api-token"}}


def test_a_retry_with_params_from_missing_a_secret_is_refused_saying_what_to_set() -> None:
    cluster = failed_source()
    retry(cluster, paramsFrom=[{"name": "other", "valueFrom": {"secretKeyRef": {"name": "x", "key": "y"}}}])
    status = cluster.status("second")
    assert (status.phase, status.reason) == ("Failed", "InvalidResume")
    assert "spec.paramsFrom" in status.message and "token" in status.message
    assert not cluster.jobs  # nothing ran without its secret


def test_a_retry_with_the_source_params_from_gives_the_secret_to_its_nodes() -> None:
    cluster = failed_source()
    retry(cluster, paramsFrom=[TOKEN_REF])
    assert cluster.status("second").phase == "Running"
    [push] = cluster.jobs.values()
    assert env_of(push)["JOBCHAIN_SECRET_token"] == {"secretKeyRef": {"name": "creds", "key": "api-token"}}
