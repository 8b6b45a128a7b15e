"""The typed observation that flows through the pipeline.

One :class:`Observation` is one accepted ISD report (one CSV row). Its JSON form
(:meth:`Observation.to_record`) is what the producer publishes to Kafka and what the
streaming jobs parse with an explicit schema, so field names here are the wire
contract: rename one and every stage must follow.

All datetimes are UTC-aware. Temperatures are in degrees Celsius, pressures in hPa,
speeds in m/s, lengths in metres: units are in the field names.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "OBSERVATION_SCHEMA_VERSION",
    "Observation",
    "Rejection",
    "hour_of",
    "observation_id",
]

#: Bumped whenever a field of :class:`Observation` changes meaning or name.
OBSERVATION_SCHEMA_VERSION = 1


def hour_of(ts: datetime) -> datetime:
    """The UTC clock hour an observation belongs to: its timestamp truncated to the hour.

    Truncation (not rounding) is the documented bucketing rule: a METAR at 05:51
    belongs to hour 05:00, a SYNOP at 06:00 to hour 06:00.
    """
    return ts.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def observation_id(station_id: str, raw_date: str, raw_fields: tuple[str, ...]) -> str:
    """A stable id derived from the data alone, so redeliveries can be recognised.

    The same source row always gets the same id, whatever file, run or replay it came
    from: ``<station>-<YYYYMMDDHHMMSS>-<8 hex of a hash of the whole row>``.
    """
    digest = hashlib.blake2b("\x1f".join(raw_fields).encode(), digest_size=4).hexdigest()
    compact = raw_date.replace("-", "").replace("T", "").replace(":", "")
    return f"{station_id}-{compact}-{digest}"


@dataclass(frozen=True, slots=True)
class Observation:
    """One accepted ISD report.

    ``temperature_c`` is ``None`` when the report carries no air temperature (the
    ``+9999`` sentinel); such rows are kept (they carry other fields) but never count
    in temperature statistics.
    """

    obs_id: str
    station_id: str
    ts: datetime
    name: str
    latitude: float
    longitude: float
    elevation_m: float | None
    report_type: str
    source: str
    temperature_c: float | None
    temperature_quality: str | None
    dew_point_c: float | None = None
    sea_level_pressure_hpa: float | None = None
    wind_speed_ms: float | None = None

    @property
    def hour(self) -> datetime:
        """The UTC hour bucket of this observation (see :func:`hour_of`)."""
        return hour_of(self.ts)

    def to_record(self) -> dict[str, Any]:
        """The JSON-ready wire form: timestamps as ISO-8601 UTC strings ending in ``Z``."""
        record = asdict(self)
        record["ts"] = self.ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        record["schema_version"] = OBSERVATION_SCHEMA_VERSION
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Observation:
        """Inverse of :meth:`to_record` (no validation; see the producer for that)."""
        fields = {k: v for k, v in record.items() if k != "schema_version"}
        fields["ts"] = datetime.fromisoformat(str(fields["ts"]).replace("Z", "+00:00"))
        return cls(**fields)


@dataclass(frozen=True, slots=True)
class Rejection:
    """A row that was not accepted, with why.

    ``reason`` is a short stable code (e.g. ``bad_date``, ``tmp_quality_error``) used as
    a metric label and in the dead-letter topic; ``detail`` is for humans.
    """

    source: str
    line: int
    reason: str
    detail: str
    raw: str

    def to_record(self) -> dict[str, Any]:
        """The JSON-ready form sent to the dead-letter topic."""
        return asdict(self)
