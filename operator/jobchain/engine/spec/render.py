"""Renders the Kubernetes Job of a node as plain data (no client objects, no I/O).

Why pure: the Kubernetes layer only creates what this returns, so the Job a node gets is
decided by spec + scope alone and tested without a cluster. Names and labels are derived
from execution + node, so a retried handler or a restarted operator finds the same Job
instead of creating a second one.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from jobchain.api.models import Node, OutputSource, WorkflowSpec
from jobchain.api.vocabulary import (
    ANNOTATION_EXECUTION,
    ANNOTATION_EXECUTION_UID,
    ANNOTATION_INPUT,
    API_VERSION,
    CONTAINER,
    KIND_EXECUTION,
    LABEL_EXECUTION,
    LABEL_ITEM,
    LABEL_MANAGED_BY,
    LABEL_NODE,
    LABEL_WORKFLOW,
    MANAGED_BY,
)
from jobchain.engine.spec import argv, refs
from jobchain.engine.spec.graph import node_texts
from jobchain.engine.spec.outputs import IN_LOG_MARK, LOG_BEGIN_MARK, LOG_END_MARK, termination_message_limit
from jobchain.engine.spec.outputs import input_json as to_input_json
from jobchain.engine.spec.refs import Scope, UnresolvedReference
from jobchain.engine.spec.shell import Quoting, Refused, contexts

# Every node's input as a file ($JOBCHAIN_INPUT_FILE): mounted from the predecessor's output
# ConfigMap when the output was kept in one, otherwise projected from this pod annotation.
INPUT_VOLUME = "jobchain-input"
INPUT_DIR = "/var/run/jobchain/input"
INPUT_FILE = f"{INPUT_DIR}/input.json"
OUTPUT_KEY = "output.json"  # the key of an output ConfigMap
OUTPUT_PATH = "/dev/termination-log"
MAX_JOB_NAME = 52  # the Job controller appends "-xxxxx" to pod names; keep hostnames <= 63
# Linux's MAX_ARG_STRLEN: one argument or one "NAME=value" environment string, with its NUL.
MAX_ARG_BYTES = 128 * 1024
REF_VAR = "JOBCHAIN_REF_"
SECRET_VAR = "JOBCHAIN_SECRET_"


def _hash(*parts: str, size: int = 8) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:size]


def _shorten(text: str, limit: int, *key: str) -> str:
    """`text` if it fits, otherwise a prefix plus a hash of `key`, at most `limit` characters."""
    if len(text) <= limit:
        return text
    suffix = _hash(*key)
    return text[: limit - len(suffix) - 1].rstrip("-.") + "-" + suffix


def job_name(execution: str, node: str) -> str:
    """Deterministic, DNS-1123 and at most 52 characters.

    Always hashed: without it, execution "a" node "b-c" and execution "a-b" node "c" in one
    namespace would both get the Job "a-b-c".
    """
    base = re.sub(r"[^a-z0-9-]", "-", f"{execution}-{node}".lower())
    suffix = _hash(execution, node)
    prefix = base[: MAX_JOB_NAME - len(suffix) - 1].strip("-")
    return f"{prefix}-{suffix}" if prefix else suffix


ITEM_SEPARATOR = "#"  # never in a node name (a DNS label)


def item_key(node: str, index: int) -> str:
    """How a forEach item is named where nodes are: in observed Jobs, Job names, log prefixes."""
    return f"{node}{ITEM_SEPARATOR}{index}"


def items_list_key(node: str) -> str:
    """Where a forEach node's item list is kept (its ConfigMap is named from it, as an item's output
    ConfigMap is from node#index): never an item's key (not a number), nor a node name (no '#')."""
    return f"{node}{ITEM_SEPARATOR}items"


def split_key(key: str) -> tuple[str, int | None]:
    """(node, item index or None) of a key made by item_key, or a plain node name."""
    node, sep, index = key.partition(ITEM_SEPARATOR)
    return (node, int(index)) if sep and index.isdigit() else (key, None)


def key_of(job: dict[str, Any]) -> str | None:
    """The node (or node#index of an item) a Job of ours runs, from its labels."""
    labels = (job.get("metadata") or {}).get("labels") or {}
    node = labels.get(LABEL_NODE)
    if node is None:
        return None
    index = labels.get(LABEL_ITEM)
    return item_key(node, int(index)) if index is not None and str(index).isdigit() else node


def label_value(value: str) -> str:
    """A label value (at most 63 characters) that identifies `value`."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "-", value)
    return _shorten(cleaned, 63, value).strip("-._") or _hash(value)


def execution_selector(execution: str) -> str:
    return f"{LABEL_EXECUTION}={label_value(execution)},{LABEL_MANAGED_BY}={MANAGED_BY}"


@dataclass(frozen=True)
class ExecutionRef:
    name: str
    namespace: str
    uid: str
    workflow: str  # the Workflow's name, or the execution's own for an inline spec
    # JOBCHAIN_SCHEDULED_TIME: a WorkflowSchedule's time for this run, else when the execution started
    scheduled_time: str | None = None


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Deep-merges an escape-hatch podTemplate into ours; lists of named items merge by name."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        elif isinstance(value, list) and isinstance(out.get(key), list) and all(
            isinstance(v, dict) and "name" in v for v in [*value, *out[key]]
        ):
            merged = {item["name"]: item for item in out[key]}
            for item in value:
                merged[item["name"]] = _merge(merged[item["name"]], item) if item["name"] in merged else item
            out[key] = list(merged.values())
        else:
            out[key] = copy.deepcopy(value)
    return out


# How a script node runs when its output is the termination message: `sh -c WRAPPER /bin/sh LIMIT SCRIPT`.
# The script runs as before (`/bin/sh -c SCRIPT`, its $0 /bin/sh, stdin kept, SIGTERM passed on, its
# exit code the container's); then an output of LIMIT bytes or more, which the kubelet would cut to
# its last 4096, is written whole to the log between marker lines, and the message only names its
# size and lines (engine.spec.outputs.read_message). Smaller outputs stay where they are: no log is
# read for them. Only `wc` and `cat` are needed besides the shell; without them the message stays
# long, and a long message fails the node as possibly cut, never passed on.
OUTPUT_WRAPPER = f"""child= stop=
trap 'stop=1; [ -n "$child" ] && kill -TERM "$child" 2>/dev/null' TERM
exec 3<&0
/bin/sh -c "$2" 0<&3 3<&- &
child=$!
exec 3<&-
if [ -n "$stop" ]; then kill -TERM "$child" 2>/dev/null; fi
while :; do
  wait "$child"; code=$?
  if [ "$code" -gt 128 ] && kill -0 "$child" 2>/dev/null; then continue; fi
  break
done
out={OUTPUT_PATH}
if [ -f "$out" ]; then
  size=$(wc -c < "$out"); size=${{size##* }}
  if [ "$size" -ge "$1" ] 2>/dev/null; then
    lines=$(wc -l < "$out"); lines=${{lines##* }}
    printf '\\n%s %s\\n' '{LOG_BEGIN_MARK}' "$size"
    cat "$out"
    printf '\\n%s %s\\n' '{LOG_END_MARK}' "$size"
    printf '%s %s %s' '{IN_LOG_MARK}' "$size" "$lines" > "$out"
  fi
fi
exit "$code"
"""


class ValueTooLarge(UnresolvedReference):
    """A value that Linux would refuse to pass to the container (over MAX_ARG_BYTES)."""


def kube_escape(value: str) -> str:
    """A value the kubelet delivers byte for byte: it expands `$(VAR)` and `$$` in env values,
    command and args, so every `$` of a value is written `$$`."""
    return value.replace("$", "$$")


def _check_size(what: str, text: str) -> None:
    size = len(text.encode()) + 1
    if size > MAX_ARG_BYTES:
        raise ValueTooLarge(
            f"{what} would be {size} bytes, over Linux's limit of {MAX_ARG_BYTES} bytes for one argument "
            "or environment variable; pass less data (a smaller output, a key of it) or through a volume"
        )


class _Substitution:
    """Replaces a node's references so that no value is ever parsed: by the shell or by the kubelet.

    In a script, each distinct reference becomes an environment variable the operator sets
    (`JOBCHAIN_REF_1`, ...) and the script text gets an expansion of it (`${JOBCHAIN_REF_1}`):
    the shell expands a value and never re-parses it, so `"$(params.who)"` works as written
    whatever the value holds. In command, args and env values the value is written in place,
    with `$` escaped as `$$` for the kubelet. A secret param is never known to the operator:
    it is an env var taken from the Secret (`valueFrom.secretKeyRef`), referenced as
    `${JOBCHAIN_SECRET_NAME}` in scripts and `$(JOBCHAIN_SECRET_NAME)` (kubelet expansion) elsewhere.
    """

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.env: list[dict[str, Any]] = []
        self.names: dict[str, str] = {}  # reference text -> env var name

    def _parse(self, raw: str) -> refs.Reference:
        ref = refs.parse(raw)
        if ref is None:
            raise UnresolvedReference(f"$({raw}): not a valid reference")
        return ref

    def _secret(self, ref: refs.Reference) -> str | None:
        """The env var of a secret param (added once), or None if `ref` is not one."""
        secrets = self.scope.secrets or {}
        if ref.kind != "params" or ref.target not in secrets:
            return None
        if ref.raw:
            raise UnresolvedReference(f"$({ref.text}): a secret param cannot be raw (its value never reaches the "
                                      "operator); drop raw:")
        name = SECRET_VAR + str(ref.target)
        key = ref.text
        if key not in self.names:
            self.names[key] = name
            self.env.append({"name": name, "valueFrom": {"secretKeyRef": copy.deepcopy(secrets[str(ref.target)])}})
        return name

    def value(self, ref: refs.Reference) -> str:
        """The value of `ref` as text; a NUL byte cannot be passed in an argument or env var."""
        value = refs.render_value(self.scope.resolve(ref))
        if "\0" in value:
            raise UnresolvedReference(f"$({ref.text}) holds a NUL byte, which no argument or environment variable "
                                      "can carry; remove it from the value")
        return value

    def variable(self, ref: refs.Reference) -> str:
        """The env var holding the value of `ref` (added on first use)."""
        secret = self._secret(ref)
        if secret is not None:
            return secret
        if ref.text not in self.names:
            name = f"{REF_VAR}{sum(1 for n in self.names.values() if n.startswith(REF_VAR)) + 1}"
            value = self.value(ref)
            _check_size(f"$({ref.text}) (environment variable {name})", f"{name}={value}")
            self.names[ref.text] = name
            self.env.append({"name": name, "value": kube_escape(value)})
        return self.names[ref.text]

    def script(self, text: str) -> str:
        """A shell text (a script, the operand of sh -c) with its references as env var expansions
        (raw ones pasted as they are); the caller escapes the result for the kubelet."""
        matches = [(start, end, self._parse(raw)) for start, end, raw in refs.locate(text)]
        if not matches:
            return text
        plain = [(start, end) for start, end, ref in matches if not ref.raw]
        try:
            quoting = iter(contexts(text, plain))
        except Refused as exc:
            raise UnresolvedReference(str(exc)) from None
        out, last = [], 0
        for start, end, ref in matches:
            if ref.raw:
                expansion = self.value(ref)
            else:
                where = next(quoting)
                if where == Quoting.QUOTED_HEREDOC:
                    raise UnresolvedReference(
                        f"$({ref.text}) is inside a quoted here-document (<<'EOF'), where the shell expands "
                        "nothing; use an unquoted delimiter (<<EOF) so the value can be expanded"
                    )
                expansion = "${" + self.variable(ref) + "}"
                if where == Quoting.SINGLE:
                    expansion = "'\"" + expansion + "\"'"
            out += [text[last:start], expansion]
            last = end
        out.append(text[last:])
        return "".join(out)

    def inline(self, what: str, text: str) -> str:
        """command, args and env values: values in place, `$`-escaped; secrets as $(VAR).

        A reference after an odd run of `$` is the kubelet's escape (`$$(params.x)` means the text
        `$(params.x)`) and is left alone: a value never completes a `$` the author wrote."""
        out, plain, last = [], [], 0
        for start, end, raw in refs.locate(text):
            run = len(text[:start]) - len(text[:start].rstrip("$"))
            if run % 2:
                continue
            ref = self._parse(raw)
            secret = self._secret(ref)
            if secret is not None:
                value, written = "", f"$({secret})"
            else:
                value = self.value(ref)
                written = kube_escape(value)
            out += [text[last:start], written]
            plain += [text[last:start], value]
            last = end
        if last == 0:
            return text
        out.append(text[last:])
        plain.append(text[last:])
        _check_size(what, "".join(plain))
        return "".join(out)


def _outcome_env(scope: Scope) -> list[dict[str, Any]]:
    """A finally node's view of how the main graph ended."""
    if scope.outcome is None:
        return []
    failed = json.dumps(list(scope.outcome["failedNodes"]), separators=(",", ":"))
    return [{"name": "JOBCHAIN_EXECUTION_PHASE", "value": str(scope.outcome["phase"])},
            {"name": "JOBCHAIN_EXECUTION_REASON", "value": kube_escape(str(scope.outcome["reason"]))},
            {"name": "JOBCHAIN_FAILED_NODES", "value": failed}]


def render_job(
    execution: ExecutionRef,
    spec: WorkflowSpec,
    node: Node,
    scope: Scope,
) -> dict[str, Any]:
    """The batch/v1 Job for `node` (for one item of it, when scope.item_index is set). Raises
    refs.UnresolvedReference for a reference with no value."""
    defaults = spec.defaults
    for rel, problem in argv.code_problems(node):
        raise UnresolvedReference(f"{rel} of node {node.name}: {problem}")
    values = _Substitution(scope)
    roles = argv.word_roles(node)
    texts: dict[str, str] = {}
    for rel, text in node_texts(node):
        if rel == "script":
            texts[rel] = kube_escape(values.script(text))  # a script arrives exactly as written
        elif roles.get(rel) == argv.Role.SHELL and next(refs.locate(text), None):
            texts[rel] = kube_escape(values.script(text))  # so does sh -c's operand with a reference
        else:
            texts[rel] = values.inline(f"{rel} of node {node.name}", text)
    public_params = {k: v for k, v in scope.params.items() if k not in (scope.secrets or {})}
    params_json = json.dumps(public_params, sort_keys=True, separators=(",", ":"))
    input_json = to_input_json(scope.input) if scope.has_input else ""
    _check_size("JOBCHAIN_PARAMS", f"JOBCHAIN_PARAMS={params_json}")
    # An input too large for one environment string (Linux's limit) is only in the file: the
    # variable is then empty rather than the node failing; scripts that may get one read the file.
    input_env = input_json if len(f"JOBCHAIN_INPUT={input_json}".encode()) + 1 <= MAX_ARG_BYTES else ""
    item_env: list[dict[str, Any]] = []
    if scope.item_index is not None:
        item_json = json.dumps(scope.item, separators=(",", ":"))
        _check_size("JOBCHAIN_ITEM (the forEach item)", f"JOBCHAIN_ITEM={item_json}")
        item_env = [{"name": "JOBCHAIN_ITEM", "value": kube_escape(item_json)},
                    {"name": "JOBCHAIN_ITEM_INDEX", "value": str(scope.item_index)}]

    env: list[dict[str, Any]] = [
        {"name": "JOBCHAIN_EXECUTION", "value": kube_escape(execution.name)},
        {"name": "JOBCHAIN_NODE", "value": node.name},
        {"name": "JOBCHAIN_OUTPUT", "value": OUTPUT_PATH},
        {"name": "JOBCHAIN_PARAMS", "value": kube_escape(params_json)},
        {"name": "JOBCHAIN_INPUT", "value": kube_escape(input_env)},
        {"name": "JOBCHAIN_INPUT_FILE", "value": INPUT_FILE},
        *item_env,
        {"name": "JOBCHAIN_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "JOBCHAIN_POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        *([{"name": "JOBCHAIN_SCHEDULED_TIME", "value": execution.scheduled_time}] if execution.scheduled_time else []),
        *_outcome_env(scope),
        # before the node's own env: the kubelet expands $(VAR) only with variables defined earlier
        *values.env,
    ]
    for i, var in enumerate(node.env):
        item: dict[str, Any] = {"name": var.name}
        if var.value is not None:
            item["value"] = texts[f"env[{i}].value"]
        if var.valueFrom is not None:
            item["valueFrom"] = copy.deepcopy(var.valueFrom)
        env.append(item)

    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": node.image or defaults.image,
        "imagePullPolicy": "IfNotPresent",
        "env": env,
        "terminationMessagePath": OUTPUT_PATH,
        "terminationMessagePolicy": "File",
        "volumeMounts": [{"name": INPUT_VOLUME, "mountPath": INPUT_DIR, "readOnly": True}],
    }
    if node.script is not None:
        container["command"] = ["/bin/sh", "-c", texts["script"]]
        if node.output.from_ == OutputSource.TERMINATION_MESSAGE:
            container["command"] = ["/bin/sh", "-c", OUTPUT_WRAPPER, "/bin/sh", texts["script"]]
    else:
        if node.command:
            container["command"] = [texts[f"command[{i}]"] for i in range(len(node.command))]
        if node.args:
            container["args"] = [texts[f"args[{i}]"] for i in range(len(node.args))]
    if node.resources:
        container["resources"] = copy.deepcopy(node.resources)

    labels = {
        LABEL_EXECUTION: label_value(execution.name),
        LABEL_NODE: node.name,
        LABEL_WORKFLOW: label_value(execution.workflow),
        LABEL_MANAGED_BY: MANAGED_BY,
    }
    key = node.name
    if scope.item_index is not None:
        labels[LABEL_ITEM] = str(scope.item_index)
        key = item_key(node.name, scope.item_index)
    annotations = {ANNOTATION_EXECUTION_UID: execution.uid, ANNOTATION_EXECUTION: execution.name}
    pod_annotations = dict(annotations)
    if scope.input_ref:
        volume: dict[str, Any] = {"name": INPUT_VOLUME, "configMap": {
            "name": scope.input_ref, "items": [{"key": OUTPUT_KEY, "path": "input.json"}]}}
    else:
        pod_annotations[ANNOTATION_INPUT] = input_json
        volume = {"name": INPUT_VOLUME, "downwardAPI": {"items": [
            {"path": "input.json", "fieldRef": {"fieldPath": f"metadata.annotations['{ANNOTATION_INPUT}']"}}]}}
    # A step's token is a right (its ServiceAccount's): mounted only where the step needs it, to set
    # its output annotation. A podTemplate may still ask for it (automountServiceAccountToken: true).
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never", "containers": [container], "volumes": [volume],
        "automountServiceAccountToken": node.output.from_ == OutputSource.ANNOTATION,
    }
    service_account = node.serviceAccountName or defaults.serviceAccountName
    if service_account:
        pod_spec["serviceAccountName"] = service_account
    template: dict[str, Any] = {
        "metadata": {"labels": dict(labels), "annotations": pod_annotations},
        "spec": pod_spec,
    }
    if node.podTemplate:
        template = _merge(template, node.podTemplate)
        template["metadata"]["labels"].update(labels)  # ours win: the operator finds pods by them
        template["spec"]["restartPolicy"] = "Never"
    pod_containers = template["spec"].get("containers") or []
    main = next((c for c in pod_containers if isinstance(c, dict) and c.get("name") == CONTAINER), {})
    if (main.get("command") or [])[2:3] == [OUTPUT_WRAPPER]:
        # the kubelet's share of one container's message, the podTemplate's containers counted
        count = len(pod_containers) + len(template["spec"].get("initContainers") or [])
        main["command"] = [*main["command"][:4], str(termination_message_limit(count)), *main["command"][4:]]

    retries = node.retries if node.retries is not None else defaults.retries
    timeout = node.timeoutSeconds if node.timeoutSeconds is not None else defaults.timeoutSeconds
    job_spec: dict[str, Any] = {"backoffLimit": retries or 0, "template": template}
    if timeout is not None:
        job_spec["activeDeadlineSeconds"] = timeout
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(execution.name, key),
            "namespace": execution.namespace,
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": KIND_EXECUTION,
                    "name": execution.name,
                    "uid": execution.uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": job_spec,
    }


def output_config_map_name(execution: str, node: str) -> str:
    """The ConfigMap keeping a node's whole output: derived from the Job's name, so a repeated pass
    (or another replica) finds the same one."""
    return f"{job_name(execution, node)}-output"


def render_items_config_map(execution: ExecutionRef, node: str, text: str) -> dict[str, Any]:
    """An immutable ConfigMap holding a forEach node's item list (JSON), made when the node starts."""
    manifest = render_output_config_map(execution, node, text)
    manifest["metadata"]["name"] = output_config_map_name(execution.name, items_list_key(node))
    return manifest


def render_output_config_map(execution: ExecutionRef, node: str, text: str, index: int | None = None) -> dict[str, Any]:
    """An immutable ConfigMap holding `text` (the output's JSON), owned by the execution: a node's, or
    (with `index`) one forEach item's, named as the item's Job is."""
    labels = {LABEL_EXECUTION: label_value(execution.name), LABEL_NODE: node,
              LABEL_WORKFLOW: label_value(execution.workflow), LABEL_MANAGED_BY: MANAGED_BY}
    if index is not None:
        labels[LABEL_ITEM] = str(index)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": output_config_map_name(execution.name, node if index is None else item_key(node, index)),
            "namespace": execution.namespace,
            "labels": labels,
            "annotations": {ANNOTATION_EXECUTION_UID: execution.uid, ANNOTATION_EXECUTION: execution.name},
            "ownerReferences": [{"apiVersion": API_VERSION, "kind": KIND_EXECUTION, "name": execution.name,
                                 "uid": execution.uid, "controller": True, "blockOwnerDeletion": True}],
        },
        "immutable": True,
        "data": {OUTPUT_KEY: text},
    }
