"""The Spark ML model, its store and the engine's walk, on a local SparkSession and small
hand-made series (no Kafka). ``spark`` is the test session's shared SparkSession."""

from __future__ import annotations

import json
import math
from pathlib import Path

import msgspec
import numpy as np
import pytest
from pyspark.sql import DataFrame, SparkSession

from moaa.common.hours import epoch_hour
from moaa.common.records import Forecast, ForecastSkill
from moaa.streaming.forecast_engine import EngineConfig, ForecastEngine, _pack, _unpack
from moaa.streaming.forecast_features import COVARIATES, FEATURES, LEADS, lead_basis
from moaa.streaming.forecast_model import ModelStore, build_pipeline, predict, rows_frame, train
from moaa.streaming.forecast_store import INCOMING_SCHEMA, ForecastStore

START = epoch_hour("2013-01-01T00:00:00Z")


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
    # a restart after a step that a crash interrupted: models trained after it are dropped
    store.discard_trained_after(1)
    assert store.versions() == [1]


CONFIG = EngineConfig(window_days=3, clim_days=2, retrain_every_hours=24, min_history_days=2)


class Collect:
    """A sink that keeps the published documents (small runs only), each checked against
    its record of the data contract."""

    def __init__(self) -> None:
        self.docs: list[dict] = []
        self.skills: dict[str, dict] = {}

    def publish(self, forecasts: DataFrame | None, skill: DataFrame | None) -> None:
        if forecasts is not None:
            self.forecasts(forecasts)
        if skill is not None:
            self.skill(skill)

    def forecasts(self, docs: DataFrame) -> None:
        rows = docs.collect()
        for r in rows:
            doc = json.loads(r.value)
            assert r.key == f"{doc['station_id']}|{doc['issued_at']}"
            # the tests' stations are "A" and "B": the record wants a real id
            real = msgspec.json.encode({**doc, "station_id": "72502014734"})
            msgspec.json.decode(real, type=Forecast, strict=True)
            self.docs.append(doc)

    def skill(self, docs: DataFrame) -> None:
        rows = docs.collect()
        for r in rows:
            msgspec.json.decode(r.value, type=ForecastSkill, strict=True)
        self.skills |= {r.key: json.loads(r.value) for r in rows}


def _engine(
    spark: SparkSession, root: Path, config: EngineConfig = CONFIG
) -> tuple[ForecastEngine, Collect]:
    collect = Collect()
    return ForecastEngine(spark, config, root, collect), collect


def _ingest(
    engine: ForecastEngine,
    data: dict[str, dict[int, float]],
    hours: range,
    covariates: dict[str, dict[int, dict[str, float | None]]] | None = None,
    batch: int = 0,
) -> None:
    rows = []
    for hour in hours:
        for station, values in data.items():
            if hour in values:
                covs = (covariates or {}).get(station, {}).get(hour) or {}
                rows.append(
                    (station, station, values[hour], *(covs.get(c) for c in COVARIATES), batch, 0,
                     len(rows), hour)
                )  # fmt: skip
    engine.ingest(engine.spark.createDataFrame(rows, INCOMING_SCHEMA))


def _walk(
    spark: SparkSession,
    root: Path,
    data: dict[str, dict[int, float]],
    until: int,
    step: int = 12,
    covariates: dict[str, dict[int, dict[str, float | None]]] | None = None,
    config: EngineConfig = CONFIG,
):
    """Feed ``data`` in time order up to ``until``, advancing like the job (final lag 3 h)."""
    engine, collect = _engine(spark, root, config)
    trained = []
    for batch, start in enumerate(range(START, until + 1, step)):
        _ingest(engine, data, range(start, min(start + step, until + 1)), covariates, batch)
        for result in engine.advance(min(start + step - 1, until) - 3):
            trained += [m.version for m in result.trained]
    return engine, collect, trained


def _by_key(docs: list[dict]) -> dict[tuple[str, str], list[float]]:
    return {(d["station_id"], d["issued_at"]): [p["value"] for p in d["points"]] for d in docs}


def test_engine_walk_issues_retrains_and_verifies(spark: SparkSession, tmp_path: Path) -> None:
    data = {"A": _series(5, 1), "B": _series(5, 2, offset=3)}
    del data["B"][START + 80]  # a gap
    covariates = {"A": _covariates(data["A"], 1)}  # B reports temperature only
    engine, collect, trained = _walk(
        spark, tmp_path / "f", data, START + 5 * 24 - 1, covariates=covariates
    )
    forecasts = collect.docs
    assert trained == [1, 2, 3]  # days 2, 3 and 4 (event time)
    first_issue = min(epoch_hour(f["issued_at"]) for f in forecasts)
    assert first_issue == START + 48  # nothing before the first model
    for doc in forecasts:
        issued = epoch_hour(doc["issued_at"])
        assert doc["schema"] == "forecast.v1" and doc["station_id"] in ("A", "B")
        assert doc["name"] == doc["station_id"]
        assert [p["lead"] for p in doc["points"]] == list(range(1, 25))
        assert [epoch_hour(p["target_hour"]) for p in doc["points"]] == [
            issued + lead for lead in range(1, 25)
        ]
        assert all(math.isfinite(p["value"]) for p in doc["points"])
    last = START + 5 * 24 - 4
    assert engine.state.last_final == last
    assert {f["station_id"] for f in forecasts if epoch_hour(f["issued_at"]) == last} == {"A", "B"}
    # one forecast per station and issue hour, from the first model on
    assert len(_by_key(forecasts)) == len(forecasts) == 2 * (last - first_issue + 1)
    # A's covariates reach its features; B, without any, gets 0 anomalies ("as usual")
    rows = engine.store.candidates.read_hours([last]).where("lead = 1").collect()
    by_station = {r.station_id: r for r in rows}
    for name in ("dpd_anomaly", "slp_anomaly", "wind_anomaly"):
        assert by_station["A"][f"f_{name}"] != 0 and by_station["B"][f"f_{name}"] == 0, name
    assert max(f["model_version"] for f in forecasts) == 3
    skill = collect.skills["ALL"]
    assert skill["leads"][0]["n"] > 40 and skill["leads"][23]["n"] > 0
    assert all(v is not None for v in skill["leads"][0]["mae"].values())
    assert {"A", "B"} <= collect.skills.keys()
    assert skill["leads"][0]["n"] == sum(collect.skills[s]["leads"][0]["n"] for s in "AB")
    # an issue is verified once its 24th target hour is final, every lead at once (the gap
    # in B's series leaves its targets unverified)
    complete = [f for f in forecasts if epoch_hour(f["issued_at"]) + 24 <= last]
    for lead in (1, 12, 24):
        want = sum(epoch_hour(f["issued_at"]) + lead in data[f["station_id"]] for f in complete)
        assert skill["leads"][lead - 1]["n"] == want, lead

    # restart: the latest model and the state are loaded, nothing is redone
    again, _ = _engine(spark, tmp_path / "f")
    assert again.model is not None and again.model.version == 3
    assert again.state == engine.state
    assert list(again.advance(last)) == []


def test_a_backlog_in_bulk_gives_what_hour_by_hour_gives(
    spark: SparkSession, tmp_path: Path
) -> None:
    """Catching up many final hours in one step (or steps of any size) issues the same
    forecasts, trains the same models and scores the same skill as one hour at a time."""
    data = {"A": _series(4, 4), "B": _series(4, 5, offset=-2)}
    covariates = {"A": _covariates(data["A"], 4), "B": _covariates(data["B"], 5)}
    until = START + 4 * 24 - 1
    _, hourly, hourly_models = _walk(spark, tmp_path / "h", data, until, 8, covariates)
    bulk_config = EngineConfig(**{**CONFIG.__dict__, "max_step_hours": 30})
    engine, bulk = _engine(spark, tmp_path / "b", bulk_config)
    _ingest(engine, data, range(START, until + 1), covariates)
    steps = list(engine.advance(until - 3))
    # steps of at most 30 hours, each ending at a retrain hour (48 and 72 hours in)
    assert [(s.first - START, s.last - START) for s in steps] == [
        (0, 29),
        (30, 48),
        (49, 72),
        (73, 92),
    ]
    assert [m.version for s in steps for m in s.trained] == hourly_models == [1, 2]
    expected, got = _by_key(hourly.docs), _by_key(bulk.docs)
    assert got.keys() == expected.keys()
    for key, values in expected.items():
        assert got[key] == pytest.approx(values, abs=1e-3), key
    assert bulk.skills["ALL"]["overall"]["n"] == hourly.skills["ALL"]["overall"]["n"] > 0
    for lead in (0, 11, 23):
        want = hourly.skills["ALL"]["leads"][lead]["mae"]
        assert bulk.skills["ALL"]["leads"][lead]["mae"] == pytest.approx(want, abs=1e-5)


def test_engine_forecasts_do_not_see_the_future(spark: SparkSession, tmp_path: Path) -> None:
    """The same forecasts whether or not later hours were observed (and perturbed), the
    covariates' later hours included."""
    data = {"A": _series(5, 3)}
    covs = {"A": _covariates(data["A"], 3)}
    until = START + 3 * 24 + 5
    plain, plain_out, _ = _walk(spark, tmp_path / "a", {"A": dict(data["A"])}, until, 12, covs)
    assert plain.model is not None and plain.model.metadata["features"] == list(FEATURES)
    rng = np.random.default_rng(9)
    future = {h: v + (rng.normal(0, 30) if h > until - 3 else 0) for h, v in data["A"].items()}
    shifted = {
        h: {k: v if v is None else v + rng.normal(0, 30) for k, v in c.items()}
        for h, c in covs["A"].items()
    }
    future_covs = {h: shifted[h] if h > until - 3 else c for h, c in covs["A"].items()}
    engine, out = _engine(spark, tmp_path / "b")
    # everything, the perturbed future included, up front
    _ingest(engine, {"A": future}, range(START, START + 5 * 24), {"A": future_covs})
    list(engine.advance(until - 3))
    expected = _by_key(plain_out.docs)
    got = _by_key(out.docs)
    assert got.keys() == expected.keys() and got
    for key, values in expected.items():
        assert got[key] == pytest.approx(values, abs=1e-3), key


def test_a_step_interrupted_by_a_crash_is_done_again_the_same_way(
    spark: SparkSession, tmp_path: Path
) -> None:
    """What a crashed step wrote (tables, training set, a model) is dropped on restart and the
    step is done again: the result is the run without the crash."""
    data = {"A": _series(4, 6), "B": _series(4, 7, offset=1)}
    until = START + 4 * 24 - 1
    _, clean, _ = _walk(spark, tmp_path / "clean", data, until, 12)

    root = tmp_path / "crashed"
    engine, first = _engine(spark, root)
    _ingest(engine, data, range(START, START + 60))
    list(engine.advance(START + 50))
    committed = engine.state.last_final
    # the next steps run whole (a model trained, tables written), then the process dies just
    # before each commit: state.json is not saved (nor, after it, the retention cleanup)
    saved = engine.state.save
    engine.state.save = lambda _path: None  # type: ignore[method-assign]
    engine._retain = lambda _hour: None  # type: ignore[method-assign]
    _ingest(engine, data, range(START + 60, until + 1), batch=1)
    interrupted = list(engine.advance(START + 75))
    assert any(step.trained for step in interrupted)
    written = engine.models.versions()
    engine.state.save = saved  # type: ignore[method-assign]

    again, after = _engine(spark, root)
    assert again.state.last_final == committed
    assert again.models.versions() == written[:-1]  # the model of the lost step is gone
    list(again.advance(until - 3))
    expected = _by_key(clean.docs)
    got = _by_key(first.docs) | _by_key(after.docs)
    assert got.keys() == expected.keys()
    for key, values in expected.items():
        assert got[key] == pytest.approx(values, abs=1e-3), key
    assert after.skills["ALL"]["overall"] == clean.skills["ALL"]["overall"]


def test_a_micro_batch_of_means_is_one_directory_a_replay_replaces(
    spark: SparkSession, tmp_path: Path
) -> None:
    """Incoming means: one directory per micro-batch, read by the hours it holds, replaced
    when Spark replays the batch (no duplicates), dropped once all its hours are final."""
    store = ForecastStore(spark, tmp_path / "f")

    def batch(batch_id: int, hours: list[int]) -> DataFrame:
        rows = [("A", "A", 1.0, None, None, None, batch_id, 0, i, h) for i, h in enumerate(hours)]
        return spark.createDataFrame(rows, INCOMING_SCHEMA)

    store.append_incoming(batch(3, [10, 11, 12]), None)
    again = store.append_incoming(batch(3, [10, 11, 12]), None)
    assert (again.rows, again.late, again.oldest, again.newest) == (3, 0, 10, 12)
    assert store.read_incoming(10, 12).count() == 3
    later = store.append_incoming(batch(4, [9, 12, 13]), last_final=9)
    assert (later.rows, later.late, later.oldest, later.newest) == (3, 1, 12, 13)
    assert sorted(r.hour for r in store.read_incoming(11, 12).collect()) == [11, 12, 12]
    store.drop_incoming(through=12)
    assert sorted(r.hour for r in store.read_incoming(10, 99).collect()) == [12, 13]
    all_late = store.append_incoming(batch(5, [8]), last_final=13)
    assert (all_late.rows, all_late.late, all_late.newest) == (1, 1, 8)
    assert len(list(store.incoming_dir.iterdir())) == 1  # nothing kept for it
    # a write a crash interrupted is removed on start
    (store.incoming_dir / "_new-0123").mkdir()
    store.discard_after(13)
    assert [p.name for p in store.incoming_dir.iterdir()] == ["b4_h12_13"]


def test_a_restart_before_the_first_final_hour_keeps_the_first_hour(
    spark: SparkSession, tmp_path: Path
) -> None:
    """The means of a committed micro-batch are not read again after a restart: the first
    hour and the clock they set survive it, so the walk and the first model's schedule start
    where they would have without the restart."""
    data = {"A": _series(1, 8)}
    engine, _ = _engine(spark, tmp_path / "f")
    _ingest(engine, data, range(START, START + 24), batch=0)  # no hour final yet
    again, _ = _engine(spark, tmp_path / "f")
    assert (again.state.first_hour, again.state.clock) == (START, START + 23)
    _ingest(again, data, range(START + 24, START + 48), batch=1)
    steps = list(again.advance(START + 40))
    assert steps[0].first == START and again.state.last_final == START + 40


def test_late_means_for_final_hours_are_ignored(spark: SparkSession, tmp_path: Path) -> None:
    engine, _ = _engine(spark, tmp_path / "f")
    data = {"A": _series(1, 8)}
    _ingest(engine, data, range(START, START + 24))
    list(engine.advance(START + 20))
    late = engine.spark.createDataFrame(
        [("A", "A", 99.0, None, None, None, 1, 0, 0, START + 5)], INCOMING_SCHEMA
    )
    info = engine.ingest(late)
    assert (info.rows, info.late) == (1, 1)
    row = engine.store.hours.read_hours([START + 5]).collect()[0]
    assert row.x == data["A"][START + 5]


def test_the_first_step_samples_its_candidates_and_training_is_bounded(
    spark: SparkSession, tmp_path: Path
) -> None:
    """The sample rate needs the station count: the very first step (no table yet) takes
    it from its own means, not "1 station" (which kept every candidate); and however many
    rows the training set holds, a fit sees at most about ``train_max_rows``."""
    stations = {s: _series(4, k) for k, s in enumerate("ABCDEFGH")}
    # 8 stations × 3 days × 24 h × 24 leads = 13,824 window rows: a rate of 1/8
    config = EngineConfig(**{**CONFIG.__dict__, "train_max_rows": 1728, "max_step_hours": 48})
    engine, _ = _engine(spark, tmp_path / "f", config)
    _ingest(engine, stations, range(START, START + 48))
    [step] = list(engine.advance(START + 44))
    assert step.first == START and engine.state.stations == 8
    candidates = engine.store.candidates.read_hours(range(START, START + 45)).count()
    everything = 8 * 45 * LEADS
    assert 0 < candidates < everything / 4, (candidates, everything)

    # a training set far above the bound (rows of an older, unsampled set): the fit thins it
    small = EngineConfig(**{**config.__dict__, "train_max_rows": 200})
    engine, _ = _engine(spark, tmp_path / "f", small)
    _ingest(engine, stations, range(START + 48, START + 96), batch=1)
    trained = [m for r in engine.advance(START + 92) for m in r.trained]
    assert trained and trained[0].metadata["rows"] <= 2 * 200 < candidates


def test_a_training_in_the_background_is_swapped_in_and_issuing_goes_on(
    spark: SparkSession, tmp_path: Path
) -> None:
    """The job's mode: a due training starts after its step, steps go on meanwhile with the
    model they have, and the new model is used from the first step after it is done. The
    first model is waited for: nothing can be issued without one."""
    data = {"A": _series(5, 1), "B": _series(5, 2, offset=3)}
    config = EngineConfig(**{**CONFIG.__dict__, "train_in_background": True})
    engine, collect = _engine(spark, tmp_path / "f", config)
    trained, steps = [], []
    for batch, start in enumerate(range(START, START + 5 * 24, 12)):
        _ingest(engine, data, range(start, start + 12), batch=batch)
        for result in engine.advance(start + 11 - 3):
            trained += [m.version for m in result.trained]
            steps.append((result.first, result.last))
            if result.last >= START + 72 and engine.model and engine.model.version == 1:
                # the second training runs beside the next steps: it was started, not awaited
                assert engine.training_hour == START + 72
        # the test waits for each training after its batch, so the swap is at a known step
        trained += [m.version for m in engine.wait_for_training()]
    engine.close()
    assert trained == [1, 2, 3]
    # every step is a whole batch's final hours, but for the first model's: its step ends
    # at its retrain hour (START + 48), which it scores with the new model
    batches = [(START, START + 8)] + [(s - 3, s + 8) for s in range(START + 12, START + 120, 12)]
    split = [(a, b) for a, b in batches if a <= START + 48 < b]
    assert split == [(START + 45, START + 56)]
    expected = sorted({*batches} - {*split} | {(START + 45, START + 48), (START + 49, START + 56)})
    assert steps == expected
    issued = sorted({epoch_hour(d["issued_at"]) for d in collect.docs})
    assert issued == list(range(START + 48, engine.state.last_final + 1))  # none skipped
    assert engine.state.train_version == max(
        m.metadata["trained_through_hour"] for m in [engine.model] if m is not None
    )
    # a restart in this mode loads the latest model and goes on from the state
    again, _ = _engine(spark, tmp_path / "f", config)
    assert again.model is not None and again.model.version == 3
    assert again.state == engine.state


def test_a_step_covers_a_bounded_number_of_station_hours(
    spark: SparkSession, tmp_path: Path
) -> None:
    """A backlog is caught up in steps of about the same work: long steps for a few
    stations (a step's fixed costs dominate), 48 hours for every station of the archive."""
    engine, _ = _engine(spark, tmp_path / "f", EngineConfig())
    hours = {}
    for stations in (2, 1_000, 4_000, 13_836, 10**7):
        engine.state.stations = stations
        hours[stations] = engine.step_hours(START)
    assert hours == {2: 336, 1_000: 336, 4_000: 168, 13_836: 48, 10**7: 1}
    # before the first step, the stations of the means it will read
    fresh, _ = _engine(spark, tmp_path / "g", EngineConfig(step_station_hours=100))
    _ingest(fresh, {s: _series(1, k) for k, s in enumerate("ABCD")}, range(START, START + 24))
    assert fresh.step_hours(START) == 25


def test_an_issue_is_stored_predictor_major() -> None:
    """An issue's 24 leads × 4 predictors are one array of 96 in the tables: predictor i's
    lead L at ``i * 24 + L - 1``; reading it back gives the same array."""
    values = np.arange(2 * LEADS * 4, dtype=float).reshape(2, LEADS, 4)
    packed = _pack(values)
    assert packed.shape == (2, 4 * LEADS)
    assert packed[1, 2 * LEADS + 4] == values[1, 4, 2]
    assert (_unpack(packed) == values).all()
