"""`jobchain run`: create a WorkflowExecution, then optionally watch it to its end.

(`run FILE` builds the execution from a file in `workflow_file`, then continues here.)

The Workflow is read first so that a mistake the operator would only report after the
fact (no such workflow, an undeclared or missing param, an invalid spec) is refused here,
with exit status 3, before anything is created. The exit status of --watch/--wait is the
execution's end: 0 Succeeded, 1 Failed, 2 Cancelled.
"""

from __future__ import annotations

import queue
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import IO, Any

from pydantic import ValidationError

from jobchain.api.errors import describe_validation_error
from jobchain.api.models import PARAM_NAME, TERMINAL_EXECUTION_PHASES, ExecutionPhase, Workflow
from jobchain.api.vocabulary import API_VERSION, KIND_EXECUTION, WORKFLOWS
from jobchain.cli.cluster import ClusterCalls
from jobchain.cli.errors import CliError, Exit, usage_error
from jobchain.cli.tables import nodes_table, phase_line, status_of
from jobchain.engine.spec.validation import join, validate_params, validate_workflow

TICK_SECONDS = 1.0  # how often a live view on a terminal is redrawn without a change (durations advance)
NO_OPERATOR_HINT_SECONDS = 20.0  # an execution not started by then is probably not seen by any operator

seconds = time.monotonic  # the clock of waits and their --timeout (a module attribute: tests replace it)

EXIT_OF_PHASE = {
    ExecutionPhase.SUCCEEDED: Exit.SUCCEEDED,
    ExecutionPhase.FAILED: Exit.FAILED,
    ExecutionPhase.CANCELLED: Exit.CANCELLED,
}


def parse_params(items: list[str]) -> dict[str, str]:
    """`-p KEY=VALUE` arguments as a dict; the value may contain `=` and may be empty."""
    params: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise usage_error(f"-p {item!r}: expected KEY=VALUE (for example -p size=10)")
        if not re.match(PARAM_NAME, key):
            raise usage_error(
                f"-p {item!r}: {key!r} is not a param name (letters, digits and _, not starting with a digit)"
            )
        if key in params:
            raise usage_error(f"-p {key}: given twice ({key}={params[key]!r} and {key}={value!r}); keep one")
        params[key] = value
    return params


def parse_secret_params(items: list[str]) -> list[dict[str, Any]]:
    """`--secret-param NAME=SECRET:KEY` arguments as spec.paramsFrom entries."""
    out: list[dict[str, Any]] = []
    for item in items:
        name, sep, ref = item.partition("=")
        secret, colon, key = ref.partition(":")
        if not sep or not colon or not secret or not key or not re.match(PARAM_NAME, name):
            raise usage_error(f"--secret-param {item!r}: expected NAME=SECRET:KEY, the param's name and a key "
                              "of a Secret in the namespace (for example --secret-param token=creds:api-token)")
        if any(p["name"] == name for p in out):
            raise usage_error(f"--secret-param {name}: given twice; keep one")
        out.append({"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}})
    return out


def check_against_workflow(workflow: dict[str, Any], params: dict[str, str],
                           secret_params: frozenset[str] = frozenset()) -> None:
    """Refuses what the operator would fail the execution for: an invalid Workflow, bad params."""
    name = (workflow.get("metadata") or {}).get("name", "")
    try:
        spec = Workflow.model_validate({k: v for k, v in workflow.items() if k in ("apiVersion", "kind", "spec")}).spec
    except ValidationError as err:
        raise usage_error(
            f"Workflow {name!r} is invalid: {'; '.join(describe_validation_error(err))}; "
            "fix it (jobchain lint FILE) and apply it again"
        ) from None
    problems = validate_workflow(spec)
    if problems:
        raise usage_error(
            f"Workflow {name!r} is invalid: {join(problems)}; fix it (jobchain lint FILE) and apply it again"
        )
    problems = validate_params(params, spec.params, f"Workflow {name!r}", from_secrets=secret_params)
    if problems:
        raise usage_error(f"{join(problems)}; set params with -p NAME=VALUE, secret params with "
                          "--secret-param NAME=SECRET:KEY")


def execution_manifest(workflow: str, params: dict[str, str], timeout: int | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"workflowRef": {"name": workflow}}
    if params:
        spec["params"] = params
    if timeout is not None:
        spec["timeoutSeconds"] = timeout
    return {
        "apiVersion": API_VERSION,
        "kind": KIND_EXECUTION,
        "metadata": {"generateName": f"{workflow}-"},
        "spec": spec,
    }


def end_view(execution: dict[str, Any], now: datetime) -> str:
    table = nodes_table(execution, now) if status_of(execution).nodes else ""
    return phase_line(execution, now) + (f"\n\n{table}" if table else "")


class LiveView:
    """Shows successive frames: redrawn in place on a terminal, appended when stdout is not one."""

    def __init__(self, out: IO[str], tty: bool) -> None:
        self.out = out
        self.tty = tty
        self.last = ""
        self.height = 0

    def show(self, frame: str) -> None:
        if frame == self.last:
            return
        if self.tty:
            size = shutil.get_terminal_size()
            columns = max(20, size.columns)
            height = sum(max(1, -(-len(line) // columns)) for line in frame.split("\n"))
            if max(height, self.height) >= size.lines:
                # Taller than the screen: moving up cannot reach the first line; repaint from the top.
                self.out.write("\x1b[H\x1b[J")
            elif self.height:
                self.out.write(f"\x1b[{self.height}F\x1b[J")  # back to the frame's first line, clear below
            self.height = height
        elif self.last:
            self.out.write("\n")
        self.out.write(frame + "\n")
        self.out.flush()
        self.last = frame


def _changes(cluster: ClusterCalls, name: str, tick: float) -> Iterator[dict[str, Any] | None]:
    """The watch's objects, and None every `tick` seconds without a change.

    Why a thread: the watch blocks until the next change, but meanwhile the durations of
    running nodes on a terminal should advance, and a wait with no operator should say so.
    """
    events: queue.Queue[tuple[str, Any]] = queue.Queue()

    def pump() -> None:
        try:
            for obj in cluster.watch_execution(name):
                events.put(("object", obj))
            events.put(("end", None))
        except BaseException as exc:  # handed to the main thread, which raises it
            events.put(("error", exc))

    threading.Thread(target=pump, name="watch", daemon=True).start()
    while True:
        try:
            kind, value = events.get(timeout=tick)
        except queue.Empty:
            yield None
            continue
        if kind == "error":
            raise value
        if kind == "end":
            return
        yield value


def wait_for_end(
    cluster: ClusterCalls,
    name: str,
    view: LiveView | None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    err: IO[str] | None = None,
    limit: float | None = None,
    until: str | None = None,
    monotonic: Callable[[], float] | None = None,
) -> dict[str, Any]:
    """Watches the execution until it is Succeeded, Failed or Cancelled (or, with `until`, in that
    phase); shows every change on `view`.

    With `err`, says once when the operator has not picked the execution up after a while:
    without an operator, nothing would ever change and the wait would look hung. With `limit`
    (seconds, --timeout), gives up after that long with Exit.TIMEOUT, as `kubectl wait` does;
    the execution keeps running.
    """
    monotonic = monotonic or seconds
    latest: dict[str, Any] | None = None
    since = monotonic()
    hinted = err is None
    for change in _changes(cluster, name, TICK_SECONDS):
        latest = change or latest
        if not hinted and not (latest or {}).get("status") and monotonic() - since > NO_OPERATOR_HINT_SECONDS:
            print(f"{name} has not been started after {NO_OPERATOR_HINT_SECONDS:.0f}s: is the jobchain operator "
                  f"running and watching namespace {cluster.namespace!r}? (still waiting; Ctrl-C stops)", file=err)
            hinted = True
        if latest is not None:
            if view is not None and (change is not None or view.tty):  # a terminal also redraws on ticks
                view.show(end_view(latest, clock()))
            phase = status_of(latest).phase if latest.get("status") else None
            if phase is not None and (phase in TERMINAL_EXECUTION_PHASES or phase == until):
                return latest
        if limit is not None and monotonic() - since >= limit:
            now = str(status_of(latest).phase) if latest and latest.get("status") else "not started"
            raise CliError(f"{name} is still {now} after --timeout {limit:g}s; it keeps running "
                           f"(jobchain cancel {name} stops it)", Exit.TIMEOUT)
    raise CliError(f"the watch on workflowexecution {name!r} ended before it finished", Exit.CLUSTER)


def check_timeout(timeout: int | None, flag: str = "--timeout") -> int | None:
    if timeout is not None and timeout < 1:
        raise usage_error(f"{flag} {timeout}: must be a number of seconds, at least 1")
    return timeout


def run_workflow(
    cluster: ClusterCalls,
    workflow: str,
    params: dict[str, str],
    mode: str | None,
    timeout: int | None,
    out: IO[str],
    err: IO[str] | None = None,
) -> int:
    """Runs the Workflow `workflow` of the cluster. mode: None (print the name), "watch" or "wait"."""
    return run_execution(cluster, execution_manifest(workflow, params, timeout), mode, out, err)


def run_execution(
    cluster: ClusterCalls, manifest: dict[str, Any], mode: str | None, out: IO[str], err: IO[str] | None = None,
    check: bool = True,
    limit: float | None = None,
) -> int:
    """Creates `manifest` (after checking the Workflow it refers to, unless `check` is False: a retry
    runs its resumed execution's snapshot), then follows it as `mode` says, for at most `limit`
    seconds (--timeout)."""
    ref = (manifest["spec"].get("workflowRef") or {}).get("name")
    if check and ref and not manifest["spec"].get("workflow"):
        check_against_workflow(cluster.get(WORKFLOWS, ref), manifest["spec"].get("params") or {},
                               frozenset(p["name"] for p in manifest["spec"].get("paramsFrom") or []))
    created = cluster.create_execution(manifest)
    name = created["metadata"]["name"]
    if mode is None:
        print(name, file=out)
        return int(Exit.SUCCEEDED)
    view = LiveView(out, out.isatty()) if mode == "watch" else None
    try:
        execution = wait_for_end(cluster, name, view, err=err, limit=limit)
    except KeyboardInterrupt:
        raise CliError(
            f"stopped watching {name}; it keeps running (jobchain cancel {name} stops it)", Exit.INTERRUPTED
        ) from None
    if view is None:
        print(end_view(execution, datetime.now(UTC)), file=out)
    return int(EXIT_OF_PHASE[ExecutionPhase(status_of(execution).phase)])
