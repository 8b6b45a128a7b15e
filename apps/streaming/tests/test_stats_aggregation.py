"""The per-station aggregation on a small static frame: exact figures, redeliveries ignored."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from moaa.streaming.stats import OBSERVATION_SCHEMA, hourly_stats


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
