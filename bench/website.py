"""The MOAA website at every station: ``/api/now`` latency and size, map and station pages in
Chromium, with 13,836 stations written straight into FerretDB.

Starts FerretDB alone (free loopback port), creates the insert job's indexes with the insert
job's own code, writes ``--stations`` × ``--hours`` hourly documents plus each station's latest
forecast and skill (``moaa.dashboard.testing.ScaleFixture``), runs ``moaa dashboard`` as a
process and measures, once its live view is loaded:

* ``/api/now``: p50 / p95 over ``--requests`` requests (gzip, as a browser asks), beside
  ``/healthz`` in the same run (the reference: a request that does no work), and its bytes;
* the map page in Chromium: navigation start → stations painted and the table filled
  (``body[data-interactive]``), each run in a fresh browser context (cold cache);
* a station page: navigation start → its figures, chart and skill shown.

Targets (issue #14): ``/api/now`` p95 ≤ 300 ms and ≤ 400 kB compressed; map interactive ≤ 2 s;
a station page ≤ 1 s. Prints one JSON object and exits 1 if a target is missed.

    make bench-website      # or: .venv/bin/python bench/website.py --stations 13836 --hours 12
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import httpx
from chain import MOAA, ephemeral_settings  # bench/chain.py (scripts run from bench/)
from pymongo import MongoClient

from moaa.dashboard.testing import ScaleFixture
from moaa.localstack.services import LocalStack
from moaa.streaming.insert import Inserter

CHROMIUM = "/usr/bin/chromium"
LAST_HOUR = datetime(2013, 1, 3, 11, tzinfo=UTC)
TARGETS = {"now_p95_ms": 300, "now_gzip_kb": 400, "map_interactive_ms": 2000, "station_ms": 1000}


def _timed(client: httpx.Client, path: str, runs: int) -> tuple[list[float], httpx.Response]:
    times, resp = [], None
    for _ in range(runs):
        started = time.perf_counter()
        resp = client.get(path)
        resp.raise_for_status()
        times.append((time.perf_counter() - started) * 1000)
    assert resp is not None
    return times, resp


def _pct(values: list[float], q: float) -> float:
    return round(statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1], 1)


def _browser(url: str, station_ids: list[str], runs: int) -> dict[str, list[float]]:
    from playwright.sync_api import sync_playwright  # noqa: PLC0415

    out: dict[str, list[float]] = {"map_interactive_ms": [], "station_ms": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        for k in range(runs):
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.goto(url + "/")
            page.wait_for_function(
                "document.body.dataset.interactive !== undefined", timeout=60_000
            )
            out["map_interactive_ms"].append(
                float(page.evaluate("document.body.dataset.interactive"))
            )
            page.goto(f"{url}/station/{station_ids[k % len(station_ids)]}")
            page.wait_for_function("document.body.dataset.loaded !== undefined", timeout=60_000)
            out["station_ms"].append(float(page.evaluate("document.body.dataset.loadedMs")))
            context.close()
        browser.close()
    return out


def _memory(pid: int) -> dict[str, float]:
    """The dashboard's resident memory now and at its peak (MB), from /proc."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    mb = {k: int(fields[k].split()[0]) / 1024 for k in ("VmRSS", "VmHWM")}
    return {
        "dashboard_rss_mb": round(mb["VmRSS"], 1),
        "dashboard_peak_rss_mb": round(mb["VmHWM"], 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stations", type=int, default=13_836)
    parser.add_argument("--hours", type=int, default=12, help="hours of documents per station")
    parser.add_argument("--requests", type=int, default=60, help="/api/now requests measured")
    parser.add_argument("--browser-runs", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="moaa-web-"))
    settings, ports = ephemeral_settings(work)
    stack = LocalStack(settings)
    stack.up(["ferretdb"])
    dashboard = None
    result: dict[str, object] = {"stations": args.stations, "hours": args.hours}
    try:
        client: MongoClient[dict[str, object]] = MongoClient(settings.mongo_uri, tz_aware=True)
        db = client["moaa_bench_website"]
        Inserter.ensure_indexes(SimpleNamespace(db=db))  # type: ignore[arg-type]
        fixture = ScaleFixture(args.stations, args.hours, LAST_HOUR)
        started = time.perf_counter()
        result["documents"] = fixture.write(db)
        result["write_s"] = round(time.perf_counter() - started, 1)
        client.close()

        env = {
            **os.environ,
            "MOAA_LOG_FORMAT": "json",
            "MOAA_MONGO_URI": settings.mongo_uri,
            "MOAA_MONGO_DATABASE": "moaa_bench_website",
            "MOAA_DASHBOARD_PORT": str(ports[8]),
            "MOAA_DASHBOARD_SCRAPE_TARGETS": "",
            "MOAA_KAFKA_BOOTSTRAP": f"127.0.0.1:{ports[0]}",  # nothing there: pipeline page only
        }
        log = (work / "dashboard.log").open("wb")
        started = time.perf_counter()
        dashboard = subprocess.Popen(
            [MOAA, "dashboard"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        url = f"http://127.0.0.1:{ports[8]}"
        with httpx.Client(base_url=url, timeout=60) as http:
            while True:
                if dashboard.poll() is not None:
                    sys.exit(
                        f"moaa dashboard exited:\n{(work / 'dashboard.log').read_text()[-3000:]}"
                    )
                try:
                    if http.get("/readyz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
            result["view_loaded_s"] = round(time.perf_counter() - started, 1)
            health, _ = _timed(http, "/healthz", args.requests)
            now, resp = _timed(http, "/api/now", args.requests)
            body = resp.json()
            assert len(body["station_id"]) == args.stations, len(body["station_id"])
            assert resp.headers.get("content-encoding") == "gzip", resp.headers
            compressed = int(resp.headers["content-length"])
            result |= {
                "healthz_p50_ms": _pct(health, 50),
                "now_p50_ms": _pct(now, 50),
                "now_p95_ms": _pct(now, 95),
                "now_over_healthz_p50": round(_pct(now, 50) / max(_pct(health, 50), 0.01), 1),
                "now_gzip_kb": round(compressed / 1000, 1),
                "now_json_kb": round(len(resp.content) / 1000, 1),
            }
            stations = http.get("/api/stations").headers
            result["stations_gzip_kb"] = round(int(stations.get("content-length", 0)) / 1000, 1)
        times = _browser(url, fixture.ids[:: max(1, args.stations // 7)], args.browser_runs)
        for key, values in times.items():
            result[key] = round(statistics.median(values), 1)
            result[key.replace("_ms", "_max_ms")] = round(max(values), 1)
        result |= _memory(dashboard.pid)
    finally:
        if dashboard is not None:
            dashboard.terminate()
            dashboard.wait(20)
        stack.down()
        shutil.rmtree(work, ignore_errors=True)
    result["cpus"] = os.cpu_count()
    misses = [k for k, limit in TARGETS.items() if float(result[k]) > limit]  # type: ignore[arg-type]
    result["targets_missed"] = misses
    print(json.dumps(result, indent=1))
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main())
