"""The `jobchain` command (also `kubectl jobchain`): arguments, dispatch, and the one error handler.

Why one handler at the top: every failure a user can cause arrives here as a `CliError`
(or as an exception from the client library that `cluster` did not see) and is printed as
one line on stderr with a documented exit status; a traceback only appears for a bug, and
only with JOBCHAIN_DEBUG=1.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, NoReturn

from jobchain.api.vocabulary import WORKFLOWS
from jobchain.cli.errors import CliError, Exit

if TYPE_CHECKING:
    from jobchain.cli.cluster import CliCluster

EXIT_STATUS_HELP = """exit status:
  0  done (run --watch/--wait, wait: the execution Succeeded; wait --for: the phase was reached)
  1  run, wait: the execution Failed (wait --for: it ended in another phase); lint: problems found
  2  run, wait: the execution was Cancelled
  3  bad arguments or input (bad -p, no such file, workflow or execution)
  4  the cluster cannot be used (no kubeconfig, unreachable, forbidden, CRDs not installed)
  6  wait, run --wait/--watch: --timeout passed first (the execution keeps running)
"""


class Parser(argparse.ArgumentParser):
    """argparse exits 2 on a usage error, which is our "Cancelled"; usage errors exit 3 here."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(int(Exit.USAGE), f"{self.prog}: error: {message}\n")


def _cluster_options() -> Parser:
    """kubectl's connection options; accepted before or after the command (SUPPRESS keeps either)."""
    common = Parser(add_help=False)
    group = common.add_argument_group("cluster options")
    group.add_argument(
        "-n",
        "--namespace",
        default=argparse.SUPPRESS,
        help="namespace (default: the kubeconfig context's namespace, else default)",
    )
    group.add_argument("--context", default=argparse.SUPPRESS, help="kubeconfig context (default: current)")
    group.add_argument(
        "--kubeconfig",
        default=argparse.SUPPRESS,
        help="kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)",
    )
    return common


def build_parser(prog: str = "jobchain") -> Parser:
    common = _cluster_options()
    parser = Parser(
        prog=prog,
        parents=[common],
        description="Run and inspect jobchain workflows.",
        epilog=EXIT_STATUS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from jobchain import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, text: str, cluster: bool = True) -> Parser:
        return commands.add_parser(
            name,
            help=text,
            description=text,
            parents=[common] if cluster else [],
            epilog=EXIT_STATUS_HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    run = command("run", "create an execution of a Workflow (of the cluster, or of a file)")
    run.add_argument(
        "workflow",
        nargs="?",
        metavar="WORKFLOW|FILE",
        help="a Workflow in the namespace, or a file (- for stdin) whose Workflow runs inline",
    )
    run.add_argument("--from-schedule", metavar="SCHEDULE",
                     help="run a WorkflowSchedule's executionTemplate now (a manual run, owned by the schedule)")
    run.add_argument(
        "-p",
        "--param",
        dest="params",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a param value (repeatable)",
    )
    run.add_argument(
        "--secret-param",
        dest="secret_params",
        action="append",
        default=[],
        metavar="NAME=SECRET:KEY",
        help="a secret param, taken from a key of a Secret in the namespace (repeatable; never shown)",
    )
    mode = run.add_mutually_exclusive_group()
    mode.add_argument(
        "--watch",
        dest="mode",
        action="store_const",
        const="watch",
        help="show a live table of the nodes until the execution ends",
    )
    mode.add_argument("--wait", dest="mode", action="store_const", const="wait", help="wait for the end and show it")
    run.add_argument("--timeout", type=int, metavar="S",
                     help="with --wait/--watch: stop waiting after S seconds, exit 6 (the execution keeps "
                          "running), as kubectl wait --timeout")
    run.add_argument("--deadline", type=int, metavar="S",
                     help="deadline of the execution in seconds (spec.timeoutSeconds): the operator "
                          "stops it and it Fails with DeadlineExceeded")

    get = command("get", "show one execution and its nodes")
    get.add_argument("execution", metavar="EXECUTION")
    get.add_argument("-o", "--output", choices=("json", "yaml"), help="print the object instead of a table")
    get.add_argument("-w", "--watch", action="store_true", help="redraw the table on each change until the run ends")

    lst = command("list", "list executions (or workflows, or schedules)")
    lst.add_argument("kind", nargs="?", default="executions", choices=("executions", WORKFLOWS, "schedules"))
    lst.add_argument("-A", "--all-namespaces", action="store_true", help="in every namespace you may list")
    lst.add_argument("-l", "--selector", metavar="SELECTOR", help="only objects whose labels match (as kubectl -l)")
    lst.add_argument("--phase", choices=("Pending", "Running", "Succeeded", "Failed", "Cancelled"),
                     help="only executions in this phase")
    lst.add_argument("--workflow", metavar="W", help="only executions of this Workflow")
    lst.add_argument("--schedule", metavar="S", help="only executions of this WorkflowSchedule")
    lst.add_argument("-o", "--output", choices=("json", "yaml"), help="print the objects instead of a table")

    logs = command("logs", "print each node's log, in execution order")
    logs.add_argument("execution", metavar="EXECUTION")
    logs.add_argument("--node", metavar="N", help="only this node")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing until the execution ends")

    retry = command("retry", "re-run a Failed or Cancelled execution from where it failed, or any finished "
                    "one from a node (spec.resumeFrom)")
    retry.add_argument("execution", metavar="EXECUTION")
    retry.add_argument("--from", dest="from_node", metavar="NODE",
                       help="rerun this node and everything downstream of it; reuse the nodes that do not "
                            "depend on it (also on a Succeeded execution)")
    retry.add_argument("-p", "--param", dest="params", action="append", default=[], metavar="KEY=VALUE",
                       help="a param value for the nodes that run again (repeatable); reused nodes keep theirs")
    retry_mode = retry.add_mutually_exclusive_group()
    retry_mode.add_argument("--watch", dest="mode", action="store_const", const="watch",
                            help="show a live table of the nodes until the retry ends")
    retry_mode.add_argument("--wait", dest="mode", action="store_const", const="wait",
                            help="wait for the end and show it")

    cancel = command("cancel", "terminate an execution: delete its running Jobs, no finally (sets spec.cancel)")
    cancel.add_argument("execution", metavar="EXECUTION")

    for verb, what in (("approve", "approve an approval gate: the node Succeeds"),
                       ("deny", "deny an approval gate: the node Fails (reason Denied)")):
        decide = command(verb, f"{what} (sets spec.approvals.NODE)")
        decide.add_argument("execution", metavar="EXECUTION")
        decide.add_argument("node", metavar="NODE", help="the gate: a node with `approval:`")
        decide.add_argument("--message", "-m", metavar="TEXT", help="why, and who decides (kept in the "
                            "gate's output and status)")

    stop = command("stop", "stop an execution gracefully: running nodes finish, finally runs (sets spec.stop)")
    stop.add_argument("execution", metavar="EXECUTION")

    wait = command("wait", "wait until an execution ends (or reaches --for PHASE); the exit status says how")
    wait.add_argument("execution", metavar="EXECUTION")
    wait.add_argument("--for", dest="phase", choices=("Running", "Succeeded", "Failed", "Cancelled"),
                      help="wait for this phase: exit 0 when reached, 1 when the execution ended otherwise")
    wait.add_argument("--timeout", type=int, metavar="S", help="give up after S seconds, exit 6")

    delete = command("delete", "delete executions (their Jobs and pods go with them)")
    delete.add_argument("executions", nargs="+", metavar="EXECUTION")

    completion = command("completion", "print a shell completion script (source <(jobchain completion bash))",
                         cluster=False)
    completion.add_argument("shell", choices=("bash", "zsh", "fish"))

    lint = command("lint", "validate Workflow, WorkflowExecution and WorkflowSchedule YAML offline", cluster=False)
    lint.add_argument("files", nargs="+", metavar="FILE|DIR",
                      help="YAML files, multi-document, or directories (their *.yaml and *.yml, recursively); "
                           "- reads stdin. Objects of other APIs (a ConfigMap) are skipped with a note")
    lint.add_argument("-o", "--output", choices=("json",), help="print the result as JSON, for tools")

    graph = command("graph", "draw a workflow's graph (from the cluster or a file)")
    graph.add_argument("target", nargs="?", metavar="WORKFLOW|FILE")
    graph.add_argument("--execution", metavar="NAME", help="draw this execution, with each node's phase")
    graph.add_argument("--name", metavar="NAME", help="which Workflow (or WorkflowExecution) of a FILE holding several")
    graph.add_argument(
        "--format",
        choices=("text", "mermaid", "dot", "svg"),
        default="text",
        help="svg: a standalone picture, laid out as the dashboard draws it",
    )

    dashboard = command(
        "dashboard",
        "serve a read-only web dashboard of executions and workflows, live: all namespaces "
        "you may list, or only -n NAMESPACE",
    )
    dashboard.add_argument("--address", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    dashboard.add_argument("--port", type=int, default=8090, metavar="N", help="port to listen on (default: 8090)")
    dashboard.add_argument("--open", action="store_true", help="open the page in the default web browser")
    dashboard.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                           help="a Host name browsers may use besides 127.0.0.1/localhost (repeatable; the "
                                "Service's or an ingress's name when it runs in the cluster)")
    dashboard.add_argument("--viewer-auth", choices=("none", "token", "proxy"), default="none",
                           help="in the cluster: identify each viewer by a bearer token (token) or by an "
                                "authenticating proxy's X-Forwarded-User/-Groups headers (proxy), and show "
                                "only what they may see; none (default): the kubeconfig's user is the viewer")

    operator = command("operator", "run the operator (normally inside the cluster)", cluster=False)
    scope = operator.add_mutually_exclusive_group()
    scope.add_argument(
        "--namespace",
        "-n",
        dest="watch_namespaces",
        action="append",
        metavar="NS",
        help="watch this namespace (repeatable; default: all namespaces)",
    )
    scope.add_argument("--all-namespaces", "-A", action="store_true", help="watch every namespace (the default)")
    operator.add_argument("--metrics-port", type=int, default=8080, metavar="N")
    operator.add_argument("--health-port", type=int, default=8081, metavar="N")
    operator.add_argument("--bind-address", default="0.0.0.0", metavar="ADDR",
                          help="address the metrics and health servers listen on (default 0.0.0.0: all)")
    operator.add_argument("--log-format", choices=("plain", "json"), default="plain")
    operator.add_argument("--verbose", "-v", action="store_true")
    election = operator.add_argument_group(
        "leader election", "run several replicas, one active: the one holding a coordination.k8s.io Lease")
    election.add_argument("--leader-elect", action="store_true",
                          help="act only while holding the Lease (the shipped Deployment sets this)")
    election.add_argument("--lease-name", default="jobchain-operator", metavar="NAME")
    election.add_argument("--lease-namespace", default=None, metavar="NS",
                          help="default: $JOBCHAIN_OPERATOR_NAMESPACE (the operator's own namespace)")
    election.add_argument("--lease-duration", type=float, default=12.0, metavar="SECONDS",
                          help="a standby takes over a Lease not renewed for this long (default 12)")
    election.add_argument("--renew-deadline", type=float, default=8.0, metavar="SECONDS",
                          help="the active replica stops acting when it could not renew for this long (default 8)")
    election.add_argument("--retry-period", type=float, default=2.0, metavar="SECONDS",
                          help="how often the Lease is renewed, or looked at by a standby (default 2)")
    return parser


def dispatch(args: argparse.Namespace, stdin: IO[str], out: IO[str], err: IO[str]) -> int:
    # Imports per command: `lint` never loads the Kubernetes client, and only `operator` loads kopf.
    if args.command == "completion":
        from jobchain.cli.completion import script

        out.write(script(build_parser(), args.shell))
        return 0
    if args.command == "lint":
        from jobchain.cli.lint import run_lint

        return run_lint(args.files, out, stdin, args.output)
    if args.command == "operator":
        from jobchain.cli.commands import run_operator

        namespaces = args.watch_namespaces or ([args.namespace] if getattr(args, "namespace", None) else None)
        return run_operator(
            None if args.all_namespaces else namespaces,
            args.metrics_port,
            args.health_port,
            args.log_format,
            args.verbose,
            args.bind_address,
            election={
                "enabled": args.leader_elect,
                "namespace": args.lease_namespace or os.environ.get("JOBCHAIN_OPERATOR_NAMESPACE"),
                "name": args.lease_name,
                "lease_duration": args.lease_duration,
                "renew_deadline": args.renew_deadline,
                "retry_period": args.retry_period,
            },
        )

    def cluster() -> CliCluster:
        from jobchain.cli.cluster import connect

        return connect(
            getattr(args, "kubeconfig", None),
            getattr(args, "context", None),
            getattr(args, "namespace", None),
        )

    from jobchain.cli import commands

    if args.command == "graph":
        return commands.draw_graph(cluster, args.target, args.execution, args.format, stdin, out, err, args.name)
    if args.command == "run":
        from jobchain.cli.run import (
            check_timeout,
            execution_manifest,
            parse_params,
            parse_secret_params,
            run_execution,
        )
        from jobchain.cli.workflow_file import execution_from_file, is_file_argument

        if args.timeout is not None and args.mode is None:
            raise CliError(f"--timeout {args.timeout} limits --wait or --watch; give one of them, or set the "
                           f"execution's deadline with --deadline {args.timeout}")
        limit = check_timeout(args.timeout)
        if args.from_schedule:
            if args.workflow or args.params or args.deadline:
                raise CliError("--from-schedule runs the schedule's template as it is: give no WORKFLOW, -p or "
                               "--deadline with it")
            from jobchain.cli.again import run_from_schedule

            return run_from_schedule(cluster(), args.from_schedule, args.mode, out, err, limit)
        if not args.workflow:
            raise CliError("run needs a WORKFLOW (or a FILE, or --from-schedule SCHEDULE)")
        # Bad input (a -p, a file) is refused before the cluster is touched.
        params, timeout = parse_params(args.params), check_timeout(args.deadline, "--deadline")
        secret_params = parse_secret_params(args.secret_params)
        if is_file_argument(args.workflow):
            manifest = execution_from_file(args.workflow, params, timeout, stdin)
        else:
            manifest = execution_manifest(args.workflow, params, timeout)
        if secret_params:
            manifest["spec"]["paramsFrom"] = secret_params
        return run_execution(cluster(), manifest, args.mode, out, err, limit=limit)
    from jobchain.cli import verbs

    if args.command == "get":
        if args.watch:
            if args.output:
                raise CliError("get --watch draws the table; give -o without --watch")
            return verbs.watch_execution(cluster(), args.execution, out)
        return commands.get_execution(cluster(), args.execution, args.output, out)
    if args.command == "list":
        if args.kind != "executions" and (args.workflow or args.schedule or args.phase):
            raise CliError(f"--workflow, --schedule and --phase filter executions, not {args.kind}")
        return verbs.list_objects(cluster(), args.kind, workflow=args.workflow, schedule=args.schedule,
                                  phase=args.phase, selector=args.selector, all_namespaces=args.all_namespaces,
                                  fmt=args.output, out=out)
    if args.command == "wait":
        from jobchain.cli.run import check_timeout as positive

        return verbs.wait_execution(cluster(), args.execution, args.phase, positive(args.timeout), out, err)
    if args.command == "delete":
        return verbs.delete_executions(cluster(), args.executions, out, err)
    if args.command == "logs":
        from jobchain.cli.logs import follow_logs, show_logs

        return (follow_logs if args.follow else show_logs)(cluster(), args.execution, args.node, out)
    if args.command == "dashboard":
        from jobchain.cli.dashboard import run_dashboard

        given = getattr(args, "namespace", None) is not None
        return run_dashboard(cluster(), given, args.address, args.port, args.open, out, err,
                             args.allowed_host, args.viewer_auth)
    if args.command == "cancel":
        return commands.cancel_execution(cluster(), args.execution, out)
    if args.command == "stop":
        return commands.stop_execution(cluster(), args.execution, out)
    if args.command in ("approve", "deny"):
        from jobchain.api.models import ApprovalDecision
        from jobchain.cli.approvals import decide_gate

        return decide_gate(cluster(), args.execution, args.node, ApprovalDecision(args.command), args.message, out)
    if args.command == "retry":
        from jobchain.cli.again import retry_execution
        from jobchain.cli.run import parse_params

        return retry_execution(cluster(), args.execution, args.mode, out, err, args.from_node,
                               parse_params(args.params))
    raise CliError(f"unknown command {args.command!r}")


def _prog(argv0: str) -> str:
    return "kubectl jobchain" if os.path.basename(argv0).startswith("kubectl-") else "jobchain"


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry: returns the exit status; prints one line on stderr for any error."""
    prog = _prog(sys.argv[0])
    args = build_parser(prog).parse_args(argv)
    try:
        return dispatch(args, sys.stdin, sys.stdout, sys.stderr)
    except CliError as exc:
        print(f"{prog}: error: {exc.message}", file=sys.stderr)
        return int(exc.code)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return int(Exit.INTERRUPTED)
    except BrokenPipeError:
        # The reader (head, less) went away: not an error. Keep Python from complaining at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as exc:  # a bug, or a failure `cluster` did not translate
        if os.environ.get("JOBCHAIN_DEBUG"):
            raise
        from jobchain.cli.cluster import describe_unexpected

        message, code = describe_unexpected(exc)
        print(f"{prog}: error: {message}", file=sys.stderr)
        return int(code)


if __name__ == "__main__":
    sys.exit(main())
