"""The Helm chart follows the conventions chart users expect: unknown values refused, extraEnv,
extraVolumes(+Mounts), name overrides, topologySpreadConstraints, kubeVersion, Artifact Hub
annotations, a README generated from values.yaml, and `helm lint --strict` clean with them."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
import yaml

from .manifest_support import CHART, CRDS, HELM, KUBE_VERSION, ROOT, helm_template, needs_helm, only, run_tool


def refused(*sets: str) -> str:
    assert HELM is not None
    args = [a for s in sets for a in ("--set", s)]
    done = subprocess.run([str(HELM), "template", "x", str(CHART), "--kube-version", KUBE_VERSION, *args],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0, f"{sets} was accepted"
    return done.stderr


@needs_helm
@pytest.mark.parametrize(("value", "where"), [("replicaCout=3", "replicaCout"),
                                              ("metrics.enable=false", "enable"),
                                              ("dashboard.auth.mod=proxy", "mod")])
def test_a_misspelt_value_is_refused_not_ignored(value: str, where: str) -> None:
    err = refused(value)
    assert "values don't meet the specifications of the schema" in err and where in err, err


def operator_pod(*sets: str) -> dict[str, Any]:
    spec: dict[str, Any] = only(helm_template(*sets), "Deployment")["spec"]["template"]["spec"]
    return spec


@needs_helm
def test_extra_env_volumes_and_mounts_reach_the_operator_pod() -> None:
    pod = operator_pod("extraEnv[0].name=HTTPS_PROXY", "extraEnv[0].value=http://proxy:3128",
                       "extraVolumes[0].name=ca", "extraVolumes[0].configMap.name=corp-ca",
                       "extraVolumeMounts[0].name=ca", "extraVolumeMounts[0].mountPath=/etc/ssl/corp")
    (container,) = pod["containers"]
    assert {"name": "HTTPS_PROXY", "value": "http://proxy:3128"} in container["env"]
    assert container["env"][0]["name"] == "JOBCHAIN_OPERATOR_NAMESPACE"  # the chart's own stay
    assert {"name": "ca", "configMap": {"name": "corp-ca"}} in pod["volumes"]
    assert {"name": "ca", "mountPath": "/etc/ssl/corp"} in container["volumeMounts"]
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]


@needs_helm
def test_topology_spread_gets_the_operator_selector_unless_given() -> None:
    pod = operator_pod("topologySpreadConstraints[0].maxSkew=1",
                       "topologySpreadConstraints[0].topologyKey=topology.kubernetes.io/zone",
                       "topologySpreadConstraints[0].whenUnsatisfiable=ScheduleAnyway")
    (spread,) = pod["topologySpreadConstraints"]
    assert spread["topologyKey"] == "topology.kubernetes.io/zone"
    assert spread["labelSelector"] == {"matchLabels": {"app.kubernetes.io/name": "jobchain-operator",
                                                       "app.kubernetes.io/instance": "jobchain"}}
    assert "topologySpreadConstraints" not in operator_pod()


@needs_helm
def test_name_overrides_name_the_objects_and_the_lease() -> None:
    assert only(helm_template(), "Deployment")["metadata"]["name"] == "jobchain"
    assert only(helm_template("nameOverride=wf"), "Deployment")["metadata"]["name"] == "jobchain-wf"
    docs = helm_template("fullnameOverride=ops-jc")
    deployment = only(docs, "Deployment")
    assert deployment["metadata"]["name"] == "ops-jc"
    assert "--lease-name=ops-jc" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]


def test_chart_yaml_has_kube_version_and_artifact_hub_annotations() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["kubeVersion"] == ">=1.30.0-0"
    notes = chart["annotations"]
    assert notes["artifacthub.io/license"] == "Apache-2.0"
    listed = sorted(c["name"] for c in yaml.safe_load(notes["artifacthub.io/crds"]))
    assert listed == sorted(yaml.safe_load(p.read_text())["metadata"]["name"] for p in CRDS.glob("*.yaml"))


@needs_helm
def test_helm_refuses_a_cluster_older_than_kube_version() -> None:
    assert HELM is not None
    done = subprocess.run([str(HELM), "template", "x", str(CHART), "--kube-version", "1.29.0"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0 and "kubeVersion" in done.stderr


@needs_helm
def test_helm_lint_strict_passes_with_the_new_values() -> None:
    assert HELM is not None
    run_tool(HELM, "lint", "--strict", CHART, "--set", "extraEnv[0].name=A", "--set", "extraEnv[0].value=b",
             "--set", "nameOverride=wf", "--set", "topologySpreadConstraints[0].maxSkew=1",
             "--set", "topologySpreadConstraints[0].topologyKey=kubernetes.io/hostname",
             "--set", "topologySpreadConstraints[0].whenUnsatisfiable=ScheduleAnyway")


def test_the_chart_readme_is_generated_from_values_yaml() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "hack" / "chart-readme.py"), "--check"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    readme = (CHART / "README.md").read_text()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for key in values:
        assert f"| `{key}" in readme, f"{key} is missing from the chart README"
