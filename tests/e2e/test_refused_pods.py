"""User story: a node runs in a namespace whose Pod Security level (`restricted`) refuses its pod. The
Job is created (admission judges pods, not Jobs) but never gets a pod: the node, and a forEach item,
fail with the API server's reason within seconds, not at the node's deadline (issue 18 defect 11)."""

from __future__ import annotations

import time

import pytest

from tests.e2e.support import Objects, nodes, workflow

pytestmark = pytest.mark.usefixtures("operator")

DEADLINE = 300  # the nodes' timeoutSeconds: the refusal must be seen long before it


def test_a_pod_refused_by_pod_security_fails_its_node_and_item_quickly(objects: Objects, namespace: str) -> None:
    objects.core.patch_namespace(namespace, {"metadata": {"labels": {
        "pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "latest"}}})
    defaults = {"image": "busybox:1.36", "timeoutSeconds": DEADLINE}
    objects.create(workflow("refused", [
        {"name": "a", "script": "echo hi", "next": [{"node": "b"}]},
        {"name": "b", "script": "echo never"},
    ], defaults=defaults))
    objects.create(workflow("refused-items", [{"name": "each", "forEach": "[0, 1]", "script": "echo $(item)"}],
                            defaults=defaults, parallelism=2))
    started = time.monotonic()
    done = objects.run("refused", timeout=DEADLINE)
    took = time.monotonic() - started
    items = objects.run("refused-items", timeout=DEADLINE)
    took_items = time.monotonic() - started
    print(f"\nnode refused by Pod Security: Failed after {took:.1f} s; forEach items after {took_items:.1f} s "
          f"(deadline {DEADLINE} s)")

    assert done["status"]["phase"] == "Failed", done["status"]
    a = nodes(done)["a"]
    assert a["phase"] == "Failed" and 'violates PodSecurity "restricted:latest"' in a["message"], a
    assert "podTemplate" in a["message"], "it says what to do"
    assert nodes(done)["b"]["phase"] == "Skipped"
    assert took < 60, f"the refusal took {took:.0f} s to be seen"

    each = nodes(items)["each"]
    assert items["status"]["phase"] == "Failed" and each["phase"] == "Failed", items["status"]
    assert [r["phase"] for r in each["itemResults"]] == ["Failed", "Failed"]
    assert all("PodSecurity" in r["message"] for r in each["itemResults"])
    assert took_items < 120
