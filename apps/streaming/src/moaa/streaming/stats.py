"""The stats job: exact hourly min / max / mean temperature per station, and per hour overall.

Reads ``weather.observations`` with Spark's Kafka source and an explicit schema; event time
is the observation time. Two named streaming queries read the parsed stream:

* ``hourly_stats`` — per station and UTC hour: min, max, mean of valid temperatures and
  their count (plus the station's name and position for the map, and the means of the same
  observations' dew point, sea-level pressure and wind speed for the forecast job; absent
  when none carried one), to ``weather.hourly-stats`` keyed ``<station>|<hour>``;
* ``hourly_summary`` — per hour over all stations: min, max, mean, readings and stations,
  to ``weather.hourly-summary`` keyed ``<hour>``.

**Watermark and output mode.** The queries run in *update* mode with a watermark of
``MOAA_STATS_WATERMARK`` (default 2 hours) on the observation time: every micro-batch emits
the hours whose figures changed, so the current hour's numbers update as its records arrive;
once the watermark passes an hour's end its state is dropped and its last emitted figures
are final. The feeder's redeliveries never count twice: the per-station query aggregates
the *set* of each hour's readings (``obs_id`` with the values), the summary query
de-duplicates on ``obs_id`` within the watermark (``dropDuplicatesWithinWatermark``).
Emitted rows are upserts by key downstream, so a re-emitted batch after a restart is
harmless. Checkpoints (``MOAA_CHECKPOINT_DIR``, a PVC in Kubernetes) carry offsets and state,
one directory per query and state layout (:data:`STATE_VERSIONS`).
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import Field
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from moaa.common.errors import MoaaError
from moaa.common.hours import SPARK_HOUR_FORMAT
from moaa.common.kafka import (
    TOPIC_HOURLY_STATS,
    TOPIC_HOURLY_SUMMARY,
    TOPIC_OBSERVATIONS,
    KafkaSettings,
    ensure_topics,
    publish_progress,
)
from moaa.common.logs import configure_logging
from moaa.common.records import HourlyStats, HourlySummary, Observation
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
    "OBSERVATION_SCHEMA",
    "TOPIC_HOURLY_STATS",
    "TOPIC_HOURLY_SUMMARY",
    "UNREADABLE_METRICS",
    "StatsSettings",
    "UnreadableLog",
    "command",
    "hourly_stats",
    "hourly_summary",
    "parse_observations",
]

log = logging.getLogger(__name__)

#: The wire form of :class:`moaa.common.records.Observation`, read explicitly.
OBSERVATION_SCHEMA = spark_schema(Observation)


class StatsSettings(KafkaSettings, SparkSettings):
    """Settings of the stats job (``MOAA_*``)."""

    topic_observations: str = Field(TOPIC_OBSERVATIONS, description="Topic of valid observations.")
    topic_hourly_stats: str = Field(TOPIC_HOURLY_STATS, description="Per station and hour results.")
    topic_hourly_summary: str = Field(
        TOPIC_HOURLY_SUMMARY, description="All-stations per hour results."
    )
    stats_watermark: str = Field("2 hours", description="Event-time watermark of the stats job.")
    stats_max_offsets_per_trigger: int = Field(
        200_000, description="Upper bound of records read per micro-batch."
    )
    stats_trigger_seconds: float = Field(
        0.0,
        description="Micro-batch interval of the per-station query; 0 starts the next batch "
        "as soon as one ends.",
    )
    stats_summary_trigger_seconds: float = Field(
        5.0,
        description="Micro-batch interval of the all-stations summary query (0 = as soon as one "
        "ends). Longer than the per-station query's so the two do not compete for the same "
        "cores on every new hour; the summary lags by at most this much.",
    )


def _hour_key(hour: Column) -> Column:
    return F.date_format(hour, SPARK_HOUR_FORMAT)


#: Name of the observed metrics (``observedMetrics`` of a query's progress) that count the
#: messages read and those that were not observations.
UNREADABLE_METRICS = "observations_read"


def parse_observations(
    kafka_rows: DataFrame, watermark: str, dedupe: bool = True, count_unreadable: bool = False
) -> DataFrame:
    """Kafka rows → typed observations with a temperature, with the event-time watermark.

    A message that is not an observation (not JSON, or without ``obs_id`` or ``ts``) is
    dropped; with ``count_unreadable`` the drops are counted per micro-batch as the observed
    metrics :data:`UNREADABLE_METRICS` (``messages``, ``unreadable``), which the job logs.
    With ``dedupe`` (the summary query), de-duplicated on ``obs_id`` within the watermark;
    the per-station query de-duplicates inside its aggregation instead (see
    :func:`hourly_stats`).
    """
    parsed = kafka_rows.select(
        F.from_json(F.col("value").cast("string"), OBSERVATION_SCHEMA).alias("o")
    ).select("o.*")
    readable = F.col("obs_id").isNotNull() & F.col("ts").isNotNull()
    if count_unreadable:
        parsed = parsed.observe(
            UNREADABLE_METRICS,
            F.count(F.lit(1)).alias("messages"),
            F.coalesce(F.sum(F.when(readable, 0).otherwise(1)), F.lit(0)).alias("unreadable"),
        )
    valid = parsed.where(readable & F.col("temperature_c").isNotNull())
    watermarked = valid.withWatermark("ts", watermark)
    return watermarked.dropDuplicatesWithinWatermark(["obs_id"]) if dedupe else watermarked


#: What the per-station aggregation keeps of each observation (its set is the state).
_READING = ("obs_id", "temperature_c", "dew_point_c", "sea_level_pressure_hpa", "wind_speed_ms")


def _mean_of(readings: Column, field: str) -> Column:
    """Mean of ``field`` over the readings that carry it; null when none does."""
    values = F.filter(F.transform(readings, lambda r: r[field]), lambda v: v.isNotNull())
    total = F.aggregate(values, F.lit(0.0), lambda acc, v: acc + v)
    return F.when(F.size(values) > 0, total / F.size(values))


def hourly_stats(observations: DataFrame) -> DataFrame:
    """Per station and hour: min, max, mean, count (+ name and position, and the means of dew
    point, sea-level pressure and wind speed: null when no observation carried one), with key
    and hour.

    ``observations`` need not be de-duplicated: the aggregation keeps the *set* of the hour's
    readings (``obs_id`` and values; a redelivered record is the same element) and computes
    the figures from it. That is one stateful operator and one shuffle per micro-batch
    instead of two of each (a separate ``dropDuplicatesWithinWatermark``), which is most of
    the per-batch latency; the set holds the few readings of one station-hour.
    """
    grouped = observations.groupBy(F.col("station_id"), F.window("ts", "1 hour").alias("w")).agg(
        F.collect_set(F.struct(*_READING)).alias("readings"),
        F.max("name").alias("name"),
        F.max("latitude").alias("latitude"),
        F.max("longitude").alias("longitude"),
        F.max("elevation_m").alias("elevation_m"),
    )
    readings = F.col("readings")
    temperatures = F.transform(readings, lambda r: r["temperature_c"])
    hour = _hour_key(F.col("w.start"))
    return grouped.select(
        F.concat_ws("|", "station_id", hour).alias("key"),
        "station_id",
        hour.alias("hour"),
        F.array_min(temperatures).alias("min_c"),
        F.array_max(temperatures).alias("max_c"),
        _mean_of(readings, "temperature_c").alias("mean_c"),
        F.size(readings).cast("long").alias("count"),
        "name",
        "latitude",
        "longitude",
        "elevation_m",
        _mean_of(readings, "dew_point_c").alias("dew_point_mean_c"),
        _mean_of(readings, "sea_level_pressure_hpa").alias("sea_level_pressure_mean_hpa"),
        _mean_of(readings, "wind_speed_ms").alias("wind_speed_mean_ms"),
    ).select("key", *HourlyStats.__struct_fields__)  # the record's fields, in its order


def hourly_summary(observations: DataFrame) -> DataFrame:
    """Per hour over all stations: min, max, mean, readings and (approximate) stations."""
    grouped = observations.groupBy(F.window("ts", "1 hour").alias("w")).agg(
        F.min("temperature_c").alias("min_c"),
        F.max("temperature_c").alias("max_c"),
        F.avg("temperature_c").alias("mean_c"),
        F.count("temperature_c").alias("count"),
        F.approx_count_distinct("station_id", 0.01).alias("stations"),
    )
    hour = _hour_key(F.col("w.start"))
    return grouped.select(
        hour.alias("key"), hour.alias("hour"), "min_c", "max_c", "mean_c", "count", "stations"
    ).select("key", *HourlySummary.__struct_fields__)


def _to_kafka(df: DataFrame) -> DataFrame:
    value_columns = [c for c in df.columns if c != "key"]
    return df.select(F.col("key"), F.to_json(F.struct(*value_columns)).alias("value"))


# The layout version of each query's state. Spark cannot restore state written with another
# layout (STATE_STORE_VALUE_SCHEMA_NOT_COMPATIBLE at start), so a change to a query's
# aggregation bumps its number: the query then keeps its checkpoint in a new directory and
# re-reads the retained observations from the earliest offset, and the insert job's upserts
# absorb the re-emitted results. Version 1 is the plain query name, as before versions existed.
STATE_VERSIONS = {"hourly_stats": 2, "hourly_summary": 1}


def checkpoint_location(checkpoint_dir: Path, query: str) -> Path:
    """The checkpoint directory of ``query`` at its current state layout."""
    version = STATE_VERSIONS[query]
    return checkpoint_dir / (query if version == 1 else f"{query}.v{version}")


def superseded_checkpoints(checkpoint_dir: Path, query: str) -> list[Path]:
    """Checkpoints of ``query`` left by earlier state layouts (safe to delete)."""
    older = [checkpoint_dir / query] + [
        checkpoint_dir / f"{query}.v{v}" for v in range(2, STATE_VERSIONS[query])
    ]
    current = checkpoint_location(checkpoint_dir, query)
    return [p for p in older if p != current and p.exists()]


class MarkedKafkaWriter:
    """``foreachBatch`` of the ``hourly_stats`` query: the micro-batch's records to ``topic``
    (Spark's Kafka writer: every task's records are delivered when it returns), then a
    :class:`~moaa.common.records.StatsProgress` mark on every partition of the topic, written
    from the driver.

    The marks are how the forecast job knows which hours are complete. The records of one
    micro-batch reach the partitions from several tasks at once, so a reader can see the
    newest hour of a batch before its older hours; and Spark drops late observations by the
    watermark of the batch *before*, so a batch can still update hours older than its own
    newest one minus the watermark. A mark's hour is therefore the newest observation hour
    that this batch's watermark counts from (Spark's ``batchWatermarkMs`` of the batch, from
    the query's offset log, plus ``MOAA_STATS_WATERMARK``): no later batch changes an hour
    that ends at or before the watermark. Every batch writes one, a batch without records
    too (the one that only moves the watermark completes the last hours of a replay). A
    crash between the records and the marks fails the batch; Spark runs it again after the
    restart (same records, keyed, and the marks then).
    """

    def __init__(self, settings: StatsSettings, topic: str, location: Path) -> None:
        self.settings, self.topic, self.location = settings, topic, location
        self._producer: Any = None
        self._delay_s: int | None = None

    def producer(self) -> Any:
        if self._producer is None:
            from confluent_kafka import Producer  # noqa: PLC0415 - a driver-side client

            self._producer = Producer(
                {**self.settings.kafka_client_config(), "acks": "all", "linger.ms": 0},
                logger=logging.getLogger("librdkafka"),
            )
        return self._producer

    def watermark_ms(self, batch_id: int) -> int:
        """Spark's watermark of ``batch_id`` (ms; 0 before the first), from its offset log."""
        path = self.location / "offsets" / str(batch_id)
        try:
            meta = json.loads(path.read_text().splitlines()[1])
            return int(meta.get("batchWatermarkMs", 0))
        except (OSError, IndexError, ValueError) as exc:
            raise MoaaError(
                f"cannot read the watermark of batch {batch_id} from {path}: {exc}"
            ) from exc

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        if self._delay_s is None:  # MOAA_STATS_WATERMARK in seconds, as Spark reads it
            row = batch.sparkSession.sql(
                "SELECT unix_timestamp(TIMESTAMP'1970-01-01 00:00:00Z' + "
                f"INTERVAL {self.settings.stats_watermark}) AS s"
            ).first()
            self._delay_s = int(row["s"]) if row is not None else 0
        (
            _to_kafka(batch)
            .write.format("kafka")
            .options(**kafka_options(self.settings))
            .option("topic", self.topic)
            .save()
        )
        watermark_ms = self.watermark_ms(batch_id)
        if watermark_ms <= 0:  # no watermark yet: nothing can be complete
            return
        hour = (watermark_ms // 1000 + self._delay_s) // 3600 * 3600
        mark = datetime.fromtimestamp(hour, UTC)
        partitions = publish_progress(self.producer(), self.topic, mark, batch_id)
        log.debug("batch %d: progress %s marked on %d partitions", batch_id, mark, partitions)


def start_queries(spark: SparkSession, settings: StatsSettings) -> list:
    """Start both named queries; return their handles."""
    source = (
        spark.readStream.format("kafka")
        .options(**kafka_source_options(settings))
        .option("subscribe", settings.topic_observations)
        .option("startingOffsets", "earliest")
        .option("failOnDataLoss", "false")
        .option("maxOffsetsPerTrigger", settings.stats_max_offsets_per_trigger)
        .load()
    )
    observations = parse_observations(source, settings.stats_watermark)
    readings = parse_observations(
        source, settings.stats_watermark, dedupe=False, count_unreadable=True
    )
    queries = []
    for name, frame, topic, trigger_s in (
        (
            "hourly_stats",
            hourly_stats(readings),
            settings.topic_hourly_stats,
            settings.stats_trigger_seconds,
        ),
        (
            "hourly_summary",
            hourly_summary(observations),
            settings.topic_hourly_summary,
            settings.stats_summary_trigger_seconds,
        ),
    ):
        location = checkpoint_location(settings.checkpoint_dir, name)
        if name == "hourly_stats":  # the records, then the progress marks the forecast reads
            writer = frame.writeStream.foreachBatch(MarkedKafkaWriter(settings, topic, location))
        else:
            writer = (
                _to_kafka(frame)
                .writeStream.format("kafka")
                .options(**kafka_options(settings))
                .option("topic", topic)
            )
        writer = (
            writer.queryName(name).outputMode("update").option("checkpointLocation", str(location))
        )
        for old in superseded_checkpoints(settings.checkpoint_dir, name):
            log.warning(
                "query %s: %s is the checkpoint of an earlier state layout and is not read by "
                "this version, which keeps its state in %s (re-reading the retained "
                "observations when that is new). Delete the old directory to free its space.",
                name,
                old,
                location,
                extra={"query": name, "superseded_checkpoint": str(old)},
            )
        if trigger_s:
            writer = writer.trigger(processingTime=f"{trigger_s} seconds")
        queries.append(writer.start())
        log.info("started query %s → %s", name, topic, extra={"query": name, "topic": topic})
    return queries


class UnreadableLog:
    """Logs the messages a query dropped as not observations, once per micro-batch that had
    some (from the query's progress: :data:`UNREADABLE_METRICS`), with the running total."""

    def __init__(self, query: Any, topic: str) -> None:
        self.query = query
        self.topic = topic
        self.total = 0
        self._last_batch = -1

    def __call__(self) -> None:
        try:
            self._check()
        except Exception as exc:  # reporting must never take the job down
            log.warning("could not read the stats query's progress: %s", exc)

    def _check(self) -> None:
        for progress in self.query.recentProgress:
            batch = progress.batchId
            if batch <= self._last_batch:
                continue
            self._last_batch = batch
            metrics = (progress.observedMetrics or {}).get(UNREADABLE_METRICS)
            skipped = int(metrics["unreadable"] or 0) if metrics is not None else 0
            if skipped:
                self.total += skipped
                log.warning(
                    "skipped %d messages of %s that are not observations (not JSON, or no "
                    "obs_id or ts)",
                    skipped,
                    self.topic,
                    extra={
                        "reason": "not_an_observation",
                        "topic": self.topic,
                        "batch": batch,
                        "skipped": skipped,
                        "skipped_total": self.total,
                    },
                )


def run(settings: StatsSettings) -> None:
    from confluent_kafka.admin import AdminClient  # noqa: PLC0415 - only to create topics

    ensure_topics(
        AdminClient(settings.kafka_client_config()),
        [settings.topic_hourly_stats, settings.topic_hourly_summary],
        settings.topic_partitions,
        settings.topic_replication_factor,
        settings.topic_retention_ms,
    )
    spark = build_session("moaa-stats", settings, metrics_conf("moaa_stats"))
    spark.sparkContext.setLogLevel("WARN")
    queries = start_queries(spark, settings)
    stop = threading.Event()

    def _stop(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping the queries", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    supervise(spark, queries, stop, UnreadableLog(queries[0], settings.topic_observations))
    for query in queries:
        query.stop()
    spark.stop()


def command(
    checkpoint_dir: Annotated[
        Path | None, typer.Option(help="Checkpoints [env MOAA_CHECKPOINT_DIR].")
    ] = None,
) -> None:
    """Run the stats job: exact hourly min / max / mean per station and overall, to Kafka.

    Spark Structured Streaming on weather.observations (event time = observation time,
    update mode, watermark MOAA_STATS_WATERMARK, de-duplication on obs_id), writing to
    weather.hourly-stats (key station|hour) and weather.hourly-summary (key hour).
    """
    overrides = {"checkpoint_dir": checkpoint_dir} if checkpoint_dir else {}
    settings = StatsSettings(**overrides)
    configure_logging(settings.log_level, settings.log_format, component="stats")
    run_spark_job("stats", lambda: run(settings))
