"""One data contract: every other form of a record is derived from ``moaa.common.records``
or checked against it here.

- the JSON Schemas in ``docs/schemas/`` are what the records generate;
- the Spark schemas the jobs parse with are derived (the stats job's output is decoded as
  the records in ``apps/streaming/tests/test_stats_aggregation.py``);
- the forecast job's documents (built as dicts for speed) decode as the records;
- the website's API models name only fields of the records they show;
- the dataset's index columns and the forecast job's covariates are record fields.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel
from pyspark.sql import SparkSession
from pyspark.sql import types as T

from moaa.common import hours
from moaa.common.records import (
    COLLECTIONS,
    RECORDS,
    Forecast,
    ForecastPoint,
    ForecastSkill,
    HourlyStats,
    HourlySummary,
    LeadSkill,
    Observation,
    SkillOverall,
    datetime_fields,
    json_schemas,
)
from moaa.dashboard import models
from moaa.feeder.dataset import SCHEMA as DATASET_SCHEMA
from moaa.streaming import forecast_engine
from moaa.streaming.forecast import STATS_SCHEMA
from moaa.streaming.forecast_features import COVARIATES, LEADS, PREDICTORS, skill_documents
from moaa.streaming.insert import REQUIRED_FIELDS
from moaa.streaming.spark import spark_schema
from moaa.streaming.stats import OBSERVATION_SCHEMA

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = ROOT / "docs" / "schemas"


def _fields(record: type[msgspec.Struct]) -> set[str]:
    return set(record.__struct_fields__)


def test_the_published_json_schemas_are_current() -> None:
    expected = json_schemas()
    on_disk = {p.name for p in SCHEMAS.glob("*.json")}
    assert on_disk == set(expected), "regenerate: make docs"
    for name, schema in expected.items():
        assert json.loads((SCHEMAS / name).read_text()) == schema, f"{name} is stale: make docs"


def test_every_record_has_its_schema_id() -> None:
    for sid, record in RECORDS.items():
        default = getattr(record, "schema", None)
        if isinstance(default, str):
            assert default == sid


def test_the_spark_schemas_are_the_records() -> None:
    assert OBSERVATION_SCHEMA.fieldNames() == list(Observation.__struct_fields__)
    types = {f.name: f.dataType for f in OBSERVATION_SCHEMA.fields}
    assert types["ts"] == T.TimestampType()
    assert types["latitude"] == T.DoubleType()
    assert types["obs_id"] == T.StringType()
    assert set(STATS_SCHEMA.fieldNames()) <= _fields(HourlyStats)
    nested = spark_schema(Forecast)
    points = {f.name: f.dataType for f in nested.fields}["points"]
    assert isinstance(points, T.ArrayType)
    assert points.elementType.fieldNames() == list(ForecastPoint.__struct_fields__)
    with pytest.raises(KeyError, match="wind_speed_mps"):
        spark_schema(HourlyStats, ["station_id", "wind_speed_mps"])


def test_the_forecast_jobs_documents_are_the_records(spark: SparkSession) -> None:
    rng = np.random.default_rng(3)
    issues = spark.createDataFrame(
        [
            ("72502014734", 376_000, "NEWARK", rng.normal(size=LEADS).tolist()),
            ("74486094789", 376_001, None, rng.normal(size=LEADS).tolist()),
        ],
        "station_id string, issue_hour long, name string, values array<double>",
    )
    docs = forecast_engine._forecast_docs(issues, 4).collect()
    assert len(docs) == 2
    for row in docs:
        doc = msgspec.json.decode(row.value, type=Forecast, strict=True)
        assert row.key == hours.record_key(doc.station_id, doc.issued_at)
        assert [p.lead for p in doc.points] == list(range(1, LEADS + 1))
        assert [p.target_hour for p in doc.points] == [
            hours.parse_hour(hours.format_epoch_hour(hours.epoch_hour(doc.issued_at) + lead))
            for lead in range(1, LEADS + 1)
        ]
        assert doc.model_version == 4
    sums = rng.uniform(size=(2, len(PREDICTORS), LEADS))
    counts = rng.integers(0, 3, size=(2, LEADS)).astype(float)
    for doc in skill_documents(["72502014734", "ALL"], sums, counts, 376_000, 4):
        skill = msgspec.json.decode(forecast_engine._json(doc), type=ForecastSkill)
        assert [lead.lead for lead in skill.leads] == list(range(1, LEADS + 1))
        assert set(skill.overall.mae) == set(PREDICTORS)


@pytest.mark.parametrize(
    ("api", "record"),
    [
        (models.HourStats, HourlyStats),
        (models.Summary, HourlySummary),
        (models.ForecastPoint, ForecastPoint),
        (models.Forecast, Forecast),
        (models.LeadSkill, LeadSkill),
        (models.SkillOverall, SkillOverall),
        (models.Skill, ForecastSkill),
    ],
)
def test_the_api_models_name_record_fields(api: type[BaseModel], record: type) -> None:
    assert set(api.model_fields) <= _fields(record), set(api.model_fields) - _fields(record)


def test_the_other_restatements_are_record_fields() -> None:
    assert set(COVARIATES) <= _fields(HourlyStats)
    for collection, names in REQUIRED_FIELDS.items():
        assert set(names) <= _fields(COLLECTIONS[collection]), collection
    index = {"station_id", "obs_id", "temperature_c"}
    assert index <= set(DATASET_SCHEMA.names) and index <= _fields(Observation)
    assert datetime_fields(Forecast) == {"issued_at", "points.target_hour"}


@given(st.datetimes(min_value=datetime(1901, 1, 1), max_value=datetime(2099, 1, 1)))  # noqa: DTZ001 - naive bounds, as hypothesis wants
def test_an_hour_survives_format_and_parse(value: datetime) -> None:
    value = value.replace(minute=0, second=0, microsecond=0, tzinfo=UTC)
    text = hours.format_hour(value)
    assert hours.parse_hour(text) == value
    assert hours.format_epoch_hour(hours.epoch_hour(text)) == text
    # msgspec (the records' encoder) writes the same string
    assert msgspec.json.encode(value).decode() == f'"{text}"'


def test_naive_hours_are_refused() -> None:
    with pytest.raises(ValueError, match="UTC"):
        hours.format_hour(datetime(2013, 1, 1))  # noqa: DTZ001 - the point of the test
    with pytest.raises(ValueError, match="zone"):
        hours.parse_hour("2013-01-01T00:00:00")
