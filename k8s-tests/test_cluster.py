"""The installed chart, end to end on a real cluster.

In file order: operators and custom resources become ready; topics keep 7 days; stats
documents appear in MongoDB and equal an independent DuckDB ground truth of the data sent;
Prometheus scrapes every target; deleting the producer pod, then the stats job's Spark
driver, loses nothing (the documents still equal the ground truth afterwards).
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import Cluster, wait_for

from moaa.common.hours import record_key
from moaa.common.kafka import ALL_TOPICS as TOPICS
from moaa.common.kafka import SEVEN_DAYS_MS
from moaa.dataprep.groundtruth import hourly_temperature_stats

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample" / "2013"
START = datetime(2013, 1, 1, tzinfo=UTC)
#: An hour's stats are final once the watermark (2 h) has passed its end.
FINAL_AFTER = timedelta(hours=3)
#: pytest-timeout's limit per test, above the longest test's own waits (the driver deletion:
#: 600 + 900 + 900 + 600 s), so a slow cluster fails in `wait_for` with what it waited for,
#: not with the project-wide 600 s bare "Timeout".
pytestmark = pytest.mark.timeout(3300)


def _ready(obj: dict[str, Any]) -> bool:
    conditions = obj.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def test_deployments_are_available(cluster: Cluster) -> None:
    """Every Deployment of the namespace (operators and ours) is available."""

    def unavailable() -> list[str] | None:
        deps = cluster.apps.list_namespaced_deployment(cluster.ns).items
        bad = [
            d.metadata.name
            for d in deps
            if (d.status.available_replicas or 0) < (d.spec.replicas or 0)
        ]
        return None if bad or not deps else ["ok"]

    wait_for("every Deployment to be available", unavailable, 900, 10)


def test_kafka_is_ready(cluster: Cluster) -> None:
    kafkas = wait_for(
        "the Kafka cluster to be Ready",
        lambda: [k for k in cluster.objects("kafka.strimzi.io", "v1", "kafkas") if _ready(k)],
        900,
        10,
    )
    assert kafkas[0]["status"].get("clusterId")


def test_topics_and_users_are_ready_and_keep_seven_days(cluster: Cluster) -> None:
    def topics() -> list[dict[str, Any]] | None:
        items = cluster.objects("kafka.strimzi.io", "v1", "kafkatopics")
        mine = [t for t in items if t["spec"].get("topicName") in TOPICS]
        return mine if len(mine) == len(TOPICS) and all(_ready(t) for t in mine) else None

    for topic in wait_for("the six topics to be Ready", topics, 600):
        # Ready means the topic operator applied spec.config to the broker.
        assert int(topic["spec"]["config"]["retention.ms"]) == SEVEN_DAYS_MS
    users = wait_for(
        "the KafkaUsers to be Ready",
        lambda: (
            (u := cluster.objects("kafka.strimzi.io", "v1", "kafkausers"))
            and all(map(_ready, u))
            and u
        ),
        600,
    )
    assert {"producer", "stats", "forecast", "insert", "dashboard"} <= {
        u["metadata"]["labels"]["app.kubernetes.io/component"] for u in users
    }


def test_mongodb_is_running(cluster: Cluster) -> None:
    wait_for(
        "the MongoDBCommunity to reach phase Running",
        lambda: [
            m
            for m in cluster.objects("mongodbcommunity.mongodb.com", "v1", "mongodbcommunity")
            if m.get("status", {}).get("phase") == "Running"
        ],
        900,
        10,
    )


def test_spark_applications_are_running(cluster: Cluster) -> None:
    def running() -> list[str] | None:
        apps = cluster.objects("sparkoperator.k8s.io", "v1beta2", "sparkapplications")
        states = {
            a["metadata"]["name"]: a.get("status", {}).get("applicationState", {}).get("state")
            for a in apps
        }
        return list(states) if len(states) >= 2 and set(states.values()) == {"RUNNING"} else None

    wait_for("the stats and forecast SparkApplications to be RUNNING", running, 900, 10)


# -- data ------------------------------------------------------------------------------------


def _replay_hour(cluster: Cluster) -> datetime:
    """The feeder's last acknowledged hour (its metric), UTC."""
    text = cluster.python(
        "ingest",
        "feeder",
        "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:9300/metrics').read().decode())",
    )
    match = re.search(r"^weather_feeder_replay_hour_timestamp_seconds (\S+)$", text, re.M)
    return datetime.fromtimestamp(float(match.group(1)) if match else 0, tz=UTC)


def _stored_stats(cluster: Cluster) -> dict[str, dict[str, Any]]:
    code = (
        "import os, json; from pymongo import MongoClient; "
        "db = MongoClient(os.environ['MOAA_MONGO_URI'])[os.environ['MOAA_MONGO_DATABASE']]; "
        "print(json.dumps(list(db.hourly_stats.find({}, {'min_c': 1, 'max_c': 1, 'mean_c': 1, 'count': 1}))))"
    )
    return {d["_id"]: d for d in json.loads(cluster.python("insert", "insert", code))}


def _truth_until(end: datetime) -> dict[str, tuple[float, float, float, int]]:
    return {
        record_key(station, hour): value
        for (station, hour), value in hourly_temperature_stats(SAMPLE).items()
        if START <= hour < end
    }


def _mismatches(
    stored: dict[str, dict[str, Any]], truth: dict[str, tuple[float, float, float, int]]
) -> list[str]:
    problems = [f"missing {k}" for k in truth.keys() - stored.keys()]
    for key in truth.keys() & stored.keys():
        lo, hi, mean, count = truth[key]
        doc = stored[key]
        if (doc["min_c"], doc["max_c"], doc["count"]) != (lo, hi, count) or not math.isclose(
            doc["mean_c"], mean, abs_tol=1e-9
        ):
            problems.append(f"{key}: stored {doc} != truth {truth[key]}")
    return problems


def _settled_until(cluster: Cluster, end: datetime, timeout_s: float = 600) -> None:
    """Every final hour before ``end`` is stored and equals the ground truth."""
    truth = _truth_until(end)
    assert truth, f"no ground truth before {end}"
    wait_for(
        f"stats before {end:%Y-%m-%d %H:00} to equal the ground truth",
        lambda: _mismatches(_stored_stats(cluster), truth) == [] or None,
        timeout_s,
        10,
    )


def _final_hours_after(cluster: Cluster, at_least: datetime, timeout_s: float = 900) -> datetime:
    """Wait until the replay is past ``at_least`` + the watermark; return the final bound."""
    replay = wait_for(
        f"the replay to pass {at_least:%Y-%m-%d %H:00}",
        lambda: (h := _replay_hour(cluster)) > at_least + FINAL_AFTER and h,
        timeout_s,
        10,
    )
    return replay - FINAL_AFTER


def test_stats_in_mongodb_match_the_data_sent(cluster: Cluster) -> None:
    """The data Job prepared the bundled sample; what reached MongoDB equals DuckDB's figures
    straight from the CSV files, for every hour the watermark has closed."""
    end = _final_hours_after(cluster, START + timedelta(hours=6))
    _settled_until(cluster, end)


def test_prometheus_scrapes_every_target(cluster: Cluster) -> None:
    services = cluster.core.list_namespaced_service(cluster.ns).items
    prom = [
        s
        for s in services
        if any(p.port == 9090 for p in s.spec.ports or [])
        and "prometheus" in s.metadata.name
        and "operated" not in s.metadata.name
    ]
    if not prom:
        pytest.skip("no Prometheus Service in the namespace (kube-prometheus-stack disabled)")
    port = next(p for p in prom[0].spec.ports if p.port == 9090)
    monitors = {
        f"{kind}/{cluster.ns}/{m['metadata']['name']}"
        for kind, plural in (("podMonitor", "podmonitors"), ("serviceMonitor", "servicemonitors"))
        for m in cluster.objects("monitoring.coreos.com", "v1", plural)
        # Ours only: kube-prometheus-stack's own monitors carry the same instance label.
        if m["metadata"]["labels"].get("app.kubernetes.io/instance") == cluster.release
        and m["metadata"]["labels"].get("app.kubernetes.io/part-of") == "moaa"
    }
    assert monitors

    def all_up() -> list[dict[str, Any]] | None:
        raw = cluster.core.connect_get_namespaced_service_proxy_with_path(
            f"{prom[0].metadata.name}:{port.name or port.port}", cluster.ns, path="api/v1/targets"
        )
        targets = json.loads(raw if isinstance(raw, str) else raw.decode())["data"]["activeTargets"]
        ours = [t for t in targets if t["scrapePool"].rsplit("/", 1)[0] in monitors]
        pools = {t["scrapePool"].rsplit("/", 1)[0] for t in ours}
        healthy = all(t["health"] == "up" for t in ours)
        return ours if pools == monitors and healthy else None

    wait_for("Prometheus to scrape every target of our monitors (all up)", all_up, 600, 15)


def test_deleting_the_producer_pod_loses_nothing(cluster: Cluster) -> None:
    pod = wait_for("the ingest pod", lambda: cluster.ready_pod("ingest"), 300)
    before = _replay_hour(cluster)
    cluster.core.delete_namespaced_pod(pod.metadata.name, cluster.ns)
    wait_for(
        "a new ingest pod to be ready",
        lambda: (p := cluster.ready_pod("ingest")) and p.metadata.uid != pod.metadata.uid and p,
        600,
    )
    end = _final_hours_after(cluster, before + timedelta(hours=6))
    _settled_until(cluster, end)


def test_deleting_the_stats_driver_loses_nothing(cluster: Cluster) -> None:
    driver = wait_for(
        "the stats driver", lambda: cluster.ready_pod("stats", "moaa/spark-role=driver"), 600
    )
    before = _replay_hour(cluster)
    cluster.core.delete_namespaced_pod(driver.metadata.name, cluster.ns)
    wait_for(
        "a new stats driver (restartPolicy Always) to be ready",
        lambda: (
            (p := cluster.ready_pod("stats", "moaa/spark-role=driver"))
            and p.metadata.uid != driver.metadata.uid
            and p
        ),
        900,
        10,
    )
    end = _final_hours_after(cluster, before + timedelta(hours=6))
    _settled_until(cluster, end)
