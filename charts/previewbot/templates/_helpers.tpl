{{/*
previewbot.name: the chart's name (or nameOverride), cut to 63 characters, the limit of a DNS label
and of a label value, and trimmed of a trailing "-" that a cut may leave.
*/}}
{{- define "previewbot.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
previewbot.fullname: the objects' name, release-chart (or the release name alone when it already
holds the chart's), cut to 63 characters for the same reason.
*/}}
{{- define "previewbot.fullname" -}}
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

{{/* previewbot.labels: the recommended labels every object carries. */}}
{{- define "previewbot.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "previewbot.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* previewbot.selectorLabels: what the Deployment, Service and PodDisruptionBudget select pods by. */}}
{{- define "previewbot.selectorLabels" -}}
app.kubernetes.io/name: {{ include "previewbot.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* previewbot.serviceAccountName: the ServiceAccount the server runs as. */}}
{{- define "previewbot.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "previewbot.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* previewbot.secretName: the Secret with the App's id, key and webhook secret. */}}
{{- define "previewbot.secretName" -}}
{{- default (include "previewbot.fullname" .) .Values.github.existingSecret }}
{{- end }}

{{/* previewbot.image: repository:tag, the tag being the chart's appVersion unless given. */}}
{{- define "previewbot.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
previewbot.validateValues: every problem with the values at once, so one failed install says all
that must change.
*/}}
{{- define "previewbot.validateValues" -}}
{{- $problems := list }}
{{- $github := .Values.github }}
{{- $given := list }}
{{- range $key := list "appId" "privateKey" "webhookSecret" }}
{{- if get $github $key }}{{- $given = append $given $key }}{{- end }}
{{- end }}
{{- if $github.existingSecret }}
{{- if $given }}
{{- $problems = append $problems (printf "github.existingSecret is set, so github.%s must be empty: the Secret holds it" (join ", github." $given)) }}
{{- end }}
{{- else if lt (len $given) 3 }}
{{- $problems = append $problems "github.appId, github.privateKey and github.webhookSecret are all needed (or github.existingSecret)" }}
{{- end }}
{{- if and $github.privateKey (not (contains "PRIVATE KEY-----" (toString $github.privateKey))) }}
{{- $problems = append $problems "github.privateKey is not a PEM private key (it starts with -----BEGIN RSA PRIVATE KEY-----)" }}
{{- end }}
{{- if and .Values.ingress.enabled (not .Values.ingress.host) }}
{{- $problems = append $problems "ingress.enabled needs ingress.host: the host GitHub sends deliveries to" }}
{{- end }}
{{- range $source := .Values.rbac.secretSources }}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-.a-z0-9]*[a-z0-9])?$" $source) }}
{{- $problems = append $problems (printf "rbac.secretSources: %q is not namespace/name" $source) }}
{{- end }}
{{- end }}
{{- if $problems }}
{{- fail (printf "\n\npreviewbot's values need changes:\n- %s\n" (join "\n- " $problems)) }}
{{- end }}
{{- end }}
