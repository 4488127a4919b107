"""Whole outputs cached by owner: an execution deleted and re-created with the same name has
ConfigMaps of the same names, and must be handed its own outputs, never the old run's."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client as k8s_client

from jobchain.k8s import cluster as k8s_cluster
from jobchain.k8s.writes import ForgedOutputError

NAME = "run-1-a-1234-output"


def config_map(owner: str, value: str) -> dict[str, Any]:
    return {"metadata": {"name": NAME, "ownerReferences": [{"kind": "WorkflowExecution", "uid": owner}]},
            "data": {"output.json": f'{{"from": "{value}"}}'}}


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> dict[str, dict[str, Any]]:
    """The ConfigMaps the API server holds, by name."""
    objects: dict[str, dict[str, Any]] = {}

    class ConfigMaps:
        def __init__(self, _api: object) -> None:
            pass

        def read_namespaced_config_map(self, name: str, namespace: str) -> dict[str, Any]:
            if name not in objects:
                raise k8s_client.exceptions.ApiException(status=404)
            return objects[name]

    monkeypatch.setattr(k8s_cluster, "Builtins", ConfigMaps)
    return objects


def test_an_execution_re_created_with_the_same_name_reads_its_own_output(held: dict[str, dict[str, Any]]) -> None:
    cluster = k8s_cluster.OperatorCluster(k8s_client.ApiClient())
    held[NAME] = config_map("uid-old", "the old run")
    assert cluster.output_value("ns", NAME, "output.json", "uid-old") == (True, {"from": "the old run"})
    # run-1 deleted (its ConfigMap collected with it), created again; its node wrote the same name
    held[NAME] = config_map("uid-new", "the new run")
    assert cluster.output_value("ns", NAME, "output.json", "uid-new") == (True, {"from": "the new run"})


def test_an_older_executions_config_map_not_yet_collected_is_not_taken(held: dict[str, dict[str, Any]]) -> None:
    cluster = k8s_cluster.OperatorCluster(k8s_client.ApiClient())
    held[NAME] = config_map("uid-old", "the old run")
    # status names only ConfigMaps its execution created (an older one is refused at create), so
    # one of another owner under that name was put there: never taken as the output, and said so
    with pytest.raises(ForgedOutputError, match="not owned by this execution"):
        cluster.output_value("ns", NAME, "output.json", "uid-new")
