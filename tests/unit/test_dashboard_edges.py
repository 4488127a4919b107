"""The dashboard colours an execution's edges with the engine's own edge rule (`EdgeDecisions`), on
the whole outputs kept in ConfigMaps where status holds only a preview, so it shows the edge the
planner took."""

from __future__ import annotations

import json
from typing import Any

from jobchain.cli.dashboard import views

from .builders import node, simulate, spec

ROWS = list(range(3000))  # ~14 KiB: more than a node's inline output, kept whole in a ConfigMap
WORKFLOW = spec(node("extract", {"node": "bulk", "type": "condition", "when": "size(output.rows) > 2000"},
                     {"node": "small", "type": "condition", "when": "size(output.rows) <= 2000"}),
                node("bulk"), node("small"), outputLimitBytes=1024)


def execution_body(status: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "run-1", "namespace": "team-a"}, "spec": {"workflow": {}}, "status": status}


def test_edges_are_decided_on_the_whole_output_as_the_planner_decided() -> None:
    run = simulate(WORKFLOW, {"extract": ("Succeeded", json.dumps({"rows": ROWS}))})
    assert {n.name: str(n.phase) for n in run.status.nodes} == {
        "extract": "Succeeded", "bulk": "Succeeded", "small": "Skipped"}
    extract = run.status.nodes[0]
    assert extract.outputRef is not None and extract.outputTruncated  # status holds a preview
    body = execution_body(run.status.model_dump(mode="json", by_alias=True, exclude_none=True))
    whole = {"extract": run.cluster.config_maps[extract.outputRef.configMap]}
    view = views.execution_view(body, None, whole)
    edges = {f"{e['source']}>{e['target']}": e["state"] for e in view["graph"]["edges"]}
    assert edges == {"extract>bulk": "fired", "extract>small": "not-held"}
    # On the preview alone (what the dashboard's own copy of the rule saw) the edge taken is not shown.
    previewed = {f"{e['source']}>{e['target']}": e["state"] for e in views.execution_view(body)["graph"]["edges"]}
    assert previewed["extract>bulk"] != "fired"
