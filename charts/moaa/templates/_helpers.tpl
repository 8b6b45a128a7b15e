{{/*
Names. Kubernetes names are limited to 63 characters (DNS labels), hence every trunc 63.
*/}}
{{- define "moaa.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "moaa.fullname" -}}
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

{{/* "<fullname>-<component>", for one component's resources. */}}
{{- define "moaa.componentName" -}}
{{- printf "%s-%s" (include "moaa.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "moaa.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels: name and instance only (they must never change). */}}
{{- define "moaa.selectorLabels" -}}
app.kubernetes.io/name: {{ include "moaa.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "moaa.labels" -}}
helm.sh/chart: {{ include "moaa.chart" . }}
{{ include "moaa.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: moaa
{{- end }}

{{/* Labels of one component: call with (dict "root" $ "component" "feeder"). */}}
{{- define "moaa.componentLabels" -}}
{{ include "moaa.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "moaa.componentSelectorLabels" -}}
{{ include "moaa.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* The label Prometheus selects monitors and rules by. */}}
{{- define "moaa.releaseLabel" -}}
release: {{ default .Release.Name .Values.monitoring.releaseLabel | quote }}
{{- end }}

{{/* Image reference: (dict "root" $ "image" .Values.images.feeder). A digest wins. */}}
{{- define "moaa.image" -}}
{{- $reg := .root.Values.images.registry -}}
{{- $repo := ternary (printf "%s/%s" $reg .image.repository) .image.repository (ne $reg "") -}}
{{- if .image.digest -}}
{{- printf "%s@%s" $repo .image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (required "every image needs a pinned tag" .image.tag) -}}
{{- end -}}
{{- end }}

{{- define "moaa.imagePullSecrets" -}}
{{- with .Values.images.pullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{- define "moaa.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext }}
{{- end }}

{{- define "moaa.containerSecurityContext" -}}
{{- toYaml .Values.containerSecurityContext }}
{{- end }}

{{/* Kafka: bootstrap, the cluster CA Secret, the KafkaUser of each app. */}}
{{- define "moaa.kafkaBootstrap" -}}
{{- printf "%s-kafka-bootstrap:%d" .Values.kafka.name (int .Values.kafka.listenerPort) }}
{{- end }}

{{- define "moaa.kafkaCaSecret" -}}
{{- printf "%s-cluster-ca-cert" .Values.kafka.name }}
{{- end }}

{{- define "moaa.kafkaUser" -}}
{{- printf "%s-%s" (include "moaa.fullname" .root) .app | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Kafka client environment of one app: (dict "root" $ "app" "producer").
The password comes from the Secret the Strimzi user operator writes for the KafkaUser.
*/}}
{{- define "moaa.kafkaEnv" -}}
- name: MOAA_KAFKA_BOOTSTRAP
  value: {{ include "moaa.kafkaBootstrap" .root | quote }}
- name: MOAA_KAFKA_SECURITY_PROTOCOL
  value: SASL_SSL
- name: MOAA_KAFKA_SASL_MECHANISM
  value: SCRAM-SHA-512
- name: MOAA_KAFKA_USERNAME
  value: {{ include "moaa.kafkaUser" . | quote }}
- name: MOAA_KAFKA_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "moaa.kafkaUser" . }}
      key: password
- name: MOAA_KAFKA_CA_LOCATION
  value: /etc/moaa/kafka-ca/ca.crt
- name: MOAA_TOPIC_PARTITIONS
  value: {{ .root.Values.kafka.topics.partitions | quote }}
- name: MOAA_TOPIC_REPLICATION_FACTOR
  value: {{ .root.Values.kafka.topics.replicas | quote }}
- name: MOAA_TOPIC_RETENTION_MS
  value: {{ .root.Values.kafka.topics.retentionMs | int64 | quote }}
{{- end }}

{{/* The data Job's name: source, year and a hash of every value its pod template reads, plus
     the chart version (a new chart may change the template itself). Prepare and download are
     idempotent, so a new Job after such a change only redoes what changed. */}}
{{- define "moaa.dataJobName" -}}
{{- $i := .Values.images }}
{{- $inputs := dict "data" .Values.data "year" .Values.replay.year "log" .Values.logLevel "chart" .Chart.Version
      "image" (list $i.registry $i.dataprep $i.pullPolicy $i.pullSecrets)
      "security" (list .Values.podSecurityContext .Values.containerSecurityContext) }}
{{- $hash := toJson $inputs | sha256sum | trunc 8 }}
{{- include "moaa.componentName" (dict "root" . "component" (printf "data-%s-%d-%s" .Values.data.source (int .Values.replay.year) $hash)) }}
{{- end }}

{{- define "moaa.commonEnv" -}}
- name: MOAA_LOG_FORMAT
  value: json
- name: MOAA_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
- name: MOAA_STATE_DIR
  value: /tmp/moaa
{{- end }}

{{- define "moaa.kafkaCaVolume" -}}
- name: kafka-ca
  secret:
    secretName: {{ include "moaa.kafkaCaSecret" . }}
    items: [{key: ca.crt, path: ca.crt}]
{{- end }}

{{- define "moaa.kafkaCaMount" -}}
- name: kafka-ca
  mountPath: /etc/moaa/kafka-ca
  readOnly: true
{{- end }}

{{/* MongoDB: the operator writes <mdbc>-<db>-<user> with connectionString.standard. */}}
{{- define "moaa.mongoConnectionSecret" -}}
{{- printf "%s-%s-%s" .root.Values.mongodb.name .root.Values.mongodb.database .user | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "moaa.mongoPasswordSecret" -}}
{{- $u := index .root.Values.mongodb.users .app -}}
{{- default (printf "%s-mongo-%s" (include "moaa.fullname" .root) .app) $u.existingSecret | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Topic names. */}}
{{- define "moaa.topicEnv" -}}
- name: MOAA_TOPIC_OBSERVATIONS
  value: {{ .Values.kafka.topics.names.observations | quote }}
- name: MOAA_TOPIC_DLQ
  value: {{ .Values.kafka.topics.names.dlq | quote }}
- name: MOAA_TOPIC_HOURLY_STATS
  value: {{ .Values.kafka.topics.names.hourlyStats | quote }}
- name: MOAA_TOPIC_HOURLY_SUMMARY
  value: {{ .Values.kafka.topics.names.hourlySummary | quote }}
- name: MOAA_TOPIC_FORECASTS
  value: {{ .Values.kafka.topics.names.forecasts | quote }}
- name: MOAA_TOPIC_FORECAST_SKILL
  value: {{ .Values.kafka.topics.names.forecastSkill | quote }}
{{- end }}

{{- define "moaa.sparkServiceAccount" -}}
{{- default (printf "%s-spark" (include "moaa.fullname" .)) .Values.spark.serviceAccount.name }}
{{- end }}

{{- define "moaa.sparkExecutorServiceAccount" -}}
{{- printf "%s-executor" (include "moaa.sparkServiceAccount" .) }}
{{- end }}

{{/* NetworkPolicy egress rule to the Kubernetes API (ports 443 and 6443). Network plugins
     match egress after the `kubernetes` Service's address translation, so a CIDR must hold
     the API server's endpoint addresses, never the Service IP; empty = the ports alone. */}}
{{- define "moaa.apiServerEgress" -}}
{{- with .Values.networkPolicy.apiServerCIDR -}}
- to:
    - ipBlock: {cidr: {{ . }}}
  ports:
{{- else -}}
- ports:
{{- end }}
    - {port: 443, protocol: TCP}
    - {port: 6443, protocol: TCP}
{{- end }}

{{/* name=url,... of every metrics endpoint, for the dashboard's pipeline page. */}}
{{- define "moaa.dashboardScrapeTargets" -}}
{{- $t := list }}
{{- $ingest := include "moaa.componentName" (dict "root" . "component" "ingest") }}
{{- $t = append $t (printf "feeder=http://%s:%d/metrics" $ingest (int .Values.feederMetricsPort)) }}
{{- $t = append $t (printf "producer=http://%s:%d/metrics" $ingest (int .Values.producer.metricsPort)) }}
{{- if .Values.stats.enabled }}
{{- $t = append $t (printf "stats=http://%s:4040/metrics/prometheus/" (include "moaa.componentName" (dict "root" . "component" "stats-driver"))) }}
{{- end }}
{{- if .Values.insert.enabled }}
{{- $t = append $t (printf "insert=http://%s:%d/metrics" (include "moaa.componentName" (dict "root" . "component" "insert")) (int .Values.insert.metricsPort)) }}
{{- end }}
{{- if .Values.forecast.enabled }}
{{- $t = append $t (printf "forecast=http://%s:%d/metrics" (include "moaa.componentName" (dict "root" . "component" "forecast-driver")) (int .Values.forecast.metricsPort)) }}
{{- end }}
{{- join "," $t }}
{{- end }}
