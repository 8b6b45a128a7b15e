"""The metric names the chart's Grafana dashboards and alert rules use.

Shared by the offline chart tests (third-party names come from a known exporter) and the
integration test that scrapes the running components (our names are really exposed).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

CHART = Path(__file__).resolve().parents[1] / "moaa"
#: Our metrics: the apps' `weather_*` and the Spark drivers' PrometheusServlet series.
OURS = re.compile(r"\b(?:weather|metrics_moaa)_[A-Za-z0-9_]+")
#: Metrics of third-party exporters we cannot run here, by explicit prefix and source.
_JMX = "Kafka brokers, JMX exporter rules in templates/kafka/metrics-configmap.yaml"
THIRD_PARTY = {
    "kafka_server_": _JMX,
    "kafka_controller_": _JMX,
    "kafka_network_": _JMX,
    "kafka_log_": _JMX,
    "kafka_consumergroup_": "Strimzi's Kafka exporter (spec.kafkaExporter)",
    "kafka_topic_": "Strimzi's Kafka exporter (spec.kafkaExporter)",
    "mongodb_": "the MongoDB agent's Prometheus endpoint (MongoDBCommunity spec.prometheus)",
}
THEIRS = re.compile(r"\b(?:kafka|mongodb)_[A-Za-z0-9_]+")
_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def expressions() -> list[str]:
    """Every PromQL expression of the dashboards (files/dashboards) and the alert rules."""
    exprs = []
    for path in sorted((CHART / "files" / "dashboards").glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            exprs += [t["expr"] for t in panel.get("targets", [])]
    rules = (CHART / "templates" / "monitoring" / "prometheusrule.yaml").read_text()
    exprs += re.findall(r"expr: \|?\n?((?:.+\n)+?)\s+(?:for|labels):", rules)
    return exprs


def names(pattern: re.Pattern[str]) -> set[str]:
    return {m for e in expressions() for m in pattern.findall(e)}


def our_names() -> set[str]:
    return names(OURS)


def third_party_names() -> set[str]:
    return names(THEIRS)


def exposed(name: str, available: set[str]) -> bool:
    """Is ``name`` (as written in PromQL) among the scraped series/family names?"""
    if name in available:
        return True
    base = next((name.removesuffix(s) for s in _HISTOGRAM_SUFFIXES if name.endswith(s)), None)
    return base is not None and base in available
