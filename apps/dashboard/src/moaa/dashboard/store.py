"""Read-only queries of MongoDB: the only place the website touches the database.

Only ``find`` (filter, projection, sort, limit) is used — what FerretDB v1 supports well —
and every query rides an index of the insert job: ``hourly_stats`` on ``(station_id, hour)``
and ``hour``, ``hourly_summary`` on ``hour``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING

__all__ = ["Store", "latest_per_station"]

Doc = dict[str, Any]
_STATION_FIELDS = ("station_id", "name", "latitude", "longitude", "elevation_m")
_FIGURES = ("min_c", "max_c", "mean_c", "count")


def latest_per_station(docs: list[Doc], hour: datetime) -> list[Doc]:
    """One entry per station from its latest document; figures only if that is ``hour``.

    Pure: the map's rows from the documents of a window of hours.
    """
    latest: dict[str, Doc] = {}
    for doc in docs:
        sid = doc.get("station_id")
        if sid is None:
            continue
        seen = latest.get(sid)
        if seen is None or doc["hour"] > seen["hour"]:
            latest[sid] = doc
    rows = []
    for sid in sorted(latest):
        doc = latest[sid]
        row = {k: doc.get(k) for k in _STATION_FIELDS}
        row["last_hour"] = doc["hour"]
        current = doc["hour"] == hour
        row |= {k: doc.get(k) if current else None for k in _FIGURES}
        rows.append(row)
    return rows


class Store:
    """Queries of database ``db`` (a pymongo ``Database``)."""

    def __init__(self, db: Any) -> None:
        self.db = db

    def ping(self) -> None:
        self.db.client.admin.command("ping")

    def current_hour(self) -> datetime | None:
        for coll in (self.db.hourly_summary, self.db.hourly_stats):
            doc = next(iter(coll.find({}, {"hour": 1}).sort("hour", DESCENDING).limit(1)), None)
            if doc is not None:
                return doc["hour"]
        return None

    def summary(self, hour: datetime) -> Doc | None:
        return self.db.hourly_summary.find_one({"hour": hour})

    def summaries(self, end: datetime, hours: int) -> list[Doc]:
        query = {"hour": {"$gt": end - timedelta(hours=hours), "$lte": end}}
        return list(self.db.hourly_summary.find(query).sort("hour", ASCENDING))

    def stations(self, hour: datetime, window_hours: int) -> list[Doc]:
        query = {"hour": {"$gt": hour - timedelta(hours=window_hours), "$lte": hour}}
        fields = dict.fromkeys((*_STATION_FIELDS, *_FIGURES, "hour"), 1)
        return latest_per_station(list(self.db.hourly_stats.find(query, fields)), hour)

    def station_hours(self, station_id: str, end: datetime, hours: int) -> list[Doc]:
        query = {
            "station_id": station_id,
            "hour": {"$gt": end - timedelta(hours=hours), "$lte": end},
        }
        return list(self.db.hourly_stats.find(query).sort("hour", ASCENDING))

    def station_latest(self, station_id: str) -> Doc | None:
        cursor = self.db.hourly_stats.find({"station_id": station_id}).sort("hour", DESCENDING)
        return next(iter(cursor.limit(1)), None)

    def forecast(self, station_id: str) -> Doc | None:
        cursor = self.db.forecasts.find({"station_id": station_id}).sort("issued_at", DESCENDING)
        return next(iter(cursor.limit(1)), None)

    def skill(self, key: str) -> Doc | None:
        return self.db.forecast_skill.find_one({"_id": key})
