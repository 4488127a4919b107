"""The kopf registrations: only raw-event and index handlers, so kopf keeps no diff base (issue 10)."""

from __future__ import annotations

import kopf
from kopf._core.intents import registries

from jobchain.controller import handlers


def test_no_handler_needs_kopfs_diff_base() -> None:
    # handlers.NoDiffBase makes kopf skip building an object's essence on every event; a
    # create/update/field/delete/resume handler, a daemon or a timer would need it (and a finalizer).
    registry = registries.get_default_registry()
    names = {h.id for h in registry._watching.get_all_handlers()}
    assert {"execution_changed", "job_changed", "pod_changed"} <= {n.split(".")[-1] for n in names}
    assert not registry._changing.get_all_handlers()
    assert not registry._spawning.get_all_handlers()


def test_the_diff_base_is_never_built() -> None:
    body = kopf.Body({"metadata": {"name": "x"}, "spec": {"a": 1}, "status": {}})
    storage = handlers.NoDiffBase()
    assert storage.build(body=body) == {} and storage.fetch(body=body) is None
