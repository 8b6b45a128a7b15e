"""The MOAA website on a real replay: feeder → producer → Kafka → Spark → insert → FerretDB →
``moaa dashboard`` (a real process), checked through its JSON API and in Debian's Chromium.

Two days of the bundled sample are replayed once for the module; forecasts and skill are
hand-made documents of the forecast job's contract (that job is tested on its own), written
for Newark only so JFK shows "no forecast yet". Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import MongoClient

from moaa.common.hours import format_hour, record_key
from moaa.localstack.testing import free_ports
from moaa.streaming.stats import StatsSettings

from .conftest import Pipeline, wait_until

pytestmark = pytest.mark.integration

EWR, JFK = "72502014734", "74486094789"
HOURS = 48
LAST_HOUR = datetime(2013, 1, 1, tzinfo=UTC) + timedelta(hours=HOURS - 1)
SUMMARY_TRIGGER_S = StatsSettings.model_fields["stats_summary_trigger_seconds"].default
BASELINES = ("last_value", "same_hour_yesterday", "climatology")


@dataclass
class Site:
    url: str
    pipe: Pipeline
    db: Any
    replay_hours_seen: list[str]
    artifacts: Path

    def get(self, path: str) -> Any:
        resp = httpx.get(self.url + path, timeout=10)
        resp.raise_for_status()
        return resp.json()


def _forecast_docs(issued: datetime) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    forecast = {
        "_id": record_key(EWR, issued),
        "station_id": EWR,
        "issued_at": issued,
        "model_version": 3,
        "points": [
            {"lead": k, "target_hour": issued + timedelta(hours=k), "value": -2.0 + 0.25 * k}
            for k in range(1, 25)
        ],
    }

    def skill(station: str, scale: float) -> dict[str, Any]:
        leads = [
            {
                "lead": k,
                "n": 40 - k,
                "mae": {
                    "model": scale * (0.8 + 0.05 * k),
                    "last_value": scale * (0.9 + 0.1 * k),
                    "same_hour_yesterday": scale * 2.5,
                    "climatology": scale * 3.1,
                },
                "skill": 1 - (0.8 + 0.05 * k) / 2.5,  # against same hour yesterday
            }
            for k in range(1, 25)
        ]
        return {
            "_id": station,
            "station_id": station,
            "updated_hour": issued,
            "model_version": 3,
            "leads": leads,
            "overall": {
                "n": 500,
                "mae": {
                    "model": scale,
                    "last_value": 1.4,
                    "same_hour_yesterday": 2.5,
                    "climatology": 3.1,
                },
                "skill": 0.21,
            },
        }

    return forecast, skill(EWR, 1.0), skill("ALL", 1.1)


@pytest.fixture(scope="module")
def site(
    kafka_bootstrap: str,
    mongo_uri: str,
    spark_jars: list[Path],
    sample_dataset: Path,
    repo_root: Path,
) -> Iterator[Site]:
    workdir = Path(tempfile.mkdtemp(prefix="moaa-dash-"))
    pipe = Pipeline(kafka_bootstrap, sample_dataset, workdir)
    pipe.spark_jars = ",".join(str(p) for p in spark_jars)
    pipe.mongo_uri = mongo_uri
    port, closed = free_ports(2)
    targets = {
        "feeder": f"http://127.0.0.1:{pipe.feeder_port}/metrics",
        "producer": f"http://127.0.0.1:{pipe.producer_port}/metrics",
        "stats": f"http://127.0.0.1:{pipe.spark_ui_port}/metrics/prometheus/",
        "insert": f"http://127.0.0.1:{pipe.insert_port}/metrics",
        "forecast": f"http://127.0.0.1:{closed}/metrics",  # not running: shown as down
    }
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_uri, tz_aware=True)
    db = client[pipe.database]
    artifacts = repo_root / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    try:
        pipe.start_producer()
        pipe.start_stats()
        pipe.start_insert()
        dashboard = pipe._start(
            "dashboard",
            ["dashboard"],
            pipe.env(
                MOAA_DASHBOARD_PORT=str(port),
                MOAA_DASHBOARD_SCRAPE_TARGETS=",".join(f"{k}={v}" for k, v in targets.items()),
                MOAA_DASHBOARD_SCRAPE_INTERVAL_S="0.5",
                MOAA_DASHBOARD_REFRESH_S="0.5",
            ),
        )
        url = f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            assert dashboard.poll() is None, pipe.log("dashboard")
            try:
                return httpx.get(url + "/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until("the dashboard's /healthz", healthy, 60)
        feeder = pipe.start_feeder("--tick", "0.25", "--hours", str(HOURS))
        # The feeder's replay position, as the pipeline API shows it while the replay runs.
        seen: list[str] = []
        while feeder.poll() is None:
            replay = httpx.get(url + "/api/pipeline", timeout=5).json()["replay_hour"]
            if replay and replay not in seen:
                seen.append(replay)
            time.sleep(0.5)
        assert feeder.returncode == 0, pipe.log("feeder")

        # Results arrive from several partitions in any order, and the summary query runs on
        # its own (slower) trigger: wait until the last hour's two stations and its summary
        # over both are stored, then until nothing changes for longer than one summary trigger.
        counts: list[tuple[int, int]] = []
        quiet_polls = int(2 * SUMMARY_TRIGGER_S / 0.5) + 2

        def settled() -> bool:
            counts.append(
                (db.hourly_stats.count_documents({}), db.hourly_summary.count_documents({}))
            )
            last = list(db.hourly_stats.find({"hour": LAST_HOUR}))
            summary = db.hourly_summary.find_one({"hour": LAST_HOUR})
            complete = (
                len(last) == 2
                and summary is not None
                and summary["count"] == sum(d["count"] for d in last)
            )
            recent = counts[-quiet_polls:]
            return complete and len(recent) == quiet_polls and len(set(recent)) == 1

        wait_until("the replayed stats to settle in FerretDB", settled, 180)
        forecast, skill_ewr, skill_all = _forecast_docs(LAST_HOUR)
        db.forecasts.insert_one(forecast)
        db.forecast_skill.insert_many([skill_ewr, skill_all])
        yield Site(url, pipe, db, seen, artifacts)
    finally:
        pipe.stop()
        client.close()
        shutil.rmtree(workdir, ignore_errors=True)


def _iso(value: datetime) -> str:
    return format_hour(value)


def _close(shown: str, expected: float | None, digits: int) -> bool:
    """A figure shown with ``digits`` decimals is the API's value, rounded."""
    if expected is None:
        return shown == "–"
    return abs(float(shown) - expected) <= 0.5 * 10**-digits + 1e-9


def test_api_serves_the_replayed_hours(site: Site) -> None:
    assert httpx.get(site.url + "/healthz").json() == {"status": "ok"}
    assert httpx.get(site.url + "/readyz").status_code == 200

    now = site.get("/api/now")
    assert now["hour"] == _iso(LAST_HOUR)
    summary = site.db.hourly_summary.find_one({"hour": LAST_HOUR})
    for key in ("min_c", "max_c", "mean_c", "count", "stations"):
        assert now["summary"][key] == summary[key], key
    stored = {d["station_id"]: d for d in site.db.hourly_stats.find({"hour": LAST_HOUR})}
    assert set(now["station_id"]) == {EWR, JFK}
    for k, sid in enumerate(now["station_id"]):  # columns, rounded to 0.01 °C
        for key in ("min_c", "max_c", "mean_c"):
            assert now[key][k] == pytest.approx(stored[sid][key], abs=0.005), key
        assert now["count"][k] == stored[sid]["count"]
    stations = site.get(f"/api/stations?v={now['stations_version']}")
    for k, sid in enumerate(stations["station_id"]):
        for key in ("latitude", "longitude", "name"):
            assert stations[key][k] == stored[sid][key], key
    assert stations["call_sign"][stations["station_id"].index(EWR)] == "KEWR"
    assert [h["station_id"] for h in site.get("/api/search?q=newark")] == [EWR]
    assert [h["station_id"] for h in site.get("/api/search?q=kjfk")] == [JFK]

    hours = site.get("/api/summary?hours=48")
    assert len(hours) == site.db.hourly_summary.count_documents({}) > 24  # gaps: hours w/o data
    assert [h["hour"] for h in hours] == sorted(h["hour"] for h in hours)

    ewr = site.get(f"/api/stations/{EWR}")
    assert ewr["name"].startswith("NEWARK")
    assert ewr["latest"]["hour"] == _iso(LAST_HOUR)
    stored_hours = list(site.db.hourly_stats.find({"station_id": EWR}).sort("hour", 1))
    assert [h["mean_c"] for h in ewr["hours"]] == [d["mean_c"] for d in stored_hours]
    assert ewr["forecast"]["model_version"] == 3
    assert ewr["forecast"]["issued_at"] == _iso(LAST_HOUR)
    assert [p["lead"] for p in ewr["forecast"]["points"]] == list(range(1, 25))
    assert ewr["skill"]["overall"]["skill"] == 0.21
    assert len(ewr["skill"]["leads"]) == 24

    jfk = site.get(f"/api/stations/{JFK}")
    assert jfk["forecast"] is None and jfk["skill"] is None
    assert httpx.get(site.url + "/api/stations/00000000000").status_code == 404
    assert site.get("/api/skill")["station_id"] == "ALL"

    spec = site.get("/openapi.json")
    for path in ("/api/now", "/api/summary", "/api/stations/{station_id}", "/api/pipeline"):
        assert path in spec["paths"], path
    assert httpx.get(site.url + "/docs").status_code == 200
    metrics = httpx.get(site.url + "/metrics").text
    assert 'weather_dashboard_requests_total{route="/api/now",status="200"}' in metrics
    assert 'weather_dashboard_scrape_up{target="producer"} 1.0' in metrics
    assert 'weather_build_info{component="dashboard"' in metrics


def test_pipeline_api_shows_every_stage(site: Site) -> None:
    # the replay position moved forward while the feeder ran
    assert len(site.replay_hours_seen) >= 2, site.replay_hours_seen
    assert site.replay_hours_seen == sorted(site.replay_hours_seen)

    def converged() -> dict[str, Any] | None:
        p = site.get("/api/pipeline")
        return p if p["lag"] and p["lag"]["total"] == 0 and p["lag"]["partitions"] else None

    pipeline = wait_until("the insert job's lag to reach 0", converged, 60)
    stages = {c["name"]: c for c in pipeline["components"]}
    assert stages["producer"]["up"] and stages["insert"]["up"] and stages["stats"]["up"]
    assert stages["producer"]["records_total"] > 50  # two stations, two days
    assert stages["insert"]["records_total"] > 0
    assert not stages["forecast"]["up"] and stages["forecast"]["error"]
    assert not stages["feeder"]["up"]  # it exits once the replay is done
    assert pipeline["dlq_records"] >= 0  # the sample's malformed rows, if any
    assert any(e["component"] == "forecast" and "down" in e["message"] for e in pipeline["errors"])
    topics = {p["topic"] for p in pipeline["lag"]["partitions"]}
    assert topics == {site.pipe.stats_topic, site.pipe.summary_topic}


def _hour_text(iso: str) -> str:
    return iso.replace("T", " ")[:16] + " UTC"


def test_browser_map_and_station_pages_show_the_api_numbers(site: Site, browser: Any) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "requestfailed",
        # the live-update stream is cut on purpose when the page is left, and a live refresh
        # still in flight when the test navigates away is aborted (net::ERR_ABORTED): neither
        # is a failure of the site
        lambda req: (
            "/api/events" in req.url
            or req.failure == "net::ERR_ABORTED"
            or errors.append(f"request failed: {req.url} ({req.failure})")
        ),
    )
    now = site.get("/api/now")

    page.goto(site.url + "/")
    page.wait_for_function("document.body.dataset.hour !== undefined")
    assert page.text_content("#hour") == _hour_text(now["hour"])
    summary = now["summary"]
    assert _close(page.text_content("#summary-min"), summary["min_c"], 1)
    assert _close(page.text_content("#summary-max"), summary["max_c"], 1)
    assert _close(page.text_content("#summary-mean"), summary["mean_c"], 2)
    assert page.text_content("#summary-stations") == str(summary["stations"])
    page.wait_for_function("document.body.dataset.worldHours !== undefined")
    chart = page.evaluate("() => Chart.getChart('world-chart').data.datasets.map(d => d.data)")
    hours = site.get("/api/summary?hours=48")
    assert chart[1] == [h["mean_c"] for h in hours] and chart[3] == [h["stations"] for h in hours]
    for k, sid in enumerate(now["station_id"]):
        assert page.evaluate(f"window.moaaMap.point({json.dumps(sid)})") is not None
        row = page.locator(f'#stations-table tr[data-station="{sid}"] td')
        assert _close(row.nth(3).text_content(), now["min_c"][k], 1)
        assert _close(row.nth(4).text_content(), now["mean_c"][k], 2)
        assert _close(row.nth(5).text_content(), now["max_c"][k], 1)
    page.screenshot(path=site.artifacts / "dashboard-map.png", full_page=True)

    # click the Newark station on the map: its page, with the forecast and the skill
    point = page.evaluate(f"window.moaaMap.point({json.dumps(EWR)})")
    box = page.locator("#map-canvas").bounding_box()
    page.mouse.click(box["x"] + point["x"], box["y"] + point["y"])
    page.wait_for_url(f"**/station/{EWR}")
    page.wait_for_function("document.body.dataset.loaded !== undefined")
    ewr = site.get(f"/api/stations/{EWR}")
    latest = ewr["latest"]
    assert page.text_content("#latest-hour") == _hour_text(latest["hour"])
    assert _close(page.text_content("#latest-min"), latest["min_c"], 1)
    assert _close(page.text_content("#latest-mean"), latest["mean_c"], 2)
    assert _close(page.text_content("#latest-max"), latest["max_c"], 1)
    assert page.text_content("#forecast-issued") == _hour_text(ewr["forecast"]["issued_at"])
    assert page.text_content("#forecast-model") == "3"
    chart = page.evaluate(
        "() => Chart.getChart('history-chart').data.datasets.map(d => d.data.filter(v => v !== null))"
    )
    assert chart[2] == [h["mean_c"] for h in ewr["hours"]]  # the means, in order
    assert chart[3] == [p["value"] for p in ewr["forecast"]["points"]]
    rows = page.locator("#skill-table tbody tr")
    assert rows.count() == 24
    lead1 = rows.nth(0).locator("td")
    assert _close(lead1.nth(2).text_content(), ewr["skill"]["leads"][0]["mae"]["model"], 2)
    assert _close(lead1.nth(6).text_content(), ewr["skill"]["leads"][0]["skill"], 2)
    page.screenshot(path=site.artifacts / "dashboard-station.png", full_page=True)

    # JFK has no forecast yet: said plainly, no error
    page.goto(f"{site.url}/station/{JFK}")
    page.wait_for_function("document.body.dataset.loaded !== undefined")
    assert "No forecast yet" in page.text_content("#forecast-info")
    assert page.is_visible("#skill-none") and not page.is_visible("#skill-box")
    page.screenshot(path=site.artifacts / "dashboard-station-no-forecast.png", full_page=True)

    page.goto(site.url + "/pipeline")
    page.wait_for_selector('#components tr[data-component="producer"]')
    assert "up" in page.text_content('#components tr[data-component="producer"]')
    assert "down" in page.text_content('#components tr[data-component="forecast"]')
    page.screenshot(path=site.artifacts / "dashboard-pipeline.png", full_page=True)
    assert errors == []
    page.close()


def test_browser_phone_screen_and_live_update(site: Site, browser: Any) -> None:
    phone = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
    phone.goto(site.url + "/")
    phone.wait_for_function("document.body.dataset.interactive !== undefined")
    # usable on a phone: nothing wider than the screen but the scrollable table
    overflow = phone.evaluate("document.documentElement.scrollWidth")
    assert overflow <= 390, overflow
    phone.screenshot(path=site.artifacts / "dashboard-map-phone.png", full_page=True)
    phone.goto(f"{site.url}/station/{EWR}")
    phone.wait_for_function("document.body.dataset.loaded !== undefined")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    phone.screenshot(path=site.artifacts / "dashboard-station-phone.png", full_page=True)

    # a new hour lands (as the insert job would write it): the open map updates by itself
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(site.url + "/")
    page.wait_for_function("document.body.dataset.interactive !== undefined")
    new_hour = LAST_HOUR + timedelta(hours=1)
    key = _iso(new_hour)
    site.db.hourly_stats.insert_one(
        {
            "_id": f"{EWR}|{key}",
            "station_id": EWR,
            "hour": new_hour,
            "min_c": 1.5,
            "max_c": 3.5,
            "mean_c": 2.25,
            "count": 2,
            "name": "NEWARK",
            "latitude": 40.683,
            "longitude": -74.169,
            "elevation_m": 2.1,
        }
    )
    site.db.hourly_summary.insert_one(
        {
            "_id": key,
            "hour": new_hour,
            "min_c": 1.5,
            "max_c": 3.5,
            "mean_c": 2.25,
            "count": 2,
            "stations": 1,
        }
    )
    page.wait_for_function(
        f"document.getElementById('hour').textContent === {json.dumps(_hour_text(key))}",
        timeout=15_000,
    )
    assert page.text_content("#summary-mean") == "2.25"
    assert page.text_content("#summary-stations") == "1"
    page.screenshot(path=site.artifacts / "dashboard-map-live.png", full_page=True)
    page.close()
    phone.close()
