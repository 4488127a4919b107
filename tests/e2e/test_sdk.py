"""The Python SDK against the real cluster: examples/python/etl.py builds, lints, submits and
reads back a three-node run, its outputs arriving as Python values byte for byte (issue 23)."""

from __future__ import annotations

import runpy
from typing import Any

import pytest

from tests.e2e.support import ROOT, Objects

pytestmark = pytest.mark.usefixtures("current_crds", "operator")

NOTE = "run 2: 10 $ and $(params.record) ${HOME} `id` \"double\" 'single' ünïcødé ✓ 日本"


def test_the_python_example_runs_and_gives_its_outputs_as_python_values(
        kubeconfig: str, namespace: str, objects: Objects) -> None:
    example: dict[str, Any] = runpy.run_path(str(ROOT / "examples" / "python" / "etl.py"))
    workflow = example["build"]()
    assert workflow.lint() == []

    first = workflow.run(namespace=namespace, kubeconfig=kubeconfig, timeout=180)
    print(f"\n{first.name}: {first.phase} {first.outputs()}")
    assert (first.phase, first.namespace) == ("Succeeded", namespace), first
    record = example["RECORD"]
    assert first.outputs() == {"extract": record, "transform": {"rows": 6, "from": record},
                               "load": record["note"]}

    # Submitting again updates the Workflow in place (create-or-update); params are Python values.
    workflow.finally_node("notify", script="echo $(execution.phase)")
    second = workflow.run({"record": {"note": NOTE, "rows": 5}}, namespace=namespace, kubeconfig=kubeconfig,
                          timeout=180)
    print(f"{second.name}: {second.phase} {second.outputs()}")
    assert second.succeeded, second
    assert second.nodes["extract"].output == {"note": NOTE, "rows": 5}
    assert second.nodes["transform"].output == {"rows": 10, "from": {"note": NOTE, "rows": 5}}
    assert second.nodes["load"].output == NOTE
    assert second.nodes["notify"].phase == "Succeeded"
    stored = objects.custom.get_namespaced_custom_object("jobchain.dev", "v1alpha1", namespace, "workflows", "etl")
    assert stored["spec"] == workflow.to_dict()["spec"]
