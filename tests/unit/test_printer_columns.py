"""`kubectl get` columns show a condition's reason (a word to scan), not its message (a paragraph)."""

from __future__ import annotations

from typing import Any

from jobchain.api.crd import schedule_crd, workflow_crd

READY = '.status.conditions[?(@.type=="Ready")]'


def _columns(crd: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["jsonPath"] for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]}


def test_the_workflow_reason_column_shows_the_ready_reason() -> None:
    columns = _columns(workflow_crd())
    assert columns["Ready"] == f"{READY}.status"
    assert columns["Reason"] == f"{READY}.reason"


def test_the_schedule_ready_column_shows_the_status_and_reason_the_reason() -> None:
    columns = _columns(schedule_crd())
    assert columns["Ready"] == f"{READY}.status"
    assert columns["Reason"] == f"{READY}.reason"


def test_no_column_shows_a_message() -> None:
    for crd in (workflow_crd(), schedule_crd()):
        assert not [path for path in _columns(crd).values() if path.endswith(".message")]
