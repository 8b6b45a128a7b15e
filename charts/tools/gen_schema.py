"""Generate charts/moaa/values.schema.json (draft-07, unknown keys rejected everywhere).

Run ``python charts/tools/gen_schema.py`` after adding a value; a test checks the committed
file equals this script's output. Subchart keys only require their ``enabled`` switch: the
rest belongs to those charts.
"""

import json
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "moaa" / "values.schema.json"
BOOL = {"type": "boolean"}


def string(**kw: object) -> dict:
    return {"type": "string", **kw}


def integer(**kw: object) -> dict:
    return {"type": "integer", **kw}


def number(**kw: object) -> dict:
    return {"type": "number", **kw}


def obj(props: dict, required: list[str] | None = None, extra: bool = False, **kw: object) -> dict:
    """An object that rejects unknown keys (unless ``extra``)."""
    d = {"type": "object", "properties": props, "additionalProperties": extra, **kw}
    if required:
        d["required"] = required
    return d


FREE = {"type": "object"}
QTY = {"type": ["string", "number"]}
RES = obj(
    {"requests": obj({"cpu": QTY, "memory": QTY}), "limits": obj({"cpu": QTY, "memory": QTY})}
)
ENV = {"type": "array", "items": {"type": "object", "required": ["name"]}}
IMG = obj(
    {
        "repository": string(minLength=1),
        "tag": {"type": "string", "minLength": 1, "not": {"const": "latest"}},
        "digest": string(pattern="^(sha256:[a-f0-9]{64})?$"),
    },
    ["repository", "tag"],
)
ACCESS = {
    "type": "array",
    "items": {"enum": ["ReadWriteOnce", "ReadWriteMany", "ReadWriteOncePod", "ReadOnlyMany"]},
    "minItems": 1,
}
PVC = obj({"size": string(), "storageClass": string(), "accessModes": ACCESS}, ["size"])
SPARK_PROC = obj(
    {
        "cores": integer(minimum=1),
        "coreRequest": string(),
        "coreLimit": string(),
        "memory": string(pattern="^[0-9]+[mg]$"),
    },
    ["cores", "memory"],
)
SPARK_EXEC = obj(
    {
        "instances": integer(minimum=1),
        "cores": integer(minimum=1),
        "coreRequest": string(),
        "memory": string(pattern="^[0-9]+[mg]$"),
    },
    ["instances", "cores", "memory"],
)
PORT = integer(minimum=1, maximum=65535)
DURATION = string(pattern="^[0-9]+[smhd]$")
USER = obj({"name": string(minLength=1), "existingSecret": string()}, ["name"])
schema = obj(
    {
        "nameOverride": string(),
        "fullnameOverride": string(),
        "global": FREE,
        "images": obj(
            {
                "registry": string(),
                "pullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
                "pullSecrets": {"type": "array", "items": obj({"name": string()}, ["name"])},
                "feeder": IMG,
                "producer": IMG,
                "dataprep": IMG,
                "spark": IMG,
                "dashboard": IMG,
            },
            ["pullPolicy", "feeder", "producer", "dataprep", "spark", "dashboard"],
        ),
        "podSecurityContext": FREE,
        "containerSecurityContext": FREE,
        "logLevel": {"enum": ["DEBUG", "INFO", "WARNING", "ERROR"]},
        "replay": obj(
            {
                "year": integer(minimum=1901, maximum=2100),
                "tickSeconds": number(minimum=0),
                "start": string(),
                "end": string(),
            },
            ["year", "tickSeconds"],
        ),
        "data": obj(
            {
                "source": {"enum": ["sample", "download"]},
                "download": obj(
                    {
                        "stations": {"type": "array", "items": string(pattern="^[0-9]{11}$")},
                        "country": string(),
                        "all": BOOL,
                        "workers": integer(minimum=1),
                    }
                ),
                "prepareMemoryLimit": string(),
                "persistence": PVC,
                "ttlSecondsAfterFinished": integer(minimum=0),
                "backoffLimit": integer(minimum=0),
                "resources": RES,
            },
            ["source"],
        ),
        "feeder": obj(
            {
                "window": integer(minimum=1),
                "ackTimeoutSeconds": number(minimum=1),
                "extraEnv": ENV,
                "resources": RES,
            }
        ),
        "producer": obj(
            {
                "metricsPort": PORT,
                "queueMaxMessages": integer(minimum=1),
                "extraEnv": ENV,
                "resources": RES,
            }
        ),
        "feederMetricsPort": PORT,
        "spark": obj(
            {
                "version": string(pattern="^4\\.[0-9]+\\.[0-9]+$"),
                "serviceAccount": obj({"create": BOOL, "name": string()}),
                "installAsHook": BOOL,
                "webhookWaitSeconds": integer(minimum=30),
                "restartIntervalSeconds": integer(minimum=1),
                "shufflePartitions": integer(minimum=1),
                "extraSparkConf": {"type": "object", "additionalProperties": {"type": "string"}},
            },
            ["version"],
        ),
        "stats": obj(
            {
                "enabled": BOOL,
                "watermark": string(),
                "maxOffsetsPerTrigger": integer(minimum=1),
                "driver": SPARK_PROC,
                "executor": SPARK_EXEC,
                "checkpoint": PVC,
            }
        ),
        "forecast": obj(
            {
                "enabled": BOOL,
                "metricsPort": PORT,
                "partitions": {"type": "integer", "minimum": 1},
                "trainMaxRows": {"type": "integer", "minimum": 1000},
                "driver": SPARK_PROC,
                "executor": SPARK_EXEC,
                "checkpoint": PVC,
            }
        ),
        "insert": obj(
            {
                "enabled": BOOL,
                "metricsPort": PORT,
                "batchMax": integer(minimum=1),
                "batchWaitSeconds": number(minimum=0),
                "bulkOps": integer(minimum=1),
                "extraEnv": ENV,
                "resources": RES,
            }
        ),
        "dashboard": obj(
            {
                "enabled": BOOL,
                "replicas": integer(minimum=1),
                "port": PORT,
                "extraEnv": ENV,
                "resources": RES,
                "service": obj(
                    {"type": {"enum": ["ClusterIP", "NodePort", "LoadBalancer"]}, "port": PORT}
                ),
                "ingress": obj(
                    {
                        "enabled": BOOL,
                        "className": string(),
                        "host": string(),
                        "annotations": {
                            "type": "object",
                            "additionalProperties": {"type": "string"},
                        },
                        "tls": {"type": "array"},
                    }
                ),
                "pdb": obj({"minAvailable": {"type": ["integer", "string"]}}),
            }
        ),
        "kafka": obj(
            {
                "name": string(pattern="^[a-z][a-z0-9-]{0,19}$"),
                "version": string(),
                "metadataVersion": string(),
                "nodePool": obj(
                    {
                        "name": string(pattern="^[a-z][a-z0-9-]{0,19}$"),
                        "replicas": integer(minimum=1),
                        "storage": obj(
                            {
                                "type": {"enum": ["persistent-claim", "ephemeral"]},
                                "size": string(),
                                "storageClass": string(),
                                "deleteClaim": BOOL,
                            },
                            ["type"],
                        ),
                        "resources": RES,
                        "jvmOptions": FREE,
                    }
                ),
                "replication": obj(
                    {
                        "defaultReplicationFactor": integer(minimum=1),
                        "minInsyncReplicas": integer(minimum=1),
                    }
                ),
                "listenerPort": PORT,
                "exporter": obj({"enabled": BOOL, "resources": RES}),
                "entityOperator": obj({"resources": RES}),
                "topics": obj(
                    {
                        "partitions": integer(minimum=1),
                        "replicas": integer(minimum=1),
                        "retentionMs": {
                            "type": "integer",
                            "const": 604800000,
                            "description": "Every topic keeps 7 days.",
                        },
                        "names": obj(
                            {
                                k: string(pattern="^[a-zA-Z0-9._-]+$")
                                for k in [
                                    "observations",
                                    "dlq",
                                    "hourlyStats",
                                    "hourlySummary",
                                    "forecasts",
                                    "forecastSkill",
                                ]
                            },
                            [
                                "observations",
                                "dlq",
                                "hourlyStats",
                                "hourlySummary",
                                "forecasts",
                                "forecastSkill",
                            ],
                        ),
                    }
                ),
            }
        ),
        "mongodb": obj(
            {
                "name": string(pattern="^[a-z][a-z0-9-]{0,30}$"),
                "version": string(pattern="^[0-9]+\\.[0-9]+\\.[0-9]+$"),
                "members": integer(minimum=1),
                "database": string(minLength=1),
                "cacheSizeGB": number(exclusiveMinimum=0),
                "storage": obj(
                    {"dataSize": string(), "logsSize": string(), "storageClass": string()}
                ),
                "resources": RES,
                "users": obj(
                    {"insert": USER, "dashboard": USER, "metrics": USER},
                    ["insert", "dashboard", "metrics"],
                ),
            }
        ),
        "monitoring": obj(
            {
                "monitors": BOOL,
                "dashboards": BOOL,
                "rules": BOOL,
                "releaseLabel": string(),
                "scrapeInterval": DURATION,
                "dashboardLabel": string(),
                "dashboardLabelValue": string(),
                "alerts": obj(
                    {
                        "stalledFor": DURATION,
                        "dlqRatio": number(minimum=0, maximum=1),
                        "lagMessages": integer(minimum=0),
                        "skillBelow": number(),
                    }
                ),
            }
        ),
        "networkPolicy": obj(
            {
                "enabled": BOOL,
                "prometheusNamespaceSelector": FREE,
                "prometheusPodSelector": FREE,
                "apiServerCIDR": string(),
                "downloadCIDR": string(),
            }
        ),
        "tests": obj({"enabled": BOOL, "timeoutSeconds": integer(minimum=1)}),
        # Subchart values belong to those charts (their schemas check them): only the switch.
        **{
            k: {"type": "object", "properties": {"enabled": BOOL}, "required": ["enabled"]}
            for k in [
                "strimzi-kafka-operator",
                "mongodb-kubernetes",
                "spark-operator",
                "kube-prometheus-stack",
            ]
        },
    },
    ["images", "replay", "data", "kafka", "mongodb", "spark"],
)
schema = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "moaa chart values",
    **schema,
}


if __name__ == "__main__":
    OUT.write_text(json.dumps(schema, indent=2) + "\n")
