"""The planner: from an execution's spec, its status and the Jobs observed, what to do next.

`plan()` is the whole state machine of a WorkflowExecution, and it is pure: no kopf, no
Kubernetes client, the clock passed in. The controller reads what is there, calls it,
creates and deletes what it says, and writes the status it returns, once. Because the
decision depends only on its inputs, a handler retried by kopf or an operator restarted
half-way reaches the same decision: a node with an observed Job is never given a second
one, and a finished node or execution is never changed again.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from jobchain.api.errors import describe_validation_error
from jobchain.api.models import (
    FINISHED_NODE_PHASES,
    TERMINAL_EXECUTION_PHASES,
    Condition,
    EdgeKind,
    ExecutionPhase,
    ExecutionStatus,
    Join,
    NodePhase,
    NodeStatus,
    WorkflowExecutionSpec,
    WorkflowSpec,
)
from jobchain.engine import cel, refs
from jobchain.engine.graph import Graph, InEdge, node_texts
from jobchain.engine.outputs import (
    DEFAULT_OUTPUT_LIMIT,
    MIN_OUTPUT_SHARE,
    STATUS_OUTPUT_BUDGET,
    parse_output,
    stored_size,
)
from jobchain.engine.refs import Scope, UnresolvedReference
from jobchain.engine.render import ExecutionRef, job_name, render_job
from jobchain.engine.timefmt import format_duration, iso, parse_time
from jobchain.engine.types import Event, ExecutionInput, JobState, ObservedJob, Plan, WorkflowLookup
from jobchain.engine.validation import join, resolve_params, validate_params, validate_workflow


class _Run:
    """One planning pass over a copy of the status."""

    def __init__(self, execution: ExecutionInput, observed: Mapping[str, ObservedJob], now: datetime,
                 output_limit: int) -> None:
        self.execution = execution
        self.observed = observed
        self.now = now
        self.status = execution.status.model_copy(deep=True)
        self.plan = Plan(status=self.status)
        self.output_limit = output_limit
        self.unrestored: set[str] = set()  # adopted nodes whose inputFrom is not restored yet

    # ---- start -------------------------------------------------------------------------
    def start(self, lookup: WorkflowLookup | None) -> bool:
        """Takes the Workflow snapshot and resolves params; False when the execution failed."""
        spec = self.execution.spec
        status = self.status
        status.startedAt = status.startedAt or iso(self.now)
        if spec.workflow is not None:
            workflow_name, workflow = self.execution.name, spec.workflow
        elif lookup is None or not lookup.found:
            name = spec.workflowRef.name if spec.workflowRef else "(none)"
            self.finish(ExecutionPhase.FAILED, "WorkflowNotFound",
                        f"Workflow {name!r} not found in namespace {self.execution.namespace!r}; "
                        "create it first or fix spec.workflowRef.name, then create a new execution")
            return False
        elif lookup.spec is None:
            self.finish(ExecutionPhase.FAILED, "InvalidWorkflow",
                        f"Workflow {lookup.name!r} is invalid: {'; '.join(lookup.problems)}. "
                        "Fix the Workflow, then create a new execution")
            return False
        else:
            workflow_name, workflow = lookup.name, lookup.spec
        status.workflowName = workflow_name
        where = "spec.workflow" if spec.workflow is not None else f"Workflow {workflow_name!r}"
        problems = validate_workflow(workflow, prefix="spec")
        if problems:
            self.finish(ExecutionPhase.FAILED, "InvalidWorkflow",
                        f"{where} is invalid: {join(problems)}. Fix it, then create a new execution")
            return False
        problems = validate_params(spec.params, workflow.params, where)
        if problems:
            self.finish(ExecutionPhase.FAILED, "InvalidParams", join(problems))
            return False
        status.params = resolve_params(spec.params, workflow.params)
        status.workflowSpec = workflow
        status.nodes = [NodeStatus(name=n.name) for n in workflow.nodes]
        status.phase = ExecutionPhase.RUNNING
        status.reason = "Running"
        self.plan.events.append(Event("Normal", "ExecutionStarted",
                                      f"Started {where} with {len(workflow.nodes)} node(s)"))
        return True

    # ---- helpers -----------------------------------------------------------------------
    @property
    def workflow(self) -> WorkflowSpec:
        assert self.status.workflowSpec is not None
        return self.status.workflowSpec

    def nodes(self) -> dict[str, NodeStatus]:
        return {n.name: n for n in self.status.nodes}

    def ref(self) -> ExecutionRef:
        return ExecutionRef(self.execution.name, self.execution.namespace, self.execution.uid,
                            self.status.workflowName or self.execution.name)

    # ---- folding observed Jobs into node status ----------------------------------------
    def fold_observed(self) -> None:
        limit_setting = self.workflow.outputLimitBytes or self.output_limit
        outputs_used = sum(stored_size(n.output) for n in self.status.nodes)
        for node in self.status.nodes:
            if node.phase in FINISHED_NODE_PHASES:
                continue
            seen = self.observed.get(node.name)
            if seen is None:
                if node.phase == NodePhase.RUNNING:
                    node.phase = NodePhase.FAILED
                    node.finishedAt = iso(self.now)
                    node.message = (f"Job {node.jobName} disappeared before its result was read "
                                    "(deleted outside jobchain?)")
                    self.plan.events.append(Event("Warning", "NodeFailed", f"Node {node.name}: {node.message}"))
                continue
            node.jobName = seen.name
            node.startedAt = node.startedAt or iso(self.now)
            if seen.state == JobState.RUNNING:
                node.phase = NodePhase.RUNNING
                node.retries = seen.retries
                continue
            budget_left = max(MIN_OUTPUT_SHARE, STATUS_OUTPUT_BUDGET - outputs_used)
            limit = min(limit_setting, budget_left)
            node.output, node.outputTruncated = parse_output(seen.raw_output, limit)
            outputs_used += stored_size(node.output)
            node.podName = seen.pod_name
            node.exitCode = seen.exit_code
            node.retries = seen.retries
            node.finishedAt = seen.finished_at or iso(self.now)
            node.message = seen.message
            if node.outputTruncated:
                note = f"output truncated to {limit} bytes"
                node.message = f"{node.message}; {note}" if node.message else note
            if seen.state == JobState.SUCCEEDED:
                node.phase = NodePhase.SUCCEEDED
                self.plan.events.append(Event("Normal", "NodeSucceeded", f"Node {node.name} succeeded"))
            else:
                node.phase = NodePhase.FAILED
                self.plan.events.append(Event("Warning", "NodeFailed", f"Node {node.name} failed: {node.message}"))
        # A node with a Job and incoming edges got its input when it started; none recorded means
        # the pass that started it lost its status write (it was adopted, now or earlier).
        graph = Graph.of(self.workflow)
        self.unrestored = {n.name for n in self.status.nodes
                           if n.jobName and n.inputFrom is None and graph.incoming[n.name]}
        self.restore_inputs()

    def restore_inputs(self) -> None:
        """inputFrom of nodes whose Job was created by a pass whose status write was lost.

        Their predecessors had finished when the Job was created and never change, so the
        edges that held then hold now: the same input as without the crash, which conditions
        on the node's out-edges (`input`) depend on. A predecessor still Pending here was
        skipped or failed before starting in the lost pass (it has no Job); schedule() decides
        it again, and until then the node stays in `unrestored` and its out-edges undecided.
        """
        if not self.unrestored:
            return
        graph = Graph.of(self.workflow)
        nodes = self.nodes()
        # Upstream first (a node has more upstream nodes than any of its predecessors).
        for name in sorted(self.unrestored, key=lambda n: (len(graph.upstream(n)), n)):
            incoming = graph.incoming[name]
            if not self.decided(incoming, nodes):
                continue
            held = [e for e in incoming if self.holds_or_false(e, name, nodes)]
            nodes[name].inputFrom = self.input_source(held, nodes)
            self.unrestored.discard(name)

    def input_source(self, held: list[InEdge], nodes: dict[str, NodeStatus]) -> str | None:
        """The predecessor whose edge held that finished last (declaration order breaks ties)."""
        order = [n.name for n in self.workflow.nodes]
        source = max(held, key=lambda e: (nodes[e.source].finishedAt or "", order.index(e.source)), default=None)
        return source.source if source else None

    # ---- stopping ----------------------------------------------------------------------
    def stop(self, phase: ExecutionPhase, reason: str, message: str) -> None:
        """Cancel, deadline, condition error: delete running Jobs, cancel what has not finished."""
        # A Job planned earlier in this pass belongs to a node cancelled now: neither it nor its
        # NodeStarted event happens.
        dropped = {job["metadata"]["name"] for job in self.plan.create}
        self.plan.create.clear()
        started = {f"as Job {name}" for name in dropped}
        self.plan.events = [e for e in self.plan.events
                            if not (e.reason == "NodeStarted" and any(e.message.endswith(s) for s in started))]
        for node in self.status.nodes:
            if node.phase in FINISHED_NODE_PHASES:
                continue
            seen = self.observed.get(node.name)
            if seen is not None and seen.state == JobState.RUNNING:
                self.plan.delete.append(seen.name)
            if node.phase == NodePhase.RUNNING:
                node.finishedAt = iso(self.now)
            node.phase = NodePhase.CANCELLED
            node.message = f"not finished: {reason}"
        self.finish(phase, reason, message)

    def finish(self, phase: ExecutionPhase, reason: str, message: str) -> None:
        status = self.status
        status.phase = phase
        status.reason = reason
        status.message = message
        status.finishedAt = iso(self.now)
        started = parse_time(status.startedAt) or self.now
        status.duration = format_duration((self.now - started).total_seconds())
        kind = "Normal" if phase == ExecutionPhase.SUCCEEDED else "Warning"
        self.plan.events.append(Event(kind, f"Execution{phase}", message))
        # Jobs the status does not know of (created before a crash lost the status write) end too.
        for seen in self.observed.values():
            if seen.state == JobState.RUNNING and seen.name not in self.plan.delete:
                self.plan.delete.append(seen.name)

    # ---- edges and readiness -----------------------------------------------------------
    def decided(self, incoming: list[InEdge], nodes: dict[str, NodeStatus]) -> bool:
        """All incoming edges are decided: every predecessor finished, with its own input known."""
        return not any(nodes[e.source].phase not in FINISHED_NODE_PHASES or e.source in self.unrestored
                       for e in incoming)

    def holds_or_false(self, edge: InEdge, target: str, nodes: dict[str, NodeStatus]) -> bool:
        """edge_holds, with a condition that errs counted as not holding (for restoring inputs only)."""
        try:
            return self.edge_holds(edge, target, nodes)
        except cel.CelError:
            return False

    def edge_holds(self, edge: InEdge, target: str, nodes: dict[str, NodeStatus]) -> bool:
        source = nodes[edge.source]
        if source.phase == NodePhase.SUCCEEDED:
            if edge.kind in (EdgeKind.SUCCESS, EdgeKind.ALWAYS):
                return True
            if edge.kind == EdgeKind.CONDITION:
                return self.condition(edge, source, nodes)
            return False
        if source.phase == NodePhase.FAILED:
            return edge.kind in (EdgeKind.FAILURE, EdgeKind.ALWAYS)
        return False  # Skipped or Cancelled: holds for nothing

    def condition(self, edge: InEdge, source: NodeStatus, nodes: dict[str, NodeStatus]) -> bool:
        assert edge.when is not None
        variables = {
            "output": source.output,
            "input": nodes[source.inputFrom].output if source.inputFrom in nodes else None,
            "params": dict(self.status.params or {}),
            "node": {"name": source.name, "phase": str(source.phase), "exitCode": source.exitCode},
            "nodes": {n.name: {"phase": str(n.phase), "output": n.output} for n in self.status.nodes},
        }
        return cel.evaluate_bool(edge.when, variables)

    def schedule(self) -> None:
        graph = Graph.of(self.workflow)
        order = [n.name for n in self.workflow.nodes]
        changed = True
        while changed and self.status.phase == ExecutionPhase.RUNNING:
            changed = False
            self.restore_inputs()
            nodes = self.nodes()
            running = sum(1 for n in self.status.nodes if n.phase == NodePhase.RUNNING)
            ready: list[tuple[str, list[InEdge]]] = []
            for name in order:
                node = nodes[name]
                if node.phase != NodePhase.PENDING:
                    continue
                incoming = graph.incoming[name]
                if not self.decided(incoming, nodes):
                    continue
                held: list[InEdge] = []
                for edge in incoming:
                    try:
                        if self.edge_holds(edge, name, nodes):
                            held.append(edge)
                    except cel.CelError as exc:
                        where = f"spec.nodes[{order.index(edge.source)}].next[{edge.index}]"
                        self.stop(ExecutionPhase.FAILED, "ConditionError",
                                  f"{where} ({edge.source} -> {name}) when `{edge.when}`: {exc}")
                        return
                join = Join(self.workflow.nodes[order.index(name)].join)
                runs = not incoming or (len(held) == len(incoming) if join == Join.ALL else bool(held))
                if not runs:
                    node.phase = NodePhase.SKIPPED
                    node.finishedAt = iso(self.now)
                    node.message = "skipped: " + ", ".join(
                        f"{e.source} ({e.kind}) {'held' if e in held else 'did not hold'}" for e in incoming
                    ) + f" (join: {join})"
                    changed = True
                    continue
                ready.append((name, held))
            if changed:
                # A skip can make an earlier-declared node ready: decide every node before starting any,
                # so ready nodes start in declaration order.
                continue
            for name, held in ready:
                started = self.start_node(name, held, nodes, slot_free=running < self.workflow.parallelism)
                if started:
                    running += 1
                elif started is False:
                    changed = True  # failed before starting: its out-edges are decided now

    def start_node(self, name: str, held: list[InEdge], nodes: dict[str, NodeStatus], slot_free: bool) -> bool | None:
        """Renders and plans the node's Job: True when started, None when it waits for a slot.

        False when it failed before starting (a reference with no value): that needs no slot,
        so it happens at once, also when a pass that lost its status write is replayed with
        more Jobs running than at first.
        """
        node = nodes[name]
        spec_node = next(n for n in self.workflow.nodes if n.name == name)
        if not slot_free and not any(next(refs.find(text), None) for _, text in node_texts(spec_node)):
            return None  # nothing that could fail: no need to render it yet
        source = self.input_source(held, nodes)
        ran = {n.name: n.output for n in self.status.nodes if n.phase in (NodePhase.SUCCEEDED, NodePhase.FAILED)}
        scope = Scope(
            params=dict(self.status.params or {}),
            execution_name=self.execution.name,
            namespace=self.execution.namespace,
            input=nodes[source].output if source else None,
            has_input=source is not None,
            outputs=ran,
        )
        try:
            job = render_job(self.ref(), self.workflow, spec_node, scope)
        except UnresolvedReference as exc:
            node.inputFrom = source
            node.phase = NodePhase.FAILED
            node.startedAt = node.finishedAt = iso(self.now)
            node.message = f"unresolved reference {exc}"
            self.plan.events.append(Event("Warning", "NodeFailed", f"Node {name}: {node.message}"))
            return False
        if not slot_free:
            return None
        node.inputFrom = source
        node.phase = NodePhase.RUNNING
        node.jobName = job["metadata"]["name"]
        node.startedAt = iso(self.now)
        self.plan.create.append(job)
        self.plan.events.append(Event("Normal", "NodeStarted", f"Started node {name} as Job {node.jobName}"))
        return True

    def conclude(self) -> None:
        if self.status.phase != ExecutionPhase.RUNNING:
            return
        if any(n.phase in (NodePhase.PENDING, NodePhase.RUNNING) for n in self.status.nodes):
            return
        handled = {
            n.name for n in self.workflow.nodes
            if any(e.type in (EdgeKind.FAILURE, EdgeKind.ALWAYS) for e in n.next)
        }
        failed = [n for n in self.status.nodes if n.phase == NodePhase.FAILED]
        unhandled = [n for n in failed if n.name not in handled]
        counts = {p: sum(1 for n in self.status.nodes if n.phase == p) for p in NodePhase}
        summary = (f"{counts[NodePhase.SUCCEEDED]} succeeded, {counts[NodePhase.FAILED]} failed, "
                   f"{counts[NodePhase.SKIPPED]} skipped")
        if unhandled:
            detail = "; ".join(f"{n.name}: {n.message or 'failed'}" for n in unhandled)
            self.finish(ExecutionPhase.FAILED, "NodeFailed",
                        f"node(s) {', '.join(n.name for n in unhandled)} failed ({detail}); {summary}")
        else:
            self.finish(ExecutionPhase.SUCCEEDED, "Succeeded", f"all nodes finished: {summary}")

    def summarize(self) -> None:
        status = self.status
        status.observedGeneration = self.execution.generation
        if status.nodes:
            done = sum(1 for n in status.nodes if n.phase in FINISHED_NODE_PHASES)
            status.progress = f"{done}/{len(status.nodes)}"
        running = [n.name for n in status.nodes if n.phase == NodePhase.RUNNING]
        status.running = ",".join(running) if running else None
        cond_status = {ExecutionPhase.SUCCEEDED: "True", ExecutionPhase.FAILED: "False",
                       ExecutionPhase.CANCELLED: "False"}.get(ExecutionPhase(status.phase), "Unknown")
        old = next((c for c in status.conditions if c.type == "Succeeded"), None)
        changed = old is None or old.status != cond_status or old.reason != status.reason
        status.conditions = [Condition(
            type="Succeeded",
            status=cond_status,
            reason=status.reason or str(status.phase),
            message=status.message,
            lastTransitionTime=iso(self.now) if changed or old is None else old.lastTransitionTime,
        )]


def record_refusals(status: ExecutionStatus, refused: Mapping[str, str], now: datetime) -> list[Event]:
    """Fails the nodes whose Job the API server refused as invalid (a bad podTemplate, env,
    resources...). Retrying could never help; failing the node lets its failure edges run."""
    events = []
    for node in status.nodes:
        if node.name in refused:
            node.phase = NodePhase.FAILED
            node.finishedAt = iso(now)
            node.jobName = None
            node.message = (f"Kubernetes refused the node's Job: {refused[node.name]}. Fix the node's "
                            "podTemplate, env, resources or image in the Workflow")
            events.append(Event("Warning", "NodeFailed", f"Node {node.name}: {node.message}"))
    running = [n.name for n in status.nodes if n.phase == NodePhase.RUNNING]
    status.running = ",".join(running) if running else None
    return events


def expires_at(spec: WorkflowExecutionSpec, status: ExecutionStatus) -> datetime | None:
    """When a finished execution is to be deleted (spec.ttlSecondsAfterFinished), if ever."""
    if spec.ttlSecondsAfterFinished is None or status.phase not in TERMINAL_EXECUTION_PHASES:
        return None
    finished = parse_time(status.finishedAt)
    return finished + timedelta(seconds=spec.ttlSecondsAfterFinished) if finished else None


def plan(
    execution: ExecutionInput,
    observed: Mapping[str, ObservedJob],
    now: datetime,
    workflow: WorkflowLookup | None = None,
    output_limit: int = DEFAULT_OUTPUT_LIMIT,
) -> Plan:
    """Decides the next step. `workflow` is needed only before the snapshot is taken."""
    run = _Run(execution, observed, now, output_limit)
    status = run.status
    if status.phase in TERMINAL_EXECUTION_PHASES:
        # Finished: status never changes again; only Jobs still running (a delete that did
        # not complete before a crash) are deleted.
        run.plan.delete = [o.name for o in observed.values() if o.state == JobState.RUNNING]
        return run.plan
    if status.workflowSpec is None:
        if execution.spec.cancel:
            status.startedAt = status.startedAt or iso(now)
            run.finish(ExecutionPhase.CANCELLED, "Cancelled", "cancelled before it started")
            run.summarize()
            return run.plan
        if not run.start(workflow):
            run.summarize()
            return run.plan
    run.fold_observed()
    deadline = None
    if execution.spec.timeoutSeconds:
        started = parse_time(status.startedAt) or now
        deadline = started + timedelta(seconds=execution.spec.timeoutSeconds)
    if execution.spec.cancel:
        run.stop(ExecutionPhase.CANCELLED, "Cancelled", "cancelled by spec.cancel")
    elif deadline is not None and now >= deadline:
        run.stop(ExecutionPhase.FAILED, "DeadlineExceeded",
                 f"the execution ran past spec.timeoutSeconds ({execution.spec.timeoutSeconds}s)")
    else:
        run.schedule()
        run.conclude()
    run.summarize()
    if status.phase not in TERMINAL_EXECUTION_PHASES:
        run.plan.wake_at = deadline
    return run.plan


def describe_invalid(err: Any, prefix: str = "spec") -> tuple[str, ...]:
    """Readable problems of a spec that did not even parse (pydantic ValidationError)."""
    return tuple(describe_validation_error(err, prefix))


__all__ = [
    "Event",
    "ExecutionInput",
    "JobState",
    "ObservedJob",
    "Plan",
    "WorkflowLookup",
    "describe_invalid",
    "expires_at",
    "format_duration",
    "iso",
    "job_name",
    "parse_time",
    "plan",
]
