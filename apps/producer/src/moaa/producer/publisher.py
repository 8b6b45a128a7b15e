"""Publish one batch to Kafka and tell, only once every delivery report is in, how it went.

Valid observations go to ``weather.observations`` (key = station id) exactly as the
feeder encoded them; records that fail validation, and the rows the parser rejected,
go to ``weather.observations.dlq`` with their reason. The producer is idempotent with
``acks=all``, so an ``ack`` means every record of the batch is durably in Kafka.
When the client's local queue is full, :meth:`Publisher.publish` waits (backpressure)
instead of dropping.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import partial

import msgspec
from confluent_kafka import KafkaError, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client import Counter as PromCounter
from prometheus_client import Gauge, Histogram

from moaa.common.observation import OBSERVATION_SCHEMA, Observation, Rejection
from moaa.common.protocol import Ack, Batch, Nack

__all__ = ["Publisher", "ensure_topics"]

log = logging.getLogger(__name__)

RECORDS = PromCounter(
    "weather_producer_records_total",
    "Records whose delivery finished, by topic and result",
    ["topic", "result"],
)
DLQ_RECORDS = PromCounter(
    "weather_producer_dlq_records_total",
    "Records sent to the dead-letter topic, by reason",
    ["reason"],
)
DELIVERY_LATENCY = Histogram(
    "weather_producer_delivery_latency_seconds",
    "Time from produce() to the broker's delivery report",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
IN_FLIGHT = Gauge(
    "weather_producer_in_flight_records", "Records produced and not yet acknowledged by Kafka"
)
BATCH_RECORDS = Histogram(
    "weather_producer_batch_records",
    "Records (observations + rejects) per batch",
    buckets=(0, 1, 10, 100, 1_000, 5_000, 10_000, 25_000, 50_000, 100_000),
)
BATCHES = PromCounter(
    "weather_producer_batches_total", "Batches answered, by result (ack, nack)", ["result"]
)
BACKPRESSURE = PromCounter(
    "weather_producer_backpressure_waits_total",
    "Times produce() waited because the local queue was full",
)

_HEADERS_OBS = [("moaa-schema", OBSERVATION_SCHEMA.encode())]
_HEADERS_DLQ = [("moaa-schema", b"rejection.v1")]
_REJECTION_DECODER = msgspec.json.Decoder(Rejection)


def ensure_topics(
    admin: AdminClient, topics: list[str], partitions: int, replication: int, retention_ms: int
) -> None:
    """Create missing topics with the given retention; existing ones are left as they are."""
    existing = set(admin.list_topics(timeout=30).topics)
    missing = [t for t in topics if t not in existing]
    if not missing:
        return
    new = [
        NewTopic(
            t,
            num_partitions=partitions,
            replication_factor=replication,
            config={"retention.ms": str(retention_ms)},
        )
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


@dataclass
class _Tracker:
    """Delivery reports of one batch; ``done`` is set when the last one arrives."""

    expected: int
    delivered: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    done: threading.Event = field(default_factory=threading.Event)

    def report(self, topic: str, started: float, err: KafkaError | None, _msg: Message) -> None:
        DELIVERY_LATENCY.observe(time.perf_counter() - started)
        IN_FLIGHT.dec()
        RECORDS.labels(topic, "delivered" if err is None else "failed").inc()
        with self.lock:
            if err is None:
                self.delivered[topic] += 1
            else:
                self.errors.append(str(err))
            if sum(self.delivered.values()) + len(self.errors) >= self.expected:
                self.done.set()


class Publisher:
    """Wraps one idempotent confluent-kafka producer and a thread serving its callbacks.

    :param config: librdkafka client config (bootstrap, security).
    :param observations_topic: where valid observations go.
    :param dlq_topic: where rejected rows and invalid records go.
    :param delivery_timeout_s: a batch not fully delivered by then is nacked (and resent).
    """

    def __init__(
        self,
        config: dict[str, str],
        observations_topic: str,
        dlq_topic: str,
        delivery_timeout_s: float = 60.0,
        queue_max_messages: int = 100_000,
        linger_ms: int = 20,
    ) -> None:
        self.observations_topic = observations_topic
        self.dlq_topic = dlq_topic
        self.delivery_timeout_s = delivery_timeout_s
        self._producer = Producer(
            {
                **config,
                "enable.idempotence": True,
                "acks": "all",
                "compression.type": "lz4",
                "linger.ms": linger_ms,
                "queue.buffering.max.messages": queue_max_messages,
                "delivery.timeout.ms": int(delivery_timeout_s * 1000),
            },
            logger=logging.getLogger("librdkafka"),
        )
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll_loop, name="kafka-poll", daemon=True)
        self._poller.start()

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.1)

    def _produce(
        self, topic: str, key: bytes | str | None, value: bytes, headers: list, tracker: _Tracker
    ) -> None:
        IN_FLIGHT.inc()
        while True:
            try:
                self._producer.produce(
                    topic,
                    value,
                    key,
                    headers=headers,
                    on_delivery=partial(tracker.report, topic, time.perf_counter()),
                )
                return
            except BufferError:
                # Local queue full: wait for deliveries to drain it rather than drop anything.
                BACKPRESSURE.inc()
                time.sleep(0.01)

    def publish_dead_letter(self, rejection: Rejection) -> bool:
        """Send one rejection (e.g. an unreadable frame) and wait for its delivery."""
        tracker = _Tracker(expected=1)
        DLQ_RECORDS.labels(rejection.reason).inc()
        self._produce(self.dlq_topic, rejection.source, rejection.to_json(), _HEADERS_DLQ, tracker)
        return tracker.done.wait(self.delivery_timeout_s) and not tracker.errors

    def publish(self, batch: Batch) -> Ack | Nack:
        """Publish every record of ``batch``; answer only when all deliveries are known."""
        total = len(batch.records) + len(batch.rejects)
        BATCH_RECORDS.observe(total)
        tracker = _Tracker(expected=total)
        if total == 0:
            tracker.done.set()
        for index, raw in enumerate(batch.records):
            value = bytes(raw)
            try:
                obs = Observation.from_json(value)
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                rejection = Rejection(
                    source=f"batch {batch.batch_id}",
                    line=index,
                    reason="invalid_record",
                    detail=str(exc),
                    raw=value[:4096].decode("utf-8", errors="replace"),
                    stage="producer",
                )
                DLQ_RECORDS.labels(rejection.reason).inc()
                self._produce(
                    self.dlq_topic, rejection.source, rejection.to_json(), _HEADERS_DLQ, tracker
                )
                continue
            self._produce(self.observations_topic, obs.station_id, value, _HEADERS_OBS, tracker)
        for index, raw in enumerate(batch.rejects):
            value = bytes(raw)
            try:
                rejection = _REJECTION_DECODER.decode(value)
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                rejection = Rejection(
                    source=f"batch {batch.batch_id}",
                    line=index,
                    reason="invalid_reject",
                    detail=str(exc),
                    raw=value[:4096].decode("utf-8", errors="replace"),
                    stage="producer",
                )
                value = rejection.to_json()
            DLQ_RECORDS.labels(rejection.reason).inc()
            self._produce(self.dlq_topic, rejection.source, value, _HEADERS_DLQ, tracker)
        # The batch is complete: flush() sends what linger.ms still holds at once (and waits
        # for it) instead of letting the last records sit out the linger delay.
        self._producer.flush(self.delivery_timeout_s)
        if not tracker.done.wait(5):
            BATCHES.labels("nack").inc()
            return Nack(
                batch.batch_id, "delivery_timeout", f"{total} records not all delivered in time"
            )
        if tracker.errors:
            BATCHES.labels("nack").inc()
            log.warning(
                "batch %s: %d deliveries failed",
                batch.batch_id,
                len(tracker.errors),
                extra={"error": tracker.errors[0]},
            )
            return Nack(batch.batch_id, "delivery_failed", tracker.errors[0])
        BATCHES.labels("ack").inc()
        return Ack(
            batch.batch_id,
            tracker.delivered[self.observations_topic],
            tracker.delivered[self.dlq_topic],
        )

    def check_kafka(self) -> tuple[bool, str]:
        """Readiness: can the producer fetch cluster metadata right now?"""
        try:
            self._producer.list_topics(timeout=2)
        except Exception as exc:
            return False, f"kafka unreachable: {exc}"
        return True, "ok"

    def close(self, timeout_s: float = 30.0) -> None:
        self._producer.flush(timeout_s)
        self._stop.set()
        self._poller.join(5)
