"""Submitting a built Workflow and reading its execution back as Python values.

Why through the CLI's code: the kubeconfig is loaded, the execution is created, and every API
failure is worded exactly as `jobchain run` does it (`cli.cluster`, `cli.run`), so a script and
the command line behave alike. Only the CLI's error type is turned into the SDK's, and the wait
is the SDK's own (see `Submitted.wait`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from jobchain.api.models import TERMINAL_EXECUTION_PHASES, ExecutionPhase, ExecutionStatus
from jobchain.api.vocabulary import EXECUTIONS, GROUP, VERSION, WORKFLOWS
from jobchain.cli.cluster import REQUEST_TIMEOUT, WATCH_SECONDS, CliCluster, api_error, connect, connection_error
from jobchain.cli.errors import CliError, Exit
from jobchain.cli.run import execution_manifest
from jobchain.engine.spec.validation import join, validate_params
from jobchain.sdk.errors import ClusterError, InvalidWorkflow, WaitTimeout

if TYPE_CHECKING:
    from jobchain.sdk.builder import Workflow


@dataclass(frozen=True)
class NodeResult:
    """One node of an execution: its phase, its output as a Python value (whole, also when status
    keeps only a preview), and why it ended so."""

    name: str
    phase: str
    output: Any
    message: str = ""
    reason: str | None = None
    exit_code: int | None = None


@dataclass(frozen=True)
class Result:
    """A WorkflowExecution as read from the cluster."""

    name: str
    namespace: str
    phase: str
    reason: str
    message: str
    nodes: dict[str, NodeResult]

    @property
    def succeeded(self) -> bool:
        return self.phase == ExecutionPhase.SUCCEEDED

    def outputs(self) -> dict[str, Any]:
        """Each node's output by node name."""
        return {name: node.output for name, node in self.nodes.items()}


def result_of(execution: dict[str, Any]) -> Result:
    """The Result of an execution as the API server sends it (outputs already made whole)."""
    status = ExecutionStatus.model_validate(execution.get("status") or {})
    meta = execution.get("metadata") or {}
    nodes = {n.name: NodeResult(n.name, str(n.phase), n.output, n.message, n.reason, n.exitCode)
             for n in status.nodes}
    return Result(meta.get("name", ""), meta.get("namespace", ""), str(status.phase), status.reason,
                  status.message, nodes)


def _sdk_error(exc: CliError) -> Exception:
    if exc.code == Exit.TIMEOUT:
        return WaitTimeout(exc.message)
    if exc.code == Exit.USAGE:
        return InvalidWorkflow(exc.message)
    return ClusterError(exc.message)


@dataclass(frozen=True)
class Submitted:
    """A started execution: `wait()` for its end, `result()` for how it is now."""

    name: str
    cluster: CliCluster
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)

    @property
    def namespace(self) -> str:
        return self.cluster.namespace

    def result(self) -> Result:
        try:
            return result_of(self.cluster.with_whole_outputs(self.cluster.get(EXECUTIONS, self.name)))
        except CliError as exc:
            raise _sdk_error(exc) from None

    def wait(self, timeout: float | None = None) -> Result:
        """Watches the execution until it is Succeeded, Failed or Cancelled; WaitTimeout after `timeout`
        seconds (the execution keeps running).

        Why not the CLI's `wait_for_end`: it watches from a thread that lives as long as the process,
        which is right for a command but leaks a thread and a connection per run in a notebook or a
        service. Here each watch is asked of the server for at most the time left, so the wait ends
        on time in the calling thread, and the watch is closed when it returns."""
        try:
            return result_of(self.cluster.with_whole_outputs(self._until_end(timeout)))
        except CliError as exc:
            raise _sdk_error(exc) from None

    def _until_end(self, timeout: float | None) -> dict[str, Any]:
        start = self.clock()
        phase = "not started"
        while True:
            left = None if timeout is None else timeout - (self.clock() - start)
            if left is not None and left <= 0:
                raise WaitTimeout(f"{self.name} is still {phase} after timeout={timeout:g}s; it keeps running "
                                  f"(jobchain -n {self.namespace} cancel {self.name} stops it)")
            seconds = WATCH_SECONDS if left is None else max(1, min(WATCH_SECONDS, math.ceil(left)))
            for execution in self._watch(seconds):
                phase = (execution.get("status") or {}).get("phase") or phase
                if phase in TERMINAL_EXECUTION_PHASES:
                    return execution

    def _watch(self, seconds: int) -> Iterator[dict[str, Any]]:
        """The execution now and at each change, for `seconds`; an expired or dropped watch ends early."""
        cluster = self.cluster
        try:
            for event in cluster.objects.watch(cluster.namespace, EXECUTIONS, f"metadata.name={self.name}", seconds):
                if event["type"] == "DELETED":
                    raise ClusterError(f"workflowexecution {self.name!r} was deleted while it was watched")
                if event["type"] in ("ADDED", "MODIFIED"):
                    yield dict(event["raw_object"])
        except ApiException as exc:
            if exc.status != 410:  # 410: the resourceVersion expired; the next watch starts from now
                raise api_error(exc, EXECUTIONS, self.name, cluster.namespace) from None
        except (urllib3.exceptions.ProtocolError, urllib3.exceptions.ReadTimeoutError):
            return  # the connection dropped: the next watch starts from the current state
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ClusterError(connection_error(exc, cluster.host).message) from None


def apply_workflow(cluster: CliCluster, body: dict[str, Any]) -> dict[str, Any]:
    """Create-or-update: creates the Workflow, or replaces the spec of the one of that name and adds
    its labels (labels set by others, the status and other metadata stay). A concurrent write (409)
    is retried on the new version."""
    api = client.CustomObjectsApi(cluster.api)
    name = body["metadata"]["name"]
    for _ in range(3):
        try:
            current = cluster.objects.get_object(cluster.namespace, WORKFLOWS, name)
        except ApiException as exc:
            if exc.status != 404:
                raise api_error(exc, WORKFLOWS, name, cluster.namespace) from None
            try:
                return cluster.objects.create_object(cluster.namespace, WORKFLOWS, body)
            except ApiException as exc2:
                if exc2.status == 409:
                    continue  # created meanwhile: replace it
                raise api_error(exc2, WORKFLOWS, name, cluster.namespace) from None
        replaced = {**current, "spec": body["spec"]}
        labels = {**(current["metadata"].get("labels") or {}), **(body["metadata"].get("labels") or {})}
        replaced["metadata"] = {**current["metadata"], "labels": labels}
        try:
            written: Any = api.replace_namespaced_custom_object(GROUP, VERSION, cluster.namespace, WORKFLOWS, name,
                                                                replaced, _request_timeout=REQUEST_TIMEOUT)
            return dict(written)
        except ApiException as exc:
            if exc.status != 409:
                raise api_error(exc, WORKFLOWS, name, cluster.namespace) from None
    raise ClusterError(f"workflow {name!r} in namespace {cluster.namespace!r} changed three times while it was "
                       "being updated; submit again")


def submit(workflow: Workflow, namespace: str | None, params: Mapping[str, Any], deadline: int | None,
           kubeconfig: str | None, context: str | None,
           secret_params: Mapping[str, tuple[str, str]] | None = None) -> Submitted:
    from jobchain.sdk.builder import param_text

    problems = workflow.lint()
    if problems:
        raise InvalidWorkflow(f"Workflow {workflow.name!r} is invalid: {'; '.join(map(str, problems))}",
                              [(p.path, p.message) for p in problems])
    texts = {name: param_text(value) for name, value in params.items()}
    spec = workflow.model().spec
    secrets = dict(secret_params or {})
    refused = validate_params(texts, spec.params, f"Workflow {workflow.name!r}", from_secrets=frozenset(secrets))
    if refused:
        raise InvalidWorkflow(f"{join(refused)}; pass params={{NAME: VALUE}}, secret params as "
                              "secret_params={NAME: (SECRET, KEY)}",
                              [(p.path, p.message) for p in refused])
    if deadline is not None and deadline < 1:
        raise InvalidWorkflow(f"deadline={deadline}: must be a number of seconds, at least 1")
    try:
        cluster = connect(kubeconfig, context, namespace)
    except CliError as exc:
        raise _sdk_error(exc) from None
    body = workflow.to_dict()
    body["metadata"]["namespace"] = cluster.namespace
    try:
        apply_workflow(cluster, body)
        manifest = execution_manifest(workflow.name, texts, deadline)
        if secrets:
            manifest["spec"]["paramsFrom"] = [
                {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
                for name, (secret, key) in secrets.items()]
        created = cluster.create_execution(manifest)
    except CliError as exc:
        raise _sdk_error(exc) from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise ClusterError(connection_error(exc, cluster.host).message) from None
    return Submitted(created["metadata"]["name"], cluster)
