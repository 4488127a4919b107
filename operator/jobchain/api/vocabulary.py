"""The names jobchain writes into the cluster: group, version, plurals, kinds, labels, annotations,
the node's container. Everything that spells one imports it from here.

Why one module: these names are a contract with the cluster (selectors, RBAC, the CRDs, the
objects a user reads with kubectl) and with older objects an operator must still recognise;
spelled in eight files, one drifted from the others. Kubernetes keeps its well-known labels in
one place for the same reason.
"""

from __future__ import annotations

# ---- the API ---------------------------------------------------------------------------------
GROUP = "jobchain.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# plurals (resource names in URLs and RBAC) and kinds
WORKFLOWS = "workflows"
EXECUTIONS = "workflowexecutions"
SCHEDULES = "workflowschedules"
KIND_WORKFLOW = "Workflow"
KIND_EXECUTION = "WorkflowExecution"
KIND_SCHEDULE = "WorkflowSchedule"
KINDS = (KIND_WORKFLOW, KIND_EXECUTION, KIND_SCHEDULE)

# ---- labels and annotations ------------------------------------------------------------------
PREFIX = f"{GROUP}/"  # every label and annotation of ours but managed-by starts so
LABEL_EXECUTION = f"{PREFIX}execution"
LABEL_NODE = f"{PREFIX}node"
LABEL_WORKFLOW = f"{PREFIX}workflow"
LABEL_ITEM = f"{PREFIX}item"  # a forEach item's index
LABEL_SCHEDULE = f"{PREFIX}schedule"
LABEL_SCHEDULED_UNIX = f"{PREFIX}scheduled-unix"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "jobchain"

ANNOTATION_OUTPUT = f"{PREFIX}output"
ANNOTATION_EXECUTION_UID = f"{PREFIX}execution-uid"
ANNOTATION_EXECUTION = f"{PREFIX}execution"  # the full name: label values are capped at 63
# Every node's input as a file ($JOBCHAIN_INPUT_FILE), projected from this pod annotation when
# the predecessor's output was not kept in a ConfigMap.
ANNOTATION_INPUT = f"{PREFIX}input"
ANNOTATION_SCHEDULED_TIME = f"{PREFIX}scheduled-time"
ANNOTATION_MANUAL = f"{PREFIX}manual"
ANNOTATION_CREATED_BY = f"{PREFIX}created-by"
ANNOTATION_RESUMED_FROM = f"{PREFIX}resumed-from"

# ---- the rest --------------------------------------------------------------------------------
CONTAINER = "main"  # the node's container in its pod: its exit code and log are the node's
EVENT_COMPONENT = f"{PREFIX}operator"  # reportingComponent of the operator's Events
KOPF_FINALIZER = f"{PREFIX}kopf-finalizer"  # kopf's setting; never added (no on.delete handlers)
