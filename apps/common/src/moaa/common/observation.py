"""The typed observation that flows through the pipeline, and its wire form.

One :class:`Observation` is one accepted ISD report (one CSV row). Its JSON form
(:meth:`Observation.to_json`) is what the feeder sends, what the producer validates and
publishes unchanged to Kafka, and what the streaming jobs parse with an explicit schema:
field names here are the wire contract. The constraints below are checked whenever a
record is decoded (:meth:`Observation.from_json`), so every stage validates with the same
rules. Kafka messages carry the schema version in the ``moaa-schema`` header.

All datetimes are UTC-aware. Temperatures are in degrees Celsius, pressures in hPa,
speeds in m/s, lengths in metres: units are in the field names.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from msgspec import Meta

__all__ = [
    "OBSERVATION_SCHEMA",
    "REJECTION_SCHEMA",
    "Observation",
    "Rejection",
    "hour_of",
    "observation_id",
]

#: Value of the ``moaa-schema`` Kafka header; bumped when a field changes meaning or name.
OBSERVATION_SCHEMA = "observation.v1"
#: The same for a :class:`Rejection` on the dead-letter topic.
REJECTION_SCHEMA = "rejection.v1"

StationId = Annotated[str, Meta(pattern=r"^[0-9A-Z]{11}$")]
UtcDatetime = Annotated[datetime, Meta(tz=True)]
Latitude = Annotated[float, Meta(ge=-90.0, le=90.0)]
Longitude = Annotated[float, Meta(ge=-180.0, le=180.0)]
Celsius = Annotated[float, Meta(ge=-93.2, le=61.8)]
ShortText = Annotated[str, Meta(max_length=120)]


def hour_of(ts: datetime) -> datetime:
    """The UTC clock hour an observation belongs to: its timestamp truncated to the hour.

    Truncation (not rounding) is the documented bucketing rule: a METAR at 05:51
    belongs to hour 05:00, a SYNOP at 06:00 to hour 06:00.
    """
    return ts.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def observation_id(station_id: str, raw_date: str, raw_fields: tuple[str, ...]) -> str:
    """A stable id derived from the data alone, so redeliveries can be recognised.

    The same source row always gets the same id, whatever file, run or replay it came
    from: ``<station>-<YYYYMMDDHHMMSS>-<8 hex of a hash of the whole row>``. The hash is the
    first 4 bytes of the MD5 of the row's fields joined by ``\x1f`` (not for security: MD5 is
    what ``moaa prepare``'s DuckDB computes in bulk, to the same digits).
    """
    joined = "\x1f".join(raw_fields).encode()
    digest = hashlib.md5(joined, usedforsecurity=False).hexdigest()[:8]
    compact = raw_date.replace("-", "").replace("T", "").replace(":", "")
    return f"{station_id}-{compact}-{digest}"


class Observation(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One accepted ISD report.

    ``temperature_c`` is ``None`` when the report carries no air temperature (the
    ``+9999`` sentinel); such rows are kept (they carry other fields) but never count
    in temperature statistics.
    """

    obs_id: Annotated[str, Meta(min_length=12, max_length=64)]
    station_id: StationId
    ts: UtcDatetime
    name: ShortText
    latitude: Latitude
    longitude: Longitude
    elevation_m: float | None
    report_type: Annotated[str, Meta(max_length=8)]
    source: Annotated[str, Meta(max_length=2)]
    temperature_c: Celsius | None
    temperature_quality: Annotated[str, Meta(max_length=1)] | None
    dew_point_c: Celsius | None = None
    sea_level_pressure_hpa: Annotated[float, Meta(ge=800.0, le=1100.0)] | None = None
    wind_speed_ms: Annotated[float, Meta(ge=0.0, le=999.9)] | None = None

    @property
    def hour(self) -> datetime:
        """The UTC hour bucket of this observation (see :func:`hour_of`)."""
        return hour_of(self.ts)

    def to_json(self) -> bytes:
        """The wire form: compact JSON, timestamps as RFC 3339 UTC (``…Z``)."""
        return _ENCODER.encode(self)

    def to_record(self) -> dict[str, Any]:
        """The JSON-ready dict form (what :meth:`to_json` encodes)."""
        return msgspec.to_builtins(self)

    @classmethod
    def from_json(cls, data: bytes | str) -> Observation:
        """Decode and validate one record; raises :class:`msgspec.ValidationError`."""
        return _OBS_DECODER.decode(data)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Observation:
        """Validate a dict (e.g. read back from Parquet or Kafka) into an observation."""
        return msgspec.convert(record, cls)


class Rejection(msgspec.Struct, frozen=True):
    """A row or record that was not accepted, with why.

    ``reason`` is a short stable code (e.g. ``bad_date``, ``tmp_quality_error``) used as
    a metric label and in the dead-letter topic; ``detail`` is for humans; ``stage``
    says who rejected it (``parse`` while preparing, ``producer`` at the socket).
    """

    source: str
    line: int
    reason: str
    detail: str
    raw: str
    stage: str = "parse"

    def to_json(self) -> bytes:
        return _ENCODER.encode(self)

    def to_record(self) -> dict[str, Any]:
        return msgspec.to_builtins(self)


_ENCODER = msgspec.json.Encoder()
_OBS_DECODER = msgspec.json.Decoder(Observation)
