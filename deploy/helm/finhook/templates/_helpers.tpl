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
Selector labels: stable over upgrades (a Deployment's selector is immutable).
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
Checks of combinations the schema cannot express. Renders nothing; fails the render instead.
*/}}
{{- define "finhook.validate" -}}
{{- if .Values.registry.enabled }}
{{- if .Values.pollers.usersFile.enabled }}
{{- fail "registry.enabled and pollers.usersFile.enabled exclude each other: in registry mode the pollers' users come from the registry topic (`finhook users import FILE --poller NAME` copies a users file there)" }}
{{- end }}
{{- if not (include "finhook.secretName" .) }}
{{- fail "registry.enabled needs the registry key as a file of the secrets Secret: set secrets.existingSecret, or secrets.create with secrets.data" }}
{{- end }}
{{- if and .Values.secrets.create (not .Values.secrets.existingSecret) }}
{{- $data := .Values.secrets.data | default dict }}
{{- if not (hasKey $data .Values.registry.keyFileName) }}
{{- fail (printf "registry.enabled: secrets.data has no %s (the registry key, from `finhook users keygen`; e.g. --set-file secrets.data.%s=./registry-key)" .Values.registry.keyFileName .Values.registry.keyFileName) }}
{{- end }}
{{- range .Values.registry.previousKeys }}
{{- if not (hasKey $data .fileName) }}
{{- fail (printf "registry.previousKeys: secrets.data has no %s (the key %s)" .fileName .id) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Registry mode's environment (EnvVar list items): FINHOOK_* variables override `config`. finhook
parses environment values (figment): strings are written JSON-quoted so that an id such as
"1" or "true" stays a string, and previous keys as an array of inline tables.
*/}}
{{- define "finhook.registryEnv" -}}
- name: FINHOOK_REGISTRY__ENABLED
  value: "true"
- name: FINHOOK_REGISTRY__KEY_ID
  value: {{ toJson .Values.registry.keyId | quote }}
- name: FINHOOK_REGISTRY__KEY_FILE
  value: {{ printf "/var/run/secrets/finhook/%s" .Values.registry.keyFileName | toJson | quote }}
{{- with .Values.registry.previousKeys }}
{{- $keys := list }}
{{- range . }}
{{- $keys = append $keys (printf "{id=%s,key_file=%s}" (toJson .id) (printf "/var/run/secrets/finhook/%s" .fileName | toJson)) }}
{{- end }}
- name: FINHOOK_REGISTRY__PREVIOUS_KEYS
  value: {{ printf "[%s]" (join "," $keys) | quote }}
{{- end }}
{{- end }}

{{/*
The Deployment's pod template. Called with the root context.
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
  # No FINHOOK_SERVICE_HOST, FINHOOK_PORT_8080_TCP, ... from Services named finhook*: finhook
  # reads FINHOOK_* as configuration (it ignores these shapes too), and needs none of them.
  enableServiceLinks: false
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
      {{- if or .Values.registry.enabled .Values.extraEnv }}
      env:
        {{- if .Values.registry.enabled }}
        {{- include "finhook.registryEnv" . | nindent 8 }}
        {{- end }}
        {{- with .Values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- end }}
      {{- if .Values.preStopSleepSeconds }}
      lifecycle:
        preStop:
          exec:
            command: ["sleep", {{ .Values.preStopSleepSeconds | quote }}]
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
