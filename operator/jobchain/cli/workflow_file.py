"""Workflow files given on the command line: `run FILE` and `graph FILE` read them here.

`run FILE` runs the file's Workflow without installing it: the execution carries the spec
inline (`spec.workflow`), so editing the file and running it again needs no `kubectl
apply`. The file is linted with the operator's rules first, so a mistake is refused (exit
status 3) before anything is created.
"""

from __future__ import annotations

import copy
import os
from typing import IO, Any

from jobchain.api.vocabulary import API_VERSION, KIND_EXECUTION, KIND_WORKFLOW
from jobchain.cli.errors import usage_error
from jobchain.cli.lint import STDIN, Document, lint_documents, object_label, parse_documents, read_text


def is_file_argument(argument: str) -> bool:
    """A WORKFLOW|FILE argument names a file when it is `-` or an existing file.

    Raises for something that looks like a path but does not exist, rather than asking the
    cluster for a Workflow called `wf.yaml`.
    """
    if argument == STDIN or os.path.isfile(argument):
        return True
    if os.sep in argument or argument.endswith((".yaml", ".yml", ".json")):
        raise usage_error(f"{argument}: no such file")
    return False


def read_objects(path: str, stdin: IO[str]) -> tuple[str, list[dict[str, Any]]]:
    """(display name, the file's objects); raises CliError for an unreadable file or bad YAML."""
    name = "<stdin>" if path == STDIN else path
    try:
        text = read_text(path, stdin)
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise usage_error(f"{name}: cannot read: {reason}") from None
    documents, syntax = parse_documents(text, name)
    if syntax:
        raise usage_error(str(syntax[0]))
    return name, [d.body for d in documents if isinstance(d.body, dict)]


def execution_from_file(path: str, params: dict[str, str], timeout: int | None, stdin: IO[str]) -> dict[str, Any]:
    """The WorkflowExecution to create for `run FILE`.

    A file with one Workflow gives an execution of that spec, inline. A file with no Workflow
    and one WorkflowExecution gives that execution (its status dropped). `-p` and --timeout
    are set on top. Other documents are ignored.
    """
    name, objects = read_objects(path, stdin)
    workflows = [o for o in objects if o.get("kind") == KIND_WORKFLOW]
    executions = [o for o in objects if o.get("kind") == KIND_EXECUTION]
    if len(workflows) == 1:
        base = (workflows[0].get("metadata") or {}).get("name") or "workflow"
        manifest: dict[str, Any] = {
            "apiVersion": API_VERSION,
            "kind": KIND_EXECUTION,
            "metadata": {"generateName": f"{base}-"},
            "spec": {"workflow": copy.deepcopy(workflows[0].get("spec"))},
        }
    elif not workflows and len(executions) == 1:
        manifest = copy.deepcopy(executions[0])
        manifest.pop("status", None)
        (manifest.get("metadata") or {}).pop("namespace", None)  # -n decides, as for the other commands
    else:
        found = ", ".join(object_label(o, i) for i, o in enumerate(objects, 1)) or "nothing"
        raise usage_error(f"{name}: expected one Workflow (or one WorkflowExecution) to run, found: {found}")
    spec = manifest.setdefault("spec", {})
    if params:
        spec["params"] = {**(spec.get("params") or {}), **params}
    if timeout is not None:
        spec["timeoutSeconds"] = timeout
    problems, _ = lint_documents([Document(name, 1, manifest)])
    if problems:
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise usage_error(f"{name}: {first.path}: {first.message}{more}; `jobchain lint {path}` shows every problem")
    return manifest
