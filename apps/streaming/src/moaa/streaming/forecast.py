"""The forecast job: next-day hourly mean temperature per station, with Spark ML.

Reads ``weather.hourly-stats`` (the stats job's hourly means) with Spark's Kafka source and
handles each micro-batch in ``foreachBatch``:

1. the batch's hourly means (temperature, and the dew point, sea-level pressure and wind
   speed means the features also use) are appended to the **history store** — Parquet under
   ``<checkpoint>/forecast/history`` (with batch id and offset, so the last value per
   station and hour wins when it is read back on restart); once it holds more than
   ``MOAA_FORECAST_HISTORY_COMPACT_FILES`` files it is rewritten as the hours a restart reads
   (:func:`compact_history`);
2. the event-time clock is the newest hour seen; an hour is **final** once the clock is
   ``MOAA_FORECAST_FINAL_LAG_HOURS`` past it (the stats watermark of 2 h + the hour itself);
3. the :class:`~moaa.streaming.forecast_engine.ForecastEngine` walks every newly final hour:
   verifies stored forecasts against the actuals (model and three baselines), retrains on
   its event-time schedule (models in ``<checkpoint>/forecast/models/v<N>``), and issues
   24 hourly forecasts per active station with the latest model;
4. forecasts go to ``weather.forecasts`` (key ``<station>|<issued_at>``) and the skill of
   every touched station and of ``ALL`` to ``weather.forecast-skill``; the engine's state
   (last final hour, pending forecasts, skill sums) is written atomically to
   ``<checkpoint>/forecast/state.json``; only then does Spark commit the batch's offsets.

A crash replays at most the last batch: the history upserts and the Kafka keys are
idempotent, and hours already processed (state.json) are not processed again.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from prometheus_client import Counter, Gauge, Histogram
from pydantic import Field
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, StringType, StructField, StructType

from moaa.common.kafka import (
    TOPIC_FORECAST_SKILL,
    TOPIC_FORECASTS,
    TOPIC_HOURLY_STATS,
    KafkaSettings,
    ensure_topics,
)
from moaa.common.logs import configure_logging
from moaa.common.ops import run_component
from moaa.streaming.forecast_engine import EngineConfig, EngineOutput, ForecastEngine
from moaa.streaming.forecast_features import COVARIATES, LEADS, PREDICTORS, hour_index, hour_str
from moaa.streaming.forecast_model import ModelStore, StoredModel
from moaa.streaming.spark import SparkSettings, build_session, kafka_source_options, metrics_conf

__all__ = [
    "TOPIC_FORECASTS",
    "TOPIC_FORECAST_SKILL",
    "ForecastJob",
    "ForecastSettings",
    "command",
    "compact_history",
    "read_history",
    "recover_history",
]

log = logging.getLogger(__name__)


STATS_SCHEMA = StructType(
    [
        StructField("station_id", StringType()),
        StructField("hour", StringType()),
        StructField("mean_c", DoubleType()),
        StructField("name", StringType()),
        StructField("latitude", DoubleType()),
        StructField("longitude", DoubleType()),
        StructField("elevation_m", DoubleType()),
        *(StructField(name, DoubleType()) for name in COVARIATES),
    ]
)

MAE = Gauge(
    "weather_forecast_mae_celsius",
    "Mean absolute error of forecasts over all stations, by lead (hours, or all) and predictor",
    ["lead", "predictor"],
)
SKILL = Gauge(
    "weather_forecast_skill",
    "1 - MAE(model) / MAE(same hour yesterday) over all stations, by lead (hours, or all)",
    ["lead"],
)
MODEL_VERSION = Gauge("weather_forecast_model_version", "Version of the model in use (0 = none)")
TRAININGS = Counter("weather_forecast_trainings_total", "Models trained and saved")
TRAINING_SECONDS = Histogram(
    "weather_forecast_training_seconds",
    "Duration of one training (rows, fit, save)",
    buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300),
)
PUBLISHED = Counter("weather_forecasts_published_total", "Forecasts (24 points each) published")
ISSUED_HOUR = Gauge(
    "weather_forecast_issued_hour_timestamp_seconds",
    "Issue hour of the latest forecasts (Unix time)",
)


class ForecastSettings(KafkaSettings, SparkSettings):
    """Settings of the forecast job (``MOAA_*``)."""

    topic_hourly_stats: str = Field(TOPIC_HOURLY_STATS, description="Per station and hour results.")
    topic_forecasts: str = Field(TOPIC_FORECASTS, description="Forecasts (24 leads per issue).")
    topic_forecast_skill: str = Field(
        TOPIC_FORECAST_SKILL, description="Forecast MAE and skill per station and overall."
    )
    forecast_window_days: int = Field(
        60, description="Training window and climatology-baseline window (days of history)."
    )
    forecast_clim_days: int = Field(
        30, description="Days behind the hour-of-day climatology used in the features."
    )
    forecast_retrain_every_hours: int = Field(
        24, description="Retrain once this many event-time hours passed since the last model."
    )
    forecast_min_history_days: float = Field(
        14, description="History needed before the first model (no forecasts before it)."
    )
    forecast_final_lag_hours: int = Field(
        3,
        description="An hour is final (verified, forecast from) once the newest hour seen is "
        "this far past it: the stats watermark (2 h) plus the hour itself.",
    )
    forecast_max_offsets_per_trigger: int = Field(
        50_000, description="Most hourly-stats messages read per micro-batch."
    )
    forecast_metrics_port: int = Field(
        9303, description="Port of /metrics, /healthz, /readyz of the forecast job (0 = off)."
    )
    forecast_history_compact_files: int = Field(
        200,
        ge=1,
        description="Rewrite the history store once it holds more than this many Parquet files "
        "(each micro-batch appends one per Kafka partition), keeping only the hours a restart "
        "reads back. Older hours are deleted: a later, longer window or climatology setting "
        "finds only the history kept under the shorter one (and what Kafka still holds).",
    )

    def engine_config(self) -> EngineConfig:
        return EngineConfig(
            window_days=self.forecast_window_days,
            clim_days=self.forecast_clim_days,
            retrain_every_hours=self.forecast_retrain_every_hours,
            min_history_days=self.forecast_min_history_days,
        )


def _on_train(stored: StoredModel, seconds: float) -> None:
    TRAININGS.inc()
    TRAINING_SECONDS.observe(seconds)
    MODEL_VERSION.set(stored.version)


class ForecastJob:
    """The streaming job around the engine: Kafka in and out, history, state, metrics."""

    def __init__(self, settings: ForecastSettings) -> None:
        self.settings = settings
        self.root = settings.checkpoint_dir / "forecast"
        self.history_dir = self.root / "history"
        self.state_path = self.root / "state.json"
        self._stop = threading.Event()
        self._query: Any = None
        self.spark: SparkSession | None = None
        self.engine: ForecastEngine | None = None
        self.producer: Any = None

    # -- lifecycle ----------------------------------------------------------------------------

    def ready(self) -> tuple[bool, str]:
        if self._query is None or not self._query.isActive:
            return False, "query not running"
        return True, "ok"

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        from confluent_kafka import Producer  # noqa: PLC0415
        from confluent_kafka.admin import AdminClient  # noqa: PLC0415

        s = self.settings
        ensure_topics(
            AdminClient(s.kafka_client_config()),
            [s.topic_forecasts, s.topic_forecast_skill],
            s.topic_partitions,
            s.topic_replication_factor,
            s.topic_retention_ms,
        )
        self.producer = Producer(
            {
                **s.kafka_client_config(),
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "compression.type": "lz4",
            }
        )
        self.spark = build_session("moaa-forecast", s, metrics_conf("moaa_forecast"))
        self.spark.sparkContext.setLogLevel("WARN")
        self.engine = ForecastEngine(
            self.spark, s.engine_config(), ModelStore(self.root / "models"), _on_train
        )
        self._restore()
        source = (
            self.spark.readStream.format("kafka")
            .options(**kafka_source_options(s))
            .option("subscribe", s.topic_hourly_stats)
            .option("startingOffsets", "earliest")
            .option("failOnDataLoss", "false")
            .option("maxOffsetsPerTrigger", s.forecast_max_offsets_per_trigger)
            .load()
        )
        self._query = (
            source.writeStream.queryName("forecast_input")
            .foreachBatch(self._batch)
            .option("checkpointLocation", str(self.root / "query"))
            .start()
        )
        log.info("forecast job reading %s", s.topic_hourly_stats)
        while not self._stop.wait(1.0):
            if not self._query.isActive:
                raise SystemExit(f"query forecast_input stopped: {self._query.exception()}")
        self._query.stop()
        self.producer.flush(30)
        self.spark.stop()

    def _restore(self) -> None:
        """History from Parquet (last value per key wins), then the engine's state."""
        engine, spark = self._engine(), self.spark
        if spark is None:
            raise RuntimeError("no Spark session")
        if engine.model is not None:
            MODEL_VERSION.set(engine.model.version)
            log.info(
                "loaded forecast model v%d",
                engine.model.version,
                extra={"model": engine.model.metadata},
            )
        recover_history(self.history_dir)
        state = json.loads(self.state_path.read_text()) if self.state_path.exists() else None
        if self.history_dir.exists() and any(self.history_dir.glob("*.parquet")):
            history = read_history(spark, self.history_dir)
            newest = history.agg(F.max("hour")).first()[0]
            if newest is not None:
                keep_from = self._keep_from(hour_index(newest), (state or {}).get("last_final"))
                keep = hour_str(keep_from)
                rows = (
                    history.where(F.col("hour") >= keep)
                    .orderBy("batch_id", "partition", "offset")
                    .collect()
                )
                _observe(engine, rows)
                log.info("restored %d hourly means from %s", len(rows), self.history_dir)
                self._compact_if_due(keep_from)
        if state is not None:
            engine.load_state(state)
            log.info("restored state through %s", engine.last_final)
        self._export_skill()

    # -- one micro-batch ----------------------------------------------------------------------

    def _engine(self) -> ForecastEngine:
        if self.engine is None:
            raise RuntimeError("the forecast engine is not started")
        return self.engine

    def _batch(self, batch: DataFrame, batch_id: int) -> None:
        engine = self._engine()
        started = time.perf_counter()
        parsed = (
            batch.select(
                "partition",
                "offset",
                F.from_json(F.col("value").cast("string"), STATS_SCHEMA).alias("s"),
            )
            .select("partition", "offset", "s.*")
            .where(F.col("station_id").isNotNull() & F.col("mean_c").isNotNull())
            .withColumn("batch_id", F.lit(batch_id))
        )
        rows = parsed.orderBy("partition", "offset").collect()
        if not rows:
            return
        parsed.write.mode("append").parquet(str(self.history_dir))
        _observe(engine, rows)
        newest = engine.newest_hour()
        if newest is None:
            return
        self._compact_if_due(self._keep_from(newest, engine.last_final))
        out = engine.advance(newest - self.settings.forecast_final_lag_hours)
        self._publish(out)
        self._save_state()
        log.info(
            "batch %d: %d means, %d forecasts, %d models",
            batch_id,
            len(rows),
            len(out.forecasts),
            len(out.trained),
            extra={"duration_s": round(time.perf_counter() - started, 3)},
        )

    def _publish(self, out: EngineOutput) -> None:
        engine = self._engine()
        failures: list[str] = []

        def _delivered(err: Any, _msg: Any) -> None:
            if err is not None:
                failures.append(str(err))

        s = self.settings
        for doc in out.forecasts:
            key = f"{doc['station_id']}|{doc['issued_at']}"
            self._produce(s.topic_forecasts, key, doc, _delivered)
        version = engine.model.version if engine.model else 0
        for key in sorted(out.skill_keys):
            doc = engine.skill.document(key, engine.last_final or 0, version)
            self._produce(s.topic_forecast_skill, key, doc, _delivered)
        remaining = self.producer.flush(60)
        if remaining or failures:
            raise RuntimeError(f"forecast publishing failed: {failures[:3]} ({remaining} queued)")
        if out.forecasts:
            PUBLISHED.inc(len(out.forecasts))
            ISSUED_HOUR.set(hour_index(out.forecasts[-1]["issued_at"]) * 3600)
        if out.skill_keys:
            self._export_skill()

    def _produce(self, topic: str, key: str, doc: dict[str, Any], callback: Any) -> None:
        value = json.dumps(doc, separators=(",", ":")).encode()
        while True:
            try:
                self.producer.produce(topic, value, key.encode(), on_delivery=callback)
                break
            except BufferError:
                self.producer.poll(0.5)
        self.producer.poll(0)

    def _export_skill(self) -> None:
        engine = self._engine()
        if "ALL" not in engine.skill.sums:
            return
        doc = engine.skill.document("ALL", engine.last_final or 0, 0)
        for entry in [*doc["leads"], {"lead": "all", **doc["overall"]}]:  # type: ignore[list-item]
            lead = str(entry["lead"])
            for predictor in PREDICTORS:
                value = entry["mae"][predictor]
                if value is not None:
                    MAE.labels(lead, predictor).set(value)
            if entry["skill"] is not None:
                SKILL.labels(lead).set(entry["skill"])

    def _keep_from(self, newest: int, last_final: int | None) -> int:
        """The oldest hour a restart needs: the engine walks on from the last final hour in
        state.json (or the newest hour, if none), with its features' span behind it."""
        anchor = newest if last_final is None else min(newest, last_final)
        return anchor - self._engine().config.span_hours - LEADS

    def _compact_if_due(self, keep_from: int) -> None:
        """Compact the history once it holds more files than the setting allows, keeping the
        hours from ``keep_from`` on (what :meth:`_restore` reads back)."""
        files = sum(1 for _ in self.history_dir.glob("*.parquet"))
        if files <= self.settings.forecast_history_compact_files or self.spark is None:
            return
        started, first_hour = time.perf_counter(), hour_str(keep_from)
        kept = compact_history(self.spark, self.history_dir, first_hour)
        log.info(
            "compacted the history: %d files → rows from %s on (%d)",
            files,
            first_hour,
            kept,
            extra={"duration_s": round(time.perf_counter() - started, 3)},
        )

    def _save_state(self) -> None:
        state = self._engine().state()
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self.state_path)


def read_history(spark: SparkSession, path: Path) -> DataFrame:
    """The history Parquet; files written before the covariates existed lack their columns:
    the schemas are merged and a covariate no file carries is read as null."""
    history = spark.read.option("mergeSchema", "true").parquet(str(path))
    for name in COVARIATES:
        if name not in history.columns:
            history = history.withColumn(name, F.lit(None).cast(DoubleType()))
    return history


def _history_siblings(history_dir: Path) -> tuple[Path, Path]:
    """Where a compaction writes the new history, and where the old one waits for deletion."""
    return (
        history_dir.with_name(history_dir.name + ".compacting"),
        history_dir.with_name(history_dir.name + ".retired"),
    )


def compact_history(spark: SparkSession, history_dir: Path, keep_from: str) -> int:
    """Rewrite the history as its rows of hours ``keep_from`` and later, in one file; return
    how many rows it kept.

    Every row of those hours is kept with its batch id, partition and offset, so the last
    value per station and hour still wins on read. The new copy is written beside the history
    and swapped in by two renames; :func:`recover_history` completes or undoes a swap that a
    crash interrupted.
    """
    staging, retired = _history_siblings(history_dir)
    shutil.rmtree(staging, ignore_errors=True)
    kept = read_history(spark, history_dir).where(F.col("hour") >= keep_from).coalesce(1)
    kept.write.parquet(str(staging))
    rows = spark.read.parquet(str(staging)).count()  # and the new copy reads back whole
    shutil.rmtree(retired, ignore_errors=True)
    history_dir.rename(retired)
    staging.rename(history_dir)
    # The swap is done: a copy left here (e.g. a busy file on a network volume) is removed by
    # the next compaction or by recover_history on start.
    shutil.rmtree(retired, ignore_errors=True)
    return rows


def recover_history(history_dir: Path) -> None:
    """Finish or undo a compaction a crash interrupted (run before the history is read)."""
    staging, retired = _history_siblings(history_dir)
    if retired.exists():
        if not history_dir.exists():
            # Between the two renames: the new copy is complete (written before the first).
            if (staging / "_SUCCESS").exists():
                staging.rename(history_dir)
            else:
                retired.rename(history_dir)
        shutil.rmtree(retired, ignore_errors=True)
    shutil.rmtree(staging, ignore_errors=True)


def _observe(engine: ForecastEngine, rows: list[Any]) -> None:
    """Hand history rows (hourly-stats fields) to the engine, in the order given."""
    for row in rows:
        engine.observe(row.station_id, hour_index(row.hour), row.mean_c, _meta(row), _covs(row))


def _meta(row: Any) -> dict[str, Any]:
    return {
        "name": row.name,
        "latitude": row.latitude,
        "longitude": row.longitude,
        "elevation_m": row.elevation_m,
    }


def _covs(row: Any) -> dict[str, float | None]:
    return {name: row[name] for name in COVARIATES}


def command(
    checkpoint_dir: Annotated[
        Path | None, typer.Option(help="Checkpoints and models [env MOAA_CHECKPOINT_DIR].")
    ] = None,
) -> None:
    """Run the forecast job: 24 hourly forecasts per station from Spark ML, with skill.

    Spark Structured Streaming on weather.hourly-stats; retrains on an event-time schedule
    (MOAA_FORECAST_RETRAIN_EVERY_HOURS, window MOAA_FORECAST_WINDOW_DAYS), publishes to
    weather.forecasts and weather.forecast-skill; metrics on MOAA_FORECAST_METRICS_PORT.
    """
    overrides = {"checkpoint_dir": checkpoint_dir} if checkpoint_dir else {}
    settings = ForecastSettings(**overrides)
    configure_logging(settings.log_level, settings.log_format, component="forecast")
    job = ForecastJob(settings)
    run_component("forecast", settings.forecast_metrics_port, job.ready, job.run, job.stop)
