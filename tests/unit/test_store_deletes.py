"""The watch store and deletes: a deleted execution never comes back, a re-created one is kept, and
a late event of an older object of the same name (another uid) never replaces the newer one."""

from __future__ import annotations

from typing import Any

from jobchain.k8s.store import TOMBSTONE_SECONDS, Store


def execution(uid: str, rv: str, phase: str = "Running") -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": "run-1", "uid": uid, "resourceVersion": rv},
            "spec": {"workflowRef": {"name": "wf"}}, "status": {"phase": phase}}


def test_a_status_write_returning_after_the_delete_does_not_bring_the_execution_back() -> None:
    # A pass read run-1 (rv 10) and patched its status (the API server applied it: rv 11); the
    # execution was deleted (rv 12) and the DELETED event handled before the pass wrote the
    # response of its patch through to the store.
    store = Store()
    store.put_execution(execution("u1", "10"))
    store.drop_execution("ns", "run-1", uid="u1")
    assert not store.put_execution(execution("u1", "11"), own=True)
    assert store.execution("ns", "run-1") is None
    assert store.executions_in("ns") == []  # a queue counts no running execution that is gone


def test_a_late_watch_event_of_a_deleted_execution_is_refused_too() -> None:
    store = Store()
    store.drop_execution("ns", "run-1", uid="u1")  # DELETED handled before any copy was held
    assert not store.put_execution(execution("u1", "9"))
    assert store.execution("ns", "run-1") is None


def test_an_execution_re_created_with_the_same_name_is_kept() -> None:
    store = Store()
    store.put_execution(execution("u1", "10"))
    store.drop_execution("ns", "run-1", uid="u1")
    assert store.put_execution(execution("u2", "20", phase="Pending"))
    held = store.execution("ns", "run-1")
    assert held is not None and held["metadata"]["uid"] == "u2"


def test_the_old_executions_delete_handled_after_the_new_ones_add_keeps_the_new_one() -> None:
    # kopf handles the events of different uids apart: the old run-1's DELETED can come second.
    store = Store()
    store.put_execution(execution("u2", "20", phase="Pending"))
    store.drop_execution("ns", "run-1", uid="u1")
    held = store.execution("ns", "run-1")
    assert held is not None and held["metadata"]["uid"] == "u2"


def test_tombstones_are_forgotten_after_a_while() -> None:
    now = [0.0]
    store = Store(clock=lambda: now[0])
    store.drop_execution("ns", "run-1", uid="u1")
    now[0] = TOMBSTONE_SECONDS + 1
    store.drop_execution("ns", "other", uid="u9")  # a later drop prunes the old tombstones
    assert store.put_execution(execution("u1", "30"))


def job(uid: str, rv: str, **status: Any) -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": "run-1-a", "uid": uid, "resourceVersion": rv,
                         "annotations": {"jobchain.dev/execution": "run-1"}},
            "spec": {"backoffLimit": 0}, "status": status}


def test_a_late_event_of_an_older_job_does_not_replace_the_re_created_job() -> None:
    # The execution was re-created with the same name: its Job (uid j2, rv 200) has the old Job's
    # name; a MODIFIED event of the old Job (j1, rv 150) is handled after it (another uid's queue).
    store = Store()
    store.put_job(job("j2", "200"))
    assert not store.put_job(job("j1", "150", failed=1, conditions=[{"type": "Failed", "status": "True"}]))
    [held] = store.jobs("ns", "run-1")
    assert held["metadata"]["uid"] == "j2" and held["status"] == {}


def test_a_re_created_job_replaces_the_older_one() -> None:
    store = Store()
    store.put_job(job("j1", "150", failed=1))
    assert store.put_job(job("j2", "200"))
    [held] = store.jobs("ns", "run-1")
    assert held["metadata"]["uid"] == "j2"
