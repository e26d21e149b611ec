{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "dfw.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified release name; the prefix of every object the chart names. */}}
{{- define "dfw.fullname" -}}
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

{{- define "dfw.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Common labels. Call with (dict "ctx" $ "component" "operator"). */}}
{{- define "dfw.labels" -}}
helm.sh/chart: {{ include "dfw.chart" .ctx }}
{{ include "dfw.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: dataforce-webhooks
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels. Call with (dict "ctx" $ "component" "operator"). */}}
{{- define "dfw.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dfw.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end }}

{{/* Image reference: repository:tag, or repository@digest when a digest is set. */}}
{{- define "dfw.image" -}}
{{- $img := .Values.image -}}
{{- if $img.digest -}}
{{ $img.repository }}@{{ $img.digest }}
{{- else -}}
{{ $img.repository }}:{{ $img.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end }}

{{/* ServiceAccount names. */}}
{{- define "dfw.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create }}
{{- default (printf "%s-operator" (include "dfw.fullname" .)) .Values.operator.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.operator.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "dfw.dispatcher.serviceAccountName" -}}
{{- if .Values.dispatcher.serviceAccount.create }}
{{- default (printf "%s-dispatcher" (include "dfw.fullname" .)) .Values.dispatcher.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.dispatcher.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Where the Redis URL comes from, in this order: an existing Secret, the opt-in embedded
Redis, or redis.url (stored by the chart in a Secret because a URL may carry a password).
*/}}
{{- define "dfw.redis.secretName" -}}
{{- if .Values.redis.existingSecret }}
{{- .Values.redis.existingSecret }}
{{- else }}
{{- printf "%s-redis-url" (include "dfw.fullname" .) }}
{{- end }}
{{- end }}

{{- define "dfw.redis.secretKey" -}}
{{- if .Values.redis.existingSecret }}
{{- .Values.redis.existingSecretKey }}
{{- else }}url{{ end }}
{{- end }}

{{- define "dfw.redis.url" -}}
{{- if .Values.redis.embedded.enabled }}
{{- printf "redis://%s-redis.%s.svc:6379/0" (include "dfw.fullname" .) .Release.Namespace }}
{{- else }}
{{- required "set redis.url, redis.existingSecret, or redis.embedded.enabled=true" .Values.redis.url }}
{{- end }}
{{- end }}

{{/* The Secret with the keys that seal the routing's secrets in Redis (generated unless encryptionKeys.existingSecret). */}}
{{- define "dfw.encryptionKeys.secretName" -}}
{{- if .Values.encryptionKeys.existingSecret }}
{{- .Values.encryptionKeys.existingSecret }}
{{- else }}
{{- include "dfw.fullname" . }}-encryption-keys
{{- end }}
{{- end }}

{{/* The Secret with the API bearer tokens (generated unless apiTokens.existingSecret). */}}
{{- define "dfw.apiTokens.secretName" -}}
{{- if .Values.apiTokens.existingSecret }}
{{- .Values.apiTokens.existingSecret }}
{{- else }}
{{- printf "%s-api-tokens" (include "dfw.fullname" .) }}
{{- end }}
{{- end }}

{{/* Pod-level security context (restricted Pod Security Standard). */}}
{{- define "dfw.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext }}
{{- end }}

{{/* Container-level security context (restricted Pod Security Standard). */}}
{{- define "dfw.containerSecurityContext" -}}
{{- toYaml .Values.containerSecurityContext }}
{{- end }}
