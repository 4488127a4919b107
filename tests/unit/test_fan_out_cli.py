"""What the CLI shows of a forEach node: item counts in `get`, `[node#index]` log prefixes, graph marks."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from jobchain.api.models import WorkflowSpec
from jobchain.api.vocabulary import EXECUTIONS
from jobchain.cli import graphs, logs, tables

from .fakes import FakeCluster, execution

CONVERT: dict[str, Any] = {
    "name": "convert", "phase": "Running", "startedAt": "2026-01-01T10:00:01Z",
    "items": {"total": 100, "succeeded": 36, "failed": 1, "running": 3},
}


class ItemPods(FakeCluster):
    def node_pods(self, execution: str, node: str) -> list[dict[str, Any]]:
        return [{"metadata": {"name": pod, "labels": {"jobchain.dev/item": pod.rsplit("-", 1)[1]}}}
                for pod in self.pods.get(node, [])]


def test_get_shows_how_far_the_items_are() -> None:
    now = datetime(2026, 1, 1, 10, 1, tzinfo=UTC)
    table = tables.nodes_table(execution("e", "Running", [CONVERT]), now).splitlines()
    assert table[1].startswith("convert   Running  37/100 items, 1 failed   59s+")


def test_logs_prefix_each_item_with_its_index_in_item_order() -> None:
    cluster = ItemPods()
    done = dict(CONVERT, phase="Succeeded", items={"total": 2, "succeeded": 2, "failed": 0, "running": 0})
    cluster.objects[(EXECUTIONS, "e")] = execution("e", "Succeeded", [done])
    cluster.pods = {"convert": ["e-convert-1", "e-convert-0"]}
    cluster.logs = {"e-convert-0": "converting a.csv\n", "e-convert-1": "converting b.csv\n"}
    out = io.StringIO()
    assert logs.show_logs(cluster, "e", "convert", out) == 0
    assert out.getvalue().splitlines() == ["[convert#0] converting a.csv", "[convert#1] converting b.csv"]


def test_graph_marks_for_each_nodes() -> None:
    wf = WorkflowSpec.model_validate({"defaults": {"image": "busybox"}, "nodes": [
        {"name": "list", "script": "x", "next": [{"node": "convert"}]},
        {"name": "convert", "forEach": "input.files", "script": "echo $(item)"}]})
    assert "convert  (forEach: input.files)" in graphs.render_text(wf)
    assert "forEach: input.files" in graphs.render_mermaid(wf)
    assert '"convert" [peripheries=2, xlabel="forEach: input.files"];' in graphs.render_dot(wf)


def test_logs_follow_prefixes_each_item_with_its_index() -> None:
    running = dict(CONVERT, items={"total": 3, "succeeded": 0, "failed": 0, "running": 3})
    done = dict(CONVERT, phase="Succeeded", items={"total": 3, "succeeded": 3, "failed": 0, "running": 0})
    states = iter([execution("e", "Running", [running])])

    class Following(ItemPods):
        def get(self, plural: str, name: str) -> dict[str, Any]:
            self.pods = {"convert": ["e-convert-2", "e-convert-0", "e-convert-1"]}
            return next(states, execution("e", "Succeeded", [done]))

        def follow_log(self, pod: str) -> Iterator[str]:
            index = pod.rsplit("-", 1)[1]
            yield from [f"converting {index}", "done"]

    out = io.StringIO()
    assert logs.Follower(Following(), "e", out, sleep=lambda _: None).run("convert") == 0
    assert out.getvalue().splitlines() == [
        "[convert#0] converting 0", "[convert#0] done",
        "[convert#1] converting 1", "[convert#1] done",
        "[convert#2] converting 2", "[convert#2] done",
    ]
