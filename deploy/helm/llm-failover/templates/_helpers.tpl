{{/* Names and labels. Objects carry the same labels as deploy/ (name, part-of, component) plus Helm's. */}}

{{- define "llm-failover.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "llm-failover.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "llm-failover.labels" -}}
app.kubernetes.io/name: {{ include "llm-failover.name" . }}
app.kubernetes.io/part-of: llm-failover
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{/* The Deployment's selector: immutable, so it never holds a label that may change. */}}
{{- define "llm-failover.selectorLabels" -}}
app.kubernetes.io/name: {{ include "llm-failover.name" . }}
app.kubernetes.io/component: operator
{{- end }}

{{/* The leader-election Lease, in the release namespace: named like the other objects, so two
     releases in one namespace elect a leader each. "llm-failover" for the release llm-failover. */}}
{{- define "llm-failover.leaseName" -}}
{{- include "llm-failover.fullname" . }}
{{- end }}

{{/* What the operator does inside a watched namespace; cluster-wide when .Values.namespaces is empty.
     Recorded from its real API calls (tests/test_rbac.py); change only together with the code. */}}
{{- define "llm-failover.namespacedRules" -}}
# kopf's list + watch of LLMRoutes, which drives the handlers.
- {apiGroups: ["llmfailover.dev"], resources: ["llmroutes"], verbs: ["list", "watch"]}
# Status: conditions, provider states, failovers (the status subresource only).
- {apiGroups: ["llmfailover.dev"], resources: ["llmroutes/status"], verbs: ["patch"]}
# The routing ConfigMap (ownership check, write; watch of the ones it wrote, label-selected).
- {apiGroups: [""], resources: ["configmaps"], verbs: ["get", "list", "watch", "create", "patch"]}
# apiKeySecretRef reads and watch (a changed key is used within seconds); spec.target.secretName writes.
- {apiGroups: [""], resources: ["secrets"], verbs: ["get", "list", "watch", "create", "patch"]}
# FailedOver, ProviderEjected, ... on the LLMRoute (core/v1 Events).
- {apiGroups: [""], resources: ["events"], verbs: ["create"]}
# spec.target.restart: the route-revision annotation on pod templates.
- {apiGroups: ["apps"], resources: ["deployments", "statefulsets", "daemonsets"], verbs: ["get", "patch"]}
{{- end }}
