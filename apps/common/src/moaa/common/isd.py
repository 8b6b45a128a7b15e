"""Parse NOAA ISD "global-hourly" CSV into :class:`~moaa.common.observation.Observation`.

The format is described in ``shared/docs/isd-format.md``; the rules fixed here:

* columns are picked **by name** from the header (files differ in their optional columns);
* every physical line is parsed on its own with a quote-aware CSV reader, so a line
  number always points at the offending line and one bad line never spoils the next;
* ``DATE`` is UTC; the hour bucket is the timestamp truncated to the hour;
* missing sentinels (``+9999``, ``99999``, ``999``, ``9999``) become ``None``;
* an air temperature whose quality code marks it suspect or erroneous (``2``, ``3``,
  ``6``, ``7``) rejects the row (reason ``tmp_quality_error``): temperature is what
  the pipeline is about, and a flagged value must never reach the statistics.
  Flagged dew point, pressure or wind only blank that field;
* summary reports (``SOD``, ``SOM``, compared trimmed) are rejected with reason
  ``summary_report``: they are not hourly observations;
* the parser never raises on data: every data line yields exactly one
  :class:`Observation` or one :class:`Rejection`, so *in = accepted + rejected*.

Example::

    >>> rows = [
    ...     '"STATION","DATE","SOURCE","LATITUDE","LONGITUDE","ELEVATION","NAME",'
    ...     '"REPORT_TYPE","CALL_SIGN","QUALITY_CONTROL","WND","CIG","VIS","TMP","DEW","SLP"',
    ...     '"72502014734","2013-01-01T06:00:00","7","40.683","-74.169","2.0",'
    ...     '"NEWARK, NJ US","FM-15","KEWR ","V020","270,1,N,0046,1","99999,9,9,N",'
    ...     '"016093,1,9,9","+0039,1","-0033,1","10120,1"',
    ... ]
    >>> [obs] = parse_lines(rows, source="doc")
    >>> obs.temperature_c, obs.ts.isoformat()
    (3.9, '2013-01-01T06:00:00+00:00')
"""

from __future__ import annotations

import csv
import gzip
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from moaa.common.observation import Observation, Rejection, observation_id

__all__ = [
    "ERROR_QUALITY_CODES",
    "REQUIRED_COLUMNS",
    "SUMMARY_REPORT_TYPES",
    "Columns",
    "ParseStats",
    "parse_file",
    "parse_header",
    "parse_lines",
    "parse_numbered",
]

#: Columns without which a row cannot become an observation.
REQUIRED_COLUMNS = ("STATION", "DATE", "LATITUDE", "LONGITUDE", "NAME", "REPORT_TYPE", "TMP")
#: Quality codes that mark a value suspect (2, 6) or erroneous (3, 7).
ERROR_QUALITY_CODES = frozenset("2367")
#: Report types that are summaries, never hourly observations.
SUMMARY_REPORT_TYPES = frozenset({"SOD", "SOM"})
#: Physical range of air temperature in the ISD documentation, in °C.
TMP_MIN_C, TMP_MAX_C = -93.2, 61.8

_STATION_RE = re.compile(r"^[0-9A-Z]{11}$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")
_SIGNED_RE = re.compile(r"^[+-]\d{4}$")
_MAX_LINE_CHARS = 1 << 16


class _RowError(Exception):
    """Internal: a row is rejected; carries the reason code and a human detail."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass
class ParseStats:
    """Counts of one parse: ``rows == accepted + sum(rejected.values())``."""

    rows: int = 0
    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)

    def add(self, item: Observation | Rejection) -> None:
        self.rows += 1
        if isinstance(item, Rejection):
            self.rejected[item.reason] += 1
        else:
            self.accepted += 1

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())


def _split_csv(line: str) -> list[str]:
    # One physical line at a time: ISD never quotes newlines, and a stray quote must not
    # swallow the rest of the file.
    if "\x00" in line:
        raise _RowError("bad_encoding", "line contains a NUL character")
    if len(line) > _MAX_LINE_CHARS:
        raise _RowError("line_too_long", f"line has {len(line)} characters")
    try:
        return next(csv.reader([line], strict=True))
    except (csv.Error, StopIteration) as exc:
        raise _RowError("bad_csv", f"not a valid CSV line: {exc}") from None


def _float(value: str, column: str, lo: float, hi: float) -> float:
    try:
        number = float(value)
    except ValueError:
        raise _RowError(f"bad_{column.lower()}", f"{column} is not a number: {value!r}") from None
    if not lo <= number <= hi:
        raise _RowError(f"bad_{column.lower()}", f"{column} {number} outside [{lo}, {hi}]")
    return number


def _group(value: str) -> list[str]:
    return value.split(",") if value else []


def _signed_tenths(value: str, quality: str) -> float | None:
    """A ``±TTTT`` group part in tenths; ``None`` for the sentinel or a flagged value."""
    if value == "+9999" or not _SIGNED_RE.match(value) or quality in ERROR_QUALITY_CODES:
        return None
    return int(value) / 10


def _temperature(tmp: str) -> tuple[float | None, str | None]:
    parts = _group(tmp)
    if len(parts) != 2 or not _SIGNED_RE.match(parts[0]) or len(parts[1]) != 1:
        raise _RowError("bad_tmp", f"TMP is not '±TTTT,Q': {tmp!r}")
    raw, quality = parts
    if raw == "+9999":
        return None, quality
    if quality in ERROR_QUALITY_CODES:
        raise _RowError("tmp_quality_error", f"TMP {raw} has quality code {quality}")
    value = int(raw) / 10
    if not TMP_MIN_C <= value <= TMP_MAX_C:
        raise _RowError("tmp_out_of_range", f"TMP {value} °C outside [{TMP_MIN_C}, {TMP_MAX_C}]")
    return value, quality


def _dew_point(dew: str) -> float | None:
    parts = _group(dew)
    return _signed_tenths(parts[0], parts[1]) if len(parts) == 2 else None


def _sea_level_pressure(slp: str) -> float | None:
    parts = _group(slp)
    if len(parts) != 2 or parts[0] == "99999" or not (parts[0].isascii() and parts[0].isdigit()):
        return None
    return None if parts[1] in ERROR_QUALITY_CODES else int(parts[0]) / 10


def _wind_speed(wnd: str) -> float | None:
    parts = _group(wnd)
    if len(parts) != 5 or parts[3] == "9999" or not (parts[3].isascii() and parts[3].isdigit()):
        return None
    return None if parts[4] in ERROR_QUALITY_CODES else int(parts[3]) / 10


class Columns:
    """Positions of the named columns in one file's header."""

    def __init__(self, header: list[str]) -> None:
        self.names = [h.strip() for h in header]
        self.width = len(self.names)
        self.index = {name: i for i, name in enumerate(self.names)}
        self.missing = [c for c in REQUIRED_COLUMNS if c not in self.index]

    def get(self, row: list[str], name: str) -> str:
        i = self.index.get(name)
        return row[i].strip() if i is not None else ""


def _observation(row: list[str], cols: Columns) -> Observation:
    if len(row) != cols.width:
        raise _RowError("field_count", f"{len(row)} fields, header has {cols.width}")
    station = cols.get(row, "STATION")
    if not _STATION_RE.match(station):
        raise _RowError("bad_station", f"STATION is not an 11-character id: {station!r}")
    raw_date = cols.get(row, "DATE")
    if not _DATE_RE.match(raw_date):
        raise _RowError("bad_date", f"DATE is not YYYY-MM-DDTHH:MM:SS: {raw_date!r}")
    try:
        ts = datetime.fromisoformat(raw_date).replace(tzinfo=UTC)
    except ValueError:
        raise _RowError("bad_date", f"DATE is not a valid time: {raw_date!r}") from None
    report_type = cols.get(row, "REPORT_TYPE")
    if report_type in SUMMARY_REPORT_TYPES:
        raise _RowError("summary_report", f"{report_type} is a summary, not an hourly report")
    latitude = _float(cols.get(row, "LATITUDE"), "LATITUDE", -90.0, 90.0)
    longitude = _float(cols.get(row, "LONGITUDE"), "LONGITUDE", -180.0, 180.0)
    elevation_raw = cols.get(row, "ELEVATION")
    try:
        elevation = float(elevation_raw) if elevation_raw else None
    except ValueError:
        elevation = None
    if elevation is not None and not -450.0 <= elevation <= 9000.0:
        elevation = None  # -999.9 and friends: unknown, not a reason to drop the row
    temperature, quality = _temperature(cols.get(row, "TMP"))
    return Observation(
        obs_id=observation_id(station, raw_date, tuple(row)),
        station_id=station,
        ts=ts,
        name=cols.get(row, "NAME"),
        latitude=latitude,
        longitude=longitude,
        elevation_m=elevation,
        report_type=report_type,
        source=cols.get(row, "SOURCE"),
        temperature_c=temperature,
        temperature_quality=quality,
        dew_point_c=_dew_point(cols.get(row, "DEW")),
        sea_level_pressure_hpa=_sea_level_pressure(cols.get(row, "SLP")),
        wind_speed_ms=_wind_speed(cols.get(row, "WND")),
    )


def _decode(raw_line: str | bytes) -> tuple[str, _RowError | None]:
    """The line as text, and the decoding error that rejects it (bytes that are not UTF-8)."""
    if isinstance(raw_line, str):
        return raw_line.rstrip("\r\n"), None
    try:
        return raw_line.decode("utf-8").rstrip("\r\n"), None
    except UnicodeDecodeError as exc:
        shown = raw_line.decode("utf-8", errors="backslashreplace").rstrip("\r\n")
        return shown, _RowError("bad_encoding", f"line is not valid UTF-8: {exc.reason}")


def _read_header(line: str, error: _RowError | None) -> tuple[Columns | None, str]:
    """The header's columns, or ``None`` and why every data line will be rejected."""
    try:
        if error:
            raise error
        cols = Columns(_split_csv(line.lstrip("\ufeff")))
    except _RowError as exc:
        return None, f"header line unreadable: {exc.detail}"
    if cols.missing:
        return None, f"header lacks columns {', '.join(cols.missing)}"
    return cols, ""


def parse_header(raw_line: str | bytes) -> tuple[Columns | None, str]:
    """A file's first line as :class:`Columns`, or ``None`` and why its rows are all rejected."""
    return _read_header(*_decode(raw_line))


def _parse_row(line: str, error: _RowError | None, cols: Columns) -> Observation:
    if error:
        raise error
    return _observation(_split_csv(line), cols)


def parse_numbered(
    header: str | bytes,
    lines: Iterable[tuple[int, str | bytes]],
    source: str,
    stats: ParseStats | None = None,
) -> Iterator[tuple[int, Observation | Rejection]]:
    """Parse data lines given with their line numbers, under the file's ``header`` line.

    Yields ``(line number, item)`` for every non-blank line, in the given order: the rules
    of :func:`parse_lines` for lines taken out of their file (e.g. the few lines a
    vectorized parser leaves to this reference).
    """
    cols, header_error = parse_header(header)
    for number, raw_line in lines:
        line, error = _decode(raw_line)
        if not line.strip():
            continue
        item: Observation | Rejection
        if cols is None:
            item = Rejection(source, number, "bad_header", header_error, line)
        else:
            try:
                item = _parse_row(line, error, cols)
            except _RowError as exc:
                item = Rejection(source, number, exc.reason, exc.detail, line)
        if stats is not None:
            stats.add(item)
        yield number, item


def parse_lines(
    lines: Iterable[str] | Iterable[bytes], source: str, stats: ParseStats | None = None
) -> Iterator[Observation | Rejection]:
    """Parse an ISD CSV given as lines (the first is the header), as text or bytes.

    Yields one item per non-blank data line; never raises on bad data. A header that
    lacks a required column makes every data line a ``bad_header`` rejection. Bytes
    lines are decoded as UTF-8 one by one, so one undecodable line rejects only itself.
    ``stats``, when given, is updated as items are yielded.
    """
    numbered: Iterator[tuple[int, str | bytes]] = enumerate(lines, start=1)
    first = next(numbered, None)
    if first is None:
        return
    for _, item in parse_numbered(first[1], numbered, source, stats):
        yield item


def parse_file(path: Path, stats: ParseStats | None = None) -> Iterator[Observation | Rejection]:
    """Parse one ISD CSV file, plain or gzipped (by the ``.gz`` suffix)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as binary:
        yield from parse_lines(binary, source=path.name, stats=stats)
