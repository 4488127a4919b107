"""The planner: from an execution's spec, its status and the Jobs observed, what to do next.

`plan()` is the whole state machine of a WorkflowExecution, and it is pure: no kopf, no
Kubernetes client, the clock passed in. The controller reads what is there, calls it,
creates and deletes what it says, and writes the status it returns, once. Because the
decision depends only on its inputs, a handler retried by kopf or an operator restarted
half-way reaches the same decision: a node with an observed Job is never given a second
one, and a finished node or execution is never changed again.

Every status change goes through `engine.execution.status` (mark_node, finish, ...); Events are
derived afterwards from old and new status (`engine.execution.events`). Times that decide anything
come from the cluster or from earlier decisions, never from the time of the pass alone: a
node skipped or failed before it started is stamped with the time its predecessors
finished, so a pass replayed after a lost status write decides exactly as the first one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from jobchain.api.errors import describe_validation_error
from jobchain.api.models import (
    FINISHED_NODE_PHASES,
    TERMINAL_EXECUTION_PHASES,
    EdgeKind,
    ExecutionPhase,
    Join,
    NodePhase,
    NodeStatus,
    OutputRef,
    OutputSource,
    WorkflowSpec,
)
from jobchain.engine.coordination.admission import Admission
from jobchain.engine.execution import fanout, gates
from jobchain.engine.execution import finally_ as fin
from jobchain.engine.execution import status as st
from jobchain.engine.execution.conditions import Deferred, EdgeDecisions, PassBudget
from jobchain.engine.execution.items import FanOut, finished_result
from jobchain.engine.execution.lifecycle import expires_at, leftovers, record_refusals
from jobchain.engine.execution.passes import before_plan
from jobchain.engine.execution.snapshot import Refusal, snapshot
from jobchain.engine.execution.types import (
    Event,
    ExecutionInput,
    JobState,
    ObservedJob,
    Plan,
    ResumeSource,
    WorkflowLookup,
)
from jobchain.engine.spec import cel, refs
from jobchain.engine.spec.graph import Graph, InEdge, node_texts
from jobchain.engine.spec.outputs import (
    DEFAULT_OUTPUT_LIMIT,
    MIN_OUTPUT_SHARE,
    STATUS_OUTPUT_BUDGET,
    keep_output,
    stored_size,
    text_sha256,
)
from jobchain.engine.spec.refs import Scope, UnresolvedReference
from jobchain.engine.spec.render import (
    OUTPUT_KEY,
    ExecutionRef,
    ValueTooLarge,
    job_name,
    output_config_map_name,
    render_job,
    render_output_config_map,
)
from jobchain.engine.spec.secrets import secret_refs
from jobchain.engine.timefmt import format_duration, iso, parse_time


class _EdgeError(Exception):
    """A condition that errs, with its edge."""

    def __init__(self, edge: InEdge, error: cel.CelError) -> None:
        super().__init__(str(error))
        self.edge = edge
        self.error = error


class _Run:
    """One planning pass over a copy of the status."""

    def __init__(self, execution: ExecutionInput, observed: Mapping[str, ObservedJob], now: datetime,
                 output_limit: int, cel_budget: PassBudget | None = None) -> None:
        self.execution = execution
        self.cel_budget = cel_budget
        self.observed = observed
        self.now = now
        self.status = execution.status.model_copy(deep=True)
        self.plan = Plan(status=self.status)
        self.output_limit = output_limit
        self.whole: dict[str, Any] = dict(execution.outputs)  # outputs kept in ConfigMaps, whole
        self.unrestored: set[str] = set()  # adopted nodes whose inputFrom is not restored yet
        self.vanished: list[NodeStatus] = []  # Running nodes whose Job is gone (see fail_vanished)
        self.started_now: set[str] = set()  # nodes given a Job by this pass
        self.fan = FanOut(self)
        self.limits: dict[tuple[str, int | None], int] = {}  # (node, item index) -> output limit
        self.outputs_used = 0  # bytes of outputs in status, as the output budget counts them
        self._graph: Graph | None = None
        self._workflow: WorkflowSpec | None = None
        self._order: dict[str, int] = {}
        self._edges: EdgeDecisions | None = None
        # set by schedule(): whether this pass may start nodes. Only then does a gate wait, and a forEach
        # list wait for a pass with CEL budget left (one that starts nothing keeps no list: see FanOut.start)
        self.may_start = False
        self.gates_until = now  # a gate's timeout decides it when not after this (the deadline, once passed)

    # ---- start -------------------------------------------------------------------------
    def start(self, lookup: WorkflowLookup | None) -> tuple[str, str] | None:
        """Takes the Workflow snapshot and resolves params; else (reason, message) of why not."""
        taken = snapshot(self.execution, lookup)
        if isinstance(taken, Refusal):
            return taken.reason, taken.message
        st.begin(self.status, taken.workflow_name, taken.workflow, taken.params,
                 self.execution.created or self.now, secret_params=taken.secret_params)
        return None

    def fail(self, reason: str, message: str) -> bool:
        st.finish(self.status, ExecutionPhase.FAILED, reason, message, self.now)
        return False

    # ---- helpers -----------------------------------------------------------------------
    @property
    def workflow(self) -> WorkflowSpec:
        """The snapshot, its finally nodes declared after the main ones (`finally_.with_finally`)."""
        assert self.status.workflowSpec is not None
        if self._workflow is None:
            self._workflow = fin.with_finally(self.status.workflowSpec)
        return self._workflow

    @property
    def in_finally(self) -> bool:
        """The main graph's outcome was in status when this pass began: finally nodes may start."""
        return self.execution.status.outcome is not None

    def phase_nodes(self) -> list[NodeStatus]:
        """The nodes of the phase this pass plans: the main graph's, or (once it ended) the finally ones."""
        return fin.finally_nodes(self.status) if self.in_finally else fin.main_nodes(self.status)

    @property
    def graph(self) -> Graph:
        if self._graph is None:
            self._graph = Graph.of(self.workflow)
            self._order = {n.name: i for i, n in enumerate(self.workflow.nodes)}
        return self._graph

    @property
    def order(self) -> dict[str, int]:
        """Declaration index of each node."""
        if self._graph is None:
            _ = self.graph
        return self._order

    @property
    def edges(self) -> EdgeDecisions:
        if self._edges is None:
            self._edges = EdgeDecisions(self.status, self.whole, self.cel_budget)
            # What earlier passes decided for nodes still waiting (from the status as read: this pass
            # may have moved an adopted node on already).
            for node in self.execution.status.nodes:
                incoming = self.graph.incoming.get(node.name, [])
                for edge, held in zip(incoming, node.edgesDecided or "", strict=False):
                    self._edges.seed(edge, held == "1")
        return self._edges

    @property
    def deferred(self) -> bool:
        """Whether this pass left condition edges to the next one (its CEL budget was spent)."""
        return self._edges is not None and self._edges.deferred

    def spec_of(self, name: str) -> Any:
        return self.workflow.nodes[self.order[name]]

    def nodes(self) -> dict[str, NodeStatus]:
        return {n.name: n for n in self.status.nodes}

    def mark(self, node: NodeStatus, phase: NodePhase, at: datetime | str, message: str | None = None,
             **fields: Any) -> None:
        st.mark_node(node, phase, at, message, message_limit=st.node_message_limit(len(self.status.nodes)),
                     **fields)
        if self._edges is not None:
            self._edges.changed(node)

    def ref(self) -> ExecutionRef:
        return ExecutionRef(self.execution.name, self.execution.namespace, self.execution.uid,
                            self.status.workflowName or self.execution.name,
                            self.execution.scheduled_time or self.status.startedAt)

    # ---- folding observed Jobs into node status ----------------------------------------
    def fold_observed(self, stopping: bool) -> None:
        """Records what the observed Jobs say. Finished ones are taken in the order they finished
        (declaration order breaks ties), which is also the order the output budget is handed
        out in: a pass replayed after a lost status write truncates exactly as the first."""
        graph = self.graph
        self.revoke_forged()
        outputs_used = sum(fanout.output_size(n) for n in self.status.nodes)
        finished: list[tuple[NodeStatus, ObservedJob, int | None]] = []
        for node in self.status.nodes:
            if node.phase in FINISHED_NODE_PHASES:
                continue
            if self.spec_of(node.name).forEach is not None:
                if node.phase == NodePhase.RUNNING:
                    finished.extend(self.fan.observe(node, stopping))
                continue
            seen = self.observed.get(node.name)
            if seen is None:
                # Gone while Running: deleted by a stop (cancel, deadline, condition error) whose
                # status write was lost, which this pass makes again, or else outside jobchain.
                if node.phase == NodePhase.RUNNING and not stopping:
                    self.vanished.append(node)
            elif seen.state == JobState.RUNNING:
                st.note_job(node, seen.name, self.now, seen.retries)
            else:
                finished.append((node, seen, None))
        self.outputs_used = outputs_used
        self.plan_budget(finished + self.fan.pending_finished())
        self.record_finished(finished)
        # A node with a Job and incoming edges got its input when it started; none recorded means
        # the pass that started it lost its status write (it was adopted, now or earlier).
        self.unrestored = {n.name for n in self.status.nodes
                           if n.jobName and n.inputFrom is None and graph.incoming[n.name]}
        self.restore_inputs()
        if self.fan.adopt_pending():
            self.restore_inputs()

    def revoke_forged(self) -> None:
        """Nodes that finished with an output kept in a ConfigMap now found forged (the controller read
        it back and its owner or sha256 was not what was written): they fail, saying why."""
        limit = st.node_message_limit(len(self.status.nodes))
        for node in self.status.nodes:
            problem = self.execution.forged.get(node.name)
            if problem is not None and node.phase in FINISHED_NODE_PHASES and st.revoke_output(node, problem, limit):
                self.whole.pop(node.name, None)
                if self._edges is not None:
                    self._edges.changed(node)

    def output_limit_for(self, node: NodeStatus, index: int | None, outputs_used: int) -> int:
        limit_setting = self.workflow.outputLimitBytes or self.output_limit
        floor = MIN_OUTPUT_SHARE
        if index is not None:
            # an item's floor shrinks with how many items the node may have: 5,000 must fit too
            floor = fanout.item_output_floor(self.spec_of(node.name).maxItems or fanout.DEFAULT_MAX_ITEMS)
        return min(limit_setting, max(floor, STATUS_OUTPUT_BUDGET - outputs_used))

    def plan_budget(self, finished: list[tuple[NodeStatus, ObservedJob, int | None]]) -> None:
        """The output limit of every Job seen finished in this pass, handed out in the order they
        finished, before any is recorded: items of a fan-out adopted after a lost status write are
        recorded later in the pass, and must get what they would have got without the crash."""
        used = self.outputs_used
        self.limits = {}
        for node, seen, index in sorted(finished, key=self.finish_order):
            limit = self.output_limit_for(node, index, used)
            self.limits[(node.name, index)] = limit
            keep_end = self.graph.nodes[node.name].output.from_ == OutputSource.LOGS
            used += stored_size(keep_output(seen.raw_output, limit, keep_end=keep_end).output)

    def finish_order(self, f: tuple[NodeStatus, ObservedJob, int | None]) -> tuple[str, int, int]:
        return f[1].finished_at or "", self.order[f[0].name], f[2] or 0

    def record_finished(self, finished: list[tuple[NodeStatus, ObservedJob, int | None]]) -> None:
        """Records finished Jobs (of nodes, or of items: index set) in the order they finished."""
        outputs_used = self.outputs_used
        finished.sort(key=self.finish_order)
        for node, seen, index in finished:
            limit = self.limits.get((node.name, index)) or self.output_limit_for(node, index, outputs_used)
            if index is not None:
                outputs_used += self.fan.record(node, index, seen, limit)
                continue
            kept, phase, message = finished_result(seen, limit, self.graph.nodes[node.name].output.from_)
            outputs_used += stored_size(kept.output)
            ref = None
            forged = self.execution.forged.get(node.name)
            if forged is not None:  # its ConfigMap exists with other content: someone made it first
                phase, message = NodePhase.FAILED, f"{forged}; its output is not passed on"
                kept = dataclasses.replace(kept, output=None, truncated=False, whole=None)
            elif kept.whole is not None and not (seen.output_error or kept.too_large):
                ref = OutputRef(configMap=output_config_map_name(self.execution.name, node.name), key=OUTPUT_KEY,
                                bytes=len(kept.whole.encode()), sha256=text_sha256(kept.whole))
                self.plan.config_maps.append(render_output_config_map(self.ref(), node.name, kept.whole))
                self.whole[node.name] = kept.value
                if kept.truncated:
                    note = f"output truncated to {limit} bytes in status; kept whole in ConfigMap {ref.configMap}"
                    message = f"{message}; {note}" if message else note
            self.mark(node, phase, seen.finished_at or self.now, message, jobName=seen.name,
                      startedAt=node.startedAt or iso(self.now), podName=seen.pod_name, exitCode=seen.exit_code,
                      retries=seen.retries, output=kept.output, outputTruncated=kept.truncated, outputRef=ref)
        self.outputs_used = outputs_used
        for node in {n.name: n for n, _, index in finished if index is not None}.values():
            self.fan.settle(node)

    def fail_vanished(self) -> None:
        """Fails the nodes whose Job disappeared, unless a stop in this pass cancelled them."""
        if self.status.phase != ExecutionPhase.RUNNING:
            return
        for node in self.vanished:
            self.mark(node, NodePhase.FAILED, self.now, f"Job {node.jobName} disappeared before its "
                      "result was read (deleted outside jobchain?)")
        self.fan.fail_vanished()  # (the node settles in schedule(), as when an item finishes)

    def restore_inputs(self) -> None:
        """inputFrom of nodes whose Job was created by a pass whose status write was lost.

        Their predecessors had finished when the Job was created and never change, so the
        edges that held then hold now: the same input as without the crash, which conditions
        on the node's out-edges (`input`) depend on. A predecessor still Pending here was
        skipped or failed before starting in the lost pass (it has no Job); schedule() decides
        it again, with the same time stamp, and until then the node stays in `unrestored`.
        """
        if not self.unrestored:
            return
        graph = self.graph
        nodes = self.nodes()
        # Upstream first (a node has more upstream nodes than any of its predecessors).
        for name in sorted(self.unrestored, key=lambda n: (len(graph.upstream(n)), n)):
            incoming = graph.incoming[name]
            if not self.decided(incoming, nodes):
                continue
            held = [e for e in incoming if self.holds_or_false(e, nodes)]
            st.restore_input(nodes[name], self.input_source(held, nodes))
            self.unrestored.discard(name)

    def input_source(self, held: list[InEdge], nodes: dict[str, NodeStatus]) -> str | None:
        """The predecessor whose edge held that finished last (declaration order breaks ties)."""
        source = max(held, key=lambda e: (nodes[e.source].finishedAt or "", self.order[e.source]), default=None)
        return source.source if source else None

    def decided_at(self, incoming: list[InEdge], nodes: dict[str, NodeStatus]) -> str:
        """When a node's fate was sealed: its last predecessor's finish (the start, for a start node;
        the main graph's end, for a finally one)."""
        stamps = [nodes[e.source].finishedAt or "" for e in incoming]
        ended = self.status.outcome.endedAt if self.status.outcome is not None else None
        return max(stamps, default="") or ended or self.status.startedAt or iso(self.now)

    # ---- stopping ----------------------------------------------------------------------
    def stop(self, phase: ExecutionPhase, reason: str, message: str, terminate: bool = False) -> None:
        """Cancel, deadline, condition error, stop: delete running Jobs, cancel what has not finished.
        The finally nodes then run (`end_main`), unless `terminate` (spec.cancel) cancels them too."""
        # A Job planned earlier in this pass belongs to a node cancelled now: it is never created.
        self.plan.create.clear()
        for node in self.status.nodes:
            if node.phase in FINISHED_NODE_PHASES:
                continue
            if node.finally_ and not terminate and not self.in_finally:
                continue
            seen = self.observed.get(node.name)
            if seen is not None and seen.state == JobState.RUNNING:
                self.plan.delete.append(seen.name)
            if self.spec_of(node.name).forEach is not None:
                self.fan.stop(node, reason)
            unmade: dict[str, Any] = {"jobName": None, "startedAt": None} if node.name in self.started_now else {}
            self.mark(node, NodePhase.CANCELLED, self.now, f"not finished: {reason}", **unmade)
        if terminate or self.in_finally:
            self.finish(phase, reason, message)
        else:
            self.end_main(phase, reason, message)

    def end_main(self, phase: ExecutionPhase, reason: str, message: str) -> None:
        """The main graph ended: the execution ends, or, with finally nodes, its outcome is recorded and
        the finally nodes start in the next pass (so the outcome is in status before any of their Jobs)."""
        if not self.status.workflowSpec or not self.status.workflowSpec.finally_:
            self.finish(phase, reason, message)
            return
        st.record_outcome(self.status, fin.main_outcome(self.status, phase, reason, message, self.now))

    def finish(self, phase: ExecutionPhase, reason: str, message: str) -> None:
        st.finish(self.status, phase, reason, message, self.now)
        self.plan.delete.extend(leftovers(self.status, self.observed, self.plan.delete))

    # ---- edges and readiness -----------------------------------------------------------
    def decided(self, incoming: list[InEdge], nodes: dict[str, NodeStatus]) -> bool:
        """All incoming edges are decided: every predecessor finished, with its own input known."""
        return not any(nodes[e.source].phase not in FINISHED_NODE_PHASES or e.source in self.unrestored
                       for e in incoming)

    def holds_or_false(self, edge: InEdge, nodes: dict[str, NodeStatus]) -> bool:
        """Whether an edge holds, a condition that errs counted as not holding (restoring inputs only).

        Not held back by the pass's CEL budget: these edges were all decided by the pass that started
        the node (within its budget, going on from the decisions kept in status), so restoring costs
        at most one pass's budget more, and a node's input is never left unknown for want of it."""
        try:
            return self.edges.holds(edge, nodes, budgeted=False)
        except cel.CelError:
            return False

    def held_edges(self, node: NodeStatus, incoming: list[InEdge], nodes: dict[str, NodeStatus]) -> list[InEdge]:
        """The incoming edges that hold. Raises _EdgeError for a condition that errs, and Deferred when
        the pass's CEL budget ran out first. What was decided is kept in the node's status for later
        passes (when it has condition edges): they go on from there, never deciding an edge again."""
        decided: list[bool] = []
        for edge in incoming:
            try:
                decided.append(self.edges.holds(edge, nodes))
            except Deferred:
                st.keep_edges(node, decided)
                raise
            except cel.CelError as exc:
                raise _EdgeError(edge, exc) from None
        if any(e.kind == EdgeKind.CONDITION for e in incoming):
            st.keep_edges(node, decided)  # cleared when it starts or is skipped; kept while it waits
        return [edge for edge, holds in zip(incoming, decided, strict=True) if holds]

    def schedule(self, may_start: bool) -> None:
        """Decides every node whose incoming edges are decided: skip it, fail it before it starts
        (a reference with no value), or start it when a slot is free (and `may_start`).

        A condition that errs stops the execution (ConditionError), but only once every decision
        that starts nothing has been made: a skip or a failure before start was sealed when its
        predecessors finished, which may be before the error could be seen. A pass replayed after
        lost status writes sees both at once, and must decide as the passes it replays did.
        """
        graph = self.graph
        error: str | None = None  # the first condition that erred in this pass
        changed = True
        while changed and self.status.phase == ExecutionPhase.RUNNING:
            changed = False
            self.restore_inputs()
            nodes = self.nodes()
            if self.fan.fill_running(may_start and error is None):
                changed = True  # a forEach node finished: its out-edges are decided now
                continue
            ready: list[tuple[str, list[InEdge]]] = []
            for spec_node in self.workflow.nodes:
                name = spec_node.name
                node = nodes[name]
                incoming = graph.incoming[name]
                if node.phase != NodePhase.PENDING or not self.decided(incoming, nodes):
                    continue
                if node.finally_ and not self.in_finally:
                    continue  # finally nodes wait until the main graph's outcome is in status
                try:
                    held = self.held_edges(node, incoming, nodes)
                except Deferred:
                    # The CEL budget of this pass is spent: this node and those declared after it are
                    # decided by the next pass (those before it, decided, still start in order).
                    break
                except _EdgeError as err:
                    edge = err.edge
                    where = f"spec.nodes[{self.order[edge.source]}].next[{edge.index}]"
                    error = error or f"{where} ({edge.source} -> {name}) when `{edge.when}`: {err.error}"
                    continue
                runs = not incoming or (len(held) == len(incoming) if spec_node.join == Join.ALL else bool(held))
                if not runs:
                    shown = [f"{e.source} ({e.kind}) {'held' if e in held else 'did not hold'}" for e in incoming]
                    self.mark(node, NodePhase.SKIPPED, self.decided_at(incoming, nodes),
                              "skipped: " + st.names_with_more(shown, 5) + f" (join: {spec_node.join})")
                    changed = True
                    continue
                ready.append((name, held))
            if changed:
                # A skip can make an earlier-declared node ready: decide every node before starting any,
                # so ready nodes start in declaration order.
                continue
            self.may_start = may_start and error is None
            for name, held in ready:
                slot_free = may_start and error is None and self.fan.running_jobs() < self.workflow.parallelism
                try:
                    started = self.start_node(name, held, nodes, slot_free)
                except Deferred:
                    break  # a forEach list the pass's CEL budget cannot pay: it and those after it wait
                if started is False:
                    # Failed before starting: its out-edges are decided now, and a node they make ready
                    # may come before the rest of `ready` in declaration order.
                    changed = True
                    break
        if error is not None and self.status.phase == ExecutionPhase.RUNNING:
            if self.deferred:
                # Edges left to the next pass may still skip nodes: it stops, having decided them.
                self.unstart()
            else:
                self.stop(ExecutionPhase.FAILED, "ConditionError", error)

    def unstart(self) -> None:
        """Takes back the starts of this pass (their Jobs are not created): nothing may start in a
        pass that found a condition error, and the stop is left to the next pass."""
        self.plan.create.clear()
        self.fan.unstart()
        nodes = self.nodes()
        for name in sorted(self.started_now):
            fan_out: dict[str, Any] = {}
            if self.spec_of(name).forEach is not None:
                fan_out = {"items": None, "itemResults": None, "output": None}
            self.mark(nodes[name], NodePhase.PENDING, self.now, jobName=None, startedAt=None, inputFrom=None,
                      **fan_out)
        self.started_now.clear()

    def start_node(self, name: str, held: list[InEdge], nodes: dict[str, NodeStatus], slot_free: bool) -> bool | None:
        """Renders and plans the node's Job: True when started, None when it waits for a slot.

        False when it failed before starting (a reference with no value): that needs no slot,
        so it happens at once, also when a pass that lost its status write is replayed with
        more Jobs running than at first.
        """
        node = nodes[name]
        spec_node = self.workflow.nodes[self.order[name]]
        if spec_node.approval is not None:  # a gate needs no slot: it runs no Job
            return gates.reach(self, node, self.input_source(held, nodes), may_wait=self.may_start)
        if spec_node.forEach is not None:
            return self.fan.start(node, held, nodes, slot_free)
        if not slot_free and not any(next(refs.find(text), None) for _, text in node_texts(spec_node)):
            return None  # nothing that could fail: no need to render it yet
        source = self.input_source(held, nodes)
        scope = self.scope(source, nodes)
        try:
            job = render_job(self.ref(), self.workflow, spec_node, scope)
        except UnresolvedReference as exc:
            at = self.decided_at(self.graph.incoming[name], nodes)
            why = str(exc) if isinstance(exc, ValueTooLarge) else f"unresolved reference {exc}"
            self.mark(node, NodePhase.FAILED, at, why, inputFrom=source, startedAt=at)
            return False
        if not slot_free:
            return None
        self.mark(node, NodePhase.RUNNING, self.now, inputFrom=source, jobName=job["metadata"]["name"],
                  startedAt=iso(self.now))
        self.started_now.add(name)
        self.plan.create.append(job)
        return True

    def scope(self, source: str | None, nodes: dict[str, NodeStatus], item_index: int | None = None,
              item: Any = None) -> Scope:
        ran = {n.name: self.whole.get(n.name, n.output) for n in self.status.nodes
               if n.phase in (NodePhase.SUCCEEDED, NodePhase.FAILED)}
        input_ref = nodes[source].outputRef if source else None
        return Scope(
            params=dict(self.status.params or {}),
            execution_name=self.execution.name,
            namespace=self.execution.namespace,
            input=ran.get(source) if source else None,
            has_input=source is not None,
            outputs=ran,
            secrets=secret_refs(self.execution.spec),
            input_ref=input_ref.configMap if input_ref else None,
            item_index=item_index,
            item=item,
            scheduled_time=self.execution.scheduled_time or self.status.startedAt,
            outcome=fin.scope_values(self.status.outcome),
        )

    def conclude(self) -> None:
        if self.status.phase != ExecutionPhase.RUNNING or (self.status.outcome is not None and not self.in_finally):
            return
        nodes = self.phase_nodes()
        if any(n.phase in (NodePhase.PENDING, NodePhase.RUNNING, NodePhase.WAITING) for n in nodes):
            return
        handled = {
            n.name for n in self.workflow.nodes
            if any(e.type in (EdgeKind.FAILURE, EdgeKind.ALWAYS) for e in n.next)
        }
        failed = [n for n in nodes if n.phase == NodePhase.FAILED]
        unhandled = [n for n in failed if n.name not in handled]
        if self.in_finally:
            assert self.status.outcome is not None
            self.finish(*fin.final(self.status.outcome, self.status, [n.name for n in unhandled]))
            return
        counts = {p: sum(1 for n in nodes if n.phase == p) for p in NodePhase}
        summary = (f"{counts[NodePhase.SUCCEEDED]} succeeded, {counts[NodePhase.FAILED]} failed, "
                   f"{counts[NodePhase.SKIPPED]} skipped")
        if unhandled:
            detail = "; ".join(f"{n.name}: {st.cut(n.message or 'failed', 300)}"
                               for n in unhandled[:st.NAMED_IN_MESSAGE])
            names = st.names_with_more([n.name for n in unhandled])
            self.end_main(ExecutionPhase.FAILED, "NodeFailed", f"node(s) {names} failed ({detail}); {summary}")
        else:
            self.end_main(ExecutionPhase.SUCCEEDED, "Succeeded", f"all nodes finished: {summary}")

    def may_all_be_done_by(self, deadline: datetime | None) -> bool:
        """Nothing runs, and what finished did so by the deadline: the nodes still waiting may all be
        skipped or failed before starting, when the edges left to the next pass are decided."""
        for node in self.phase_nodes():
            if node.phase in (NodePhase.RUNNING, NodePhase.WAITING):
                return False
            finished = parse_time(node.finishedAt)
            if deadline is not None and finished is not None and finished > deadline:
                return False
        return True

    def all_done_by(self, deadline: datetime | None) -> bool:
        """Every node finished, and (with a deadline) finished before it, by its own finishedAt."""
        for node in self.phase_nodes():
            finished = parse_time(node.finishedAt)
            if node.phase not in FINISHED_NODE_PHASES or finished is None:
                return False
            if deadline is not None and finished > deadline:
                return False
        return True


def plan(
    execution: ExecutionInput,
    observed: Mapping[str, ObservedJob],
    now: datetime,
    workflow: WorkflowLookup | None = None,
    output_limit: int = DEFAULT_OUTPUT_LIMIT,
    cel_budget: PassBudget | None = None,
    *,
    admission: Admission | None = None,
    resume_source: ResumeSource | None = None,
) -> Plan:
    """Decides the next step. `workflow` is needed only before the snapshot is taken.

    `admission` is what the Workflow's queue says (held Queued when no slot is free) and
    `resume_source` the execution a retry resumes, read when `passes.resume_from` names one:
    before any node is planned, they may decide the pass (`passes.before_plan`).
    `cel_budget` is what the condition edges of this pass may cost (PassBudget(): the limits).
    When it runs out, the edges left wait for the next pass and `wake_at` is `now`; a finished
    execution's `wake_at` is when its time to live is over."""
    early = before_plan(execution, now, admission, resume_source)
    if early is not None:
        return early
    result = _plan_nodes(execution, observed, now, workflow, output_limit, cel_budget)
    result.wake_at = result.wake_at or expires_at(execution.spec, result.status)
    return result


def _plan_nodes(execution: ExecutionInput, observed: Mapping[str, ObservedJob], now: datetime,
                workflow: WorkflowLookup | None, output_limit: int, cel_budget: PassBudget | None) -> Plan:
    run = _Run(execution, observed, now, output_limit, cel_budget)
    status = run.status
    if status.phase in TERMINAL_EXECUTION_PHASES:
        # Finished: status never changes again; only Jobs still running (a delete that did
        # not complete before a crash) are deleted.
        run.plan.delete = leftovers(status, observed, [])
        gates.note_ignored(status, execution.spec)  # (a decision that came too late is named, once)
        return run.plan
    if status.workflowSpec is None:
        # Also when cancelled: a pass may have started the execution and lost its status write, so
        # the snapshot is taken again and what its Jobs did is recorded before the cancel stops the rest.
        refused = run.start(workflow)
        if refused is not None:
            if execution.spec.cancel:
                run.finish(ExecutionPhase.CANCELLED, "Cancelled", "cancelled before it started")
            else:
                run.fail(*refused)
            st.summarize(status, execution.generation, now)
            return run.plan
    if run.in_finally:
        _plan_finally(run, now)
        return run.plan
    deadline = None
    if execution.spec.timeoutSeconds:
        started = parse_time(status.startedAt) or now
        deadline = started + timedelta(seconds=execution.spec.timeoutSeconds)
    late = deadline is not None and now >= deadline
    run.fold_observed(stopping=execution.spec.cancel or late)
    # Gates are decided before a cancel or a passed deadline stops the rest, as skips are: by their
    # decision in spec (which has no time: a pass that sees one takes it, so a Job started after an
    # approval whose status write was lost is always explained by it), or by a timeout that came first.
    run.gates_until = min(deadline, now) if late and deadline else now
    gates.decide_waiting(run, decisions=True, until=run.gates_until)
    if execution.spec.cancel or late:
        # (A cancel terminates: the finally nodes are cancelled too. A deadline records the outcome and
        # they run, within their own finallyTimeoutSeconds.)
        # Decisions that start nothing (skips, failures before start) are still made: a pass that
        # comes late (the operator was busy or restarting, or its status write was lost) lets an
        # execution whose nodes had all finished end as it would have. Only then does it stop.
        # A cancel and a passed deadline seen by one pass: the cancel wins. spec.cancel has no time,
        # so which came first is unknowable here (the deadline's pass may have lost its write); the
        # user's explicit request is honoured, and a cancel seen before the deadline always ends the
        # run Cancelled. Only phase and reason depend on it: each node ends the same either way.
        run.schedule(may_start=False)
        if run.status.phase == ExecutionPhase.RUNNING and run.deferred and run.may_all_be_done_by(deadline):
            pass  # edges left to the next pass may still end it as it would have ended: stop only then
        elif run.status.phase == ExecutionPhase.RUNNING and run.all_done_by(deadline):
            run.conclude()
        elif execution.spec.cancel:
            run.stop(ExecutionPhase.CANCELLED, "Cancelled", "cancelled by spec.cancel", terminate=True)
        else:
            run.stop(ExecutionPhase.FAILED, "DeadlineExceeded",
                     f"the execution ran past spec.timeoutSeconds ({execution.spec.timeoutSeconds}s)")
    else:
        if run.vanished or run.fan.vanished:
            # A condition error found again here is the stop that deleted those Jobs (its status
            # write was lost): decisions that start nothing come first, then the rest fail.
            run.schedule(may_start=False)
            run.fail_vanished()
        # spec.stop: nothing new starts; once no Job of the main graph runs, it ends (Stopped).
        run.schedule(may_start=not execution.spec.stop)
        run.conclude()
        if execution.spec.stop and run.status.outcome is None and not fin.jobs_running(run.phase_nodes()):
            run.stop(ExecutionPhase.CANCELLED, fin.STOPPED, "stopped by spec.stop: running nodes finished, "
                     "nothing new started")
    gates.note_ignored(status, execution.spec)
    st.summarize(status, execution.generation, now)
    status.waiting = gates.waiting(status)
    if status.phase not in TERMINAL_EXECUTION_PHASES:
        # Edges left by a spent CEL budget are decided by a pass at once (after others had their turn);
        # a main graph that just ended starts its finally nodes in the next pass, at once; a waiting
        # gate's timeout is decided by a pass at its deadline.
        gate_due = gates.next_deadline(run)
        run.plan.wake_at = now if run.deferred or status.outcome is not None \
            else min((t for t in (deadline, gate_due) if t), default=None)
    return run.plan


def _plan_finally(run: _Run, now: datetime) -> None:
    """A pass after the main graph ended (its outcome in status): the finally nodes run, within
    finallyTimeoutSeconds of that end; spec.cancel terminates them. Then the execution ends."""
    status, spec = run.status, run.execution.spec
    assert status.outcome is not None
    deadline = fin.deadline(run.workflow, status.outcome, now)
    late = now >= deadline
    run.fold_observed(stopping=spec.cancel or late)
    if spec.cancel or late:
        run.schedule(may_start=False)
        if run.status.phase == ExecutionPhase.RUNNING and run.deferred and run.may_all_be_done_by(deadline):
            pass
        elif run.status.phase == ExecutionPhase.RUNNING and run.all_done_by(deadline):
            run.conclude()
        elif spec.cancel:
            run.stop(ExecutionPhase.CANCELLED, "Cancelled", "cancelled by spec.cancel while the finally nodes ran",
                     terminate=True)
        else:
            run.stop(*fin.final(status.outcome, status, [], late=run.workflow.finallyTimeoutSeconds))
    else:
        if run.vanished or run.fan.vanished:
            run.schedule(may_start=False)
            run.fail_vanished()
        run.schedule(may_start=True)
        run.conclude()
    st.summarize(status, run.execution.generation, now)
    if status.phase not in TERMINAL_EXECUTION_PHASES:
        run.plan.wake_at = now if run.deferred else deadline


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
    "record_refusals",
]
