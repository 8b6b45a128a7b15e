"""Read-only queries of MongoDB: the only place the website touches the database.

Every query is a :class:`Find` (filter, projection, sort, limit — what FerretDB v1 supports
well) that names the index answering it on MongoDB; the insert job creates them:
``hourly_stats`` ``station_hour`` (station_id, hour) and ``hour``, ``hourly_summary``
``hour``, ``forecasts`` ``station_issued_at`` (station_id, issued_at), and every
collection's ``_id_``. ``tests/integration/test_dashboard_indexes.py`` runs ``explain()`` on
each query the site makes and checks the named index covers it.

Most reads happen once per new hour, in the live view's refresh (``moaa.dashboard.live``);
per request only a station page's forecast and skill, and a station outside the kept hours.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING

from moaa.dashboard.live import iso_hour

__all__ = ["Find", "Store"]

Doc = dict[str, Any]
_STATION_FIELDS = ("station_id", "name", "latitude", "longitude", "elevation_m")
_FIGURES = ("min_c", "max_c", "mean_c", "count")


@dataclass(frozen=True)
class Find:
    """One ``find`` the site makes, and the index that answers it on MongoDB."""

    collection: str
    filter: Doc
    index: str
    sort: tuple[tuple[str, int], ...] = ()
    limit: int = 0
    projection: Doc | None = None

    def command(self) -> Doc:
        """The ``find`` command document (what ``explain`` takes)."""
        cmd: Doc = {"find": self.collection, "filter": self.filter}
        if self.sort:
            cmd["sort"] = dict(self.sort)
        if self.limit:
            cmd["limit"] = self.limit
        if self.projection:
            cmd["projection"] = self.projection
        return cmd


@dataclass
class Store:
    """Queries of database ``db`` (a pymongo ``Database``); ``trace`` records each one run."""

    db: Any
    trace: list[Find] | None = field(default=None)

    def _cursor(self, q: Find) -> Iterator[Doc]:
        if self.trace is not None:
            self.trace.append(q)
        cursor = self.db[q.collection].find(q.filter, q.projection, sort=list(q.sort) or None)
        return cursor.limit(q.limit) if q.limit else cursor

    def _find(self, q: Find) -> list[Doc]:
        return list(self._cursor(q))

    def _first(self, q: Find) -> Doc | None:
        return next(iter(self._cursor(q)), None)

    def ping(self) -> None:
        self.db.client.admin.command("ping")

    def current_hour(self) -> datetime | None:
        for coll in ("hourly_summary", "hourly_stats"):
            doc = self._first(Find(coll, {}, "hour", (("hour", DESCENDING),), 1, {"hour": 1}))
            if doc is not None:
                return doc["hour"]
        return None

    def summaries(self, end: datetime, hours: int) -> list[Doc]:
        window = {"$gt": end - timedelta(hours=hours), "$lte": end}
        return self._find(Find("hourly_summary", {"hour": window}, "hour", (("hour", ASCENDING),)))

    def hours_stats(self, first: datetime, last: datetime) -> Iterator[Doc]:
        """Every station's figures and metadata for the hours ``first`` … ``last``, as the
        cursor returns them (never all in memory)."""
        query = {"hour": first} if first == last else {"hour": {"$gte": first, "$lte": last}}
        fields = dict.fromkeys((*_STATION_FIELDS, *_FIGURES, "hour"), 1)
        return self._cursor(Find("hourly_stats", query, "hour", projection=fields))

    def station_hours(self, station_id: str, end: datetime, hours: int) -> list[Doc]:
        window = {"$gt": end - timedelta(hours=hours), "$lte": end}
        query = {"station_id": station_id, "hour": window}
        return self._find(Find("hourly_stats", query, "station_hour", (("hour", ASCENDING),)))

    def station_latest(self, station_id: str) -> Doc | None:
        query = {"station_id": station_id}
        return self._first(Find("hourly_stats", query, "station_hour", (("hour", DESCENDING),), 1))

    def forecast(self, station_id: str, latest_hour: datetime | None = None) -> Doc | None:
        """The station's latest forecast. A forecast is issued at an hour of the station's
        data, so when ``latest_hour`` (the station's newest hour) has one it is the latest:
        looked up by ``_id`` first (FerretDB answers that without reading every document)."""
        if latest_hour is not None:
            key = f"{station_id}|{iso_hour(latest_hour)}"
            found = self._first(Find("forecasts", {"_id": key}, "_id_", limit=1))
            if found is not None:
                return found
        order = (("issued_at", DESCENDING),)
        return self._first(
            Find("forecasts", {"station_id": station_id}, "station_issued_at", order, 1)
        )

    def skill(self, key: str) -> Doc | None:
        return self._first(Find("forecast_skill", {"_id": key}, "_id_", limit=1))
