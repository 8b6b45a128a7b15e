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

__all__ = ["hourly_counts", "hourly_covariates", "hourly_temperature_stats"]

_SOURCE = """
    SELECT "STATION" AS station_id,
           date_trunc('hour', strptime("DATE", '%Y-%m-%dT%H:%M:%S'))::TIMESTAMPTZ AS hour,
           trim("REPORT_TYPE") AS report_type,
           split_part("TMP", ',', 1) AS tmp_raw,
           split_part("TMP", ',', 2) AS tmp_quality
    FROM read_csv(?, all_varchar = true, header = true, union_by_name = true)
"""
_VALID_ROW = "report_type NOT IN ('SOD', 'SOM') AND tmp_quality NOT IN ('2', '3', '6', '7')"


def _files(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.iterdir() if p.name.endswith((".csv", ".csv.gz")))


def hourly_counts(folder: Path) -> dict[datetime, int]:
    """Accepted rows per UTC hour over every CSV in ``folder``."""
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        rows = con.execute(
            f"SELECT hour, count(*) FROM ({_SOURCE}) WHERE {_VALID_ROW} GROUP BY hour",  # noqa: S608 - constant SQL
            [_files(folder)],
        ).fetchall()
    finally:
        con.close()
    return dict(rows)


def hourly_temperature_stats(
    folder: Path,
) -> dict[tuple[str, datetime], tuple[float, float, float, int]]:
    """``(station, hour) → (min, max, mean, count)`` of valid temperatures in °C."""
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        rows = con.execute(
            f"""
            SELECT station_id, hour, min(t), max(t), avg(t), count(*)
            FROM (SELECT station_id, hour, CAST(tmp_raw AS INTEGER) / 10.0 AS t
                  FROM ({_SOURCE}) WHERE {_VALID_ROW} AND tmp_raw <> '+9999')
            GROUP BY station_id, hour
            """,  # noqa: S608 - constant SQL
            [_files(folder)],
        ).fetchall()
    finally:
        con.close()
    return {(r[0], r[1]): (r[2], r[3], r[4], r[5]) for r in rows}


# Per-field rules (README "ISD parsing"): a missing sentinel or a flagged quality code blanks
# the field only. DEW is "±TTTT,Q", SLP "PPPPP,Q" (tenths of hPa), WND "ddd,q,t,ssss,q".
_COVARIATE_SOURCE = """
    SELECT "STATION" AS station_id,
           date_trunc('hour', strptime("DATE", '%Y-%m-%dT%H:%M:%S'))::TIMESTAMPTZ AS hour,
           trim("REPORT_TYPE") AS report_type,
           split_part("TMP", ',', 1) AS tmp_raw,
           split_part("TMP", ',', 2) AS tmp_quality,
           CASE WHEN regexp_full_match(split_part("DEW", ',', 1), '[+-][0-9]{4}')
                 AND split_part("DEW", ',', 1) <> '+9999'
                 AND split_part("DEW", ',', 2) NOT IN ('2', '3', '6', '7')
                 AND len(string_split("DEW", ',')) = 2
                THEN CAST(split_part("DEW", ',', 1) AS INTEGER) / 10.0 END AS dew,
           CASE WHEN regexp_full_match(split_part("SLP", ',', 1), '[0-9]+')
                 AND split_part("SLP", ',', 1) <> '99999'
                 AND split_part("SLP", ',', 2) NOT IN ('2', '3', '6', '7')
                 AND len(string_split("SLP", ',')) = 2
                THEN CAST(split_part("SLP", ',', 1) AS INTEGER) / 10.0 END AS slp,
           CASE WHEN regexp_full_match(split_part("WND", ',', 4), '[0-9]+')
                 AND split_part("WND", ',', 4) <> '9999'
                 AND split_part("WND", ',', 5) NOT IN ('2', '3', '6', '7')
                 AND len(string_split("WND", ',')) = 5
                THEN CAST(split_part("WND", ',', 4) AS INTEGER) / 10.0 END AS wind
    FROM read_csv(?, all_varchar = true, header = true, union_by_name = true)
"""


def hourly_covariates(
    folder: Path,
) -> dict[tuple[str, datetime], tuple[float | None, float | None, float | None]]:
    """``(station, hour) → (mean dew point °C, mean sea-level pressure hPa, mean wind speed
    m/s)`` over the observations that count for the temperature statistics (the same keys
    as :func:`hourly_temperature_stats`); None where no such observation carried the field."""
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        rows = con.execute(
            f"""
            SELECT station_id, hour, avg(dew), avg(slp), avg(wind)
            FROM ({_COVARIATE_SOURCE})
            WHERE {_VALID_ROW} AND tmp_raw <> '+9999'
            GROUP BY station_id, hour
            """,  # noqa: S608 - constant SQL
            [_files(folder)],
        ).fetchall()
    finally:
        con.close()
    return {(r[0], r[1]): (r[2], r[3], r[4]) for r in rows}
