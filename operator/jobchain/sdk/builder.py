"""The fluent Workflow builder: Python calls in, the API's pydantic models and YAML out.

Why a thin layer over `jobchain.api.models`: the models are the one source of truth (they
generate the CRD and are what lint and the operator parse), so the builder only collects
nodes and edges, reports a bad call where it is made, and hands everything else (field
limits, CEL, references) to the models and to the CLI's lint.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from jobchain.api import models
from jobchain.api.errors import describe_validation_error
from jobchain.api.models import Approval, Edge, EdgeKind, EnvVar, Node, Param, ParamType, WorkflowSpec
from jobchain.api.vocabulary import API_VERSION, KIND_WORKFLOW
from jobchain.cli.lint import Document, lint_documents
from jobchain.engine.spec.suggest import did_you_mean
from jobchain.sdk.errors import InvalidWorkflow

if TYPE_CHECKING:
    from jobchain.sdk.runs import Result, Submitted

EDGE_KINDS = tuple(k.value for k in EdgeKind)
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Problem:
    """One finding of `jobchain lint`: the field path and what to do."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def param_text(value: Any) -> str:
    """A param value as the API carries it: a string byte for byte, anything else as its JSON text."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def param(name: str, default: Any = None, *, type: str | None = None, description: str | None = None,
          secret: bool = False) -> Param:
    """A declared param. The type is taken from the default when not given (10 -> integer);
    the default may be any JSON value (a string is kept byte for byte)."""
    if type is None:
        type = {bool: "boolean", int: "integer", float: "number", list: "array", dict: "object"}.get(
            default.__class__, ParamType.STRING.value)
    return _validated(Param, {"name": name, "type": type, "description": description, "secret": secret,
                              "default": None if default is None else param_text(default)}, f"param {name!r}")


def _validated(model: type[M], data: dict[str, Any], where: str) -> M:
    try:
        return model.model_validate({k: v for k, v in data.items() if v is not None})
    except ValidationError as err:
        lines = describe_validation_error(err)
        raise InvalidWorkflow(f"{where}: {'; '.join(lines)}") from None


class _Literal(str):
    """A multi-line string, written as a YAML literal block (a script reads as a script)."""


class _Dumper(yaml.SafeDumper):
    pass


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


class Workflow:
    """A Workflow under construction. Each call returns the builder, so calls chain; `then()`
    adds an edge from the node declared last (`node()` or `finally_node()`)."""

    def __init__(self, name: str, *, params: Iterable[Param | str] = (), image: str | None = None,
                 namespace: str | None = None, labels: Mapping[str, str] | None = None,
                 **spec_fields: Any) -> None:
        """`params`: `param(...)` or Param models (a bare name is a required string param);
        `image`: the default image of every node (spec.defaults.image); other keyword arguments are
        fields of the Workflow's spec by their YAML name (parallelism=2, maxConcurrentExecutions=1)."""
        self.name = name
        self.namespace = namespace
        self.labels = dict(labels or {})
        self.params = [p if isinstance(p, Param) else param(p) for p in params]
        self.spec_fields = dict(spec_fields)
        if image is not None:
            defaults = dict(self.spec_fields.get("defaults") or {})
            defaults["image"] = image
            self.spec_fields["defaults"] = defaults
        for key in ("nodes", "finally", "finally_", "params"):
            if key in self.spec_fields:
                raise InvalidWorkflow(f"Workflow({name!r}): {key!r} is not a keyword here; add nodes with "
                                      ".node(...) / .finally_node(...) and params with params=[...]")
        self.nodes: list[Node] = []
        self.finally_nodes: list[Node] = []
        self._current: Node | None = None

    # ---- building ---------------------------------------------------------------------
    @classmethod
    def from_model(cls, workflow: models.Workflow) -> Workflow:
        """A builder holding the pydantic model's Workflow (to lint, render or run it)."""
        spec = workflow.spec
        fields = spec.model_dump(by_alias=True, exclude_defaults=True, exclude={"nodes", "finally_", "params"})
        built = cls(workflow.metadata.name or "", params=spec.params, namespace=workflow.metadata.namespace,
                    labels=workflow.metadata.labels, **fields)
        for node in spec.nodes:
            built.node(node)
        for node in spec.finally_:
            built.finally_node(node)
        return built

    def node(self, name: str | Node, *, image: str | None = None, script: str | None = None,
             command: list[str] | None = None, args: list[str] | None = None,
             env: Mapping[str, str] | Iterable[EnvVar] | None = None, for_each: str | None = None,
             approval: str | bool | Approval | None = None, **fields: Any) -> Workflow:
        """Adds a node to spec.nodes: a Node model, or its name and fields. `env` may be a dict;
        `for_each` is spec forEach (a CEL list); `approval` makes it a gate (True, the question
        asked, or an Approval); other keyword arguments are node fields by their YAML name
        (retries=2, timeoutSeconds=60, maxParallel=4, podTemplate={...})."""
        built = self._build_node(name, image, script, command, args, env, for_each, approval, fields)
        self.nodes.append(built)
        return self

    def finally_node(self, name: str | Node, *, image: str | None = None, script: str | None = None,
                     command: list[str] | None = None, args: list[str] | None = None,
                     env: Mapping[str, str] | Iterable[EnvVar] | None = None, **fields: Any) -> Workflow:
        """Adds a node to spec.finally: it runs once the main graph has ended, whatever its end."""
        built = self._build_node(name, image, script, command, args, env, None, None, fields)
        self.finally_nodes.append(built)
        return self

    def then(self, node: str, on: str | None = None, when: str | None = None) -> Workflow:
        """An edge from the node declared last to `node` (declared before or after): on success
        (the default), failure, always, or condition with `when` (a CEL bool; `when` alone means
        on="condition")."""
        if self._current is None:
            raise InvalidWorkflow(f"then({node!r}): no node to start the edge from; call .node(...) first")
        kind = on or (EdgeKind.CONDITION.value if when is not None else EdgeKind.SUCCESS.value)
        where = f"node {self._current.name!r}: then({node!r}, on={kind!r})"
        if kind not in EDGE_KINDS:
            raise InvalidWorkflow(f"{where}: on must be one of {', '.join(EDGE_KINDS)}")
        if (kind == EdgeKind.CONDITION) != (when is not None):
            raise InvalidWorkflow(f"{where}: " + ("on='condition' needs when='CEL expression'"
                                                  if when is None else "when= goes with on='condition' only"))
        self._current.next.append(_validated(Edge, {"node": node, "type": kind, "when": when}, where))
        return self

    def _build_node(self, name: str | Node, image: str | None, script: str | None, command: list[str] | None,
                    args: list[str] | None, env: Mapping[str, str] | Iterable[EnvVar] | None,
                    for_each: str | None, approval: str | bool | Approval | None, fields: dict[str, Any]) -> Node:
        if isinstance(name, Node):
            if any(v is not None for v in (image, script, command, args, env, for_each, approval)) or fields:
                raise InvalidWorkflow(f"node({name.name!r}): give a Node model or fields, not both")
            built = name.model_copy(deep=True)
        else:
            if isinstance(env, Mapping):
                env = [EnvVar(name=k, value=v) for k, v in env.items()]
            gate = Approval(message=approval) if isinstance(approval, str) else (
                Approval() if approval is True else approval or None)
            data = {"name": name, "image": image, "script": script, "command": command, "args": args,
                    "env": list(env) if env is not None else None, "forEach": for_each, "approval": gate,
                    **fields}
            built = _validated(Node, data, f"node {name!r}")
        declared = [n.name for n in (*self.nodes, *self.finally_nodes)]
        if built.name in declared:
            raise InvalidWorkflow(f"node {built.name!r} is declared twice; names are unique across "
                                  "spec.nodes and spec.finally: rename one")
        self._current = built
        return built

    # ---- rendering --------------------------------------------------------------------
    def model(self) -> models.Workflow:
        """The Workflow as the API's pydantic model. Raises InvalidWorkflow for an edge to a node
        never declared, or a field the model refuses."""
        declared = [n.name for n in (*self.nodes, *self.finally_nodes)]
        for source in (*self.nodes, *self.finally_nodes):
            for edge in source.next:
                if edge.node not in declared:
                    raise InvalidWorkflow(
                        f"node {source.name!r}: then({edge.node!r}): no node {edge.node!r} is declared"
                        f"{did_you_mean(edge.node, declared)}; add it with .node({edge.node!r}, ...)")
        metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace, "labels": self.labels or None}
        spec = _validated(WorkflowSpec, {**self.spec_fields, "params": self.params, "nodes": self.nodes,
                                         "finally": self.finally_nodes}, f"Workflow {self.name!r}: spec")
        return _validated(models.Workflow, {"metadata": {k: v for k, v in metadata.items() if v},
                                            "spec": spec}, f"Workflow {self.name!r}")

    def to_dict(self) -> dict[str, Any]:
        """The Workflow as `kubectl apply` takes it: apiVersion, kind, metadata, and the spec
        without the fields left at their defaults."""
        workflow = self.model()
        return {
            "apiVersion": API_VERSION,
            "kind": KIND_WORKFLOW,
            "metadata": workflow.metadata.model_dump(mode="json", exclude_defaults=True),
            "spec": workflow.spec.model_dump(mode="json", by_alias=True, exclude_defaults=True),
        }

    def to_yaml(self) -> str:
        """to_dict() as YAML (multi-line scripts as literal blocks; every value byte for byte)."""
        return yaml.dump(self.to_dict(), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1 << 20)

    def lint(self) -> list[Problem]:
        """The problems `jobchain lint` finds in to_yaml() (the CLI's own function does the checks);
        empty when the Workflow would be accepted by the API server and the operator."""
        problems, _ = lint_documents([Document("<sdk>", 1, self.to_dict())])
        return [Problem(p.path, p.message) for p in problems]

    # ---- running (jobchain.sdk.runs) ----------------------------------------------------
    def submit(self, namespace: str | None = None, params: Mapping[str, Any] | None = None, *,
               secret_params: Mapping[str, tuple[str, str]] | None = None, deadline: int | None = None,
               kubeconfig: str | None = None, context: str | None = None) -> Submitted:
        """Creates or updates the Workflow in the cluster (after lint: a problem raises InvalidWorkflow
        before anything is written), then starts an execution with `params` (secret params as
        `secret_params={NAME: (SECRET, KEY)}`, a key of a Secret in the namespace) and returns without
        waiting.
        The namespace is `namespace`, else the Workflow's, else the kubeconfig context's."""
        from jobchain.sdk.runs import submit

        return submit(self, namespace or self.namespace, params or {}, deadline, kubeconfig, context, secret_params)

    def run(self, params: Mapping[str, Any] | None = None, *, wait: bool = True, timeout: float | None = None,
            namespace: str | None = None, secret_params: Mapping[str, tuple[str, str]] | None = None,
            deadline: int | None = None, kubeconfig: str | None = None, context: str | None = None) -> Result:
        """submit(), then (wait=True) watch the execution to its end, for at most `timeout` seconds
        (WaitTimeout after that; the execution keeps running). Returns its Result: phase, reason, and
        each node's phase and output as Python values."""
        submitted = self.submit(namespace, params, secret_params=secret_params, deadline=deadline,
                                kubeconfig=kubeconfig, context=context)
        return submitted.wait(timeout) if wait else submitted.result()
