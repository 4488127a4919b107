"""Every change to an execution's or a workflow's status goes through the functions here.

Why one place: a finished node must never change, `finishedAt` is set once, the Succeeded
and Ready conditions follow one `lastTransitionTime` rule, and every message fits a size
budget so the whole status of a 500-node execution stays far below etcd's object limit.
When each of those rules lived where a phase was set (the planner set phases by hand in
eight places, the controller in three more), each copy drifted. The planner, the refusal of
a Job, the refusals, holds and resumes of `engine.execution.passes` and the Workflow Ready
condition call these functions; Events and metrics are derived afterwards by comparing old and new status
(`engine.execution.events`), so nothing else needs to know what changed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from jobchain.api.models import (
    FINISHED_NODE_PHASES,
    TERMINAL_EXECUTION_PHASES,
    Condition,
    ExecutionPhase,
    ExecutionStatus,
    ItemCounts,
    ItemStatus,
    NodePhase,
    NodeStatus,
    Outcome,
    OutputRef,
    ResumedFrom,
    WorkflowSpec,
    WorkflowStatus,
)
from jobchain.engine.spec.render import OUTPUT_KEY, item_key, items_list_key, output_config_map_name
from jobchain.engine.timefmt import format_duration, iso, parse_time

# Messages. A node's message holds what went wrong (an exit code, the last log lines, a
# refusal by the API server): all node messages together get NODE_MESSAGE_BUDGET, split
# evenly between the nodes (so the cap of each is known before any runs and never depends
# on the order in which nodes finish), but never less than NODE_MESSAGE_MIN each.
NODE_MESSAGE_BUDGET = 128 * 1024
NODE_MESSAGE_MAX = 2048
NODE_MESSAGE_MIN = 256
EXECUTION_MESSAGE_LIMIT = 2048
NAMED_IN_MESSAGE = 3  # the execution message names at most this many nodes, then "and N more"

_NODE_FIELDS = frozenset(NodeStatus.model_fields) - {"name", "phase", "message"}


def node_message_limit(node_count: int) -> int:
    return max(NODE_MESSAGE_MIN, min(NODE_MESSAGE_MAX, NODE_MESSAGE_BUDGET // max(1, node_count)))


def cut(text: str, limit: int) -> str:
    """`text` if it fits in `limit` UTF-8 bytes, else a prefix of it saying how much was cut."""
    data = text.encode("utf-8", errors="replace")
    if len(data) <= limit:
        return text
    longest_note = len(f"... ({len(data)} more bytes)")
    if limit < 2 * longest_note:  # (an item message of a large fan-out: the note would leave no text)
        return data[: max(0, limit - 3)].decode("utf-8", errors="ignore") + "..."
    head = data[: max(0, limit - longest_note)].decode("utf-8", errors="ignore")
    return f"{head}... ({len(data) - len(head.encode())} more bytes)"


def names_with_more(names: list[str], limit: int = NAMED_IN_MESSAGE) -> str:
    """'a, b, c and 237 more': a message names a few nodes, never all of 500."""
    shown = ", ".join(names[:limit])
    return f"{shown} and {len(names) - limit} more" if len(names) > limit else shown


def _stamp(at: datetime | str) -> str:
    return at if isinstance(at, str) else iso(at)


# ---- nodes ---------------------------------------------------------------------------------

def mark_node(node: NodeStatus, phase: NodePhase, at: datetime | str, message: str | None = None, *,
              message_limit: int = NODE_MESSAGE_MAX, **fields: Any) -> bool:
    """Moves a node to `phase` (with the other fields given); False, and nothing changed, if it
    had finished already: a finished node never changes.

    `startedAt` is set when the node starts running (unless given), `finishedAt` when it reaches
    a final phase (unless given), each only once. `at` is a time or a timestamp as stored.
    """
    if node.phase in FINISHED_NODE_PHASES:
        return False
    unknown = set(fields) - _NODE_FIELDS
    if unknown:
        raise TypeError(f"not NodeStatus fields: {sorted(unknown)}")
    for key, value in fields.items():
        setattr(node, key, value)
    node.phase = phase
    if phase != NodePhase.PENDING:
        node.edgesDecided = None  # decided: what was kept while it waited has served
    if message is not None:
        node.message = cut(message, message_limit)
    if phase == NodePhase.RUNNING and node.startedAt is None:
        node.startedAt = _stamp(at)
    if phase in FINISHED_NODE_PHASES and node.finishedAt is None:
        node.finishedAt = _stamp(at)
    return True


def revoke_output(node: NodeStatus, problem: str, message_limit: int = NODE_MESSAGE_MAX) -> bool:
    """The one change a finished node may see: its output, kept whole in a ConfigMap, was found
    forged (`problem` says how). No one was handed it (each read is checked), and from now on no
    one is: the node Fails, its output and outputRef dropped. False if it was revoked already."""
    if node.outputRef is None:
        return False
    node.phase = NodePhase.FAILED
    node.output, node.outputRef, node.outputTruncated = None, None, False
    node.message = cut(f"{problem}; its output is not passed on", message_limit)
    return True


def note_job(node: NodeStatus, job_name: str, at: datetime | str, retries: int) -> None:
    """A running node's Job as observed (adopted after a lost write, or its retries counted)."""
    if node.phase in FINISHED_NODE_PHASES:
        return
    node.jobName = job_name
    node.retries = retries
    mark_node(node, NodePhase.RUNNING, at)


def ignore_decision(node: NodeStatus, decision: str) -> None:
    """An approval gate's decision in spec that came after the gate was decided otherwise: named once
    (the only change a finished node takes; a Warning Event is derived from it)."""
    if node.phase in FINISHED_NODE_PHASES and node.ignoredDecision != decision:
        node.ignoredDecision = decision


def keep_edges(node: NodeStatus, decided: list[bool]) -> None:
    """The first incoming edges of a waiting node, as a pass decided them, for later passes to go on
    from (a condition is decided once). Never fewer than were kept already."""
    if node.phase == NodePhase.PENDING and len(decided) > len(node.edgesDecided or ""):
        node.edgesDecided = "".join("1" if held else "0" for held in decided)


def restore_input(node: NodeStatus, source: str | None) -> None:
    """The input of a node whose Job a pass created and whose status write was lost: set once, also
    on a node that finished meanwhile (its Job got that input when it was created)."""
    if node.inputFrom is None:
        node.inputFrom = source


# ---- forEach items -------------------------------------------------------------------------
# An item's entry is small: its output lives once, in the node's output list; the entry keeps a
# preview whose length shrinks with the number of items, so 5,000 items stay within budget.
# Messages too (a failed item's exit code and log tail): 256 bytes each for 5,000 failed items
# made a status of 2 MB, which the API server refuses; all of a node's item messages share
# ITEM_MESSAGE_BUDGET instead, each capped from the node's item count, known before any item runs.
ITEM_PREVIEW_BUDGET = 32 * 1024
ITEM_PREVIEW_MAX = 64
ITEM_MESSAGE_BUDGET = 128 * 1024
ITEM_MESSAGE_MAX = 256


def item_preview_limit(total: int) -> int:
    return min(ITEM_PREVIEW_MAX, ITEM_PREVIEW_BUDGET // max(1, total))


def item_message_limit(total: int) -> int:
    """The bytes each item message of a node with `total` items keeps (26 for 5,000 items)."""
    return min(ITEM_MESSAGE_MAX, ITEM_MESSAGE_BUDGET // max(1, total))


def mark_item(node: NodeStatus, index: int, phase: NodePhase, message: str | None = None, *,
              at: datetime | str | None = None, job_name: str | None = None, exit_code: int | None = None,
              output: Any = None, preview: str | None = None, truncated: bool = False,
              output_bytes: int | None = None) -> bool:
    """Records one item of a running forEach node; False, nothing changed, if the node or the
    item had finished already (a finished item never changes, like a finished node).

    The item's output goes into the node's output list at its index; the counts follow."""
    if node.phase in FINISHED_NODE_PHASES or node.items is None:
        return False
    results = node.itemResults if node.itemResults is not None else []
    entry = next((e for e in results if e.index == index), None)
    if entry is not None and entry.phase in FINISHED_NODE_PHASES:
        return False
    if entry is None:
        entry = ItemStatus(index=index)
        results.append(entry)
        results.sort(key=lambda e: e.index)
    entry.phase = phase
    if job_name is not None:
        entry.jobName = job_name
    if exit_code:  # (0 is the rule: not stored, 5,000 entries are kept small)
        entry.exitCode = exit_code
    if message:
        entry.message = cut(message, item_message_limit(node.items.total))
    if preview is not None:
        entry.preview = preview
    if output_bytes is not None:
        entry.outputBytes = output_bytes
    if phase in FINISHED_NODE_PHASES and entry.finishedAt is None and at is not None:
        entry.finishedAt = _stamp(at)
    if phase in FINISHED_NODE_PHASES and output is not None:
        outputs = list(node.output) if isinstance(node.output, list) else [None] * node.items.total
        outputs[index] = output
        node.output = outputs
    if truncated:  # said once for the node (outputTruncated), not in 5,000 item messages
        node.outputTruncated = True
    node.itemResults = results
    _count_items(node)
    return True


def unmark_item(node: NodeStatus, index: int) -> None:
    """Takes back the start of one item that a pass planned and then did not make (its Job was
    never created): the entry goes, the counts follow."""
    if node.items is None or node.itemResults is None:
        return
    node.itemResults = [e for e in node.itemResults if e.index != index]
    _count_items(node)


def _count_items(node: NodeStatus) -> None:
    """A forEach node's item counts, from its item entries."""
    assert node.items is not None
    results = node.itemResults or []
    node.items = ItemCounts(
        total=node.items.total,
        succeeded=sum(1 for e in results if e.phase == NodePhase.SUCCEEDED),
        failed=sum(1 for e in results if e.phase == NodePhase.FAILED),
        running=sum(1 for e in results if e.phase == NodePhase.RUNNING),
    )


def output_refs(status: ExecutionStatus, execution: str) -> dict[str, OutputRef]:
    """The outputs kept whole in ConfigMaps that the planner needs (status holds previews of them),
    by node, or by node#index for the items of a forEach node that has not finished (a finished
    one keeps its whole list in its own outputRef). An item's ConfigMap is named from execution,
    node and index, as its Job is, so its status entry stays small (5,000 of them must fit).
    Also the item list of each running forEach node (keyed node#items), kept when it started, so
    its CEL is evaluated once (the size is not in status: 0 here, the reader needs only the name)."""
    refs = {n.name: n.outputRef for n in status.nodes if n.outputRef is not None}
    for node in status.nodes:
        if node.phase in FINISHED_NODE_PHASES:
            continue
        if node.phase == NodePhase.RUNNING and node.items is not None and node.items.total:
            key = items_list_key(node.name)
            refs[key] = OutputRef(configMap=output_config_map_name(execution, key), key=OUTPUT_KEY, bytes=0)
        for entry in node.itemResults or []:
            if entry.outputBytes is not None:
                key = item_key(node.name, entry.index)
                refs[key] = OutputRef(configMap=output_config_map_name(execution, key), key=OUTPUT_KEY,
                                      bytes=entry.outputBytes)
    return refs


# ---- the execution -------------------------------------------------------------------------

def begin(status: ExecutionStatus, workflow_name: str, workflow: WorkflowSpec, params: dict[str, str],
          at: datetime | str, secret_params: list[str] | None = None) -> None:
    """Takes the Workflow snapshot: from now on the execution runs this spec and these params.
    `at` is when the execution started (its creation, so that a replayed start keeps it).

    Secret params are named, never valued: their values go from the Secret to the pod."""
    status.startedAt = status.startedAt or _stamp(at)
    status.workflowName = workflow_name
    status.params = params
    status.secretParams = secret_params or None
    status.workflowSpec = workflow
    status.nodes = [NodeStatus(name=n.name) for n in workflow.nodes]
    status.nodes += [NodeStatus(name=n.name, finally_=True) for n in workflow.finally_]
    status.phase = ExecutionPhase.RUNNING
    status.reason = "Running"
    status.message = ""  # a Queued message no longer holds


def pin_resumed(status: ExecutionStatus, source: ResumedFrom) -> None:
    """A retry's first read of the execution it resumes (`engine.execution.rerun`): kept as read."""
    if status.resumedFrom is None:
        status.resumedFrom = source


def hold(status: ExecutionStatus, reason: str, message: str, at: datetime) -> None:
    """Keeps an execution Pending, saying why (Queued: waiting for a slot of its Workflow)."""
    if status.phase in TERMINAL_EXECUTION_PHASES or status.workflowSpec is not None:
        return
    status.phase = ExecutionPhase.PENDING
    status.reason = reason
    status.message = cut(message, EXECUTION_MESSAGE_LIMIT)
    _succeeded_condition(status, at)


def finish(status: ExecutionStatus, phase: ExecutionPhase, reason: str, message: str, at: datetime) -> bool:
    """Ends the execution (once: False if it had ended already). Sets the Succeeded condition."""
    if status.phase in TERMINAL_EXECUTION_PHASES:
        return False
    status.phase = phase
    status.reason = reason
    status.message = cut(message, EXECUTION_MESSAGE_LIMIT)
    status.startedAt = status.startedAt or iso(at)
    status.finishedAt = iso(at)
    started = parse_time(status.startedAt) or at
    status.duration = format_duration((at - started).total_seconds())
    _succeeded_condition(status, at)
    return True


def record_outcome(status: ExecutionStatus, outcome: Outcome) -> bool:
    """Records how the main graph ended, once (False if it was recorded already): the execution
    goes on Running while its finally nodes run, and then ends with this outcome's phase."""
    if status.outcome is not None or status.phase in TERMINAL_EXECUTION_PHASES:
        return False
    status.outcome = outcome.model_copy(update={"message": cut(outcome.message, EXECUTION_MESSAGE_LIMIT)})
    status.message = cut(f"{outcome.phase} ({outcome.reason}); running the finally nodes", EXECUTION_MESSAGE_LIMIT)
    return True


def summarize(status: ExecutionStatus, generation: int | None, at: datetime) -> None:
    """The fields derived from the nodes (progress, running) and the Succeeded condition."""
    status.observedGeneration = generation
    if status.nodes:
        done = sum(1 for n in status.nodes if n.phase in FINISHED_NODE_PHASES)
        status.progress = f"{done}/{len(status.nodes)}"
        # kubectl's Progress column: a running fan-out shows how far its items are
        fanning = [n.items for n in status.nodes if n.phase == NodePhase.RUNNING and n.items is not None]
        if fanning:
            finished = sum(c.succeeded + c.failed for c in fanning)
            status.progress += f" ({finished}/{sum(c.total for c in fanning)} items)"
    running = [n.name if n.phase == NodePhase.RUNNING else f"{n.name} (waiting)"
               for n in status.nodes if n.phase in (NodePhase.RUNNING, NodePhase.WAITING)]
    status.running = ",".join(running) if running else None
    _succeeded_condition(status, at)


def _succeeded_condition(status: ExecutionStatus, at: datetime) -> None:
    value = {ExecutionPhase.SUCCEEDED: "True", ExecutionPhase.FAILED: "False",
             ExecutionPhase.CANCELLED: "False"}.get(ExecutionPhase(status.phase), "Unknown")
    status.conditions = set_condition(status.conditions, Condition(
        type="Succeeded", status=value, reason=status.reason or str(status.phase), message=status.message,
    ), at)


def set_condition(conditions: list[Condition], new: Condition, at: datetime) -> list[Condition]:
    """`conditions` with `new` in place of the one of its type. The one lastTransitionTime rule
    (as Kubernetes' own meta.SetStatusCondition): it changes when the condition's status changes,
    not when only its reason or message does."""
    old = next((c for c in conditions if c.type == new.type), None)
    keep = old is not None and old.status == new.status and old.lastTransitionTime is not None
    new = new.model_copy(update={"lastTransitionTime": old.lastTransitionTime if keep and old else iso(at)})
    return [new if c.type == new.type else c for c in conditions] if old else [*conditions, new]


# ---- workflows -----------------------------------------------------------------------------

def workflow_ready(old: WorkflowStatus, generation: int | None, node_count: int | None, problems: list[str],
                   at: datetime) -> WorkflowStatus:
    """A Workflow's status: Ready True, or False with its problems (named a few at a time)."""
    if problems:
        shown = "; ".join(problems[:20]) + (f"; and {len(problems) - 20} more" if len(problems) > 20 else "")
        message = cut(shown, EXECUTION_MESSAGE_LIMIT)
    else:
        message = f"{node_count} node(s), valid"
    ready = Condition(
        type="Ready",
        status="False" if problems else "True",
        reason="InvalidWorkflow" if problems else "Valid",
        message=message,
        observedGeneration=generation,
    )
    return WorkflowStatus(observedGeneration=generation, nodeCount=node_count,
                          conditions=set_condition(old.conditions, ready, at))
