"""Pure forecast transforms: features, baselines and skill, on plain numpy series (no Spark).

A station's history is a dense array of hourly means ``past`` whose **last element is the
issue hour** ``t`` (``past[-1-k]`` is hour ``t - k``, NaN where the hour is missing), and
likewise one array per covariate (:data:`COVARIATES`: the hourly means of dew point,
sea-level pressure and wind speed), each ending at ``t``. Every function here receives only
those arrays, so a feature cannot see a value after ``t``: the absence of leakage holds by
construction, and the unit tests check it by perturbing the future anyway.

Hours are integers: hours since the Unix epoch (``hour % 24`` is the UTC hour of day).

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
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

__all__ = [
    "COVARIATES",
    "FEATURES",
    "FORECAST_SCHEMA",
    "LEADS",
    "LEAD_KNOTS",
    "MAX_GAP_HOURS",
    "PREDICTORS",
    "SKILL_SCHEMA",
    "SkillBook",
    "baselines",
    "dense_past",
    "hour_index",
    "hour_str",
    "issue_features",
    "last_value",
    "lead_basis",
]

#: Schema ids of the forecast job's output values (forecasts, forecast skill).
FORECAST_SCHEMA = "forecast.v1"
SKILL_SCHEMA = "forecast-skill.v1"

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
#: The model and the three baselines, in the order of the skill documents.
PREDICTORS = ("model", "last_value", "same_hour_yesterday", "climatology")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def hour_index(value: str | datetime) -> int:
    """``"2013-01-01T05:00:00Z"`` or an aware datetime → hours since the epoch (truncated)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: UTC-aware only")
    return int((value - _EPOCH).total_seconds() // 3600)


def hour_str(hour: int) -> str:
    """Hours since the epoch → ``"YYYY-MM-DDTHH:MM:SSZ"``."""
    return (_EPOCH + timedelta(hours=hour)).strftime("%Y-%m-%dT%H:%M:%SZ")


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


def _at(past: np.ndarray, issue_hour: int, hour: int) -> float:
    k = issue_hour - hour
    if k < 0:
        raise ValueError("a feature asked for a value after the issue hour")
    return float(past[-1 - k]) if k < len(past) else math.nan


def _clim(past: np.ndarray, issue_hour: int, days: int) -> np.ndarray:
    """Mean per UTC hour-of-day over the last ``days`` days (NaN where never seen)."""
    n = min(days * 24, len(past))
    window = past[len(past) - n :]
    hours = (np.arange(issue_hour - n + 1, issue_hour + 1)) % 24
    sums = np.zeros(24)
    counts = np.zeros(24)
    ok = ~np.isnan(window)
    np.add.at(sums, hours[ok], window[ok])
    np.add.at(counts, hours[ok], 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), math.nan)


def _nz(v: float) -> float:
    return 0.0 if math.isnan(v) else v


def _anomaly(series: np.ndarray | None, days: int) -> float:
    """The latest value (at most ``MAX_GAP_HOURS`` old) − the mean of the last ``days`` days;
    NaN for a missing or empty series."""
    if series is None or not len(series):
        return math.nan
    now = last_value(series)
    window = series[-days * 24 :]
    if now is None or not np.any(~np.isnan(window)):
        return math.nan
    return now - float(np.nanmean(window))


def _covariate_anomalies(
    past: np.ndarray, covariates: Mapping[str, np.ndarray] | None, days: int
) -> list[float]:
    """``dpd_anomaly``, ``slp_anomaly``, ``wind_anomaly`` (NaN where the input is missing)."""
    covariates = covariates or {}
    dew, slp, wind = (covariates.get(name) for name in COVARIATES)
    dpd = None
    if dew is not None:
        n = min(len(dew), len(past))  # both end at the issue hour
        dpd = past[len(past) - n :] - dew[len(dew) - n :]
    return [_anomaly(dpd, days), _anomaly(slp, days), _anomaly(wind, days)]


def issue_features(
    past: np.ndarray,
    issue_hour: int,
    clim_days: int = 30,
    covariates: Mapping[str, np.ndarray] | None = None,
) -> np.ndarray | None:
    """Features for leads 1..24 issued at ``issue_hour`` (shape ``(24, len(FEATURES))``).

    ``past[-1]`` is the issue hour; ``covariates`` maps names of :data:`COVARIATES` to
    arrays that also end at the issue hour (any length; ``clim_days`` days suffice; a
    missing name or an all-NaN array makes its feature 0). None when there is no recent
    last value.
    """
    xt = last_value(past)
    if xt is None:
        return None
    clim = _clim(past, issue_hour, clim_days)
    cm = float(np.nanmean(clim)) if np.any(~np.isnan(clim)) else math.nan
    day = past[-24:]
    has_day = np.any(~np.isnan(day))
    m24 = float(np.nanmean(day)) if has_day else math.nan
    rng = float(np.nanmax(day) - np.nanmin(day)) if has_day else math.nan
    t = issue_hour
    c_t = clim[t % 24]
    common = [
        _nz(m24 - xt),
        _nz(xt - _at(past, t, t - 1)),
        _nz(xt - _at(past, t, t - 3)),
        _nz(xt - _at(past, t, t - 24)),
        _nz(xt - c_t),
        _nz(rng),
        1.0,
        _nz(m24 - cm),
    ]
    extra = [_nz(v) for v in _covariate_anomalies(past, covariates, clim_days)]
    rows = np.empty((LEADS, len(FEATURES)))
    for lead in range(1, LEADS + 1):
        tau = t + lead
        c_tau = clim[tau % 24]
        rows[lead - 1] = [
            _nz(_at(past, t, tau - 24) - xt),
            _nz(c_tau - c_t),
            *common,
            _nz(c_tau - cm),
            _nz(cm - xt),
            *extra,
        ]
    return rows


def baselines(past: np.ndarray, issue_hour: int, window_days: int) -> np.ndarray | None:
    """The three baselines for leads 1..24, shape ``(24, 3)``: last value, same hour of the
    previous day (last value when that hour is missing), hour-of-day climatology of the last
    ``window_days`` days (last value where that hour was never seen)."""
    xt = last_value(past)
    if xt is None:
        return None
    clim = _clim(past, issue_hour, window_days)
    out = np.empty((LEADS, 3))
    for lead in range(1, LEADS + 1):
        tau = issue_hour + lead
        syd = _at(past, issue_hour, tau - 24)
        c = clim[tau % 24]
        out[lead - 1] = [xt, xt if math.isnan(syd) else syd, xt if math.isnan(c) else c]
    return out


def lead_basis(lead: float) -> list[float]:
    """Piecewise-linear "hat" weights of ``lead`` on :data:`LEAD_KNOTS` (they sum to 1)."""
    weights = []
    for i, k in enumerate(LEAD_KNOTS):
        left = 1.0 if i == 0 else (lead - LEAD_KNOTS[i - 1]) / (k - LEAD_KNOTS[i - 1])
        last = i == len(LEAD_KNOTS) - 1
        right = 1.0 if last else (LEAD_KNOTS[i + 1] - lead) / (LEAD_KNOTS[i + 1] - k)
        weights.append(max(0.0, min(left, right)))
    return weights


@dataclass
class SkillBook:
    """Running mean absolute errors per key (a station or ``ALL``), lead and predictor."""

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

    def mae(self, key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(mae per lead (4, 24), n per lead, overall mae (4,), overall n)``; NaN if n = 0."""
        s, n = self.sums[key], self.counts[key]
        with np.errstate(invalid="ignore", divide="ignore"):
            per_lead = np.where(n > 0, s / np.maximum(n, 1), math.nan)
            overall = s.sum(axis=1) / n.sum() if n.sum() else np.full(len(PREDICTORS), math.nan)
        return per_lead, n, overall, n.sum()

    def document(self, key: str, updated_hour: int, model_version: int) -> dict[str, object]:
        """The ``forecast-skill.v1`` value for ``key`` (NaN never appears: None instead)."""
        per_lead, n, overall, total = self.mae(key)
        leads = [
            {
                "lead": lead,
                "n": int(n[lead - 1]),
                "mae": _maes(per_lead[:, lead - 1]),
                "skill": _skill(per_lead[:, lead - 1]),
            }
            for lead in range(1, LEADS + 1)
        ]
        return {
            "schema": SKILL_SCHEMA,
            "station_id": key,
            "updated_hour": hour_str(updated_hour),
            "model_version": model_version,
            "leads": leads,
            "overall": {"n": int(total), "mae": _maes(overall), "skill": _skill(overall)},
        }

    def to_json(self) -> dict[str, object]:
        return {k: {"sums": self.sums[k].tolist(), "n": self.counts[k].tolist()} for k in self.sums}

    @classmethod
    def from_json(cls, data: Mapping[str, Mapping[str, list]]) -> SkillBook:
        book = cls()
        for key, v in data.items():
            book.sums[key] = np.array(v["sums"], dtype=float)
            book.counts[key] = np.array(v["n"], dtype=float)
        return book


def _clean(v: float) -> float | None:
    return None if math.isnan(v) else round(float(v), 6)


def _maes(values: np.ndarray) -> dict[str, float | None]:
    return {p: _clean(v) for p, v in zip(PREDICTORS, values, strict=True)}


def _skill(values: np.ndarray) -> float | None:
    """1 − MAE(model) / MAE(same hour yesterday)."""
    model, syd = values[0], values[2]
    if math.isnan(model) or math.isnan(syd) or syd == 0:
        return None
    return round(float(1 - model / syd), 6)
