"""Malformed and foreign messages on the topics the jobs read: skipped with a reason, counted,
never a crash, never a lost good message (real Kafka, real FerretDB, real processes)."""

from __future__ import annotations

import json
import re
import urllib.request
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from pymongo import MongoClient

from moaa.common.kafka import ensure_topics

from .conftest import Pipeline, wait_until

pytestmark = pytest.mark.integration

HOUR = "2013-01-01T06:00:00Z"
#: (key, value) pairs no result topic should ever carry; the reason each must be skipped for.
FOREIGN: list[tuple[bytes | None, bytes | None, str]] = [
    (b"k1", b"\xff\xfe garbage", "not_json_object"),
    (b"k2", b"[1, 2, 3]", "not_json_object"),
    (None, b'{"station_id": "x", "hour": "2013-01-01T06:00:00Z"}', "no_key"),
    (b"k3", b'{"unrelated": "schema"}', "missing_field"),
    (b"k4", b'{"station_id": "x", "hour": "2013-01-01T06:00:00Z", "$set": {"a": 1}}', "unstorable_field"),
    # well-formed on its face, but MongoDB refuses the nested field name when writing
    (b"k5", b'{"station_id": "x", "hour": "2013-01-01T06:00:00Z", "issued_at": "2013-01-01T06:00:00Z", "updated_hour": "2013-01-01T06:00:00Z", "w": {"$x": 1}}', "refused_by_mongodb"),
]  # fmt: skip


def _good(collection: str, n: int) -> tuple[bytes, bytes]:
    station = f"0000000000{n}"
    value: dict[str, Any] = {"station_id": station, "hour": HOUR, "min_c": float(n), "count": 1}
    key = f"{station}|{HOUR}"
    if collection == "hourly_summary":
        value, key = (
            {"hour": f"2013-01-01T0{n}:00:00Z", "min_c": float(n)},
            f"2013-01-01T0{n}:00:00Z",
        )
    elif collection == "forecasts":
        value = {"station_id": station, "issued_at": HOUR, "points": []}
        key = f"{station}|{HOUR}"
    elif collection == "forecast_skill":
        value, key = {"station_id": station, "updated_hour": HOUR}, station
    return key.encode(), json.dumps(value).encode()


def _metric(text: str, reason: str) -> float:
    pattern = rf'^weather_insert_invalid_messages_total\{{reason="{reason}"\}} (\S+)$'
    match = re.search(pattern, text, re.M)
    return float(match.group(1)) if match else 0.0


def test_the_insert_job_skips_foreign_messages_and_stores_every_good_one(
    pipeline: Pipeline,
) -> None:
    topics = {
        pipeline.stats_topic: "hourly_stats",
        pipeline.summary_topic: "hourly_summary",
        pipeline.topic + ".forecasts": "forecasts",
        pipeline.topic + ".skill": "forecast_skill",
    }
    ensure_topics(AdminClient({"bootstrap.servers": pipeline.kafka_bootstrap}), list(topics), 1, 1)
    producer = Producer({"bootstrap.servers": pipeline.kafka_bootstrap})
    for topic, collection in topics.items():
        # good, every kind of foreign message, good again: none may block or hide another
        for key, value in (
            [_good(collection, 1)] + [f[:2] for f in FOREIGN] + [_good(collection, 2)]
        ):
            producer.produce(topic, value, key)
    assert producer.flush(30) == 0
    insert = pipeline._start(
        "insert",
        ["insert"],
        pipeline.env(
            MOAA_TOPIC_FORECASTS=pipeline.topic + ".forecasts",
            MOAA_TOPIC_FORECAST_SKILL=pipeline.topic + ".skill",
        ),
    )

    client: MongoClient[dict[str, Any]] = MongoClient(pipeline.mongo_uri)
    db = client[pipeline.database]
    try:

        def stored() -> dict[str, list[str]] | None:
            docs = {c: sorted(d["_id"] for d in db[c].find()) for c in topics.values()}
            return docs if all(len(ids) == 2 for ids in docs.values()) else None

        docs = wait_until(
            "every good message stored", stored, 90, detail=lambda: pipeline.log("insert")
        )
    finally:
        client.close()
    assert docs["hourly_stats"] == [f"0000000000{n}|{HOUR}" for n in (1, 2)]
    url = f"http://127.0.0.1:{pipeline.insert_port}/metrics"

    def counted() -> str | None:
        with urllib.request.urlopen(url, timeout=10) as resp:
            text = resp.read().decode()
        return text if _metric(text, "missing_field") >= len(topics) else None

    metrics = wait_until("the skipped messages counted", counted, 30)
    expected: dict[str, int] = {}
    for _, _, reason in FOREIGN:
        expected[reason] = expected.get(reason, 0) + len(topics)
    assert {r: _metric(metrics, r) for r in expected} == expected
    log = pipeline.log("insert")
    assert log.count("skipping a message") == sum(expected.values())
    assert '"reason": "unstorable_field"' in log
    assert insert.poll() is None, log[-3000:]
