"""The forecast engine: event-time walk over final hours — verify, retrain, issue.

The same engine runs inside the streaming job (``moaa forecast``, fed from Kafka) and in the
walk-forward benchmark (``bench/forecast_skill.py``, fed from the DuckDB ground truth), so
the published skill table measures exactly the job's code.

For every hour ``h`` that became final, in order:

1. **verify** — each stored forecast whose target is ``h`` is compared with the actual mean
   of ``h`` (model and the three baselines), into the :class:`SkillBook`;
2. **retrain** when due — the first model once ``min_history_days`` of history exist, then
   whenever ``retrain_every_hours`` have passed since the last model's data ended (event
   time, not wall time). Training rows are the issues of the last ``window_days`` days whose
   targets are already known (up to ``h``);
3. **issue** — for every station whose latest value is at most 3 h old, features at ``h``
   → 24 forecasts with the latest model (none before the first model exists).

Spark calls are batched: issues wait until the next retrain or the end of :meth:`advance`,
then one ``transform`` scores them all; verification is deferred likewise (an issue at
``h`` is only verified at ``h + 1`` or later, so it has been scored by then).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pyspark.sql import SparkSession

from moaa.streaming.forecast_features import (
    COVARIATES,
    FEATURES,
    FORECAST_SCHEMA,
    LEAD_KNOTS,
    LEADS,
    SkillBook,
    baselines,
    dense_past,
    hour_str,
    issue_features,
    last_value,
)
from moaa.streaming.forecast_model import ModelStore, StoredModel, predict, rows_frame, train

__all__ = ["EngineConfig", "EngineOutput", "ForecastEngine"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineConfig:
    window_days: int = 60
    clim_days: int = 30
    retrain_every_hours: int = 24
    min_history_days: float = 14
    reg_param: float = 1e-3

    @property
    def span_hours(self) -> int:
        """History one issue needs (features and the climatology baseline)."""
        return max(self.window_days, self.clim_days) * 24 + 48


@dataclass
class EngineOutput:
    forecasts: list[dict[str, Any]] = field(default_factory=list)
    skill_keys: set[str] = field(default_factory=set)
    trained: list[StoredModel] = field(default_factory=list)


@dataclass
class _Issue:
    station: str
    hour: int
    last: float
    features: np.ndarray  # (24, F)
    baselines: np.ndarray  # (24, 3)


class ForecastEngine:
    """Holds the history, the latest model, pending forecasts and the skill book."""

    def __init__(
        self,
        spark: SparkSession,
        config: EngineConfig,
        store: ModelStore,
        on_train: Callable[[StoredModel, float], None] | None = None,
    ) -> None:
        self.spark = spark
        self.config = config
        self.store = store
        self.on_train = on_train
        self.history: dict[str, dict[int, float]] = {}
        # station → covariate (COVARIATES) → hour → hourly mean (absent hours: missing)
        self.covariates: dict[str, dict[str, dict[int, float]]] = {}
        self.meta: dict[str, dict[str, Any]] = {}
        self.model: StoredModel | None = store.latest()
        self.skill = SkillBook()
        self.last_final: int | None = None
        self.first_hour: int | None = None
        # (station, issue hour) → (24, 4) model, last value, same hour yesterday, climatology
        self.pending: dict[tuple[str, int], np.ndarray] = {}
        self._features: dict[tuple[str, int], tuple[float, np.ndarray] | None] = {}
        self._unscored: list[_Issue] = []
        self._unverified: list[tuple[str, int, float]] = []

    # -- input ------------------------------------------------------------------------------

    def observe(
        self,
        station: str,
        hour: int,
        mean_c: float,
        meta: dict[str, Any],
        covariates: Mapping[str, float | None] | None = None,
    ) -> None:
        """One hourly mean, with the hour's covariate means when known (names of
        :data:`COVARIATES`; None or absent = missing). A later value for the same hour
        replaces the earlier one, covariates included."""
        self.history.setdefault(station, {})[hour] = mean_c
        series = self.covariates.setdefault(station, {name: {} for name in COVARIATES})
        for name in COVARIATES:
            value = (covariates or {}).get(name)
            if value is None or math.isnan(value):
                series[name].pop(hour, None)
            else:
                series[name][hour] = float(value)
        if meta:
            self.meta[station] = meta
        if self.first_hour is None or hour < self.first_hour:
            self.first_hour = hour
        self._features.pop((station, hour), None)

    def newest_hour(self) -> int | None:
        return max((max(v) for v in self.history.values() if v), default=None)

    # -- the walk ---------------------------------------------------------------------------

    def advance(self, final_through: int) -> EngineOutput:
        """Process every hour up to ``final_through`` not processed yet."""
        out = EngineOutput()
        if self.first_hour is None:
            return out
        start = self.first_hour if self.last_final is None else self.last_final + 1
        for hour in range(start, final_through + 1):
            for station, values in self.history.items():
                actual = values.get(hour)
                if actual is not None:
                    self._unverified.append((station, hour, actual))
            if self._retrain_due(hour):
                self._flush(out)
                self._retrain(hour, out)
            self._issue(hour)
            self.last_final = hour
        self._flush(out)
        self._trim()
        return out

    def _retrain_due(self, hour: int) -> bool:
        if self.model is None:
            first = hour if self.first_hour is None else self.first_hour
            return hour - first >= self.config.min_history_days * 24
        through = self.model.metadata.get("trained_through_hour", -1)
        return hour - int(through) >= self.config.retrain_every_hours

    def _row(self, station: str, hour: int) -> tuple[float, np.ndarray] | None:
        key = (station, hour)
        if key not in self._features:
            past = dense_past(self.history[station], hour, self.config.span_hours)
            hours = self.config.clim_days * 24
            covariates = {
                name: dense_past(values, hour, hours)
                for name, values in self.covariates.get(station, {}).items()
            }
            feats = issue_features(past, hour, self.config.clim_days, covariates)
            xt = last_value(past)
            self._features[key] = None if feats is None or xt is None else (xt, feats)
        return self._features[key]

    def _retrain(self, hour: int, out: EngineOutput) -> None:
        started = time.perf_counter()
        first_issue = hour - self.config.window_days * 24 + 1
        stations, issues, lasts, feats, labels = [], [], [], [], []
        for station, values in self.history.items():
            for t in range(max(first_issue, self.first_hour or first_issue), hour):
                row = self._row(station, t)
                if row is None:
                    continue
                xt, f = row
                y = np.array(
                    [
                        values.get(t + lead, math.nan) - xt if t + lead <= hour else math.nan
                        for lead in range(1, LEADS + 1)
                    ]
                )
                if np.all(np.isnan(y)):
                    continue
                stations.append(station)
                issues.append(t)
                lasts.append(xt)
                feats.append(f)
                labels.append(y)
        if not stations:
            return
        frame = rows_frame(self.spark, stations, issues, lasts, np.array(feats), np.array(labels))
        model, errors = train(frame, self.config.reg_param)
        stored = self.store.save(
            model,
            {
                "trained_through_hour": hour,
                "trained_through": hour_str(hour),
                "window_days": self.config.window_days,
                "window_start": hour_str(max(first_issue, self.first_hour or first_issue)),
                "window_end": hour_str(hour),
                "clim_days": self.config.clim_days,
                "features": list(FEATURES),
                "lead_knots": list(LEAD_KNOTS),
                "stations": len(set(stations)),
                **errors,
            },
        )
        self.model = stored
        out.trained.append(stored)
        if self.on_train:
            self.on_train(stored, time.perf_counter() - started)

    def _issue(self, hour: int) -> None:
        if self.model is None:
            return
        for station, values in self.history.items():
            row = self._row(station, hour)
            if row is None:
                continue
            past = dense_past(values, hour, self.config.span_hours)
            base = baselines(past, hour, self.config.window_days)
            if base is None:  # never: a row exists only with a recent last value
                continue
            self._unscored.append(_Issue(station, hour, row[0], row[1], base))

    def _flush(self, out: EngineOutput) -> None:
        if self._unscored and self.model is not None:
            issues = self._unscored
            frame = rows_frame(
                self.spark,
                [i.station for i in issues],
                [i.hour for i in issues],
                [i.last for i in issues],
                np.array([i.features for i in issues]),
            )
            values: dict[tuple[str, int], np.ndarray] = {}
            for station, hour, lead, value in predict(self.model.model, frame):
                values.setdefault((station, hour), np.full(LEADS, math.nan))[lead - 1] = value
            for issue in issues:
                model = values[(issue.station, issue.hour)]
                self.pending[(issue.station, issue.hour)] = np.column_stack(
                    [model, issue.baselines]
                )
                out.forecasts.append(self._document(issue.station, issue.hour, model))
        self._unscored = []
        for station, hour, actual in self._unverified:
            for lead in range(1, LEADS + 1):
                preds = self.pending.get((station, hour - lead))
                if preds is not None:
                    self.skill.add(station, lead, actual, preds[lead - 1])
                    out.skill_keys.update((station, "ALL"))
        self._unverified = []

    def _document(self, station: str, hour: int, model: np.ndarray) -> dict[str, Any]:
        return {
            "schema": FORECAST_SCHEMA,
            "station_id": station,
            "issued_at": hour_str(hour),
            "model_version": self.model.version if self.model else 0,
            "points": [
                {
                    "lead": lead,
                    "target_hour": hour_str(hour + lead),
                    "value": round(float(model[lead - 1]), 3),
                }
                for lead in range(1, LEADS + 1)
            ],
            **{k: v for k, v in self.meta.get(station, {}).items() if k == "name"},
        }

    def _trim(self) -> None:
        if self.last_final is None:
            return
        keep_from = self.last_final - self.config.span_hours - LEADS
        series = [*self.history.values()]
        series += [v for named in self.covariates.values() for v in named.values()]
        for values in series:
            for h in [h for h in values if h < keep_from]:
                del values[h]
        self.pending = {k: v for k, v in self.pending.items() if k[1] >= self.last_final - LEADS}
        first_issue = self.last_final - self.config.window_days * 24
        self._features = {k: v for k, v in self._features.items() if k[1] >= first_issue}

    # -- persistence (the job's state.json) ---------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "last_final": self.last_final,
            "first_hour": self.first_hour,
            "skill": self.skill.to_json(),
            "pending": [[s, h, v.tolist()] for (s, h), v in self.pending.items()],
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.last_final = state.get("last_final")
        first = state.get("first_hour")
        if first is not None and (self.first_hour is None or first < self.first_hour):
            self.first_hour = first
        self.skill = SkillBook.from_json(state.get("skill", {}))
        self.pending = {
            (s, int(h)): np.array(v, dtype=float) for s, h, v in state.get("pending", [])
        }
