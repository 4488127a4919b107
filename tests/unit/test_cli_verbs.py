"""wait, delete, list (-A, -l, --phase, kinds), get --watch, and run's --timeout/--deadline, against the
in-memory stand-in for the cluster (`fakes.FakeCluster`). The same verbs run against a real cluster in
tests/e2e/test_cli_verbs.py."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest

from jobchain.api.vocabulary import EXECUTIONS, SCHEDULES, WORKFLOWS
from jobchain.cli import main as cli_main
from jobchain.cli import run, verbs
from jobchain.cli.errors import CliError, Exit

from .fakes import FakeCluster, execution

DONE = [{"name": "extract", "phase": "Succeeded"}, {"name": "load", "phase": "Succeeded"}]


def ticking(step: float) -> Any:
    """A monotonic clock that moves `step` seconds each time it is read (no real waiting)."""
    now = [0.0]

    def read() -> float:
        now[0] += step
        return now[0]
    return read


@pytest.mark.parametrize(("phase", "code"), [("Succeeded", 0), ("Failed", 1), ("Cancelled", 2)])
def test_wait_exits_with_the_phase_the_execution_ended_in(phase: str, code: int) -> None:
    cluster = FakeCluster()
    cluster.frames = [execution("e1", "Running", []), execution("e1", phase, DONE)]
    out, err = io.StringIO(), io.StringIO()
    assert verbs.wait_execution(cluster, "e1", None, None, out, err) == code
    assert out.getvalue() == f"e1 {phase}\n"


def test_wait_for_a_phase_returns_as_soon_as_it_is_reached() -> None:
    cluster = FakeCluster()
    cluster.frames = [execution("e1", "Pending", []), execution("e1", "Running", [])]  # and no end
    out, err = io.StringIO(), io.StringIO()
    assert verbs.wait_execution(cluster, "e1", "Running", None, out, err) == 0
    assert out.getvalue() == "e1 Running\n"


def test_wait_for_a_phase_the_execution_ended_without_exits_1_and_says_so() -> None:
    cluster = FakeCluster()
    cluster.frames = [execution("e1", "Running", []), execution("e1", "Failed", DONE)]
    out, err = io.StringIO(), io.StringIO()
    assert verbs.wait_execution(cluster, "e1", "Succeeded", None, out, err) == 1
    assert err.getvalue() == "e1 ended Failed: it will never be Succeeded\n"


def test_a_wait_limit_gives_up_with_exit_6_and_leaves_the_execution_running() -> None:
    cluster = FakeCluster()
    cluster.frames = [execution("e1", "Running", [])] * 5
    with pytest.raises(CliError) as caught:
        run.wait_for_end(cluster, "e1", None, limit=3, monotonic=ticking(1.0))
    assert caught.value.code == Exit.TIMEOUT == 6
    assert caught.value.message == "e1 is still Running after --timeout 3s; it keeps running (jobchain cancel e1 " \
                                   "stops it)"
    assert cluster.patched == []  # not cancelled


def test_run_wait_timeout_is_a_wait_limit_and_deadline_sets_the_spec(monkeypatch: pytest.MonkeyPatch,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    cluster = FakeCluster()
    cluster.frames = [execution("etl-x7k2p", "Running", [])] * 5
    monkeypatch.setattr("jobchain.cli.cluster.connect", lambda *_: cluster)
    monkeypatch.setattr(run, "seconds", ticking(10.0))
    code = cli_main.main(["run", "etl", "-p", "target=db", "--wait", "--timeout", "30", "--deadline", "600"])
    assert code == 6
    assert cluster.created[0]["spec"]["timeoutSeconds"] == 600  # --deadline, not --timeout
    assert "etl-x7k2p is still Running after --timeout 30s" in capsys.readouterr().err


def test_run_timeout_without_wait_is_refused_and_points_at_deadline(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main.main(["run", "etl", "--timeout", "60"]) == 3
    assert capsys.readouterr().err == ("jobchain: error: --timeout 60 limits --wait or --watch; give one of them, "
                                       "or set the execution's deadline with --deadline 60\n")


def test_delete_deletes_each_name_and_reports_the_missing_ones() -> None:
    cluster = FakeCluster()
    for name in ("a", "b"):
        cluster.objects[(EXECUTIONS, name)] = execution(name, "Succeeded", [])
    out, err = io.StringIO(), io.StringIO()
    assert verbs.delete_executions(cluster, ["a", "nope", "b"], out, err) == 3
    assert cluster.deleted == ["a", "b"]
    assert out.getvalue() == "workflowexecution 'a' deleted\nworkflowexecution 'b' deleted\n"
    assert err.getvalue() == "error: workflowexecutions 'nope' not found\n"


def labelled(name: str, phase: str, namespace: str = "ns", **labels: str) -> dict[str, Any]:
    body = execution(name, phase, [])
    body["metadata"].update(namespace=namespace, labels=labels)
    return body


def test_list_all_namespaces_shows_the_namespace_of_each_execution() -> None:
    cluster = FakeCluster()
    cluster.objects[(EXECUTIONS, "a")] = labelled("a", "Running")
    cluster.elsewhere.append((EXECUTIONS, labelled("b", "Failed", namespace="team-b")))
    out = io.StringIO()
    verbs.list_objects(cluster, "executions", all_namespaces=True, out=out)
    lines = out.getvalue().splitlines()
    assert lines[0].split()[:3] == ["NAMESPACE", "NAME", "WORKFLOW"]
    assert [line.split()[:2] for line in lines[1:]] == [["ns", "a"], ["team-b", "b"]]
    out = io.StringIO()
    verbs.list_objects(cluster, "executions", out=out)
    assert [line.split()[0] for line in out.getvalue().splitlines()] == ["NAME", "a"]


def test_list_selects_by_label_and_by_phase() -> None:
    cluster = FakeCluster()
    cluster.objects[(EXECUTIONS, "a")] = labelled("a", "Running", team="x")
    cluster.objects[(EXECUTIONS, "b")] = labelled("b", "Failed", team="x")
    cluster.objects[(EXECUTIONS, "c")] = labelled("c", "Failed", team="y")
    out = io.StringIO()
    verbs.list_objects(cluster, "executions", selector="team=x", phase="Failed", out=out)
    assert [line.split()[0] for line in out.getvalue().splitlines()] == ["NAME", "b"]
    out = io.StringIO()
    verbs.list_objects(cluster, "executions", selector="team=z", out=out)
    assert out.getvalue() == "no executions in namespace 'ns' matching -l team=z\n"


def test_list_workflows_and_schedules_have_their_own_tables() -> None:
    cluster = FakeCluster()
    cluster.objects[(WORKFLOWS, "etl")]["status"] = {"conditions": [{"type": "Ready", "status": "True",
                                                                     "reason": "Valid"}]}
    cluster.objects[(SCHEDULES, "nightly")] = {
        "metadata": {"name": "nightly"}, "spec": {"schedule": "0 2 * * *", "workflowRef": {"name": "etl"}},
        "status": {"activeCount": 1, "nextScheduleTime": "2026-01-02T02:00:00Z"}}
    out = io.StringIO()
    verbs.list_objects(cluster, "workflows", out=out)
    assert out.getvalue().splitlines()[1].split()[:4] == ["etl", "2", "True", "(Valid)"]
    out = io.StringIO()
    verbs.list_objects(cluster, "schedules", out=out)
    header, row = out.getvalue().splitlines()
    assert header.split() == ["NAME", "SCHEDULE", "SUSPEND", "ACTIVE", "LAST", "NEXT", "READY"]
    assert row.startswith("nightly") and "0 2 * * *" in row and "2026-01-02T02:00:00Z" in row


def test_get_watch_redraws_until_the_run_ends() -> None:
    class Cluster(FakeCluster):
        def watch_execution(self, name: str) -> Iterator[dict[str, Any]]:
            yield execution(name, "Running", [{"name": "extract", "phase": "Running"}])
            yield execution(name, "Succeeded", DONE)
            raise AssertionError("read past the end")

    out = io.StringIO()
    assert verbs.watch_execution(Cluster(), "e1", out) == 0
    frames = out.getvalue().split("\n\ne1 ")
    assert frames[0].startswith("e1 Running") and frames[1].startswith("Succeeded")
