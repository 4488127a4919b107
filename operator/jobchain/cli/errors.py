"""Exit statuses of the CLI and the one error type that carries a user-facing message.

Why one type: every failure a user can cause (no cluster, no such execution, a bad `-p`,
a missing file) is raised as `CliError` with the sentence to print and the status to exit
with; the top-level handler in `main` prints it as one line, never as a traceback.
"""

from __future__ import annotations

from enum import IntEnum


class Exit(IntEnum):
    SUCCEEDED = 0  # the command did what was asked (for run --watch/--wait: execution Succeeded)
    FAILED = 1  # run: the execution Failed; lint: problems were found
    CANCELLED = 2  # run: the execution was Cancelled
    USAGE = 3  # bad arguments or input: unknown option, bad -p, no such file/workflow/execution
    CLUSTER = 4  # the cluster could not be used: no kubeconfig, unreachable, forbidden, CRDs missing
    INTERNAL = 5  # a bug in jobchain (JOBCHAIN_DEBUG=1 shows the traceback)
    TIMEOUT = 6  # wait, run --wait/--watch: --timeout passed first (the execution keeps running)
    INTERRUPTED = 130  # Ctrl-C


class CliError(Exception):
    """A failure to report as one line on stderr, then exit with `code`."""

    def __init__(self, message: str, code: Exit = Exit.USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def usage_error(message: str) -> CliError:
    return CliError(message, Exit.USAGE)


def cluster_error(message: str) -> CliError:
    return CliError(message, Exit.CLUSTER)
