{{/* placeholder */}}
{{- define "dfw.operator.env" -}}
- name: REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "dfw.redis.secretName" . }}
      key: {{ include "dfw.redis.secretKey" . }}
{{- end }}
{{- define "dfw.dispatcher.env" -}}
- name: REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "dfw.redis.secretName" . }}
      key: {{ include "dfw.redis.secretKey" . }}
{{- end }}
