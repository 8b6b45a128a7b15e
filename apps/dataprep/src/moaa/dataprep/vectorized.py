"""ISD CSV parsed in bulk with DuckDB: the rules of :mod:`moaa.common.isd`, vectorized.

``moaa prepare`` parses a year of every station (10⁸ rows) with this module; the Python
parser in :mod:`moaa.common.isd` stays the reference, and a differential test requires the
two to give identical observations and identical rejects. How the work is split:

* **Python, at the edge**: each file is read (gunzipped), its header checked by the
  reference (:func:`~moaa.common.isd.parse_header`), its bytes validated as UTF-8 and cut
  into physical lines by Arrow, numbered as the reference numbers them.
* **DuckDB, every line of a batch of files in one query**: a line in the *plain* form —
  printable ASCII, each field either ``"quoted"`` without a quote inside or empty, which
  is how NOAA writes every row — is split into its fields and
  checked against every rule of the reference (field count, station id, date, summary
  reports, coordinates, temperature and its quality code, the sentinels); when it passes,
  SQL expressions build its observation: the same values, the same ``obs_id`` (DuckDB's MD5
  of the fields) and the same JSON record, byte for byte. No Python runs per row: one query
  returns every line, as an observation or as a line left to the reference.
* **The reference, for every other line**: whatever the SQL does not accept (malformed,
  rejected, non-ASCII, unusual quoting) is parsed by
  :func:`~moaa.common.isd.parse_numbered` with its line number, so reasons, details and
  line numbers of rejects are the reference's own. The SQL therefore only has to be
  conservative: it accepts a line only when the reference accepts it with the same values.

Rows come out in the dataset's :data:`~moaa.feeder.dataset.SCHEMA`, ``seq`` being the
row's line number. A rejected row whose ``DATE`` is unreadable gets the hour of the row
before it in its file (the file's first hour for leading rows, the year's first hour when
no row has one).
"""

from __future__ import annotations

import gzip
import re
import zlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from moaa.common.isd import (
    ERROR_QUALITY_CODES,
    SUMMARY_REPORT_TYPES,
    TMP_MAX_C,
    TMP_MIN_C,
    Columns,
    parse_header,
    parse_numbered,
)
from moaa.common.observation import Observation
from moaa.feeder.dataset import SCHEMA

__all__ = ["FileCounts", "SourceFile", "parse_batch", "read_source"]

#: Columns whose values the SQL reads, by header name (absent optional ones read as "").
_FIELDS = {
    "station": "STATION",
    "date": "DATE",
    "source": "SOURCE",
    "lat": "LATITUDE",
    "lon": "LONGITUDE",
    "elev": "ELEVATION",
    "name": "NAME",
    "rtype": "REPORT_TYPE",
    "tmp": "TMP",
    "dew": "DEW",
    "slp": "SLP",
    "wnd": "WND",
}
#: Fields the SQL checks against patterns without spaces, and fields it trims.
_RAW = ("station", "date", "lat", "lon", "elev", "tmp")
_TRIMMED = ("source", "name", "rtype", "dew", "slp", "wnd")
#: Numbers both float() and DuckDB read to the same double, and print the same.
_NUMBER = r"[+-]?[0-9]{1,6}(\.[0-9]{1,8})?"
_MAX_LINE_CHARS = 1 << 16
_HOUR_IN_RAW = re.compile(r'"?(\d{4}-\d{2}-\d{2}T\d{2}):\d{2}:\d{2}"?')


def _sql_set(values: frozenset[str]) -> str:
    return ", ".join(f"'{v}'" for v in sorted(values))


_ERRORS = _sql_set(ERROR_QUALITY_CODES)
_SUMMARIES = _sql_set(SUMMARY_REPORT_TYPES)

# One line per value; every test of the reference that could reject a row has its
# counterpart in `accept`. Digit runs are bounded so integer casts never overflow.
_QUERY = f"""
WITH quoted AS (  -- an empty bare field becomes "" (two passes suffice): ,"f1",…,"fn",
    SELECT l.file_idx, l.line_no, l.line, f.*,
           replace(replace(',' || l.line || ',', ',,', ',"",'), ',,', ',"",') AS q
    FROM lines l JOIN layout f USING (file_idx)
    WHERE l.line <> ''
), fields AS (
    SELECT *, replace(body, '","', chr(31)) AS raw_fields, string_split(body, '","') AS f
    FROM (SELECT *, substr(q, 3, length(q) - 4) AS body FROM quoted)
), v AS (
    SELECT file_idx, line_no, line, raw_fields,
           -- the plain form: every field quoted without a quote inside, or empty
           length(q) >= 4 AND starts_with(q, ',"') AND ends_with(q, '",')
               AND NOT contains(raw_fields, '"') AND NOT contains(line, chr(0))
               AND NOT contains(line, chr(13)) AND length(line) <= {_MAX_LINE_CHARS}
               AND len(f) = width AS shaped,
           -- validated by patterns without spaces, so read as they are
           {", ".join(f"coalesce(f[p_{k}], '') AS {k}" for k in _RAW)},
           -- free text and groups: trimmed as the reference strips them
           {", ".join(f"trim(coalesce(f[p_{k}], '')) AS {k}" for k in _TRIMMED)}
    FROM fields
), typed AS (
    SELECT *,
           string_split(dew, ',') AS dp, string_split(slp, ',') AS sp,
           string_split(wnd, ',') AS wp,
           CASE WHEN regexp_full_match(lat, '{_NUMBER}') THEN lat::DOUBLE END AS lat_v,
           CASE WHEN regexp_full_match(lon, '{_NUMBER}') THEN lon::DOUBLE END AS lon_v,
           CASE WHEN regexp_full_match(elev, '{_NUMBER}') THEN elev::DOUBLE END AS elev_v,
           regexp_full_match(tmp, '[+-][0-9]{{4}},[^,]') AS tmp_shaped,
           substr(tmp, 1, 5) AS tmp_raw, substr(tmp, 7, 1) AS tmp_q
    FROM v
), valued AS (
    SELECT *,
           CASE WHEN tmp_shaped AND tmp_raw <> '+9999' THEN tmp_raw::INTEGER / 10 END AS temp,
           CASE WHEN len(dp) = 2 AND dp[1] <> '+9999' AND regexp_full_match(dp[1], '[+-][0-9]{{4}}')
                     AND dp[2] NOT IN ({_ERRORS})
                THEN dp[1]::INTEGER / 10 END AS dew_v,
           CASE WHEN len(sp) = 2 AND sp[1] <> '99999' AND regexp_full_match(sp[1], '[0-9]{{1,9}}')
                     AND sp[2] NOT IN ({_ERRORS})
                THEN sp[1]::BIGINT / 10 END AS slp_v,
           CASE WHEN len(wp) = 5 AND wp[4] <> '9999' AND regexp_full_match(wp[4], '[0-9]{{1,9}}')
                     AND wp[5] NOT IN ({_ERRORS})
                THEN wp[4]::BIGINT / 10 END AS wnd_v,
           NOT (len(sp) = 2 AND regexp_full_match(sp[1], '[0-9]{{10,}}'))
               AND NOT (len(wp) = 5 AND regexp_full_match(wp[4], '[0-9]{{10,}}')) AS digits_bounded,
           length(date) = 19 AND NOT starts_with(date, '0000') AND coalesce(
               strftime(try_strptime(date, '%Y-%m-%dT%H:%M:%S'), '%Y-%m-%dT%H:%M:%S') = date,
               false) AS date_ok,
           -- text the reference strips or the record carries: printable ASCII only
           -- (as many bytes as characters: ASCII; then no control character)
           strlen(text) = length(text) AND NOT regexp_matches(text, '[\\x00-\\x1f\\x7f]')
               AS text_ok
    FROM (SELECT *, source || name || rtype || tmp || dew || slp || wnd AS text FROM typed)
), judged AS (
    SELECT *,
           coalesce(shaped
               AND regexp_full_match(station, '[0-9A-Z]{{11}}')
               AND date_ok
               AND rtype NOT IN ({_SUMMARIES})
               AND lat_v BETWEEN -90.0::DOUBLE AND 90.0::DOUBLE
               AND lon_v BETWEEN -180.0::DOUBLE AND 180.0::DOUBLE
               AND (elev = '' OR elev_v IS NOT NULL)
               AND tmp_shaped
               AND (tmp_raw = '+9999' OR (tmp_q NOT IN ({_ERRORS})
                    AND temp BETWEEN {TMP_MIN_C}::DOUBLE AND {TMP_MAX_C}::DOUBLE))
               AND digits_bounded AND text_ok, false) AS accept
    FROM valued
), accepted AS (
    SELECT *,
           CASE WHEN elev_v BETWEEN -450.0::DOUBLE AND 9000.0::DOUBLE THEN elev_v END AS elev_m,
           -- observation_id: <station>-<YYYYMMDDHHMMSS>-<8 hex of the MD5 of the fields>
           station || '-' || replace(replace(replace(date, '-', ''), 'T', ''), ':', '') || '-'
               || substr(md5(raw_fields), 1, 8) AS obs_id
    FROM judged
)
-- one row per non-empty line: its observation, or (``left``) the line for the reference
SELECT CASE WHEN accept THEN (substr(date, 1, 13) || ':00:00+00')::TIMESTAMPTZ END AS hour,
       CASE WHEN accept THEN substr(date, 1, 10) END AS day,
       'obs' AS kind,
       CASE WHEN accept THEN station END AS station_id,
       CASE WHEN accept THEN obs_id END AS obs_id,
       CASE WHEN accept THEN temp END AS temperature_c,
       NULL::VARCHAR AS reason,
       file_idx,
       line_no::INTEGER AS seq,
       -- the record, as msgspec writes an Observation (same order, escapes and shortest
       -- floats)
       CASE WHEN accept THEN '{{"obs_id":"' || obs_id || '",' || substr(json_object(
           'station_id', station, 'ts', date || 'Z', 'name', name,
           'latitude', lat_v, 'longitude', lon_v, 'elevation_m', elev_m, 'report_type', rtype,
           'source', source, 'temperature_c', temp, 'temperature_quality', tmp_q,
           'dew_point_c', dew_v, 'sea_level_pressure_hpa', slp_v, 'wind_speed_ms', wnd_v
       )::VARCHAR, 2) END AS record,
       CASE WHEN NOT accept THEN line END AS left_line
FROM accepted
"""  # noqa: S608 - built from this module's constants only


@dataclass
class SourceFile:
    """One source file read into lines: the header, and the data lines for SQL or the reference."""

    name: str
    header: bytes
    cols: Columns | None
    header_error: str
    lines: pa.Array  # data lines that decode as UTF-8, numbered from 2 (or per ``numbers``)
    numbers: pa.Array
    undecodable: list[tuple[int, bytes]] = field(default_factory=list)


def read_source(path: Path) -> SourceFile:
    """Read one ISD CSV (plain or ``.gz``) into numbered physical lines."""
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(f"{path.name} is not a readable gzip file: {exc}") from None
    end = data.find(b"\n")
    header, body = (data, b"") if end < 0 else (data[:end], data[end + 1 :])
    cols, header_error = parse_header(header)
    undecodable: list[tuple[int, bytes]] = []
    try:
        text = pa.array([body], pa.large_binary()).cast(pa.large_string())
        lines = pc.list_flatten(pc.split_pattern(text, "\n"))
        numbers = pa.array(np.arange(2, len(lines) + 2, dtype=np.int64))
    except pa.ArrowInvalid:  # not UTF-8 somewhere: decode line by line, as the reference does
        good: list[str] = []
        good_numbers: list[int] = []
        for number, raw in enumerate(body.split(b"\n"), start=2):
            try:
                good.append(raw.decode("utf-8"))
                good_numbers.append(number)
            except UnicodeDecodeError:
                undecodable.append((number, raw))
        lines = pa.array(good, pa.large_string())
        numbers = pa.array(good_numbers, pa.int64())
    lines = pc.utf8_rtrim(lines, characters="\r")
    return SourceFile(path.name, header, cols, header_error, lines, numbers, undecodable)


@dataclass
class FileCounts:
    """One file's report entry: rows, accepted, rejected by reason, hour range."""

    rows: int = 0
    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    first_hour: datetime | None = None
    last_hour: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "accepted": self.accepted,
            "rejected": dict(sorted(self.rejected.items())),
            "first_hour": self.first_hour.isoformat() if self.first_hour else None,
            "last_hour": self.last_hour.isoformat() if self.last_hour else None,
        }


def _layout(files: list[SourceFile]) -> pa.Table:
    positions: dict[str, list[int | None]] = {f"p_{k}": [] for k in _FIELDS}
    for source in files:
        index = source.cols.index if source.cols else {}
        for key, column in _FIELDS.items():
            pos = index.get(column)
            positions[f"p_{key}"].append(None if pos is None else pos + 1)
    return pa.table(
        {
            "file_idx": pa.array(range(len(files)), pa.int32()),
            "width": pa.array([s.cols.width if s.cols else -1 for s in files], pa.int32()),
            **{k: pa.array(v, pa.int32()) for k, v in positions.items()},
        }
    )


def _lines(files: list[SourceFile]) -> pa.Table:
    parsed = [s for s in files if s.cols is not None]
    indexes = [i for i, s in enumerate(files) if s.cols is not None]
    return pa.table(
        {
            "file_idx": pa.concat_arrays(
                [
                    pa.array(np.full(len(s.lines), i, dtype=np.int32))
                    for i, s in zip(indexes, parsed, strict=True)
                ]
                or [pa.array([], pa.int32())]
            ),
            "line_no": pa.concat_arrays([s.numbers for s in parsed] or [pa.array([], pa.int64())]),
            "line": pa.concat_arrays(
                [s.lines for s in parsed] or [pa.array([], pa.large_string())]
            ),
        }
    )


def _hour_from_raw(raw: str) -> datetime | None:
    match = _HOUR_IN_RAW.search(raw[:80])
    if not match:
        return None
    try:
        return datetime.strptime(match.group(1), "%Y-%m-%dT%H").replace(tzinfo=UTC)
    except ValueError:
        return None


def _reference_rows(
    files: list[SourceFile], left: dict[int, list[tuple[int, str | bytes]]]
) -> dict[str, list[Any]]:
    """Parse the lines the SQL did not accept with the reference parser."""
    out: dict[str, list[Any]] = {name: [] for name in SCHEMA.names}
    out["file_idx"] = []
    for idx, source in enumerate(files):
        if source.cols is None:  # a bad header: every line goes to the reference
            numbered: list[tuple[int, str | bytes]] = list(
                zip(source.numbers.to_pylist(), source.lines.to_pylist(), strict=True)
            )
        else:
            numbered = left.get(idx, [])
        numbered = sorted([*numbered, *source.undecodable])
        for number, item in parse_numbered(source.header, numbered, source.name):
            if isinstance(item, Observation):
                hour: datetime | None = item.hour
                row = ("obs", item.station_id, item.obs_id, item.temperature_c, None)
            else:
                hour = _hour_from_raw(item.raw)
                row = ("reject", None, None, None, item.reason)
            out["hour"].append(hour)
            out["day"].append(None)
            for name, value in zip(
                ("kind", "station_id", "obs_id", "temperature_c", "reason"), row, strict=True
            ):
                out[name].append(value)
            out["file_idx"].append(idx)
            out["seq"].append(number)
            out["record"].append(item.to_json())
    return out


def _fill_hours(table: pa.Table, year: int) -> pa.Table:
    """Give rows without an hour (unreadable DATE) the hour of the row before them, and
    rows without a day (those of the reference) their hour's day. Only the rows of the
    files concerned are sorted."""
    if table.column("hour").null_count:
        no_hour = pc.is_null(table.column("hour"))
        files = pc.unique(table.filter(no_hour).column("file_idx"))
        concerned = pc.is_in(table.column("file_idx"), value_set=files)
        table = pa.concat_tables(
            [table.filter(pc.invert(concerned)), _filled(table.filter(concerned), year)]
        )
    if table.column("day").null_count:
        no_day = pc.is_null(table.column("day"))
        rest = table.filter(no_day)
        days = pc.strftime(rest.column("hour"), format="%Y-%m-%d", locale="C")
        rest = rest.set_column(rest.schema.get_field_index("day"), "day", days)
        table = pa.concat_tables([table.filter(pc.invert(no_day)), rest])
    return table


def _filled(table: pa.Table, year: int) -> pa.Table:
    table = table.sort_by([("file_idx", "ascending"), ("seq", "ascending")])
    micros = table.column("hour").cast(pa.int64())
    known = pc.is_valid(micros).to_numpy(zero_copy_only=False)
    values = micros.fill_null(0).to_numpy()
    files = table.column("file_idx").to_numpy()
    year_start = int(datetime(year, 1, 1, tzinfo=UTC).timestamp()) * 1_000_000
    filled = values.copy()
    starts = np.flatnonzero(np.r_[True, files[1:] != files[:-1]])
    ends = np.r_[starts[1:], len(files)]
    for lo, hi in zip(starts, ends, strict=True):
        chunk, ok = values[lo:hi], known[lo:hi]
        if ok.all():
            continue
        first = chunk[ok][0] if ok.any() else year_start
        last_known = np.maximum.accumulate(np.where(ok, np.arange(hi - lo), -1))
        filled[lo:hi] = np.where(last_known >= 0, chunk[np.maximum(last_known, 0)], first)
    hour = pa.array(filled, pa.int64()).cast(pa.timestamp("us", tz="UTC"))
    return table.set_column(table.schema.get_field_index("hour"), "hour", hour)


def parse_batch(
    con: duckdb.DuckDBPyConnection, files: list[SourceFile], year: int
) -> tuple[pa.Table, dict[str, FileCounts]]:
    """Parse a batch of read files: every row in the dataset's schema, and per-file counts."""
    con.register("layout", _layout(files))
    con.register("lines", _lines(files))
    try:
        rows = con.sql(_QUERY).to_arrow_table()
    finally:
        for view in ("layout", "lines"):
            con.unregister(view)
    sql_made = pc.is_null(rows.column("left_line"))
    left_rows = rows.filter(pc.invert(sql_made)).select(["file_idx", "seq", "left_line"])
    parsed = rows.filter(sql_made).drop_columns(["left_line"])
    parsed = parsed.set_column(
        parsed.schema.get_field_index("record"), "record", parsed.column("record").cast(pa.binary())
    )
    left: dict[int, list[tuple[int, str | bytes]]] = {}
    for idx, number, line in zip(
        left_rows.column("file_idx").to_pylist(),
        left_rows.column("seq").to_pylist(),
        left_rows.column("left_line").to_pylist(),
        strict=True,
    ):
        left.setdefault(idx, []).append((number, line))
    reference = _reference_rows(files, left)
    ref_table = pa.table(
        {
            "hour": pa.array(reference["hour"], pa.timestamp("us", tz="UTC")),
            **{
                name: pa.array(reference[name], parsed.schema.field(name).type)
                for name in parsed.schema.names
                if name != "hour"
            },
        }
    )
    table = _fill_hours(pa.concat_tables([parsed.cast(ref_table.schema), ref_table]), year)
    names = pa.array([s.name for s in files], pa.string())
    source_file = pc.take(names, table.column("file_idx"))
    table = table.append_column("source_file", source_file).drop_columns(["file_idx"])
    return table.select(SCHEMA.names).cast(SCHEMA), _counts(con, table, files)


def _counts(
    con: duckdb.DuckDBPyConnection, table: pa.Table, files: list[SourceFile]
) -> dict[str, FileCounts]:
    counts = {s.name: FileCounts() for s in files}
    con.register("batch", table)
    try:
        grouped = con.execute(
            "SELECT source_file, kind, reason, count(*), min(hour), max(hour) "
            "FROM batch GROUP BY ALL"
        ).fetchall()
    finally:
        con.unregister("batch")
    for name, kind, reason, n, lo, hi in grouped:
        entry = counts[name]
        entry.rows += n
        if kind == "obs":
            entry.accepted += n
        else:
            entry.rejected[reason] += n
        first, last = lo.astimezone(UTC), hi.astimezone(UTC)
        entry.first_hour = min(entry.first_hour or first, first)
        entry.last_hour = max(entry.last_hour or last, last)
    return counts
