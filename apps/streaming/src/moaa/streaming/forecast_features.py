"""Pure forecast transforms: the final-hours table, features, baselines and skill (numpy only).

This module is the **one definition** of the forecast's inputs. The forecast job runs it
inside Spark (grouped pandas UDFs, one group per bucket of stations: see
:mod:`moaa.streaming.forecast_engine`); the unit tests and the single-series helpers below
(:func:`issue_features`, :func:`baselines`) run exactly the same functions on small arrays.

**The final-hours table.** Once an hour is final, every station ever seen gets one row for it
(dense: an empty row when the station reported nothing), holding the hour's mean temperature
``x`` and covariate means (:data:`COVARIATES`: dew point, sea-level pressure, wind speed; NaN
when missing) and running sums (:data:`CUM_FIELDS`) from which every window the features
need is a difference of two rows:

* ``cx_s`` / ``cx_n`` — sum and count of ``x`` over all earlier hours **of the same UTC
  hour of day** (the hour-of-day climatologies over ``clim_days`` and ``window_days``);
* ``cdpd_*``, ``cslp_*``, ``cwind_*`` — sum and count over all earlier hours of the dew
  point depression (``x`` − dew point), the sea-level pressure and the wind speed (their
  ``clim_days`` means).

A new hour's row is the row 24 hours (hour-of-day sums) or 1 hour (all-hour sums) before it
plus its own values (:func:`extend_table`), so each final hour costs one row per station,
whatever the windows; and the features of an issue at hour ``t`` read only the rows of hours
``t-24 … t``, ``t-clim_days·24-23 … t-clim_days·24`` and ``t-window_days·24-23 …
t-window_days·24`` (:func:`needed_hours`, :func:`issue_summaries`).

Hours are integers: hours since the Unix epoch (``hour % 24`` is the UTC hour of day). The
issue hour ``t`` is the latest hour a feature may read: :func:`issue_summaries` indexes
nothing later, so the absence of leakage holds by construction (and the tests perturb the
future anyway).

Features are *relative to the last value* ``x_t`` (the latest value at or before ``t``,
at most ``MAX_GAP_HOURS`` old), and the model predicts the change ``x_{t+L} - x_t`` for
leads ``L = 1..24``, so one linear model serves every station and every season:

=================  ==============================================================
``syd_delta``      same hour of the previous day (``x_{t+L-24}``) − ``x_t``
``clim_delta``     climatological diurnal change: clim(hour of t+L) − clim(hour of t)
``mean24_delta``   mean of the last 24 h − ``x_t``
``trend1``         ``x_t − x_{t-1}``
``trend3``         ``x_t − x_{t-3}``
``change24``       ``x_t − x_{t-24}``
``anomaly_now``    ``x_t`` − clim(hour of t)
``range24``        max − min of the last 24 h (how strong today's diurnal cycle is)
``one``            1 (a per-lead intercept once crossed with the lead basis)
``anomaly24``      mean of the last 24 h − mean of the climatology
``clim_tau``       clim(hour of t+L) − mean of the climatology (diurnal shape at t+L)
``mean_dev``       mean of the climatology − ``x_t``
``dpd_anomaly``    dew point depression (temperature − dew point) now − its mean
``slp_anomaly``    sea-level pressure now − its mean
``wind_anomaly``   wind speed now − its mean
=================  ==============================================================

where clim(h) is the mean at UTC hour-of-day ``h`` over the last ``clim_days`` days up to
``t``; "now" is the latest value at most ``MAX_GAP_HOURS`` old and "its mean" the mean over
the last ``clim_days`` days. The three covariate anomalies are what the hourly temperature
alone cannot say about tomorrow: how dry the air is (a dry air mass, a larger diurnal
swing), whether the pressure is high or low for the season (the synoptic situation), and
whether it is windier than usual. Missing inputs make a feature 0 (= "no information" for a
change, "as usual" for an anomaly; many stations report no sea-level pressure). The lead
enters the model through a piecewise-linear basis (:data:`LEAD_KNOTS`) crossed with every
feature (see :mod:`moaa.streaming.forecast_model`), so each feature's weight varies smoothly
with the lead.

**Baselines** (computed by the same code): *last value* ``x_t``, *same hour yesterday*
``x_{t+L-24}`` (the last value when missing) and *climatology*, the mean at the target's UTC
hour of day over the last ``window_days`` days (the last value where that hour was never
seen). **Skill** is ``1 − MAE(model) / MAE(same hour yesterday)`` (:data:`SKILL_DEFINITION`,
:func:`skill`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from moaa.common.hours import format_epoch_hour
from moaa.common.records import (
    FORECAST_SCHEMA,
    PREDICTORS,
    SKILL_DEFINITION,
    SKILL_SCHEMA,
)

__all__ = [
    "COVARIATES",
    "CUM_FIELDS",
    "FEATURES",
    "FORECAST_SCHEMA",
    "LEADS",
    "LEAD_KNOTS",
    "MAX_GAP_HOURS",
    "PREDICTORS",
    "RAW_FIELDS",
    "SKILL_DEFINITION",
    "SKILL_SCHEMA",
    "SkillBook",
    "Summaries",
    "Table",
    "baselines",
    "dense_past",
    "extend_table",
    "features_from_summaries",
    "issue_features",
    "issue_summaries",
    "last_value",
    "lead_basis",
    "lead_weights",
    "linear_forecasts",
    "needed_hours",
    "skill",
    "skill_document",
    "skill_documents",
    "skill_values",
]

LEADS = 24
MAX_GAP_HOURS = 3
#: Knots of the piecewise-linear lead basis (hours).
LEAD_KNOTS = (1, 2, 4, 8, 16, 24)
FEATURES = (
    "syd_delta",
    "clim_delta",
    "mean24_delta",
    "trend1",
    "trend3",
    "change24",
    "anomaly_now",
    "range24",
    "one",
    "anomaly24",
    "clim_tau",
    "mean_dev",
    "dpd_anomaly",
    "slp_anomaly",
    "wind_anomaly",
)
#: Hourly-stats fields kept beside the mean temperature: per station-hour means of the
#: observations' dew point (°C), sea-level pressure (hPa) and wind speed (m/s); a field is
#: absent when no observation of that hour carried it.
COVARIATES = ("dew_point_mean_c", "sea_level_pressure_mean_hpa", "wind_speed_mean_ms")
_BASELINE = PREDICTORS.index("same_hour_yesterday")

#: Raw values of one station-hour in the final-hours table (NaN = missing).
RAW_FIELDS = ("x", "dew", "slp", "wind")
#: Running sums of the final-hours table (see the module's docstring).
CUM_FIELDS = (
    "cx_s",
    "cx_n",
    "cdpd_s",
    "cdpd_n",
    "cslp_s",
    "cslp_n",
    "cwind_s",
    "cwind_n",
)
#: The all-hour running sums and the raw series each one sums.
_ALL_HOUR_SUMS = (("cdpd", "dpd"), ("cslp", "slp"), ("cwind", "wind"))


def dense_past(values: Mapping[int, float], issue_hour: int, hours: int) -> np.ndarray:
    """The ``hours`` hours up to and including ``issue_hour`` as an array (NaN = missing)."""
    start = issue_hour - hours + 1
    return np.array([values.get(h, math.nan) for h in range(start, issue_hour + 1)], dtype=float)


def last_value(past: np.ndarray, max_gap: int = MAX_GAP_HOURS) -> float | None:
    """The latest value at most ``max_gap`` hours before the issue hour, or None."""
    for k in range(min(max_gap + 1, len(past))):
        v = past[-1 - k]
        if not math.isnan(v):
            return float(v)
    return None


# -- the final-hours table ---------------------------------------------------------------------


@dataclass
class Table:
    """Rows of the final-hours table for ``stations`` at the (sorted, unique) ``hours``:
    ``fields[name]`` has shape ``(len(stations), len(hours))``. A station without a row at an
    hour reads as NaN (raw values) or 0 (running sums: nothing seen yet)."""

    stations: np.ndarray
    hours: np.ndarray
    fields: dict[str, np.ndarray]

    def at(self, name: str, hours: np.ndarray) -> np.ndarray:
        """``fields[name]`` at ``hours`` (any shape ``S``) → shape ``(stations, *S)``."""
        hours = np.asarray(hours, dtype=np.int64)
        fill = 0.0 if name in CUM_FIELDS else math.nan
        if not len(self.hours):
            return np.full((len(self.stations), *hours.shape), fill)
        idx = np.minimum(np.searchsorted(self.hours, hours), len(self.hours) - 1)
        present = self.hours[idx] == hours
        return np.where(present, self.fields[name][:, idx], fill)


def _nz(a: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(a), 0.0, a)


def extend_table(previous: Table, first: int, raw: Mapping[str, np.ndarray]) -> Table:
    """The table's rows for hours ``first … first + m - 1`` from their raw values.

    ``raw`` maps each of :data:`RAW_FIELDS` to an array ``(stations, m)`` (NaN = missing) for
    ``previous.stations``; ``previous`` holds the running sums of hours ``first - 24 …
    first - 1`` (a station absent there starts from 0, as a station seen for the first time).
    """
    x = np.asarray(raw["x"], dtype=float)
    n, m = x.shape
    out: dict[str, np.ndarray] = {name: np.asarray(raw[name], dtype=float) for name in RAW_FIELDS}
    series = {"dpd": x - out["dew"], "slp": out["slp"], "wind": out["wind"]}
    day_before = first - 24 + np.arange(24)
    before_s, before_n = previous.at("cx_s", day_before), previous.at("cx_n", day_before)
    cx_s, cx_n = np.empty((n, m)), np.empty((n, m))
    for r in range(min(24, m)):  # hour first + r + 24 k has the hour of day of first - 24 + r
        column = x[:, r::24]
        cx_s[:, r::24] = before_s[:, r : r + 1] + np.cumsum(_nz(column), axis=1)
        cx_n[:, r::24] = before_n[:, r : r + 1] + np.cumsum(~np.isnan(column), axis=1)
    out["cx_s"], out["cx_n"] = cx_s, cx_n
    for prefix, name in _ALL_HOUR_SUMS:
        values = series[name]
        start_s = previous.at(f"{prefix}_s", np.array([first - 1]))
        start_n = previous.at(f"{prefix}_n", np.array([first - 1]))
        out[f"{prefix}_s"] = start_s + np.cumsum(_nz(values), axis=1)
        out[f"{prefix}_n"] = start_n + np.cumsum(~np.isnan(values), axis=1)
    return Table(previous.stations, np.arange(first, first + m, dtype=np.int64), out)


def needed_hours(first: int, last: int, clim_days: int, window_days: int) -> np.ndarray:
    """The table hours the issues at ``first … last`` read (sorted, unique)."""
    ranges = [np.arange(first - 24, last + 1)]
    for days in (clim_days, window_days):
        ranges.append(np.arange(first - 23 - days * 24, last - days * 24 + 1))
    return np.unique(np.concatenate(ranges)).astype(np.int64)


@dataclass
class Summaries:
    """What the features and baselines of ``n`` issues need (one row per issue)."""

    issue_hour: np.ndarray  # (n,) int
    recent: np.ndarray  # (n, 25) x at t-24 … t
    clim_s: np.ndarray  # (n, 24) sum of x per UTC hour of day over the last clim_days days
    clim_n: np.ndarray  # (n, 24) count of the same
    base_s: np.ndarray  # (n, 24) the same over the last window_days days
    base_n: np.ndarray  # (n, 24)
    cov_recent: np.ndarray  # (n, 3, 4) dpd, slp, wind at t-3 … t
    cov_s: np.ndarray  # (n, 3) their sums over the last clim_days days
    cov_n: np.ndarray  # (n, 3) and counts


def issue_summaries(
    table: Table, issue_hours: Iterable[int], clim_days: int, window_days: int
) -> Summaries:
    """Summaries of every station of ``table`` at every issue hour, station-major: the issue of
    station ``i`` at the ``j``-th hour is row ``i * len(issue_hours) + j``.

    Reads only hours at or before each issue hour (see :func:`needed_hours`).
    """
    hours = np.asarray(list(issue_hours), dtype=np.int64)
    n_st, n_t = len(table.stations), len(hours)
    back = np.arange(24, -1, -1)  # t-24 … t
    recent = table.at("x", hours[:, None] - back[None, :])  # (S, T, 25)
    k = np.arange(24)
    recent_hours = hours[:, None] - k[None, :]  # (T, 24): t - k, hour of day (t - k) % 24
    hod = recent_hours % 24
    order = np.argsort(hod, axis=1)  # columns by hour of day 0 … 23

    def window(prefix: str, days: int) -> tuple[np.ndarray, np.ndarray]:
        s = table.at(f"{prefix}_s", recent_hours) - table.at(
            f"{prefix}_s", recent_hours - days * 24
        )
        c = table.at(f"{prefix}_n", recent_hours) - table.at(
            f"{prefix}_n", recent_hours - days * 24
        )
        take = np.broadcast_to(order[None], s.shape)
        return np.take_along_axis(s, take, axis=2), np.take_along_axis(c, take, axis=2)

    clim_s, clim_n = window("cx", clim_days)
    base_s, base_n = window("cx", window_days)
    last4 = hours[:, None] - np.arange(3, -1, -1)[None, :]  # (T, 4): t-3 … t
    x4 = table.at("x", last4)
    cov_recent = np.stack(
        [x4 - table.at("dew", last4), table.at("slp", last4), table.at("wind", last4)], axis=2
    )  # (S, T, 3, 4)
    now, then = hours, hours - clim_days * 24
    cov_s = np.stack(
        [table.at(f"{p}_s", now) - table.at(f"{p}_s", then) for p, _ in _ALL_HOUR_SUMS], axis=2
    )
    cov_n = np.stack(
        [table.at(f"{p}_n", now) - table.at(f"{p}_n", then) for p, _ in _ALL_HOUR_SUMS], axis=2
    )
    n = n_st * n_t
    return Summaries(
        issue_hour=np.tile(hours, n_st),
        recent=recent.reshape(n, 25),
        clim_s=clim_s.reshape(n, 24),
        clim_n=clim_n.reshape(n, 24),
        base_s=base_s.reshape(n, 24),
        base_n=base_n.reshape(n, 24),
        cov_recent=cov_recent.reshape(n, 3, 4),
        cov_s=cov_s.reshape(n, 3),
        cov_n=cov_n.reshape(n, 3),
    )


def _latest(values: np.ndarray) -> np.ndarray:
    """Per row, the latest non-NaN of the last ``MAX_GAP_HOURS + 1`` columns (NaN if none)."""
    out = np.full(values.shape[0], math.nan)
    for k in range(MAX_GAP_HOURS, -1, -1):  # oldest first: later columns overwrite
        v = values[:, values.shape[1] - 1 - k]
        out = np.where(np.isnan(v), out, v)
    return out


def _mean(s: np.ndarray, n: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, s / np.maximum(n, 1), math.nan)


def _nanmean(a: np.ndarray) -> np.ndarray:
    ok = ~np.isnan(a)
    return _mean(np.where(ok, a, 0.0).sum(axis=1), ok.sum(axis=1))


def features_from_summaries(s: Summaries) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(ok, last, features, baselines)`` of every issue: ``ok`` (n,) is False where there is
    no recent last value (no forecast then); ``last`` (n,) is ``x_t``; ``features`` has shape
    ``(n, 24, len(FEATURES))`` and ``baselines`` ``(n, 24, 3)`` (last value, same hour
    yesterday, climatology) for leads 1 … 24."""
    n = len(s.issue_hour)
    t = s.issue_hour
    xt = _latest(s.recent)
    ok = ~np.isnan(xt)
    clim = _mean(s.clim_s, s.clim_n)  # (n, 24) by hour of day
    cm = _nanmean(clim)
    day = s.recent[:, 1:]  # t-23 … t
    has_day = (~np.isnan(day)).any(axis=1)
    m24 = _nanmean(day)
    hi = np.where(np.isnan(day), -np.inf, day).max(axis=1)
    lo = np.where(np.isnan(day), np.inf, day).min(axis=1)
    rng = np.where(has_day, hi - lo, math.nan)
    rows = np.arange(n)
    c_t = clim[rows, t % 24]
    leads = np.arange(1, LEADS + 1)
    tau_hod = (t[:, None] + leads[None, :]) % 24  # (n, 24)
    c_tau = clim[rows[:, None], tau_hod]
    syd = s.recent[:, 1:]  # x at t+L-24 for L = 1 … 24 is t-23 … t
    cov_now = np.stack([_latest(s.cov_recent[:, i, :]) for i in range(3)], axis=1)
    cov_anomaly = cov_now - _mean(s.cov_s, s.cov_n)
    xt_ = xt[:, None]
    common = [
        m24 - xt,
        xt - s.recent[:, 23],
        xt - s.recent[:, 21],
        xt - s.recent[:, 0],
        xt - c_t,
        rng,
        np.ones(n),
        m24 - cm,
    ]
    features = np.empty((n, LEADS, len(FEATURES)))
    features[:, :, 0] = _nz(syd - xt_)
    features[:, :, 1] = _nz(c_tau - c_t[:, None])
    for i, value in enumerate(common):
        features[:, :, 2 + i] = _nz(value)[:, None]
    features[:, :, 10] = _nz(c_tau - cm[:, None])
    features[:, :, 11] = _nz(cm - xt)[:, None]
    for i in range(3):
        features[:, :, 12 + i] = _nz(cov_anomaly[:, i])[:, None]
    base_clim = _mean(s.base_s, s.base_n)[rows[:, None], tau_hod]
    base = np.empty((n, LEADS, 3))
    base[:, :, 0] = xt_
    base[:, :, 1] = np.where(np.isnan(syd), xt_, syd)
    base[:, :, 2] = np.where(np.isnan(base_clim), xt_, base_clim)
    return ok, xt, features, base


# -- one series (tests, notebooks): the same functions on a dense array ----------------------


def _series_table(
    past: np.ndarray, issue_hour: int, covariates: Mapping[str, np.ndarray] | None
) -> Table:
    """The final-hours table of one station from dense arrays that all end at ``issue_hour``
    (of any lengths: an hour before an array's start is missing)."""
    arrays: dict[str, np.ndarray | None] = {"x": past}
    for name, key in zip(COVARIATES, ("dew", "slp", "wind"), strict=True):
        arrays[key] = (covariates or {}).get(name)
    m = max(len(a) for a in arrays.values() if a is not None)
    first = issue_hour - m + 1
    raw = {}
    for key, series in arrays.items():
        full = np.full(m, math.nan)
        if series is not None and len(series):
            full[m - len(series) :] = np.asarray(series, dtype=float)
        raw[key] = full[None, :]
    empty = Table(np.array(["S"]), np.array([], dtype=np.int64), {})
    return extend_table(empty, first, raw)


def _one(
    past: np.ndarray,
    issue_hour: int,
    clim_days: int,
    window_days: int,
    covariates: Mapping[str, np.ndarray] | None = None,
) -> tuple[bool, float, np.ndarray, np.ndarray]:
    table = _series_table(past, issue_hour, covariates)
    ok, xt, feats, base = features_from_summaries(
        issue_summaries(table, [issue_hour], clim_days, window_days)
    )
    return bool(ok[0]), float(xt[0]), feats[0], base[0]


def issue_features(
    past: np.ndarray,
    issue_hour: int,
    clim_days: int = 30,
    covariates: Mapping[str, np.ndarray] | None = None,
) -> np.ndarray | None:
    """Features for leads 1..24 issued at ``issue_hour`` (shape ``(24, len(FEATURES))``) of one
    station whose hourly means are ``past`` (``past[-1]`` is the issue hour, NaN = missing).

    ``covariates`` maps names of :data:`COVARIATES` to arrays that also end at the issue hour
    (any length; ``clim_days`` days suffice; a missing name or an all-NaN array makes its
    feature 0). None when there is no recent last value.
    """
    ok, _xt, feats, _base = _one(past, issue_hour, clim_days, clim_days, covariates)
    return feats if ok else None


def baselines(past: np.ndarray, issue_hour: int, window_days: int) -> np.ndarray | None:
    """The three baselines for leads 1..24, shape ``(24, 3)``: last value, same hour of the
    previous day (last value when that hour is missing), hour-of-day climatology of the last
    ``window_days`` days (last value where that hour was never seen)."""
    ok, _xt, _feats, base = _one(past, issue_hour, window_days, window_days)
    return base if ok else None


def lead_weights(coefficients: np.ndarray) -> np.ndarray:
    """The model's per-lead feature weights ``(24, len(FEATURES))`` from its coefficients over
    the crossed columns (knot-major: knot ``k``, feature ``f`` at ``k * len(FEATURES) + f``)."""
    w = np.asarray(coefficients, dtype=float).reshape(len(LEAD_KNOTS), len(FEATURES))
    basis = np.array([lead_basis(lead) for lead in range(1, LEADS + 1)])  # (24, knots)
    return basis @ w


def linear_forecasts(
    weights: np.ndarray, intercept: float, last: np.ndarray, features: np.ndarray
) -> np.ndarray:
    """Forecasts ``(n, 24)`` in °C: the last value plus the predicted change, with
    :func:`lead_weights` (the same numbers as the Spark ML pipeline's ``transform``)."""
    return last[:, None] + intercept + np.einsum("nlf,lf->nl", features, weights)


def lead_basis(lead: float) -> list[float]:
    """Piecewise-linear "hat" weights of ``lead`` on :data:`LEAD_KNOTS` (they sum to 1)."""
    weights = []
    for i, k in enumerate(LEAD_KNOTS):
        left = 1.0 if i == 0 else (lead - LEAD_KNOTS[i - 1]) / (k - LEAD_KNOTS[i - 1])
        last = i == len(LEAD_KNOTS) - 1
        right = 1.0 if last else (LEAD_KNOTS[i + 1] - lead) / (LEAD_KNOTS[i + 1] - k)
        weights.append(max(0.0, min(left, right)))
    return weights


# -- skill ------------------------------------------------------------------------------------


def skill(mae_model: float, mae_same_hour_yesterday: float) -> float | None:
    """:data:`SKILL_DEFINITION`; None when either MAE is unknown or the baseline's is 0."""
    value = float(skill_values(np.array(mae_model), np.array(mae_same_hour_yesterday)))
    return None if math.isnan(value) else round(value, 6)


def skill_values(mae_model: np.ndarray, mae_baseline: np.ndarray) -> np.ndarray:
    """:data:`SKILL_DEFINITION` element by element; NaN when either MAE is unknown or the
    baseline's is 0."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(mae_baseline == 0, math.nan, 1 - mae_model / mae_baseline)


def skill_document(
    key: str, sums: np.ndarray, counts: np.ndarray, updated_hour: int, model_version: int
) -> dict[str, object]:
    """The ``forecast-skill.v1`` value of ``key`` (a station or ``ALL``) from its error sums
    ``sums`` (``(len(PREDICTORS), 24)``: Σ|error| per predictor and lead) and ``counts``
    (``(24,)``: verified points per lead). NaN never appears: None instead."""
    sums, counts = np.asarray(sums, dtype=float), np.asarray(counts, dtype=float)
    return skill_documents([key], sums[None], counts[None], updated_hour, model_version)[0]


def skill_documents(
    keys: Sequence[str],
    sums: np.ndarray,
    counts: np.ndarray,
    updated_hour: int,
    model_version: int,
) -> list[dict[str, object]]:
    """:func:`skill_document` of many keys at once (``sums`` ``(k, 4, 24)``, ``counts``
    ``(k, 24)``), vectorized: the job builds one per station every hour."""
    total = counts.sum(axis=1)  # (k,)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_lead = np.where(
            counts[:, None, :] > 0, sums / np.maximum(counts, 1)[:, None, :], math.nan
        )
        overall = np.where(total[:, None] > 0, sums.sum(axis=2) / total[:, None], math.nan)
        values = np.concatenate([per_lead, overall[:, :, None]], axis=2)  # (k, 4, 25)
    skills = _nones(np.round(skill_values(values[:, 0], values[:, _BASELINE]), 6))  # (k, 25)
    maes = _nones(np.round(values.transpose(0, 2, 1), 6))  # (k, 25, 4)
    n = np.concatenate([counts, total[:, None]], axis=1).astype(np.int64).tolist()
    updated = format_epoch_hour(updated_hour)
    docs = []
    for j, key in enumerate(keys):
        entries = [
            {
                "n": n[j][i],
                "mae": dict(zip(PREDICTORS, maes[j][i], strict=True)),
                "skill": skills[j][i],
            }
            for i in range(LEADS + 1)
        ]
        docs.append(
            {
                "schema": SKILL_SCHEMA,
                "station_id": key,
                "updated_hour": updated,
                "model_version": model_version,
                "leads": [{"lead": lead, **entries[lead - 1]} for lead in range(1, LEADS + 1)],
                "overall": entries[LEADS],
            }
        )
    return docs


def _nones(values: np.ndarray) -> list:
    """``values.tolist()`` with None for NaN (any shape)."""
    out = values.astype(object)
    out[np.isnan(values)] = None
    return out.tolist()


@dataclass
class SkillBook:
    """Running mean absolute errors per key (a station or ``ALL``), lead and predictor, in
    memory (the tests' reference; the job keeps the same sums in a table)."""

    sums: dict[str, np.ndarray] = field(default_factory=dict)  # key → (4, 24) Σ|error|
    counts: dict[str, np.ndarray] = field(default_factory=dict)  # key → (24,) n

    def add(self, station: str, lead: int, actual: float, predictions: Iterable[float]) -> None:
        """One verified forecast point: ``predictions`` in :data:`PREDICTORS` order."""
        errors = np.abs(np.asarray(list(predictions), dtype=float) - actual)
        for key in (station, "ALL"):
            if key not in self.sums:
                self.sums[key] = np.zeros((len(PREDICTORS), LEADS))
                self.counts[key] = np.zeros(LEADS)
            self.sums[key][:, lead - 1] += errors
            self.counts[key][lead - 1] += 1

    def document(self, key: str, updated_hour: int, model_version: int) -> dict[str, object]:
        return skill_document(key, self.sums[key], self.counts[key], updated_hour, model_version)

    def to_json(self) -> dict[str, object]:
        return {k: {"sums": self.sums[k].tolist(), "n": self.counts[k].tolist()} for k in self.sums}

    @classmethod
    def from_json(cls, data: Mapping[str, Mapping[str, list]]) -> SkillBook:
        book = cls()
        for key, v in data.items():
            book.sums[key] = np.array(v["sums"], dtype=float)
            book.counts[key] = np.array(v["n"], dtype=float)
        return book
