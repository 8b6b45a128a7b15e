{{/*
A streaming SparkApplication running `moaa <job>` in the driver, exactly the local entry point
(images/spark/run.py hands spark-submit's arguments to the moaa CLI).
Call with (dict "root" $ "job" "stats" "env" (list ...) "ports" (list ...)).
*/}}
{{- define "moaa.sparkApplication" -}}
{{- $root := .root }}
{{- $v := index $root.Values .job }}
{{- $name := include "moaa.componentName" (dict "root" $root "component" .job) }}
apiVersion: sparkoperator.k8s.io/v1beta2
kind: SparkApplication
metadata:
  name: {{ $name }}
  labels:
    {{- include "moaa.componentLabels" (dict "root" $root "component" .job) | nindent 4 }}
  {{- if $root.Values.spark.installAsHook }}
  annotations:
    ## Created after the Spark operator's webhook answers (see spark/webhook-wait-job.yaml).
    helm.sh/hook: post-install,post-upgrade
    helm.sh/hook-weight: "10"
    helm.sh/hook-delete-policy: before-hook-creation
  {{- end }}
spec:
  type: Python
  pythonVersion: "3"
  mode: cluster
  image: {{ include "moaa.image" (dict "root" $root "image" $root.Values.images.spark) }}
  imagePullPolicy: {{ $root.Values.images.pullPolicy }}
  {{- with $root.Values.images.pullSecrets }}
  imagePullSecrets:
    {{- range . }}
    - {{ .name }}
    {{- end }}
  {{- end }}
  mainApplicationFile: local:///opt/moaa/run.py
  arguments: [{{ .job | quote }}]
  sparkVersion: {{ $root.Values.spark.version | quote }}
  ## Streaming: always restart; the checkpoint PVC carries offsets and state across restarts.
  restartPolicy:
    type: Always
    onFailureRetryInterval: {{ $root.Values.spark.restartIntervalSeconds }}
    onSubmissionFailureRetryInterval: {{ $root.Values.spark.restartIntervalSeconds }}
  sparkConf:
    ## Nothing is resolved at submit: the connector jars are baked into the image.
    spark.jars.ivy: /tmp/.ivy2
    spark.kubernetes.submission.waitAppCompletion: "false"
    spark.sql.streaming.metricsEnabled: "true"
    {{- with $root.Values.spark.extraSparkConf }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  volumes:
    - name: checkpoints
      persistentVolumeClaim:
        claimName: {{ include "moaa.componentName" (dict "root" $root "component" (printf "%s-checkpoints" .job)) }}
    - name: tmp
      emptyDir: {}
    - name: work-dir
      emptyDir: {}
    {{- include "moaa.kafkaCaVolume" $root | nindent 4 }}
  driver:
    cores: {{ $v.driver.cores }}
    {{- with $v.driver.coreRequest }}
    coreRequest: {{ . | quote }}
    {{- end }}
    coreLimit: {{ $v.driver.coreLimit | quote }}
    memory: {{ $v.driver.memory | quote }}
    ## An OutOfMemoryError ends the JVM at once (the job exits non-zero and the operator
    ## restarts it) instead of leaving a driver that answers nothing more.
    javaOptions: "-XX:+ExitOnOutOfMemoryError"
    serviceAccount: {{ include "moaa.sparkServiceAccount" $root }}
    labels:
      {{- include "moaa.componentLabels" (dict "root" $root "component" .job) | nindent 6 }}
      moaa/spark-role: driver
    env:
      {{- include "moaa.commonEnv" $root | nindent 6 }}
      {{- include "moaa.kafkaEnv" (dict "root" $root "app" .job) | nindent 6 }}
      {{- include "moaa.topicEnv" $root | nindent 6 }}
      - name: MOAA_CHECKPOINT_DIR
        value: /checkpoints
      - name: MOAA_SPARK_UI_PORT
        value: "4040"
      - name: MOAA_SPARK_SHUFFLE_PARTITIONS
        value: {{ $root.Values.spark.shufflePartitions | quote }}
      - name: HOME
        value: /tmp
      {{- with .env }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
    {{- with .ports }}
    ports:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    podSecurityContext:
      {{- include "moaa.sparkPodSecurityContext" $root | nindent 6 }}
    securityContext:
      {{- include "moaa.containerSecurityContext" $root | nindent 6 }}
    volumeMounts:
      - {name: checkpoints, mountPath: /checkpoints}
      - {name: tmp, mountPath: /tmp}
      - {name: work-dir, mountPath: /opt/spark/work-dir}
      {{- include "moaa.kafkaCaMount" $root | nindent 6 }}
    ## Spark builds the driver container on this template, keeping the probes: the UI port
    ## (which also serves /metrics/prometheus/) answers once the SparkContext is up.
    template:
      spec:
        containers:
          - name: spark-kubernetes-driver
            startupProbe:
              tcpSocket: {port: 4040}
              periodSeconds: 10
              failureThreshold: 30
            livenessProbe:
              httpGet: {path: /metrics/prometheus/, port: 4040}
              periodSeconds: 20
              timeoutSeconds: 5
              failureThreshold: 6
            readinessProbe:
              httpGet: {path: /metrics/prometheus/, port: 4040}
              periodSeconds: 10
              timeoutSeconds: 5
  executor:
    instances: {{ $v.executor.instances }}
    cores: {{ $v.executor.cores }}
    {{- with $v.executor.coreRequest }}
    coreRequest: {{ . | quote }}
    {{- end }}
    memory: {{ $v.executor.memory | quote }}
    javaOptions: "-XX:+ExitOnOutOfMemoryError"
    ## Executors never call the API: their ServiceAccount mounts no token.
    serviceAccount: {{ include "moaa.sparkExecutorServiceAccount" $root }}
    labels:
      {{- include "moaa.componentLabels" (dict "root" $root "component" .job) | nindent 6 }}
      moaa/spark-role: executor
    env:
      {{- include "moaa.commonEnv" $root | nindent 6 }}
      - name: HOME
        value: /tmp
    podSecurityContext:
      {{- include "moaa.sparkPodSecurityContext" $root | nindent 6 }}
    securityContext:
      {{- include "moaa.containerSecurityContext" $root | nindent 6 }}
    volumeMounts:
      - {name: checkpoints, mountPath: /checkpoints}
      - {name: tmp, mountPath: /tmp}
      - {name: work-dir, mountPath: /opt/spark/work-dir}
      {{- include "moaa.kafkaCaMount" $root | nindent 6 }}
{{- end }}

{{/* Spark's image runs as the spark user (uid 185). */}}
{{- define "moaa.sparkPodSecurityContext" -}}
{{- $ctx := deepCopy .Values.podSecurityContext -}}
{{- $_ := set $ctx "runAsUser" 185 -}}
{{- $_ := set $ctx "runAsGroup" 185 -}}
{{- $_ := set $ctx "fsGroup" 185 -}}
{{- toYaml $ctx }}
{{- end }}

{{/* What the wait Job dry-runs: a minimal SparkApplication (never created). */}}
{{- define "moaa.sparkWebhookProbe" -}}
apiVersion: sparkoperator.k8s.io/v1beta2
kind: SparkApplication
metadata:
  name: {{ include "moaa.componentName" (dict "root" . "component" "webhook-probe") }}
  labels:
    {{- include "moaa.componentLabels" (dict "root" . "component" "spark-webhook-wait") | nindent 4 }}
spec:
  type: Python
  pythonVersion: "3"
  mode: cluster
  image: {{ include "moaa.image" (dict "root" . "image" .Values.images.spark) }}
  mainApplicationFile: local:///opt/moaa/run.py
  sparkVersion: {{ .Values.spark.version | quote }}
  driver: {cores: 1, memory: 512m, serviceAccount: {{ include "moaa.sparkServiceAccount" . }}}
  executor: {instances: 1, cores: 1, memory: 512m}
{{- end }}
