"""The insert job's documents for forecasts and skill: dates become dates, the rest is kept."""

from __future__ import annotations

from datetime import UTC, datetime

from moaa.streaming.insert import InsertSettings, documents_for


def test_forecast_document_dates() -> None:
    value = {
        "schema": "forecast.v1",
        "station_id": "72502014734",
        "issued_at": "2013-03-01T12:00:00Z",
        "model_version": 3,
        "points": [
            {"lead": lead, "target_hour": f"2013-03-01T{12 + lead:02d}:00:00Z", "value": 1.5}
            for lead in range(1, 3)
        ],
    }
    op = documents_for("forecasts", "72502014734|2013-03-01T12:00:00Z", value)
    assert op._filter == {"_id": "72502014734|2013-03-01T12:00:00Z"}
    fields = op._doc["$set"]
    assert fields["issued_at"] == datetime(2013, 3, 1, 12, tzinfo=UTC)
    assert fields["points"][1] == {
        "lead": 2,
        "target_hour": datetime(2013, 3, 1, 14, tzinfo=UTC),
        "value": 1.5,
    }
    assert fields["model_version"] == 3 and fields["station_id"] == "72502014734"


def test_skill_document_dates() -> None:
    value = {
        "schema": "forecast-skill.v1",
        "station_id": "ALL",
        "updated_hour": "2013-03-02T00:00:00Z",
    }
    fields = documents_for("forecast_skill", "ALL", value)._doc["$set"]
    assert fields["updated_hour"] == datetime(2013, 3, 2, tzinfo=UTC)


def test_the_insert_job_consumes_the_forecast_topics() -> None:
    settings = InsertSettings()
    assert settings.topic_forecasts == "weather.forecasts"
    assert settings.topic_forecast_skill == "weather.forecast-skill"
