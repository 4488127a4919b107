"""Secret params: taken from a Secret, delivered through it, and never kept by the operator."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from pydantic import ValidationError

from jobchain.api.models import Param, WorkflowExecutionSpec
from jobchain.cli.errors import CliError
from jobchain.cli.run import check_against_workflow, parse_secret_params
from jobchain.cli.tables import execution_details
from jobchain.engine.execution.planner import plan
from jobchain.engine.spec.secrets import REDACTED, redact

from .builders import T0, env_of, execution, node, spec

TOKEN_REF = {"name": "token", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "api-token"}}}


def secret_execution(params: dict[str, str] | None = None, params_from: list[dict[str, Any]] | None = None,
                     declared_secret: bool = True) -> Any:
    workflow = spec(node("a", script='curl -H "Authorization: $(params.token)" "$(params.url)"'),
                    params=[{"name": "token", "secret": declared_secret}, {"name": "url", "default": "http://x"}])
    ex = execution(workflow, params=params)
    body = ex.spec.model_dump(by_alias=True, exclude_none=True)
    body["paramsFrom"] = [TOKEN_REF] if params_from is None else params_from
    return dataclasses.replace(ex, spec=WorkflowExecutionSpec.model_validate(body))


def test_a_secret_param_is_named_in_status_never_valued_and_reaches_the_job_by_reference() -> None:
    p = plan(secret_execution(), {}, T0)
    assert p.status.phase == "Running", p.status.message
    assert p.status.params == {"url": "http://x"}
    assert p.status.secretParams == ["token"]
    env = env_of(p.create[0])
    assert env["JOBCHAIN_SECRET_token"] == {"secretKeyRef": {"name": "creds", "key": "api-token"}}
    assert json.loads(env["JOBCHAIN_PARAMS"]) == {"url": "http://x"}
    script = p.create[0]["spec"]["template"]["spec"]["containers"][0]["command"][-1]
    assert script == 'curl -H "Authorization: $${JOBCHAIN_SECRET_token}" "$${JOBCHAIN_REF_1}"'  # $$: kubelet


def test_params_from_a_secret_are_secret_even_if_the_workflow_does_not_say_so() -> None:
    p = plan(secret_execution(declared_secret=False), {}, T0)
    assert p.status.secretParams == ["token"]
    assert "token" not in (p.status.params or {})


@pytest.mark.parametrize(("params", "params_from", "phrase"), [
    ({"token": "inline"}, [], "param token is secret: set it with spec.paramsFrom"),
    ({}, [], "param token is secret and must be set with spec.paramsFrom"),
    ({"token": "inline"}, [TOKEN_REF], "set both in spec.params and in spec.paramsFrom"),
])
def test_a_secret_param_set_wrongly_fails_the_execution_saying_how(params: dict[str, str],
                                                                   params_from: list[dict[str, Any]],
                                                                   phrase: str) -> None:
    p = plan(secret_execution(params, params_from), {}, T0)
    assert p.status.reason == "InvalidParams"
    assert phrase in p.status.message
    assert "inline" not in p.status.model_dump_json()


def test_a_secret_param_cannot_have_a_default() -> None:
    with pytest.raises(ValidationError, match="secret and cannot have a default"):
        Param.model_validate({"name": "token", "secret": True, "default": "x"})


def test_redact_replaces_values_and_their_json_form() -> None:
    text = 'failed: token=s3"cr3t, as JSON {"t": "s3\\"cr3t"}; short ab stays'
    expected = f'failed: token={REDACTED}, as JSON {{"t": "{REDACTED}"}}; short ab stays'
    assert redact(text, ["s3\"cr3t", "ab"]) == expected
    assert redact(None, ["x"]) is None


def test_jobchain_get_shows_secret_params_as_secret() -> None:
    shown = execution_details({
        "metadata": {"name": "e", "namespace": "n"},
        "spec": {"workflowRef": {"name": "w"}, "params": {"url": "u"}, "paramsFrom": [TOKEN_REF]},
        "status": {"phase": "Running", "params": {"url": "u"}, "secretParams": ["token"]},
    }, T0)
    assert "Params:    token=<secret>, url=u" in shown


# ---- jobchain run --secret-param --------------------------------------------------------------

WORKFLOW = {"apiVersion": "jobchain.dev/v1alpha1", "kind": "Workflow", "metadata": {"name": "w"},
            "spec": {"params": [{"name": "token", "secret": True}, {"name": "url", "default": "u"}],
                     "nodes": [{"name": "a", "image": "busybox", "script": "echo $(params.token)"}]}}


def test_secret_param_flags_become_params_from() -> None:
    assert parse_secret_params(["token=creds:api-token"]) == [TOKEN_REF]
    for bad in ("token", "token=creds", "token=:k", "9x=creds:k"):
        with pytest.raises(CliError, match="expected NAME=SECRET:KEY"):
            parse_secret_params([bad])


def test_run_asks_for_a_secret_param_by_its_flag_and_refuses_it_inline() -> None:
    with pytest.raises(CliError, match=r"param token is secret and must be set with spec.paramsFrom.*--secret-param"):
        check_against_workflow(WORKFLOW, {})
    with pytest.raises(CliError, match=r"param token is secret: set it with spec.paramsFrom.*--secret-param"):
        check_against_workflow(WORKFLOW, {"token": "inline"})
    check_against_workflow(WORKFLOW, {}, frozenset({"token"}))
