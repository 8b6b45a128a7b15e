"""Forecasts on the whole real chain, several simulated days of the bundled sample at tick 0:
feeder → producer → Kafka → stats → Kafka → forecast job (Spark ML) → Kafka → insert → FerretDB.

A small window and an early first model keep it quick: the first model after 2 days of
history, a retrain every simulated day. The forecast job is killed (-9) half way and
restarted: it must load its latest model and carry on from its history and state.
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from pymongo import MongoClient

from moaa.common.records import STATS_PROGRESS_KEY
from moaa.localstack.services import LocalStack
from moaa.localstack.settings import LocalStackSettings
from moaa.localstack.testing import free_ports
from moaa.streaming.forecast_features import COVARIATES, FEATURES
from moaa.streaming.forecast_store import LAYOUT

from .conftest import Pipeline, consume_all, wait_until

pytestmark = pytest.mark.integration

STATIONS = {"72502014734", "74486094789"}
DAY = 24
#: Messages a producer other than the stats job could leave on its topic.
FOREIGN = [
    b"not json",
    b"[1, 2]",
    b'{"station_id": "72502014734", "hour": "2013-01-05T00:00:00Z"}',
    b'{"station_id": "72502014734", "hour": "yesterday", "mean_c": 3.5}',
    b'{"hour": "2013-01-05T00:00:00Z", "mean_c": 3.5}',
]

BAD_MARK = b'{"schema": "stats-progress.v1", "hour": "soon", "partition": 0, "partitions": 3}'


class ForecastRun:
    def __init__(self, pipe: Pipeline) -> None:
        self.pipe = pipe
        self.forecasts = pipe.topic + ".forecasts"
        self.skill = pipe.topic + ".skill"
        self.ui_port, self.metrics_port = free_ports(2)
        self.checkpoints = pipe.workdir / "checkpoints"

    def env(self) -> dict[str, str]:
        return self.pipe.env(
            MOAA_TOPIC_FORECASTS=self.forecasts,
            MOAA_TOPIC_FORECAST_SKILL=self.skill,
            MOAA_SPARK_UI_PORT=str(self.ui_port),
            MOAA_FORECAST_METRICS_PORT=str(self.metrics_port),
            MOAA_FORECAST_WINDOW_DAYS="3",
            MOAA_FORECAST_CLIM_DAYS="2",
            MOAA_FORECAST_MIN_HISTORY_DAYS="2",
            MOAA_FORECAST_RETRAIN_EVERY_HOURS="24",
            MOAA_FORECAST_PARTITIONS="2",
        )

    def start_forecast(self) -> subprocess.Popen[bytes]:
        return self.pipe._start("forecast", ["forecast"], self.env())

    def start_insert(self) -> subprocess.Popen[bytes]:
        return self.pipe._start("insert", ["insert"], self.env())

    def versions(self) -> list[int]:
        models = self.checkpoints / LAYOUT / "models"
        if not models.exists():
            return []
        return sorted(int(p.name[1:]) for p in models.glob("v*") if (p / "metadata.json").exists())

    def wait(self, what: str, check: Any, timeout_s: float = 420) -> Any:
        return wait_until(
            what, check, timeout_s, every_s=1, detail=lambda: self.pipe.log("forecast")[-4000:]
        )


def _model_in_use(port: int) -> float:
    found = re.search(r"^weather_forecast_model_version (\S+)$", _scrape(port), re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def _final_hour(pipe: Pipeline) -> str:
    state = pipe.workdir / "checkpoints" / LAYOUT / "state.json"
    try:
        last = json.loads(state.read_text())["last_final"]
    except (FileNotFoundError, ValueError, KeyError):
        return ""
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(hours=last or 0)).isoformat()


def _scrape(port: int, path: str = "/metrics") -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
        return resp.read().decode()


def test_forecasts_retrain_survive_a_crash_and_are_scored(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    run = ForecastRun(pipeline)
    pipeline.start_producer()
    pipeline.start_stats()
    run.start_insert()
    forecast = run.start_forecast()

    # four simulated days: models at days 2 and 3 of history
    feeder = pipeline.start_feeder("--tick", "0", "--hours", str(4 * DAY + 5))
    assert feeder.wait(180) == 0, pipeline.log("feeder")
    run.wait("two models", lambda: len(run.versions()) >= 2)
    run.wait("the clock past day 3", lambda: _final_hour(pipeline) >= "2013-01-04T06")
    before = run.versions()
    # trainings run beside issuing: the latest saved model is in use within a few seconds
    run.wait("the latest model in use", lambda: _model_in_use(run.metrics_port) >= before[-1])
    pipeline.crash(forecast)

    # restart from the checkpoint: the latest model is loaded, not retrained from scratch
    run.start_forecast()
    run.wait("the restarted job", lambda: "loaded forecast model" in pipeline.log("forecast"))
    # messages that are not hourly means, on the job's input: counted and skipped, never a crash
    foreign = Producer({"bootstrap.servers": pipeline.kafka_bootstrap})
    for value in FOREIGN:
        foreign.produce(pipeline.stats_topic, value)
    # and a progress mark without a readable hour: counted too, and it moves no clock
    foreign.produce(pipeline.stats_topic, BAD_MARK, STATS_PROGRESS_KEY.encode(), partition=0)
    assert foreign.flush(30) == 0
    run.wait(
        "the foreign messages skipped",
        lambda: (
            f"weather_forecast_unreadable_messages_total {float(len(FOREIGN) + 1)}"
            in _scrape(run.metrics_port)
        ),
    )
    assert "that are not hourly means" in pipeline.log("forecast")
    feeder = pipeline.start_feeder("--tick", "0", "--hours", str(6 * DAY + 5))
    assert feeder.wait(180) == 0, pipeline.log("feeder")
    run.wait("a retrained model after the restart", lambda: max(run.versions()) > before[-1])
    run.wait("the clock past day 5", lambda: _final_hour(pipeline) >= "2013-01-06T06")
    after = run.versions()
    assert after[-1] >= before[-1] + 1  # versions continue: nothing reset
    meta = json.loads(
        (run.checkpoints / LAYOUT / "models" / f"v{after[-1]}" / "metadata.json").read_text()
    )
    assert meta["version"] == after[-1] and meta["window_days"] == 3 and meta["rows"] > 0
    # the final-hours table keeps only its window: old steps are dropped as hours go by
    hours = sorted(int(p.name[5:]) for p in (run.checkpoints / LAYOUT / "hours").glob("step=*"))
    assert (
        hours
        and hours[0]
        >= json.loads((run.checkpoints / LAYOUT / "state.json").read_text())["last_final"]
        - (3 * 24 + 48)
        - 48
    )
    assert meta["features"] == list(FEATURES)  # the covariate anomalies included
    assert 0 < meta["train_mae_c"] < 10

    # Kafka: every forecast has 24 leads; both stations at every issue hour from the first model
    messages = consume_all(pipeline.kafka_bootstrap, run.forecasts, idle_s=3)
    docs = {m.key().decode(): json.loads(m.value()) for m in messages}
    assert docs, pipeline.log("forecast")[-3000:]
    for key, doc in docs.items():
        assert key == f"{doc['station_id']}|{doc['issued_at']}"
        assert doc["schema"] == "forecast.v1"
        assert [p["lead"] for p in doc["points"]] == list(range(1, 25))
    issues: dict[str, set[str]] = {}
    for doc in docs.values():
        issues.setdefault(doc["issued_at"], set()).add(doc["station_id"])
    hours = sorted(issues)
    stats = [
        m
        for m in consume_all(pipeline.kafka_bootstrap, pipeline.stats_topic, idle_s=3)
        if m.value() not in FOREIGN and m.key() != STATS_PROGRESS_KEY.encode()
    ]
    first_hour = min(json.loads(m.value())["hour"] for m in stats)
    # the stats job's dew point, pressure and wind means (the forecast's covariates) are
    # there for most station-hours (some hours of the sample carry no sea-level pressure)
    values = [json.loads(m.value()) for m in stats]
    for name in COVARIATES:
        assert sum(isinstance(v.get(name), float) for v in values) > 0.8 * len(values), name
    # the first model once two days of history exist, and forecasts from then on only. The
    # history starts at the oldest hour: at tick 0 the stats job writes several hours at once
    # to 3 partitions, but the job's clock waits for its progress marks, so no hour of the
    # replay's start is final before all of its means are read
    state = json.loads((run.checkpoints / LAYOUT / "state.json").read_text())
    origin = datetime.fromtimestamp(state["first_hour"] * 3600, UTC)
    start = datetime.fromisoformat(first_hour)
    assert origin == start, (origin, start)
    # the job trains beside issuing, but waits for the first model (nothing is issued without
    # one): its step ends at its retrain hour, origin + 2 days, which it scores with it
    assert datetime.fromisoformat(hours[0]) == origin + timedelta(days=2)
    assert all(issues[h] == STATIONS for h in hours), {
        h: s for h, s in issues.items() if s != STATIONS
    }
    expected = int((datetime.fromisoformat(hours[-1]) - datetime.fromisoformat(hours[0])).total_seconds() // 3600) + 1  # fmt: skip
    assert len(hours) == expected  # one issue per hour, none lost across the crash
    # every forecast has a model, and after the restart the loaded one or a newer one (models
    # are used from the step after their training: the last one saved may not be used yet
    # when the data ends, and at tick 0 one may be replaced before any step used it)
    versions = {d["model_version"] for d in docs.values()}
    assert min(versions) >= 1 and max(versions) >= before[-1], (versions, before, after)

    # MongoDB: forecasts and skill documents, dates as dates
    client: MongoClient = MongoClient(pipeline.mongo_uri, tz_aware=True)
    try:
        db = client[pipeline.database]
        stored = run.wait(
            "forecasts in MongoDB", lambda: db.forecasts.count_documents({}) >= len(docs)
        )
        assert stored
        one = db.forecasts.find_one({"station_id": "72502014734"})
        assert isinstance(one["issued_at"], datetime)
        assert isinstance(one["points"][0]["target_hour"], datetime)
        skill = run.wait(
            "skill in MongoDB",
            lambda: (
                {d["_id"]: d for d in db.forecast_skill.find()}.keys() >= {*STATIONS, "ALL"}
                and {d["_id"]: d for d in db.forecast_skill.find()}
            ),
        )
        overall = skill["ALL"]
        assert isinstance(overall["updated_hour"], datetime)
        assert [e["lead"] for e in overall["leads"]] == list(range(1, 25))
        assert overall["leads"][0]["n"] > 0 and overall["overall"]["n"] > 0
        assert set(overall["leads"][0]["mae"]) == {
            "model",
            "last_value",
            "same_hour_yesterday",
            "climatology",
        }
    finally:
        client.close()

    # Prometheus: the ops endpoint and Spark's driver servlet
    metrics = _scrape(run.metrics_port)
    for name in (
        'weather_forecast_mae_celsius{lead="1",predictor="model"}',
        'weather_forecast_mae_celsius{lead="all",predictor="same_hour_yesterday"}',
        'weather_forecast_skill{lead="24"}',
        "weather_forecast_model_version",
        "weather_forecast_trainings_total",
        "weather_forecast_training_seconds_bucket",
        "weather_forecasts_published_total",
        "weather_forecast_issued_hour_timestamp_seconds",
        "weather_forecast_lag_hours",
        "weather_forecast_final_hour_timestamp_seconds",
        "weather_forecast_step_seconds_bucket",
    ):
        assert name in metrics, name
    assert "station" not in "".join(
        line for line in metrics.splitlines() if line.startswith("weather_forecast")
    )
    assert _scrape(run.metrics_port, "/readyz")
    spark = _scrape(run.ui_port, "/metrics/prometheus/")
    assert "metrics_moaa_forecast_driver_spark_streaming_forecast_input_inputRate_total_Value" in (
        spark
    )


def test_the_local_stack_gives_the_forecast_job_both_ports(tmp_path: Path) -> None:
    """`moaa local up forecast`: Spark UI on forecast_ui_port, ops on forecast_metrics_port."""
    ui, ops = free_ports(2)
    stack = LocalStack(
        LocalStackSettings(state_dir=tmp_path, forecast_ui_port=ui, forecast_metrics_port=ops)
    )
    service = stack.services["forecast"]
    assert service.ports == [ui, ops]
    env = service.env()
    assert env["MOAA_SPARK_UI_PORT"] == str(ui)
    assert env["MOAA_FORECAST_METRICS_PORT"] == str(ops)
    assert service.command()[-1] == "forecast"
