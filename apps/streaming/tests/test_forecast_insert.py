"""The insert job's documents for forecasts and skill: dates become dates, the rest is kept."""

from __future__ import annotations

from datetime import UTC, datetime

from moaa.streaming.insert import InsertSettings, fields_for, upsert_all


class _Inserted:
    """Records what ``upsert_all`` inserts (every key is new here)."""

    def __init__(self) -> None:
        self.docs: list[dict] = []

    def insert_many(self, docs: list[dict], ordered: bool) -> None:
        self.docs.extend(docs)


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
    collection = _Inserted()
    key = "72502014734|2013-03-01T12:00:00Z"
    upsert_all(collection, {key: fields_for("forecasts", value)}, bulk_ops=90)
    [fields] = collection.docs
    assert fields["_id"] == "72502014734|2013-03-01T12:00:00Z"
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
    fields = fields_for("forecast_skill", value)
    assert fields["updated_hour"] == datetime(2013, 3, 2, tzinfo=UTC)


def test_the_insert_job_consumes_the_forecast_topics() -> None:
    settings = InsertSettings()
    assert settings.topic_forecasts == "weather.forecasts"
    assert settings.topic_forecast_skill == "weather.forecast-skill"
