"""The MOAA website with a few thousand stations, in Debian's Chromium: the canvas map's
tooltip and click-through, the header search, the station table's pages, sorting and
filters, and a live repaint when a new hour lands.

The stations' documents are written straight into the session's FerretDB (as the insert job
writes them, ``moaa.dashboard.testing.ScaleFixture``); ``moaa dashboard`` runs as a real
process. Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from pymongo import MongoClient

from moaa.common.hours import format_hour
from moaa.dashboard.testing import ScaleFixture
from moaa.localstack.testing import free_ports
from moaa.streaming.insert import Inserter

from .conftest import MOAA, wait_until

pytestmark = pytest.mark.integration

STATIONS = 3000
LAST = datetime(2013, 3, 1, 11, tzinfo=UTC)
DATABASE = "it_dashboard_scale"


@dataclass
class Site:
    url: str
    db: Any
    fixture: ScaleFixture
    artifacts: Path

    def get(self, path: str) -> Any:
        resp = httpx.get(self.url + path, timeout=30)
        resp.raise_for_status()
        return resp.json()


@pytest.fixture(scope="module")
def site(
    mongo_uri: str, repo_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_uri, tz_aware=True)
    client.drop_database(DATABASE)
    db = client[DATABASE]
    Inserter.ensure_indexes(SimpleNamespace(db=db))  # type: ignore[arg-type]
    fixture = ScaleFixture(STATIONS, 3, LAST)
    fixture.write(db)
    port, kafka = free_ports(2)
    env = {
        **os.environ,
        "MOAA_LOG_FORMAT": "json",
        "MOAA_MONGO_URI": mongo_uri,
        "MOAA_MONGO_DATABASE": DATABASE,
        "MOAA_DASHBOARD_PORT": str(port),
        "MOAA_DASHBOARD_REFRESH_S": "0.5",
        "MOAA_DASHBOARD_SCRAPE_TARGETS": "",
        "MOAA_KAFKA_BOOTSTRAP": f"127.0.0.1:{kafka}",  # nothing there: the pipeline page only
    }
    log = tmp_path_factory.mktemp("dashboard-scale") / "dashboard.log"
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen([MOAA, "dashboard"], env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"moaa dashboard exited:\n{log.read_text()[-3000:]}")
        try:
            return httpx.get(url + "/readyz", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    artifacts = repo_root / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    try:
        wait_until("the dashboard to load the latest hours", ready, 120)
        yield Site(url, db, fixture, artifacts)
    finally:
        proc.terminate()
        proc.wait(20)
        client.drop_database(DATABASE)
        client.close()


def _open_map(browser: Any, site: Site) -> tuple[Any, list[str]]:
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(site.url + "/")
    page.wait_for_function("document.body.dataset.interactive !== undefined", timeout=30_000)
    return page, errors


def _point(page: Any, station_id: str) -> tuple[float, float]:
    point = page.evaluate(f"window.moaaMap.point({json.dumps(station_id)})")
    box = page.locator("#map-canvas").bounding_box()
    return box["x"] + point["x"], box["y"] + point["y"]


def _isolated(site: Site, now: dict[str, Any]) -> str:
    """A reporting station with no other within 1.5° (so the pointer finds only it)."""
    stations = site.get(f"/api/stations?v={now['stations_version']}")
    where = {
        sid: (stations["latitude"][k], stations["longitude"][k])
        for k, sid in enumerate(stations["station_id"])
    }
    for sid in now["station_id"]:
        lat, lon = where[sid]
        if abs(lat) < 60 and all(
            abs(lat - a) > 1.5 or abs(lon - b) > 1.5
            for other, (a, b) in where.items()
            if other != sid
        ):
            return sid
    raise AssertionError("no isolated station in the fixture")


def test_map_tooltip_and_click_through(site: Site, browser: Any) -> None:
    now = site.get("/api/now")
    assert len(now["station_id"]) == STATIONS
    page, errors = _open_map(browser, site)
    sid = _isolated(site, now)
    k = now["station_id"].index(sid)
    x, y = _point(page, sid)
    page.mouse.move(x, y)
    page.wait_for_selector("#map-tip:not([hidden])")
    tip = page.text_content("#map-tip")
    assert sid in tip and f"mean {now['mean_c'][k]:.2f}" in tip and "readings" in tip
    page.screenshot(path=site.artifacts / "dashboard-scale-tooltip.png")
    page.mouse.click(x, y)
    page.wait_for_url(f"**/station/{sid}")
    page.wait_for_function("document.body.dataset.loaded !== undefined")
    assert page.text_content("#station-id") == sid
    assert page.locator("#skill-table tbody tr").count() == 24
    page.screenshot(path=site.artifacts / "dashboard-scale-station.png", full_page=True)
    assert errors == []
    page.close()


def test_search_as_you_type_with_the_keyboard(site: Site, browser: Any) -> None:
    page, errors = _open_map(browser, site)
    stations = site.get("/api/stations")
    calls = stations["call_sign"]
    k = next(i for i, c in enumerate(calls) if c and calls.count(c) == 1)  # unique call sign
    call, sid = stations["call_sign"][k], stations["station_id"][k]
    page.click("#search")
    page.keyboard.type(call.lower(), delay=30)
    # the answers to the shorter prefixes typed before may show first: wait for the last one,
    # where the exact call sign comes first
    page.wait_for_function(
        "document.querySelector('#search-results li[role=option]')?.dataset.station === "
        + json.dumps(sid)
    )
    page.screenshot(path=site.artifacts / "dashboard-scale-search.png")
    page.keyboard.press("ArrowDown")
    assert page.get_attribute("#search", "aria-activedescendant") == "search-hit-0"
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/station/{sid}")
    page.wait_for_function("document.body.dataset.loaded !== undefined")
    # by name, from the station page's own header, and the limit of the API
    name = stations["name"][k]
    page.fill("#search", name[:6])
    page.wait_for_selector("#search-results li[role=option]")
    assert 1 <= page.locator("#search-results li[role=option]").count() <= 10
    assert len(site.get("/api/search?q=a&limit=50")) == 50
    page.keyboard.press("Escape")
    assert page.is_hidden("#search-results")
    assert errors == []
    page.close()


def test_table_pages_sorts_and_filters(site: Site, browser: Any) -> None:
    now = site.get("/api/now")
    stations = site.get(f"/api/stations?v={now['stations_version']}")
    page, errors = _open_map(browser, site)
    assert page.text_content("#table-info") == f"{STATIONS:,} stations"
    assert page.text_content("#table-page") == f"1 / {STATIONS // 50}"
    assert page.locator("#stations-table tbody tr").count() == 50
    page.click('#stations-table th[data-key="mean"] button')  # numbers sort high to low first
    top = page.locator("#stations-table tbody tr").first.locator("td")
    assert float(top.nth(4).text_content()) == pytest.approx(max(now["mean_c"]), abs=0.006)
    assert page.get_attribute('#stations-table th[data-key="mean"]', "aria-sort") == "descending"
    page.click("#table-next")
    assert page.text_content("#table-page").startswith("2 / ")
    country = max(set(stations["country"]) - {""}, key=stations["country"].count)
    page.select_option("#table-country", country)
    expected = stations["country"].count(country)
    page.wait_for_function(
        f"document.getElementById('table-info').textContent === {json.dumps(f'{expected:,} stations')}"
    )
    assert page.text_content("#table-page").startswith("1 / ")
    name = stations["name"][stations["country"].index(country)]
    page.fill("#table-filter", name)
    page.wait_for_function(
        "document.querySelectorAll('#stations-table tbody tr').length >= 1 && "
        "document.getElementById('table-info').textContent !== "
        + json.dumps(f"{expected:,} stations")
    )
    texts = page.locator("#stations-table tbody tr td:nth-child(2)").all_text_contents()
    assert texts and all(name.lower() in t.lower() for t in texts)
    page.screenshot(path=site.artifacts / "dashboard-scale-table.png", full_page=True)
    assert errors == []
    page.close()


def test_a_new_hour_repaints_without_reloading(site: Site, browser: Any) -> None:
    page, errors = _open_map(browser, site)
    page.evaluate("window.__stillThePage = true")
    paints = int(page.evaluate("document.body.dataset.paints"))
    new_hour = LAST + timedelta(hours=1)
    docs = site.fixture.add_hour(site.db, new_hour, 500)
    page.wait_for_function(
        f"document.body.dataset.hour === {json.dumps(format_hour(new_hour))}",
        timeout=30_000,
    )
    assert page.evaluate("window.__stillThePage") is True  # repainted, not reloaded
    assert int(page.evaluate("document.body.dataset.paints")) > paints
    assert page.text_content("#summary-stations") == "500"
    # the 2,500 stations without a reading this hour are grey, still listed
    assert page.text_content("#table-info") == f"{STATIONS:,} stations"
    page.wait_for_function("Number(document.body.dataset.worldHours) === 4")
    page.click('#stations-table th[data-key="count"] button')
    first = page.locator("#stations-table tbody tr").first.get_attribute("data-station")
    assert first in {d["station_id"] for d in docs}
    page.screenshot(path=site.artifacts / "dashboard-scale-live.png", full_page=True)
    assert errors == []
    page.close()
