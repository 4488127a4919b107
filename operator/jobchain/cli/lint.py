"""`jobchain lint`: offline validation of Workflow, WorkflowExecution and WorkflowSchedule YAML.

Why it needs no cluster and no extra rules: it parses with the same pydantic models (whose
limits are the CRD schema's, so a file that lints clean is accepted by the API server) and
runs the same checks as the operator (`engine.spec.validation`), so it is accepted by the operator
too; each problem names the file, the object and the field, as `FILE: KIND/NAME: field.path:
message`.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import IO, Any

import yaml
from pydantic import ValidationError

from jobchain.api.errors import describe_validation_error
from jobchain.api.models import Workflow, WorkflowExecution, WorkflowSpec
from jobchain.api.vocabulary import API_VERSION, KIND_EXECUTION, KIND_SCHEDULE, KIND_WORKFLOW, KINDS
from jobchain.cli import yaml_input
from jobchain.cli.errors import Exit
from jobchain.cli.lint_schedule import check_schedule
from jobchain.engine.spec.validation import validate_execution, validate_workflow

STDIN = "-"


@dataclass(frozen=True)
class LintProblem:
    file: str
    obj: str  # KIND/NAME, or `document N` when the document has no usable kind
    path: str  # field path, or `line L, column C` for YAML syntax errors
    message: str
    document: int = field(default=0, compare=False)  # position in the file, to print in file order

    def __str__(self) -> str:
        if not self.obj:  # the file itself (unreadable)
            return f"{self.file}: {self.message}"
        return f"{self.file}: {self.obj}: {self.path}: {self.message}"


@dataclass
class Document:
    file: str
    index: int  # 1-based position in its file
    body: Any
    label: str = ""  # KIND/NAME

    def __post_init__(self) -> None:
        self.label = object_label(self.body, self.index)


@dataclass
class LintReport:
    problems: list[LintProblem] = field(default_factory=list)
    objects: int = 0
    files: int = 0
    unreadable: int = 0
    skipped: list[str] = field(default_factory=list)  # FILE: KIND/NAME of other kinds (a ConfigMap beside)

    @property
    def exit_code(self) -> Exit:
        if self.unreadable:
            return Exit.USAGE
        return Exit.FAILED if self.problems else Exit.SUCCEEDED


def object_label(body: Any, index: int) -> str:
    if not isinstance(body, dict) or not isinstance(body.get("kind"), str) or not body["kind"]:
        return f"document {index}"
    meta: dict[str, Any] = body["metadata"] if isinstance(body.get("metadata"), dict) else {}
    name = meta.get("name") or (f"{meta['generateName']}*" if meta.get("generateName") else "(no name)")
    return f"{body['kind']}/{name}"


def parse_documents(text: str, file: str) -> tuple[list[Document], list[LintProblem]]:
    """The non-empty documents of a YAML stream; a syntax error ends the stream with one problem."""
    documents: list[Document] = []
    index = 0
    try:
        for index, body in enumerate(yaml_input.load_all(text), start=1):
            if body is not None:
                documents.append(Document(file, index, body))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = (
            f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "(unknown position)"
        )
        reason = getattr(exc, "problem", None) or str(exc)
        message = (f"refused: {reason}" if isinstance(exc, yaml_input.RefusedYaml)
                   else f"not valid YAML: {reason}; fix the syntax (indentation, quoting)")
        return documents, [LintProblem(file, f"document {index + 1}", where, message, index + 1)]
    return documents, []


def _expand_lists(documents: Iterable[Document]) -> Iterable[Document]:
    """Items of `kind: List` documents (as `kubectl get -o yaml` writes them) are linted one by one."""
    for doc in documents:
        if (
            isinstance(doc.body, dict)
            and doc.body.get("kind") == "List"
            and isinstance(doc.body.get("items"), list)
        ):
            for item in doc.body["items"]:
                yield Document(doc.file, doc.index, item)
        else:
            yield doc


def _problem(doc: Document, path: str, message: str) -> LintProblem:
    # pydantic prefixes the text of a model validator's ValueError; the user needs only the text.
    return LintProblem(doc.file, doc.label, path, message.removeprefix("Value error, "), doc.index)


def _check_header(doc: Document) -> list[LintProblem]:
    body = doc.body
    if not isinstance(body, dict):
        return [_problem(doc, "(top level)", f"expected a mapping (an object), got {type(body).__name__}")]
    kind = body.get("kind")
    if not kind:
        return [
            _problem(doc, "kind", "required field is missing; set kind: Workflow or kind: WorkflowExecution")
        ]
    if kind not in KINDS:  # (other kinds of other groups were skipped before: see is_other_kind)
        return [
            _problem(
                doc, "kind",
                f"unknown kind {kind!r}; jobchain lint checks Workflow, WorkflowExecution and WorkflowSchedule",
            )
        ]
    problems = []
    if body.get("apiVersion") != API_VERSION:
        problems.append(
            _problem(doc, "apiVersion", f"is {body.get('apiVersion')!r}; set apiVersion: {API_VERSION}")
        )
    meta: dict[str, Any] = body["metadata"] if isinstance(body.get("metadata"), dict) else {}
    if not meta.get("name") and not (kind == KIND_EXECUTION and meta.get("generateName")):
        needed = "metadata.name" if kind == KIND_WORKFLOW else "metadata.name or metadata.generateName"
        problems.append(_problem(doc, "metadata.name", f"required field is missing; set {needed}"))
    return problems


def _check_workflow(doc: Document) -> tuple[list[LintProblem], Workflow | None]:
    try:
        workflow = Workflow.model_validate(doc.body)
    except ValidationError as err:
        return [_problem(doc, *line.split(": ", 1)) for line in describe_validation_error(err)], None
    problems = [_problem(doc, p.path, p.message) for p in validate_workflow(workflow.spec, prefix="spec")]
    return problems, workflow


def _check_execution(doc: Document, workflows: dict[str, WorkflowSpec]) -> list[LintProblem]:
    try:
        execution = WorkflowExecution.model_validate(doc.body)
    except ValidationError as err:
        return [_problem(doc, *line.split(": ", 1)) for line in describe_validation_error(err)]
    spec = execution.spec
    workflow: WorkflowSpec | None = spec.workflow
    where = "spec.workflow"
    if workflow is None:
        # A Workflow in the cluster, not in these files: only the execution's own shape is checked offline.
        name = spec.workflowRef.name if spec.workflowRef is not None else ""
        workflow, where = workflows.get(name), f"Workflow {name!r}"
    return [_problem(doc, p.path, p.message) for p in validate_execution(spec, workflow, where)]


def is_other_kind(body: Any) -> bool:
    """Another API's object (a ConfigMap in a kustomize folder): not ours to check. A kind of our own
    group that we do not know (`kind: Workflw`) is a typo, and stays a problem."""
    if not isinstance(body, dict) or not isinstance(body.get("kind"), str) or not body["kind"]:
        return False
    group = str(body.get("apiVersion") or "").rpartition("/")[0]
    return body["kind"] not in KINDS and bool(body.get("apiVersion")) and group != API_VERSION.split("/")[0]


def lint_documents(documents: list[Document]) -> tuple[list[LintProblem], int]:
    """(problems, number of objects). Executions are checked against Workflows found in any of the files."""
    documents = list(_expand_lists(documents))
    problems: list[LintProblem] = []
    workflows: dict[str, WorkflowSpec] = {}
    results: dict[int, list[LintProblem]] = {}
    for i, doc in enumerate(documents):
        results[i] = _check_header(doc)
        if isinstance(doc.body, dict) and doc.body.get("kind") == KIND_WORKFLOW:
            found, workflow = _check_workflow(doc)
            results[i] += found
            if workflow is not None and not found and workflow.metadata.name:
                workflows[workflow.metadata.name] = workflow.spec
    for i, doc in enumerate(documents):
        if isinstance(doc.body, dict) and doc.body.get("kind") == KIND_EXECUTION:
            results[i] += _check_execution(doc, workflows)
        if isinstance(doc.body, dict) and doc.body.get("kind") == KIND_SCHEDULE:
            results[i] += [_problem(doc, path, message) for path, message in check_schedule(doc.body, workflows)]
        problems += results[i]
    return problems, len(documents)


def read_text(path: str, stdin: IO[str]) -> str:
    """Raises OSError (missing file, a directory, no permission) and UnicodeDecodeError."""
    if path == STDIN:
        return stdin.read()
    with open(path, encoding="utf-8") as fh:
        return fh.read()


def expand_paths(paths: list[str]) -> list[str]:
    """Directories become their *.yaml and *.yml files, recursively, in name order (hidden ones left out)."""
    out: list[str] = []
    for path in paths:
        if path == STDIN or not os.path.isdir(path):
            out.append(path)
            continue
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            out += [os.path.join(root, f) for f in sorted(files)
                    if f.endswith((".yaml", ".yml")) and not f.startswith(".")]
    return out


def lint_paths(paths: list[str], stdin: IO[str] | None = None) -> LintReport:
    report = LintReport()
    documents: list[Document] = []
    paths = expand_paths(paths)
    for path in paths:
        name = "<stdin>" if path == STDIN else path
        try:
            text = read_text(path, stdin or sys.stdin)
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            report.problems.append(LintProblem(name, "", "", f"cannot read: {reason}"))
            report.unreadable += 1
            continue
        report.files += 1
        found, syntax = parse_documents(text, name)
        for doc in _expand_lists(found):
            if is_other_kind(doc.body):
                report.skipped.append(f"{doc.file}: {doc.label}")
            else:
                documents.append(doc)
        report.problems += syntax
    problems, report.objects = lint_documents(documents)
    report.problems += problems
    order = {("<stdin>" if p == STDIN else p): i for i, p in reversed(list(enumerate(paths)))}
    report.problems.sort(key=lambda p: (order.get(p.file, 0), p.document))  # stable: in file order
    return report


def as_json(report: LintReport) -> str:
    """`lint -o json`, for editors and CI annotations: every problem as fields, and the counts."""
    return json.dumps({
        "ok": not report.problems,
        "objects": report.objects,
        "files": report.files,
        "unreadable": report.unreadable,
        "skipped": report.skipped,
        "problems": [{"file": p.file, "object": p.obj, "path": p.path, "message": p.message}
                     for p in report.problems],
    }, indent=2) + "\n"


def run_lint(paths: list[str], out: IO[str], stdin: IO[str] | None = None, fmt: str | None = None) -> int:
    report = lint_paths(paths, stdin)
    if fmt == "json":
        out.write(as_json(report))
        return int(report.exit_code)
    for skipped in report.skipped:
        print(f"note: {skipped} skipped: not a jobchain kind", file=out)
    for problem in report.problems:
        print(problem, file=out)
    if report.problems:
        print(
            f"{len(report.problems)} problem(s); {report.objects} object(s) checked in {report.files} file(s)"
            + (f", {report.unreadable} file(s) not readable" if report.unreadable else ""),
            file=out,
        )
    else:
        print(f"ok: {report.objects} object(s) in {report.files} file(s)", file=out)
    return int(report.exit_code)
