"""What the insert job stores and what it skips (with the reason), on any bytes at all."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moaa.common.records import STATS_PROGRESS_KEY
from moaa.streaming.insert import (
    REQUIRED_FIELDS,
    ForeignMessage,
    Inserter,
    InsertSettings,
    result_document,
)

STATS = b'{"station_id":"72502014734","hour":"2013-01-01T06:00:00Z","min_c":1.0,"count":2}'


def test_a_result_becomes_its_document() -> None:
    key, fields = result_document("hourly_stats", b"72502014734|2013-01-01T06:00:00Z", STATS)
    assert key == "72502014734|2013-01-01T06:00:00Z"
    assert fields["hour"] == datetime(2013, 1, 1, 6, tzinfo=UTC) and fields["count"] == 2


@pytest.mark.parametrize(
    ("collection", "key", "value", "reason"),
    [
        ("hourly_stats", None, STATS, "no_key"),
        ("hourly_stats", b"\xff\xfe", STATS, "bad_key"),
        ("hourly_stats", b"k", None, "not_json_object"),
        ("hourly_stats", b"k", b"not json", "not_json_object"),
        ("hourly_stats", b"k", b"[1, 2]", "not_json_object"),
        ("hourly_stats", b"k", b'"a string"', "not_json_object"),
        ("hourly_stats", b"k", STATS[:-1] + b',"$where":"1"}', "unstorable_field"),
        ("hourly_stats", b"k", STATS[:-1] + b',"_id":"other"}', "unstorable_field"),
        ("hourly_stats", b"k", STATS[:-1] + b',"a.b":1}', "unstorable_field"),
        ("hourly_stats", b"k", b'{"hour":"2013-01-01T06:00:00Z"}', "missing_field"),
        ("hourly_stats", b"k", b'{"station_id":"x","hour":"yesterday"}', "missing_field"),
        ("hourly_summary", b"k", b'{"min_c": 1}', "missing_field"),
        ("forecasts", b"k", b'{"station_id":"x","issued_at":7}', "missing_field"),
        ("forecast_skill", b"k", b'{"station_id":"ALL"}', "missing_field"),
    ],
)
def test_anything_else_is_skipped_with_its_reason(
    collection: str, key: bytes | None, value: bytes | None, reason: str
) -> None:
    with pytest.raises(ForeignMessage) as caught:
        result_document(collection, key, value)
    assert caught.value.reason == reason and caught.value.detail


_JSON = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=8,
)


@given(
    collection=st.sampled_from(sorted(REQUIRED_FIELDS)),
    key=st.none() | st.binary(max_size=20),
    value=st.none() | st.binary(max_size=60) | _JSON.map(lambda v: json.dumps(v).encode()),
)
def test_no_message_makes_it_raise_anything_else(
    collection: str, key: bytes | None, value: bytes | None
) -> None:
    try:
        doc_id, fields = result_document(collection, key, value)
    except ForeignMessage as exc:
        assert exc.reason
    else:
        assert isinstance(doc_id, str) and all(not k.startswith("$") for k in fields)


class _Message:
    def __init__(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        self._topic, self._key, self._value = topic, key, value

    def topic(self) -> str:
        return self._topic

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return 0

    def timestamp(self) -> tuple[int, int]:
        return (1, 1_700_000_000_000)


def test_the_stats_jobs_progress_marks_are_not_results(caplog: pytest.LogCaptureFixture) -> None:
    # no connection is made: the clients connect on first use
    inserter = Inserter(
        InsertSettings(kafka_bootstrap="127.0.0.1:1", mongo_uri="mongodb://127.0.0.1:1")
    )
    try:
        topic = inserter.settings.topic_hourly_stats
        mark = b'{"schema":"stats-progress.v1","hour":"2013-01-01T06:00:00Z","partition":0}'
        docs = inserter._documents(
            [_Message(topic, STATS_PROGRESS_KEY.encode(), mark), _Message(topic, b"k|h", STATS)]
        )
    finally:
        inserter.consumer.close()
        inserter.mongo.close()
    assert list(docs["hourly_stats"]) == ["k|h"]
    assert "skipping" not in caplog.text
