"""A node whose Job cannot create its pod fails with the API server's message, quickly (issue 18
defect 11): Pod Security admission refuses pods, not Jobs, so the Job was created, its pods were
refused (FailedCreate Events on the Job), and the node stayed Running until its deadline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from jobchain.api.models import OutputSource
from jobchain.engine.execution.planner import JobState, plan
from jobchain.k8s.observe import NodeToRead
from jobchain.k8s.store import Store
from tests.unit.builders import T0, execution, node, node_status, spec, with_status
from tests.unit.fakes import NoApi, k8s_job

CREATED = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)
POD_SECURITY = ('Error creating: pods "run-1-a-x" is forbidden: violates PodSecurity "restricted:latest": '
                'allowPrivilegeEscalation != false (container "main" must set '
                "securityContext.allowPrivilegeEscalation=false)")


def event(message: str, reason: str = "FailedCreate", at: str = "2026-11-27T12:00:01Z") -> dict[str, Any]:
    return {"reason": reason, "message": message, "lastTimestamp": at, "type": "Warning"}


class _Events:
    """The Job's Events as the API server lists them for the field selector asked."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events, self.asked = events, []

    def list_namespaced_event(self, namespace: str, field_selector: str) -> list[dict[str, Any]]:
        self.asked.append(field_selector)
        return self.events


def _observer(events: list[dict[str, Any]], seconds_after_create: float, *jobs: str) -> tuple[NoApi, _Events]:
    store = Store()
    for name in jobs or ("a",):
        job = k8s_job(name, f"uid-{name}", active=0)
        job["metadata"]["creationTimestamp"] = "2026-11-27T12:00:00Z"
        store.put_job(job)
    observer = NoApi(store)
    listed = _Events(events)
    observer.builtins = listed  # type: ignore[assignment]
    observer.clock = lambda: CREATED + timedelta(seconds=seconds_after_create)
    return observer, listed


def _wanted(name: str = "a") -> list[NodeToRead]:
    return [NodeToRead(name, OutputSource.TERMINATION_MESSAGE)]


def test_a_job_whose_pod_is_refused_fails_its_node_with_the_api_servers_message() -> None:
    observer, listed = _observer([event(POD_SECURITY)], 3)
    seen = observer.observe("ns", "run-1", "ex-uid", _wanted()).jobs["a"]
    assert seen.state == JobState.FAILED
    assert 'violates PodSecurity "restricted:latest"' in seen.message and "podTemplate" in seen.message
    assert listed.asked == ["involvedObject.uid=uid-a,reason=FailedCreate"]


def test_a_new_job_without_a_pod_is_not_asked_about_yet_but_looked_at_again() -> None:
    observer, listed = _observer([event(POD_SECURITY)], 0.5)
    seen = observer.observe("ns", "run-1", "ex-uid", _wanted())
    assert seen.jobs["a"].state == JobState.RUNNING and listed.asked == []
    assert seen.recheck_at == CREATED + timedelta(seconds=2)


def test_a_full_quota_is_waited_for_and_asked_about_less_and_less_often() -> None:
    observer, listed = _observer([event('Error creating: pods "x" is forbidden: exceeded quota: q')], 3)
    seen = observer.observe("ns", "run-1", "ex-uid", _wanted())
    assert seen.jobs["a"].state == JobState.RUNNING and len(listed.asked) == 1
    assert seen.recheck_at == CREATED + timedelta(seconds=6)
    observer.clock = lambda: CREATED + timedelta(seconds=5)
    assert observer.observe("ns", "run-1", "ex-uid", _wanted()).recheck_at == CREATED + timedelta(seconds=6)
    assert len(listed.asked) == 1, "not listed again before it is due"


def test_the_latest_refusal_is_the_one_named() -> None:
    observer, _ = _observer([event("older: pod is forbidden", at="2026-11-27T12:00:01Z"),
                             event("newer: pod is forbidden", at="2026-11-27T12:00:02Z")], 3)
    assert "newer: pod is forbidden" in observer.observe("ns", "run-1", "ex-uid", _wanted()).jobs["a"].message


def test_the_refused_node_fails_in_the_plan_and_its_failure_edge_runs() -> None:
    wf = spec(node("a", {"node": "alert", "type": "failure"}), node("alert"))
    first = plan(execution(wf), {}, T0)
    observer, _ = _observer([event(POD_SECURITY)], 3, first.create[0]["metadata"]["labels"]["jobchain.dev/node"])
    seen = observer.observe("ns", "run-1", "ex-uid", _wanted()).jobs
    second = plan(with_status(execution(wf), first.status), seen, T0 + timedelta(seconds=3))
    a = node_status(second.status, "a")
    assert a.phase == "Failed" and "PodSecurity" in (a.message or "")
    assert [j["metadata"]["labels"]["jobchain.dev/node"] for j in second.create] == ["alert"]


def test_a_forEach_item_whose_pod_is_refused_fails_that_item() -> None:
    wf = spec(node("each", forEach="[0, 1]"), parallelism=2)
    first = plan(execution(wf), {}, T0)
    store = Store()
    for i, uid in ((0, "uid-0"), (1, "uid-1")):
        job = k8s_job("each", uid, active=0)
        job["metadata"].update(name=f"run-1-each-{i}", creationTimestamp="2026-11-27T12:00:00Z")
        job["metadata"]["labels"]["jobchain.dev/item"] = str(i)
        store.put_job(job)
    observer = NoApi(store)
    observer.builtins = _Events([event(POD_SECURITY)])  # type: ignore[assignment]
    observer.clock = lambda: CREATED + timedelta(seconds=3)
    seen = observer.observe("ns", "run-1", "ex-uid", [NodeToRead("each", OutputSource.TERMINATION_MESSAGE)]).jobs
    assert seen["each#0"].state == JobState.FAILED
    second = plan(with_status(execution(wf), first.status), seen, T0 + timedelta(seconds=3))
    each = node_status(second.status, "each")
    assert [r.phase for r in each.itemResults or []] == ["Failed", "Failed"]
    assert each.phase == "Failed" and "PodSecurity" in (each.message or "")


def test_which_events_refuse_and_when_to_look() -> None:
    from jobchain.engine.execution import pod_refusal

    assert pod_refusal.refusal([event("x", reason="SuccessfulCreate")]) is None
    assert pod_refusal.refusal([event("Error creating: Timeout: request did not complete within 60s")]) is None
    webhook = 'Error creating: admission webhook "policy.example.com" denied the request: no root'
    assert pod_refusal.refusal([event(webhook)]) == webhook
    assert pod_refusal.refusal([]) is None
    assert [pod_refusal.due(age, None) for age in (0, 1.9, 2)] == [False, False, True]
    assert pod_refusal.due(7.9, 4) is False and pod_refusal.due(8, 4) is True
    assert pod_refusal.next_look(100) == pod_refusal.MAX_INTERVAL


def test_the_pass_that_creates_a_job_looks_again_when_its_pod_should_be_there() -> None:
    # The Job's own watch event echoes the create (nothing changed: no pass), and refused pods send
    # none: without this wake the node waited for the 60 s resync (seen on the cluster).
    from jobchain.controller.reconcile import reconcile_execution
    from tests.unit.builders import EXECUTION, NAMESPACE, FakeCluster, chain, execution_body

    cluster = FakeCluster(execution_body(chain("a", "b")))
    outcome = reconcile_execution(cluster, NAMESPACE, EXECUTION, now=T0)
    assert cluster.take_actions()[0] == ("create", "job", "a")
    assert outcome.wake_at is not None and outcome.wake_at <= T0 + timedelta(seconds=3)
