"""The ISD station list (``isd-history.csv``): read, select stations for a year.

A copy of NOAA's list (29,632 stations, newest END 2023-04-19) ships with the package so
``moaa synth`` works offline; ``moaa download`` fetches the current one from NOAA.
"""

from __future__ import annotations

import csv
import gzip
import io
from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path

__all__ = ["Station", "bundled_station_list", "read_stations", "stations_for_year"]


@dataclass(frozen=True)
class Station:
    """One row of the station list, with the id used in file names (USAF + WBAN)."""

    station_id: str
    name: str
    country: str
    state: str
    icao: str
    latitude: float | None
    longitude: float | None
    elevation_m: float | None
    begin: date | None
    end: date | None


def _float(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def _date(value: str) -> date | None:
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:8]))
    except (ValueError, IndexError):
        return None


def bundled_station_list() -> bytes:
    """The station list shipped with moaa (gunzipped CSV bytes)."""
    data = (resources.files("moaa.dataprep") / "resources" / "isd-history.csv.gz").read_bytes()
    return gzip.decompress(data)


def read_stations(source: Path | bytes | None = None) -> list[Station]:
    """Parse ``isd-history.csv`` (a path, its bytes, or the bundled copy)."""
    raw = (
        bundled_station_list()
        if source is None
        else source
        if isinstance(source, bytes)
        else source.read_bytes()
    )
    stations = []
    for row in csv.DictReader(io.StringIO(raw.decode("utf-8", errors="replace"))):
        stations.append(
            Station(
                station_id=row["USAF"] + row["WBAN"],
                name=row["STATION NAME"].strip(),
                country=row["CTRY"].strip(),
                state=row["STATE"].strip(),
                icao=row["ICAO"].strip(),
                latitude=_float(row["LAT"]),
                longitude=_float(row["LON"]),
                elevation_m=_float(row["ELEV(M)"]),
                begin=_date(row["BEGIN"]),
                end=_date(row["END"]),
            )
        )
    return stations


def stations_for_year(stations: list[Station], year: int, full_year: bool = False) -> list[Station]:
    """Stations whose period of record overlaps ``year`` (or covers it whole if ``full_year``)."""
    first, last = date(year, 1, 1), date(year, 12, 31)
    chosen = []
    for s in stations:
        if s.begin is None or s.end is None:
            continue
        if (full_year and s.begin <= first and s.end >= last) or (
            not full_year and s.begin <= last and s.end >= first
        ):
            chosen.append(s)
    return chosen
