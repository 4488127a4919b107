"""The CRDs in crds/ are generated from the models, structural, and explain every field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from jobchain.api import crd

ROOT = Path(__file__).resolve().parents[2]


def walk(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = [(path, schema)]
    for name, sub in (schema.get("properties") or {}).items():
        found += walk(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        found += walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        found += walk(schema["additionalProperties"], f"{path}{{}}")
    return found


def schemas() -> dict[str, dict[str, Any]]:
    out = {}
    for doc in (crd.workflow_crd(), crd.execution_crd()):
        out[doc["spec"]["names"]["kind"]] = doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return out


def test_crds_on_disk_match_the_models() -> None:
    assert crd.main(["--check", "--out", str(ROOT / "crds")]) == 0


def test_check_reports_drift(tmp_path: Path) -> None:
    crd.main(["--out", str(tmp_path)])
    target = tmp_path / "jobchain.dev_workflows.yaml"
    target.write_text(target.read_text().replace("Nodes", "Steps"))
    assert crd.main(["--check", "--out", str(tmp_path)]) == 1


def test_schemas_are_structural() -> None:
    for kind, schema in schemas().items():
        text = yaml.safe_dump(schema)
        assert "$ref" not in text and "anyOf" not in text and "$defs" not in text, kind
        for path, sub in walk(schema):
            free = sub.get("x-kubernetes-preserve-unknown-fields")
            assert "type" in sub or free, f"{kind}{path} has no type"


def test_every_spec_and_status_field_has_a_description_for_kubectl_explain() -> None:
    for kind, schema in schemas().items():
        for part in ("spec", "status"):
            for path, sub in walk(schema["properties"][part], f".{part}"):
                if path.endswith("[]") or path.endswith("{}") or path in (".spec", ".status"):
                    continue
                assert sub.get("description"), f"{kind}{path} has no description"


def test_crds_carry_short_names_printer_columns_and_a_category() -> None:
    wf, ex = crd.workflow_crd()["spec"], crd.execution_crd()["spec"]
    assert wf["names"]["shortNames"] == ["jcwf"] and ex["names"]["shortNames"] == ["jcex"]
    for names in (wf["names"], ex["names"]):
        assert "wf" not in names["shortNames"] and "cwf" not in names["shortNames"]  # Argo Workflows' names
        assert names["categories"] == ["jobchain"]
    columns = [c["name"] for c in ex["versions"][0]["additionalPrinterColumns"]]
    assert {"Phase", "Progress", "Running", "Age", "Duration"} <= set(columns)
    assert {"Nodes", "Ready"} <= {c["name"] for c in wf["versions"][0]["additionalPrinterColumns"]}
    assert ex["versions"][0]["subresources"] == {"status": {}}


def test_schema_refuses_what_it_can_at_apply_time() -> None:
    node = schemas()["Workflow"]["properties"]["spec"]["properties"]["nodes"]
    assert node["x-kubernetes-list-type"] == "map" and node["x-kubernetes-list-map-keys"] == ["name"]
    item = node["items"]
    assert item["properties"]["name"]["pattern"].startswith("^[a-z0-9]")
    assert "script" in item["x-kubernetes-validations"][0]["rule"]
    edge = item["properties"]["next"]["items"]
    assert edge["properties"]["type"]["enum"] == ["success", "failure", "always", "condition"]
    assert "when" in edge["x-kubernetes-validations"][0]["rule"]
    spec = schemas()["WorkflowExecution"]["properties"]["spec"]
    assert "workflowRef" in spec["x-kubernetes-validations"][0]["rule"]
