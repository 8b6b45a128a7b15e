"""The data contract: every record that crosses a process boundary, declared once.

=========================  ======================  =========================================
record                     schema id               where it travels
=========================  ======================  =========================================
:class:`Observation`       ``observation.v1``      socket (feeder → producer), topic
                                                   ``weather.observations``
:class:`Rejection`         ``rejection.v1``        socket, topic ``weather.observations.dlq``
:class:`HourlyStats`       ``hourly-stats.v1``     topic ``weather.hourly-stats``, collection
                                                   ``hourly_stats``
:class:`StatsProgress`     ``stats-progress.v1``   topic ``weather.hourly-stats`` (key
                                                   ``stats-progress``, every partition)
:class:`HourlySummary`     ``hourly-summary.v1``   topic ``weather.hourly-summary``,
                                                   collection ``hourly_summary``
:class:`Forecast`          ``forecast.v1``         topic ``weather.forecasts``, collection
                                                   ``forecasts``
:class:`ForecastSkill`     ``forecast-skill.v1``   topic ``weather.forecast-skill``,
                                                   collection ``forecast_skill``
socket frames              protocol 1              :mod:`moaa.common.protocol` (``hello``,
                                                   ``batch``, ``ack``, ``nack``)
=========================  ======================  =========================================

Field names here are the wire names. Every other form is derived from these classes or
checked against them by a test: the Spark schemas the jobs parse with
(:func:`moaa.streaming.spark.spark_schema`), the columns the jobs write, the website's API
models, and the JSON Schemas in ``docs/schemas/`` (``make docs`` writes them; a test
checks they are current). Hours are strings of :mod:`moaa.common.hours` on the wire
(``datetime`` here: msgspec writes them in that form).

A field that the writer leaves out when it has no value (Spark's ``to_json`` drops nulls)
has a default of ``None``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from moaa.common.observation import (
    OBSERVATION_SCHEMA,
    REJECTION_SCHEMA,
    Observation,
    Rejection,
    StationId,
    UtcDatetime,
)
from moaa.common.protocol import Ack, Batch, Hello, Nack

__all__ = [
    "COLLECTIONS",
    "FORECAST_SCHEMA",
    "FRAMES",
    "HOURLY_STATS_SCHEMA",
    "HOURLY_SUMMARY_SCHEMA",
    "OBSERVATION_SCHEMA",
    "PREDICTORS",
    "RECORDS",
    "REJECTION_SCHEMA",
    "SKILL_DEFINITION",
    "SKILL_SCHEMA",
    "STATS_PROGRESS_KEY",
    "STATS_PROGRESS_SCHEMA",
    "Forecast",
    "ForecastPoint",
    "ForecastSkill",
    "HourlyStats",
    "HourlySummary",
    "LeadSkill",
    "Observation",
    "Rejection",
    "SkillOverall",
    "StatsProgress",
    "datetime_fields",
    "json_schemas",
    "write_json_schemas",
]

HOURLY_STATS_SCHEMA = "hourly-stats.v1"
HOURLY_SUMMARY_SCHEMA = "hourly-summary.v1"
STATS_PROGRESS_SCHEMA = "stats-progress.v1"
#: The Kafka key of :class:`StatsProgress` (never a ``<station>|<hour>`` key: no ``|``).
STATS_PROGRESS_KEY = "stats-progress"
FORECAST_SCHEMA = "forecast.v1"
SKILL_SCHEMA = "forecast-skill.v1"

#: The model and the three baselines, in the order of the skill documents' ``mae``.
PREDICTORS = ("model", "last_value", "same_hour_yesterday", "climatology")
#: What the published skill means (the job computes it, the website and the metrics' help
#: say it).
SKILL_DEFINITION = "1 − MAE(model) / MAE(same hour yesterday)"

Lead = Annotated[int, Meta(ge=1, le=24, description="Hours after the issue time.")]
Count = Annotated[int, Meta(ge=0)]


class HourlyStats(msgspec.Struct, frozen=True, kw_only=True):
    """One station's figures for one UTC hour (key ``<station>|<hour>``): min, max, mean of
    its valid temperatures and their count, the station's name and position, and the means
    of the same observations' dew point, sea-level pressure and wind speed (absent when none
    carried one). Re-emitted while the hour is open; the last one is final."""

    station_id: StationId
    hour: UtcDatetime
    min_c: float | None = None
    max_c: float | None = None
    mean_c: float | None = None
    count: Count
    name: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    elevation_m: float | None = None
    dew_point_mean_c: float | None = None
    sea_level_pressure_mean_hpa: float | None = None
    wind_speed_mean_ms: float | None = None


class StatsProgress(msgspec.Struct, frozen=True, kw_only=True):
    """The stats job's mark on one partition of ``weather.hourly-stats`` (key
    :data:`STATS_PROGRESS_KEY`), written to every partition once a micro-batch's hourly stats
    are all in Kafka: on ``partition``, every hourly stats record of micro-batches up to
    ``batch`` comes before it.

    ``hour`` is the newest observation hour the batch's watermark counts from (the stats
    watermark ``W`` in effect is ``hour`` + its minutes − ``W``). Spark drops an observation
    older than the watermark in every later batch, and a micro-batch's records reach the
    partitions from several tasks at once, so the newest hour *read* says nothing about the
    hours still being written. A reader that has read a mark of hour ``H`` or later on each
    of the ``partitions`` partitions has every record the stats job will ever emit for the
    hours up to ``H − W − 1 h`` (the forecast job's clock)."""

    schema: str = STATS_PROGRESS_SCHEMA
    hour: UtcDatetime
    partition: Count
    partitions: Annotated[int, Meta(ge=1)]
    batch: Count


class HourlySummary(msgspec.Struct, frozen=True, kw_only=True):
    """All stations for one UTC hour (key ``<hour>``): min, max, mean, valid readings and
    (approximately, ±1 %) the stations with one."""

    hour: UtcDatetime
    min_c: float | None = None
    max_c: float | None = None
    mean_c: float | None = None
    count: Count
    stations: Count


class ForecastPoint(msgspec.Struct, frozen=True, kw_only=True):
    lead: Lead
    target_hour: UtcDatetime
    value: Annotated[float, Meta(description="Forecast temperature (°C).")] | None = None


class Forecast(msgspec.Struct, frozen=True, kw_only=True):
    """The next 24 hours of one station from one issue hour (key ``<station>|<issued_at>``)."""

    schema: str = FORECAST_SCHEMA
    station_id: StationId
    issued_at: UtcDatetime
    model_version: int
    points: list[ForecastPoint]
    name: str | None = None


#: Mean absolute error (°C) per predictor (:data:`PREDICTORS`); null while unknown.
Maes = dict[str, float | None]


class SkillOverall(msgspec.Struct, frozen=True, kw_only=True):
    n: Count
    mae: Maes
    skill: float | None = None


class LeadSkill(SkillOverall, frozen=True, kw_only=True):
    lead: Lead


class ForecastSkill(msgspec.Struct, frozen=True, kw_only=True):
    """Verified forecast errors of one station (or ``ALL``, every station) by lead and
    overall, with the skill (:data:`SKILL_DEFINITION`; null when the baseline's MAE is
    unknown or 0)."""

    schema: str = SKILL_SCHEMA
    station_id: str
    updated_hour: UtcDatetime
    model_version: int
    leads: list[LeadSkill]
    overall: SkillOverall


#: Schema id → record, for every record on a topic or the socket.
RECORDS: dict[str, type[msgspec.Struct]] = {
    OBSERVATION_SCHEMA: Observation,
    REJECTION_SCHEMA: Rejection,
    HOURLY_STATS_SCHEMA: HourlyStats,
    HOURLY_SUMMARY_SCHEMA: HourlySummary,
    STATS_PROGRESS_SCHEMA: StatsProgress,
    FORECAST_SCHEMA: Forecast,
    SKILL_SCHEMA: ForecastSkill,
}
#: The socket's frames (protocol 1), in the order of a conversation.
FRAMES: tuple[type[msgspec.Struct], ...] = (Hello, Batch, Ack, Nack)


#: Result record of each MongoDB collection (the insert job's topics).
COLLECTIONS: dict[str, type[msgspec.Struct]] = {
    "hourly_stats": HourlyStats,
    "hourly_summary": HourlySummary,
    "forecasts": Forecast,
    "forecast_skill": ForecastSkill,
}


def datetime_fields(record: type[msgspec.Struct]) -> frozenset[str]:
    """Dotted paths of the record's datetime fields (``"points.target_hour"`` for a field of
    the structs of the list ``points``): the hours a store keeps as dates."""
    return frozenset(_datetime_paths(msgspec.inspect.type_info(record), ""))


def _datetime_paths(info: msgspec.inspect.Type, prefix: str) -> list[str]:
    if isinstance(info, msgspec.inspect.Metadata):  # Annotated constraints
        return _datetime_paths(info.type, prefix)
    if isinstance(info, msgspec.inspect.DateTimeType):
        return [prefix]
    if isinstance(info, msgspec.inspect.UnionType):
        return [p for t in info.types for p in _datetime_paths(t, prefix)]
    if isinstance(info, msgspec.inspect.ListType):
        return _datetime_paths(info.item_type, prefix)
    if isinstance(info, msgspec.inspect.StructType):
        dot = f"{prefix}." if prefix else ""
        return [p for f in info.fields for p in _datetime_paths(f.type, f"{dot}{f.encode_name}")]
    return []


def json_schemas() -> dict[str, dict[str, Any]]:
    """File name → JSON Schema of every record (and ``socket-frames.v1`` of the frames)."""
    out = {f"{sid}.json": _titled(msgspec.json.schema(cls), sid) for sid, cls in RECORDS.items()}
    frames = msgspec.json.schema(Hello | Batch | Ack | Nack)
    out["socket-frames.v1.json"] = _titled(frames, "socket-frames.v1")
    return out


def _titled(schema: dict[str, Any], sid: str) -> dict[str, Any]:
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": sid, **schema}


def write_json_schemas(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in json_schemas().items():
        path = folder / name
        path.write_text(json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True) + "\n")
        written.append(path)
    return written


if __name__ == "__main__":  # python -m moaa.common.records docs/schemas
    for written_path in write_json_schemas(Path(sys.argv[1] if len(sys.argv) > 1 else ".")):
        print(written_path)
