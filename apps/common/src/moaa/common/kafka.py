"""Kafka client settings shared by every component, mapped to librdkafka keys.

Locally the broker is plaintext on loopback; in Kubernetes the chart sets SCRAM-SHA-512
over TLS with the Strimzi cluster CA (``MOAA_KAFKA_SECURITY_PROTOCOL=SASL_SSL`` …).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

import msgspec
from pydantic import Field, SecretStr

from moaa.common.errors import MoaaError
from moaa.common.records import STATS_PROGRESS_KEY, StatsProgress
from moaa.common.settings import MoaaSettings

__all__ = [
    "ALL_TOPICS",
    "SEVEN_DAYS_MS",
    "TOPIC_DLQ",
    "TOPIC_FORECASTS",
    "TOPIC_FORECAST_SKILL",
    "TOPIC_HOURLY_STATS",
    "TOPIC_HOURLY_SUMMARY",
    "TOPIC_OBSERVATIONS",
    "KafkaSettings",
    "kafka_lag",
    "publish_progress",
]

# Every topic of the pipeline, named once (each stage's settings default to these).
TOPIC_OBSERVATIONS = "weather.observations"
TOPIC_DLQ = "weather.observations.dlq"
TOPIC_HOURLY_STATS = "weather.hourly-stats"
TOPIC_HOURLY_SUMMARY = "weather.hourly-summary"
TOPIC_FORECASTS = "weather.forecasts"
TOPIC_FORECAST_SKILL = "weather.forecast-skill"
#: What a deployment must create (the chart's KafkaTopics), each kept ``SEVEN_DAYS_MS``.
ALL_TOPICS = frozenset(
    {
        TOPIC_OBSERVATIONS,
        TOPIC_DLQ,
        TOPIC_HOURLY_STATS,
        TOPIC_HOURLY_SUMMARY,
        TOPIC_FORECASTS,
        TOPIC_FORECAST_SKILL,
    }
)
SEVEN_DAYS_MS = 7 * 24 * 3600 * 1000


class KafkaSettings(MoaaSettings):
    """How to reach Kafka (``MOAA_KAFKA_*``)."""

    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers.")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Kafka security protocol (SASL_SSL in Kubernetes)."
    )
    kafka_sasl_mechanism: str = Field(
        "SCRAM-SHA-512", description="SASL mechanism when SASL is on."
    )
    kafka_username: str = Field("", description="SASL user (the KafkaUser name in Kubernetes).")
    kafka_password: SecretStr = Field(SecretStr(""), description="SASL password (from a Secret).")
    kafka_ca_location: str = Field("", description="PEM CA file for TLS (the Strimzi cluster CA).")
    topic_partitions: int = Field(3, description="Partitions of the topics a component creates.")
    topic_replication_factor: int = Field(1, description="Replication factor of topics it creates.")
    topic_retention_ms: int = Field(
        SEVEN_DAYS_MS, description="retention.ms of topics it creates (7 days)."
    )

    def kafka_client_config(self) -> dict[str, str]:
        """librdkafka configuration for confluent-kafka clients."""
        conf = {
            "bootstrap.servers": self.kafka_bootstrap,
            "security.protocol": self.kafka_security_protocol,
        }
        if self.kafka_security_protocol.startswith("SASL"):
            conf |= {
                "sasl.mechanism": self.kafka_sasl_mechanism,
                "sasl.username": self.kafka_username,
                "sasl.password": self.kafka_password.get_secret_value(),
            }
        if self.kafka_ca_location:
            conf["ssl.ca.location"] = self.kafka_ca_location
        return conf


log = logging.getLogger(__name__)


def ensure_topics(
    admin: Any,
    topics: list[str],
    partitions: int,
    replication: int,
    retention_ms: int = SEVEN_DAYS_MS,
) -> None:
    """Create missing topics with the given retention; existing ones are left as they are.

    ``admin`` is a ``confluent_kafka.admin.AdminClient`` (imported by the caller's package:
    moaa-common itself does not depend on confluent-kafka).
    """
    from confluent_kafka import KafkaError  # noqa: PLC0415 - optional dependency of common
    from confluent_kafka.admin import NewTopic  # noqa: PLC0415

    existing = set(admin.list_topics(timeout=30).topics)
    missing = [t for t in topics if t not in existing]
    if not missing:
        return
    config = {"retention.ms": str(retention_ms)}
    new = [
        NewTopic(t, num_partitions=partitions, replication_factor=replication, config=config)
        for t in missing
    ]
    for topic, future in admin.create_topics(new).items():
        try:
            future.result(30)
            log.info(
                "created topic %s",
                topic,
                extra={"topic": topic, "partitions": partitions, "retention_ms": retention_ms},
            )
        except Exception as exc:
            if getattr(exc.args[0], "code", lambda: None)() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise


def kafka_lag(
    client_config: dict[str, str], group: str, topics: list[str], timeout_s: float
) -> Callable[[], dict[str, Any]]:
    """A function returning the lag of ``group`` on ``topics``: high watermark − committed.

    One consumer is created lazily and reused; it never joins the group (it only reads the
    group's committed offsets), so it cannot disturb the insert job.
    """
    from confluent_kafka import Consumer, TopicPartition  # noqa: PLC0415 - optional at import

    state: dict[str, Any] = {}

    def lag() -> dict[str, Any]:
        try:
            return _lag()
        except Exception as exc:  # KafkaException, timeouts: Kafka is down, say so
            return {"group": group, "total": None, "partitions": [], "error": str(exc)[:200]}

    def _lag() -> dict[str, Any]:
        consumer = state.get("consumer")
        if consumer is None:
            consumer = Consumer(
                {
                    **client_config,
                    "group.id": group,
                    "enable.auto.commit": False,
                    "socket.timeout.ms": int(timeout_s * 1000),
                },
                logger=logging.getLogger("librdkafka"),
            )
            state["consumer"] = consumer
        meta = consumer.list_topics(timeout=timeout_s)
        parts = [
            TopicPartition(topic, p)
            for topic in topics
            if topic in meta.topics
            for p in meta.topics[topic].partitions
        ]
        committed = consumer.committed(parts, timeout=timeout_s) if parts else []
        rows = []
        for tp in committed:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(tp.topic, tp.partition), timeout=timeout_s, cached=False
            )
            done = tp.offset if tp.offset >= 0 else None
            rows.append(
                {
                    "topic": tp.topic,
                    "partition": tp.partition,
                    "committed": done,
                    "high": high,
                    "lag": max(high - (done if done is not None else low), 0),
                }
            )
        rows.sort(key=lambda r: (r["topic"], r["partition"]))
        return {"group": group, "total": sum(r["lag"] for r in rows), "partitions": rows}

    return lag


def publish_progress(
    producer: Any, topic: str, hour: datetime, batch: int, timeout_s: float = 60.0
) -> int:
    """Write a :class:`~moaa.common.records.StatsProgress` mark (``hour``, ``batch``) to every
    partition of ``topic`` and wait until Kafka has them all; returns the partitions.

    ``producer`` is a ``confluent_kafka.Producer`` whose earlier records of the batch are
    already delivered (the marks must come after them). An undelivered mark raises
    :class:`~moaa.common.errors.MoaaError`: the caller's batch then fails and is redone.
    """
    meta = producer.list_topics(topic, timeout=timeout_s).topics.get(topic)
    partitions = sorted(meta.partitions) if meta is not None and not meta.error else []
    if not partitions:
        raise MoaaError(f"cannot mark progress on {topic}: the topic has no partitions")
    failed: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            failed.append(str(err))

    for p in partitions:
        mark = StatsProgress(hour=hour, partition=p, partitions=len(partitions), batch=batch)
        producer.produce(
            topic,
            msgspec.json.encode(mark),
            STATS_PROGRESS_KEY.encode(),
            partition=p,
            on_delivery=delivered,
        )
    left = producer.flush(timeout_s)
    if left or failed:
        raise MoaaError(
            f"the progress marks of batch {batch} on {topic} were not delivered within "
            f"{timeout_s:g} s ({left} pending; {failed[:1] or 'no error'})"
        )
    return len(partitions)
