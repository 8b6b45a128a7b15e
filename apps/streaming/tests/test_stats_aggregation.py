"""The per-station aggregation on a small static frame: exact figures, redeliveries ignored."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import msgspec
import pytest
from pyspark.sql import functions as F

from moaa.common.hours import record_key
from moaa.common.records import HourlyStats, HourlySummary
from moaa.streaming.stats import (
    OBSERVATION_SCHEMA,
    UNREADABLE_METRICS,
    UnreadableLog,
    _to_kafka,
    hourly_stats,
    hourly_summary,
    parse_observations,
)


def _obs(obs_id: str, minute: int, temp: float, dew: float | None = None) -> tuple:
    ts = datetime(2013, 1, 1, 10, minute, tzinfo=UTC)
    values = {"obs_id": obs_id, "station_id": "S1", "ts": ts, "name": "X", "latitude": 1.0}
    values |= {"longitude": 2.0, "elevation_m": 3.0, "temperature_c": temp, "dew_point_c": dew}
    return tuple(values.get(field.name) for field in OBSERVATION_SCHEMA.fields)


def test_redelivered_records_count_once(spark) -> None:
    rows = [
        _obs("a", 0, 1.5, -2.0),
        _obs("b", 20, 4.0),
        _obs("a", 0, 1.5, -2.0),  # a redelivery of "a": same id, same values
        _obs("c", 51, 2.5, -1.0),
    ]
    frame = spark.createDataFrame(rows, OBSERVATION_SCHEMA)
    [row] = hourly_stats(frame).collect()
    assert row.key == "S1|2013-01-01T10:00:00Z"
    assert (row.min_c, row.max_c, row["count"]) == (1.5, 4.0, 3)
    assert row.mean_c == pytest.approx(8.0 / 3, abs=1e-12)
    assert row.dew_point_mean_c == pytest.approx(-1.5)
    assert row.sea_level_pressure_mean_hpa is None


def test_what_the_queries_write_is_the_records(spark) -> None:
    """Their values decode as :mod:`moaa.common.records` (the contract), keys included."""
    frame = spark.createDataFrame([_obs("a", 0, 1.5, -2.0), _obs("b", 7, 2.5)], OBSERVATION_SCHEMA)
    frame = frame.withColumn("station_id", F.lit("72502014734"))  # a real id, as the record says
    [stats] = _to_kafka(hourly_stats(frame)).collect()
    record = msgspec.json.decode(stats.value, type=HourlyStats)
    assert stats.key == record_key(record.station_id, record.hour)
    assert (record.count, record.dew_point_mean_c, record.wind_speed_mean_ms) == (2, -2.0, None)
    [summary] = _to_kafka(hourly_summary(frame)).collect()
    assert msgspec.json.decode(summary.value, type=HourlySummary).stations == 1


def test_messages_that_are_not_observations_are_dropped_and_only_they(spark) -> None:
    good = (
        '{"obs_id":"a","station_id":"S1","ts":"2013-01-01T10:00:00Z","temperature_c":1.5}',
        '{"obs_id":"b","station_id":"S1","ts":"2013-01-01T10:20:00Z","temperature_c":2.5}',
    )
    foreign = ("not json", "[1, 2]", '{"obs_id": "c"}', '{"ts": "2013-01-01T10:00:00Z"}', None)
    frame = spark.createDataFrame([(v,) for v in (*good, *foreign)], "value string")
    rows = parse_observations(frame, "2 hours", dedupe=False, count_unreadable=True).collect()
    assert sorted(r.obs_id for r in rows) == ["a", "b"]


class _Query:
    def __init__(self) -> None:
        self.recentProgress: list[SimpleNamespace] = []


def _progress(batch: int, messages: int, unreadable: int) -> SimpleNamespace:
    metrics = {UNREADABLE_METRICS: {"messages": messages, "unreadable": unreadable}}
    return SimpleNamespace(batchId=batch, observedMetrics=metrics)


def test_unreadable_messages_are_logged_once_per_batch(caplog: pytest.LogCaptureFixture) -> None:
    query = _Query()
    watch = UnreadableLog(query, "weather.observations")
    query.recentProgress = [_progress(0, 9, 0), _progress(1, 9, 2)]
    watch()
    watch()  # the same progress again: nothing new
    query.recentProgress.append(_progress(2, 5, 3))
    watch()
    query.recentProgress.append(SimpleNamespace(batchId=3, observedMetrics=None))
    watch()
    query.recentProgress = None  # type: ignore[assignment] # a broken progress never raises
    watch()
    skipped = [r for r in caplog.records if r.getMessage().startswith("skipped")]
    assert [(r.skipped, r.skipped_total, r.reason) for r in skipped] == [  # type: ignore[attr-defined]
        (2, 2, "not_an_observation"),
        (3, 5, "not_an_observation"),
    ]
