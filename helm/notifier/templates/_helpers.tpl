{{/* Names, labels and the shared pieces of the pod specs. */}}

{{- define "notifier.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* <release>-notifier, or the release name when it already contains the chart name. Leaves room for "-consumer". */}}
{{- define "notifier.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "notifier.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "notifier.selectorLabels" -}}
app.kubernetes.io/name: {{ include "notifier.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "notifier.labels" -}}
helm.sh/chart: {{ include "notifier.chart" . }}
{{ include "notifier.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: notifier
{{- end }}

{{/* The image: repository@digest when a digest is set, else repository:tag (tag defaults to appVersion). */}}
{{- define "notifier.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The non-secret configuration, as NOTIFIER_* name: "value" lines: what the chart sets from its
own values, then .Values.config. The ConfigMap holds it; the migration Job (a pre-install hook,
run before the ConfigMap exists) gets the same as plain env.
*/}}
{{- define "notifier.configData" -}}
NOTIFIER_KAFKA_BOOTSTRAP_SERVERS: {{ .Values.kafka.bootstrapServers | quote }}
NOTIFIER_KAFKA_GROUP_ID: {{ .Values.kafka.consumerGroup | quote }}
NOTIFIER_KAFKA_SEND_REQUESTS_TOPIC: {{ .Values.kafka.sendRequestsTopic | quote }}
NOTIFIER_KAFKA_PARTITIONS: {{ .Values.kafka.sendRequestsPartitions | quote }}
NOTIFIER_LOG_LEVEL: {{ .Values.logLevel | quote }}
NOTIFIER_DATABASE_MIGRATE_ON_START: {{ (not .Values.migration.enabled) | quote }}
{{- range $name, $value := .Values.config }}
{{- /* Helm reads every number as a float: print whole ones as integers (1048576, not 1.048576e+06). */}}
{{- if and (kindIs "float64" $value) (eq $value (float64 (int64 $value))) }}
{{- $value = int64 $value }}
{{- end }}
{{ $name }}: {{ $value | toString | quote }}
{{- end }}
{{- end }}

{{/* Fails the render when the consumer could be scaled past the send-requests topic's partitions. */}}
{{- define "notifier.checkPartitions" -}}
{{- $partitions := int .Values.kafka.sendRequestsPartitions }}
{{- if and (not .Values.consumer.keda.enabled) (gt (int .Values.consumer.replicas) $partitions) }}
{{- fail (printf "consumer.replicas (%d) is above kafka.sendRequestsPartitions (%d): consumers beyond the partition count sit idle" (int .Values.consumer.replicas) $partitions) }}
{{- end }}
{{- if and .Values.consumer.keda.enabled (gt (int .Values.consumer.keda.minReplicas) $partitions) }}
{{- fail (printf "consumer.keda.minReplicas (%d) is above kafka.sendRequestsPartitions (%d)" (int .Values.consumer.keda.minReplicas) $partitions) }}
{{- end }}
{{- if eq (int .Values.http.service.port) (int .Values.httpPort) }}
{{- fail (printf "http.service.port must differ from httpPort (%d): the HTTP Service exposes httpPort as its metrics port" (int .Values.httpPort)) }}
{{- end }}
{{- end }}

{{/*
The container of a Deployment. Call with (dict "root" $ "component" "consumer"|"http" "resources" ...).
Probes: /healthz (liveness: the process serves requests) and /readyz (database and broker reachable).
*/}}
{{- define "notifier.container" -}}
{{- $root := .root -}}
- name: notifier
  image: {{ include "notifier.image" $root | quote }}
  imagePullPolicy: {{ $root.Values.image.pullPolicy }}
  command: ["notifier"]
  args: ["run", "--only", {{ .component | quote }}]
  ports:
    - name: http
      containerPort: {{ $root.Values.httpPort }}
      protocol: TCP
  env:
    # Set here, not in the ConfigMap, so that nothing overrides what the probes rely on.
    - name: NOTIFIER_HTTP_HOST
      value: "0.0.0.0"
    - name: NOTIFIER_HTTP_PORT
      value: {{ $root.Values.httpPort | quote }}
  envFrom:
    - configMapRef:
        name: {{ include "notifier.fullname" $root }}-config
    - secretRef:
        name: {{ $root.Values.existingSecret }}
  startupProbe:
    httpGet:
      path: /healthz
      port: http
    periodSeconds: 2
    failureThreshold: 60
  livenessProbe:
    httpGet:
      path: /healthz
      port: http
    periodSeconds: 10
    timeoutSeconds: 3
    failureThreshold: 3
  readinessProbe:
    # /readyz checks the database and the broker, 2 s each.
    httpGet:
      path: /readyz
      port: http
    periodSeconds: 5
    timeoutSeconds: 5
    failureThreshold: 3
  resources:
    {{- toYaml .resources | nindent 4 }}
  securityContext:
    {{- toYaml $root.Values.containerSecurityContext | nindent 4 }}
  volumeMounts:
    - name: tmp
      mountPath: /tmp
{{- end }}

{{/* Pod-level fields shared by every pod. Call with the root context. */}}
{{- define "notifier.podCommon" -}}
automountServiceAccountToken: false
{{- with .Values.serviceAccount.name }}
serviceAccountName: {{ . }}
{{- end }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
volumes:
  - name: tmp
    emptyDir:
      sizeLimit: {{ .Values.tmpSizeLimit }}
{{- end }}

{{/* Scheduling fields of a Deployment's pods. Call with its values block (.Values.consumer or .Values.http). */}}
{{- define "notifier.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
