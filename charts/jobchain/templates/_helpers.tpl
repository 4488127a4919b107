{{/* Name of the chart's objects: fullnameOverride, else the release name with the chart's name
(or nameOverride) added unless it is in it. */}}
{{- define "jobchain.fullname" -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "jobchain.selectorLabels" -}}
app.kubernetes.io/name: jobchain-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "jobchain.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "jobchain.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: jobchain
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "jobchain.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "jobchain.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "jobchain.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The rules the operator needs in every namespace it serves (a ClusterRole or Roles). */}}
{{- define "jobchain.operatorRules" -}}
- apiGroups: [jobchain.dev]
  resources: [workflows]
  verbs: [get, list, watch]
# executions are read from the operator's watch, never with GET, and listed once when one starts
# under a Workflow's maxConcurrentExecutions (a read that cannot lag); delete: ttlSecondsAfterFinished
# and a schedule's history limits; create: a schedule's runs; patch: spec.cancel (Replace)
- apiGroups: [jobchain.dev]
  resources: [workflowexecutions]
  verbs: [list, watch, create, patch, delete]
- apiGroups: [jobchain.dev]
  resources: [workflowschedules]
  verbs: [list, watch]
- apiGroups: [jobchain.dev]
  resources: [workflows/status, workflowexecutions/status, workflowschedules/status]
  verbs: [patch]
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create, delete]
- apiGroups: [""]
  resources: [pods]
  verbs: [list, watch]
- apiGroups: [""]
  resources: [pods/log]
  verbs: [get]
# create: the executions' Events; list: a Job's FailedCreate Events (its pods refused by admission)
- apiGroups: [""]
  resources: [events]
  verbs: [create, list]
# outputs over the inline cap, kept whole in immutable ConfigMaps owned by their execution
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, create]
# not API calls: what the run admission policy (jobchain-run-rights) asks of whoever writes a run;
# the operator writes a schedule's executions, whose template was checked against its author
- apiGroups: [""]
  resources: [serviceaccounts]
  verbs: [use]
- apiGroups: [jobchain.dev]
  resources: [privileged]
  verbs: [use]
{{- end -}}

{{/* Reading the Secret keys an execution's paramsFrom names, to redact them (rbac.secretNamespaces). */}}
{{- define "jobchain.secretRules" -}}
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
{{- end -}}

{{/* The leader election Lease (in the release's namespace): create, then get/update of that one Lease. */}}
{{- define "jobchain.leaseRules" -}}
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [create]
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  resourceNames: [{{ include "jobchain.fullname" . }}]
  verbs: [get, update]
{{- end -}}

{{/* The dashboard's labels: its own name, so the operator's selector never matches its pods. */}}
{{- define "jobchain.dashboardSelectorLabels" -}}
app.kubernetes.io/name: jobchain-dashboard
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "jobchain.dashboardLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "jobchain.dashboardSelectorLabels" . }}
app.kubernetes.io/component: dashboard
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: jobchain
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}
