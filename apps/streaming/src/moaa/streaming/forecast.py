"""The forecast job: next-day hourly mean temperature per station, with Spark ML.

Reads ``weather.hourly-stats`` (the stats job's hourly means) with Spark's Kafka source and
handles each micro-batch in ``foreachBatch``:

1. the batch's hourly means (temperature, and the dew point, sea-level pressure and wind
   speed means the features also use) are appended to the engine's ``incoming`` table; a
   message that is not an hourly mean is counted, logged with its reason and skipped;
2. the event-time clock is the newest hour the input is known to be complete through: the
   stats job writes a progress mark (:class:`~moaa.common.records.StatsProgress`) to every
   partition once a micro-batch's means are all in Kafka, and the clock is the oldest of the
   newest marks of the partitions (the newest mean seen is not a clock: a micro-batch's
   means are written by several tasks at once, so its newest hour can be read before its
   older ones). An hour is **final** once the clock is ``MOAA_FORECAST_FINAL_LAG_HOURS``
   past it (the stats watermark of 2 h + the hour itself); the marks are kept in
   ``state.json``;
3. the :class:`~moaa.streaming.forecast_engine.ForecastEngine` walks the newly final hours
   in steps (a backlog in bulk): final-hours table, features, retraining on its event-time
   schedule, scoring, verification — all of it Spark work on the tables under
   ``<checkpoint>/forecast.v5`` (:mod:`moaa.streaming.forecast_store`);
4. forecasts go to ``weather.forecasts`` (key ``<station>|<issued_at>``) and the skill of
   every touched station and of ``ALL`` to ``weather.forecast-skill``, written by Spark's Kafka
   sink; each step is recorded in ``state.json`` before the next starts, and Spark commits the
   batch's offsets after the last.

A crash replays at most the last batch and the step it interrupted: the engine's tables are
replaced step by step and the Kafka keys are idempotent.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from functools import reduce
from pathlib import Path
from typing import Annotated, Any

import typer
from prometheus_client import Counter, Gauge, Histogram
from pydantic import Field
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from moaa.common.kafka import (
    TOPIC_FORECAST_SKILL,
    TOPIC_FORECASTS,
    TOPIC_HOURLY_STATS,
    KafkaSettings,
    ensure_topics,
)
from moaa.common.logs import configure_logging
from moaa.common.ops import run_component
from moaa.common.records import STATS_PROGRESS_KEY, HourlyStats, StatsProgress
from moaa.streaming.forecast_engine import (
    TRAINING_POOL,
    EngineConfig,
    ForecastEngine,
    StepResult,
)
from moaa.streaming.forecast_features import (
    COVARIATES,
    PREDICTORS,
    RAW_FIELDS,
    SKILL_DEFINITION,
)
from moaa.streaming.forecast_model import StoredModel
from moaa.streaming.forecast_store import LAYOUT, OLD_LAYOUTS, IncomingBatch
from moaa.streaming.spark import (
    SparkSettings,
    build_session,
    kafka_options,
    kafka_source_options,
    metrics_conf,
    run_spark_job,
    spark_schema,
    supervise,
)

__all__ = [
    "TOPIC_FORECASTS",
    "TOPIC_FORECAST_SKILL",
    "ForecastJob",
    "ForecastSettings",
    "command",
]

log = logging.getLogger(__name__)


#: What the job reads of :class:`moaa.common.records.HourlyStats`.
STATS_SCHEMA = spark_schema(HourlyStats, ("station_id", "hour", "mean_c", "name", *COVARIATES))
#: What it reads of the stats job's :class:`moaa.common.records.StatsProgress` marks.
PROGRESS_SCHEMA = spark_schema(StatsProgress, ("hour", "partitions"))

MAE = Gauge(
    "weather_forecast_mae_celsius",
    "Mean absolute error of forecasts over all stations, by lead (hours, or all) and predictor",
    ["lead", "predictor"],
)
SKILL = Gauge(
    "weather_forecast_skill",
    f"Skill over all stations, by lead (hours, or all): {SKILL_DEFINITION}",
    ["lead"],
)
MODEL_VERSION = Gauge("weather_forecast_model_version", "Version of the model in use (0 = none)")
TRAININGS = Counter("weather_forecast_trainings_total", "Models trained and saved")
TRAINING_SECONDS = Histogram(
    "weather_forecast_training_seconds",
    "Duration of one training (training set, fit, save)",
    buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300),
)
PUBLISHED = Counter("weather_forecasts_published_total", "Forecasts (24 points each) published")
ISSUED_HOUR = Gauge(
    "weather_forecast_issued_hour_timestamp_seconds",
    "Issue hour of the latest forecasts (Unix time)",
)
LAG = Gauge(
    "weather_forecast_lag_hours",
    "Hours between the newest hour seen and the last final hour processed (the final lag, "
    "3 h by default, when the job keeps up)",
)
FINAL_HOUR = Gauge(
    "weather_forecast_final_hour_timestamp_seconds",
    "Last final hour processed: verified, retrained if due, forecast from (Unix time)",
)
STEP_SECONDS = Histogram(
    "weather_forecast_step_seconds",
    "Duration of one step: final hours table, features, training if due, scoring, publishing "
    "and verification of up to MOAA_FORECAST_MAX_STEP_HOURS final hours",
    buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600),
)
STEP_HOURS = Counter("weather_forecast_final_hours_total", "Final hours processed")
LATE = Counter(
    "weather_forecast_late_means_total",
    "Hourly means that arrived for an hour already final (ignored)",
)
UNREADABLE = Counter(
    "weather_forecast_unreadable_messages_total",
    "Messages of the input topic that are not hourly means (skipped, with a log line)",
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
        description="An hour is final (verified, forecast from) once the stats job's progress "
        "marks on every partition are this far past it: the stats watermark (2 h) plus the "
        "hour itself.",
    )
    forecast_max_offsets_per_trigger: int = Field(
        1_000_000,
        description="Most hourly-stats messages read per micro-batch (a backlog is read in "
        "batches of this many; every station's hour is one message or a few).",
    )
    forecast_step_station_hours: int = Field(
        672_000,
        ge=1,
        description="Most station-hours processed by one step: a backlog (a fast tick, a "
        "restart after downtime) is caught up in bulk, this many divided by the stations per "
        "round of Spark jobs (48 hours at 14,000 stations, the most hours at a few hundred). "
        "A step's memory grows with it, its fixed costs do not.",
    )
    forecast_max_step_hours: int = Field(
        336,
        ge=1,
        description="Most final hours processed by one step, whatever the stations.",
    )
    forecast_train_max_rows: int = Field(
        2_000_000,
        ge=1000,
        description="Most training rows (issues × 24 leads) in one training window: above it the "
        "issues are sampled (deterministically, by station and hour) to stay below.",
    )
    forecast_train_in_background: bool = Field(
        True,
        description="Train beside issuing: a due retraining runs in the background (Spark "
        "scheduler pool `training`, a third of the cores when both want them) while forecasts go "
        "on with the current model, swapped for the new one when it is ready. false: the job "
        "waits for each training (what the walk-forward benchmark does).",
    )
    forecast_partitions: int = Field(
        4,
        ge=1,
        description="Shuffle partitions of the forecast job (its tasks per stage); the stations "
        "are split into twice as many groups for the feature computation.",
    )
    forecast_station_skill_every_hours: int = Field(
        1,
        ge=1,
        description="Publish the per-station skill documents every this many final hours (the "
        "all-stations ALL document on every step): each time, one upsert per station.",
    )
    forecast_metrics_port: int = Field(
        9303, description="Port of /metrics, /healthz, /readyz of the forecast job (0 = off)."
    )

    def engine_config(self) -> EngineConfig:
        return EngineConfig(
            window_days=self.forecast_window_days,
            clim_days=self.forecast_clim_days,
            retrain_every_hours=self.forecast_retrain_every_hours,
            min_history_days=self.forecast_min_history_days,
            step_station_hours=self.forecast_step_station_hours,
            max_step_hours=self.forecast_max_step_hours,
            train_max_rows=self.forecast_train_max_rows,
            buckets=2 * self.forecast_partitions,
            station_skill_every_hours=self.forecast_station_skill_every_hours,
            train_in_background=self.forecast_train_in_background,
        )


#: How often the job looks for a finished background training (see ``ForecastJob._tend``).
_TEND_EVERY_S = 2.0
#: Steps (the default pool) get three times a background training's share of the cores,
#: and at least one core whenever they have tasks.
_POOLS = f"""<?xml version="1.0"?>
<allocations>
  <pool name="default">
    <schedulingMode>FIFO</schedulingMode><weight>3</weight><minShare>1</minShare>
  </pool>
  <pool name="{TRAINING_POOL}">
    <schedulingMode>FIFO</schedulingMode><weight>1</weight><minShare>0</minShare>
  </pool>
</allocations>
"""


def _scheduler_pools(root: Path) -> dict[str, str]:
    """Spark conf of the fair scheduler with the two pools of :data:`_POOLS`."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / "scheduler-pools.xml"
    path.write_text(_POOLS)
    return {"spark.scheduler.mode": "FAIR", "spark.scheduler.allocation.file": str(path)}


def _on_train(stored: StoredModel, seconds: float) -> None:
    TRAININGS.inc()
    TRAINING_SECONDS.observe(seconds)
    MODEL_VERSION.set(stored.version)
    meta = stored.metadata
    log.info(
        "trained forecast model v%d through %s on %s rows of %s stations",
        stored.version,
        meta.get("trained_through"),
        meta.get("rows"),
        meta.get("stations"),
        extra={"duration_s": round(seconds, 3)},
    )


#: The columns of :func:`parse_input` that are not columns of the incoming table.
_PARSE_ONLY = ("_readable", "_mark", "_valid_mark", "_mark_hour", "_mark_partitions")


def parse_input(batch: DataFrame, batch_id: int) -> DataFrame:
    """The forecast job's micro-batch of ``weather.hourly-stats`` (Kafka's ``key``, ``value``,
    ``partition``, ``offset``), parsed: the hourly means' columns of the incoming table, and
    ``_mark`` / ``_valid_mark`` / ``_mark_hour`` / ``_mark_partitions`` of the stats job's
    progress marks, and ``_readable`` (an hourly mean the job uses)."""
    key = F.col("key").cast("string")
    value = F.col("value").cast("string")
    mark = F.coalesce(key == F.lit(STATS_PROGRESS_KEY), F.lit(False))
    return (
        batch.select(
            "partition",
            "offset",
            mark.alias("_mark"),
            F.when(~mark, F.from_json(value, STATS_SCHEMA)).alias("s"),
            F.when(mark, F.from_json(value, PROGRESS_SCHEMA)).alias("m"),
        )
        .select(
            "s.station_id",
            "s.name",
            F.col("s.mean_c").alias("x"),
            *(F.col(f"s.{c}").alias(r) for c, r in zip(COVARIATES, RAW_FIELDS[1:], strict=True)),
            F.lit(batch_id).cast("long").alias("batch_id"),
            "partition",
            "offset",
            F.floor(F.unix_timestamp("s.hour") / 3600).cast("long").alias("hour"),
            "_mark",
            F.floor(F.unix_timestamp("m.hour") / 3600).cast("long").alias("_mark_hour"),
            F.col("m.partitions").alias("_mark_partitions"),
        )
        .withColumn(
            "_valid_mark",
            F.col("_mark")
            & F.col("_mark_hour").isNotNull()
            & F.coalesce(F.col("_mark_partitions") >= 1, F.lit(False)),
        )
        .withColumn(
            "_readable",
            ~F.col("_mark")
            & F.col("station_id").isNotNull()
            & F.col("x").isNotNull()
            & F.col("hour").isNotNull(),
        )
    )


@dataclass(frozen=True)
class BatchFigures:
    """What one Spark job counts of a parsed micro-batch (see :func:`batch_figures`)."""

    messages: int
    #: messages that are neither hourly means nor readable progress marks (skipped)
    unreadable: int
    #: the stats job's progress marks: the newest marked hour per partition, and the
    #: partition count (what the marks say, or more if the batch read a partition beyond it:
    #: that partition then needs a mark too); None: the batch has no mark
    marks: tuple[dict[int, int], int] | None
    #: the figures of its hourly means (written to the engine's incoming table)
    incoming: IncomingBatch


def batch_figures(rows: DataFrame, last_final: int | None) -> BatchFigures:
    """Count a micro-batch parsed by :func:`parse_input` in one Spark job (a grouping set per
    partition for the marks, and one over the batch for the rest): a micro-batch's fixed
    cost is its Spark jobs, and the job is behind the stats by as many of them."""
    found = rows.sparkSession.sql(
        f"""SELECT `partition`, grouping(`partition`) = 1 AS whole,
                   count(1) AS messages,
                   count(CASE WHEN NOT (_readable OR _valid_mark) THEN 1 END) AS unreadable,
                   max(CASE WHEN _valid_mark THEN _mark_hour END) AS mark_hour,
                   max(CASE WHEN _valid_mark THEN _mark_partitions END) AS mark_partitions,
                   {IncomingBatch.aggregates(last_final, "_readable")}
            FROM {{rows}} GROUP BY GROUPING SETS ((`partition`), ())""",
        rows=rows,
    ).collect()
    whole = next((r for r in found if r["whole"]), None)  # none for an empty batch
    parts = [r for r in found if not r["whole"]]
    marks = {int(r["partition"]): int(r["mark_hour"]) for r in parts if r["mark_hour"] is not None}
    counted = None
    if marks:
        seen = max(int(r["partition"]) for r in parts) + 1
        said = [int(r["mark_partitions"]) for r in parts if r["mark_partitions"] is not None]
        counted = (marks, max(seen, *said))
    return BatchFigures(
        messages=int(whole["messages"]) if whole else 0,
        unreadable=int(whole["unreadable"]) if whole else 0,
        marks=counted,
        incoming=IncomingBatch.of(whole),
    )


class KafkaSink:
    """The engine's documents to Kafka, written by Spark's Kafka sink (acks=all): a step's
    forecasts and skill documents in one write, each row naming its topic."""

    def __init__(self, settings: ForecastSettings) -> None:
        self.settings = settings
        self.options = kafka_options(settings)

    def publish(self, forecasts: DataFrame | None, skill: DataFrame | None) -> None:
        s = self.settings
        parts = [
            docs.sparkSession.sql(
                "SELECT :topic AS topic, key, value FROM {docs}", {"topic": topic}, docs=docs
            )
            for docs, topic in ((forecasts, s.topic_forecasts), (skill, s.topic_forecast_skill))
            if docs is not None
        ]
        if parts:
            reduce(DataFrame.unionAll, parts).write.format("kafka").options(**self.options).save()


class ForecastJob:
    """The streaming job around the engine: Kafka in and out, metrics, lifecycle."""

    def __init__(self, settings: ForecastSettings) -> None:
        self.settings = settings
        self.root = settings.checkpoint_dir / LAYOUT
        self._stop = threading.Event()
        #: the engine is driven by the streaming query's batches and by the tending thread
        self._lock = threading.Lock()
        self._query: Any = None
        self.spark: SparkSession | None = None
        self.engine: ForecastEngine | None = None
        self.unreadable_total = 0  # messages of the input topic that were not hourly means
        self._unmarked = 0  # micro-batches in a row with means but the input not yet complete

    # -- lifecycle ----------------------------------------------------------------------------

    def ready(self) -> tuple[bool, str]:
        if self._query is None or not self._query.isActive:
            return False, "query not running"
        return True, "ok"

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        from confluent_kafka.admin import AdminClient  # noqa: PLC0415

        s = self.settings
        ensure_topics(
            AdminClient(s.kafka_client_config()),
            [s.topic_forecasts, s.topic_forecast_skill],
            s.topic_partitions,
            s.topic_replication_factor,
            s.topic_retention_ms,
        )
        conf = {
            **metrics_conf("moaa_forecast"),
            "spark.sql.shuffle.partitions": str(s.forecast_partitions),
            **_scheduler_pools(self.root),
        }
        self.spark = build_session("moaa-forecast", s, conf)
        self.spark.sparkContext.setLogLevel("WARN")
        for old in (s.checkpoint_dir / name for name in OLD_LAYOUTS):
            if old.is_dir():
                log.warning(
                    "%s is the state of an earlier forecast job layout and is not read by this "
                    "version (it keeps its state in %s and re-reads the retained hourly stats); "
                    "delete it once this job runs",
                    old,
                    self.root,
                )
        self.engine = ForecastEngine(
            self.spark, s.engine_config(), self.root, KafkaSink(s), _on_train
        )
        engine = self.engine
        if engine.model is not None:
            MODEL_VERSION.set(engine.model.version)
            log.info(
                "loaded forecast model v%d",
                engine.model.version,
                extra={"model": engine.model.metadata},
            )
        if engine.state.last_final is not None:
            FINAL_HOUR.set(engine.state.last_final * 3600)
            log.info("restored state through %s", engine.state.last_final)
        self._set_lag()
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
        if s.forecast_train_in_background:
            threading.Thread(target=self._tend, name="forecast-tend", daemon=True).start()
        supervise(self.spark, [self._query], self._stop)
        self._query.stop()
        engine.close()  # a training still running is abandoned: it is redone after a restart
        self.spark.stop()

    # -- one micro-batch ----------------------------------------------------------------------

    def _engine(self) -> ForecastEngine:
        if self.engine is None:
            raise RuntimeError("the forecast engine is not started")
        return self.engine

    def _tend(self) -> None:
        """Every few seconds: a background training's model is used as soon as it is ready,
        and the next due one started, even when no new hourly means arrive (a raised
        training error ends the job: see ``exit_on_thread_crash``)."""
        engine = self._engine()
        while not self._stop.wait(_TEND_EVERY_S):
            with self._lock:
                try:
                    engine.tend()
                except Exception:
                    if not self._stop.is_set():
                        raise
                    # the Spark session is stopping under a training: not a crash
                    log.info("background training ended by the shutdown; redone after a restart")
                    return

    def _batch(self, batch: DataFrame, batch_id: int) -> None:
        with self._lock:
            self._batch_locked(batch, batch_id)

    def _batch_locked(self, batch: DataFrame, batch_id: int) -> None:
        engine = self._engine()
        started = time.perf_counter()
        rows = (
            parse_input(batch, batch_id).persist()  # Kafka is read once: counted, then written
        )
        try:
            figures = batch_figures(rows, engine.state.last_final)
            self._log_unreadable(figures, batch_id)
            info = engine.ingest(rows.where("_readable").drop(*_PARSE_ONLY), figures.incoming)
        finally:
            rows.unpersist()
        marks = figures.marks
        if info.late:
            LATE.inc(info.late)
            log.warning(
                "batch %d: %d hourly means for hours already final, ignored", batch_id, info.late
            )
        if marks:  # after the means: a mark says they are all read
            engine.note_marks(*marks)
        complete = engine.complete_through
        if complete is not None:
            self._unmarked = 0
            for step in engine.advance(complete - self.settings.forecast_final_lag_hours):
                self._observe(step)
        elif info.rows:
            self._unmarked += 1
            if self._unmarked % 50 == 3:  # not at once: the first marks follow the first means
                log.warning(
                    "%d micro-batches of hourly means, but not every partition of %s has a "
                    "progress mark of the stats job yet: no hour is final until each has one "
                    "(a stats job of an older version, or another writer, writes none)",
                    self._unmarked,
                    self.settings.topic_hourly_stats,
                    extra={"reason": "no_progress_marks", "marks": engine.state.marks},
                )
        self._set_lag()
        log.info(
            "batch %d: %d means, newest hour %s, complete through %s, last final %s",
            batch_id,
            info.rows,
            info.newest,
            complete,
            engine.state.last_final,
            extra={
                "duration_s": round(time.perf_counter() - started, 3),
                "lag_hours": engine.lag_hours,
            },
        )

    def _log_unreadable(self, figures: BatchFigures, batch_id: int) -> None:
        """Count, and log with the reason, the messages that are not hourly means (not JSON, or
        without a station, a mean or a readable hour) nor readable progress marks: they are
        skipped, never a crash."""
        if not figures.unreadable:
            return
        skipped = figures.unreadable
        UNREADABLE.inc(skipped)
        self.unreadable_total += skipped
        log.warning(
            "batch %d: skipped %d of %d messages of %s that are not hourly means (not JSON, "
            "or no station_id, mean_c or hour) nor readable progress marks",
            batch_id,
            skipped,
            figures.messages,
            self.settings.topic_hourly_stats,
            extra={
                "reason": "not_hourly_means",
                "topic": self.settings.topic_hourly_stats,
                "batch": batch_id,
                "skipped": skipped,
                "skipped_total": self.unreadable_total,
            },
        )

    def _observe(self, step: StepResult) -> None:
        STEP_SECONDS.observe(step.seconds)
        STEP_HOURS.inc(step.last - step.first + 1)
        FINAL_HOUR.set(step.last * 3600)
        if step.forecasts:
            PUBLISHED.inc(step.forecasts)
        if step.latest_issue is not None:
            ISSUED_HOUR.set(step.latest_issue * 3600)
        if step.skill_all is not None:
            _export_skill(step.skill_all)
        self._set_lag()
        log.info(
            "final hours %d…%d: %d forecasts, %d models, %d skill documents, %d stations",
            step.first,
            step.last,
            step.forecasts,
            len(step.trained),
            step.skill_keys,
            step.stations,
            extra={"duration_s": round(step.seconds, 3), "phases_s": step.phases},
        )

    def _set_lag(self) -> None:
        lag = self._engine().lag_hours
        if lag is not None:
            LAG.set(lag)


def _export_skill(doc: dict[str, Any]) -> None:
    for entry in [*doc["leads"], {"lead": "all", **doc["overall"]}]:
        lead = str(entry["lead"])
        for predictor in PREDICTORS:
            value = entry["mae"][predictor]
            if value is not None:
                MAE.labels(lead, predictor).set(value)
        if entry["skill"] is not None:
            SKILL.labels(lead).set(entry["skill"])


def command(
    checkpoint_dir: Annotated[
        Path | None, typer.Option(help="Checkpoints and models [env MOAA_CHECKPOINT_DIR].")
    ] = None,
) -> None:
    """Run the forecast job: 24 hourly forecasts per station from Spark ML, with skill.

    Spark Structured Streaming on weather.hourly-stats; retrains on an event-time schedule
    (MOAA_FORECAST_RETRAIN_EVERY_HOURS, window MOAA_FORECAST_WINDOW_DAYS), publishes to
    weather.forecasts and weather.forecast-skill; metrics on MOAA_FORECAST_METRICS_PORT.
    A fatal error (an OutOfMemoryError of the Spark driver included) ends the process with
    exit code 1 and a log line saying why.
    """
    overrides = {"checkpoint_dir": checkpoint_dir} if checkpoint_dir else {}
    settings = ForecastSettings(**overrides)
    configure_logging(settings.log_level, settings.log_format, component="forecast")
    job = ForecastJob(settings)
    run_spark_job(
        "forecast",
        lambda: run_component(
            "forecast", settings.forecast_metrics_port, job.ready, job.run, job.stop
        ),
    )
