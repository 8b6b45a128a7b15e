"""The JSON API's shapes (what ``/docs`` shows). Lenient on input: unknown fields are dropped
and figures may be missing, so a document written by a newer job never breaks a page.

The models of stored results (:class:`HourStats`, :class:`Summary`, :class:`Forecast`,
:class:`Skill` and their parts) show fields of the records of :mod:`moaa.common.records`
under the same names; a test checks every such field exists there.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from moaa.common.records import SKILL_DEFINITION

__all__ = [
    "SKILL_DEFINITION",
    "Component",
    "ErrorEvent",
    "Forecast",
    "ForecastPoint",
    "HourStats",
    "Lag",
    "LagPartition",
    "LeadSkill",
    "Now",
    "Pipeline",
    "SearchHit",
    "Skill",
    "SkillOverall",
    "StationForecast",
    "StationPage",
    "Stations",
    "Summary",
]


SKILL_HELP = (
    f"Skill = {SKILL_DEFINITION}: above 0 the model beats the same hour of the day before, "
    "1 is perfect (null when the baseline's MAE is unknown or 0)."
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Error(_Model):
    """Why a request was not answered (a 404, or a 503 while MongoDB is unreachable)."""

    detail: str = Field(description="What was wrong, in words.")


class HourStats(_Model):
    """One station's figures for one UTC hour (``hourly_stats``)."""

    hour: datetime
    min_c: float | None = None
    max_c: float | None = None
    mean_c: float | None = None
    count: int | None = Field(None, description="Valid temperature readings in the hour.")


class Summary(HourStats):
    """All stations for one UTC hour (``hourly_summary``)."""

    stations: int | None = Field(None, description="Stations with a reading in the hour.")


class Now(_Model):
    """The current simulated hour (the latest hour in ``hourly_summary``), compact: the
    figures of every station with a reading as columns (the i-th entry of each list is the
    i-th station of ``station_id``), rounded to 0.01 °C. Names and positions are in
    ``/api/stations`` (fetched once per ``stations_version``)."""

    hour: datetime | None = Field(description="Current simulated hour (null: no data yet).")
    summary: Summary | None
    stations_version: int = Field(
        description="Version of the station list (`/api/stations?v=…`) these ids refer to."
    )
    station_id: list[str] = Field(description="Stations with a reading this hour.")
    min_c: list[float | None]
    mean_c: list[float | None]
    max_c: list[float | None]
    count: list[int] = Field(description="Valid temperature readings of each station.")
    idle: list[str] = Field(
        description="Stations seen in the map window (MOAA_DASHBOARD_MAP_WINDOW_HOURS) "
        "without a reading this hour (grey on the map)."
    )


class Stations(_Model):
    """Every station of the kept hours, as columns (same order in every list)."""

    version: int = Field(description="Changes whenever a station is added or its metadata changes.")
    station_id: list[str]
    name: list[str | None]
    latitude: list[float | None]
    longitude: list[float | None]
    elevation_m: list[float | None]
    country: list[str] = Field(
        description="FIPS country code from the ISD station list ('' if unknown)."
    )
    call_sign: list[str] = Field(
        description="ICAO call sign from the ISD station list ('' if none)."
    )


class SearchHit(_Model):
    station_id: str
    name: str | None = None
    country: str = ""
    call_sign: str = ""


class ForecastPoint(_Model):
    lead: int = Field(description="Hours after the issue time (1..24).")
    target_hour: datetime
    value: float | None = Field(None, description="Forecast temperature (°C).")


class Forecast(_Model):
    """The latest next-24 h forecast of one station (``forecasts``)."""

    station_id: str
    issued_at: datetime
    model_version: int | str | None = None
    points: list[ForecastPoint] = []


class LeadSkill(_Model):
    lead: int
    n: int | None = None
    mae: dict[str, float | None] = Field(
        {}, description="Mean absolute error (°C) of the model and each baseline."
    )
    skill: float | None = Field(None, description=SKILL_HELP)


class SkillOverall(_Model):
    n: int | None = None
    mae: dict[str, float | None] = {}
    skill: float | None = Field(None, description=SKILL_HELP)


class Skill(_Model):
    """Forecast MAE by lead for the model and the baselines (last value, same hour yesterday,
    climatology) and the skill (see ``LeadSkill.skill``) (``forecast_skill``; ``ALL``: all
    stations)."""

    station_id: str
    updated_hour: datetime | None = None
    model_version: int | str | None = None
    leads: list[LeadSkill] = []
    overall: SkillOverall | None = None


class StationPage(_Model):
    """Everything the station page shows."""

    station_id: str
    name: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    elevation_m: float | None = None
    country: str = ""
    call_sign: str = ""
    hour: datetime | None = Field(description="Current simulated hour (end of the window).")
    latest: HourStats | None = Field(description="The station's latest hour.")
    hours: list[HourStats] = Field(description="Hourly figures of the last 48 h, oldest first.")
    forecast: Forecast | None = Field(
        description="Latest forecast (null: no forecast yet, or not asked for)."
    )
    skill: Skill | None = Field(
        description="This station's skill (null: none yet, or not asked for)."
    )


class StationForecast(_Model):
    """A station's latest forecast and skill (what the station page reads beside its figures)."""

    station_id: str
    forecast: Forecast | None = Field(description="Latest forecast (null: no forecast yet).")
    skill: Skill | None = Field(description="This station's skill (null: none yet).")


class Component(_Model):
    name: str
    url: str
    up: bool
    error: str | None = None
    scraped_at: datetime | None = None
    records_per_s: float | None = Field(None, description="Records per second through the stage.")
    records_total: float | None = None


class LagPartition(_Model):
    topic: str
    partition: int
    committed: int | None
    high: int
    lag: int


class Lag(_Model):
    group: str
    total: int | None = Field(description="Messages not yet consumed (null: Kafka unreachable).")
    partitions: list[LagPartition] = []
    error: str | None = None


class ErrorEvent(_Model):
    time: datetime
    component: str
    message: str


class Pipeline(_Model):
    """The pipeline's health, from the components' own metrics endpoints and Kafka."""

    replay_hour: datetime | None = Field(description="Last hour the feeder had acknowledged.")
    components: list[Component]
    lag: Lag | None
    dlq_records: float | None = Field(description="Records sent to the dead-letter topic.")
    forecast_lag_hours: float | None = Field(
        None,
        description="Hours between the newest hour the forecast job has seen and the last "
        "final hour it processed (3, the final lag, when it keeps up).",
    )
    errors: list[ErrorEvent] = Field(description="Latest errors seen, newest first.")
