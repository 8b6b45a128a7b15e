"""Forecast features, baselines and skill on small hand-made series (no Spark)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest

from moaa.common.hours import epoch_hour, format_epoch_hour
from moaa.streaming.forecast_features import (
    COVARIATES,
    FEATURES,
    LEAD_KNOTS,
    LEADS,
    PREDICTORS,
    SkillBook,
    baselines,
    dense_past,
    issue_features,
    last_value,
    lead_basis,
    skill_document,
    skill_documents,
)

T = epoch_hour("2013-03-10T12:00:00Z")  # an issue hour (12 UTC)


def col(name: str) -> int:
    return FEATURES.index(name)


def ramp(slope: float = 0.5, days: int = 40) -> dict[int, float]:
    return {h: slope * (h - T) for h in range(T - days * 24, T + 48)}


def diurnal(days: int = 40) -> dict[int, float]:
    return {h: 10 + 5 * math.sin(2 * math.pi * (h % 24) / 24) for h in range(T - days * 24, T + 48)}


DEW, SLP, WIND = COVARIATES
ANOMALIES = ("dpd_anomaly", "slp_anomaly", "wind_anomaly")


def dense_covariates(
    covariates: dict[str, dict[int, float]], issue_hour: int, hours: int
) -> dict[str, np.ndarray]:
    return {name: dense_past(values, issue_hour, hours) for name, values in covariates.items()}


def test_hours_round_trip() -> None:
    assert format_epoch_hour(epoch_hour("2013-01-01T05:00:00Z")) == "2013-01-01T05:00:00Z"
    assert epoch_hour(datetime(2013, 1, 1, 5, 59, tzinfo=UTC)) == epoch_hour("2013-01-01T05:00:00Z")
    assert epoch_hour("2013-01-01T05:00:00Z") % 24 == 5
    with pytest.raises(ValueError, match="naive"):
        epoch_hour(datetime(2013, 1, 1))  # noqa: DTZ001 - on purpose


def test_dense_past_ends_at_the_issue_hour() -> None:
    past = dense_past({T: 1.0, T - 2: 3.0}, T, 4)
    assert past.shape == (4,)
    assert past[-1] == 1.0 and past[-3] == 3.0
    assert math.isnan(past[-2]) and math.isnan(past[0])


def test_last_value_tolerates_a_short_gap_only() -> None:
    assert last_value(np.array([1.0, 2.0, math.nan])) == 2.0
    assert last_value(np.array([4.0, math.nan, math.nan, math.nan])) == 4.0
    assert last_value(np.array([4.0, math.nan, math.nan, math.nan, math.nan])) is None
    assert issue_features(np.full(100, math.nan), T) is None
    assert baselines(np.full(100, math.nan), T, 30) is None


def test_constant_series_gives_zero_changes() -> None:
    past = dense_past(dict.fromkeys(range(T - 800, T + 1), 7.0), T, 900)
    feats = issue_features(past, T, clim_days=30)
    assert feats is not None and feats.shape == (LEADS, len(FEATURES))
    for name in FEATURES:
        expected = 1.0 if name == "one" else 0.0
        assert np.allclose(feats[:, col(name)], expected), name
    base = baselines(past, T, 30)
    assert base is not None and np.allclose(base, 7.0)
    # steady covariates are "as usual": their anomalies are 0 too
    steady = {DEW: 2.0, SLP: 1013.0, WIND: 4.0}
    covs = {name: dict.fromkeys(range(T - 800, T + 1), v) for name, v in steady.items()}
    with_covs = issue_features(past, T, 30, dense_covariates(covs, T, 30 * 24))
    assert with_covs is not None and np.allclose(with_covs, feats)


def test_covariate_anomalies_against_the_last_clim_days() -> None:
    hours = range(T - 40 * 24, T + 1)
    temperature = dict.fromkeys(hours, 10.0)
    covs = {
        DEW: dict.fromkeys(hours, 4.0),  # depression 6 °C ...
        SLP: {h: 1000.0 + 0.01 * (h - T) for h in hours},  # rising 0.01 hPa/h
        WIND: dict.fromkeys(hours, 3.0),
    }
    covs[DEW][T] = 8.0  # ... 2 °C now: 4 °C moister than usual
    covs[WIND].pop(T)  # no wind this hour: the last one (1 h old) counts
    covs[WIND][T - 1] = 9.0
    days = 10
    feats = issue_features(dense_past(temperature, T, 900), T, days, dense_covariates(covs, T, 900))
    assert feats is not None
    n = days * 24
    assert np.allclose(feats[:, col("dpd_anomaly")], 2.0 - (6.0 * (n - 1) + 2.0) / n)
    # the mean of a ramp over the last n hours is its value (n - 1) / 2 hours ago
    assert np.allclose(feats[:, col("slp_anomaly")], 0.01 * (n - 1) / 2)
    assert np.allclose(feats[:, col("wind_anomaly")], 9.0 - (3.0 * (n - 2) + 9.0) / (n - 1))
    # the arrays may be longer or shorter than the temperature history: only their end counts
    # (up to rounding: a window's sum is the difference of two running sums)
    short = issue_features(
        dense_past(temperature, T, 900), T, days, dense_covariates(covs, T, days * 24)
    )
    assert np.allclose(short, feats, rtol=0, atol=1e-9)


def test_ramp_lags_and_trends() -> None:
    slope = 0.5
    past = dense_past(ramp(slope), T, 900)  # x_t = 0 at the issue hour
    feats = issue_features(past, T, clim_days=30)
    assert feats is not None
    assert np.allclose(feats[:, col("trend1")], slope)
    assert np.allclose(feats[:, col("trend3")], 3 * slope)
    assert np.allclose(feats[:, col("change24")], 24 * slope)
    assert np.allclose(feats[:, col("mean24_delta")], -11.5 * slope)  # mean of -23..0
    assert np.allclose(feats[:, col("range24")], 23 * slope)
    # same hour of the previous day, relative to now: x_{t+L-24} - x_t = (L - 24) * slope
    leads = np.arange(1, LEADS + 1)
    assert np.allclose(feats[:, col("syd_delta")], (leads - 24) * slope)


def test_diurnal_cycle_climatology_and_baselines() -> None:
    values = diurnal()
    past = dense_past(values, T, 40 * 24)
    feats = issue_features(past, T, clim_days=30)
    base = baselines(past, T, 30)
    assert feats is not None and base is not None
    for lead in range(1, LEADS + 1):
        target = values[T + lead]
        # a perfectly periodic day: yesterday and the climatology both equal the target
        assert base[lead - 1, 0] == pytest.approx(values[T])  # last value
        assert base[lead - 1, 1] == pytest.approx(target)  # same hour yesterday
        assert base[lead - 1, 2] == pytest.approx(target)  # hour-of-day climatology
        assert feats[lead - 1, col("clim_delta")] == pytest.approx(target - values[T])
        assert feats[lead - 1, col("clim_tau")] == pytest.approx(target - 10, abs=1e-9)
    assert np.allclose(feats[:, col("anomaly_now")], 0, atol=1e-9)
    assert np.allclose(feats[:, col("anomaly24")], 0, atol=1e-9)


def test_no_future_value_leaks_into_features_or_baselines() -> None:
    rng = np.random.default_rng(5)
    values = {
        h: float(v) for h, v in zip(range(T - 1000, T + 48), rng.normal(10, 5, 1048), strict=True)
    }
    perturbed = {h: (v + rng.normal(0, 50) if h > T else v) for h, v in values.items()}
    del perturbed[T + 3]  # and a missing future hour
    span = 40 * 24
    a = dense_past(values, T, span)
    b = dense_past(perturbed, T, span)
    assert np.array_equal(issue_features(a, T), issue_features(b, T))
    assert np.array_equal(baselines(a, T, 30), baselines(b, T, 30))
    # and the past does matter: the test would notice a feature that ignores it
    earlier = {**values, T - 5: values[T - 5] + 10}
    assert not np.array_equal(issue_features(dense_past(earlier, T, span), T), issue_features(a, T))

    # the covariates: perturbed (and missing) future hours change nothing either
    hours = range(T - 1000, T + 48)
    covs = {
        DEW: {h: float(v) for h, v in zip(hours, rng.normal(5, 4, 1048), strict=True)},
        SLP: {h: float(v) for h, v in zip(hours, rng.normal(1013, 8, 1048), strict=True)},
        WIND: {h: float(v) for h, v in zip(hours, rng.gamma(2, 2, 1048), strict=True)},
    }
    future = {
        name: {h: (v + rng.normal(0, 50) if h > T else v) for h, v in series.items()}
        for name, series in covs.items()
    }
    for series in future.values():
        del series[T + 1]
    plain = issue_features(a, T, 30, dense_covariates(covs, T, span))
    assert np.array_equal(plain, issue_features(b, T, 30, dense_covariates(future, T, span)))
    for name, feature in zip(COVARIATES, ANOMALIES, strict=True):
        changed = {**covs, name: {**covs[name], T - 2: covs[name][T - 2] + 10}}
        moved = issue_features(a, T, 30, dense_covariates(changed, T, span))
        assert not np.array_equal(moved[:, col(feature)], plain[:, col(feature)]), name


def test_missing_inputs_become_zero_not_nan() -> None:
    values = dict.fromkeys(range(T - 3, T + 1), 1.0)  # four hours of history only
    feats = issue_features(dense_past(values, T, 900), T)
    base = baselines(dense_past(values, T, 900), T, 30)
    assert feats is not None and base is not None
    assert not np.isnan(feats).any()
    assert np.allclose(base[:, 1], 1.0)  # no yesterday: falls back to the last value
    # no covariates, all-missing ones, or only stale ones (> MAX_GAP_HOURS old): anomalies 0
    stale = {DEW: {T - 10: 0.0}, SLP: {T - 4: 1000.0, T - 9: 990.0}}
    for covs in ({}, {DEW: {}, SLP: {}, WIND: {}}, stale):
        got = issue_features(dense_past(values, T, 900), T, 30, dense_covariates(covs, T, 900))
        assert got is not None and not np.isnan(got).any()
        for name in ANOMALIES:
            assert np.all(got[:, col(name)] == 0.0), (covs, name)


def test_lead_basis_is_a_partition_of_unity() -> None:
    for lead in range(1, LEADS + 1):
        weights = lead_basis(lead)
        assert sum(weights) == pytest.approx(1.0)
        assert all(w >= 0 for w in weights)
    for i, knot in enumerate(LEAD_KNOTS):
        assert lead_basis(knot)[i] == 1.0
    assert lead_basis(3) == pytest.approx([0, 0.5, 0.5, 0, 0, 0])


def test_skill_book_mean_absolute_errors() -> None:
    book = SkillBook()
    # lead 1: actual 10; model 11, last 12, yesterday 14, climatology 6
    book.add("A", 1, 10.0, [11, 12, 14, 6])
    book.add("B", 1, 10.0, [9, 10, 12, 10])
    book.add("A", 24, 0.0, [1, 2, 3, 4])
    doc = book.document("ALL", T, 3)
    assert doc["schema"] == "forecast-skill.v1" and doc["station_id"] == "ALL"
    assert doc["updated_hour"] == format_epoch_hour(T) and doc["model_version"] == 3
    leads = doc["leads"]
    assert [e["lead"] for e in leads] == list(range(1, 25))
    assert leads[0]["n"] == 2
    assert leads[0]["mae"] == {
        "model": 1.0,
        "last_value": 1.0,
        "same_hour_yesterday": 3.0,
        "climatology": 2.0,
    }
    assert leads[0]["skill"] == pytest.approx(1 - 1 / 3)
    assert leads[1]["n"] == 0 and leads[1]["mae"]["model"] is None and leads[1]["skill"] is None
    assert doc["overall"]["n"] == 3
    assert doc["overall"]["mae"]["model"] == pytest.approx(1.0)
    assert doc["overall"]["skill"] == pytest.approx(1 - 1 / 3)
    station = book.document("A", T, 3)
    assert station["leads"][0]["n"] == 1 and station["leads"][23]["mae"]["climatology"] == 4.0
    again = SkillBook.from_json(book.to_json())
    assert again.document("ALL", T, 3) == doc
    assert set(doc["leads"][0]["mae"]) == set(PREDICTORS)


def test_skill_documents_of_many_keys_equal_one_at_a_time() -> None:
    rng = np.random.default_rng(3)
    counts = rng.integers(0, 4, (50, LEADS)).astype(float)
    counts[0] = 0  # nothing verified yet
    sums = rng.random((50, len(PREDICTORS), LEADS)) * counts[:, None, :] * 2
    sums[1, PREDICTORS.index("same_hour_yesterday")] = 0  # a perfect baseline: no skill
    keys = [f"S{i}" for i in range(50)]
    many = skill_documents(keys, sums, counts, T, 2)
    assert many == [skill_document(k, sums[i], counts[i], T, 2) for i, k in enumerate(keys)]
    assert many[0]["overall"] == {"n": 0, "mae": dict.fromkeys(PREDICTORS), "skill": None}
    assert all(e["skill"] is None for e in many[1]["leads"]) and many[1]["overall"]["skill"] is None
