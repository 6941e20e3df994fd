{{/* Object-name suffix for a revision: "" or "-<rev>". */}}
{{- define "mizzen.revSuffix" -}}
{{- if .Values.revision }}-{{ .Values.revision }}{{ end -}}
{{- end }}

{{/* Name of the control plane's Deployment, Service, ServiceAccount: mizzen[-rev]. */}}
{{- define "mizzen.name" -}}
mizzen{{ include "mizzen.revSuffix" . }}
{{- end }}

{{/* The istio.io/rev value of this control plane. */}}
{{- define "mizzen.rev" -}}
{{- .Values.revision | default "default" -}}
{{- end }}

{{- define "mizzen.chart" -}}
{{ .Chart.Name }}-{{ .Chart.Version | replace "+" "_" }}
{{- end }}

{{/* Labels on every object: helm's recommended set plus Istio's. */}}
{{- define "mizzen.labels" -}}
app.kubernetes.io/name: mizzen
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: mizzen
helm.sh/chart: {{ include "mizzen.chart" . }}
istio.io/rev: {{ include "mizzen.rev" . }}
release: {{ .Release.Name }}
{{- end }}

{{/* Pod selector: app + istio (Istio's istiod Service selector), and the revision. */}}
{{- define "mizzen.selectorLabels" -}}
app: mizzen
istio: pilot
istio.io/rev: {{ include "mizzen.rev" . }}
{{- end }}

{{- define "mizzen.image" -}}
{{ .Values.global.hub }}/{{ .Values.pilot.image }}:{{ .Values.global.tag }}
{{- end }}

{{/* The Service host proxies and webhooks reach: mizzen[-rev].<istioNamespace>.svc */}}
{{- define "mizzen.host" -}}
{{ include "mizzen.name" . }}.{{ .Values.istioNamespace }}.svc
{{- end }}
