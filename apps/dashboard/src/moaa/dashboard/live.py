"""The website's in-process view of the latest hours: what ``/api/now``, ``/api/stations``,
``/api/search``, ``/api/summary`` and the station page's history answer from.

One task (:meth:`LiveCache.refresh`) reads MongoDB when a new hour lands or an hour's
summary changes; requests never touch MongoDB for these. The view holds:

* the **catalogue**: every station seen in the kept hours, in order of first sight, with
  its name, position and, from the ISD station list, country and call sign (served once as
  ``/api/stations``, versioned so the browser caches it);
* the **figures**: per kept hour, columnar arrays (min, mean, max, readings) indexed by the
  station's place in the catalogue — 14k stations × 48 hours is about 20 MB;
* the all-stations **summaries** of the kept hours.

Answers are encoded once per change (JSON, and gzip for browsers that take it).
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import math
import threading
from array import array
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import msgspec
import numpy as np

from moaa.common.hours import format_hour

__all__ = ["Catalogue", "Encoded", "HourFigures", "LiveCache", "LiveView", "Reader"]

log = logging.getLogger(__name__)
Doc = dict[str, Any]
#: The per-station figures of an hour, as stored in ``hourly_stats``.
FIGURES = ("min_c", "mean_c", "max_c")
#: Figures in the compact answers are rounded to this many decimals (°C); the pages show at
#: most two.
DECIMALS = 2
_SUMMARY_KEY = ("count", "stations", "min_c", "max_c", "mean_c", "updated_at")


def iso_hour(hour: datetime) -> str:
    """``2013-01-02T23:00:00Z``: the hour as the API writes it."""
    return format_hour(hour)


@dataclass(frozen=True)
class Encoded:
    """One answer, encoded once: JSON bytes, their gzip, and an entity tag."""

    body: bytes
    gzipped: bytes
    etag: str

    @classmethod
    def of(cls, value: Any) -> Encoded:
        body = msgspec.json.encode(value)
        return cls(
            body,
            gzip.compress(body, 6),
            '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"',
        )


@dataclass
class Catalogue:
    """Stations in order of first sight; ``directory`` maps an id to (country, call sign)."""

    directory: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    ids: list[str] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)
    name: list[str | None] = field(default_factory=list)
    latitude: list[float | None] = field(default_factory=list)
    longitude: list[float | None] = field(default_factory=list)
    elevation_m: list[float | None] = field(default_factory=list)
    version: int = 0
    _search: list[tuple[str, str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, doc: Doc) -> int:
        """The place of ``doc``'s station, adding it (or its new metadata) if needed."""
        sid = doc["station_id"]
        meta = (doc.get("name"), doc.get("latitude"), doc.get("longitude"), doc.get("elevation_m"))
        at = self.index.get(sid)
        if at is None:
            at = self.index[sid] = len(self.ids)
            self.ids.append(sid)
            for column in (self.name, self.latitude, self.longitude, self.elevation_m):
                column.append(None)
            self._search.append(("", "", ""))
        elif meta == (self.name[at], self.latitude[at], self.longitude[at], self.elevation_m[at]):
            return at
        self.name[at], self.latitude[at], self.longitude[at], self.elevation_m[at] = meta
        self._search[at] = (sid, (meta[0] or "").lower(), self.call_sign(at).lower())
        self.version += 1
        return at

    def country(self, at: int) -> str:
        return self.directory.get(self.ids[at], ("", ""))[0]

    def call_sign(self, at: int) -> str:
        return self.directory.get(self.ids[at], ("", ""))[1]

    def payload(self) -> Doc:
        """``/api/stations``: the catalogue as columns (one entry per station, same order)."""
        return {
            "version": self.version,
            "station_id": self.ids,
            "name": self.name,
            "latitude": self.latitude,
            "longitude": self.longitude,
            "elevation_m": self.elevation_m,
            "country": [self.country(i) for i in range(len(self.ids))],
            "call_sign": [self.call_sign(i) for i in range(len(self.ids))],
        }

    def search(self, query: str, limit: int) -> list[Doc]:
        """Stations whose id, call sign or name match ``query`` (case-insensitive), best first:
        an exact id or call sign, then id or call-sign prefixes, then name prefixes, then names
        containing it; ties by name."""
        q = query.strip().lower()
        if not q:
            return []
        ranked: list[tuple[int, str, int]] = []
        for at, (sid, name, call) in enumerate(self._search):
            if q in (sid, call):
                rank = 0
            elif sid.startswith(q) or (call and call.startswith(q)):
                rank = 1
            elif name.startswith(q):
                rank = 2
            elif q in name:
                rank = 3
            else:
                continue
            ranked.append((rank, name, at))
        ranked.sort()
        return [
            {
                "station_id": self.ids[at],
                "name": self.name[at],
                "country": self.country(at),
                "call_sign": self.call_sign(at),
            }
            for _, _, at in ranked[:limit]
        ]


@dataclass
class HourRows:
    """One hour's documents as they are read, kept compact (a document is dropped once
    read: 14k stations × 48 hours never sit in memory as documents)."""

    at: array[int] = field(default_factory=lambda: array("q"))
    values: tuple[array[float], ...] = field(
        default_factory=lambda: tuple(array("d") for _ in FIGURES)
    )
    count: array[int] = field(default_factory=lambda: array("q"))

    def add(self, at: int, doc: Doc) -> None:
        self.at.append(at)
        for column, name in zip(self.values, FIGURES, strict=True):
            v = doc.get(name)
            column.append(math.nan if v is None else float(v))
        self.count.append(int(doc.get("count") or 0))

    def figures(self, hour: datetime, key: tuple[Any, ...] | None, stations: int) -> HourFigures:
        at = np.frombuffer(self.at, dtype=np.int64) if self.at else np.zeros(0, dtype=np.int64)
        values = np.full((len(FIGURES), stations), np.nan)
        count = np.zeros(stations, dtype=np.int64)
        for k, column in enumerate(self.values):
            if column:
                values[k, at] = np.frombuffer(column, dtype=np.float64)
        if self.count:
            count[at] = np.frombuffer(self.count, dtype=np.int64)
        return HourFigures(hour, key, values, count)


@dataclass
class HourFigures:
    """One hour's figures, indexed by catalogue place (NaN / 0 readings: no document)."""

    hour: datetime
    key: tuple[Any, ...] | None
    values: np.ndarray  # (len(FIGURES), stations) float64
    count: np.ndarray  # (stations,) int64

    def reporting(self) -> np.ndarray:
        """Catalogue places of the stations with a document this hour."""
        return np.flatnonzero(self.count > 0)

    def of(self, at: int) -> Doc | None:
        if at >= self.count.size or self.count[at] == 0:
            return None
        doc: Doc = {"hour": self.hour, "count": int(self.count[at])}
        for k, name in enumerate(FIGURES):
            v = float(self.values[k, at])
            doc[name] = None if math.isnan(v) else v
        return doc


def _column(values: np.ndarray) -> list[float | None]:
    rounded = np.round(values, DECIMALS)
    if not np.isnan(rounded).any():
        return rounded.tolist()
    return [None if math.isnan(v) else v for v in rounded.tolist()]


def summary_key(summary: Doc | None) -> tuple[Any, ...] | None:
    """What identifies a version of an hour's figures: its summary's counts and figures."""
    return None if summary is None else tuple(summary.get(k) for k in _SUMMARY_KEY)


@dataclass
class LiveView:
    """The kept hours, the catalogue, and the encoded answers (pure: no I/O)."""

    keep_hours: int = 48
    map_window_hours: int = 6
    catalogue: Catalogue = field(default_factory=Catalogue)
    hours: dict[datetime, HourFigures] = field(default_factory=dict)
    summaries: dict[datetime, Doc] = field(default_factory=dict)
    current: datetime | None = None
    version: int = 0
    _encoded: dict[str, tuple[int, Encoded]] = field(default_factory=dict)

    def stale_hours(self, current: datetime, summaries: list[Doc]) -> list[datetime]:
        """Hours of the kept window whose figures must be (re)read: new, or their summary
        changed; the current hour too while it has no summary."""
        by_hour = {s["hour"]: s for s in summaries}
        stale = [
            hour
            for hour, summary in by_hour.items()
            if hour > current - timedelta(hours=self.keep_hours)
            and (hour not in self.hours or self.hours[hour].key != summary_key(summary))
        ]
        if current not in by_hour and (
            current not in self.hours or self.hours[current].key is None
        ):
            stale.append(current)
        return sorted(set(stale))

    def update(
        self, current: datetime, summaries: list[Doc], rows: Mapping[datetime, HourRows]
    ) -> bool:
        """Take the newly read hours (``rows``: hour → its documents, read with
        :meth:`Catalogue.add`) and the kept window's ``summaries``; drop hours that left the
        window. True if anything changed."""
        by_hour = {s["hour"]: s for s in summaries}
        changed = current != self.current or by_hour != self.summaries
        for hour, read in rows.items():
            key = summary_key(by_hour.get(hour))
            self.hours[hour] = read.figures(hour, key, len(self.catalogue))
            changed = True
        oldest = current - timedelta(hours=self.keep_hours)
        for hour in [h for h in self.hours if h <= oldest]:
            del self.hours[hour]
        self.current, self.summaries = current, by_hour
        if changed:
            self.version += 1
        return changed

    # --- answers ----------------------------------------------------------------------
    def encoded(self, name: str, build: Callable[[], Any], version: int | None = None) -> Encoded:
        """``build()`` encoded, memoised until ``version`` (default: the view's) changes."""
        version = self.version if version is None else version
        hit = self._encoded.get(name)
        if hit is None or hit[0] != version:
            hit = (version, Encoded.of(build()))
            self._encoded[name] = hit
        return hit[1]

    def now(self, hour: datetime | None = None) -> Doc | None:
        """``/api/now``: the hour's summary and, as columns, the figures of each station with
        a reading; ``idle``: stations seen in the map window but not this hour. None: the
        hour is not kept."""
        hour = hour or self.current
        if hour is None:
            return {
                "hour": None,
                "summary": None,
                "stations_version": self.catalogue.version,
                "station_id": [],
                "min_c": [],
                "mean_c": [],
                "max_c": [],
                "count": [],
                "idle": [],
            }
        figures = self.hours.get(hour)
        if figures is None:
            return None
        at = figures.reporting()
        ids = self.catalogue.ids
        window = [
            f
            for h, f in self.hours.items()
            if hour - timedelta(hours=self.map_window_hours) < h < hour
        ]
        seen = np.zeros(len(self.catalogue), dtype=bool)
        for f in window:
            seen[: f.count.size] |= f.count > 0
        seen[at] = False
        summary = self.summaries.get(hour)
        return {
            "hour": iso_hour(hour),
            "summary": _summary_json(summary),
            "stations_version": self.catalogue.version,
            "station_id": [ids[i] for i in at.tolist()],
            **{name: _column(figures.values[k, at]) for k, name in enumerate(FIGURES)},
            "count": figures.count[at].tolist(),
            "idle": [ids[i] for i in np.flatnonzero(seen).tolist()],
        }

    def summary_series(self, hours: int) -> list[Doc]:
        """The kept summaries of the latest ``hours`` hours, oldest first."""
        if self.current is None:
            return []
        start = self.current - timedelta(hours=hours)
        return [self.summaries[h] for h in sorted(self.summaries) if start < h <= self.current]

    def covers(self, hours: int) -> bool:
        return hours <= self.keep_hours

    def station_hours(self, station_id: str, hours: int) -> list[Doc] | None:
        """A station's kept hours (oldest first); None if the station is not in the view."""
        at = self.catalogue.index.get(station_id)
        if at is None or self.current is None:
            return None
        start = self.current - timedelta(hours=hours)
        rows = [self.hours[h].of(at) for h in sorted(self.hours) if start < h <= self.current]
        return [r for r in rows if r is not None]

    def station_meta(self, station_id: str) -> Doc | None:
        at = self.catalogue.index.get(station_id)
        if at is None:
            return None
        c = self.catalogue
        return {
            "name": c.name[at],
            "latitude": c.latitude[at],
            "longitude": c.longitude[at],
            "elevation_m": c.elevation_m[at],
            "country": c.country(at),
            "call_sign": c.call_sign(at),
        }


def _runs(hours: list[datetime]) -> list[tuple[datetime, datetime]]:
    """Sorted hours as runs of consecutive hours: one range query each.

    >>> h = datetime(2013, 1, 1, tzinfo=UTC)
    >>> [(a.hour, b.hour) for a, b in _runs([h, h + timedelta(hours=1), h + timedelta(hours=5)])]
    [(0, 1), (5, 5)]
    """
    runs: list[tuple[datetime, datetime]] = []
    for hour in hours:
        if runs and hour - runs[-1][1] == timedelta(hours=1):
            runs[-1] = (runs[-1][0], hour)
        else:
            runs.append((hour, hour))
    return runs


def _summary_json(summary: Doc | None) -> Doc | None:
    if summary is None:
        return None
    out = {k: summary.get(k) for k in ("min_c", "max_c", "mean_c", "count", "stations")}
    return {"hour": iso_hour(summary["hour"]), **out}


class Reader(Protocol):
    """What :class:`LiveCache` reads (``moaa.dashboard.store.Store``)."""

    def current_hour(self) -> datetime | None: ...
    def summaries(self, end: datetime, hours: int) -> list[Doc]: ...
    def hours_stats(self, first: datetime, last: datetime) -> Iterable[Doc]: ...


@dataclass
class LiveCache:
    """A :class:`LiveView` kept up to date from ``reader`` by :meth:`refresh`."""

    reader: Reader
    view: LiveView
    #: Held while the view changes; readers of the view (request threads) hold it too.
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: Whether a refresh has completed (the site is ready then).
    loaded: bool = False

    def refresh(self) -> bool:
        """Read what changed since the last call (one range query per run of consecutive
        stale hours, streamed); True if the view changed."""
        current = self.reader.current_hour()
        if current is None:
            self.loaded = True
            return False
        summaries = self.reader.summaries(current, self.view.keep_hours)
        stale = self.view.stale_hours(current, summaries)
        rows = {h: HourRows() for h in stale}
        read = 0
        for first, last in _runs(stale):
            for doc in self.reader.hours_stats(first, last):
                into = rows.get(doc["hour"])
                if into is None or doc.get("station_id") is None:
                    continue
                with self.lock:  # the station list is read by requests meanwhile
                    at = self.view.catalogue.add(doc)
                into.add(at, doc)
                read += 1
        if stale:
            log.info("read %d hours of stats (%d documents) for the live view", len(stale), read)
        with self.lock:
            changed = self.view.update(current, summaries, rows)
        self.loaded = True
        return changed
