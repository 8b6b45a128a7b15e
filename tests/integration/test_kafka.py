"""The local Kafka is a real broker: produce, consume, create a topic and read its config."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

pytestmark = pytest.mark.integration

SEVEN_DAYS_MS = "604800000"


def test_produce_and_consume_round_trip(kafka_bootstrap: str) -> None:
    topic = f"it-roundtrip-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])[topic].result(30)

    producer = Producer(
        {"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True, "acks": "all"}
    )
    delivered: list[str] = []
    for i in range(100):
        producer.produce(
            topic,
            key=f"station-{i % 7}",
            value=f"value-{i}",
            on_delivery=lambda err, msg: delivered.append("ok" if err is None else str(err)),
        )
    assert producer.flush(30) == 0
    assert delivered == ["ok"] * 100

    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": f"it-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    seen: dict[str, str] = {}
    try:
        for _ in range(60):
            for msg in consumer.consume(num_messages=100, timeout=1.0):
                assert msg.error() is None
                seen[msg.value().decode()] = msg.key().decode()
            if len(seen) == 100:
                break
    finally:
        consumer.close()
    assert set(seen) == {f"value-{i}" for i in range(100)}
    assert seen["value-8"] == "station-1"


def test_topic_keeps_seven_days(kafka_bootstrap: str) -> None:
    topic = f"it-retention-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    new = NewTopic(
        topic, num_partitions=1, replication_factor=1, config={"retention.ms": SEVEN_DAYS_MS}
    )
    admin.create_topics([new])[topic].result(30)

    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    config = admin.describe_configs([resource])[resource].result(30)
    assert config["retention.ms"].value == SEVEN_DAYS_MS
    assert not config["retention.ms"].is_default
