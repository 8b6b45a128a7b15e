"""The publisher's state machine with an injected Kafka client: what each batch publishes,
where, and when it is acknowledged, refused or timed out, without a broker.

The real client against a real broker is exercised by the integration tests
(``tests/integration/test_ingest.py``, ``test_faults.py``)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from moaa.common.observation import Observation, Rejection
from moaa.common.protocol import Ack, Batch, Nack
from moaa.producer.publisher import Publisher

OBS_TOPIC, DLQ_TOPIC = "obs", "obs.dlq"


class FakeMessage:
    def __init__(self, topic: str) -> None:
        self._topic = topic

    def topic(self) -> str:
        return self._topic

    def latency(self) -> float:
        return 0.001


class FakeKafka:
    """Records every ``produce``; ``poll`` delivers (or fails, per topic) what is pending.

    ``room`` bounds the local queue (``BufferError`` when full, as librdkafka); ``deliver``
    False keeps every record pending (a broker that never answers).
    """

    def __init__(
        self, fail: frozenset[str] = frozenset(), room: int | None = None, deliver: bool = True
    ) -> None:
        self.fail, self.room, self.deliver = fail, room, deliver
        self.produced: list[tuple[str, str | None, bytes, list[Any]]] = []
        self.full = 0
        self._pending: list[tuple[str, Callable[..., None]]] = []
        self._lock = threading.Lock()

    def produce(
        self,
        topic: str,
        value: Any = None,
        key: Any = None,
        *,
        headers: Any = None,
        on_delivery: Callable[..., None] | None = None,
    ) -> None:
        with self._lock:
            if self.room is not None and len(self._pending) >= self.room:
                self.full += 1
                raise BufferError("Local: Queue full")
            assert on_delivery is not None
            self.produced.append((topic, key, bytes(value), headers))
            self._pending.append((topic, on_delivery))

    def poll(self, timeout: float = 0) -> int:
        if not self.deliver:
            return 0
        with self._lock:
            pending, self._pending = self._pending, []
        for topic, report in pending:
            report("broker down" if topic in self.fail else None, FakeMessage(topic))
        return len(pending)

    def flush(self, timeout: float = 0) -> int:
        self.poll()
        return len(self)

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        return {}

    def __len__(self) -> int:
        return len(self._pending)


@pytest.fixture
def publish() -> Iterator[Callable[..., tuple[Ack | Nack, FakeKafka]]]:
    publishers: list[Publisher] = []

    def run(batch: Batch, kafka: FakeKafka | None = None, timeout_s: float = 5.0):
        kafka = kafka if kafka is not None else FakeKafka()
        publisher = Publisher({}, OBS_TOPIC, DLQ_TOPIC, delivery_timeout_s=timeout_s, client=kafka)
        publishers.append(publisher)
        return publisher.outcome(publisher.submit(batch)), kafka

    yield run
    for publisher in publishers:
        publisher.close(1)


def _obs(station: str, minute: int = 0) -> bytes:
    return Observation(
        obs_id=f"{station}-2020010100{minute:02d}-0000abcd",
        station_id=station,
        ts=datetime(2020, 1, 1, 0, minute, tzinfo=UTC),
        name="NEWARK",
        latitude=40.68,
        longitude=-74.17,
        elevation_m=2.1,
        report_type="FM-15",
        source="7",
        temperature_c=-1.5,
        temperature_quality="5",
    ).to_json()


def _batch(records: list[bytes], rejects: list[bytes] | None = None) -> Batch:
    return Batch(
        "2020-01-01T00:00:00Z",
        datetime(2020, 1, 1, tzinfo=UTC),
        [msgspec.Raw(r) for r in records],
        [msgspec.Raw(r) for r in rejects or []],
    )


REJECT = Rejection(source="a.csv", line=7, reason="bad_date", detail="x", raw="…").to_json()


def test_valid_records_go_unchanged_to_the_topic_keyed_by_station_and_are_acked(
    publish: Callable[..., tuple[Ack | Nack, FakeKafka]],
) -> None:
    records = [_obs("72502014734"), _obs("74486094789", 51)]
    answer, kafka = publish(_batch(records, [REJECT]))
    assert answer == Ack("2020-01-01T00:00:00Z", accepted=2, rejected=1)
    assert [(t, k, v) for t, k, v, _ in kafka.produced] == [
        (OBS_TOPIC, "72502014734", records[0]),
        (OBS_TOPIC, "74486094789", records[1]),
        (DLQ_TOPIC, "a.csv", REJECT),
    ]
    assert kafka.produced[0][3] == [("moaa-schema", b"observation.v1")]
    assert kafka.produced[2][3] == [("moaa-schema", b"rejection.v1")]


def test_an_invalid_record_goes_to_the_dead_letter_topic_with_its_reason_and_the_rest_is_kept(
    publish: Callable[..., tuple[Ack | Nack, FakeKafka]],
) -> None:
    good = _obs("72502014734")
    answer, kafka = publish(_batch([good, b'{"obs_id": 3}', b"not json", REJECT]))
    assert answer == Ack("2020-01-01T00:00:00Z", accepted=1, rejected=3)
    assert [t for t, *_ in kafka.produced] == [OBS_TOPIC, DLQ_TOPIC, DLQ_TOPIC, DLQ_TOPIC]
    dead = [msgspec.json.decode(v, type=Rejection) for t, _, v, _ in kafka.produced[1:]]
    assert [(d.reason, d.line, d.stage) for d in dead] == [
        ("invalid_record", 1, "producer"),
        ("invalid_record", 2, "producer"),
        ("invalid_record", 3, "producer"),  # a rejection is not an observation
    ]
    assert dead[1].raw == "not json"


def test_an_unreadable_reject_is_dead_lettered_as_such(
    publish: Callable[..., tuple[Ack | Nack, FakeKafka]],
) -> None:
    answer, kafka = publish(_batch([], [b'{"what": 1}']))
    assert answer == Ack("2020-01-01T00:00:00Z", accepted=0, rejected=1)
    [(topic, _, value, _)] = kafka.produced
    assert topic == DLQ_TOPIC
    assert msgspec.json.decode(value, type=Rejection).reason == "invalid_reject"


def test_a_failed_delivery_nacks_the_whole_batch(
    publish: Callable[..., tuple[Ack | Nack, FakeKafka]],
) -> None:
    answer, _ = publish(
        _batch([_obs("72502014734")], [REJECT]), FakeKafka(fail=frozenset({DLQ_TOPIC}))
    )
    assert isinstance(answer, Nack)
    assert (answer.reason, answer.retry) == ("delivery_failed", True)
    assert "obs.dlq: broker down" in answer.detail


def test_a_full_queue_waits_for_room_and_drops_nothing(
    publish: Callable[..., tuple[Ack | Nack, FakeKafka]],
) -> None:
    records = [_obs("72502014734", m) for m in range(50)]
    answer, kafka = publish(_batch(records), FakeKafka(room=4))
    assert answer == Ack("2020-01-01T00:00:00Z", accepted=50, rejected=0)
    assert kafka.full > 0
    assert [v for _, _, v, _ in kafka.produced] == records


def test_no_delivery_report_in_time_nacks_for_a_resend(
    publish: Callable[..., tuple[Ack | Nack, FakeKafka]],
) -> None:
    answer, _ = publish(_batch([_obs("72502014734")]), FakeKafka(deliver=False), timeout_s=-4.9)
    assert isinstance(answer, Nack)
    assert (answer.reason, answer.retry) == ("delivery_timeout", True)
