"""Pure pieces of the website: settings, Prometheus parsing, stage figures, errors, map rows."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from moaa.dashboard.app import create_app
from moaa.dashboard.scrape import (
    PipelineWatch,
    error_series,
    parse_prometheus,
    records_total,
    spark_records_per_s,
)
from moaa.dashboard.settings import DashboardSettings, parse_targets

PRODUCER = """# HELP weather_producer_records_total Records
# TYPE weather_producer_records_total counter
weather_producer_records_total{result="delivered",topic="weather.observations"} 100.0
weather_producer_records_total{result="failed",topic="weather.observations"} 0.0
weather_producer_dlq_records_total{reason="bad_temperature"} 2.0
weather_producer_frames_total{result="batch"} 10.0
"""


def test_targets_are_name_equals_url() -> None:
    assert parse_targets(" a=http://x/metrics ,b=http://y:1/m,") == {
        "a": "http://x/metrics",
        "b": "http://y:1/m",
    }
    with pytest.raises(ValueError, match="name=url"):
        parse_targets("just-a-url")
    assert set(DashboardSettings().targets()) == {
        "feeder",
        "producer",
        "stats",
        "insert",
        "forecast",
    }


def test_read_only_uri_wins_over_the_shared_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOAA_MONGO_URI", "mongodb://rw@h/")
    assert DashboardSettings().read_mongo_uri() == "mongodb://rw@h/"
    monkeypatch.setenv("MOAA_DASHBOARD_MONGO_URI", "mongodb://ro@h/")
    assert DashboardSettings().read_mongo_uri() == "mongodb://ro@h/"


def test_parse_prometheus_and_stage_figures() -> None:
    samples = parse_prometheus(PRODUCER + 'garbage line\nweather_x{a="b"} NaNx\n')
    assert records_total("producer", samples) == 100.0
    assert records_total("feeder", samples) is None
    errors = error_series(samples)
    assert set(errors) == {
        (
            "weather_producer_records_total",
            (("result", "failed"), ("topic", "weather.observations")),
        ),
        ("weather_producer_dlq_records_total", (("reason", "bad_temperature"),)),
    }
    spark = parse_prometheus(
        'metrics_moaa_stats_driver_spark_streaming_hourly_stats_inputRate_total_Value{type="gauges"} 40.5\n'
        'metrics_moaa_stats_driver_spark_streaming_hourly_summary_inputRate_total_Value{type="gauges"} 12\n'
    )
    assert spark_records_per_s(spark) == 40.5
    assert records_total("forecast", parse_prometheus("weather_forecast_records_total 7\n")) == 7


def test_watch_rates_errors_and_down_targets() -> None:
    watch = PipelineWatch({"producer": "http://p", "feeder": "http://f"}, 1.0)
    watch.update("producer", PRODUCER, None, 1000.0)
    watch.update("feeder", None, "ConnectError: refused", 1000.0)
    more = PRODUCER.replace("} 100.0", "} 150.0").replace(
        'bad_temperature"} 2.0', 'bad_temperature"} 5.0'
    )
    watch.update("producer", more, None, 1010.0)
    watch.update(
        "feeder", "weather_feeder_replay_hour_timestamp_seconds 1357084800\n", None, 1010.0
    )
    snap = watch.snapshot()
    stages = {c["name"]: c for c in snap["components"]}
    assert stages["producer"]["records_per_s"] == 5.0 and stages["producer"]["up"]
    assert stages["feeder"]["up"] and stages["feeder"]["records_per_s"] is None
    assert snap["dlq_records"] == 5.0
    assert snap["replay_hour"] == datetime(2013, 1, 2, tzinfo=UTC)
    messages = [e["message"] for e in snap["errors"]]
    assert messages[0].startswith('weather_producer_dlq_records_total{reason="bad_temperature"} +3')
    assert any(m.startswith("down: ConnectError") for m in messages)
    assert sum("+2" in m for m in messages) == 1  # reported once, on the first scrape
    watch.update("producer", None, "ReadTimeout", 1020.0)
    assert watch.snapshot()["dlq_records"] is None


def test_app_without_mongo_is_alive_but_not_ready() -> None:
    settings = DashboardSettings(mongo_uri="mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=200")
    with TestClient(create_app(settings, watch=False)) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 503
        assert client.get("/api/now").json()["hour"] is None  # answered from memory
        assert client.get("/api/stations/x").status_code == 503
        assert client.get("/api/pipeline").json()["components"][0]["up"] is False
        assert "/api/now" in client.get("/openapi.json").json()["paths"]
        assert client.get("/").status_code == 200
        assert client.get("/static/app.css").status_code == 200
        docs = client.get("/docs").text  # Swagger UI served locally, no CDN
        assert "/static/vendor/swagger-ui-bundle.js" in docs and "cdn" not in docs
        assert "weather_dashboard_mongo_errors_total" in client.get("/metrics").text
