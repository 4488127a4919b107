"""run, get, list, logs and cancel against an in-memory stand-in for `cli.cluster.CliCluster`.

The stand-in keeps dicts as the API server sends them; the real calls are covered by
tests/e2e/test_cli.py. What is asserted here is what a user reads and the exit status.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from jobchain.api.vocabulary import EXECUTIONS
from jobchain.cli import commands, logs, run, tables, verbs
from jobchain.cli.cluster import LogNotReady
from jobchain.cli.errors import CliError

from .fakes import FakeCluster, execution

DONE: list[dict[str, Any]] = [
    {"name": "extract", "phase": "Succeeded", "startedAt": "2026-01-01T10:00:01Z",
     "finishedAt": "2026-01-01T10:00:04Z", "output": {"count": 3}, "podName": "etl-x-extract-abcde"},
    {"name": "load", "phase": "Succeeded", "startedAt": "2026-01-01T10:00:05Z",
     "finishedAt": "2026-01-01T10:00:07Z", "output": "loaded 3 rows"},
]


@pytest.mark.parametrize(("phase", "code"), [("Succeeded", 0), ("Failed", 1), ("Cancelled", 2)])
def test_run_wait_exits_with_the_phase_of_the_end(phase: str, code: int) -> None:
    cluster = FakeCluster()
    cluster.frames = [execution("etl-x7k2p", "Running", DONE[:1]), execution("etl-x7k2p", phase, DONE)]
    out = io.StringIO()
    assert run.run_workflow(cluster, "etl", {"target": "db"}, "wait", 60, out) == code
    assert cluster.created == [{
        "apiVersion": "jobchain.dev/v1alpha1", "kind": "WorkflowExecution", "metadata": {"generateName": "etl-"},
        "spec": {"workflowRef": {"name": "etl"}, "params": {"target": "db"}, "timeoutSeconds": 60}}]
    text = out.getvalue()
    assert text.startswith(f"etl-x7k2p {phase}")
    assert "Running" not in text  # --wait shows the end only
    assert "extract   Succeeded   3s" in text


def test_run_watch_prints_each_change_when_not_a_tty() -> None:
    cluster = FakeCluster()
    running = dict(DONE[1], phase="Running", finishedAt=None, output=None)
    cluster.frames = [execution("etl-x7k2p", "Running", [DONE[0], running]),
                      execution("etl-x7k2p", "Running", [DONE[0], running]),  # unchanged: not printed again
                      execution("etl-x7k2p", "Succeeded", DONE, finishedAt="2026-01-01T10:00:08Z", duration="7s")]
    out = io.StringIO()
    assert run.run_workflow(cluster, "etl", {"target": "db"}, "watch", None, out) == 0
    frames = out.getvalue().split("\n\netl-x7k2p")
    assert len(frames) == 2
    assert "load      Running" in frames[0]
    assert "etl-x7k2p Succeeded in 7s (" not in frames[0]
    assert frames[1].startswith(" Succeeded in 7s")
    assert '{"count":3}' in frames[1]
    assert "\x1b[" not in out.getvalue()  # no cursor movement in a pipe


def test_run_without_watch_prints_only_the_name() -> None:
    out = io.StringIO()
    assert run.run_workflow(FakeCluster(), "etl", {"target": "t"}, None, None, out) == 0
    assert out.getvalue() == "etl-x7k2p\n"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "spec.params: must set 'target': Workflow 'etl' declares it without a default; "
             "set params with -p NAME=VALUE, secret params with --secret-param NAME=SECRET:KEY"),
        ({"target": "t", "sise": "2"}, "spec.params.sise: Workflow 'etl' does not declare this param "
                                       "(did you mean 'size'?) (declared: size, target); set params with "
                                       "-p NAME=VALUE, secret params with --secret-param NAME=SECRET:KEY"),
    ],
)
def test_run_refuses_params_the_operator_would_refuse(params: dict[str, str], message: str) -> None:
    cluster = FakeCluster()
    with pytest.raises(CliError) as caught:
        run.run_workflow(cluster, "etl", params, None, None, io.StringIO())
    assert (caught.value.code, caught.value.message) == (3, message)
    assert cluster.created == []


def test_live_view_redraws_in_place_on_a_tty() -> None:
    out = io.StringIO()
    view = run.LiveView(out, tty=True)
    view.show("a\nb")
    view.show("a\nc")
    assert out.getvalue() == "a\nb\n\x1b[2F\x1b[Ja\nc\n"


def test_live_view_on_a_tty_redraws_while_nothing_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Durations of running nodes advance on a terminal even when the watch is quiet."""

    redrawn = threading.Event()

    class CountingView(run.LiveView):
        def show(self, text: str) -> None:
            super().show(text)
            self.frames = getattr(self, "frames", 0) + 1
            if self.frames >= 4:
                redrawn.set()

    class QuietWatch(FakeCluster):
        def watch_execution(self, name: str) -> Iterator[dict[str, Any]]:
            running = dict(DONE[1], phase="Running", finishedAt=None, output=None)
            yield execution(name, "Running", [DONE[0], running])
            assert redrawn.wait(30), "no redraw while the watch was quiet"  # the next change waits for them
            yield execution(name, "Succeeded", DONE)

    monkeypatch.setattr(run, "TICK_SECONDS", 0.05)
    seconds = iter(range(100))
    clock = lambda: datetime(2026, 1, 1, 10, 0, 10 + next(seconds), tzinfo=UTC)  # noqa: E731
    out = io.StringIO()
    run.wait_for_end(QuietWatch(), "e", CountingView(out, tty=True), clock)
    frames = out.getvalue().split("\x1b[J")
    assert len(frames) > 3  # redrawn in between, not only on the two changes
    assert "load      Running     5s+" in frames[0] and "load      Running     6s+" in frames[1]


def test_a_wait_that_no_operator_answers_says_so_once(monkeypatch: pytest.MonkeyPatch) -> None:
    class Err(io.StringIO):
        said = threading.Event()

        def write(self, text: str) -> int:
            Err.said.set()
            return super().write(text)

    class NoOperator(FakeCluster):
        def watch_execution(self, name: str) -> Iterator[dict[str, Any]]:
            created = execution(name, "Pending", [])
            del created["status"]
            yield created
            assert Err.said.wait(30), "no hint"  # the operator starts it only after the hint was given
            yield execution(name, "Succeeded", DONE)

    monkeypatch.setattr(run, "TICK_SECONDS", 0.05)
    monkeypatch.setattr(run, "NO_OPERATOR_HINT_SECONDS", 0.1)
    err = Err()
    run.wait_for_end(NoOperator(), "e", None, err=err)
    assert err.getvalue() == ("e has not been started after 0s: is the jobchain operator running and watching "
                              "namespace 'ns'? (still waiting; Ctrl-C stops)\n")


def test_logs_show_each_node_in_order_with_prefixes_and_recorded_output_for_gone_pods() -> None:
    cluster = FakeCluster()
    cluster.objects[(EXECUTIONS, "etl-1")] = execution("etl-1", "Succeeded", DONE)
    cluster.pods = {"load": ["etl-1-load-aaaaa"]}  # extract's pod was deleted
    cluster.logs = {"etl-1-load-aaaaa": "loading\nloaded 3 rows\n"}
    out = io.StringIO()
    assert logs.show_logs(cluster, "etl-1", None, out) == 0
    assert out.getvalue().splitlines() == [
        "[extract] (pod etl-x-extract-abcde is gone; the output recorded in status:)",
        '[extract] {"count": 3}',
        "[load] loading",
        "[load] loaded 3 rows",
    ]


def test_logs_of_a_retried_node_show_every_attempt_and_pending_pods() -> None:
    cluster = FakeCluster()
    nodes = [dict(DONE[0], retries=1), {"name": "load", "phase": "Skipped", "message": "edge did not hold"}]
    cluster.objects[(EXECUTIONS, "e")] = execution("e", "Running", nodes)
    cluster.pods = {"extract": ["p1", "p2"]}
    cluster.logs = {"p1": "boom\n", "p2": "NOT-READY"}
    out = io.StringIO()
    logs.show_logs(cluster, "e", None, out)
    assert out.getvalue().splitlines() == [
        "[extract] --- pod p1 (attempt 1 of 2) ---",
        "[extract] boom",
        "[extract] --- pod p2 (attempt 2 of 2) ---",
        "[extract] (pod p2 has no log yet: container main is waiting to start: ContainerCreating)",
        "[load] (Skipped, no pod ran: edge did not hold)",
    ]


def test_logs_follow_goes_node_by_node_until_the_end() -> None:
    running = dict(DONE[0], phase="Running", finishedAt=None, output=None)
    pending = {"name": "load", "phase": "Pending"}
    states = iter([
        execution("e", "Running", []),  # not started by the operator yet
        execution("e", "Running", [running, pending]),
        execution("e", "Running", [running, pending]),
        execution("e", "Running", [DONE[0], pending]),
        execution("e", "Running", [DONE[0], dict(DONE[1], phase="Running", finishedAt=None)]),
        execution("e", "Running", [DONE[0], dict(DONE[1], phase="Running", finishedAt=None)]),
    ])
    final = execution("e", "Succeeded", DONE)

    class Following(FakeCluster):
        def get(self, plural: str, name: str) -> dict[str, Any]:
            current = next(states, final)
            self.pods = {"extract": ["p1"], "load": ["p2"] if current["status"]["nodes"][1:] and
                         current["status"]["nodes"][1]["phase"] != "Pending" else []}
            return current

        def follow_log(self, pod: str) -> Iterator[str]:
            yield from {"p1": ["one", "two"], "p2": ["three"]}[pod]

    out = io.StringIO()
    assert logs.Follower(Following(), "e", out, sleep=lambda _: None).run(None) == 0
    assert out.getvalue().splitlines() == ["[extract] one", "[extract] two", "[load] three"]


def test_logs_follow_reads_a_log_whose_container_ran_between_two_polls() -> None:
    # The container was still being created on the first try; by the next poll it had run and
    # the operator had recorded the node finished (it does so the moment the container ends).
    states = iter([execution("e", "Running", [dict(DONE[0], phase="Running", finishedAt=None)])])
    final = execution("e", "Succeeded", DONE[:1])

    class Quick(FakeCluster):
        def get(self, plural: str, name: str) -> dict[str, Any]:
            self.pods = {"extract": ["p1"]}
            return next(states, final)

        def follow_log(self, pod: str) -> Iterator[str]:
            raise LogNotReady("container main is waiting to start: ContainerCreating")
            yield ""

        def read_log(self, pod: str) -> str | None:
            return "extracting\n3 rows\n"

    out = io.StringIO()
    assert logs.Follower(Quick(), "e", out, sleep=lambda _: None).run("extract") == 0
    assert out.getvalue().splitlines() == ["[extract] extracting", "[extract] 3 rows"]


def test_logs_of_an_unknown_node_name_the_nodes() -> None:
    cluster = FakeCluster()
    cluster.objects[(EXECUTIONS, "e")] = execution("e", "Running", DONE)
    with pytest.raises(CliError) as caught:
        logs.show_logs(cluster, "e", "lod", io.StringIO())
    assert caught.value.message == "execution 'e' has no node 'lod' (nodes: extract, load)"


def test_cancel_patches_a_running_execution_and_leaves_an_ended_one() -> None:
    cluster = FakeCluster()
    cluster.objects[(EXECUTIONS, "a")] = execution("a", "Running", [])
    cluster.objects[(EXECUTIONS, "b")] = execution("b", "Succeeded", DONE)
    out = io.StringIO()
    commands.cancel_execution(cluster, "a", out)
    commands.cancel_execution(cluster, "b", out)
    assert cluster.patched == ["a"]
    assert out.getvalue().splitlines()[1] == "b already ended (Succeeded); nothing to cancel"


def test_list_filters_by_workflow_and_prints_json_without_managed_fields() -> None:
    cluster = FakeCluster()
    cluster.objects[(EXECUTIONS, "a")] = execution("a", "Running", [])
    other = execution("b", "Running", [])
    other["status"]["workflowName"] = "other"
    cluster.objects[(EXECUTIONS, "b")] = other
    out = io.StringIO()
    verbs.list_objects(cluster, "executions", workflow="etl", fmt="json", out=out)
    text = out.getvalue()
    assert '"name": "a"' in text
    assert '"name": "b"' not in text
    assert "managedFields" not in text


def test_tables_of_executions_and_nodes() -> None:
    now = datetime(2026, 1, 1, 10, 5, tzinfo=UTC)
    done = execution("etl-1", "Succeeded", DONE, progress="2/2", finishedAt="2026-01-01T10:00:08Z", duration="7s")
    running = execution("etl-2", "Running", [], progress="0/2", running="extract")
    assert tables.executions_table([done, running], now).splitlines() == [
        "NAME    WORKFLOW   PHASE       PROGRESS   RUNNING   AGE   DURATION",
        "etl-1   etl        Succeeded   2/2                  5m    7s",
        "etl-2   etl        Running     0/2        extract   5m",
    ]
    assert tables.nodes_table(done, now).splitlines() == [
        "NODE      PHASE       DURATION   RETRIES   OUTPUT",
        'extract   Succeeded   3s                   {"count":3}',
        "load      Succeeded   2s                   loaded 3 rows",
    ]


def test_get_shows_details_and_nodes() -> None:
    cluster = FakeCluster()
    cluster.objects[(EXECUTIONS, "etl-1")] = execution("etl-1", "Failed", DONE, reason="NodeFailed",
                                                       message="node(s) load failed", params={"target": "db"})
    out = io.StringIO()
    commands.get_execution(cluster, "etl-1", None, out)
    lines = out.getvalue().splitlines()
    assert lines[:6] == ["Name:      etl-1", "Namespace: ns", "Workflow:  etl", "Phase:     Failed",
                         "Reason:    NodeFailed", "Message:   node(s) load failed"]
    assert "Params:    target=db" in lines
    assert lines[-1].startswith("load      Succeeded")


@pytest.mark.parametrize(("value", "summary"), [
    (None, ""), ("a\nb", "a b"), ({"b": 1, "a": [1, 2]}, '{"a":[1,2],"b":1}'), ("x" * 60, "x" * 45 + "..."),
])
def test_output_summary_is_one_short_line(value: Any, summary: str) -> None:
    assert tables.output_summary(value) == summary
