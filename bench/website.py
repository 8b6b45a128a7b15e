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
* a station page: navigation start → its figures and history shown (``station_shown_ms``),
  and → its forecast and skill shown too (``station_ms``, the page complete; the target).

With ``--chain`` the stations instead go through the real chain: ``moaa synth`` writes
``--stations`` synthetic stations, ``moaa prepare`` and ``moaa feeder --tick 0 --hours
--hours`` replay them through producer, Kafka, the stats job and the insert job into FerretDB
(``bench/chain.py``), and the same figures are measured once the last hour is on the site.

Targets (issue #14): ``/api/now`` p95 ≤ 300 ms and ≤ 400 kB compressed; map interactive ≤ 2 s;
a station page ≤ 1 s. Prints one JSON object and exits 1 if a target is missed.

    make bench-website      # or: .venv/bin/python bench/website.py --stations 13836 --hours 12
    .venv/bin/python bench/website.py --chain   # the same, the stations through the real chain
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
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import httpx
from chain import MOAA, ephemeral_settings, running_chain  # bench/chain.py (run from bench/)
from confluent_kafka import Consumer
from pymongo import MongoClient
from throughput import _drained  # bench/throughput.py: the chain's end, read cheaply

from moaa.common.hours import format_hour
from moaa.common.kafka import TOPIC_HOURLY_STATS, kafka_lag
from moaa.dashboard.testing import ScaleFixture
from moaa.dataprep.prepare import prepare
from moaa.dataprep.synth import synthesize
from moaa.localstack.services import LocalStack
from moaa.streaming.insert import Inserter
from moaa.streaming.stats import checkpoint_location

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

    out: dict[str, list[float]] = {
        "map_interactive_ms": [],
        "station_shown_ms": [],
        "station_ms": [],
    }
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
            out["station_shown_ms"].append(float(page.evaluate("document.body.dataset.shownMs")))
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


def _start_dashboard(work: Path, env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    log = (work / "dashboard.log").open("wb")
    env = {**env, "MOAA_LOG_FORMAT": "json", "MOAA_DASHBOARD_PORT": str(port)}
    return subprocess.Popen([MOAA, "dashboard"], env=env, stdout=log, stderr=subprocess.STDOUT)


def _wait(
    work: Path, dashboard: subprocess.Popen[bytes], http: httpx.Client, path: str, ok
) -> None:
    """Poll ``path`` until ``ok(response)``; exit with the dashboard's log if it died."""
    while True:
        if dashboard.poll() is not None:
            sys.exit(f"moaa dashboard exited:\n{(work / 'dashboard.log').read_text()[-3000:]}")
        try:
            if ok(http.get(path)):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)


@contextmanager
def _fixture_site(
    work: Path, args: argparse.Namespace, result: dict
) -> Iterator[tuple[str, list[str], int]]:
    """FerretDB alone, the fixture written straight into it, the dashboard reading it."""
    settings, ports = ephemeral_settings(work)
    stack = LocalStack(settings)
    stack.up(["ferretdb"])
    dashboard = None
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
            "MOAA_MONGO_URI": settings.mongo_uri,
            "MOAA_MONGO_DATABASE": "moaa_bench_website",
            "MOAA_DASHBOARD_SCRAPE_TARGETS": "",
            "MOAA_KAFKA_BOOTSTRAP": f"127.0.0.1:{ports[0]}",  # nothing there: pipeline page only
        }
        started = time.perf_counter()
        dashboard = _start_dashboard(work, env, ports[8])
        url = f"http://127.0.0.1:{ports[8]}"
        with httpx.Client(base_url=url, timeout=60) as http:
            _wait(work, dashboard, http, "/readyz", lambda r: r.status_code == 200)
        result["view_loaded_s"] = round(time.perf_counter() - started, 1)
        yield url, fixture.ids, dashboard.pid
    finally:
        if dashboard is not None:
            dashboard.terminate()
            dashboard.wait(20)
        stack.down()


@contextmanager
def _chain_site(
    work: Path, args: argparse.Namespace, result: dict
) -> Iterator[tuple[str, list[str], int]]:
    """The real chain: synthetic stations replayed at tick 0 through producer, Kafka, the
    stats job and the insert job into FerretDB, the dashboard reading it while it lands."""
    raw, dataset = work / "synth", work / "dataset"
    started = time.perf_counter()
    synthesize(
        args.stations, 2020, raw, seed=7, malformed_rate=0.0, days=max(1, -(-args.hours // 24))
    )
    prepare(raw, dataset, 2020, workers=os.cpu_count() or 1)
    result["synth_prepare_s"] = round(time.perf_counter() - started, 1)
    with running_chain(work, dataset) as chain:
        port = chain.settings.dashboard_port
        dashboard = _start_dashboard(work, {**chain.env, "MOAA_DASHBOARD_SCRAPE_TARGETS": ""}, port)
        url = f"http://127.0.0.1:{port}"
        try:
            started = time.perf_counter()
            feeder = subprocess.run(
                [MOAA, "feeder", "--tick", "0", "--start", "2020-01-01T00:00:00", "--hours", str(args.hours)],
                env=chain.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
            )  # fmt: skip
            del feeder
            # drained: the stats job read every record, the insert job wrote all it made
            client = {"bootstrap.servers": chain.settings.kafka_bootstrap}
            kafka = Consumer({**client, "group.id": "moaa-bench"})  # end offsets only
            lag = kafka_lag(client, "moaa-insert", [TOPIC_HOURLY_STATS], timeout_s=10)
            checkpoint = checkpoint_location(Path(chain.env["MOAA_CHECKPOINT_DIR"]), "hourly_stats")
            while not _drained(kafka, checkpoint, lag):
                time.sleep(1)
            kafka.close()
            time.sleep(12)  # the summary query runs on its own 5 s trigger
            mongo: MongoClient[dict[str, object]] = MongoClient(
                chain.settings.mongo_uri, tz_aware=True
            )
            last = mongo["moaa"]["hourly_summary"].find_one(sort=[("hour", -1)])
            mongo.close()
            assert last is not None
            shown = format_hour(last["hour"])

            def settled(resp: httpx.Response) -> bool:  # the site shows the stored last hour
                now = resp.json()
                return now["hour"] == shown and (now["summary"] or {}).get("count") == last["count"]

            with httpx.Client(base_url=url, timeout=60) as http:
                _wait(work, dashboard, http, "/api/now", settled)
                ids = http.get("/api/stations").json()["station_id"]
                seen = [len(http.get("/api/now").json()["station_id"])]
            result["replayed_and_shown_s"] = round(time.perf_counter() - started, 1)
            result["stations_listed"] = len(ids)
            result["stations_this_hour"] = seen[-1]
            yield url, ids, dashboard.pid
        finally:
            dashboard.terminate()
            dashboard.wait(20)


def _measure(url: str, ids: list[str], pid: int, args: argparse.Namespace) -> dict[str, object]:
    out: dict[str, object] = {}
    with httpx.Client(base_url=url, timeout=60) as http:
        health, _ = _timed(http, "/healthz", args.requests)
        now, resp = _timed(http, "/api/now", args.requests)
        assert resp.headers.get("content-encoding") == "gzip", resp.headers
        out |= {
            "healthz_p50_ms": _pct(health, 50),
            "now_p50_ms": _pct(now, 50),
            "now_p95_ms": _pct(now, 95),
            "now_over_healthz_p50": round(_pct(now, 50) / max(_pct(health, 50), 0.01), 1),
            "now_stations": len(resp.json()["station_id"]),
            "now_gzip_kb": round(int(resp.headers["content-length"]) / 1000, 1),
            "now_json_kb": round(len(resp.content) / 1000, 1),
        }
        stations = http.get("/api/stations").headers
        out["stations_gzip_kb"] = round(int(stations.get("content-length", 0)) / 1000, 1)
        # the station page's two API answers alone: figures (memory), forecast and skill
        some = ids[:: max(1, len(ids) // 20)]
        figures = [_timed(http, f"/api/stations/{sid}?forecast=false", 1)[0][0] for sid in some]
        forecasts = [_timed(http, f"/api/stations/{sid}/forecast", 1)[0][0] for sid in some]
        out["station_figures_api_p50_ms"] = _pct(figures, 50)
        out["station_forecast_api_p50_ms"] = _pct(forecasts, 50)
    times = _browser(url, ids[:: max(1, len(ids) // 7)], args.browser_runs)
    for key, values in times.items():
        out[key] = round(statistics.median(values), 1)
        out[key.replace("_ms", "_max_ms")] = round(max(values), 1)
    return out | _memory(pid)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stations", type=int, default=13_836)
    parser.add_argument("--hours", type=int, default=12, help="hours of documents per station")
    parser.add_argument("--requests", type=int, default=60, help="/api/now requests measured")
    parser.add_argument("--browser-runs", type=int, default=5)
    parser.add_argument(
        "--chain",
        action="store_true",
        help="replay synthetic stations through the real chain instead of writing the store",
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="moaa-web-"))
    result: dict[str, object] = {
        "stations": args.stations,
        "hours": args.hours,
        "chain": args.chain,
    }
    site = _chain_site if args.chain else _fixture_site
    try:
        with site(work, args, result) as (url, ids, pid):
            result |= _measure(url, ids, pid, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["cpus"] = os.cpu_count()
    misses = [k for k, limit in TARGETS.items() if float(result[k]) > limit]  # type: ignore[arg-type]
    result["targets_missed"] = misses
    print(json.dumps(result, indent=1))
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main())
