"""Publish batches to Kafka and tell, only once every delivery report is in, how each went.

Valid observations go to ``weather.observations`` (key = station id) exactly as the
feeder encoded them; records that fail validation, and the rows the parser rejected,
go to ``weather.observations.dlq`` with their reason. The producer is idempotent with
``acks=all``, so an ``ack`` means every record of the batch is durably in Kafka.

:meth:`Publisher.submit` produces a batch without waiting and returns a :class:`Receipt`;
:meth:`Publisher.outcome` waits for that receipt's last delivery report. Separating the
two lets a connection produce the next batch while the previous one is in flight. Delivery
reports are served by whoever is busy: while a batch is being produced, ``submit`` serves
them itself every few hundred records (the callbacks then run in the thread that already
holds the GIL, instead of a second thread taking it back and forth, which cost about a
fifth of the producer's throughput); otherwise a background thread serves them. The
per-record callback is kept minimal.
When the client's local queue is full, ``submit`` waits (backpressure), never drops.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any, Protocol

import msgspec
from confluent_kafka import KafkaError, Message, Producer
from prometheus_client import Counter as PromCounter
from prometheus_client import Gauge, Histogram

from moaa.common.observation import OBSERVATION_SCHEMA, REJECTION_SCHEMA, Observation, Rejection
from moaa.common.protocol import Ack, Batch, Nack

__all__ = ["KafkaClient", "Publisher", "Receipt", "producer_rejection"]

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
    "Per batch: time from produce() to the delivery report of its last record",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
IN_FLIGHT = Gauge("weather_producer_in_flight_records", "Records produced and not yet delivered")
BATCH_RECORDS = Histogram(
    "weather_producer_batch_records",
    "Records (observations + rejects) per batch",
    buckets=(0, 1, 10, 100, 1_000, 5_000, 10_000, 25_000, 50_000, 100_000),
)
BATCHES = PromCounter("weather_producer_batches_total", "Batches answered, by result", ["result"])
BACKPRESSURE = PromCounter(
    "weather_producer_backpressure_waits_total",
    "Times produce() waited because the local queue was full",
)

_HEADERS_OBS = [("moaa-schema", OBSERVATION_SCHEMA.encode())]
_HEADERS_DLQ = [("moaa-schema", REJECTION_SCHEMA.encode())]
_REJECTION_DECODER = msgspec.json.Decoder(Rejection)
_OBSERVATIONS_DECODER = msgspec.json.Decoder(list[Observation])
#: While producing a batch, serve delivery reports every this many records.
_SERVE_EVERY = 256


class Receipt:
    """Delivery reports of one batch; :attr:`done` is set when the last one has arrived."""

    def __init__(self, batch_id: str) -> None:
        self.batch_id = batch_id
        self.produced: Counter[str] = Counter()
        self.errors: list[str] = []
        self.done = threading.Event()
        self._failed: Counter[str] = Counter()
        self._reported = 0
        self._total: int | None = None
        self._lock = threading.Lock()

    def report(self, err: KafkaError | None, msg: Message) -> None:
        """librdkafka delivery callback, once per record, in the delivery thread.

        Kept minimal on purpose; metrics are updated once per batch in :meth:`_finish`.
        """
        with self._lock:
            if err is not None:
                topic = msg.topic() or "?"
                self.errors.append(f"{topic}: {err}")
                self._failed[topic] += 1
            self._reported += 1
            if self._total is not None and self._reported >= self._total:
                self._finish(msg.latency())

    def seal(self) -> None:
        """Every record of the batch has been produced: from now on ``done`` can be set."""
        with self._lock:
            self._total = sum(self.produced.values())
            if self._reported >= self._total:
                self._finish(None)

    def _finish(self, last_latency: float | None) -> None:
        for topic, count in self.produced.items():
            RECORDS.labels(topic, "delivered").inc(count - self._failed[topic])
            if self._failed[topic]:
                RECORDS.labels(topic, "failed").inc(self._failed[topic])
        if last_latency is not None:
            DELIVERY_LATENCY.observe(last_latency)
        self.done.set()


class KafkaClient(Protocol):
    """What :class:`Publisher` uses of ``confluent_kafka.Producer`` (the unit tests inject a
    fake that delivers, fails or fills its queue on demand)."""

    def produce(
        self,
        topic: str,
        value: Any = ...,
        key: Any = ...,
        *,
        headers: Any = ...,
        on_delivery: Callable[[KafkaError | None, Message], None] = ...,
    ) -> None: ...

    def poll(self, timeout: float = ...) -> int: ...

    def flush(self, timeout: float = ...) -> int: ...

    def list_topics(self, topic: str | None = ..., timeout: float = ...) -> Any: ...

    def __len__(self) -> int: ...


class Publisher:
    """One idempotent confluent-kafka producer, and a thread serving its delivery reports.

    :param config: librdkafka client config (bootstrap, security).
    :param observations_topic: where valid observations go.
    :param dlq_topic: where rejected rows and invalid records go.
    :param delivery_timeout_s: a batch not fully delivered by then is nacked (and resent).
    :param queue_max_messages: local queue size; a full queue makes ``submit`` wait.
    :param linger_ms: librdkafka ``linger.ms``.
    :param client: the Kafka client to use instead of one built from ``config``.
    """

    def __init__(
        self,
        config: dict[str, str],
        observations_topic: str,
        dlq_topic: str,
        delivery_timeout_s: float = 60.0,
        queue_max_messages: int = 100_000,
        linger_ms: int = 10,
        client: KafkaClient | None = None,
    ) -> None:
        self.observations_topic = observations_topic
        self.dlq_topic = dlq_topic
        self.delivery_timeout_s = delivery_timeout_s
        # (not `client or …`: a client's len() is its queue, 0 when empty)
        self._producer: KafkaClient
        if client is not None:
            self._producer = client
        else:
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
        IN_FLIGHT.set_function(lambda: len(self._producer))
        self._stop = threading.Event()
        self._submitting = 0  # batches being produced right now (they serve the reports)
        self._submitting_lock = threading.Lock()
        self._produced = 0  # records produced (approximate with several connections)
        self._poller = threading.Thread(target=self._poll_loop, name="kafka-delivery", daemon=True)
        self._poller.start()

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            if self._submitting:
                self._stop.wait(0.002)  # submit() is serving the reports
            else:
                self._producer.poll(0.05)

    def _produce(
        self,
        topic: str,
        key: str | None,
        value: bytes | msgspec.Raw,
        headers: list,
        receipt: Receipt,
    ) -> None:
        while True:
            try:
                self._producer.produce(
                    topic, value, key, headers=headers, on_delivery=receipt.report
                )
                break
            except BufferError:
                # Local queue full: wait for deliveries to make room; never drop a record.
                BACKPRESSURE.inc()
                self._producer.poll(0.005)
        receipt.produced[topic] += 1
        self._produced += 1
        if self._produced % _SERVE_EVERY == 0:
            self._producer.poll(0)

    def _dead_letter(
        self, rejection: Rejection, receipt: Receipt, value: bytes | None = None
    ) -> None:
        DLQ_RECORDS.labels(rejection.reason).inc()
        self._produce(
            self.dlq_topic, rejection.source, value or rejection.to_json(), _HEADERS_DLQ, receipt
        )

    def submit(self, batch: Batch) -> Receipt:
        """Produce every record of ``batch`` (validated) without waiting for delivery."""
        BATCH_RECORDS.observe(len(batch.records) + len(batch.rejects))
        receipt = Receipt(batch.batch_id)
        with self._submitting_lock:
            self._submitting += 1
        try:
            self._submit(batch, receipt)
        finally:
            with self._submitting_lock:
                self._submitting -= 1
        receipt.seal()
        return receipt

    def _submit(self, batch: Batch, receipt: Receipt) -> None:
        try:  # every record valid (the rule): one decode for the batch
            valid = _OBSERVATIONS_DECODER.decode(b"[" + b",".join(batch.records) + b"]")
        except (msgspec.ValidationError, msgspec.DecodeError):
            valid = None  # find which, one by one
        for index, raw in enumerate(batch.records):
            if valid is not None:
                obs = valid[index]
            else:
                try:
                    obs = Observation.from_json(bytes(raw))
                except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                    self._dead_letter(
                        producer_rejection(
                            f"batch {batch.batch_id}", index, "invalid_record", str(exc), raw
                        ),
                        receipt,
                    )
                    continue
            # the record as the feeder encoded it (msgspec.Raw is a read-only buffer)
            self._produce(self.observations_topic, obs.station_id, raw, _HEADERS_OBS, receipt)
        for index, raw in enumerate(batch.rejects):
            value = bytes(raw)
            try:
                self._dead_letter(_REJECTION_DECODER.decode(value), receipt, value)
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                self._dead_letter(
                    producer_rejection(
                        f"batch {batch.batch_id}", index, "invalid_reject", str(exc), value
                    ),
                    receipt,
                )

    def outcome(self, receipt: Receipt) -> Ack | Nack:
        """Wait for the last delivery report of ``receipt``; ``Ack`` only if all succeeded."""
        if not receipt.done.wait(self.delivery_timeout_s + 5):
            BATCHES.labels("nack").inc()
            return Nack(
                receipt.batch_id, "delivery_timeout", "not every record was delivered in time"
            )
        if receipt.errors:
            BATCHES.labels("nack").inc()
            log.warning(
                "batch %s: %d deliveries failed",
                receipt.batch_id,
                len(receipt.errors),
                extra={"error": receipt.errors[0]},
            )
            return Nack(receipt.batch_id, "delivery_failed", receipt.errors[0])
        BATCHES.labels("ack").inc()
        return Ack(
            receipt.batch_id,
            receipt.produced[self.observations_topic],
            receipt.produced[self.dlq_topic],
        )

    def publish_dead_letter(self, rejection: Rejection) -> bool:
        """Send one rejection (e.g. an unreadable frame) and wait for its delivery."""
        receipt = Receipt(f"dead-letter {rejection.reason}")
        self._dead_letter(rejection, receipt)
        receipt.seal()
        return receipt.done.wait(self.delivery_timeout_s + 5) and not receipt.errors

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


def producer_rejection(
    source: str, line: int, reason: str, detail: str, payload: bytes | msgspec.Raw
) -> Rejection:
    """A dead letter for something the producer itself refused (a record or a frame)."""
    return Rejection(
        source=source,
        line=line,
        reason=reason,
        detail=detail,
        raw=bytes(payload)[:4096].decode("utf-8", errors="replace"),
        stage="producer",
    )
