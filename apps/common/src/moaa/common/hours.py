"""The one hour format of the pipeline: ``YYYY-MM-DDTHH:MM:SSZ``, always UTC.

Every record names its hour this way (``hour``, ``issued_at``, ``target_hour``,
``updated_hour``, the ``<station>|<hour>`` keys, the socket's batch ids). Python code formats
and parses hours with these functions, Spark with :data:`SPARK_HOUR_FORMAT`, and the website
reads the same strings (``static/common.js``, ``moaa.hour``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = [
    "HOUR_FORMAT",
    "SPARK_HOUR_FORMAT",
    "epoch_hour",
    "format_epoch_hour",
    "format_hour",
    "parse_hour",
    "record_key",
]

#: ``strftime`` form of an hour (UTC, ``Z`` suffix).
HOUR_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
#: The same for Spark's ``date_format`` (the session's time zone is UTC).
SPARK_HOUR_FORMAT = "yyyy-MM-dd'T'HH:mm:ss'Z'"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def format_hour(value: datetime) -> str:
    """An aware datetime → ``"2013-01-01T05:00:00Z"`` (seconds kept, nothing truncated)."""
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: UTC-aware only")
    return value.astimezone(UTC).strftime(HOUR_FORMAT)


def parse_hour(text: str) -> datetime:
    """``"2013-01-01T05:00:00Z"`` (or ``+00:00``) → an aware UTC datetime.

    Raises :class:`ValueError` on anything else, a naive time included.
    """
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone: UTC (…Z) only")
    return value.astimezone(UTC)


def epoch_hour(value: str | datetime) -> int:
    """An hour string or an aware datetime → hours since the Unix epoch (truncated)."""
    if isinstance(value, str):
        value = parse_hour(value)
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: UTC-aware only")
    return int((value - _EPOCH).total_seconds() // 3600)


def format_epoch_hour(hour: int) -> str:
    """Hours since the Unix epoch → ``"YYYY-MM-DDTHH:MM:SSZ"``."""
    return (_EPOCH + timedelta(hours=int(hour))).strftime(HOUR_FORMAT)


def record_key(station_id: str, hour: datetime | str) -> str:
    """The Kafka key (and MongoDB ``_id``) of a per-station hourly record:
    ``<station>|<hour>``."""
    return f"{station_id}|{hour if isinstance(hour, str) else format_hour(hour)}"
