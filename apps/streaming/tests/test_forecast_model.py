"""The Spark ML model, its store and the engine's walk, on a local SparkSession and small
hand-made series (no Kafka). ``spark`` is the test session's shared SparkSession."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from pyspark.sql import SparkSession

from moaa.streaming.forecast import read_history
from moaa.streaming.forecast_engine import EngineConfig, ForecastEngine
from moaa.streaming.forecast_features import COVARIATES, FEATURES, LEADS, hour_index, lead_basis
from moaa.streaming.forecast_model import ModelStore, build_pipeline, predict, rows_frame, train

START = hour_index("2013-01-01T00:00:00Z")


def _series(days: int, seed: int = 1, offset: float = 0.0) -> dict[int, float]:
    """A diurnal cycle plus slow AR(1) weather: something a model can learn a little of."""
    rng = np.random.default_rng(seed)
    weather = 0.0
    values = {}
    for h in range(START, START + days * 24):
        weather = 0.97 * weather + rng.normal(0, 0.4)
        values[h] = offset + 5 + 4 * math.sin(2 * math.pi * ((h % 24) - 9) / 24) + weather
    return values


def _covariates(values: dict[int, float], seed: int = 1) -> dict[int, dict[str, float | None]]:
    """Dew point, pressure and wind for each hour of ``values`` (pressure missing at times)."""
    rng = np.random.default_rng(seed + 100)
    out: dict[int, dict[str, float | None]] = {}
    for h, t in values.items():
        dew, slp, wind = t - abs(rng.normal(5, 2)), 1013 + rng.normal(0, 6), abs(rng.normal(4, 2))
        out[h] = dict(zip(COVARIATES, (dew, None if h % 7 == 0 else slp, wind), strict=True))
    return out


def _frame(spark: SparkSession, n: int = 60, with_labels: bool = True):
    rng = np.random.default_rng(0)
    features = rng.normal(0, 1, (n, LEADS, len(FEATURES)))
    features[:, :, FEATURES.index("one")] = 1.0
    labels = 0.8 * features[:, :, FEATURES.index("syd_delta")] + 0.3
    return rows_frame(
        spark,
        ["S"] * n,
        list(range(START, START + n)),
        [10.0] * n,
        features,
        labels if with_labels else None,
    ), features


def test_the_sql_lead_basis_matches_the_python_one(spark: SparkSession) -> None:
    frame, _ = _frame(spark, n=1)
    crossed = build_pipeline().getStages()[0].transform(frame).orderBy("lead").collect()
    for row in crossed:
        weights = [row[f"x_{k}_one"] for k in range(6)]
        assert weights == pytest.approx(lead_basis(row["lead"]))


def test_training_recovers_a_known_relation(spark: SparkSession) -> None:
    frame, features = _frame(spark)
    model, errors = train(frame, reg_param=0.0)
    assert errors["rows"] == 60 * LEADS
    assert errors["train_mae_c"] < 1e-6
    predicted = predict(model, frame)
    assert len(predicted) == 60 * LEADS
    for station, issue, lead, value in predicted[:50]:
        assert station == "S"
        expected = 10.0 + 0.8 * features[issue - START, lead - 1, FEATURES.index("syd_delta")] + 0.3
        assert value == pytest.approx(expected, abs=1e-6)


def test_model_store_versions_and_reload(spark: SparkSession, tmp_path: Path) -> None:
    frame, _ = _frame(spark)
    store = ModelStore(tmp_path / "models")
    assert store.latest() is None
    model, errors = train(frame)
    first = store.save(model, {"trained_through_hour": 1, **errors})
    second = store.save(model, {"trained_through_hour": 2, **errors})
    (tmp_path / "models" / ".v3.tmp").mkdir()  # a crash mid-save leaves only a temporary dir
    assert (first.version, second.version) == (1, 2)
    assert store.versions() == [1, 2]
    latest = store.latest()
    assert latest is not None and latest.version == 2
    meta = latest.metadata
    assert meta["version"] == 2 and meta["trained_through_hour"] == 2
    assert meta["trained_at"].endswith("Z") and meta["rows"] == 60 * LEADS
    assert {"train_mae_c", "train_rmse_c"} <= meta.keys()
    reloaded, original = predict(latest.model, frame), predict(model, frame)
    assert [r[:3] for r in reloaded] == [r[:3] for r in original]
    assert [r[3] for r in reloaded] == pytest.approx([r[3] for r in original])


def _walk(
    spark: SparkSession,
    store: Path,
    data: dict[str, dict[int, float]],
    until: int,
    step: int = 6,
    covariates: dict[str, dict[int, dict[str, float | None]]] | None = None,
) -> tuple[ForecastEngine, list]:
    """Feed ``data`` in time order up to ``until``, advancing like the job (final lag 3 h)."""
    config = EngineConfig(window_days=3, clim_days=2, retrain_every_hours=24, min_history_days=2)
    engine = ForecastEngine(spark, config, ModelStore(store))
    outputs = []
    covariates = covariates or {}
    for start in range(START, until + 1, step):
        for hour in range(start, min(start + step, until + 1)):
            for station, values in data.items():
                if hour in values:
                    covs = covariates.get(station, {}).get(hour)
                    engine.observe(station, hour, values[hour], {"name": station}, covs)
        outputs.append(engine.advance(min(start + step - 1, until) - 3))
    return engine, outputs


def test_engine_walk_issues_retrains_and_verifies(spark: SparkSession, tmp_path: Path) -> None:
    data = {"A": _series(5, 1), "B": _series(5, 2, offset=3)}
    del data["B"][START + 80]  # a gap
    covariates = {"A": _covariates(data["A"], 1)}  # B reports temperature only
    engine, outputs = _walk(
        spark, tmp_path / "models", data, START + 5 * 24 - 1, covariates=covariates
    )
    forecasts = [f for out in outputs for f in out.forecasts]
    trained = [m.version for out in outputs for m in out.trained]
    assert trained == [1, 2, 3]  # days 2, 3 and 4 (event time)
    first_issue = min(hour_index(f["issued_at"]) for f in forecasts)
    assert first_issue == START + 48  # nothing before the first model
    for doc in forecasts:
        issued = hour_index(doc["issued_at"])
        assert doc["schema"] == "forecast.v1" and doc["station_id"] in ("A", "B")
        assert [p["lead"] for p in doc["points"]] == list(range(1, 25))
        assert [hour_index(p["target_hour"]) for p in doc["points"]] == [
            issued + lead for lead in range(1, 25)
        ]
        assert all(math.isfinite(p["value"]) for p in doc["points"])
    last = START + 5 * 24 - 4
    assert {f["station_id"] for f in forecasts if hour_index(f["issued_at"]) == last} == {"A", "B"}
    # A's covariates reach its features; B, without any, gets 0 anomalies ("as usual")
    anomalies = [FEATURES.index(n) for n in ("dpd_anomaly", "slp_anomaly", "wind_anomaly")]
    row_a, row_b = engine._row("A", last), engine._row("B", last)
    assert row_a is not None and row_b is not None
    assert np.all(row_a[1][:, anomalies] != 0) and np.all(row_b[1][:, anomalies] == 0)
    assert max(f["model_version"] for f in forecasts) == 3
    skill = engine.skill.document("ALL", engine.last_final or 0, 3)
    assert skill["leads"][0]["n"] > 40 and skill["leads"][23]["n"] > 0
    assert all(v is not None for v in skill["leads"][0]["mae"].values())

    # restart: the latest model is loaded and the state carries on
    again = ForecastEngine(spark, engine.config, ModelStore(tmp_path / "models"))
    again.load_state(engine.state())
    assert again.model is not None and again.model.version == 3
    assert again.last_final == engine.last_final
    assert again.skill.document("ALL", 0, 3) == engine.skill.document("ALL", 0, 3)
    assert again.pending.keys() == engine.pending.keys()


def test_engine_forecasts_do_not_see_the_future(spark: SparkSession, tmp_path: Path) -> None:
    """The same forecasts whether or not later hours were observed (and perturbed), the
    covariates' later hours included."""
    data = {"A": _series(5, 3)}
    covs = _covariates(data["A"], 3)
    until = START + 3 * 24 + 5
    plain, plain_out = _walk(
        spark, tmp_path / "a", {"A": dict(data["A"])}, until, covariates={"A": covs}
    )
    assert plain.model is not None and plain.model.metadata["features"] == list(FEATURES)
    rng = np.random.default_rng(9)
    future = {h: v + (rng.normal(0, 30) if h > until - 3 else 0) for h, v in data["A"].items()}
    shifted = {
        h: {k: v if v is None else v + rng.normal(0, 30) for k, v in c.items()}
        for h, c in covs.items()
    }
    future_covs = {h: shifted[h] if h > until - 3 else c for h, c in covs.items()}
    config = plain.config
    engine = ForecastEngine(spark, config, ModelStore(tmp_path / "b"))
    for hour, value in future.items():  # everything, the perturbed future included, up front
        engine.observe("A", hour, value, {"name": "A"}, future_covs[hour])
    out = engine.advance(until - 3)
    expected = [f for o in plain_out for f in o.forecasts]
    assert len(out.forecasts) == len(expected) > 0
    for got, want in zip(out.forecasts, expected, strict=True):
        assert got["issued_at"] == want["issued_at"]
        assert [p["value"] for p in got["points"]] == pytest.approx(
            [p["value"] for p in want["points"]], abs=1e-3
        )


def test_history_written_before_the_covariates_reads_back_with_nulls(
    spark: SparkSession, tmp_path: Path
) -> None:
    """The job's history Parquet across the upgrade: old files lack the covariate columns."""
    path = tmp_path / "history"
    spark.createDataFrame(
        [("A", "2013-01-01T00:00:00Z", 1.0, 0, 1)],
        "station_id string, hour string, mean_c double, batch_id long, offset long",
    ).write.mode("append").parquet(str(path))
    only_old = read_history(spark, path).collect()
    assert [[r[name] for name in COVARIATES] for r in only_old] == [[None, None, None]]
    spark.createDataFrame(
        [("A", "2013-01-01T01:00:00Z", 2.0, 1, 2, -1.5, 1012.5, 3.0)],
        "station_id string, hour string, mean_c double, batch_id long, offset long, "
        + ", ".join(f"{name} double" for name in COVARIATES),
    ).write.mode("append").parquet(str(path))
    rows = {r.hour: [r[name] for name in COVARIATES] for r in read_history(spark, path).collect()}
    assert rows == {
        "2013-01-01T00:00:00Z": [None, None, None],
        "2013-01-01T01:00:00Z": [-1.5, 1012.5, 3.0],
    }
