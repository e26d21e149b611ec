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

{{/*
The Secret with the passwords of the two processes' Redis ACL users: redis.auth.existingSecret,
else the one the chart generates for the embedded Redis; empty when there is neither.
*/}}
{{- define "dfw.redis.authSecretName" -}}
{{- if .Values.redis.auth.existingSecret }}
{{- .Values.redis.auth.existingSecret }}
{{- else if .Values.redis.embedded.enabled }}
{{- printf "%s-redis-auth" (include "dfw.fullname" .) }}
{{- end }}
{{- end }}

{{/*
The ACL rules of a process's Redis user (without name and password): the same as
contract/redis-acl.ts redisAclRules(role, keyTag), which test/chart checks. Call with
(dict "ctx" $ "role" "operator"|"dispatcher").
*/}}
{{- define "dfw.redis.aclRules" -}}
{{- $p := printf "{%s}:" .ctx.Values.redis.keyTag -}}
{{- /* the other partitions of the keyspace: {tag:…}: (contract/partitions.ts) */ -}}
{{- $q := printf "{%s:*}:" .ctx.Values.redis.keyTag -}}
{{- $commands := "-@all +@read +@write +@scripting +@pubsub +@connection +@transaction -@dangerous +info -scan -randomkey -script|flush -script|kill -function" -}}
{{- if eq .role "operator" -}}
resetkeys ~{{ $p }}* ~{{ $q }}* resetchannels &{{ $p }}* {{ $commands }}
{{- else -}}
resetkeys ~{{ $p }}events* ~{{ $p }}deliver* ~{{ $p }}scheduled ~{{ $p }}status ~{{ $p }}record-limits ~{{ $p }}endpoint-health ~{{ $p }}event:* ~{{ $p }}seen:* ~{{ $p }}log* ~{{ $p }}archive:* ~{{ $p }}ordered* ~{{ $q }}events* ~{{ $q }}deliver* ~{{ $q }}scheduled ~{{ $q }}status ~{{ $q }}record-limits ~{{ $q }}endpoint-health ~{{ $q }}event:* ~{{ $q }}seen:* ~{{ $q }}log* ~{{ $q }}archive:* ~{{ $q }}ordered* %R~{{ $p }}routing* resetchannels &{{ $p }}routing:changed {{ $commands }}
{{- end -}}
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
