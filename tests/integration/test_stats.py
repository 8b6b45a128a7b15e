"""Hourly stats on the whole real chain, compared with an independent DuckDB ground truth:
feeder → producer → Kafka → Spark stats job → Kafka → insert job → FerretDB."""

from __future__ import annotations

import math
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from moaa.common.hours import record_key
from moaa.dataprep.groundtruth import hourly_covariates, hourly_temperature_stats
from moaa.streaming.forecast_features import COVARIATES

from .conftest import Pipeline

pytestmark = pytest.mark.integration

START = datetime(2013, 1, 1, tzinfo=UTC)
WEEK = 7 * 24


def _truth(sample_dir: Path, hours: int) -> dict[str, tuple[float, float, float, int]]:
    end = START + timedelta(hours=hours)
    return {
        record_key(station, hour): value
        for (station, hour), value in hourly_temperature_stats(sample_dir).items()
        if START <= hour < end
    }


def _summary_truth(
    truth: dict[str, tuple[float, float, float, int]],
) -> dict[str, tuple[float, float, float, int]]:
    """All-stations figures per hour, derived exactly from the per-station ground truth."""
    hours: dict[str, list[tuple[float, float, float, int]]] = {}
    for key, value in truth.items():
        hours.setdefault(key.split("|")[1], []).append(value)
    return {
        hour: (
            min(v[0] for v in values),
            max(v[1] for v in values),
            sum(v[2] * v[3] for v in values) / sum(v[3] for v in values),
            sum(v[3] for v in values),
        )
        for hour, values in hours.items()
    }


def _wait_for_documents(
    pipe: Pipeline, collection: str, expected: int, timeout_s: float = 240
) -> list[dict[str, Any]]:
    client: MongoClient = MongoClient(pipe.mongo_uri, tz_aware=True)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            docs = list(client[pipe.database][collection].find())
            complete = len(docs) >= expected
            if complete or time.monotonic() > deadline:
                return docs
            time.sleep(1)
    finally:
        client.close()


def _settled(
    pipe: Pipeline,
    truth: dict[str, tuple[float, float, float, int]],
    timeout_s: float = 120,
    collection: str = "hourly_stats",
    count_timeout_s: float | None = None,
) -> list[dict[str, Any]]:
    """Wait until the stored documents equal the truth (updates may still be arriving)."""
    summary = collection == "hourly_summary"
    deadline = time.monotonic() + timeout_s
    while True:
        docs = _wait_for_documents(pipe, collection, len(truth), count_timeout_s or timeout_s)
        if _mismatches(docs, truth, summary) == [] or time.monotonic() > deadline:
            return docs
        time.sleep(2)


def _mismatches(
    docs: list[dict[str, Any]],
    truth: dict[str, tuple[float, float, float, int]],
    summary: bool = False,
) -> list[str]:
    """Differences from the truth; a ``summary`` document also counts 1 or 2 stations."""
    stored = {d["_id"]: d for d in docs}
    problems = [f"missing {k}" for k in truth.keys() - stored.keys()]
    problems += [f"unexpected {k}" for k in stored.keys() - truth.keys()]
    for key in truth.keys() & stored.keys():
        lo, hi, mean, count = truth[key]
        doc = stored[key]
        if (
            (doc["min_c"], doc["max_c"], doc["count"]) != (lo, hi, count)
            or not math.isclose(doc["mean_c"], mean, rel_tol=0, abs_tol=1e-9)
            or (summary and doc["stations"] not in (1, 2))
        ):
            problems.append(
                f"{key}: stored {doc['min_c'], doc['max_c'], doc['mean_c'], doc['count']} != truth {truth[key]}"
            )
    return problems


def _check_summary(pipe: Pipeline, truth: dict[str, tuple[float, float, float, int]]) -> None:
    """The summary query runs on its own trigger, so its last hours may still be updating when
    the per-station documents have settled: wait for them to equal the truth too."""
    expected = _summary_truth(truth)
    docs = _settled(pipe, expected, collection="hourly_summary", count_timeout_s=240)
    assert _mismatches(docs, expected, summary=True) == [], pipe.log("stats")[-3000:]


def _check_covariates(docs: list[dict[str, Any]], sample_dir: Path) -> None:
    """The means of dew point, sea-level pressure and wind speed, under the names the forecast
    job reads them by, against DuckDB: absent where no observation of the hour carried one."""
    truth = {
        record_key(station, hour): value
        for (station, hour), value in hourly_covariates(sample_dir).items()
    }
    for doc in docs:
        for name, expected in zip(COVARIATES, truth[doc["_id"]], strict=True):
            got = doc.get(name)
            assert (got is None) == (expected is None), (doc["_id"], name, got, expected)
            assert got is None or math.isclose(got, expected, abs_tol=1e-9), (doc["_id"], name)


def test_a_week_of_hourly_stats_matches_duckdb(pipeline: Pipeline, sample_dir: Path) -> None:
    pipeline.start_producer()
    pipeline.start_stats()
    pipeline.start_insert()
    feeder = pipeline.start_feeder("--tick", "0", "--hours", str(WEEK))
    assert feeder.wait(180) == 0, pipeline.log("feeder")

    truth = _truth(sample_dir, WEEK)
    assert len(truth) > 300  # two stations, a week, a few gaps
    docs = _settled(pipeline, truth)
    assert _mismatches(docs, truth) == [], pipeline.log("stats")[-3000:]
    sample = next(d for d in docs if d["station_id"] == "72502014734")
    assert sample["name"].startswith("NEWARK") and sample["latitude"] == 40.683
    assert isinstance(sample["hour"], datetime)
    _check_summary(pipeline, truth)
    _check_covariates(docs, sample_dir)

    # metrics: Spark's driver servlet with named queries, and the insert job
    with urllib.request.urlopen(
        f"http://127.0.0.1:{pipeline.spark_ui_port}/metrics/prometheus/", timeout=10
    ) as resp:
        spark_metrics = resp.read().decode()
    for name in (
        "inputRate_total",
        "processingRate_total",
        "latency",
        "states_rowsTotal",
        "eventTime_watermark",
    ):
        assert (
            f"metrics_moaa_stats_driver_spark_streaming_hourly_stats_{name}_Value" in spark_metrics
        ), name
    with urllib.request.urlopen(
        f"http://127.0.0.1:{pipeline.insert_port}/metrics", timeout=10
    ) as resp:
        insert_metrics = resp.read().decode()
    assert 'weather_insert_documents_total{collection="hourly_stats"}' in insert_metrics
    assert "weather_insert_write_latency_seconds_bucket" in insert_metrics


def test_killed_jobs_restart_from_checkpoints_and_still_match(
    pipeline: Pipeline, sample_dir: Path
) -> None:
    pipeline.start_producer()
    stats = pipeline.start_stats()
    insert = pipeline.start_insert()
    feeder = pipeline.start_feeder("--tick", "0.2", "--hours", str(WEEK))

    # let both jobs produce results, then kill them (and Spark's JVM) without warning
    _wait_for_documents(pipeline, "hourly_stats", 40, timeout_s=180)
    pipeline.crash(stats)
    pipeline.crash(insert)
    pipeline.start_stats()
    pipeline.start_insert()
    assert feeder.wait(300) == 0, pipeline.log("feeder")

    truth = _truth(sample_dir, WEEK)
    docs = _settled(pipeline, truth, timeout_s=240)
    assert _mismatches(docs, truth) == [], pipeline.log("stats")[-3000:]
    _check_summary(pipeline, truth)
