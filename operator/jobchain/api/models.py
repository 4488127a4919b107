"""The Workflow and WorkflowExecution API (group jobchain.dev, version v1alpha1) as pydantic models.

These models are the one source of truth: the CRD schemas in crds/ are generated from them
(`jobchain.api.crd`), the CLI's offline lint parses with them, and the engine takes them as
input. Field descriptions become `kubectl explain` text, so they are written for users.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from jobchain.api import limits
from jobchain.api.vocabulary import API_VERSION, KIND_EXECUTION, KIND_SCHEDULE, KIND_WORKFLOW

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
PARAM_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
ENV_NAME = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"

# A string item of a list with its own length limit (command, args).
Text = Annotated[str, StringConstraints(max_length=limits.MAX_TEXT)]
ParamValue = Annotated[str, StringConstraints(max_length=limits.MAX_PARAM_VALUE)]

# Marks a field whose content Kubernetes must keep as it is (free-form JSON).
FREE_FORM: dict[str, Any] = {"x-kubernetes-preserve-unknown-fields": True}


class Spec(BaseModel):
    """Base of the user-written parts: unknown fields are errors (lint catches typos)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, use_enum_values=True)


class Observed(BaseModel):
    """Base of status parts: written by the operator, read leniently."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, use_enum_values=True)


class OutputSource(StrEnum):
    TERMINATION_MESSAGE = "terminationMessage"
    LOGS = "logs"
    ANNOTATION = "annotation"


class EdgeKind(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    ALWAYS = "always"
    CONDITION = "condition"


class Join(StrEnum):
    ALL = "all"
    ANY = "any"


class ExecutionPhase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"


class NodePhase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SKIPPED = "Skipped"
    CANCELLED = "Cancelled"
    WAITING = "Waiting"  # an approval gate waits for its decision (spec.approvals)


class ApprovalDecision(StrEnum):
    APPROVE = "approve"
    DENY = "deny"


TERMINAL_EXECUTION_PHASES = frozenset(
    {ExecutionPhase.SUCCEEDED, ExecutionPhase.FAILED, ExecutionPhase.CANCELLED}
)
FINISHED_NODE_PHASES = frozenset(
    {NodePhase.SUCCEEDED, NodePhase.FAILED, NodePhase.SKIPPED, NodePhase.CANCELLED}
)


class ParamType(StrEnum):
    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    ARRAY = "array"
    OBJECT = "object"


class Param(Spec):
    name: str = Field(
        pattern=PARAM_NAME,
        max_length=63,
        description="Name of the parameter, referenced as $(params.NAME) and in CEL as params.NAME.",
    )
    type: ParamType = Field(
        default=ParamType.STRING,
        description="Type of the value: string (the default; the value is used byte for byte), integer, "
        "number, boolean, array or object (the value, and the default, are JSON text such as \"10\" or "
        "'[\"a\",\"b\"]', checked when an execution starts). CEL sees the typed value; $(params.NAME) "
        "gives its JSON text.",
    )
    default: str | None = Field(
        default=None,
        max_length=limits.MAX_PARAM_VALUE,
        description="Value used when an execution does not set this parameter. Without a default, "
        "every execution must set it.",
    )
    description: str | None = Field(
        default=None, max_length=limits.MAX_DESCRIPTION, description="What the parameter is for."
    )
    secret: bool = Field(
        default=False,
        description="The value is sensitive: an execution must take it from a Secret (spec.paramsFrom), "
        "never inline; it is delivered to the nodes that reference it through the Secret, and never written "
        "to the execution's status, the Job spec, Events or the operator's log. No default allowed.",
    )

    @model_validator(mode="after")
    def _secret_has_no_default(self) -> Param:
        if self.secret and self.default is not None:
            raise ValueError(f"param {self.name!r} is secret and cannot have a default (it would be in the "
                             "Workflow for all to read); remove the default and set it with spec.paramsFrom")
        return self


class NodeDefaults(Spec):
    image: str | None = Field(
        default=None, max_length=limits.MAX_IMAGE, description="Container image of nodes that set none."
    )
    serviceAccountName: str | None = Field(
        default=None,
        max_length=limits.MAX_NAME,
        description="ServiceAccount the node's pod runs as, for nodes that set none.",
    )
    timeoutSeconds: int | None = Field(
        default=None,
        ge=1,
        le=limits.MAX_SECONDS,
        description="Deadline of each node's Job (Job activeDeadlineSeconds), for nodes that set none.",
    )
    retries: int | None = Field(
        default=None,
        ge=0,
        le=20,
        description="How often a failed node's pod is retried (Job backoffLimit), for nodes that set none.",
    )


class OutputSpec(Spec):
    from_: OutputSource = Field(
        default=OutputSource.TERMINATION_MESSAGE,
        alias="from",
        description="Where the node's output is read: terminationMessage (the file $JOBCHAIN_OUTPUT, "
        "which is the container's termination message; at most 4096 bytes), logs (the pod log, up to "
        "1 MiB; over the inline cap it is kept whole in a ConfigMap and status previews its end), "
        "or annotation (the pod's jobchain.dev/output annotation, set by the node "
        "on its own pod). Output that parses as JSON is stored as JSON, otherwise as a string.",
    )


class Edge(Spec):
    @model_validator(mode="before")
    @classmethod
    def _yaml_boolean_on(cls, data: Any) -> Any:
        if isinstance(data, dict) and (True in data or "true" in data or "on" in data):
            raise ValueError(
                "an edge's kind is set with `type:` (success, failure, always, condition); `on:` is not "
                "a field, and YAML 1.1 parsers (kubectl, PyYAML) read a bare `on` key as the boolean true"
            )
        return data

    node: str = Field(pattern=DNS_LABEL, max_length=63, description="Name of the node this edge leads to.")
    type: EdgeKind = Field(
        default=EdgeKind.SUCCESS,
        description="When the edge holds, decided once this node is finished: success (it "
        "Succeeded), failure (it Failed), always (it Succeeded or Failed), condition (it Succeeded "
        "and `when` is true). (Not called `on`: YAML 1.1 parsers such as kubectl's read a bare "
        "`on` key as the boolean true.)",
    )
    when: str | None = Field(
        default=None,
        max_length=limits.MAX_WHEN,
        description="CEL expression, required with type: condition and refused otherwise. It sees "
        "output, input, params, node {phase, exitCode} and nodes (name -> {phase, output}). Use "
        "has(output.key) to test for an optional key.",
    )


class EnvVar(Spec):
    name: str = Field(pattern=ENV_NAME, max_length=limits.MAX_NAME, description="Environment variable name.")
    value: str | None = Field(
        default=None,
        max_length=limits.MAX_TEXT,
        description="Value; $(params.X), $(input.KEY), $(nodes.N.output) ... are substituted.",
    )
    valueFrom: dict[str, Any] | None = Field(
        default=None,
        description="A Kubernetes EnvVarSource (secretKeyRef, configMapKeyRef, fieldRef, ...), "
        "passed to the container as it is.",
        json_schema_extra=FREE_FORM,
    )


class Approval(Spec):
    message: str | None = Field(
        default=None, max_length=limits.MAX_DESCRIPTION,
        description="What the approver is asked (shown in status.waiting, the Event and the dashboard).",
    )
    timeoutSeconds: int | None = Field(
        default=None, ge=1, le=limits.MAX_SECONDS,
        description="Without a decision this many seconds after the gate was reached, it Fails with "
        "reason ApprovalTimeout. Unset: it waits until decided (or the execution's deadline).",
    )


class Node(Spec):
    name: str = Field(
        pattern=DNS_LABEL, max_length=63, description="Name of the node: a DNS-1123 label, unique in the workflow."
    )
    image: str | None = Field(
        default=None, max_length=limits.MAX_IMAGE, description="Container image; defaults.image when unset."
    )
    script: str | None = Field(
        default=None,
        max_length=limits.MAX_TEXT,
        description="Shell script run with /bin/sh -c. Either script or command/args, not both.",
    )
    command: list[Text] | None = Field(
        default=None, max_length=limits.MAX_COMMAND, description="Container entrypoint, as in a Pod."
    )
    args: list[Text] | None = Field(
        default=None, max_length=limits.MAX_ARGS, description="Arguments to the entrypoint, as in a Pod."
    )
    env: list[EnvVar] = Field(
        default_factory=list, max_length=limits.MAX_ENV, description="Extra environment variables."
    )
    resources: dict[str, Any] | None = Field(
        default=None,
        description="Container resources (requests, limits), as in a Pod.",
        json_schema_extra=FREE_FORM,
    )
    output: OutputSpec = Field(default_factory=OutputSpec, description="Where this node's output is read.")
    retries: int | None = Field(
        default=None, ge=0, le=20, description="Pod retries before the node Fails (Job backoffLimit)."
    )
    timeoutSeconds: int | None = Field(
        default=None,
        ge=1,
        le=limits.MAX_SECONDS,
        description="Deadline of the node's Job in seconds (activeDeadlineSeconds).",
    )
    serviceAccountName: str | None = Field(
        default=None, max_length=limits.MAX_NAME, description="ServiceAccount of the node's pod."
    )
    join: Join = Field(
        default=Join.ALL,
        description="With several incoming edges: all (run only if every one holds) or any (run if "
        "at least one holds). Otherwise the node is Skipped.",
    )
    next: list[Edge] = Field(
        default_factory=list,
        max_length=limits.MAX_EDGES,
        description="Edges to the nodes that may run after this one.",
    )
    podTemplate: dict[str, Any] | None = Field(
        default=None,
        description="Escape hatch: a partial pod template (metadata, spec: volumes, nodeSelector, "
        "securityContext, tolerations, ...) merged into the Job's pod template.",
        json_schema_extra=FREE_FORM,
    )
    forEach: str | None = Field(
        default=None,
        max_length=4096,
        description="Fan-out: a CEL expression (variables input, params, nodes) giving a list; the node "
        "runs once per item, each as its own Job. $(item), $(item.KEY), $(item.index), JOBCHAIN_ITEM and "
        "JOBCHAIN_ITEM_INDEX give the item; the node's output is the list of the items' outputs.",
    )
    maxParallel: int | None = Field(
        default=None, ge=1, le=100,
        description="forEach: at most this many items of this node run at once (besides parallelism).",
    )
    failFast: bool = Field(
        default=False,
        description="forEach: after an item fails, start no further item (running ones finish).",
    )
    maxItems: int | None = Field(
        default=None, ge=1, le=5000,
        description="forEach: more items than this fail the node before any Job starts (default 1000).",
    )
    approval: Approval | None = Field(
        default=None,
        description="An approval gate instead of script/command: no Job runs; the node waits (phase Waiting) "
        "until spec.approvals of the execution decides it. Approve: it Succeeds with output "
        '{"approved": true, "message": ...}; deny or timeout: it Fails (reason Denied or ApprovalTimeout).',
    )
    outputSchema: dict[str, Any] | None = Field(
        default=None,
        description="The shape of the node's output, as a JSON Schema subset (type: string, integer, number, "
        "boolean, array, object, null; properties; items; required; additionalProperties; description): the "
        "`when` and forEach expressions that read it (`output`, `nodes.NAME.output`) are type-checked against "
        "it when the Workflow is validated. Unset: the output is dynamic (anything).",
        json_schema_extra=FREE_FORM,
    )


class WorkflowSpec(Spec):
    params: list[Param] = Field(
        default_factory=list, max_length=limits.MAX_PARAMS, description="Declared inputs with their defaults."
    )
    defaults: NodeDefaults = Field(
        default_factory=NodeDefaults, description="Applied to every node that does not set its own value."
    )
    parallelism: int = Field(
        default=1, ge=1, le=100, description="How many ready nodes may run at once; 1 runs one Job after another."
    )
    outputLimitBytes: int | None = Field(
        default=None,
        ge=256,
        le=262144,
        description="Cap on each node output kept in status (default 32768). Larger outputs (up to "
        "1 MiB) are kept whole in a ConfigMap (status.nodes[].outputRef); status keeps a preview marked "
        "outputTruncated.",
    )
    nodes: list[Node] = Field(min_length=1, max_length=limits.MAX_NODES, description="The steps of the workflow.")
    maxConcurrentExecutions: int | None = Field(
        default=None,
        ge=1,
        le=10000,
        description="At most this many executions of this Workflow (by workflowRef) run at once; the "
        "others stay Pending with reason Queued and start in creation order as running ones finish. "
        "Unset: no limit.",
    )
    finally_: list[Node] = Field(
        default_factory=list,
        alias="finally",
        max_length=limits.MAX_FINALLY_NODES,
        description="Nodes that run once the main graph (spec.nodes) has ended for any reason: every node "
        "finished or skipped, a failure, spec.stop, or the deadline. Same fields as spec.nodes; edges among "
        "them are allowed, edges from spec.nodes into them are not. They see $(execution.phase), "
        "$(execution.reason), $(execution.failedNodes) and the outputs of the main nodes. spec.cancel skips "
        "them. The execution keeps the main graph's phase; a failed finally node fails a run that had "
        "Succeeded (reason FinallyFailed).",
    )
    finallyTimeoutSeconds: int = Field(
        default=300,
        ge=1,
        le=limits.MAX_SECONDS,
        description="How long the finally nodes may run, counted from when the main graph ended (so an "
        "execution's deadline cannot starve them). Past it, their running Jobs are deleted.",
    )


class WorkflowRef(Spec):
    name: str = Field(max_length=limits.MAX_NAME, description="Name of a Workflow in the execution's namespace.")


class SecretKeySelector(Spec):
    name: str = Field(max_length=253, description="Name of a Secret in the execution's namespace.")
    key: str = Field(pattern=r"^[-._a-zA-Z0-9]+$", max_length=253, description="Key in the Secret's data.")


class ParamSource(Spec):
    secretKeyRef: SecretKeySelector = Field(description="The Secret key that holds the param's value.")


class ParamFrom(Spec):
    name: str = Field(pattern=PARAM_NAME, max_length=63, description="Name of the workflow's param.")
    valueFrom: ParamSource = Field(description="Where the value is: a Secret key.")


class ResumeFrom(Spec):
    name: str = Field(max_length=253, description="Name of the execution to resume from: Failed or Cancelled, "
                      "or (with node) also Succeeded.")
    node: str | None = Field(
        default=None,
        pattern=DNS_LABEL,
        max_length=63,
        description="Rerun from this node: it and every node downstream of it run again; the nodes that do "
        "not depend on it (directly or not) and Succeeded there are reused. Unset: rerun the nodes that did "
        "not succeed and what depends on them. Must be a node of that execution's Workflow snapshot.",
    )


class ApprovalGiven(Spec):
    decision: ApprovalDecision = Field(description="approve or deny.")
    message: str | None = Field(
        default=None, max_length=limits.MAX_DESCRIPTION,
        description="Why, and who decided: kept in the gate's output and status message.",
    )


class WorkflowExecutionSpec(Spec):
    workflowRef: WorkflowRef | None = Field(
        default=None, description="The Workflow to run, in the same namespace. Or set `workflow`."
    )
    workflow: WorkflowSpec | None = Field(
        default=None, description="An inline Workflow spec to run, instead of workflowRef."
    )
    params: dict[str, ParamValue] = Field(
        default_factory=dict,
        max_length=limits.MAX_PARAMS,
        description="Values of the workflow's params. Fixed once the execution is created. With resumeFrom: "
        "they override the resumed execution's params for the nodes that run again (reused nodes keep theirs).",
    )
    paramsFrom: list[ParamFrom] = Field(
        default_factory=list,
        max_length=limits.MAX_PARAMS,
        description="Params whose values come from a Secret (valueFrom.secretKeyRef): secret params. The "
        "operator never reads them into status; each node that references one gets it as an environment "
        "variable from the Secret. Fixed once the execution is created.",
    )
    timeoutSeconds: int | None = Field(
        default=None,
        ge=1,
        le=limits.MAX_SECONDS,
        description="Deadline of the whole execution: when it passes, running Jobs are deleted and "
        "the execution Fails with reason DeadlineExceeded.",
    )
    cancel: bool = Field(
        default=False,
        description="Set true to terminate the execution: running Jobs are deleted, unstarted nodes "
        "become Cancelled, finally nodes do not run (reason Cancelled). Also after spec.stop.",
    )
    stop: bool = Field(
        default=False,
        description="Set true to stop the execution gracefully: nothing new starts, running nodes finish "
        "and are recorded, then the finally nodes run; the execution ends Cancelled with reason Stopped.",
    )
    ttlSecondsAfterFinished: int | None = Field(
        default=None,
        ge=0,
        le=limits.MAX_SECONDS,
        description="Delete this execution (and with it its Jobs and pods) this many seconds after "
        "it finished. Unset: kept until deleted.",
    )
    resumeFrom: ResumeFrom | None = Field(
        default=None,
        description="Retry a Failed or Cancelled execution from where it failed (or any finished one from "
        "resumeFrom.node): every node that Succeeded there, with nothing upstream of it running again, is "
        "copied (phase, output, input; marked reused) and only the rest runs (of a failed forEach node, only "
        "the items that did not succeed), with that execution's Workflow snapshot and params (spec.params "
        "override them). Unset workflowRef, paramsFrom, timeoutSeconds and ttlSecondsAfterFinished are taken "
        "from that execution. That execution is not changed. Refused (InvalidResume) when it does not exist, "
        "is still running, Succeeded without node, names another workflowRef, was deleted or re-created "
        "since first read, or when its secret params are not in spec.paramsFrom.",
    )
    approvals: dict[str, ApprovalGiven] = Field(
        default_factory=dict,
        max_length=limits.MAX_NODES,
        description="Decisions of approval gates, by node name (`jobchain approve|deny`, or a merge patch). A "
        "decision given before its gate is reached waits for it; one given after the gate was decided is "
        "ignored (a Warning Event says so).",
    )


class Condition(Observed):
    type: str = Field(description="Type of the condition: Succeeded (executions) or Ready (workflows).")
    status: str = Field(description="True, False or Unknown.")
    reason: str = Field(default="", description="Machine-readable reason in CamelCase.")
    message: str = Field(default="", description="What happened, for people.")
    lastTransitionTime: str | None = Field(default=None, description="When status last changed.")
    observedGeneration: int | None = Field(default=None, description="Generation this condition is about.")


class OutputRef(Observed):
    configMap: str = Field(description="The ConfigMap holding the whole output (owned by the execution).")
    key: str = Field(description="Its key: the output as compact JSON text.")
    bytes: int = Field(description="Size of that JSON text.")
    sha256: str | None = Field(
        default=None, description="sha256 (hex) of that JSON text, recorded when it was written; the "
        "operator checks it whenever it adopts or reads the ConfigMap back.")


class ItemCounts(Observed):
    total: int = Field(default=0, description="Items of the forEach list.")
    succeeded: int = Field(default=0, description="Items that succeeded.")
    failed: int = Field(default=0, description="Items that failed.")
    running: int = Field(default=0, description="Items whose Job runs.")


class ItemStatus(Observed):
    index: int = Field(description="0-based index of the item in the forEach list.")
    phase: NodePhase = Field(default=NodePhase.RUNNING, description="Running, Succeeded or Failed.")
    jobName: str | None = Field(default=None, description="The item's Job.")
    exitCode: int | None = Field(default=None, description="Exit code of the item's container, when not 0.")
    finishedAt: str | None = Field(default=None, description="When the item finished.")
    preview: str | None = Field(default=None, description="The start of the item's output (the node's output "
                                "list holds it, or a preview of it kept whole as outputBytes says).")
    message: str | None = Field(default=None, description="Why the item failed (unset when it succeeded).")
    outputBytes: int | None = Field(
        default=None,
        description="Set when the item's output (over its share of the status budget, or over 64 KiB) is kept "
        "whole in its own ConfigMap, named as its Job with -output (key output.json): its size. The node's "
        "output list then holds a preview of it; once the node finishes, its outputRef holds the whole list.",
    )


class NodeStatus(Observed):
    name: str = Field(description="Node name.")
    phase: NodePhase = Field(default=NodePhase.PENDING, description="Phase of the node.")
    jobName: str | None = Field(default=None, description="The node's Job.")
    podName: str | None = Field(default=None, description="The pod whose result was recorded.")
    startedAt: str | None = Field(default=None, description="When the node's Job was created.")
    finishedAt: str | None = Field(default=None, description="When the node finished.")
    exitCode: int | None = Field(default=None, description="Exit code of the node's container.")
    retries: int = Field(default=0, description="Failed pods retried before the result.")
    inputFrom: str | None = Field(default=None, description="The predecessor whose output is this node's input.")
    edgesDecided: str | None = Field(
        default=None,
        pattern=r"^[01]*$",
        max_length=limits.MAX_NODES,
        description="While the node waits: whether each of its first incoming edges held (1) or not (0), "
        "as decided by an earlier pass (edges in the order of the nodes that declare them, then of their "
        "`next`). Kept for a node with condition edges, so that a condition is decided once (a pass that "
        "ran out of its CEL budget leaves the rest to the next one). Cleared when the node is decided.",
    )
    output: Any = Field(default=None, description="The node's output (any JSON).", json_schema_extra=FREE_FORM)
    outputTruncated: bool = Field(
        default=False,
        description="True when `output` is not the whole value: a preview of an output kept whole in "
        "outputRef, or the start of an output too large to keep (the node then failed).",
    )
    outputRef: OutputRef | None = Field(
        default=None,
        description="Where an output over the inline cap (or over 64 KiB) is kept whole: a ConfigMap "
        "owned by the execution, given to the next node as $JOBCHAIN_INPUT_FILE.",
    )
    message: str = Field(default="", description="Why the node ended as it did.")
    reused: bool = Field(
        default=False,
        description="True when this node's result was copied from the execution named in spec.resumeFrom "
        "instead of being run again.",
    )
    items: ItemCounts | None = Field(default=None, description="forEach: how many items there are and how "
                                     "they stand.")
    finally_: bool = Field(default=False, alias="finally",
                           description="True for a node of spec.finally (listed after the main nodes).")
    reason: str | None = Field(
        default=None, description="Approval gates: Approved, Denied or ApprovalTimeout, once decided.")
    ignoredDecision: str | None = Field(
        default=None, description="Approval gates: a decision in spec.approvals given after the gate was "
        "decided otherwise, which was ignored.")
    itemResults: list[ItemStatus] | None = Field(
        default=None, description="forEach: each started item (index, phase, Job, output preview, message)."
    )


class ResumedFrom(Observed):
    """The execution a retry resumes, as first read (pinned): the rest of the retry is decided from this."""

    name: str = Field(description="The execution resumed (spec.resumeFrom.name).")
    uid: str = Field(description="Its uid when first read: a retry never mixes two executions of that name.")
    node: str | None = Field(default=None, description="The node rerun from (spec.resumeFrom.node), if any.")
    params: dict[str, str] | None = Field(
        default=None, description="That execution's params: what the reused nodes ran with (status.params holds "
        "what the nodes that run again get).")
    workflowRef: str | None = Field(default=None, description="That execution's spec.workflowRef.name, inherited.")
    paramsFrom: list[ParamFrom] | None = Field(
        default=None, description="That execution's spec.paramsFrom, inherited when the retry sets none.")
    timeoutSeconds: int | None = Field(
        default=None, description="That execution's spec.timeoutSeconds, inherited when the retry sets none.")
    ttlSecondsAfterFinished: int | None = Field(
        default=None, description="That execution's spec.ttlSecondsAfterFinished, inherited when the retry "
        "sets none.")


class Outcome(Observed):
    phase: ExecutionPhase = Field(description="The main graph's phase: Succeeded, Failed or Cancelled.")
    reason: str = Field(default="", description="Its reason (NodeFailed, DeadlineExceeded, Stopped, ...).")
    message: str = Field(default="", description="What happened in the main graph.")
    failedNodes: list[str] = Field(default_factory=list, description="The main nodes that Failed.")
    endedAt: str | None = Field(default=None, description="When the main graph ended: the finally nodes' "
                                "finallyTimeoutSeconds counts from here.")


class WaitingGate(Observed):
    name: str = Field(description="The gate node.")
    message: str = Field(default="", description="What the approver is asked.")
    since: str | None = Field(default=None, description="When the gate was reached.")
    deadline: str | None = Field(default=None, description="When it times out (unset: never).")


class ExecutionStatus(Observed):
    phase: ExecutionPhase = Field(default=ExecutionPhase.PENDING, description="Phase of the execution.")
    reason: str = Field(
        default="",
        description="Machine-readable reason: NodeFailed, DeadlineExceeded, InvalidWorkflow, "
        "WorkflowNotFound, InvalidParams, ConditionError, Cancelled, Stopped, FinallyFailed, Succeeded.",
    )
    message: str = Field(default="", description="What happened and what to do, for people.")
    startedAt: str | None = Field(default=None, description="When the execution started.")
    finishedAt: str | None = Field(default=None, description="When it finished.")
    duration: str | None = Field(default=None, description="How long it took, once finished.")
    observedGeneration: int | None = Field(default=None, description="Generation last acted upon.")
    progress: str | None = Field(default=None, description="Finished nodes / all nodes.")
    running: str | None = Field(default=None, description="Names of the running nodes.")
    workflowName: str | None = Field(default=None, description="The Workflow the snapshot was taken from.")
    workflowSpec: WorkflowSpec | None = Field(
        default=None,
        description="Snapshot of the Workflow spec taken at start: editing the Workflow never "
        "changes a running execution.",
    )
    params: dict[str, str] | None = Field(
        default=None, description="Resolved parameter values (secret params are not here: see secretParams)."
    )
    secretParams: list[str] | None = Field(
        default=None, description="Names of the secret params (their values are never in status)."
    )
    resumedFrom: ResumedFrom | None = Field(
        default=None, description="A retry (spec.resumeFrom): the execution it resumes, pinned when first read, "
        "with its params and the spec fields the retry inherits.")
    nodes: list[NodeStatus] = Field(default_factory=list, description="Result of every node, in declaration order.")
    waiting: list[WaitingGate] | None = Field(
        default=None, description="Approval gates waiting for a decision (spec.approvals).")
    conditions: list[Condition] = Field(default_factory=list, description="Succeeded condition.")
    outcome: Outcome | None = Field(
        default=None,
        description="The main graph's outcome, recorded when it ended and before any finally node started; "
        "the execution's phase while finally nodes run is Running, and then this phase.",
    )


class ConcurrencyPolicy(StrEnum):
    ALLOW = "Allow"
    FORBID = "Forbid"
    REPLACE = "Replace"


class ExecutionTemplate(Spec):
    """What a schedule's executions run: the spec of a WorkflowExecution, less its run-time switches."""

    workflowRef: WorkflowRef | None = Field(
        default=None, description="The Workflow to run, in the schedule's namespace. Or set `workflow`."
    )
    workflow: WorkflowSpec | None = Field(default=None, description="An inline Workflow spec, instead of workflowRef.")
    params: dict[str, str] = Field(default_factory=dict, max_length=100, description="Values of the workflow's params.")
    paramsFrom: list[ParamFrom] = Field(
        default_factory=list, max_length=100, description="Params whose values come from a Secret, as in an execution."
    )
    timeoutSeconds: int | None = Field(default=None, ge=1, description="Deadline of each execution, in seconds.")
    ttlSecondsAfterFinished: int | None = Field(
        default=None, ge=0, description="Delete each execution this many seconds after it finished."
    )


# What the schema can say of a schedule: a macro, @every DURATION or five fields. The rest (ranges,
# names, a duration of at least 10s) is checked by the operator (Ready=False) and by `jobchain lint`.
SCHEDULE_PATTERN = r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|@every [0-9.a-zµ]+|(\S+ ){4}\S+)$"
TIME_ZONE_PATTERN = r"^[A-Za-z][-A-Za-z0-9_+]*(/[-A-Za-z0-9_+]+)*$"


class WorkflowScheduleSpec(Spec):
    schedule: str = Field(
        pattern=SCHEDULE_PATTERN,
        max_length=200,
        description="When to run: five cron fields (minute hour day-of-month month day-of-week, as in a "
        "CronJob), a macro (@yearly, @monthly, @weekly, @daily, @hourly) or `@every DURATION` (a Go duration "
        "such as 30s, 5m, 1h30m; at least 10s, whole seconds; times are multiples of it since the Unix epoch).",
    )
    timeZone: str | None = Field(
        default=None,
        pattern=TIME_ZONE_PATTERN,
        max_length=64,
        description="IANA time zone the cron fields are read in (Europe/Berlin); default UTC. On the day "
        "clocks go forward, a time in the skipped hour runs when the clocks have jumped; on the day they "
        "go back, a time in the repeated hour runs once, at its first occurrence.",
    )
    concurrencyPolicy: ConcurrencyPolicy = Field(
        default=ConcurrencyPolicy.ALLOW,
        description="When a time comes while an execution of this schedule still runs: Allow (start "
        "another), Forbid (skip this time), Replace (cancel the running one, start the new one).",
    )
    startingDeadlineSeconds: int | None = Field(
        default=None,
        ge=0,
        description="A time missed (the operator was down, the schedule suspended) runs late only if at "
        "most this many seconds late; only the most recent missed time ever runs. Unset: no deadline.",
    )
    suspend: bool = Field(default=False, description="True: start no new executions (running ones go on).")
    successfulExecutionsHistoryLimit: int = Field(
        default=3, ge=0, le=1000, description="How many Succeeded executions of this schedule to keep."
    )
    failedExecutionsHistoryLimit: int = Field(
        default=1, ge=0, le=1000, description="How many Failed or Cancelled executions of this schedule to keep."
    )
    executionTemplate: ExecutionTemplate = Field(
        description="The spec of each execution: workflowRef or workflow, params, paramsFrom, "
        "timeoutSeconds, ttlSecondsAfterFinished."
    )


class WorkflowScheduleStatus(Observed):
    observedGeneration: int | None = Field(default=None, description="Generation last acted upon.")
    lastScheduleTime: str | None = Field(default=None, description="The last time an execution was started for.")
    lastSuccessfulTime: str | None = Field(default=None, description="When an execution last Succeeded.")
    lastSkippedTime: str | None = Field(
        default=None, description="The last time skipped (concurrencyPolicy Forbid, or past startingDeadlineSeconds)."
    )
    nextScheduleTime: str | None = Field(
        default=None, description="The next time an execution starts (unset: suspended)."
    )
    active: list[str] = Field(default_factory=list, description="Executions of this schedule not finished yet.")
    activeCount: int = Field(default=0, description="How many executions of this schedule are not finished yet.")
    conditions: list[Condition] = Field(default_factory=list, description="Ready condition.")


class WorkflowStatus(Observed):
    observedGeneration: int | None = Field(default=None, description="Generation last validated.")
    nodeCount: int | None = Field(default=None, description="Number of nodes.")
    conditions: list[Condition] = Field(default_factory=list, description="Ready condition.")


class ObjectMeta(Observed):
    name: str | None = None
    generateName: str | None = None
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class Workflow(Spec):
    apiVersion: str = API_VERSION
    kind: str = KIND_WORKFLOW
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: WorkflowSpec
    status: WorkflowStatus | None = None


class WorkflowSchedule(Spec):
    apiVersion: str = API_VERSION
    kind: str = KIND_SCHEDULE
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: WorkflowScheduleSpec
    status: WorkflowScheduleStatus | None = None


class WorkflowExecution(Spec):
    apiVersion: str = API_VERSION
    kind: str = KIND_EXECUTION
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: WorkflowExecutionSpec
    status: ExecutionStatus | None = None
