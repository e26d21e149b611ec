{{/*
Environment of the two processes. The names are the contract with dispatcher/config.ts and
operator/config.ts (ENVIRONMENT); test/chart/chart.e2e.test.ts loads the rendered environments
with their own loadSettings().
*/}}

{{- define "dfw.redisUrlEnv" -}}
valueFrom:
  secretKeyRef:
    name: {{ include "dfw.redis.secretName" . }}
    key: {{ include "dfw.redis.secretKey" . }}
{{- end }}

{{/* The Redis ACL user, password and CA of a process; call with (dict "ctx" $ "prefix" "OPERATOR" "role" "operator"). */}}
{{- define "dfw.redisAuthEnv" -}}
{{- $auth := .ctx.Values.redis.auth -}}
{{- with include "dfw.redis.authSecretName" .ctx }}
- name: {{ $.prefix }}_REDIS_USERNAME
  value: {{ get $auth (printf "%sUser" $.role) | quote }}
- name: {{ $.prefix }}_REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ get $auth (printf "%sPasswordKey" $.role) }}
{{- end }}
{{- if .ctx.Values.redis.tls.caSecret }}
- name: {{ .prefix }}_REDIS_TLS_CA_FILE
  value: {{ printf "/etc/dataforce/redis-ca/%s" .ctx.Values.redis.tls.caKey | quote }}
{{- end }}
{{- end }}

{{/* A process's Redis Sentinel settings, when redis.sentinel.hosts is set; call with (dict "ctx" $ "prefix" "OPERATOR"). */}}
{{- define "dfw.redisSentinelEnv" -}}
{{- $s := .ctx.Values.redis.sentinel -}}
{{- if $s.hosts }}
{{- if .ctx.Values.redis.embedded.enabled }}
{{- fail "redis.sentinel.hosts cannot be used with redis.embedded.enabled (the embedded Redis is a single node without Sentinels)" }}
{{- end }}
- name: {{ .prefix }}_REDIS_SENTINELS
  value: {{ join "," $s.hosts | quote }}
- name: {{ .prefix }}_REDIS_SENTINEL_MASTER
  value: {{ $s.masterName | quote }}
{{- with $s.passwordSecret }}
- name: {{ $.prefix }}_REDIS_SENTINEL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $s.passwordKey }}
{{- end }}
{{- end }}
{{- end }}

{{/* A process's Redis Cluster nodes and partition count; call with (dict "ctx" $ "prefix" "OPERATOR"). */}}
{{- define "dfw.redisClusterEnv" -}}
{{- $c := .ctx.Values.redis.cluster -}}
{{- if $c.nodes }}
{{- if .ctx.Values.redis.embedded.enabled }}
{{- fail "redis.cluster.nodes cannot be used with redis.embedded.enabled (the embedded Redis is a single node)" }}
{{- end }}
{{- if .ctx.Values.redis.sentinel.hosts }}
{{- fail "redis.cluster.nodes and redis.sentinel.hosts exclude each other (a Cluster fails over by itself)" }}
{{- end }}
- name: {{ .prefix }}_REDIS_CLUSTER_NODES
  value: {{ join "," $c.nodes | quote }}
{{- end }}
- name: {{ .prefix }}_PARTITIONS
  value: {{ .ctx.Values.redis.partitions | default 1 | quote }}
{{- end }}

{{/* Mount and volume of the Redis CA, when redis.tls.caSecret is set. */}}
{{- define "dfw.redisCaMount" -}}
{{- if .Values.redis.tls.caSecret }}
- name: redis-ca
  mountPath: /etc/dataforce/redis-ca
  readOnly: true
{{- end }}
{{- end }}

{{- define "dfw.redisCaVolume" -}}
{{- with .Values.redis.tls.caSecret }}
- name: redis-ca
  secret:
    secretName: {{ . }}
{{- end }}
{{- end }}

{{- define "dfw.encryptionKeysEnv" -}}
valueFrom:
  secretKeyRef:
    name: {{ include "dfw.encryptionKeys.secretName" . }}
    key: {{ .Values.encryptionKeys.key }}
{{- end }}

{{- define "dfw.dispatcher.env" -}}
{{- $d := .Values.dispatcher -}}
- name: DISPATCHER_REDIS_URL
  {{- include "dfw.redisUrlEnv" . | nindent 2 }}
{{- include "dfw.redisAuthEnv" (dict "ctx" . "prefix" "DISPATCHER" "role" "dispatcher") }}
{{- include "dfw.redisSentinelEnv" (dict "ctx" . "prefix" "DISPATCHER") }}
{{- include "dfw.redisClusterEnv" (dict "ctx" . "prefix" "DISPATCHER") }}
- name: DISPATCHER_KEY_TAG
  value: {{ .Values.redis.keyTag | quote }}
- name: DISPATCHER_ENCRYPTION_KEYS
  {{- include "dfw.encryptionKeysEnv" . | nindent 2 }}
- name: DISPATCHER_PORT
  value: {{ $d.port | quote }}
- name: DISPATCHER_METRICS_PORT
  value: {{ $d.metricsPort | quote }}
- name: DISPATCHER_LOG_LEVEL
  value: {{ $d.logLevel | quote }}
{{- if .Values.apiTokens.clusterIngestToken }}
- name: DISPATCHER_INGEST_TOKENS
  valueFrom:
    secretKeyRef:
      name: {{ include "dfw.apiTokens.secretName" . }}
      key: {{ .Values.apiTokens.ingestTokenKey }}
{{- end }}
- name: DISPATCHER_ADMIN_TOKENS
  valueFrom:
    secretKeyRef:
      name: {{ include "dfw.apiTokens.secretName" . }}
      key: {{ .Values.apiTokens.adminTokenKey }}
{{- with $d.allowedDestinations }}
- name: DISPATCHER_ALLOWED_DESTINATIONS
  value: {{ join "," . | quote }}
{{- end }}
{{- with $d.eventLogRetentionHours }}
- name: DISPATCHER_RETENTION_MS
  value: {{ mul . 3600000 | quote }}
{{- end }}
{{- with $d.endpointConcurrency }}
- name: DISPATCHER_ENDPOINT_CONCURRENCY
  value: {{ . | quote }}
{{- end }}
{{- with $d.maxInFlight }}
- name: DISPATCHER_MAX_IN_FLIGHT
  value: {{ . | quote }}
{{- end }}
{{- with .Values.postgres.dsnSecret.name }}
- name: DISPATCHER_POSTGRES_URL
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.postgres.dsnSecret.key }}
{{- with $.Values.postgres.hotWindowHours }}
- name: DISPATCHER_ARCHIVE_HOT_WINDOW_MS
  value: {{ mulf . 3600000 | int64 | quote }}
{{- end }}
{{- with $.Values.postgres.retentionDays }}
- name: DISPATCHER_ARCHIVE_RETENTION_DAYS
  value: {{ . | quote }}
{{- end }}
{{- end }}
# SIGTERM: finish in-flight attempts, then hand the rest back, 10 s before the kubelet kills.
- name: DISPATCHER_SHUTDOWN_GRACE_MS
  value: {{ max 1000 (mul (sub $d.terminationGracePeriodSeconds 10) 1000) | quote }}
{{- end }}

{{- define "dfw.operator.env" -}}
{{- $o := .Values.operator -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: OPERATOR_REDIS_URL
  {{- include "dfw.redisUrlEnv" . | nindent 2 }}
{{- include "dfw.redisAuthEnv" (dict "ctx" . "prefix" "OPERATOR" "role" "operator") }}
{{- include "dfw.redisSentinelEnv" (dict "ctx" . "prefix" "OPERATOR") }}
{{- include "dfw.redisClusterEnv" (dict "ctx" . "prefix" "OPERATOR") }}
- name: OPERATOR_KEY_TAG
  value: {{ .Values.redis.keyTag | quote }}
- name: OPERATOR_ENCRYPTION_KEYS
  {{- include "dfw.encryptionKeysEnv" . | nindent 2 }}
- name: OPERATOR_PORT
  value: {{ $o.port | quote }}
- name: OPERATOR_LOG_LEVEL
  value: {{ $o.logLevel | quote }}
- name: OPERATOR_LEADER_ELECTION
  value: {{ $o.leaderElection.enabled | quote }}
- name: OPERATOR_LEASE_NAMESPACE
  value: {{ .Release.Namespace | quote }}
- name: OPERATOR_LEASE_NAME
  value: {{ printf "%s-operator" (include "dfw.fullname" .) | quote }}
- name: OPERATOR_API_QPS
  value: {{ $o.apiQPS | quote }}
- name: OPERATOR_API_BURST
  value: {{ $o.apiBurst | quote }}
{{- with $o.watchNamespaces }}
- name: OPERATOR_WATCH_NAMESPACES
  value: {{ join "," . | quote }}
{{- end }}
# SIGTERM: finish in-flight work, then exit, 5 s before the kubelet kills.
- name: OPERATOR_SHUTDOWN_GRACE_MS
  value: {{ max 1000 (mul (sub $o.terminationGracePeriodSeconds 5) 1000) | quote }}
{{- end }}
