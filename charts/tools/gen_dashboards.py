"""Generate the Grafana dashboards of the moaa chart (charts/moaa/files/dashboards/*.json).

The dashboards are data, but writing panel JSON by hand is error-prone; this script is the
source. Run ``python charts/tools/gen_dashboards.py`` after editing; a test
(tests/chart/test_dashboards.py) fails when the committed JSON differs from its output.
Every PromQL expression here names metrics that tests/integration/test_chart_metrics.py
checks against a scrape of the running components (ours) or an explicit prefix list
(third-party exporters).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "moaa" / "files" / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
STATS = "metrics_moaa_stats_driver_spark_streaming"
QUERIES = ("hourly_stats", "hourly_summary")


def _target(expr: str, legend: str, ref: str) -> dict:
    return {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "refId": ref}


def panel(
    title: str,
    targets: list[tuple[str, str]],
    unit: str = "short",
    kind: str = "timeseries",
    desc: str = "",
) -> dict:
    return {
        "type": kind,
        "title": title,
        "description": desc,
        "datasource": DATASOURCE,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": [_target(e, leg, chr(ord("A") + i)) for i, (e, leg) in enumerate(targets)],
    }


def row(title: str) -> dict:
    return {"type": "row", "title": title, "collapsed": False, "panels": []}


def dashboard(uid: str, title: str, items: list[dict]) -> dict:
    panels, x, y = [], 0, 0
    for i, source in enumerate(items, start=1):
        item = {**source, "id": i}
        if item["type"] == "row":
            if x:
                x, y = 0, y + 8
            item["gridPos"] = {"h": 1, "w": 24, "x": 0, "y": y}
            y += 1
        else:
            item["gridPos"] = {"h": 8, "w": 12, "x": x, "y": y}
            x, y = (12, y) if x == 0 else (0, y + 8)
        panels.append(item)
    return {
        "uid": uid,
        "title": title,
        "tags": ["moaa"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "type": "datasource",
                    "query": "prometheus",
                    "label": "Prometheus",
                    "current": {"text": "Prometheus", "value": "prometheus"},
                }
            ]
        },
        "panels": panels,
    }


def p95(metric: str) -> str:
    return f"histogram_quantile(0.95, sum by (le) (rate({metric}_bucket[5m])))"


def overview() -> dict:
    return dashboard(
        "moaa-overview",
        "moaa / Pipeline overview",
        [
            row("Throughput per stage"),
            panel(
                "Records per second, stage by stage",
                [
                    ("sum(rate(weather_feeder_records_sent_total[5m]))", "feeder sent"),
                    (
                        'sum(rate(weather_producer_records_total{result="delivered"}[5m]))',
                        "producer delivered",
                    ),
                    (f"sum({STATS}_hourly_stats_inputRate_total_Value)", "stats input"),
                    (f"sum({STATS}_hourly_stats_processingRate_total_Value)", "stats processed"),
                    ("sum(rate(weather_insert_messages_total[5m]))", "insert consumed"),
                    (
                        "sum by (collection) (rate(weather_insert_documents_total[5m]))",
                        "upserted {{collection}}",
                    ),
                ],
                "ops",
            ),
            panel(
                "Replay position (data time) and hours per minute",
                [
                    (
                        "weather_feeder_replay_hour_timestamp_seconds * 1000",
                        "last acknowledged hour",
                    ),
                ],
                "dateTimeAsIso",
            ),
            panel(
                "Hours replayed per minute",
                [("rate(weather_feeder_hours_sent_total[5m]) * 60", "hours/min")],
            ),
            panel("Records per batch (p95)", [(p95("weather_producer_batch_records"), "p95")]),
            row("Lag"),
            panel(
                "Consumer lag (messages)",
                [
                    (
                        "sum by (consumergroup, topic) (kafka_consumergroup_lag)",
                        "{{consumergroup}} {{topic}}",
                    )
                ],
            ),
            panel(
                "Producer in flight and backpressure",
                [
                    ("sum(weather_producer_in_flight_records)", "in flight"),
                    (
                        "sum(rate(weather_producer_backpressure_waits_total[5m]))",
                        "backpressure waits/s",
                    ),
                ],
            ),
            row("End-to-end latency"),
            panel(
                "Latency per stage (p95)",
                [
                    (p95("weather_feeder_ack_latency_seconds"), "feeder send → ack"),
                    (p95("weather_producer_delivery_latency_seconds"), "producer → Kafka delivery"),
                    (f"max({STATS}_hourly_stats_latency_Value) / 1000", "stats micro-batch"),
                    (p95("weather_insert_result_age_seconds"), "result in Kafka → MongoDB"),
                ],
                "s",
            ),
            panel(
                "MongoDB bulk write (p95)",
                [(p95("weather_insert_write_latency_seconds"), "p95")],
                "s",
            ),
            row("Errors and dead letters"),
            panel(
                "Dead letters per second by reason",
                [("sum by (reason) (rate(weather_producer_dlq_records_total[5m]))", "{{reason}}")],
                "ops",
            ),
            panel(
                "Errors",
                [
                    (
                        'sum(rate(weather_producer_records_total{result="failed"}[5m]))',
                        "delivery failed",
                    ),
                    ("sum by (reason) (rate(weather_feeder_nacks_total[5m]))", "nack {{reason}}"),
                    ("sum(rate(weather_feeder_reconnects_total[5m]))", "feeder reconnects"),
                    (
                        "sum by (result) (rate(weather_producer_frames_total"
                        '{result!~"batch|hello"}[5m]))',
                        "frames {{result}}",
                    ),
                    ("sum(rate(weather_insert_invalid_messages_total[5m]))", "insert invalid"),
                ],
                "ops",
            ),
            row("Forecast"),
            panel(
                "Forecast skill by lead (1 = perfect, 0 = persistence)",
                [("weather_forecast_skill", "lead {{lead}}")],
            ),
            panel(
                "Forecast MAE (°C)",
                [("weather_forecast_mae_celsius", "{{predictor}} lead {{lead}}")],
                "celsius",
            ),
            panel(
                "Forecasts and trainings",
                [
                    ("sum(rate(weather_forecasts_published_total[5m]))", "forecasts/s"),
                    ("sum(increase(weather_forecast_trainings_total[1h]))", "trainings/h"),
                    ("max(weather_forecast_model_version)", "model version"),
                ],
            ),
            panel(
                "Forecast lag (hours behind the newest hour seen; 3 = keeping up)",
                [("max(weather_forecast_lag_hours)", "lag")],
            ),
            panel(
                "Last issued forecast hour",
                [("weather_forecast_issued_hour_timestamp_seconds * 1000", "issued")],
                "dateTimeAsIso",
            ),
            row("Builds"),
            panel(
                "Running builds",
                [("weather_build_info", "{{component}} {{version}}")],
                kind="table",
            ),
        ],
    )


def spark() -> dict:
    items: list[dict] = []
    for q in QUERIES:
        items += [
            row(f"Stats job: query {q}"),
            panel(
                "Input and processing rate",
                [
                    (f"{STATS}_{q}_inputRate_total_Value", "input rows/s"),
                    (f"{STATS}_{q}_processingRate_total_Value", "processed rows/s"),
                ],
                "ops",
            ),
            panel("Micro-batch duration", [(f"{STATS}_{q}_latency_Value", "batch duration")], "ms"),
            panel(
                "State store",
                [
                    (f"{STATS}_{q}_states_rowsTotal_Value", "rows"),
                    (f"{STATS}_{q}_states_usedBytes_Value", "bytes"),
                ],
            ),
            panel(
                "Event-time watermark",
                [(f"{STATS}_{q}_eventTime_watermark_Value", "watermark")],
                "dateTimeAsIso",
            ),
        ]
    return dashboard("moaa-spark", "moaa / Spark streaming", items)


def kafka() -> dict:
    return dashboard(
        "moaa-kafka",
        "moaa / Kafka",
        [
            row("Topics"),
            panel(
                "Messages in per topic",
                [
                    (
                        "sum by (topic) "
                        "(rate(kafka_server_brokertopicmetrics_messagesin_total[5m]))",
                        "{{topic}}",
                    )
                ],
                "ops",
            ),
            panel(
                "Bytes in and out",
                [
                    ("sum(rate(kafka_server_brokertopicmetrics_bytesin_total[5m]))", "in"),
                    ("sum(rate(kafka_server_brokertopicmetrics_bytesout_total[5m]))", "out"),
                ],
                "Bps",
            ),
            panel(
                "Consumer lag per group",
                [("sum by (consumergroup) (kafka_consumergroup_lag)", "{{consumergroup}}")],
            ),
            panel(
                "Log size per topic",
                [("sum by (topic) (kafka_log_log_size)", "{{topic}}")],
                "bytes",
            ),
            row("Broker health"),
            panel(
                "Partitions",
                [
                    (
                        "sum(kafka_server_replicamanager_underreplicatedpartitions)",
                        "under-replicated",
                    ),
                    ("sum(kafka_controller_kafkacontroller_offlinepartitionscount)", "offline"),
                    ("sum(kafka_server_replicamanager_partitioncount)", "partitions"),
                ],
            ),
            panel(
                "Requests per second",
                [
                    (
                        "sum by (request) (rate(kafka_network_requestmetrics_requests_total[5m]))",
                        "{{request}}",
                    )
                ],
                "reqps",
            ),
        ],
    )


def mongodb() -> dict:
    return dashboard(
        "moaa-mongodb",
        "moaa / MongoDB",
        [
            row("Server"),
            panel(
                "Operations per second",
                [
                    (
                        "sum by (legacy_op_type) (rate(mongodb_ss_opcounters[5m]))",
                        "{{legacy_op_type}}",
                    )
                ],
                "ops",
            ),
            panel("Connections", [('sum(mongodb_ss_connections{conn_type="current"})', "current")]),
            panel(
                "Resident memory",
                [("sum(mongodb_ss_mem_resident) * 1024 * 1024", "resident")],
                "bytes",
            ),
            row("moaa writes"),
            panel(
                "Documents upserted per collection",
                [
                    (
                        "sum by (collection) (rate(weather_insert_documents_total[5m]))",
                        "{{collection}}",
                    )
                ],
                "ops",
            ),
        ],
    )


DASHBOARDS = {"overview": overview, "spark": spark, "kafka": kafka, "mongodb": mongodb}


def render() -> dict[str, str]:
    return {
        f"{name}.json": json.dumps(build(), indent=1) + "\n" for name, build in DASHBOARDS.items()
    }


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        (OUT / name).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
