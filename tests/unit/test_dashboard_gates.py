"""The dashboard's execution page shows a waiting approval gate: what it asks, until when, and the
commands that decide it (views.execution_view, the JSON the page draws)."""

from __future__ import annotations

from jobchain.cli.dashboard import views

from .fakes import dashboard_execution


def test_a_waiting_gate_is_shown_with_its_message_and_the_command_to_approve() -> None:
    execution = dashboard_execution([{"name": "extract", "phase": "Succeeded"}])
    execution["status"]["waiting"] = [{"name": "approve", "message": "Load 7 rows into prod?",
                                       "since": "2026-01-01T00:01:00Z", "deadline": "2026-01-01T01:01:00Z"}]
    view = views.execution_view(execution)
    assert view["waiting"] == [{
        "name": "approve", "message": "Load 7 rows into prod?", "since": "2026-01-01T00:01:00Z",
        "deadline": "2026-01-01T01:01:00Z",
        "approve": "jobchain approve -n ns routing-abc approve --message TEXT",
        "deny": "jobchain deny -n ns routing-abc approve --message TEXT",
    }]


def test_no_gate_waits_nothing_is_shown() -> None:
    assert views.execution_view(dashboard_execution([]))["waiting"] == []
