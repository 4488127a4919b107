"""A namespace being deleted under a running execution: its Job cannot be created, ever.

The API server answers a create there with 403 NamespaceTerminating. Retried as a passing fault, it
was a traceback every few seconds until the namespace was gone (seen in the e2e tier when a test's
namespace was deleted under a running execution); refused instead, the node fails saying why.
"""

from __future__ import annotations

import pytest

from jobchain.k8s.writes import JobRefused

from .fakes import fake_writer, job_to_create

TERMINATING = (403, {"kind": "Status", "code": 403, "reason": "Forbidden",
                     "message": 'jobs.batch "run-1-a" is forbidden: unable to create new content in namespace ns '
                                "because it is being terminated",
                     "details": {"causes": [{"reason": "NamespaceTerminating", "field": "metadata.namespace"}]}})


def test_a_job_refused_because_its_namespace_is_terminating_fails_its_node_saying_so() -> None:
    with pytest.raises(JobRefused, match="because it is being terminated"):
        fake_writer([TERMINATING], []).create_job(job_to_create())


def test_another_forbidden_create_stays_an_error_to_retry() -> None:
    from kubernetes.client.exceptions import ApiException

    with pytest.raises(ApiException):
        fake_writer([(403, {"kind": "Status", "code": 403, "message": "no rights"})], []).create_job(job_to_create())


def test_an_output_config_map_in_a_terminating_namespace_is_not_an_error() -> None:
    sent: list[tuple[str, str, object]] = []
    config_map = {"metadata": {"name": "run-1-a-output", "namespace": "ns", "ownerReferences": [{"uid": "u"}]},
                  "data": {"output.json": "{}"}}
    fake_writer([TERMINATING], sent).create_config_map(config_map)
    assert [s[:2] for s in sent] == [("POST", "/api/v1/namespaces/ns/configmaps")]
