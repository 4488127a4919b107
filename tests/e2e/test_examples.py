"""Every file in examples/ runs as written (kubectl create -f FILE) and its executions succeed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.e2e.support import ROOT, Objects, kubectl

EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs_to_success(path: Path, kubeconfig: str, namespace: str, objects: Objects,
                                 operator: object) -> None:
    created = kubectl(kubeconfig, "-n", namespace, "create", "-f", str(path), "-o", "name").split()
    executions = [ref.split("/", 1)[1] for ref in created if ref.startswith("workflowexecution")]
    assert executions, f"{path.name} creates no WorkflowExecution"
    for name in executions:
        done = objects.wait_phase(name, timeout=180)
        assert done["status"]["phase"] == "Succeeded", yaml.safe_dump(done["status"])
