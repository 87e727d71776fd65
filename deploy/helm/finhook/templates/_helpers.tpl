{{/*
The chart name, or nameOverride.
*/}}
{{- define "finhook.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the release's resources: fullnameOverride, or release name + chart name (the
release name alone when it already contains the chart name). At most 63 characters.
*/}}
{{- define "finhook.fullname" -}}
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

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "finhook.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels on every resource.
*/}}
{{- define "finhook.labels" -}}
helm.sh/chart: {{ include "finhook.chart" . }}
{{ include "finhook.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Selector labels: stable over upgrades (a Deployment's or StatefulSet's selector is immutable).
*/}}
{{- define "finhook.selectorLabels" -}}
app.kubernetes.io/name: {{ include "finhook.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The ServiceAccount's name.
*/}}
{{- define "finhook.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "finhook.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The ConfigMap holding finhook.toml.
*/}}
{{- define "finhook.configMapName" -}}
{{- printf "%s-config" (include "finhook.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The Secret mounted at /var/run/secrets/finhook: secrets.existingSecret, or the one the chart
creates when secrets.create is true. Empty when there is none.
*/}}
{{- define "finhook.secretName" -}}
{{- if .Values.secrets.existingSecret }}
{{- .Values.secrets.existingSecret }}
{{- else if .Values.secrets.create }}
{{- printf "%s-secrets" (include "finhook.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/*
The ConfigMap holding the Oxlin users file, mounted at /etc/finhook/users.
*/}}
{{- define "finhook.usersConfigMapName" -}}
{{- if .Values.pollers.usersFile.existingConfigMap }}
{{- .Values.pollers.usersFile.existingConfigMap }}
{{- else }}
{{- printf "%s-users" (include "finhook.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/*
The headless Service of statefulset mode.
*/}}
{{- define "finhook.headlessServiceName" -}}
{{- printf "%s-headless" (include "finhook.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The image reference: repository@digest, or repository:tag (tag defaulting to appVersion).
*/}}
{{- define "finhook.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
Environment variable name prefix for a poller: FINHOOK_POLLERS__<NAME>__ (finhook lower-cases
environment keys, so the upper-case name maps to the lower-case [pollers.name] table).
*/}}
{{- define "finhook.pollerEnvPrefix" -}}
{{- printf "FINHOOK_POLLERS__%s__" (upper .) }}
{{- end }}

{{/*
The pod template shared by the Deployment and the StatefulSet. Called with the root context.
*/}}
{{- define "finhook.podTemplate" -}}
metadata:
  labels:
    {{- include "finhook.labels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
    {{- if and .Values.secrets.create (not .Values.secrets.existingSecret) }}
    checksum/secret: {{ include (print $.Template.BasePath "/secret.yaml") . | sha256sum }}
    {{- end }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "finhook.serviceAccountName" . }}
  automountServiceAccountToken: false
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
  {{- with .Values.podSecurityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: finhook
      image: {{ include "finhook.image" . | quote }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        - serve
        - --config
        - /etc/finhook/finhook.toml
      ports:
        - name: webhooks
          containerPort: {{ .Values.containerPorts.webhooks }}
          protocol: TCP
        - name: metrics
          containerPort: {{ .Values.containerPorts.metrics }}
          protocol: TCP
      {{- $sharded := and (eq .Values.mode "statefulset") .Values.pollers.shardedNames }}
      {{- if or $sharded .Values.extraEnv }}
      env:
        {{- if $sharded }}
        {{- range .Values.pollers.shardedNames }}
        - name: {{ include "finhook.pollerEnvPrefix" . }}SHARD_INDEX
          valueFrom:
            fieldRef:
              fieldPath: metadata.labels['apps.kubernetes.io/pod-index']
        - name: {{ include "finhook.pollerEnvPrefix" . }}SHARD_COUNT
          value: {{ $.Values.replicaCount | quote }}
        {{- end }}
        {{- end }}
        {{- with .Values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- end }}
      livenessProbe:
        httpGet:
          path: /healthz
          port: metrics
        initialDelaySeconds: {{ .Values.livenessProbe.initialDelaySeconds }}
        periodSeconds: {{ .Values.livenessProbe.periodSeconds }}
        timeoutSeconds: {{ .Values.livenessProbe.timeoutSeconds }}
        failureThreshold: {{ .Values.livenessProbe.failureThreshold }}
      readinessProbe:
        httpGet:
          path: /readyz
          port: metrics
        initialDelaySeconds: {{ .Values.readinessProbe.initialDelaySeconds }}
        periodSeconds: {{ .Values.readinessProbe.periodSeconds }}
        timeoutSeconds: {{ .Values.readinessProbe.timeoutSeconds }}
        failureThreshold: {{ .Values.readinessProbe.failureThreshold }}
        successThreshold: {{ .Values.readinessProbe.successThreshold }}
      {{- with .Values.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.securityContext }}
      securityContext:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      volumeMounts:
        - name: config
          mountPath: /etc/finhook/finhook.toml
          subPath: finhook.toml
          readOnly: true
        {{- if include "finhook.secretName" . }}
        - name: secrets
          mountPath: /var/run/secrets/finhook
          readOnly: true
        {{- end }}
        {{- if .Values.pollers.usersFile.enabled }}
        - name: users
          mountPath: /etc/finhook/users
          readOnly: true
        {{- end }}
        {{- if .Values.tls.enabled }}
        - name: tls
          mountPath: /etc/finhook/tls
          readOnly: true
        {{- end }}
        {{- with .Values.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ include "finhook.configMapName" . }}
    {{- with include "finhook.secretName" . }}
    - name: secrets
      secret:
        secretName: {{ . }}
        defaultMode: 0440
    {{- end }}
    {{- if .Values.pollers.usersFile.enabled }}
    - name: users
      configMap:
        name: {{ include "finhook.usersConfigMapName" . }}
    {{- end }}
    {{- if .Values.tls.enabled }}
    - name: tls
      secret:
        secretName: {{ required "tls.existingSecret is required when tls.enabled is true" .Values.tls.existingSecret }}
        defaultMode: 0440
    {{- end }}
    {{- with .Values.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
