"""Shared by every tier. With JOBCHAIN_REQUIRE_TOOLS=1 (hack/test.sh sets it, so CI runs with it), a
test skipped because a tool the project builds or installs itself is missing (kubectl and helm:
hack/build-tools.sh; chromium: hack/browser-deps.sh) fails instead: a CI machine that lost one must
not pass with the tests that need it quietly skipped. On a developer's machine they still skip."""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

import pytest

MISSING_TOOL = ("kubectl not built", "helm not built", "kubectl/helm not built", "chromium and chromedriver are not")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    if not (report.skipped and os.environ.get("JOBCHAIN_REQUIRE_TOOLS") and isinstance(report.longrepr, tuple)):
        return
    reason = str(report.longrepr[2])
    if any(tool in reason for tool in MISSING_TOOL):
        report.outcome = "failed"
        report.longrepr = f"{reason} (JOBCHAIN_REQUIRE_TOOLS is set: the project builds this tool, so a missing " \
                          "one is a failure, not a skip)"
