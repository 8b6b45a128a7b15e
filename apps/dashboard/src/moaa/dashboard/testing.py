"""A website-scale fixture: many stations' hourly documents written straight into MongoDB.

Shaped as the insert job writes them (``hourly_stats``, ``hourly_summary``, ``forecasts``,
``forecast_skill``, the same ``_id`` keys), for ``make bench-website`` and the browser test at
scale; the stations are real ones of the ISD station list (ids, names, positions), the
figures a smooth function of latitude and hour with noise (deterministic: ``seed``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from moaa.dashboard.live import iso_hour

__all__ = ["ScaleFixture", "hour_documents"]

Doc = dict[str, Any]


@dataclass(frozen=True)
class _Station:
    station_id: str
    name: str
    latitude: float
    longitude: float
    elevation_m: float | None


def _stations(count: int) -> list[_Station]:
    from moaa.dataprep.stations import read_stations  # noqa: PLC0415 - only for the fixture

    known = [s for s in read_stations() if s.latitude is not None and s.longitude is not None]
    known = [s for s in known if (s.latitude, s.longitude) != (0.0, 0.0)]
    if count > len(known):
        raise ValueError(f"the ISD station list has {len(known)} stations with a position")
    step = len(known) / count
    chosen = [known[int(i * step)] for i in range(count)]
    return [_Station(s.station_id, s.name, s.latitude, s.longitude, s.elevation_m) for s in chosen]


def hour_documents(stations: list[_Station], hour: datetime, rng: np.random.Generator) -> list[Doc]:
    """One ``hourly_stats`` document per station for ``hour``."""
    lat = np.array([s.latitude for s in stations])
    lon = np.array([s.longitude for s in stations])
    local = (hour.hour + lon / 15.0) % 24
    mean = 27 - 0.45 * np.abs(lat) + 4 * np.sin((local - 9) / 24 * 2 * np.pi)
    mean = mean + rng.normal(0, 1.5, len(stations))
    spread = rng.uniform(0.2, 2.0, len(stations))
    count = rng.integers(1, 4, len(stations))
    key = iso_hour(hour)
    return [
        {
            "_id": f"{s.station_id}|{key}",
            "station_id": s.station_id,
            "hour": hour,
            "min_c": round(float(m - d), 1),
            "max_c": round(float(m + d), 1),
            "mean_c": float(m),
            "count": int(c),
            "name": s.name,
            "latitude": s.latitude,
            "longitude": s.longitude,
            "elevation_m": s.elevation_m,
        }
        for s, m, d, c in zip(stations, mean, spread, count, strict=True)
    ]


def _summary(hour: datetime, docs: list[Doc]) -> Doc:
    counts = sum(d["count"] for d in docs)
    return {
        "_id": iso_hour(hour),
        "hour": hour,
        "min_c": min(d["min_c"] for d in docs),
        "max_c": max(d["max_c"] for d in docs),
        "mean_c": sum(d["mean_c"] * d["count"] for d in docs) / counts,
        "count": counts,
        "stations": len(docs),
        "updated_at": hour + timedelta(hours=1),
    }


def _forecast(station: _Station, issued: datetime, base: float) -> Doc:
    return {
        "_id": f"{station.station_id}|{iso_hour(issued)}",
        "station_id": station.station_id,
        "issued_at": issued,
        "model_version": 1,
        "points": [
            {
                "lead": k,
                "target_hour": issued + timedelta(hours=k),
                "value": round(base + 0.1 * k, 3),
            }
            for k in range(1, 25)
        ],
    }


def _skill(key: str, issued: datetime) -> Doc:
    leads = []
    for k in range(1, 25):
        mae = {
            "model": 0.8 + 0.05 * k,
            "last_value": 0.9 + 0.1 * k,
            "same_hour_yesterday": 2.5,
            "climatology": 3.1,
        }
        leads.append({"lead": k, "n": 40, "mae": mae, "skill": round(1 - mae["model"] / 2.5, 6)})
    overall = {"model": 1.4, "last_value": 2.0, "same_hour_yesterday": 2.5, "climatology": 3.1}
    return {
        "_id": key,
        "station_id": key,
        "updated_hour": issued,
        "model_version": 1,
        "leads": leads,
        "overall": {"n": 960, "mae": overall, "skill": round(1 - 1.4 / 2.5, 6)},
    }


@dataclass
class ScaleFixture:
    """``stations`` stations × ``hours`` hours ending at ``last_hour``; with the latest
    forecast and the skill of every station (what the forecast job would have written)."""

    stations: int
    hours: int
    last_hour: datetime
    seed: int = 14

    def __post_init__(self) -> None:
        self.chosen = _stations(self.stations)
        self.ids = [s.station_id for s in self.chosen]

    def hours_docs(self) -> Iterator[tuple[datetime, list[Doc]]]:
        rng = np.random.default_rng(self.seed)
        for k in range(self.hours - 1, -1, -1):
            hour = self.last_hour - timedelta(hours=k)
            yield hour, hour_documents(self.chosen, hour, rng)

    def write(self, db: Any, batch: int = 5000) -> int:
        """Write every document into ``db``; returns how many."""
        written = 0
        last: list[Doc] = []
        for hour, docs in self.hours_docs():
            for first in range(0, len(docs), batch):
                db.hourly_stats.insert_many(docs[first : first + batch], ordered=False)
            db.hourly_summary.insert_one(_summary(hour, docs))
            written += len(docs) + 1
            last = docs
        forecasts = [
            _forecast(s, self.last_hour, d["mean_c"])
            for s, d in zip(self.chosen, last, strict=True)
        ]
        skills = [_skill(sid, self.last_hour) for sid in [*self.ids, "ALL"]]
        for docs in (forecasts, skills):
            coll = db.forecasts if docs is forecasts else db.forecast_skill
            for first in range(0, len(docs), batch):
                coll.insert_many(docs[first : first + batch], ordered=False)
            written += len(docs)
        return written

    def add_hour(self, db: Any, hour: datetime, stations: int) -> list[Doc]:
        """A new hour for the first ``stations`` stations (a live update); returns its docs."""
        docs = hour_documents(self.chosen[:stations], hour, np.random.default_rng(self.seed + 1))
        db.hourly_stats.insert_many(docs, ordered=False)
        db.hourly_summary.insert_one(_summary(hour, docs))
        return docs
