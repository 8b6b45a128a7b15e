"""The live view on small in-memory data: what it reads when, and what it answers."""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from moaa.dashboard import app as app_module
from moaa.dashboard.live import Catalogue, LiveCache, LiveView, iso_hour
from moaa.dashboard.settings import DashboardSettings

H = datetime(2013, 1, 2, 23, tzinfo=UTC)
DIRECTORY = {"A": ("US", "KEWR"), "B": ("UK", "EGLL"), "C": ("US", "")}


def stat(sid: str, hour: datetime, mean: float, name: str | None = None) -> dict[str, Any]:
    return {
        "station_id": sid,
        "hour": hour,
        "min_c": mean - 1,
        "max_c": mean + 1,
        "mean_c": mean,
        "count": 2,
        "name": name or f"station {sid}",
        "latitude": 40.0,
        "longitude": -74.0,
        "elevation_m": 2.0,
    }


def summary(hour: datetime, count: int) -> dict[str, Any]:
    return {
        "hour": hour,
        "count": count,
        "stations": count // 2,
        "mean_c": 1.0,
        "min_c": 0.0,
        "max_c": 2.0,
    }


@dataclass
class FakeReader:
    """Documents in memory, and a log of what the cache asked for."""

    stats: list[dict[str, Any]] = field(default_factory=list)
    sums: list[dict[str, Any]] = field(default_factory=list)
    asked: list[tuple[datetime, datetime]] = field(default_factory=list)

    def current_hour(self) -> datetime | None:
        return max((s["hour"] for s in self.sums), default=None)

    def summaries(self, end: datetime, hours: int) -> list[dict[str, Any]]:
        return sorted(
            (s for s in self.sums if end - timedelta(hours=hours) < s["hour"] <= end),
            key=lambda s: s["hour"],
        )

    def hours_stats(self, first: datetime, last: datetime) -> list[dict[str, Any]]:
        self.asked.append((first, last))
        return [d for d in self.stats if first <= d["hour"] <= last]


def make_cache(keep: int = 48, window: int = 6) -> tuple[FakeReader, LiveCache]:
    reader = FakeReader()
    view = LiveView(
        keep_hours=keep, map_window_hours=window, catalogue=Catalogue(directory=DIRECTORY)
    )
    return reader, LiveCache(reader, view)


def test_reads_each_hour_once_and_again_only_when_its_summary_changes() -> None:
    reader, cache = make_cache()
    assert cache.refresh() is False  # nothing stored yet
    reader.stats += [stat("A", H - timedelta(hours=1), 1.0), stat("A", H, 2.0), stat("B", H, 3.0)]
    reader.sums += [summary(H - timedelta(hours=1), 2), summary(H, 4)]
    assert cache.refresh() is True
    assert reader.asked == [(H - timedelta(hours=1), H)]  # one range query for both hours
    assert cache.refresh() is False and len(reader.asked) == 1  # nothing changed: no read
    # a late reading for the older hour: only that hour is read again
    reader.stats.append(stat("C", H - timedelta(hours=1), 5.0))
    reader.sums[0] = summary(H - timedelta(hours=1), 4)
    assert cache.refresh() is True
    assert reader.asked[-1] == (H - timedelta(hours=1), H - timedelta(hours=1))
    # a new hour: only it is read; the oldest leaves a 2-hour window
    _, small = make_cache(keep=2)
    small.reader = reader
    small.refresh()
    reader.stats.append(stat("A", H + timedelta(hours=1), 7.0))
    reader.sums.append(summary(H + timedelta(hours=1), 2))
    small.refresh()
    assert sorted(small.view.hours) == [H, H + timedelta(hours=1)]


def test_now_is_compact_columns_with_idle_stations() -> None:
    reader, cache = make_cache()
    reader.stats += [
        stat("A", H - timedelta(hours=2), 1.0),
        stat("B", H, 3.14159),
        stat("C", H - timedelta(hours=9), 9.0),
    ]
    reader.sums += [
        summary(H - timedelta(hours=2), 2),
        summary(H - timedelta(hours=9), 2),
        summary(H, 2),
    ]
    cache.refresh()
    now = cache.view.now()
    assert now is not None
    assert now["hour"] == iso_hour(H) == "2013-01-02T23:00:00Z"
    assert now["station_id"] == ["B"] and now["mean_c"] == [3.14] and now["count"] == [2]
    assert now["idle"] == ["A"]  # seen 2 h ago (in the 6-hour window); C is older
    assert now["summary"]["count"] == 2
    assert cache.view.now(H - timedelta(hours=30)) is None  # not kept
    stations = cache.view.catalogue.payload()
    at = stations["station_id"].index("A")
    assert (stations["country"][at], stations["call_sign"][at]) == ("US", "KEWR")
    assert stations["version"] == cache.view.catalogue.version > 0


def test_catalogue_version_moves_only_with_new_stations_or_metadata() -> None:
    cat = Catalogue(directory=DIRECTORY)
    cat.add(stat("A", H, 1.0))
    v = cat.version
    cat.add(stat("A", H + timedelta(hours=1), 2.0))
    assert cat.version == v
    cat.add(stat("A", H, 1.0, name="renamed"))
    assert cat.version == v + 1 and cat.name[0] == "renamed"


def test_search_ranks_exact_then_prefix_then_name() -> None:
    cat = Catalogue(
        directory={
            "72502014734": ("US", "KEWR"),
            "03772099999": ("UK", "EGLL"),
            "72503014732": ("US", "KLGA"),
        }
    )
    cat.add(stat("72502014734", H, 1.0, name="NEWARK LIBERTY INTL"))
    cat.add(stat("03772099999", H, 1.0, name="HEATHROW"))
    cat.add(stat("72503014732", H, 1.0, name="LA GUARDIA AIRPORT (NEWARK NOT)"))
    assert [h["station_id"] for h in cat.search("kewr", 5)] == ["72502014734"]
    assert [h["station_id"] for h in cat.search("7250", 5)] == [
        "72503014732",
        "72502014734",
    ]  # by name
    assert [h["name"] for h in cat.search("newark", 5)] == [
        "NEWARK LIBERTY INTL",
        "LA GUARDIA AIRPORT (NEWARK NOT)",
    ]
    assert cat.search("heath", 5)[0] == {
        "station_id": "03772099999",
        "name": "HEATHROW",
        "country": "UK",
        "call_sign": "EGLL",
    }
    assert len(cat.search("a", 1)) == 1 and cat.search("  ", 5) == [] and cat.search("zzz", 5) == []


def test_station_history_comes_from_the_kept_hours() -> None:
    reader, cache = make_cache()
    reader.stats += [stat("A", H - timedelta(hours=k), float(k)) for k in range(5)]
    reader.sums += [summary(H - timedelta(hours=k), 2) for k in range(5)]
    cache.refresh()
    rows = cache.view.station_hours("A", 3)
    assert rows is not None
    assert [r["mean_c"] for r in rows] == [2.0, 1.0, 0.0]  # oldest first, last 3 hours
    assert rows[-1]["hour"] == H and rows[-1]["count"] == 2
    assert cache.view.station_hours("nope", 3) is None
    assert [s["hour"] for s in cache.view.summary_series(2)] == [H - timedelta(hours=1), H]


def test_api_answers_from_the_view_compressed_and_cacheable(monkeypatch: Any) -> None:
    reader = FakeReader(stats=[stat(s, H, 1.5) for s in "ABC"], sums=[summary(H, 6)])
    monkeypatch.setattr(app_module, "station_directory", lambda: DIRECTORY)
    app = app_module.create_app(DashboardSettings(mongo_uri="mongodb://127.0.0.1:1/"), watch=False)
    cache: LiveCache = app.state.live
    cache.reader = reader
    cache.refresh()
    with TestClient(app) as client:
        resp = client.get("/api/now", headers={"Accept-Encoding": "gzip"})
        assert resp.headers["content-encoding"] == "gzip"
        assert resp.json()["station_id"] == ["A", "B", "C"]
        raw = client.get("/api/now", headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in raw.headers
        assert len(gzip.compress(raw.content)) >= int(resp.headers["content-length"]) - 32
        again = client.get("/api/now", headers={"If-None-Match": resp.headers["etag"]})
        assert again.status_code == 304
        version = resp.json()["stations_version"]
        stations = client.get(f"/api/stations?v={version}")
        assert "max-age" in stations.headers["cache-control"]
        assert client.get("/api/stations?v=0").headers["cache-control"] == "no-cache"
        assert json.loads(stations.content)["call_sign"] == ["KEWR", "EGLL", ""]
        hits = client.get("/api/search?q=egll").json()
        assert [h["station_id"] for h in hits] == ["B"]
        assert client.get("/api/search?q=a&limit=51").status_code == 422
        assert client.get(f"/api/now?hour={iso_hour(H)}").status_code == 200
        assert client.get("/api/now?hour=2000-01-01T00:00:00Z").status_code == 404
        assert [s["count"] for s in client.get("/api/summary?hours=48").json()] == [6]
