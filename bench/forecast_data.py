"""Synthetic hourly means for the forecast benchmarks (clearly synthetic, real station ids).

What the stats job publishes for every station and hour — mean temperature, dew point,
sea-level pressure and wind speed — for ``N`` real stations active through a year, picked
as ``moaa synth`` picks them (:func:`moaa.dataprep.synth.pick_stations`). Each station gets
an annual mean by latitude and elevation, a seasonal cycle by hemisphere, a diurnal cycle by
local solar time, AR(1) day-to-day weather shared by its covariates, and noise; about 3 % of
station-hours are missing and a quarter of the stations report no sea-level pressure. Same
seed, same numbers. Vectorized over stations: one array per hour.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from moaa.dataprep.synth import pick_stations

__all__ = ["HourlyMeans", "synthetic_means"]


@dataclass
class HourlyMeans:
    """One hour of every station: arrays of length ``len(station_ids)`` (NaN = missing)."""

    hour: int  # hours since the epoch
    mean_c: np.ndarray
    dew_point_mean_c: np.ndarray
    sea_level_pressure_mean_hpa: np.ndarray
    wind_speed_mean_ms: np.ndarray


def synthetic_means(
    stations: int, year: int, days: int, seed: int = 7
) -> tuple[list[str], list[str], Iterator[HourlyMeans]]:
    """``(station ids, names, hours)`` for ``days`` days from 1 January of ``year``."""
    picked = pick_stations(stations, year, seed)
    ids = [s.station_id for s in picked]
    names = [f"{s.name} (SYNTHETIC)" for s in picked]
    lat = np.array([s.latitude for s in picked], dtype=float)
    lon = np.array([s.longitude for s in picked], dtype=float)
    elev = np.array([s.elevation_m or 0.0 for s in picked], dtype=float)
    start = int(datetime(year, 1, 1, tzinfo=UTC).timestamp() // 3600)
    rng = np.random.default_rng(seed)
    n = len(ids)
    annual = 27 - 0.4 * np.abs(lat) - 0.0065 * np.clip(elev, 0, None)
    amplitude = 2 + 0.25 * np.abs(lat)
    sign = np.where(lat >= 0, 1.0, -1.0)
    diurnal = rng.uniform(3, 7, n)
    no_pressure = rng.random(n) < 0.25

    def hours() -> Iterator[HourlyMeans]:
        weather = np.zeros(n)
        pressure = np.zeros(n)
        for h in range(start, start + days * 24):
            day = (h - start) / 24
            weather = 0.97 * weather + rng.normal(0, 0.45, n)
            pressure = 0.98 * pressure + rng.normal(0, 0.9, n)
            seasonal = -sign * amplitude * np.cos(2 * np.pi * (day - 15) / 365.25)
            solar = ((h % 24) + lon / 15) % 24
            cycle = diurnal / 2 * np.sin(2 * np.pi * (solar - 9) / 24)
            temp = annual + seasonal + cycle + weather + rng.normal(0, 0.3, n)
            dew = temp - np.abs(rng.normal(5, 2, n)) - 0.3 * pressure
            slp = 1013 + 4 * pressure + rng.normal(0, 0.5, n)
            wind = np.abs(3 + 0.4 * pressure + rng.normal(0, 1.2, n))
            missing = rng.random(n) < 0.03
            slp = np.where(no_pressure, np.nan, slp)
            yield HourlyMeans(
                h,
                np.where(missing, np.nan, np.round(temp, 2)),
                np.where(missing, np.nan, np.round(dew, 2)),
                np.where(missing, np.nan, np.round(slp, 1)),
                np.where(missing, np.nan, np.round(wind, 2)),
            )

    return ids, names, hours()
