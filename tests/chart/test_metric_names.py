"""Metric names of the dashboards and alert rules: third-party ones come from a known exporter.

Our own names (`weather_*`, `metrics_moaa_*`) are checked against a scrape of the running
components in tests/integration/test_chart_metrics.py; Kafka and MongoDB exporters cannot run
here, so their names are restricted to explicit prefixes, and the broker names must be ones
our JMX exporter rules can produce.
"""

from __future__ import annotations

import re
import runpy

import yaml

from .conftest import CHART

tools = runpy.run_path(str(CHART.parent / "tools" / "chart_metrics.py"))


def test_the_dashboards_and_rules_use_metrics() -> None:
    assert len(tools["our_names"]()) > 30
    assert "weather_producer_records_total" in tools["our_names"]()


def test_third_party_names_have_a_known_source() -> None:
    prefixes = tuple(tools["THIRD_PARTY"])
    unknown = {n for n in tools["third_party_names"]() if not n.startswith(prefixes)}
    assert not unknown, unknown


def test_broker_metrics_come_from_our_jmx_rules() -> None:
    text = (CHART / "templates" / "kafka" / "metrics-configmap.yaml").read_text()
    config = yaml.safe_load(text.split("kafka-metrics-config.yml: |", 1)[1].replace("\n    ", "\n"))
    producible = []
    for rule in config["rules"]:
        alternatives = re.findall(r"\(([A-Za-z|]+)\)", rule["pattern"])
        regex = rule["name"].lower()
        for i, alt in enumerate(alternatives, start=1):
            regex = regex.replace(f"${i}", f"({alt.lower()})")
        producible.append(re.compile(re.sub(r"\$\d", "[a-z0-9_]+", regex) + "$"))
    jmx = ("kafka_server_", "kafka_controller_", "kafka_network_", "kafka_log_")
    for name in tools["third_party_names"]():
        if name.startswith(jmx):
            assert any(p.match(name) for p in producible), name
