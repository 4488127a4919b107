"""Every rule about a Workflow or a WorkflowExecution that the pydantic models alone cannot check.

Why one module: the operator (a Workflow's Ready condition, an execution's start), `jobchain
lint` and `jobchain run` must refuse exactly the same input with exactly the same words, so
each rule lives here once and returns `Problem`s (a field path and what to do); callers
only decide how to show them.

Why costs are bounded here: a Workflow is user input that the operator validates on its one
shared event loop's worker threads, so a spec must never make validation slow for everyone.
Every step is linear in the size of the spec (the schema caps that size, see `api.limits`),
CEL expressions are checked with a step budget (`cel.check`), and the total of those budgets
over one workflow is capped, so validating the largest spec the API server accepts stays
well under a second.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from jobchain.api import limits
from jobchain.api.models import EdgeKind, Node, OutputSource, Param, WorkflowExecutionSpec, WorkflowSpec
from jobchain.engine.spec import argv, cel, cel_types, output_schema, param_types, pod_fields, refs
from jobchain.engine.spec.graph import Graph, node_texts
from jobchain.engine.spec.outputs import MAX_FREE_FORM_DEPTH, depth
from jobchain.engine.spec.suggest import did_you_mean

MAX_PROBLEMS = 50  # more are summarized in one line: a message must stay readable (and fit in status)


@dataclass(frozen=True)
class Problem:
    path: str  # e.g. spec.nodes[1].next[0].when
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def join(problems: Iterable[Problem]) -> str:
    """The problems as one line, as the execution's message and `jobchain run` show them."""
    return "; ".join(str(p) for p in problems)


def _capped(problems: list[Problem], prefix: str) -> list[Problem]:
    if len(problems) <= MAX_PROBLEMS:
        return problems
    return [*problems[:MAX_PROBLEMS],
            Problem(prefix, f"and {len(problems) - MAX_PROBLEMS} more problem(s) like these")]


# ---- a workflow spec -----------------------------------------------------------------------
def _duplicates(names: Iterable[str]) -> list[tuple[int, str, int]]:
    """(index, name, index of its first use) of each repeated name; linear."""
    first: dict[str, int] = {}
    repeated = []
    for i, name in enumerate(names):
        if name in first:
            repeated.append((i, name, first[name]))
        else:
            first[name] = i
    return repeated


def _free_form(node: Node) -> Iterable[tuple[str, Any]]:
    """(field path relative to the node, value) of the fields passed to Kubernetes as they are."""
    yield "podTemplate", node.podTemplate
    yield "resources", node.resources
    for i, env in enumerate(node.env):
        yield f"env[{i}].valueFrom", env.valueFrom


def _node_problems(node: Node, path: str, spec: WorkflowSpec, names: set[str],
                   budget: cel.Budget | None, typed: _Typed | None = None) -> Iterable[Problem]:
    """Problems of one node and its edges; `budget` None: the `when`s are not compiled (over their limit)."""
    if node.script is not None and (node.command or node.args):
        yield Problem(path, "set either script or command/args, not both")
    if node.approval is not None:
        yield from _gate_problems(node, path)
    elif not (node.image or spec.defaults.image):
        yield Problem(f"{path}.image", "no image: set it on the node or in spec.defaults.image")
    if node.outputSchema is not None:
        for where, message in output_schema.problems(node.outputSchema, f"{path}.outputSchema"):
            yield Problem(where, message)
    for rel, text in node_texts(node):
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > limits.MAX_ARG_BYTES:
            yield Problem(f"{path}.{rel}", f"is {size} bytes; Linux refuses a single argument or environment "
                          f"string over {limits.MAX_ARG_BYTES} bytes: pass large data through a volume instead")
    for rel, message in argv.code_problems(node):
        yield Problem(f"{path}.{rel}", message)
    for rel, value in _free_form(node):
        if value is not None and depth(value, MAX_FREE_FORM_DEPTH) > MAX_FREE_FORM_DEPTH:
            yield Problem(f"{path}.{rel}", f"nested deeper than {MAX_FREE_FORM_DEPTH} levels (the operator could "
                          "not keep it in status; a pod spec needs about 10): flatten it")
        elif value is not None:
            for where, message in pod_fields.problems(rel.rsplit(".", 1)[-1], value, f"{path}.{rel}"):
                yield Problem(where, message)
    targets: set[str] = set()
    for j, edge in enumerate(node.next):
        epath = f"{path}.next[{j}]"
        if edge.node not in names:
            shown = sorted(names)
            listed = ", ".join(shown[:20]) + (", ..." if len(shown) > 20 else "")
            yield Problem(f"{epath}.node", f"edge to unknown node {edge.node!r}{did_you_mean(edge.node, names)} "
                          f"(nodes: {listed})")
        if edge.node in targets:
            yield Problem(f"{epath}.node", f"second edge from {node.name!r} to {edge.node!r}; "
                          "use one edge (type: always covers success and failure)")
        targets.add(edge.node)
        if edge.type == EdgeKind.CONDITION:
            if not edge.when:
                yield Problem(f"{epath}.when", "an edge with type: condition needs `when`")
            elif typed is not None and (wrong := cel_types.check(edge.when, cel_types.with_output(typed.when, node),
                                                                 "bool", "`when`")):
                yield Problem(f"{epath}.when", f"CEL {wrong}")
            elif budget is not None and budget.steps >= 0:
                try:
                    cel.check(edge.when, budget)
                except cel.CelError as exc:
                    yield Problem(f"{epath}.when", f"CEL {exc}")
            yield from _secret_param_problems(edge.when or "", f"{epath}.when", spec, "`when`")
        elif edge.when is not None:
            yield Problem(f"{epath}.when", f"`when` only goes with type: condition (this edge is type: {edge.type})")
    yield from _fan_out_problems(node, path, spec, budget, typed)


# What a Job node has and an approval gate (no Job) cannot have: each would be silently ignored.
_NOT_ON_A_GATE = ("image", "script", "command", "args", "resources", "retries", "timeoutSeconds",
                  "serviceAccountName", "podTemplate", "forEach")


def _gate_problems(node: Node, path: str) -> Iterable[Problem]:
    """An approval gate runs no Job: the fields of a Job are mistakes on it (use approval.timeoutSeconds)."""
    for field in _NOT_ON_A_GATE:
        if getattr(node, field) is not None:
            hint = " (for a deadline use approval.timeoutSeconds)" if field == "timeoutSeconds" else ""
            yield Problem(f"{path}.{field}", f"an approval gate runs no Job, so {field} does not go with "
                          f"approval{hint}: remove it, or make this a node of its own")
    if node.env:
        yield Problem(f"{path}.env", "an approval gate runs no Job, so env does not go with approval: remove it")
    if node.output.from_ != OutputSource.TERMINATION_MESSAGE:
        yield Problem(f"{path}.output", "an approval gate's output is its decision, so output does not go "
                      "with approval: remove it")


@dataclass(frozen=True)
class _Typed:
    """The types of the variables CEL sees in this workflow, built once for all its expressions."""

    when: dict[str, cel_types.Type]
    for_each: dict[str, cel_types.Type]


def _fan_out_problems(node: Node, path: str, spec: WorkflowSpec, budget: cel.Budget | None,
                      typed: _Typed | None = None) -> Iterable[Problem]:
    """forEach is checked like `when` (syntax, known names); its settings make no sense without it."""
    if node.forEach is None:
        for setting in ("maxParallel", "maxItems"):
            if getattr(node, setting) is not None:
                yield Problem(f"{path}.{setting}", f"{setting} only goes with forEach")
        if node.failFast:
            yield Problem(f"{path}.failFast", "failFast only goes with forEach")
        return
    if not node.forEach.strip():
        yield Problem(f"{path}.forEach", "forEach is empty: give a CEL expression that yields a list")
    elif typed is not None and (wrong := cel_types.check(node.forEach, typed.for_each, "list", "forEach")):
        yield Problem(f"{path}.forEach", f"CEL {wrong}")
    elif budget is not None and budget.steps >= 0:
        try:
            cel.check(node.forEach, budget, cel.FOR_EACH_VARIABLES, "forEach")
        except cel.CelError as exc:
            yield Problem(f"{path}.forEach", f"CEL {exc}")
    yield from _secret_param_problems(node.forEach, f"{path}.forEach", spec, "forEach")


def _secret_param_problems(expression: str, path: str, spec: WorkflowSpec, what: str) -> Iterable[Problem]:
    """A condition never sees secret params (they stay in their Secret): naming one is a mistake."""
    secret = {p.name for p in spec.params if p.secret}
    for name in sorted(cel.param_names(expression) & secret if secret else ()):
        yield Problem(path, f"param {name} is secret, and {what} cannot see secret params (their values "
                      "stay in the Secret, read only by the pod): decide on a non-secret param or an output")


def _find_cycle(graph: Graph) -> list[str] | None:
    """A cycle as a list of names (first == last), or None; iterative, so depth is no limit."""
    white, grey, black = 0, 1, 2
    color = dict.fromkeys(graph.nodes, white)
    for root in graph.nodes:
        if color[root] != white:
            continue
        color[root] = grey
        path = [root]
        stack = [iter([e.node for e in graph.nodes[root].next])]
        while stack:
            target = next(stack[-1], None)
            if target is None:
                stack.pop()
                color[path.pop()] = black
            elif target not in color:
                continue
            elif color[target] == grey:
                return [*path[path.index(target):], target]
            elif color[target] == white:
                color[target] = grey
                path.append(target)
                stack.append(iter([e.node for e in graph.nodes[target].next]))
    return None


def _upstream_sets(spec: WorkflowSpec, graph: Graph) -> dict[str, int]:
    """Each node's upstream nodes as a bit set (bit i: spec.nodes[i]), for an acyclic graph.

    Why bit sets in topological order: asking `graph.upstream()` for every node is
    O(nodes x edges), seconds for 500 nodes with 100 edges each; this is one pass over the edges.
    """
    index = {n.name: i for i, n in enumerate(spec.nodes)}
    pending = {name: len(ins) for name, ins in graph.incoming.items()}
    ready = [name for name, count in pending.items() if count == 0]
    bits = dict.fromkeys(graph.nodes, 0)
    while ready:
        name = ready.pop()
        for edge in graph.nodes[name].next:
            if edge.node in bits:
                bits[edge.node] |= bits[name] | (1 << index[name])
                pending[edge.node] -= 1
                if pending[edge.node] == 0:
                    ready.append(edge.node)
    return bits


def _reference_problems(spec: WorkflowSpec, graph: Graph, acyclic: bool, prefix: str,
                        main_count: int) -> Iterable[Problem]:
    names = set(graph.nodes)
    index = {n.name: i for i, n in enumerate(spec.nodes)}
    param_names = {p.name for p in spec.params}
    secret_names = {p.name for p in spec.params if p.secret}
    declared = ", ".join(sorted(param_names)[:20]) + (", ..." if len(param_names) > 20 else "") or "none"
    starts = set(graph.starts())
    upstream = _upstream_sets(spec, graph) if acyclic else {}
    for i, node in enumerate(spec.nodes):
        for rel, text in node_texts(node):
            for raw, ref in refs.find(text):
                where = f"{prefix}.nodes[{i}].{rel}"
                if ref is None:
                    yield Problem(where, f"$({raw}) is not a valid reference; use $(params.X), $(input), "
                                  "$(input.KEY), $(nodes.NAME.output[.KEY]) or $(execution.name)")
                elif ref.kind == "params" and ref.target not in param_names:
                    hint = did_you_mean(ref.target or "", param_names)
                    yield Problem(where, f"$({raw}) names an unknown param{hint} (declared: {declared})")
                elif ref.raw and ref.kind == "params" and ref.target in secret_names:
                    yield Problem(where, f"$({raw}): a secret param cannot be raw (its value never reaches the "
                                  "operator); drop raw:")
                elif ref.kind == "nodes" and ref.target not in names:
                    yield Problem(where, f"$({raw}) names an unknown node{did_you_mean(ref.target or '', names)}")
                elif ref.kind == "execution" and ref.target in refs.OUTCOME_FIELDS and i < main_count:
                    yield Problem(where, f"$({raw}): only the nodes of spec.finally see the outcome of the main "
                                  "graph; move this node to spec.finally or drop the reference")
                elif (ref.kind == "nodes" and acyclic and ref.target is not None
                      and not (i >= main_count > index[ref.target])  # a finally node sees every main node
                      and not upstream[node.name] >> index[ref.target] & 1):
                    yield Problem(where, f"$({raw}): node {ref.target!r} does not run before "
                                  f"{node.name!r}; only upstream nodes' outputs can be used")
                elif ref.kind == "item" and node.forEach is None:
                    yield Problem(where, f"$({raw}): only a node with forEach has an item; add forEach to "
                                  "this node or use another reference")
                elif ref.kind == "input" and node.name in starts:
                    yield Problem(where, f"$({raw}): {node.name!r} is a start node and has no input")


def validate_workflow(spec: WorkflowSpec, prefix: str = "spec") -> list[Problem]:
    """All problems of a workflow spec that the pydantic model alone cannot see, at most MAX_PROBLEMS + 1.

    The finally nodes are checked as nodes declared after the main ones (their names unique
    across both lists, edges among them checked as any), plus the rule that no edge crosses
    between the two lists; their problems are reported at spec.finally[i]."""
    if not spec.finally_:
        return _validate_nodes(spec, prefix, len(spec.nodes))
    main_count = len(spec.nodes)
    combined = spec.model_copy(update={"nodes": [*spec.nodes, *spec.finally_], "finally_": []})
    problems = _finally_edge_problems(spec, prefix)
    problems += [Problem(_finally_path(p.path, prefix, main_count), p.message)
                 for p in _validate_nodes(combined, prefix, main_count)]
    return _capped(problems, f"{prefix}.nodes")


def _finally_path(path: str, prefix: str, main_count: int) -> str:
    """spec.nodes[i]... of the combined list, as the user wrote it: spec.finally[i - main_count]..."""
    head = f"{prefix}.nodes["
    if not path.startswith(head):
        return path
    index, _, rest = path[len(head):].partition("]")
    if not index.isdigit() or int(index) < main_count:
        return path
    return f"{prefix}.finally[{int(index) - main_count}]{rest}"


def _finally_edge_problems(spec: WorkflowSpec, prefix: str) -> list[Problem]:
    """No edge from a main node into a finally node (they run after the main graph, whatever it
    did), nor back (a main node would wait for what waits for it)."""
    main = {n.name for n in spec.nodes}
    finals = {n.name for n in spec.finally_}
    problems = []
    for i, node in enumerate(spec.nodes):
        for j, edge in enumerate(node.next):
            if edge.node in finals:
                problems.append(Problem(f"{prefix}.nodes[{i}].next[{j}].node", f"{edge.node!r} is a finally node: "
                                        "it runs once the main graph has ended, never after an edge; remove "
                                        "this edge"))
    for i, node in enumerate(spec.finally_):
        if node.approval is not None:
            problems.append(Problem(f"{prefix}.finally[{i}].approval", "an approval gate cannot be a finally node: "
                                    "the finally nodes run unattended once the main graph has ended (a stop or a "
                                    "deadline included); put the gate in spec.nodes"))
        for j, edge in enumerate(node.next):
            if edge.node in main:
                problems.append(Problem(f"{prefix}.finally[{i}].next[{j}].node", f"{edge.node!r} is a node of "
                                        "spec.nodes: a finally node can only lead to other finally nodes"))
    return problems


def _validate_nodes(spec: WorkflowSpec, prefix: str, main_count: int) -> list[Problem]:
    problems: list[Problem] = []
    for i, name, first in _duplicates(n.name for n in spec.nodes):
        problems.append(Problem(f"{prefix}.nodes[{i}].name", f"duplicate node name {name!r} (also nodes[{first}])"))
    for name in sorted({name for _, name, _ in _duplicates(p.name for p in spec.params)}):
        problems.append(Problem(f"{prefix}.params", f"duplicate param name {name!r}"))
    for i, param in enumerate(spec.params):
        if param.default is not None and "\x00" in param.default:
            problems.append(Problem(f"{prefix}.params[{i}].default", "contains a NUL byte, which no argument or "
                                    "environment variable can carry; remove it"))
        elif param.default is not None and (wrong := param_types.problem(param.name, param.type, param.default)):
            problems.append(Problem(f"{prefix}.params[{i}].default", wrong))
        if param.secret and param.type != "string":
            problems.append(Problem(f"{prefix}.params[{i}].type", "a secret param is a string (its value never "
                                    "reaches the operator, which could not check a type): remove `type`"))
    names = {n.name for n in spec.nodes}
    when_chars = sum(len(e.when or "") for n in spec.nodes for e in n.next)
    budget: cel.Budget | None = cel.Budget(limits.VALIDATION_CEL_STEPS)
    if when_chars > limits.MAX_WHEN_TOTAL:
        budget = None
        problems.append(Problem(f"{prefix}.nodes", f"the `when`s of all edges have {when_chars} characters together, "
                                f"more than {limits.MAX_WHEN_TOTAL}; shorten them (or split the workflow)"))
    typed = _Typed(cel_types.variables_of(spec.params, spec.nodes),
                   cel_types.variables_of(spec.params, spec.nodes, for_each=True)) if budget is not None else None
    for i, node in enumerate(spec.nodes):
        problems.extend(_node_problems(node, f"{prefix}.nodes[{i}]", spec, names, budget, typed))
        if len(problems) > 2 * MAX_PROBLEMS:
            break  # enough to show; the rest would only cost time
    graph = Graph.of(spec)
    cycle = _find_cycle(graph)
    if cycle:
        problems.append(Problem(f"{prefix}.nodes", f"cycle: {' -> '.join(cycle)}; a workflow must be acyclic"))
    elif not graph.starts():
        problems.append(Problem(f"{prefix}.nodes", "no start node (every node has an incoming edge)"))
    for problem in _reference_problems(spec, graph, cycle is None, prefix, main_count):
        problems.append(problem)
        if len(problems) > 2 * MAX_PROBLEMS:
            break
    return _capped(problems, f"{prefix}.nodes")


# ---- an execution's params -----------------------------------------------------------------
def validate_params(params: Mapping[str, str], declared: Iterable[Param], where: str,
                    from_secrets: Collection[str] = ()) -> list[Problem]:
    """The InvalidParams rule: every param set is declared, every param without a default is set,
    secret params come from Secrets (spec.paramsFrom) and only from there.

    `where` names the workflow for the message: `Workflow 'etl'` or `spec.workflow`.
    """
    by_name = {p.name: p for p in declared}
    listed = ", ".join(sorted(by_name)[:20]) + (", ..." if len(by_name) > 20 else "") or "none"
    problems = [
        Problem(f"spec.params.{name}", f"{where} does not declare this param{did_you_mean(name, by_name)} "
                f"(declared: {listed})")
        for name in sorted(set(params) - set(by_name))
    ]
    problems += [
        Problem("spec.paramsFrom", f"sets {name!r}, which {where} does not declare{did_you_mean(name, by_name)} "
                f"(declared: {listed})")
        for name in sorted(set(from_secrets) - set(by_name))
    ]
    problems += [
        Problem(f"spec.params.{name}", f"param {name} is set both in spec.params and in spec.paramsFrom; "
                "set it in one place")
        for name in sorted(set(params) & set(from_secrets))
    ]
    problems += [
        Problem(f"spec.params.{name}", "contains a NUL byte, which no argument or environment variable can "
                "carry; remove it")
        for name in sorted(params) if "\x00" in params[name]
    ]
    for name, param in sorted(by_name.items()):
        if param.secret and name in params:
            problems.append(Problem(f"spec.params.{name}", f"param {name} is secret: set it with "
                                    "spec.paramsFrom[].valueFrom.secretKeyRef, not in spec.params, where everyone "
                                    "who may read the execution sees it"))
        elif param.secret and name not in from_secrets:
            problems.append(Problem("spec.paramsFrom", f"param {name} is secret and must be set with "
                                    "spec.paramsFrom[].valueFrom.secretKeyRef (a key of a Secret in this namespace)"))
        elif param.default is None and name not in params and name not in from_secrets:
            problems.append(Problem("spec.params", f"must set {name!r}: {where} declares it without a default"))
        elif name in params and "\x00" not in params[name] and (
                wrong := param_types.problem(name, param.type, params[name])):
            problems.append(Problem(f"spec.params.{name}", wrong))
    return _capped(problems, "spec.params")


def resolve_params(params: Mapping[str, str], declared: Iterable[Param]) -> dict[str, str]:
    """The values a valid execution runs with: its own, else the declared defaults (a typed value in
    its compact JSON text, see param_types)."""
    return {p.name: param_types.canonical(params.get(p.name, p.default or ""), p.type) for p in declared}


# ---- a whole execution ---------------------------------------------------------------------
def validate_execution_spec(spec: WorkflowExecutionSpec) -> list[Problem]:
    """What to run: exactly one of workflowRef and workflow, or neither in a retry (resumeFrom), which
    inherits it (also a CRD rule; lint checks it offline)."""
    if spec.workflow is not None and spec.workflowRef is not None:
        return [Problem("spec", "set either workflowRef or workflow (inline), not both")]
    if spec.workflow is None and spec.workflowRef is None and spec.resumeFrom is None:
        return [Problem("spec", "set workflowRef.name (a Workflow in the same namespace) or an inline workflow "
                        "(or resumeFrom, to retry an execution)")]
    return []


def validate_execution(spec: WorkflowExecutionSpec, workflow: WorkflowSpec | None,
                       where: str = "spec.workflow") -> list[Problem]:
    """Everything that would fail this execution at its start, given the workflow it runs.

    `workflow` is None for a workflowRef not at hand (offline lint): then only the execution's
    own shape is checked, as for a retry (resumeFrom). For an inline workflow, `workflow` is spec.workflow.
    """
    problems = validate_execution_spec(spec)
    if problems or workflow is None or spec.resumeFrom is not None:
        # A retry runs the resumed execution's snapshot, with its params: the operator checks them.
        return problems
    if spec.workflow is not None:
        problems = validate_workflow(workflow, prefix="spec.workflow")
    from_secrets = [p.name for p in spec.paramsFrom]
    return problems + validate_params(spec.params, workflow.params, where, from_secrets)
