"""The stats job's progress marks: how the forecast job's clock reads them (pure logic), and
how they are written (``publish_progress`` against a recording producer)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest

from moaa.common.errors import MoaaError
from moaa.common.kafka import publish_progress
from moaa.common.records import STATS_PROGRESS_KEY, StatsProgress
from moaa.streaming.forecast import BatchFigures, batch_figures, parse_input
from moaa.streaming.forecast_store import EngineState, IncomingBatch


def test_the_clock_waits_for_a_mark_on_every_partition() -> None:
    state = EngineState()
    assert state.marked_through is None
    assert state.note_marks({0: 10, 1: 12}, 3)
    assert state.marked_through is None  # partition 2 has no mark yet
    assert state.note_marks({2: 11}, 3)
    assert state.marked_through == 10  # the oldest of the newest marks


def test_a_replayed_or_older_mark_never_moves_the_clock_back() -> None:
    state = EngineState()
    state.note_marks({0: 20, 1: 20}, 2)
    assert not state.note_marks({0: 15, 1: 20}, 2)  # nothing changed
    assert state.marked_through == 20
    state.note_marks({0: 25}, 2)
    assert state.marked_through == 20
    state.note_marks({1: 30}, 2)
    assert state.marked_through == 25


def test_a_new_partition_holds_the_clock_until_it_is_marked() -> None:
    state = EngineState()
    state.note_marks({0: 20, 1: 20}, 2)
    state.note_marks({0: 21, 1: 21}, 3)  # the topic grew
    assert state.marked_through is None
    state.note_marks({2: 21}, 3)
    assert state.marked_through == 21


def test_the_marks_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    state = EngineState(last_final=5)
    state.note_marks({0: 9, 1: 8}, 2)
    state.save(path)
    again = EngineState.load(path)
    assert again.marked_through == 8
    assert again.last_final == 5
    assert EngineState.load(tmp_path / "none.json").marked_through is None


class RecordingProducer:
    def __init__(self, partitions: int, fail: bool = False) -> None:
        self.partitions = partitions
        self.fail = fail
        self.sent: list[tuple[str, bytes, bytes, int]] = []

    def list_topics(self, topic: str, timeout: float) -> Any:
        meta = SimpleNamespace(partitions=dict.fromkeys(range(self.partitions)), error=None)
        return SimpleNamespace(topics={topic: meta} if self.partitions else {})

    def produce(self, topic: str, value: bytes, key: bytes, partition: int, on_delivery: Any):
        self.sent.append((topic, value, key, partition))
        on_delivery("broker down" if self.fail else None, None)

    def flush(self, timeout: float) -> int:
        return 0


def test_a_mark_goes_to_every_partition() -> None:
    producer = RecordingProducer(3)
    hour = datetime(2013, 1, 2, 5, tzinfo=UTC)
    assert publish_progress(producer, "t", hour, 7) == 3
    assert [p for *_, p in producer.sent] == [0, 1, 2]
    for topic, value, key, partition in producer.sent:
        mark = msgspec.json.decode(value, type=StatsProgress)
        assert (topic, key) == ("t", STATS_PROGRESS_KEY.encode())
        assert (mark.hour, mark.partition, mark.partitions, mark.batch) == (hour, partition, 3, 7)


def test_an_undelivered_mark_is_an_error() -> None:
    hour = datetime(2013, 1, 2, 5, tzinfo=UTC)
    with pytest.raises(MoaaError, match="not delivered"):
        publish_progress(RecordingProducer(2, fail=True), "t", hour, 1)
    with pytest.raises(MoaaError, match="no partitions"):
        publish_progress(RecordingProducer(0), "t", hour, 1)


def _kafka_rows(spark: Any, messages: list[tuple[bytes | None, bytes, int]]) -> Any:
    rows = [
        (key, value, partition, offset) for offset, (key, value, partition) in enumerate(messages)
    ]
    return spark.createDataFrame(rows, "key binary, value binary, partition int, offset long")


def test_the_job_tells_marks_from_means_and_counts_bad_ones(spark: Any) -> None:
    key = STATS_PROGRESS_KEY.encode()
    mean = b'{"station_id":"S1","hour":"2013-01-01T06:00:00Z","mean_c":1.5}'
    batch = _kafka_rows(
        spark,
        [
            (b"S1|2013-01-01T06:00:00Z", mean, 0),
            (key, b'{"hour":"2013-01-01T06:00:00Z","partition":0,"partitions":3,"batch":4}', 0),
            (key, b'{"hour":"2013-01-01T05:00:00Z","partition":1,"partitions":3,"batch":3}', 1),
            (key, b'{"hour":"soon","partitions":3}', 1),  # a mark, but unreadable
            (None, b"not json", 2),  # read from partition 2: it needs a mark too
        ],
    )
    rows = parse_input(batch, 7)
    got = {r["offset"]: r for r in rows.collect()}
    assert got[0]["_readable"] and got[0]["hour"] == 376_950  # 2013-01-01T06 in epoch hours
    assert [got[i]["_valid_mark"] for i in range(5)] == [False, True, True, False, False]
    assert not any(got[i]["_readable"] for i in range(1, 5))
    figures = batch_figures(rows, None)  # one Spark job counts all of it
    assert figures.marks == ({0: 376_950, 1: 376_949}, 3)
    assert (figures.messages, figures.unreadable) == (5, 2)  # the unreadable mark, "not json"
    assert figures.incoming == IncomingBatch(
        rows=1, late=0, newest=376_950, oldest=376_950, batch=7
    )
    assert batch_figures(rows, last_final=376_950).incoming.late == 1
    assert batch_figures(rows.where("NOT _mark"), None).marks is None
    assert batch_figures(rows.where("false"), None) == BatchFigures(
        0, 0, None, IncomingBatch(0, 0, None, None)
    )
