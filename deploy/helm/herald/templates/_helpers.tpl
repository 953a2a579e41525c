{{/* The release's name for its objects: "herald" for a release named herald. */}}
{{- define "herald.fullname" -}}
{{- if contains "herald" .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-herald" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "herald.labels" -}}
app.kubernetes.io/name: herald
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "herald.selector" -}}
app.kubernetes.io/name: herald
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .service }}
{{- end -}}

{{- define "herald.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* Names whose values are secrets: never inline, only by reference to a Secret. */}}
{{- define "herald.secretName" -}}(?i)(secret|password|passwd|token|credential|jaas|private){{- end -}}

{{/* The env var of a librdkafka property: security.protocol -> HERALD_KAFKA_SECURITY_PROTOCOL. */}}
{{- define "herald.kafkaEnv" -}}
{{- printf "HERALD_KAFKA_%s" (. | upper | replace "." "_" | replace "-" "_") -}}
{{- end -}}

{{/* The non-secret settings (the ConfigMap's data, the migration Job's env), as YAML. */}}
{{- define "herald.settings" -}}
{{- $secret := include "herald.secretName" . -}}
{{- range $name, $value := .Values.env }}
{{- if not (hasPrefix "HERALD_" $name) }}
{{- fail (printf "env.%s: only HERALD_* settings belong here" $name) }}
{{- end }}
{{- if regexMatch $secret $name }}
{{- fail (printf "env.%s looks secret: give it in secretEnv, as a reference to a Secret" $name) }}
{{- end }}
{{ $name }}: {{ $value | toString | quote }}
{{- end }}
{{- range $property, $value := .Values.kafka.properties }}
{{- if regexMatch $secret $property }}
{{- fail (printf "kafka.properties.%s looks secret: give it in kafka.secretProperties" $property) }}
{{- end }}
{{ include "herald.kafkaEnv" $property }}: {{ $value | toString | quote }}
{{- end }}
{{- if .Values.kafka.configFileSecret.name }}
HERALD_KAFKA_CONFIG_FILE: {{ printf "/etc/herald/kafka/%s" .Values.kafka.configFileSecret.key | quote }}
{{- end }}
HERALD_BIND_ADDRESS: "0.0.0.0"
HERALD_METRICS_PORT: {{ .Values.ports.metrics | quote }}
HERALD_API_PORT: {{ .Values.ports.api | quote }}
{{- end -}}

{{/* The secret settings, each a reference to a key of an existing Secret; and this pod's
name as its replica name. */}}
{{- define "herald.secretEnv" -}}
{{- if not (hasKey .Values.secretEnv "HERALD_SECRET_KEY") }}
{{- fail "secretEnv.HERALD_SECRET_KEY is required: every pod needs the same key ring" }}
{{- end }}
{{- range $name, $ref := .Values.secretEnv }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef: {name: {{ required (printf "secretEnv.%s.name" $name) $ref.name | quote }}, key: {{ required (printf "secretEnv.%s.key" $name) $ref.key | quote }}}
{{- end }}
{{- range $property, $ref := .Values.kafka.secretProperties }}
- name: {{ include "herald.kafkaEnv" $property }}
  valueFrom:
    secretKeyRef: {name: {{ required (printf "kafka.secretProperties.%s.name" $property) $ref.name | quote }}, key: {{ required (printf "kafka.secretProperties.%s.key" $property) $ref.key | quote }}}
{{- end }}
- name: HERALD_REPLICA
  valueFrom:
    fieldRef: {fieldPath: metadata.name}
{{- end -}}

{{- define "herald.volumes" -}}
- name: tmp
  emptyDir: {}
{{- with .Values.kafka.configFileSecret }}
{{- if .name }}
- name: kafka-config
  secret:
    secretName: {{ .name | quote }}
    items: [{key: {{ .key | quote }}, path: {{ .key | quote }}}]
{{- end }}
{{- end }}
{{- end -}}

{{- define "herald.volumeMounts" -}}
- {name: tmp, mountPath: /tmp}
{{- if .Values.kafka.configFileSecret.name }}
- {name: kafka-config, mountPath: /etc/herald/kafka, readOnly: true}
{{- end }}
{{- end -}}

{{/* The lag query KEDA scales the publishers on: records of publish.request not yet
committed by the publishers' consumer group (every scheduler copy reports the same
value: max per partition, summed). */}}
{{- define "herald.publisherLagQuery" -}}
{{- $prefix := .Values.env.HERALD_TOPIC_PREFIX | default "" -}}
sum(max by (partition) (herald_consumer_lag{group="{{ $prefix }}herald-publisher",topic="{{ $prefix }}publish.request"}))
{{- end -}}

{{/* A container of the migration Job. Hooks run before the release's ConfigMap exists, so
it gets the same settings inline. */}}
{{- define "herald.jobContainer" -}}
- name: {{ .name }}
  image: {{ include "herald.image" .root | quote }}
  imagePullPolicy: {{ .root.Values.image.pullPolicy }}
  args: {{ toJson .args }}
  env:
    {{- range $name, $value := include "herald.settings" .root | fromYaml }}
    - {name: {{ $name }}, value: {{ $value | toString | quote }}}
    {{- end }}
    {{- include "herald.secretEnv" .root | trim | nindent 4 }}
  resources:
    {{- toYaml .root.Values.migrations.resources | nindent 4 }}
  securityContext:
    {{- toYaml .root.Values.securityContext | nindent 4 }}
  volumeMounts:
    {{- include "herald.volumeMounts" .root | nindent 4 }}
{{- end -}}
