"""Small builders for the engine's unit tests: specs, executions, observed Jobs, and a simulated cluster.

Specs are written as the plain dicts a user would write in YAML and parsed with the real models, so
a test reads like the workflow it is about and the models' own validation is exercised too.
"""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from jobchain.api.models import (
    TERMINAL_EXECUTION_PHASES,
    ExecutionStatus,
    NodeStatus,
    WorkflowExecutionSpec,
    WorkflowSpec,
)
from jobchain.api.vocabulary import LABEL_NODE
from jobchain.cli.lint import run_lint
from jobchain.controller.reconcile import reconcile_execution
from jobchain.engine.execution.conditions import PassBudget
from jobchain.engine.execution.planner import (
    ExecutionInput,
    JobState,
    ObservedJob,
    Plan,
    WorkflowLookup,
    iso,
    plan,
)
from jobchain.engine.execution.status import output_refs
from jobchain.engine.execution.types import NodeToRead
from jobchain.engine.spec.render import job_name, key_of
from jobchain.k8s.cluster import ExecutionCluster, OperatorCluster
from jobchain.k8s.observe import Observation
from jobchain.k8s.store import has_owner
from jobchain.k8s.writes import ForgedOutputError, JobRefused

EXECUTION = "run-1"
NAMESPACE = "team-a"
UID = "0000-uid"
T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def edge(to: str, type: str = "success", when: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"node": to, "type": type}
    if when is not None:
        out["when"] = when
    return out


def node(name: str, *next_: str | dict[str, Any], image: str | None = "busybox", **fields: Any) -> dict[str, Any]:
    """A node dict; `next_` items are target names (success edges) or edge() dicts."""
    out: dict[str, Any] = {"name": name, **fields}
    if not {"script", "command", "args"} & set(fields):
        out["script"] = f"echo {name}"
    if image is not None:
        out["image"] = image
    if next_:
        out["next"] = [edge(n) if isinstance(n, str) else n for n in next_]
    return out


def gate(name: str, *next_: str | dict[str, Any], message: str = "ship it?", timeout: int | None = None
         ) -> dict[str, Any]:
    """An approval gate node dict (no Job: no image, no script)."""
    approval: dict[str, Any] = {"message": message}
    if timeout is not None:
        approval["timeoutSeconds"] = timeout
    out: dict[str, Any] = {"name": name, "approval": approval}
    if next_:
        out["next"] = [edge(n) if isinstance(n, str) else n for n in next_]
    return out


def decide(ex: ExecutionInput, node_name: str, decision: str, message: str | None = None) -> ExecutionInput:
    """The execution after `jobchain approve|deny` patched spec.approvals.NODE."""
    approvals = {k: v.model_dump(exclude_none=True) for k, v in ex.spec.approvals.items()}
    approvals[node_name] = {"decision": decision, **({"message": message} if message else {})}
    new_spec = WorkflowExecutionSpec.model_validate(
        {**ex.spec.model_dump(by_alias=True, exclude_none=True), "approvals": approvals})
    return dataclasses.replace(ex, spec=new_spec)


def spec(*nodes: dict[str, Any], **fields: Any) -> WorkflowSpec:
    return WorkflowSpec.model_validate({"nodes": list(nodes), **fields})


def chain(*names: str, **fields: Any) -> WorkflowSpec:
    """a -> b -> c ... with success edges."""
    return spec(*(node(n, *names[i + 1 : i + 2]) for i, n in enumerate(names)), **fields)


def execution(
    workflow: WorkflowSpec | None = None,
    *,
    ref: str | None = None,
    params: Mapping[str, str] | None = None,
    cancel: bool = False,
    timeout: int | None = None,
    status: ExecutionStatus | None = None,
    name: str = EXECUTION,
    created: datetime | None = None,
) -> ExecutionInput:
    body: dict[str, Any] = {"params": dict(params or {}), "cancel": cancel, "timeoutSeconds": timeout}
    if workflow is not None:
        body["workflow"] = workflow.model_dump(by_alias=True, exclude_none=True)
    if ref is not None:
        body["workflowRef"] = {"name": ref}
    return ExecutionInput(
        name=name,
        namespace=NAMESPACE,
        uid=UID,
        generation=1,
        spec=WorkflowExecutionSpec.model_validate(body),
        status=status or ExecutionStatus(),
        created=iso(created) if created else None,
    )


def with_status(ex: ExecutionInput, status: ExecutionStatus, **spec_changes: Any) -> ExecutionInput:
    """The execution as the next handler call sees it: the status written, maybe a spec edit."""
    new_spec = ex.spec.model_copy(update=spec_changes) if spec_changes else ex.spec
    return ExecutionInput(ex.name, ex.namespace, ex.uid, ex.generation, new_spec, status, ex.created)


def job(
    node_name: str,
    state: str = "Running",
    output: str | None = None,
    *,
    exit_code: int | None = None,
    finished_at: datetime | None = None,
    message: str = "",
    execution_name: str = EXECUTION,
) -> ObservedJob:
    st = JobState(state)
    if exit_code is None and st != JobState.RUNNING:
        exit_code = 0 if st == JobState.SUCCEEDED else 1
    return ObservedJob(
        node=node_name,
        name=job_name(execution_name, node_name),
        state=st,
        pod_name=f"{job_name(execution_name, node_name)}-abcde",
        exit_code=exit_code,
        raw_output=output,
        message=message,
        finished_at=iso(finished_at) if finished_at and st != JobState.RUNNING else None,
    )


def observed(*jobs: ObservedJob) -> dict[str, ObservedJob]:
    return {j.node: j for j in jobs}


def phases(status: ExecutionStatus) -> dict[str, str]:
    return {n.name: str(n.phase) for n in status.nodes}


def node_status(status: ExecutionStatus, name: str) -> NodeStatus:
    return next(n for n in status.nodes if n.name == name)


def created_nodes(p: Plan) -> list[str]:
    """The node (node#index for a forEach item) of each Job the plan creates."""
    return [str(key_of(j)) for j in p.create]


def env_of(job_manifest: Mapping[str, Any]) -> dict[str, Any]:
    """name -> value (or valueFrom) of the main container's env."""
    container = job_manifest["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def script_seen(job_manifest: Mapping[str, Any]) -> str:
    """The node's script with each `${JOBCHAIN_REF_n}` expanded to its value as the container
    gets it (the kubelet turns `$$` into `$`): what the script says, for assertions."""
    container = job_manifest["spec"]["template"]["spec"]["containers"][0]
    script = str(container["command"][-1]).replace("$$", "$")  # the kubelet collapses `$$`
    for item in container["env"]:
        if item["name"].startswith("JOBCHAIN_REF_"):
            value = item["value"].replace("$$", "$")
            script = script.replace("'\"${" + item["name"] + "}\"'", value).replace("${" + item["name"] + "}", value)
    return script


# ---- a scripted cluster ------------------------------------------------------------------

# What a node's Job does when the simulated cluster runs it: (state, raw output).
Result = tuple[str, str | None]
OK: Result = ("Succeeded", None)
FAIL: Result = ("Failed", None)


def ok(output: Any) -> Result:
    """A node that succeeded with `output` (JSON unless a string)."""
    return ("Succeeded", output if isinstance(output, str) else json.dumps(output))


def started(workflow: WorkflowSpec, **kwargs: Any) -> tuple[Any, Plan]:
    """An execution after its first pass, and that pass's plan."""
    ex = execution(workflow, **kwargs)
    p = plan(ex, {}, T0)
    return with_status(ex, p.status), p


@dataclass
class FakeOperatorCluster:
    """Jobs by name, as a real API server would keep them: create of an existing name is a no-op."""

    jobs: dict[str, ObservedJob] = field(default_factory=dict)
    manifests: dict[str, dict[str, Any]] = field(default_factory=dict)
    creates: list[str] = field(default_factory=list)  # every create request, by node
    deleted: list[str] = field(default_factory=list)
    config_maps: dict[str, Any] = field(default_factory=dict)  # output ConfigMaps: name -> the value kept

    def apply(self, p: Plan) -> None:
        for cm in p.config_maps:
            self.config_maps.setdefault(cm["metadata"]["name"], json.loads(cm["data"]["output.json"]))
        for manifest in p.create:
            name = manifest["metadata"]["name"]
            node_name = str(key_of(manifest))
            self.creates.append(node_name)
            if name not in self.jobs:
                self.jobs[name] = ObservedJob(node=node_name, name=name, state=JobState.RUNNING)
                self.manifests[name] = manifest
        for name in p.delete:
            if self.jobs.pop(name, None) is not None:
                self.deleted.append(name)

    def observed(self) -> dict[str, ObservedJob]:
        return {j.node: j for j in self.jobs.values()}

    def running(self) -> list[ObservedJob]:
        return [j for j in self.jobs.values() if j.state == JobState.RUNNING]

    def finish(self, node_name: str, state: str, output: str | None, now: datetime) -> None:
        name = job_name(EXECUTION, node_name)
        self.jobs[name] = job(node_name, state, output, finished_at=now)


@dataclass
class Run:
    """The history of a simulated execution."""

    plans: list[Plan]
    cluster: FakeOperatorCluster
    final: ExecutionStatus
    now: datetime

    @property
    def status(self) -> ExecutionStatus:
        return self.final

    def started_order(self) -> list[str]:
        return [n for p in self.plans for n in created_nodes(p)]


def simulate(
    workflow: WorkflowSpec,
    results: Mapping[str, Result] | Callable[[str, dict[str, Any]], Result] | None = None,
    *,
    params: Mapping[str, str] | None = None,
    timeout: int | None = None,
    max_steps: int = 200,
    finish_per_step: int | None = None,
    cel_budget: PassBudget | None = None,
) -> Run:
    """Runs an execution to its end: each step plans, applies, then finishes the running Jobs.

    `results` maps a node to what its Job does (default: succeeds with no output), or is a function
    of (node name, rendered Job manifest), so a test can answer from the env the node was given.
    With `finish_per_step`, only that many running Jobs (oldest first) finish per step; `cel_budget` is
    what the conditions of each pass may cost (the limits' budget by default).
    """
    ex = execution(workflow, params=params, timeout=timeout)
    cluster = FakeOperatorCluster()
    plans: list[Plan] = []
    now = T0
    for _ in range(max_steps):
        p = plan(ex, cluster.observed(), now, cel_budget=cel_budget)
        plans.append(p)
        cluster.apply(p)
        ex = with_status(ex, p.status)
        # as the controller reads them: the whole outputs kept in ConfigMaps that status names
        ex = dataclasses.replace(ex, outputs={key: cluster.config_maps[ref.configMap]
                                              for key, ref in output_refs(p.status, ex.name).items()})
        if p.status.phase in TERMINAL_EXECUTION_PHASES:
            return Run(plans, cluster, p.status, now)
        now += timedelta(seconds=1)
        running = cluster.running()
        if finish_per_step is not None:
            running = running[:finish_per_step]
        for j in running:
            manifest = cluster.manifests[j.name]
            if callable(results):
                state, out = results(j.node, manifest)
            else:
                state, out = (results or {}).get(j.node, ("Succeeded", None))
            cluster.finish(j.node, state, out, now)
    raise AssertionError(f"execution did not finish in {max_steps} steps: {phases(ex.status)}")


def lookup(workflow: WorkflowSpec | None, name: str = "wf", found: bool = True,
           problems: Iterable[str] = ()) -> WorkflowLookup:
    return WorkflowLookup(name=name, spec=workflow, found=found, problems=tuple(problems))


# ---- the API server's writes, and a fake cluster for the controller ----------------------------

def through_api_server(value: Any) -> Any:
    """`value` sent as JSON to the API server and read back: strict JSON only (NaN refused), and
    numbers as Go keeps them (int64, else float64, written back in Go's shortest form, so 2.0
    comes back as 2 and 18446744073709551615 as 18446744073709552000)."""
    def numbers(v: Any) -> Any:
        if isinstance(v, bool) or v is None or isinstance(v, str):
            return v
        if isinstance(v, int):
            if -(2**63) <= v < 2**63:
                return v
            v = float(v)
        if isinstance(v, float):
            return int(v) if v.is_integer() and abs(v) < 1e21 else v
        if isinstance(v, list):
            return [numbers(x) for x in v]
        return {k: numbers(x) for k, x in v.items()}

    return numbers(json.loads(json.dumps(value, allow_nan=False)))


def _prune_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _prune_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_prune_nulls(v) for v in value]
    return value


def merge_patch(target: Any, patch: Any) -> Any:
    """A JSON merge patch (RFC 7386) as the Kubernetes API server applies it (evanphx/json-patch).

    One difference from the RFC matters here: a value the patch puts in place (a new member, or a
    list replacing a list) has its null members removed at every depth, also inside the objects of
    a list, where the RFC would keep them. That is how {"result": null} inside `nodes[].output`
    got lost.
    """
    if not isinstance(target, dict):
        return _prune_nulls(patch)
    if not isinstance(patch, dict):
        return patch
    out = dict(target)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif out.get(key) is None:
            out[key] = _prune_nulls(value)
        else:
            out[key] = merge_patch(out[key], value)
    return out


def json_patch(target: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    """A JSON patch (RFC 6902), the `add` of one top-level member the controller uses."""
    out = dict(target)
    for op in ops:
        assert op["op"] in ("add", "replace") and op["path"].count("/") == 1, op
        out[op["path"][1:]] = through_api_server(op["value"])
    return out


class WriteFailed(Exception):
    """Stands for the API server refusing a write (a 5xx, a timeout)."""


class FakeCluster:
    """The controller's view of a cluster, recording every write it makes as an action, in the
    style of sample-controller's fake clientset: a test states the actions a scenario must make.

    Objects are kept as the API server would keep them: status patches are applied with the API
    server's semantics and the result is what the next reconcile reads.
    """

    def __init__(self, execution_body: dict[str, Any] | None = None,
                 workflows: Mapping[str, dict[str, Any]] | None = None) -> None:
        self.executions: dict[str, dict[str, Any]] = {}
        if execution_body is not None:
            self.executions[execution_body["metadata"]["name"]] = json.loads(json.dumps(execution_body))
        self.workflows = {name: {"metadata": {"name": name, "namespace": NAMESPACE}, "spec": spec_}
                          for name, spec_ in (workflows or {}).items()}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.seen: dict[str, ObservedJob] = {}  # what the observer reports, by node
        self.actions: list[tuple[str, ...]] = []
        self.refuse: dict[str, str] = {}  # node (node#index of an item) -> the API server's message
        self.fail_status_writes = 0
        self.observer = self
        self.writer = self
        self.store = self  # what the operator's watch store is told of its own writes
        self.stored: list[str] = []  # names of the objects written through to the store, in order
        # The watch store lagging the API server: when set, passes read executions from here, which
        # holds only what `deliver` (a watch event) and the operator's own writes put in it.
        self.delivered: dict[str, dict[str, Any]] | None = None

    # reads (not recorded)
    def create_config_map(self, manifest: dict[str, Any]) -> None:
        name = manifest["metadata"]["name"]
        if name in getattr(self, "forged", ()):  # the real Writer found one made first, with other content
            raise ForgedOutputError(f"ConfigMap {manifest['metadata']['namespace']}/{name} ... was created before "
                                    "the operator wrote it, with other content")
        self.config_maps = {**getattr(self, "config_maps", {}), name: manifest}

    def output_value(self, namespace: str, config_map: str, key: str, owner_uid: str,
                     sha256: str | None = None) -> tuple[bool, Any]:
        if config_map in getattr(self, "forged", ()):  # the real cluster's check found it forged
            raise ForgedOutputError(f"ConfigMap {namespace}/{config_map} ... someone replaced it")
        found = getattr(self, "config_maps", {}).get(config_map)
        if found is None or not has_owner(found, owner_uid):  # as the real one: another execution's is not taken
            return False, None
        return True, json.loads(found["data"][key])

    def get_execution(self, namespace: str, name: str) -> dict[str, Any] | None:
        body = (self.executions if self.delivered is None else self.delivered).get(name)
        return json.loads(json.dumps(body)) if body is not None else None

    def executions_in(self, namespace: str) -> list[dict[str, Any]]:
        held = self.executions if self.delivered is None else self.delivered
        return [json.loads(json.dumps(b)) for b in held.values()]

    def list_executions(self, namespace: str) -> list[dict[str, Any]]:
        """A consistent read from the API server (recorded: it is the cost the queue pays)."""
        self.actions.append(("list", "workflowexecutions"))
        return [json.loads(json.dumps(b)) for b in self.executions.values()]

    def drop_execution(self, namespace: str, name: str) -> None:
        if self.delivered is not None:
            self.delivered.pop(name, None)

    def deliver(self, *names: str) -> None:
        """The watch delivers these executions as the API server holds them now."""
        self.delivered = self.delivered if self.delivered is not None else {}
        for name in names:
            self.delivered[name] = json.loads(json.dumps(self.executions[name]))

    def get_workflow(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.workflows.get(name)

    def secret_values(self, namespace: str, refs: Iterable[Mapping[str, Any]]) -> list[str] | None:
        return []  # (no Secret here: nothing to redact)

    def observe(self, namespace: str, execution: str, uid: str, wanted: Iterable[NodeToRead],
                started: bool = True) -> Observation:
        return Observation(jobs=dict(self.seen))

    # the store's write-through (not recorded as actions: no API call)
    def put_job(self, job_obj: dict[str, Any]) -> None:
        self.stored.append(job_obj["metadata"]["name"])

    def put_execution(self, body: dict[str, Any], own: bool = False) -> None:
        self.stored.append(body["metadata"]["name"])
        if self.delivered is not None:
            self.delivered[body["metadata"]["name"]] = json.loads(json.dumps(body))

    # writes
    def create_job(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Creates or adopts the Job; returns it as the API server holds it."""
        node_name = manifest["metadata"]["labels"][LABEL_NODE]
        key = str(key_of(manifest))  # node#index for a forEach item
        self.actions.append(("create", "job", node_name))
        if key in self.refuse:
            raise JobRefused(self.refuse[key])
        name = manifest["metadata"]["name"]
        self.jobs.setdefault(name, manifest)
        self.seen.setdefault(key, ObservedJob(node=key, name=name, state=JobState.RUNNING))
        return self.jobs[name]

    def dry_run_job(self, manifest: dict[str, Any]) -> str | None:
        """The API server's dry run of a Job: `refuse`'s message for its node, else None."""
        node_name = manifest["metadata"]["labels"][LABEL_NODE]
        self.actions.append(("dry-run", "job", node_name))
        return self.refuse.get(node_name)

    def delete_job(self, namespace: str, name: str) -> None:
        self.actions.append(("delete", "job", name))
        self.jobs.pop(name, None)
        self.seen = {k: v for k, v in self.seen.items() if v.name != name}

    def delete_execution(self, namespace: str, name: str) -> None:
        self.actions.append(("delete", "workflowexecution", name))
        self.executions.pop(name, None)

    def _write_status(self, kind: str, plural: str, name: str,
                      apply: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
        self.actions.append((kind, plural))
        if self.fail_status_writes:
            self.fail_status_writes -= 1
            raise WriteFailed("the API server did not answer")
        objects = self.workflows if plural == "workflows" else self.executions
        objects[name] = apply(objects[name])
        written: dict[str, Any] = json.loads(json.dumps(objects[name]))
        return written

    def patch_status(self, plural: str, namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
        wire = through_api_server({"status": status})
        return self._write_status("patch-status", plural, name, lambda obj: merge_patch(obj, wire))

    def json_patch_status(self, plural: str, namespace: str, name: str,
                          ops: list[dict[str, Any]]) -> dict[str, Any]:
        wire = [dict(op) for op in ops]
        return self._write_status("patch-status", plural, name, lambda obj: json_patch(obj, wire))

    def event(self, obj: dict[str, Any], kind: str, type_: str, reason: str, message: str) -> None:
        self.actions.append(("event", reason))

    # the cluster acting
    def finish(self, node_name: str, state: str, output: str | None, at: datetime, message: str = "") -> None:
        self.seen[node_name] = job(node_name, state, output, finished_at=at, message=message)

    def status(self, name: str = EXECUTION) -> ExecutionStatus:
        return ExecutionStatus.model_validate(self.executions[name].get("status") or {})

    def take_actions(self) -> list[tuple[str, ...]]:
        actions, self.actions = self.actions, []
        return actions


# Both satisfy the Protocol a reconcile takes (checked by mypy: hack/test.sh runs it on this file).
_REAL: type[ExecutionCluster] = OperatorCluster
_FAKE: type[ExecutionCluster] = FakeCluster


def execution_body(workflow: WorkflowSpec | None = None, *, ref: str | None = None, spec_: dict[str, Any] | None = None,
                   **fields: Any) -> dict[str, Any]:
    """A WorkflowExecution object as the API server returns it."""
    body_spec: dict[str, Any] = dict(spec_ or {})
    if workflow is not None:
        body_spec["workflow"] = workflow.model_dump(mode="json", by_alias=True, exclude_none=True)
    if ref is not None:
        body_spec["workflowRef"] = {"name": ref}
    body_spec.update(fields)
    return {"apiVersion": "jobchain.dev/v1alpha1", "kind": "WorkflowExecution",
            "metadata": {"name": EXECUTION, "namespace": NAMESPACE, "uid": UID, "generation": 1},
            "spec": body_spec}



def etl_run(name: str, created: str, started: bool = False, ref: str = "etl", **fields: Any) -> dict[str, Any]:
    """An execution of the Workflow `ref` (queue tests: its creation time is its place in the queue);
    `started`: Running with a one-node snapshot, so it holds a slot."""
    body = execution_body(ref=ref, **fields)
    body["metadata"].update(name=name, uid=f"uid-{name}", creationTimestamp=created)
    if started:
        body["status"] = {"phase": "Running",
                          "workflowSpec": chain("a").model_dump(mode="json", by_alias=True, exclude_none=True)}
    return body

def pass_of(cluster: FakeCluster, name: str, seconds: float = 0) -> Any:
    """One reconcile pass of execution `name` against `cluster`, at T0 + `seconds`."""
    return reconcile_execution(cluster, NAMESPACE, name, now=T0 + timedelta(seconds=seconds))


def lint_text(tmp_path: Path, text: str) -> tuple[int, str]:
    """`jobchain lint` of a file holding `text`: (exit code, what it printed)."""
    path = tmp_path / "wf.yaml"
    path.write_text(text)
    out = io.StringIO()
    code = run_lint([str(path)], out, io.StringIO(""))
    return int(code), out.getvalue()
