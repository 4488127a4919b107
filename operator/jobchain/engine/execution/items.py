"""forEach nodes inside one planning pass: starting items, reading their results, settling the node.

Why a separate part of the pass: a forEach node is one node to the graph (one phase, one set of
out-edges, one output) but many Jobs to the cluster. Everything here keeps the planner's
rules for Jobs: an item's Job name is derived from node and index, so a Job created by a pass
whose status write was lost is adopted (never a second one); items count against
`parallelism` exactly as nodes do, Jobs running that status does not know yet included; a
finished item never changes (engine.execution.status.mark_item); the node finishes when its items say
so (engine.execution.fanout.outcome) and its failure edges route as for any node.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jobchain.api.models import (
    FINISHED_NODE_PHASES,
    ItemCounts,
    ItemStatus,
    NodePhase,
    NodeStatus,
    OutputRef,
    OutputSource,
)
from jobchain.engine.execution import fanout
from jobchain.engine.execution import status as st
from jobchain.engine.execution.conditions import Deferred
from jobchain.engine.execution.types import JobState, ObservedJob
from jobchain.engine.spec import param_types
from jobchain.engine.spec.graph import InEdge
from jobchain.engine.spec.outputs import (
    INLINE_INPUT_FILE_BYTES,
    MAX_OUTPUT_BYTES,
    KeptOutput,
    input_json,
    keep_output,
    stored_size,
    text_sha256,
    too_large_note,
)
from jobchain.engine.spec.refs import UnresolvedReference
from jobchain.engine.spec.render import (
    OUTPUT_KEY,
    ValueTooLarge,
    item_key,
    items_list_key,
    output_config_map_name,
    render_items_config_map,
    render_job,
    render_output_config_map,
    split_key,
)
from jobchain.engine.timefmt import iso

if TYPE_CHECKING:
    from jobchain.engine.execution.planner import _Run


def finished_result(job: ObservedJob, limit: int, source: OutputSource) -> tuple[KeptOutput, NodePhase, str | None]:
    """What a finished Job makes of its node or item: its output as kept (`keep_output`; a log keeps
    its end), the phase (Failed too when the output could not be read whole or is over 1 MiB) and the
    message saying why."""
    kept = keep_output(job.raw_output, limit, keep_end=source == OutputSource.LOGS)
    phase = NodePhase.SUCCEEDED if job.state == JobState.SUCCEEDED else NodePhase.FAILED
    message = job.message
    if job.output_error or kept.too_large:
        phase = NodePhase.FAILED
        note = job.output_error or too_large_note(kept.too_large)
        message = f"{message}; {note}" if message else note
    return kept, phase, message


class FanOut:
    """The forEach nodes of one pass (`run`)."""

    def __init__(self, run: _Run) -> None:
        self.run = run
        self._items: dict[str, list[Any]] = {}
        self._texts: dict[str, str] = {}  # lists evaluated by this pass, as JSON (to keep)
        self._seen: dict[str, dict[int, ObservedJob]] | None = None
        self.started_now: list[tuple[str, int]] = []  # items given a Job by this pass
        # Running items whose Job is gone: deleted by a stop whose status write was lost (this pass
        # makes it again, and it cancels them), or else outside jobchain (fail_vanished fails them).
        self.vanished: list[tuple[NodeStatus, int]] = []

    # ---- what is known -----------------------------------------------------------------
    def seen(self, name: str) -> dict[int, ObservedJob]:
        """The observed item Jobs of a node, by index."""
        if self._seen is None:
            self._seen = {}
            for key, job in self.run.observed.items():
                node, index = split_key(key)
                if index is not None:
                    self._seen.setdefault(node, {})[index] = job
        return self._seen.get(name, {})

    def items(self, name: str, source: str | None, budgeted: bool = True) -> list[Any]:
        """The node's item list (raises fanout.ItemsProblem); the same on every pass. Read from its
        ConfigMap once the node runs; else evaluated, its steps taken from the pass's CEL budget:
        when that is spent (and `budgeted`), raises Deferred and the next pass evaluates it."""
        if name not in self._items:
            run = self.run
            kept = run.whole.get(items_list_key(name))
            if isinstance(kept, list):
                self._items[name] = kept
                return kept
            edges = run.edges
            if budgeted and edges.exhausted():
                edges.deferred = True
                raise Deferred(f"{name}.forEach")
            nodes = run.nodes()
            upstream = [nodes[u] for u in sorted(run.graph.upstream(name))]
            source_output = run.whole.get(source, nodes[source].output) if source else None
            variables = fanout.activation(param_types.of_status(run.status), source_output, upstream, run.whole)
            spec = run.spec_of(name)
            assert spec.forEach is not None
            where = f"spec.nodes[{run.order[name]}].forEach"
            items = fanout.items_of(spec.forEach, variables, spec.maxItems, where, edges.spent)
            self._texts[name] = fanout.list_text(items, spec.forEach, where)
            self._items[name] = items
        return self._items[name]

    def keep_items(self, node: NodeStatus) -> None:
        """Plans the ConfigMap keeping the item list of a node that starts running (created before
        the status saying so: a later pass reads the list from there instead of evaluating it)."""
        text = self._texts.get(node.name)
        if text is not None:
            self.run.plan.config_maps.append(render_items_config_map(self.run.ref(), node.name, text))

    def running_jobs(self) -> int:
        """Jobs running now, as parallelism counts them: a node's, or each running item's, plus
        item Jobs that status does not know yet (created by a pass whose status write was lost)."""
        count = 0
        known: set[str] = set()
        for node in self.run.status.nodes:
            if node.items is not None:
                known.add(node.name)
            if node.phase == NodePhase.RUNNING:
                count += node.items.running if node.items is not None else 1
        for key, job in self.run.observed.items():
            name, index = split_key(key)
            if index is not None and name not in known and job.state == JobState.RUNNING:
                count += 1
        return count

    # ---- starting ----------------------------------------------------------------------
    def start(self, node: NodeStatus, held: list[InEdge], nodes: dict[str, NodeStatus],
              slot_free: bool) -> bool | None:
        """As planner.start_node for a forEach node: True when running, None when it waits for a
        slot, False when it finished at once (a bad or empty list, items already all done)."""
        run = self.run
        source = run.input_source(held, nodes)
        at = run.decided_at(run.graph.incoming[node.name], nodes)
        try:
            # (Deferred: the pass's CEL budget is spent.) A pass that may start nothing keeps no list of
            # a node it does not start, so the next would spend the same again: it pays in full (each
            # list within its own evaluation limit), or lists that together cost more than a pass
            # would be left to the next pass for ever, and a cancelled run would never end.
            items = self.items(node.name, source, budgeted=run.may_start)
        except fanout.ItemsProblem as problem:
            run.mark(node, NodePhase.FAILED, at, str(problem), inputFrom=source, startedAt=at)
            return False
        if not items:
            run.mark(node, NodePhase.SUCCEEDED, at, "forEach gave an empty list: no item to run", inputFrom=source,
                     startedAt=at, output=[], items=ItemCounts(total=0), itemResults=[])
            return False
        adopted = bool(self.seen(node.name))
        if not slot_free and not adopted:
            return None
        carried = _carried(node, len(items))
        run.mark(node, NodePhase.RUNNING, run.now, inputFrom=source, startedAt=iso(run.now),
                 items=ItemCounts(total=len(items), succeeded=len(carried)), itemResults=carried)
        self.keep_items(node)
        if not adopted:
            run.started_now.add(node.name)
        run.record_finished(self.observe(node, stopping=False))
        self.fill(node, may_start=slot_free or adopted)
        return not self.settle(node)

    def unstart(self) -> None:
        """Takes back the item starts of this pass in nodes that were running before it (see
        planner.unstart; nodes started by this pass are put back to Pending there)."""
        nodes = self.run.nodes()
        for name, index in self.started_now:
            if name not in self.run.started_now:
                st.unmark_item(nodes[name], index)
        self.started_now.clear()

    def pending_finished(self) -> list[tuple[NodeStatus, ObservedJob, int | None]]:
        """Finished item Jobs of forEach nodes Pending in status (to be adopted, see adopt_pending)."""
        out: list[tuple[NodeStatus, ObservedJob, int | None]] = []
        for node in self.run.status.nodes:
            if node.phase == NodePhase.PENDING and self.run.spec_of(node.name).forEach is not None:
                out += [(node, job, index) for index, job in sorted(self.seen(node.name).items())
                        if job.state != JobState.RUNNING]
        return out

    def adopt_pending(self) -> bool:
        """forEach nodes Pending in status whose item Jobs exist: a pass started them and lost its
        status write. They are taken up as regular nodes' Jobs are (fold_observed), before any
        cancel or deadline decides, so the result is the one without the crash."""
        run = self.run
        nodes = run.nodes()
        adopted = False
        for spec in run.workflow.nodes:
            node = nodes[spec.name]
            if spec.forEach is None or node.phase != NodePhase.PENDING or not self.seen(spec.name):
                continue
            incoming = run.graph.incoming[spec.name]
            if not run.decided(incoming, nodes):
                continue
            held = [e for e in incoming if run.holds_or_false(e, nodes)]
            source = run.input_source(held, nodes)
            try:
                # Not held back by the pass's budget: the pass that started it evaluated this list
                # within its own, and what its Jobs did must be taken up before anything decides.
                items = self.items(spec.name, source, budgeted=False)
            except fanout.ItemsProblem:
                continue  # (no pass could have started items then)
            if not items:
                continue
            carried = _carried(node, len(items))
            run.mark(node, NodePhase.RUNNING, run.now, inputFrom=source, startedAt=iso(run.now),
                     items=ItemCounts(total=len(items), succeeded=len(carried)), itemResults=carried)
            self.keep_items(node)
            run.record_finished(self.observe(node, stopping=False))
            self.settle(node)
            adopted = True
        return adopted

    def fill(self, node: NodeStatus, may_start: bool) -> None:
        """Starts the node's next items (by index) while slots are free."""
        run = self.run
        spec = run.spec_of(node.name)
        counts = node.items
        if not may_start or counts is None or node.phase != NodePhase.RUNNING or (spec.failFast and counts.failed):
            return
        free = run.workflow.parallelism - self.running_jobs()
        if spec.maxParallel is not None:
            free = min(free, spec.maxParallel - counts.running)
        if free <= 0:
            return
        started = {e.index for e in node.itemResults or []}
        if len(started) >= counts.total:
            return
        try:
            items = self.items(node.name, node.inputFrom)  # (kept when the node started)
        except Deferred:
            return  # its ConfigMap is gone and the pass's CEL budget spent: the next pass evaluates it
        nodes = run.nodes()
        for index in range(counts.total):
            if free <= 0:
                break
            if index in started:
                continue
            try:
                job = render_job(run.ref(), run.workflow, spec, run.scope(node.inputFrom, nodes, index, items[index]))
            except UnresolvedReference as exc:
                why = str(exc) if isinstance(exc, ValueTooLarge) else f"unresolved reference {exc}"
                st.mark_item(node, index, NodePhase.FAILED, why, at=run.now)
                if spec.failFast:
                    break
                continue
            st.mark_item(node, index, NodePhase.RUNNING, job_name=job["metadata"]["name"])
            self.started_now.append((node.name, index))
            run.plan.create.append(job)
            free -= 1

    def fill_running(self, may_start: bool) -> bool:
        """Starts items of the running forEach nodes (declaration order); True if one finished."""
        finished = False
        nodes = self.run.nodes()
        for spec in self.run.workflow.nodes:
            node = nodes[spec.name]
            if spec.forEach is None or node.phase != NodePhase.RUNNING:
                continue
            self.fill(node, may_start)
            finished = self.settle(node) or finished
        return finished

    # ---- results -----------------------------------------------------------------------
    def observe(self, node: NodeStatus, stopping: bool) -> list[tuple[NodeStatus, ObservedJob, int | None]]:
        """Notes the node's running items; returns its newly finished ones for record()."""
        counts = node.items
        if counts is None:
            return []
        entries = {e.index: e for e in node.itemResults or []}
        seen = self.seen(node.name)
        finished: list[tuple[NodeStatus, ObservedJob, int | None]] = []
        running = {i for i, e in entries.items() if e.phase == NodePhase.RUNNING}
        for index in sorted(set(seen) | running):
            entry = entries.get(index)
            if index >= counts.total or (entry is not None and entry.phase in FINISHED_NODE_PHASES):
                continue
            job = seen.get(index)
            if job is None:
                if not stopping:  # failed by fail_vanished, unless a stop in this pass cancels it
                    self.vanished.append((node, index))
            elif job.state == JobState.RUNNING:
                st.mark_item(node, index, NodePhase.RUNNING, job_name=job.name)
            else:
                finished.append((node, job, index))
        return finished

    def record(self, node: NodeStatus, index: int, job: ObservedJob, limit: int) -> int:
        """Records a finished item; returns the bytes its output adds to status.

        As for a node's output: one over `limit` (or over 64 KiB) is kept whole in a ConfigMap named
        from node and index, created before the status naming it (outputRef), and status keeps a
        preview; one over 1 MiB fails the item."""
        run = self.run
        kept, phase, message = finished_result(job, limit, run.spec_of(node.name).output.from_)
        size = None
        if kept.whole is not None and not (job.output_error or kept.too_large):
            size = len(kept.whole.encode())
            run.plan.config_maps.append(render_output_config_map(run.ref(), node.name, kept.whole, index))
            run.whole[item_key(node.name, index)] = kept.value
        total = node.items.total if node.items else 0
        st.mark_item(node, index, phase, message, at=job.finished_at or run.now, job_name=job.name,
                     exit_code=job.exit_code, output=kept.output, preview=fanout.preview(kept.output, total),
                     truncated=kept.truncated, output_bytes=size)
        return stored_size(kept.output)

    def settle(self, node: NodeStatus) -> bool:
        """Finishes the node when its items allow; True if it did."""
        run = self.run
        if node.phase != NodePhase.RUNNING or node.items is None:
            return False
        result = fanout.outcome(node, run.spec_of(node.name).failFast)
        if result is None:
            return False
        phase, message = result
        ref, too_large = self.keep_list(node)
        if too_large:
            phase = NodePhase.FAILED
            message = (f"{message}; the list of item outputs is over the {MAX_OUTPUT_BYTES} bytes (1 MiB) a node's "
                       f"output may be ({too_large} bytes): it is passed on to no node; let items write large data "
                       "to a volume or an object store and output its location")
        elif ref is not None and node.outputTruncated:
            message += f"; item outputs previewed in status, the whole list kept in ConfigMap {ref.configMap}"
        stamps = [e.finishedAt for e in node.itemResults or [] if e.finishedAt]
        run.mark(node, phase, max(stamps, default=None) or run.now, message, outputRef=ref)
        return True

    def keep_list(self, node: NodeStatus) -> tuple[OutputRef | None, int]:
        """The node's output, the list of its items' whole outputs in item order, as a node's output
        is kept: in status when it is all there and small; else whole in the node's ConfigMap (status
        keeps the list of previews). (outputRef, 0), or (None, size) when over 1 MiB."""
        run = self.run
        # (The list is made by the first item with an output: until then a node cancelled is the same
        # whether or not the status write that started it was lost.)
        total = node.items.total if node.items else 0
        previews = node.output = node.output if isinstance(node.output, list) else [None] * total
        refs = {e.index for e in node.itemResults or [] if e.outputBytes is not None}
        whole = [run.whole.get(item_key(node.name, i), value) if i in refs else value
                 for i, value in enumerate(previews)]
        text = input_json(whole)
        size = len(text.encode())
        if size > MAX_OUTPUT_BYTES:
            return None, size
        if not refs and size <= INLINE_INPUT_FILE_BYTES:
            return None, 0
        run.plan.config_maps.append(render_output_config_map(run.ref(), node.name, text))
        run.whole[node.name] = whole
        return OutputRef(configMap=output_config_map_name(run.execution.name, node.name), key=OUTPUT_KEY,
                         bytes=size, sha256=text_sha256(text)), 0

    def fail_vanished(self) -> None:
        """Fails the items whose Job disappeared (a stop in this pass cancelled them first, if any)."""
        for node, index in self.vanished:
            entry = next((e for e in node.itemResults or [] if e.index == index), None)
            st.mark_item(node, index, NodePhase.FAILED, f"Job {entry.jobName if entry else '?'} disappeared "
                         "before its result was read (deleted outside jobchain?)", at=self.run.now)
        self.vanished.clear()

    def stop(self, node: NodeStatus, reason: str) -> None:
        """Cancel or deadline: running item Jobs are deleted, running items Cancelled."""
        done = {e.index for e in node.itemResults or [] if e.phase in FINISHED_NODE_PHASES}
        for index, job in self.seen(node.name).items():
            # (an item recorded finished had its pod finish, whatever its Job says yet: kept)
            if index not in done and job.state == JobState.RUNNING and job.name not in self.run.plan.delete:
                self.run.plan.delete.append(job.name)
        for entry in list(node.itemResults or []):
            if entry.phase == NodePhase.RUNNING:
                st.mark_item(node, entry.index, NodePhase.CANCELLED, f"not finished: {reason}", at=self.run.now)


def _carried(node: NodeStatus, total: int) -> list[ItemStatus]:
    """The Succeeded items a retry carried over into a Pending node (engine.execution.resume): kept
    when it starts, so only the others run. None for any other node (a Pending node has no items)."""
    return [e for e in node.itemResults or [] if e.phase == NodePhase.SUCCEEDED and e.index < total]
