"""Every metric the chart's Grafana dashboards and alert rules name is really exposed.

The names come from the chart itself (charts/tools/chart_metrics.py reads the dashboards and
the PrometheusRule); the exposed names come from scraping the local stack's running
components (producer, feeder, stats job, insert job, dashboard; the forecast job when
`moaa forecast` exists) after a short replay of the bundled sample — not from a list typed by
hand. Third-party exporters (Kafka JMX/exporter, MongoDB) cannot run here: their names are
restricted to explicit prefixes by tests/chart/test_metric_names.py.
"""

from __future__ import annotations

import re
import runpy
import time
from importlib.metadata import entry_points
from pathlib import Path

import httpx
import pytest
from pymongo import MongoClient

from moaa.localstack.testing import free_ports

from .conftest import Pipeline

pytestmark = pytest.mark.integration

tools = runpy.run_path(
    str(Path(__file__).resolve().parents[2] / "charts" / "tools" / "chart_metrics.py")
)
HOURS = 48
#: Which component exposes a name (by prefix); anything else under weather_ may come from any.
OWNERS = (
    ("metrics_moaa_stats_", "stats"),
    ("metrics_moaa_forecast_", "forecast"),
    ("weather_forecast", "forecast"),
    ("weather_dashboard_", "dashboard"),
)
_NAME = re.compile(r"^(?:# (?:TYPE|HELP) )?([a-zA-Z_:][a-zA-Z0-9_:]*)")


def _commands() -> set[str]:
    return {ep.name for ep in entry_points(group="moaa.cli")}


def _names(text: str) -> set[str]:
    """Series names and declared family names (a labelled metric with no child yet shows only
    its HELP/TYPE lines: it is exposed, it just has not counted anything)."""
    out = set()
    for line in text.splitlines():
        declared = not line.startswith("#") or line.startswith(("# TYPE", "# HELP"))
        if line and declared and (m := _NAME.match(line)):
            out.add(m.group(1))
    return out


def _owner(name: str) -> str | None:
    return next((owner for prefix, owner in OWNERS if name.startswith(prefix)), None)


def _scrape(url: str) -> set[str]:
    try:
        resp = httpx.get(url, timeout=5)
    except httpx.HTTPError:
        return set()
    return _names(resp.text) if resp.status_code == 200 else set()


@pytest.fixture(scope="module")
def exposed(
    kafka_bootstrap: str, mongo_uri: str, spark_jars: list[Path], sample_dataset: Path
) -> dict[str, set[str]]:
    """Names exposed by each running component after a 48-hour replay of the sample."""
    import shutil
    import tempfile

    workdir = Path(tempfile.mkdtemp(prefix="moaa-cm-"))
    pipe = Pipeline(kafka_bootstrap, sample_dataset, workdir)
    pipe.spark_jars = ",".join(str(p) for p in spark_jars)
    pipe.mongo_uri = mongo_uri
    targets = {
        "feeder": f"http://127.0.0.1:{pipe.feeder_port}/metrics",
        "producer": f"http://127.0.0.1:{pipe.producer_port}/metrics",
        "stats": f"http://127.0.0.1:{pipe.spark_ui_port}/metrics/prometheus/",
        "insert": f"http://127.0.0.1:{pipe.insert_port}/metrics",
    }
    try:
        pipe.start_producer()
        pipe.start_stats()
        pipe.start_insert()
        if "dashboard" in _commands():
            (port,) = free_ports(1)
            env = pipe.env(
                MOAA_DASHBOARD_PORT=str(port),
                MOAA_DASHBOARD_SCRAPE_TARGETS=",".join(f"{k}={v}" for k, v in targets.items()),
            )
            pipe._start("dashboard", ["dashboard"], env)
            targets["dashboard"] = f"http://127.0.0.1:{port}/metrics"
        if "forecast" in _commands():
            ui, ops = free_ports(2)
            env = pipe.env(
                MOAA_SPARK_UI_PORT=str(ui),
                MOAA_FORECAST_METRICS_PORT=str(ops),
                MOAA_CHECKPOINT_DIR=str(workdir / "forecast-checkpoints"),
                MOAA_TOPIC_FORECASTS=pipe.topic + ".forecasts",
                MOAA_TOPIC_FORECAST_SKILL=pipe.topic + ".skill",
            )
            pipe._start("forecast", ["forecast"], env)
            targets["forecast"] = f"http://127.0.0.1:{ops}/metrics"
            targets["forecast-driver"] = f"http://127.0.0.1:{ui}/metrics/prometheus/"
        # A short tick keeps the feeder (which exits after its last hour) alive for ~10 s, and
        # names are collected from every scrape: a component seen once has exposed them.
        pipe.start_feeder("--tick", "0.2", "--hours", str(HOURS))
        found: dict[str, set[str]] = {name: set() for name in targets}

        def scrape() -> None:
            for name, url in targets.items():
                found[name] |= _scrape(url)

        # Wait until results reach MongoDB (every stage has done real work), then until every
        # name the chart uses that a running component owns is exposed (or time runs out).
        db = MongoClient(mongo_uri)[pipe.database]
        deadline = time.monotonic() + 240
        while db.hourly_stats.count_documents({}) == 0:
            assert time.monotonic() < deadline, pipe.log("stats")[-3000:]
            scrape()
            time.sleep(0.5)
        wanted = {
            n
            for n in tools["our_names"]()
            if (_owner(n) or "any") != "forecast" or "forecast" in targets
        }
        while True:
            scrape()
            union = set().union(*found.values())
            if all(tools["exposed"](n, union) for n in wanted) or time.monotonic() > deadline:
                break
            time.sleep(2)
        found["forecast"] = found.get("forecast", set()) | found.pop("forecast-driver", set())
        return found
    finally:
        pipe.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def _check(names: set[str], exposed: dict[str, set[str]]) -> list[str]:
    missing = []
    for name in sorted(names):
        owner = _owner(name)
        pool = exposed.get(owner, set()) if owner else set().union(*exposed.values())
        if not tools["exposed"](name, pool):
            missing.append(f"{name} (expected from {owner or 'any component'})")
    return missing


def test_pipeline_metrics_in_dashboards_and_rules_are_exposed(exposed: dict[str, set[str]]) -> None:
    names = {n for n in tools["our_names"]() if _owner(n) != "forecast"}
    assert names, "no metric names found in the chart"
    missing = _check(names, exposed)
    assert not missing, "named in the chart but not exposed:\n" + "\n".join(missing)


def test_forecast_metrics_in_dashboards_and_rules_are_exposed(exposed: dict[str, set[str]]) -> None:
    if "forecast" not in _commands():
        pytest.skip("`moaa forecast` is not installed yet: forecast metrics not checked")
    names = {n for n in tools["our_names"]() if _owner(n) == "forecast"}
    missing = _check(names, exposed)
    assert not missing, "named in the chart but not exposed:\n" + "\n".join(missing)
