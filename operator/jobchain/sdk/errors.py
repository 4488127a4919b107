"""The errors the SDK raises: every one says what was wrong, where, and what to do."""

from __future__ import annotations


class SdkError(Exception):
    """A mistake in the workflow being built, or a failed call to the cluster."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidWorkflow(SdkError):
    """The workflow cannot be built or would be refused (`problems` holds `jobchain lint`'s findings)."""

    def __init__(self, message: str, problems: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


class ClusterError(SdkError):
    """The cluster refused a call or could not be reached (the CLI's message, word for word)."""


class WaitTimeout(SdkError, TimeoutError):
    """run(wait=True, timeout=...) gave up waiting; the execution keeps running."""
