"""An independent ground truth: the same counts and statistics, computed by DuckDB in SQL
straight from the source CSV files, sharing no code with the parser or the pipeline.

It implements the documented rules (README "ISD parsing") for well-formed files: summary
reports excluded, hour = DATE truncated, a temperature counts when it is not the +9999
sentinel and its quality code is not 2, 3, 6 or 7. Files with malformed rows are the
synthetic generator's job to account for (its manifest), not this module's.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa

__all__ = [
    "hourly_counts",
    "hourly_covariates",
    "hourly_temperature_stats",
    "stats_by_station_hour",
    "temperature_stats_table",
]

# Quality codes that blank a field (README "ISD parsing").
_FLAGGED = "('2', '3', '6', '7')"


def _source(*extra: str) -> str:
    """The observations as rows of raw fields; ``extra`` adds columns (SQL expressions)."""
    columns = "".join(f",\n           {e}" for e in extra)
    return f"""
    SELECT "STATION" AS station_id,
           date_trunc('hour', strptime("DATE", '%Y-%m-%dT%H:%M:%S'))::TIMESTAMPTZ AS hour,
           trim("REPORT_TYPE") AS report_type,
           split_part("TMP", ',', 1) AS tmp_raw,
           split_part("TMP", ',', 2) AS tmp_quality{columns}
    FROM read_csv(?, all_varchar = true, header = true, union_by_name = true)
"""  # noqa: S608 - constant SQL


_SOURCE = _source()
_VALID_ROW = f"report_type NOT IN ('SOD', 'SOM') AND tmp_quality NOT IN {_FLAGGED}"


def _files(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.iterdir() if p.name.endswith((".csv", ".csv.gz")))


def _rows(sql: str, folder: Path) -> list[tuple]:
    """Run ``sql`` (one ``?``: the folder's CSV files) in a fresh DuckDB, in UTC."""
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        return con.execute(sql, [_files(folder)]).fetchall()
    finally:
        con.close()


def hourly_counts(folder: Path) -> dict[datetime, int]:
    """Accepted rows per UTC hour over every CSV in ``folder``."""
    sql = f"SELECT hour, count(*) FROM ({_SOURCE}) WHERE {_VALID_ROW} GROUP BY hour"  # noqa: S608 - constant SQL
    return dict(_rows(sql, folder))


def temperature_stats_table(folder: Path) -> pa.Table:
    """Per station and hour: ``station_id, hour, min_c, max_c, mean_c, count`` of valid
    temperatures in °C, as DuckDB returns it (Arrow; no Python object per row)."""
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        sql = f"""
        SELECT station_id, hour, min(t) AS min_c, max(t) AS max_c, avg(t) AS mean_c,
               count(*) AS count
        FROM (SELECT station_id, hour, CAST(tmp_raw AS INTEGER) / 10.0 AS t
              FROM ({_SOURCE}) WHERE {_VALID_ROW} AND tmp_raw <> '+9999')
        GROUP BY station_id, hour
        """  # noqa: S608 - constant SQL
        return con.sql(sql, params=[_files(folder)]).to_arrow_table()
    finally:
        con.close()


def hourly_temperature_stats(
    folder: Path,
) -> dict[tuple[str, datetime], tuple[float, float, float, int]]:
    """``(station, hour) → (min, max, mean, count)`` of valid temperatures in °C."""
    return stats_by_station_hour(temperature_stats_table(folder))


def stats_by_station_hour(
    table: pa.Table,
) -> dict[tuple[str, datetime], tuple[float, float, float, int]]:
    """:func:`temperature_stats_table`'s rows as ``(station, hour) → (min, max, mean, count)``."""
    columns = [table.column(c).to_pylist() for c in table.column_names]
    return {(r[0], r[1]): (r[2], r[3], r[4], r[5]) for r in zip(*columns, strict=True)}


def _measure(column: str, part: int, parts: int, digits: str, missing: str) -> str:
    """One numeric part of an ISD field, in tenths, as units; NULL unless the field has its
    ``parts`` parts, the part matches ``digits`` and is not the ``missing`` sentinel, and
    the quality code after it is not flagged (a bad field blanks only itself)."""
    value = f"split_part(\"{column}\", ',', {part})"
    return f"""CASE WHEN regexp_full_match({value}, '{digits}')
                 AND {value} <> '{missing}'
                 AND split_part("{column}", ',', {part + 1}) NOT IN {_FLAGGED}
                 AND len(string_split("{column}", ',')) = {parts}
                THEN CAST({value} AS INTEGER) / 10.0 END"""


# DEW is "±TTTT,Q", SLP "PPPPP,Q" (tenths of hPa), WND "ddd,q,t,ssss,q".
_COVARIATE_SOURCE = _source(
    _measure("DEW", 1, 2, "[+-][0-9]{4}", "+9999") + " AS dew",
    _measure("SLP", 1, 2, "[0-9]+", "99999") + " AS slp",
    _measure("WND", 4, 5, "[0-9]+", "9999") + " AS wind",
)


def hourly_covariates(
    folder: Path,
) -> dict[tuple[str, datetime], tuple[float | None, float | None, float | None]]:
    """``(station, hour) → (mean dew point °C, mean sea-level pressure hPa, mean wind speed
    m/s)`` over the observations that count for the temperature statistics (the same keys
    as :func:`hourly_temperature_stats`); None where no such observation carried the field."""
    rows = _rows(
        f"""
        SELECT station_id, hour, avg(dew), avg(slp), avg(wind)
        FROM ({_COVARIATE_SOURCE})
        WHERE {_VALID_ROW} AND tmp_raw <> '+9999'
        GROUP BY station_id, hour
        """,  # noqa: S608 - constant SQL
        folder,
    )
    return {(r[0], r[1]): (r[2], r[3], r[4]) for r in rows}
