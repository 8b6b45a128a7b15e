"""Every query the website makes rides an index, and browsers add no load on MongoDB.

The site runs in-process against the session's FerretDB with the insert job's own indexes
(``Inserter.ensure_indexes``) and a small fixture of the insert job's documents. Its
``Store`` records each query (``trace``); every page and API route is visited, then each
recorded query is run through ``explain`` on FerretDB and checked against the index it names:

* FerretDB v1 (SQLite) plans every query as a table scan and uses no secondary index, so
  there the check is that ``explain`` accepts the query and that an ``_id`` equality is
  pushed down to SQLite (``filterPushdown``), which is what it does support;
* for MongoDB the named index must exist and cover the query the way MongoDB's planner needs
  (equality fields first, then the sort / range field): the README lists each query with its
  ``explain()`` to run there.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pymongo import MongoClient

from moaa.dashboard.app import create_app
from moaa.dashboard.settings import DashboardSettings
from moaa.dashboard.store import Find
from moaa.dashboard.testing import ScaleFixture
from moaa.streaming.insert import Inserter

pytestmark = pytest.mark.integration

LAST = datetime(2013, 1, 2, 5, tzinfo=UTC)
DATABASE = "it_dashboard_indexes"


def _shape(find: Find) -> tuple[list[str], list[str]]:
    """(equality fields, then the sort and range fields in order) of a query."""
    equal = [k for k, v in find.filter.items() if not isinstance(v, dict)]
    ordered = [k for k, _ in find.sort]
    ordered += [k for k, v in find.filter.items() if isinstance(v, dict) and k not in ordered]
    return equal, ordered


def _covers(find: Find, keys: list[str]) -> bool:
    """MongoDB answers ``find`` from an index on ``keys`` without a blocking sort: its
    equality fields lead (any order), then its sort/range fields, in order."""
    equal, ordered = _shape(find)
    return (
        set(keys[: len(equal)]) == set(equal)
        and keys[len(equal) : len(equal) + len(ordered)] == ordered
    )


@pytest.fixture(scope="module")
def site(mongo_uri: str) -> Iterator[tuple[TestClient, Any, Any, ScaleFixture]]:
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_uri, tz_aware=True)
    client.drop_database(DATABASE)
    db = client[DATABASE]
    Inserter.ensure_indexes(SimpleNamespace(db=db))  # type: ignore[arg-type]
    fixture = ScaleFixture(40, 3, LAST)
    fixture.write(db)
    settings = DashboardSettings(mongo_uri=mongo_uri, mongo_database=DATABASE)
    app = create_app(settings, watch=False)
    try:
        with TestClient(app) as http:
            yield http, app.state, db, fixture
    finally:
        client.drop_database(DATABASE)
        client.close()


def test_every_query_of_the_site_uses_an_index(
    site: tuple[TestClient, Any, Any, ScaleFixture],
) -> None:
    http, state, db, fixture = site
    state.store.trace = []
    state.live.refresh()  # the new-hour task
    sid = fixture.ids[3]
    for path in (
        "/readyz",
        "/api/now",
        "/api/stations",
        f"/api/search?q={sid[:4]}",
        "/api/summary?hours=48",
        "/api/summary?hours=100",  # beyond the kept hours: read from MongoDB
        f"/api/stations/{sid}",
        f"/api/stations/{sid}?hours=100",
        f"/api/stations/{sid}?forecast=false",
        f"/api/stations/{sid}/forecast",
        "/api/stations/00000000000/forecast",
        "/api/stations/00000000000",
        "/api/skill",
        "/",
        f"/station/{sid}",
    ):
        assert http.get(path).status_code in (200, 404), path
    seen: dict[str, Find] = {}
    for find in state.store.trace:
        seen.setdefault(repr((find.collection, _shape(find), find.index)), find)
    assert {f.collection for f in seen.values()} == {
        "hourly_stats",
        "hourly_summary",
        "forecasts",
        "forecast_skill",
    }
    assert http.get(f"/api/stations/{sid}?forecast=false").json()["forecast"] is None
    assert http.get(f"/api/stations/{sid}/forecast").json()["skill"]["station_id"] == sid
    for find in seen.values():
        indexes = {
            name: [k for k, _ in info["key"]]
            for name, info in db[find.collection].index_information().items()
        }
        assert find.index in indexes, (find, sorted(indexes))
        assert _covers(find, indexes[find.index]), (find, indexes[find.index])
        plan = db.command("explain", find.command())
        assert plan["ok"] == 1.0, plan
        if list(find.filter) == ["_id"]:
            assert plan["filterPushdown"] is True, plan  # what FerretDB v1 pushes down


def test_browsers_add_no_load_on_mongodb(site: tuple[TestClient, Any, Any, ScaleFixture]) -> None:
    http, state, _db, fixture = site
    state.live.refresh()
    state.store.trace = []
    for _ in range(20):  # twenty browsers opening the map and searching
        now = http.get("/api/now").json()
        assert len(now["station_id"]) == len(fixture.ids)
        http.get(f"/api/stations?v={now['stations_version']}")
        http.get("/api/search?q=a")
        http.get("/api/summary?hours=48")
    assert state.store.trace == []
    state.live.refresh()  # nothing changed: the refresh reads the hour and the summaries only
    assert {f.collection for f in state.store.trace} == {"hourly_summary"}
