{{/*
SPDX-License-Identifier: Apache-2.0

Named templates shared by the manifests. The chart keeps to a small subset
of Helm's template language (see deploy/helm/README.md), which
tests/integration/test_chart.py renders without helm.
*/}}

{{/* Every object of a release is named after the release. */}}
{{- define "modinfer.fullname" -}}
{{ .Release.Name }}
{{- end }}

{{/* The labels that select the release's pods (never change them). */}}
{{- define "modinfer.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Every object's labels. */}}
{{- define "modinfer.labels" -}}
{{ include "modinfer.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end }}
