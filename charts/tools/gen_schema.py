"""Generate charts/moaa/values.schema.json (draft-07, unknown keys rejected everywhere).

Run ``python charts/tools/gen_schema.py`` after adding a value; a test checks the committed
file equals this script's output. Subchart keys only require their ``enabled`` switch: the
rest belongs to those charts.
"""

import json
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "moaa" / "values.schema.json"
S = lambda **kw: {"type": "string", **kw}
I = lambda **kw: {"type": "integer", **kw}
N = lambda **kw: {"type": "number", **kw}
B = {"type": "boolean"}
def O(props, required=None, extra=False, **kw):
    d = {"type": "object", "properties": props, "additionalProperties": extra, **kw}
    if required: d["required"] = required
    return d
FREE = {"type": "object"}
QTY = {"type": ["string", "number"]}
RES = O({"requests": O({"cpu": QTY, "memory": QTY}), "limits": O({"cpu": QTY, "memory": QTY})})
ENV = {"type": "array", "items": {"type": "object", "required": ["name"]}}
IMG = O({"repository": S(minLength=1), "tag": {"type": "string", "minLength": 1, "not": {"const": "latest"}}, "digest": S(pattern="^(sha256:[a-f0-9]{64})?$")}, ["repository", "tag"])
ACCESS = {"type": "array", "items": {"enum": ["ReadWriteOnce", "ReadWriteMany", "ReadWriteOncePod", "ReadOnlyMany"]}, "minItems": 1}
PVC = O({"size": S(), "storageClass": S(), "accessModes": ACCESS}, ["size"])
SPARK_PROC = O({"cores": I(minimum=1), "coreRequest": S(), "coreLimit": S(), "memory": S(pattern="^[0-9]+[mg]$")}, ["cores", "memory"])
SPARK_EXEC = O({"instances": I(minimum=1), "cores": I(minimum=1), "coreRequest": S(), "memory": S(pattern="^[0-9]+[mg]$")}, ["instances", "cores", "memory"])
PORT = I(minimum=1, maximum=65535)
DURATION = S(pattern="^[0-9]+[smhd]$")
USER = O({"name": S(minLength=1), "existingSecret": S()}, ["name"])
schema = O({
  "nameOverride": S(), "fullnameOverride": S(), "global": FREE,
  "images": O({
    "registry": S(), "pullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
    "pullSecrets": {"type": "array", "items": O({"name": S()}, ["name"])},
    "feeder": IMG, "producer": IMG, "dataprep": IMG, "spark": IMG, "dashboard": IMG,
  }, ["pullPolicy", "feeder", "producer", "dataprep", "spark", "dashboard"]),
  "podSecurityContext": FREE, "containerSecurityContext": FREE,
  "logLevel": {"enum": ["DEBUG", "INFO", "WARNING", "ERROR"]},
  "replay": O({"year": I(minimum=1901, maximum=2100), "tickSeconds": N(minimum=0), "start": S(), "end": S()}, ["year", "tickSeconds"]),
  "data": O({
    "source": {"enum": ["sample", "download"]},
    "download": O({"stations": {"type": "array", "items": S(pattern="^[0-9]{11}$")}, "country": S(), "all": B, "workers": I(minimum=1)}),
    "prepareMemoryLimit": S(), "persistence": PVC, "ttlSecondsAfterFinished": I(minimum=0), "backoffLimit": I(minimum=0), "resources": RES,
  }, ["source"]),
  "feeder": O({"window": I(minimum=1), "ackTimeoutSeconds": N(minimum=1), "extraEnv": ENV, "resources": RES}),
  "producer": O({"metricsPort": PORT, "queueMaxMessages": I(minimum=1), "extraEnv": ENV, "resources": RES}),
  "feederMetricsPort": PORT,
  "spark": O({
    "version": S(pattern="^4\\.[0-9]+\\.[0-9]+$"),
    "serviceAccount": O({"create": B, "name": S()}),
    "installAsHook": B, "webhookService": S(), "webhookPort": PORT, "restartIntervalSeconds": I(minimum=1),
    "shufflePartitions": I(minimum=1), "extraSparkConf": {"type": "object", "additionalProperties": {"type": "string"}},
  }, ["version"]),
  "stats": O({"enabled": B, "watermark": S(), "maxOffsetsPerTrigger": I(minimum=1), "driver": SPARK_PROC, "executor": SPARK_EXEC, "checkpoint": PVC}),
  "forecast": O({"enabled": B, "metricsPort": PORT, "driver": SPARK_PROC, "executor": SPARK_EXEC, "checkpoint": PVC}),
  "insert": O({"enabled": B, "metricsPort": PORT, "batchMax": I(minimum=1), "batchWaitSeconds": N(minimum=0), "extraEnv": ENV, "resources": RES}),
  "dashboard": O({
    "enabled": B, "replicas": I(minimum=1), "port": PORT, "extraEnv": ENV, "resources": RES,
    "service": O({"type": {"enum": ["ClusterIP", "NodePort", "LoadBalancer"]}, "port": PORT}),
    "ingress": O({"enabled": B, "className": S(), "host": S(), "annotations": {"type": "object", "additionalProperties": {"type": "string"}}, "tls": {"type": "array"}}),
    "pdb": O({"minAvailable": {"type": ["integer", "string"]}}),
  }),
  "kafka": O({
    "name": S(pattern="^[a-z][a-z0-9-]{0,19}$"), "version": S(), "metadataVersion": S(),
    "nodePool": O({
      "name": S(pattern="^[a-z][a-z0-9-]{0,19}$"), "replicas": I(minimum=1),
      "storage": O({"type": {"enum": ["persistent-claim", "ephemeral"]}, "size": S(), "storageClass": S(), "deleteClaim": B}, ["type"]),
      "resources": RES, "jvmOptions": FREE,
    }),
    "replication": O({"defaultReplicationFactor": I(minimum=1), "minInsyncReplicas": I(minimum=1)}),
    "listenerPort": PORT,
    "exporter": O({"enabled": B, "resources": RES}),
    "entityOperator": O({"resources": RES}),
    "topics": O({
      "partitions": I(minimum=1), "replicas": I(minimum=1),
      "retentionMs": {"type": "integer", "const": 604800000, "description": "Every topic keeps 7 days."},
      "names": O({k: S(pattern="^[a-zA-Z0-9._-]+$") for k in ["observations", "dlq", "hourlyStats", "hourlySummary", "forecasts", "forecastSkill"]},
                 ["observations", "dlq", "hourlyStats", "hourlySummary", "forecasts", "forecastSkill"]),
    }),
  }),
  "mongodb": O({
    "name": S(pattern="^[a-z][a-z0-9-]{0,30}$"), "version": S(pattern="^[0-9]+\\.[0-9]+\\.[0-9]+$"), "members": I(minimum=1),
    "database": S(minLength=1), "cacheSizeGB": N(exclusiveMinimum=0),
    "storage": O({"dataSize": S(), "logsSize": S(), "storageClass": S()}),
    "resources": RES,
    "users": O({"insert": USER, "dashboard": USER, "metrics": USER}, ["insert", "dashboard", "metrics"]),
  }),
  "monitoring": O({
    "monitors": B, "dashboards": B, "rules": B, "releaseLabel": S(), "scrapeInterval": DURATION,
    "dashboardLabel": S(), "dashboardLabelValue": S(),
    "alerts": O({"stalledFor": DURATION, "dlqRatio": N(minimum=0, maximum=1), "lagMessages": I(minimum=0), "skillBelow": N()}),
  }),
  "networkPolicy": O({"enabled": B, "prometheusNamespaceSelector": FREE, "prometheusPodSelector": FREE, "apiServerCIDR": S(), "downloadCIDR": S()}),
  "tests": O({"enabled": B, "timeoutSeconds": I(minimum=1)}),
  # Subchart values belong to those charts (their own schemas check them); we only require the switch.
  **{k: {"type": "object", "properties": {"enabled": B}, "required": ["enabled"]} for k in ["strimzi-kafka-operator", "mongodb-kubernetes", "spark-operator", "kube-prometheus-stack"]},
}, ["images", "replay", "data", "kafka", "mongodb", "spark"])
schema = {"$schema": "http://json-schema.org/draft-07/schema#", "title": "moaa chart values", **schema}
OUT.write_text(json.dumps(schema, indent=2) + "\n")
