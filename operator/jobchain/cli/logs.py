"""`jobchain logs`: each node's pod log in execution order, every line prefixed with `[node]`
(`[node#3]` for item 3 of a forEach node).

Pods are found by their labels (execution and node), not by the name recorded in status,
so every attempt of a retried node is shown. Pods do not live forever (Job TTL, deletion,
node loss) but outputs are kept in the execution's status: where a pod is gone, that is
said and the recorded output is shown instead. With --follow, nodes are followed one
after another in the order of status.nodes, a forEach node's items by index, each line
prefixed `[node#index]`; a node (or item) that runs in parallel with an earlier one is shown
once the earlier one is done (no line is lost, only delayed).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import IO, Any

from jobchain.api.models import FINISHED_NODE_PHASES, TERMINAL_EXECUTION_PHASES, NodePhase, NodeStatus
from jobchain.api.vocabulary import EXECUTIONS, LABEL_ITEM
from jobchain.cli.cluster import ClusterCalls, LogNotReady
from jobchain.cli.errors import usage_error
from jobchain.cli.tables import status_of
from jobchain.engine.spec.render import item_key, split_key

POLL_SECONDS = 1.0


def prefixed(node: str, text: str) -> list[str]:
    lines = text.splitlines() or ([""] if text else [])
    return [f"[{node}] {line}".rstrip() for line in lines]


def recorded_output(node: NodeStatus) -> list[str]:
    """The lines shown for a node whose pod is gone: a note, then the output kept in status."""
    pod = f"pod {node.podName}" if node.podName else "its pod"
    if node.output is None:
        return prefixed(node.name, f"({pod} is gone and no output was recorded; node {node.phase})")
    text = node.output if isinstance(node.output, str) else json.dumps(node.output, sort_keys=True)
    truncated = ", truncated" if node.outputTruncated else ""
    return prefixed(node.name, f"({pod} is gone; the output recorded in status{truncated}:)") + prefixed(
        node.name, text
    )


def no_pod_note(node: NodeStatus, ended: bool = False) -> list[str]:
    if node.phase == NodePhase.PENDING:
        return prefixed(node.name, "(never started: the execution ended)" if ended else "(not started yet)")
    if node.phase in (NodePhase.SKIPPED, NodePhase.CANCELLED) and not node.startedAt:
        reason = f": {node.message}" if node.message else ""
        return prefixed(node.name, f"({node.phase}, no pod ran{reason})")
    return recorded_output(node)


def select_nodes(execution: dict[str, Any], node: str | None) -> list[NodeStatus]:
    nodes = status_of(execution).nodes
    if node is None:
        return nodes
    chosen = [n for n in nodes if n.name == node]
    if not chosen:
        name = execution["metadata"]["name"]
        known = ", ".join(n.name for n in nodes)
        raise usage_error(
            f"execution {name!r} has no node {node!r}"
            + (f" (nodes: {known})" if known else " (it has not started yet)")
        )
    return chosen


def node_log_lines(cluster: ClusterCalls, execution: str, node: NodeStatus, ended: bool) -> list[str]:
    pods = cluster.node_pods(execution, node.name)
    if not pods:
        return no_pod_note(node, ended)
    if node.items is not None:
        return item_log_lines(cluster, node, pods)
    return pod_log_lines(cluster, node.name, node, pods)


def pod_log_lines(cluster: ClusterCalls, prefix: str, node: NodeStatus, pods: list[dict[str, Any]]) -> list[str]:
    lines: list[str] = []
    for attempt, pod in enumerate(pods, start=1):
        pod_name = pod["metadata"]["name"]
        if len(pods) > 1:
            lines += prefixed(prefix, f"--- pod {pod_name} (attempt {attempt} of {len(pods)}) ---")
        try:
            text = cluster.read_log(pod_name)
        except LogNotReady as exc:
            lines += prefixed(prefix, f"(pod {pod_name} has no log yet: {exc})")
            continue
        if text is None:
            lines += recorded_output(node) if prefix == node.name else prefixed(prefix, f"({pod_name} is gone)")
        else:
            lines += prefixed(prefix, text)
    return lines


def item_log_lines(cluster: ClusterCalls, node: NodeStatus, pods: list[dict[str, Any]]) -> list[str]:
    """A forEach node: each item's pods in item order, prefixed `[node#index]`."""
    by_item: dict[int, list[dict[str, Any]]] = {}
    for pod in pods:
        _, index = split_key(pod_prefix(node.name, pod))
        if index is not None:
            by_item.setdefault(index, []).append(pod)
    lines: list[str] = []
    for index in sorted(by_item):
        lines += pod_log_lines(cluster, item_key(node.name, index), node, by_item[index])
    return lines


def pod_prefix(node: str, pod: dict[str, Any]) -> str:
    """`node`, or `node#index` for the pod of a forEach item."""
    index = (pod["metadata"].get("labels") or {}).get(LABEL_ITEM) or ""
    return item_key(node, int(index)) if index.isdigit() else node


def show_logs(cluster: ClusterCalls, name: str, node: str | None, out: IO[str]) -> int:
    execution = cluster.with_whole_outputs(cluster.get(EXECUTIONS, name))
    nodes = select_nodes(execution, node)
    if not nodes:
        phase = status_of(execution).phase if execution.get("status") else "not started by the operator yet"
        print(f"{name} has no nodes yet ({phase}); nothing to show", file=out)
        return 0
    ended = bool(execution.get("status")) and status_of(execution).phase in TERMINAL_EXECUTION_PHASES
    for item in nodes:
        for line in node_log_lines(cluster, name, item, ended):
            print(line, file=out)
    return 0


class Follower:
    """Follows one node after another until the execution ends."""

    def __init__(
        self, cluster: ClusterCalls, name: str, out: IO[str], sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.cluster = cluster
        self.name = name
        self.out = out
        self.sleep = sleep

    def emit(self, lines: list[str]) -> None:
        for line in lines:
            print(line, file=self.out, flush=True)

    def refresh(self) -> tuple[dict[str, Any], bool]:
        execution = self.cluster.get(EXECUTIONS, self.name)
        ended = bool(execution.get("status")) and status_of(execution).phase in TERMINAL_EXECUTION_PHASES
        return execution, ended

    def node_names(self, node: str | None) -> list[str]:
        """Waits until the operator has listed the nodes (or the execution ended without any)."""
        while True:
            execution, ended = self.refresh()
            if status_of(execution).nodes or ended:
                return [n.name for n in select_nodes(execution, node)]
            self.sleep(POLL_SECONDS)

    def follow_pod(self, node: str, pod: str, prefix: str | None = None) -> None:
        """Prints the pod's log as it comes, each line prefixed `[prefix]` (the node, or node#index)."""
        prefix = prefix or node
        while True:
            try:
                for line in self.cluster.follow_log(pod):
                    self.emit(prefixed(prefix, line) or [f"[{prefix}]"])
                return
            except LogNotReady as exc:
                self.sleep(POLL_SECONDS)  # the container is being created (or cannot start: image pull)
                execution, ended = self.refresh()
                status = next((n for n in status_of(execution).nodes if n.name == node), None)
                if ended or status is None or status.phase in FINISHED_NODE_PHASES or self.item_done(status, prefix):
                    # The container may have run and ended between two polls (a node is recorded
                    # finished the moment its container ends): its log is there to read whole.
                    try:
                        text = self.cluster.read_log(pod)
                    except LogNotReady:
                        text = None
                    if text is None:
                        self.emit(prefixed(prefix, f"(pod {pod} never started: {exc})"))
                    else:
                        self.emit(prefixed(prefix, text))
                    return
                if not any(p["metadata"]["name"] == pod for p in self.cluster.node_pods(self.name, node)):
                    return

    @staticmethod
    def item_done(status: NodeStatus, prefix: str) -> bool:
        """Whether the forEach item `prefix` (node#index) is recorded finished."""
        _, index = split_key(prefix)
        return index is not None and any(e.index == index and e.phase in FINISHED_NODE_PHASES
                                         for e in status.itemResults or [])

    def follow_node(self, name: str) -> None:
        """Follows the node's pods one after another; a forEach node's by item index, each line
        prefixed `[node#index]` (items that run at once are shown one after the other)."""
        shown: set[str] = set()
        attempts: dict[str, int] = {}  # prefix -> pods shown
        while True:
            execution, ended = self.refresh()
            status = next(n for n in status_of(execution).nodes if n.name == name)
            pods = [(pod_prefix(name, p), p["metadata"]["name"]) for p in self.cluster.node_pods(self.name, name)]
            new = [(prefix, pod) for prefix, pod in pods if pod not in shown]
            new.sort(key=lambda pair: split_key(pair[0])[1] or 0)
            for prefix, pod in new:
                if attempts.get(prefix) or (status.retries and status.items is None):
                    self.emit(prefixed(prefix, f"--- pod {pod} (attempt {attempts.get(prefix, 0) + 1}) ---"))
                shown.add(pod)
                attempts[prefix] = attempts.get(prefix, 0) + 1
                self.follow_pod(name, pod, prefix)
            if status.phase in FINISHED_NODE_PHASES or ended:
                if not shown:
                    self.emit(no_pod_note(status, ended))
                return
            if not pods or {pod for _, pod in pods} <= shown:
                self.sleep(POLL_SECONDS)

    def run(self, node: str | None) -> int:
        for name in self.node_names(node):
            self.follow_node(name)
        return 0


def follow_logs(cluster: ClusterCalls, name: str, node: str | None, out: IO[str]) -> int:
    return Follower(cluster, name, out).run(node)
