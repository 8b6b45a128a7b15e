"""The forecast engine: an event-time walk over final hours, as distributed Spark work.

The same engine runs inside the streaming job (``moaa forecast``, fed from Kafka) and in the
walk-forward benchmark (``bench/forecast_skill.py``), so the published skill table measures
exactly the job's code. Everything that grows with stations × hours lives in the tables of
:mod:`moaa.streaming.forecast_store` and is computed by Spark; the driver holds a few numbers
(:class:`~moaa.streaming.forecast_store.EngineState`), the latest model and the error sums of
``ALL`` (24 leads × 4 predictors).

:meth:`ForecastEngine.advance` processes the hours that became final in **steps** of up to
``step_station_hours`` station-hours and ``max_step_hours`` hours (a backlog after a restart
or at a fast tick is caught up in bulk, not one Spark job per hour). A step ``a … b`` is
**one pass** of a grouped pandas UDF over buckets of stations (:func:`_step_group`), which
reads the few table rows it needs and, with the pure functions of
:mod:`moaa.streaming.forecast_features`:

1. **finalizes** the hours: the latest hourly means become rows of the final-hours table, for
   every station ever seen (:func:`~moaa.streaming.forecast_features.extend_table`);
2. computes every station's **features** and baselines at every hour of the step that has a
   recent value, and keeps a deterministic sample of them as training candidates (at most
   ``train_max_rows`` rows per training window);
3. **issues** forecasts with the latest model (its coefficients: the Spark ML pipeline's own
   numbers, see :func:`~moaa.streaming.forecast_features.linear_forecasts`);
4. **verifies** every issue whose last target hour (issue hour + 24) is in the step (the
   pending ones of earlier steps and the step's own) against the actual means at its 24
   target hours, for the model and the three baselines, and updates the error sums per
   station and lead. An issue is one row (its 4 × 24 values), written once and read once;
   the error sums are one row per station (arrays over the leads).

Its output (table rows, pending forecasts, candidates, error sums, documents) is written by a
few Spark jobs, and ``state.json`` records the step. **Retraining** (the first model once
``min_history_days`` of history exist, then whenever ``retrain_every_hours`` have passed since
the last model's data ended, in event time) happens between steps: a step ends at a retrain
hour ``r``, the model is trained on the candidates of the last ``window_days`` days with
labels up to ``r`` (Spark ML), and the step's issues at ``r`` are scored with it by one
``transform``. A crash replays the step from its start: every write of a step replaces that
step's directories, and the published keys are idempotent.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import msgspec
import numpy as np
import pandas as pd
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import (
    ArrayType,
    DoubleType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
)

from moaa.common.hours import SPARK_HOUR_FORMAT, format_epoch_hour
from moaa.common.records import FORECAST_SCHEMA
from moaa.streaming.forecast_features import (
    CUM_FIELDS,
    FEATURES,
    LEAD_KNOTS,
    LEADS,
    PREDICTORS,
    RAW_FIELDS,
    Table,
    extend_table,
    features_from_summaries,
    issue_summaries,
    lead_weights,
    linear_forecasts,
    needed_hours,
    skill_document,
    skill_documents,
)
from moaa.streaming.forecast_model import ModelStore, StoredModel, coefficients, score, train
from moaa.streaming.forecast_store import (
    CANDIDATE_SCHEMA,
    HOURS_SCHEMA,
    SKILL_TABLE_SCHEMA,
    EngineState,
    ForecastStore,
    IncomingBatch,
)

__all__ = [
    "TRAINING_POOL",
    "EngineConfig",
    "ForecastEngine",
    "ForecastSink",
    "StepResult",
]

log = logging.getLogger(__name__)

_D, _L, _S = DoubleType(), LongType(), StringType()


def _columns(names: Iterable[str]) -> str:
    """SQL select items: the columns ``names``, quoted."""
    return ", ".join(f"`{name}`" for name in names)


_P = [f"v_{p}" for p in PREDICTORS]  # baselines (deferred issues) or Σ|error| (totals)
_ARRAY = ArrayType(_D)
#: Everything a step's pass writes, one ``kind`` per output.
_OUT_SCHEMA = StructType(
    [
        StructField("kind", _S),
        StructField("station_id", _S),
        StructField("hour", _L),
        StructField("name", _S),
        *(StructField(c, _D) for c in (*RAW_FIELDS, *CUM_FIELDS)),
        StructField("lead", IntegerType()),
        *(StructField(c, _D) for c in _P),
        StructField("n", _D),
        StructField("last_c", _D),
        *(StructField(f"f_{name}", _D) for name in FEATURES),
        StructField("key", _S),
        StructField("value", _S),
        StructField("values", _ARRAY),  # pending issues and error sums, as the pass reads them
    ]
)
_TEXT = [f.name for f in _OUT_SCHEMA.fields if isinstance(f.dataType, StringType)]
#: Where an incoming mean came from: of several for one station and hour, the last counts.
_ARRIVAL = ("batch_id", "partition", "offset")
#: The rows of a step's pass (SQL): the final-hours table's, then the incoming means'.
_HOURS_COLUMNS = _columns(f.name for f in HOURS_SCHEMA.fields)
_NEW_COLUMNS = ", ".join(
    [
        _columns(("station_id", "hour", "name", *RAW_FIELDS)),
        *(f"CAST(NULL AS DOUBLE) AS `{c}`" for c in CUM_FIELDS),
    ]
)
_ARRIVAL_COLUMNS = ", ".join(f"CAST(`{c}` AS BIGINT) AS `{c}`" for c in _ARRIVAL)
_NO_ARRIVAL = ", ".join(f"CAST(NULL AS BIGINT) AS `{c}`" for c in _ARRIVAL)
#: The Spark scheduler pool of background trainings (see ``EngineConfig.train_in_background``).
TRAINING_POOL = "training"


@dataclass(frozen=True)
class EngineConfig:
    window_days: int = 60
    clim_days: int = 30
    retrain_every_hours: int = 24
    min_history_days: float = 14
    reg_param: float = 1e-3
    #: Most station-hours processed by one step: a backlog is caught up in steps of this
    #: many divided by the stations (48 hours at 14,000 stations), at most ``max_step_hours``.
    #: A step's memory and tasks grow with its station-hours; its fixed costs (a few seconds
    #: of Spark jobs) do not, so a few stations catch up in long steps.
    step_station_hours: int = 672_000
    #: Most final hours processed by one step, whatever the stations.
    max_step_hours: int = 336
    #: Most training rows (issues × leads) in one training window: issues are sampled above.
    train_max_rows: int = 2_000_000
    #: Groups of stations of the step's pass (each is one task's share of the stations).
    buckets: int = 8
    #: Per-station skill documents are published every this many final hours (``ALL`` on
    #: every step): at 14,000 stations they are 14,000 upserts each time.
    station_skill_every_hours: int = 1
    #: Train beside issuing (the job): a due training runs in a background thread (Spark
    #: pool ``training``) while the steps go on with the current model, and the new model is
    #: used from the first step after the training ends. Off (the walk-forward benchmark,
    #: the tests), a step ends at the retrain hour and waits for the new model, which then
    #: scores that hour's issues: the result does not depend on how long a training takes.
    train_in_background: bool = False

    @property
    def keep_hours(self) -> int:
        """Hours of the final-hours table that features and labels read back."""
        return max(self.window_days, self.clim_days) * 24 + 48


class ForecastSink(Protocol):
    """Where a step's documents go: DataFrames of ``key`` and ``value`` (JSON) strings, the
    forecasts and the skill documents (either may be None: none in the step), published
    together (one Spark job: a step's fixed cost is its jobs)."""

    def publish(self, forecasts: DataFrame | None, skill: DataFrame | None) -> None: ...


@dataclass
class StepResult:
    first: int
    last: int
    forecasts: int = 0
    stations: int = 0  # stations in the final-hours table
    trained: list[StoredModel] = field(default_factory=list)
    skill_all: dict[str, Any] | None = None  # the ALL skill document, when it changed
    skill_keys: int = 0
    seconds: float = 0.0
    latest_issue: int | None = None
    phases: dict[str, float] = field(default_factory=dict)  # seconds per phase of the step

    def timed(self, phase: str, started: float) -> float:
        now = time.perf_counter()
        self.phases[phase] = round(self.phases.get(phase, 0.0) + now - started, 3)
        return now


def _bucket(buckets: int) -> str:
    """SQL: a station's group of the step's pass."""
    return f"pmod(hash(station_id), {int(buckets)})"


def _sql(query: str, args: dict[str, Any] | None = None, **frames: DataFrame) -> DataFrame:
    """A DataFrame from SQL text over ``frames`` (``{name}`` in ``query``) with named
    parameters ``args`` (``:name``). A step builds its plans from SQL text: a ``select`` of
    named columns through the DataFrame API costs the driver a few calls to the JVM per
    column (a step's plans are hundreds of columns), a SQL string one call."""
    session = next(iter(frames.values())).sparkSession
    return session.sql(query, args, **frames)


#: SQL: a deterministic number in [0, 1) per station and issue hour (a training subset).
_ISSUE_DRAW = "(abs(xxhash64(station_id, issue_hour)) % 1000000) / 1000000"


@dataclass(frozen=True)
class _Pass:
    """What a step's pass needs besides its rows (shipped to the tasks)."""

    first: int
    last: int
    clim_days: int
    window_days: int
    weights: np.ndarray | None  # lead_weights of the model, None before the first model
    intercept: float
    version: int
    defer_last: bool  # the last hour is a retrain hour: its issues wait for the new model
    sample_rate: float
    station_skill: bool  # publish the per-station skill documents of this step


class ForecastEngine:
    """The walk over final hours (see the module's docstring); state under ``root``."""

    def __init__(
        self,
        spark: SparkSession,
        config: EngineConfig,
        root: Path,
        sink: ForecastSink | None = None,
        on_train: Callable[[StoredModel, float], None] | None = None,
    ) -> None:
        self.spark = spark
        self.config = config
        self.root = root
        self.sink = sink
        self.on_train = on_train
        self.store = ForecastStore(spark, root)
        self.models = ModelStore(root / "models")
        self.state = EngineState.load(self.store.state_path)
        # A step a crash interrupted is done again from its start: drop what it wrote.
        self.store.discard_after(self.state.last_final)
        self.store.drop_versions(self.store.train_dir, [self.state.train_version])
        self.store.drop_versions(self.store.skill_dir, [self.state.skill_version])
        self.models.discard_trained_after(self.state.last_final)
        self.model: StoredModel | None = self.models.latest()
        self._trainer: ThreadPoolExecutor | None = None
        self._training: tuple[int, Future[tuple[StoredModel | None, float]]] | None = None
        self._first_stations: int | None = None  # see _stations

    # -- input ------------------------------------------------------------------------------

    def ingest(self, rows: DataFrame, figures: IncomingBatch | None = None) -> IncomingBatch:
        """Append hourly means (columns of
        :data:`~moaa.streaming.forecast_store.INCOMING_SCHEMA`, ``hour`` in hours since the
        epoch; ``figures``: theirs, if the caller counted them with
        :meth:`~moaa.streaming.forecast_store.IncomingBatch.aggregates`). A mean for an hour
        already final is ignored (and counted in ``late``)."""
        info = self.store.append_incoming(rows, self.state.last_final, figures)
        s = self.state
        before = (s.clock, s.first_hour)
        if info.newest is not None and info.rows > info.late:
            s.clock = info.newest if s.clock is None else max(s.clock, info.newest)
            if s.last_final is None:
                oldest = info.oldest
                s.first_hour = oldest if s.first_hour is None else min(s.first_hour, oldest)
        if (s.clock, s.first_hour) != before:
            # kept before Spark commits the batch: its means are not read again after a
            # restart, and the first hour (where the walk and the first model's schedule
            # start) must not move to a later batch's oldest hour
            s.save(self.store.state_path)
        return info

    def note_marks(self, marks: dict[int, int], partitions: int) -> None:
        """Record the stats job's progress marks read (partition → newest marked hour; see
        :class:`~moaa.common.records.StatsProgress`), kept in ``state.json`` at once: after a
        restart the job knows how far its input is complete without a new mark."""
        if self.state.note_marks(marks, partitions):
            self.state.save(self.store.state_path)

    @property
    def complete_through(self) -> int | None:
        """The newest hour whose micro-batch's hourly means are all read (every partition
        of the input has a mark of it or later); None before that is known."""
        return self.state.marked_through

    @property
    def lag_hours(self) -> int | None:
        """Hours between the newest hour seen and the last final hour processed."""
        s = self.state
        if s.clock is None:
            return None
        done = s.last_final if s.last_final is not None else (s.first_hour or s.clock) - 1
        return s.clock - done

    # -- the walk ---------------------------------------------------------------------------

    def advance(self, final_through: int) -> Iterator[StepResult]:
        """Process every hour up to ``final_through`` not processed yet, step by step (each
        step is committed to ``state.json`` before the next one starts)."""
        s = self.state
        start = s.first_hour if s.last_final is None else s.last_final + 1
        if start is None:
            return
        while start <= final_through:
            adopted = self.tend()
            last = min(final_through, start + self.step_hours(start) - 1)
            retrain = self._next_retrain(start, last)
            # the first model is waited for even beside issuing: there is nothing to issue
            # without one, and the hours after its retrain hour would never be forecast
            if self.config.train_in_background and (self.model is not None or retrain is None):
                result = self._step(start, last, None)
                if retrain is not None:
                    self._start_training(retrain)
            else:
                last = retrain if retrain is not None else last
                result = self._step(start, last, retrain)
            result.trained[:0] = adopted
            yield result
            start = last + 1

    def step_hours(self, start: int) -> int:
        """Final hours of the step starting at ``start``: ``step_station_hours`` over the
        stations (those of the final-hours table; before the first step, the stations of the
        means of the longest step from ``start``), between 1 and ``max_step_hours``."""
        cfg = self.config
        return max(1, min(cfg.max_step_hours, cfg.step_station_hours // self._stations(start)))

    def _stations(self, start: int) -> int:
        if self.state.stations:
            return self.state.stations
        if self._first_stations is None:  # one Spark job, before the first step only
            incoming = self.store.read_incoming(start, start + self.config.max_step_hours - 1)
            self._first_stations = incoming.select("station_id").distinct().count()
        return max(self._first_stations, 1)

    def tend(self) -> list[StoredModel]:
        """Between steps, in background mode: use the model of a training that has ended, and
        start the next training if it is already due at the last final hour. The job calls it
        every few seconds too, so a model finished after the latest data is used, and the next
        training starts, without waiting for more data."""
        adopted = self._adopt_finished_training()
        last = self.state.last_final
        if self.config.train_in_background and last is not None:
            due = self._next_retrain(last, last)
            if due is not None:
                self._start_training(due)
        return adopted

    @property
    def training_hour(self) -> int | None:
        """The retrain hour of the training running in the background, if one is."""
        return self._training[0] if self._training is not None else None

    def wait_for_training(self, timeout: float | None = None) -> list[StoredModel]:
        """Wait for a background training to end and use its model (the tests: a swap at a
        known step)."""
        if self._training is not None:
            wait([self._training[1]], timeout)
        return self._adopt_finished_training()

    def close(self) -> None:
        """Stop the trainer thread without waiting: a training still running ends with the
        Spark session (its model is not saved, and it is trained again after a restart)."""
        if self._trainer is not None:
            self._trainer.shutdown(wait=False, cancel_futures=True)
            self._trainer = None

    def _start_training(self, hour: int) -> None:
        if self._trainer is None:
            self._trainer = ThreadPoolExecutor(1, thread_name_prefix="forecast-training")
        log.info("training for %s started beside issuing", format_epoch_hour(hour))
        self._training = (hour, self._trainer.submit(self._train_in_pool, hour))

    def _train_in_pool(self, hour: int) -> tuple[StoredModel | None, float]:
        self.spark.sparkContext.setLocalProperty("spark.scheduler.pool", TRAINING_POOL)
        try:
            return self._train(hour)
        finally:
            # pyspark types the value as str, but None is what clears a local property
            self.spark.sparkContext.setLocalProperty("spark.scheduler.pool", None)  # type: ignore[arg-type]

    def _adopt_finished_training(self) -> list[StoredModel]:
        """Use the model of a background training that has ended (its error is raised: a
        training that fails ends the job, loudly)."""
        if self._training is None or not self._training[1].done():
            return []
        hour, future = self._training
        self._training = None
        stored, seconds = future.result()
        self._adopt(hour, stored, seconds)
        return [stored] if stored is not None else []

    def _next_retrain(self, first: int, last: int) -> int | None:
        """The first hour of ``first … last`` at which a training is due, if any."""
        cfg = self.config
        if self._training is not None:  # one is running: the next is due after it
            return None
        if self.model is None:
            origin = self.state.first_hour if self.state.first_hour is not None else first
            due = origin + math.ceil(cfg.min_history_days * 24)
        else:
            due = int(self.model.metadata.get("trained_through_hour", -1)) + cfg.retrain_every_hours
        hour = max(first, due)
        return hour if hour <= last else None

    def _step(self, a: int, b: int, retrain: int | None) -> StepResult:
        started = t = time.perf_counter()
        result = StepResult(a, b)
        store, state = self.store, self.state
        version = self.model.version if self.model else 0  # the model the pass issues with
        out = self._pass(a, b, defer_last=retrain == b).persist(StorageLevel.MEMORY_AND_DISK)
        try:
            store.hours.write(_kind(out, "hours", HOURS_SCHEMA), a)  # computes the pass
            t = result.timed("pass", t)
            totals, counts = _totals_and_counts(out)
            if "hours" in counts:
                state.stations = int(counts["hours"]["n"]) // (b - a + 1)
                result.stations = state.stations
            pending = _kind(out, "pending", "station_id, hour AS issue_hour, `values`")
            docs = _forecast_docs(
                _kind(out, "forecast", "station_id, hour AS issue_hour, name, `values`"), version
            )
            if "forecast" in counts:
                result.forecasts = int(counts["forecast"]["n"])
                result.latest_issue = counts["forecast"]["latest"]
            candidates: DataFrame | None = _candidates(out)
            if retrain is not None:
                store.candidates.write(candidates, a)  # the training reads them
                candidates = None
                trained, seconds = self._train(retrain)
                self._adopt(retrain, trained, seconds)
                t = result.timed("train", t)
                if trained is not None:
                    result.trained.append(trained)
                    extra_pending, extra_docs, n = self._score_deferred(out, trained)
                    pending, docs = pending.unionByName(extra_pending), docs.unionByName(extra_docs)
                    if n:
                        result.forecasts += n
                        result.latest_issue = retrain
            self._write(out, a, b, totals, counts, pending, docs, candidates, result)
            t = result.timed("write", t)
        finally:
            out.unpersist()
        state.last_final = b
        state.save(store.state_path)
        self._retain(b)
        result.timed("retain", t)
        result.seconds = time.perf_counter() - started
        return result

    def _write(
        self,
        out: DataFrame,
        a: int,
        b: int,
        totals: list[Any],
        counts: dict[str, dict[str, Any]],
        pending: DataFrame,
        docs: DataFrame,
        candidates: DataFrame | None,
        result: StepResult,
    ) -> None:
        """Write the step's tables (the candidates unless written already) and publish its
        documents, side by side."""
        store, state = self.store, self.state
        writes: list[Callable[[], None]] = [lambda: store.write_pending(pending, a)]
        if candidates is not None:
            new = candidates
            writes.append(lambda: store.candidates.write(new, a))
        if "skill" in counts:
            skill = _kind(
                out,
                "skill",
                f"""station_id, slice(`values`, 1, {LEADS}) AS n,
                    slice(`values`, {LEADS + 1}, {len(PREDICTORS) * LEADS}) AS sums""",
            )
            writes.append(lambda: store.write_version(store.skill_dir, b, skill))
            state.skill_version = b
        skill_docs = self._skill_docs(
            out, totals, b, result, int(counts.get("skill_doc", {"n": 0})["n"])
        )
        if self.sink is not None and (result.forecasts or skill_docs is not None):
            sink, forecasts = self.sink, docs if result.forecasts else None
            writes.append(lambda: sink.publish(forecasts, skill_docs))
        _side_by_side(writes)

    # the pass -----------------------------------------------------------------------------

    def _pass(self, a: int, b: int, defer_last: bool) -> DataFrame:
        cfg, store, state = self.config, self.store, self.state
        lookback = [h for h in needed_hours(a, b, cfg.clim_days, cfg.window_days) if h < a]
        rows = _sql(
            f"""SELECT *, {_bucket(cfg.buckets)} AS bucket FROM (
                SELECT {_HOURS_COLUMNS}, 0 AS kind, {_NO_ARRIVAL} FROM {{table}}
                UNION ALL
                SELECT {_NEW_COLUMNS}, 1 AS kind, {_ARRIVAL_COLUMNS} FROM {{new}})""",
            table=store.hours.read_hours(lookback),
            new=store.read_incoming(a, b),
        )
        # the issues verified in the step (kind 0: `hour` is the issue hour, `values` its
        # 4 × 24 forecasts as in PENDING_SCHEMA) and the error sums (kind 1: `values` = `n`
        # then `sums` of SKILL_TABLE_SCHEMA), one row per station each
        verify = _sql(
            f"""SELECT *, {_bucket(cfg.buckets)} AS bucket FROM (
                SELECT station_id, 0 AS kind, issue_hour AS hour, `values` FROM {{pending}}
                UNION ALL
                SELECT station_id, 1 AS kind, CAST(NULL AS BIGINT) AS hour,
                       concat(n, sums) AS `values` FROM {{skill}})""",
            pending=store.read_pending(a, b),
            skill=store.read_version(store.skill_dir, state.skill_version, SKILL_TABLE_SCHEMA),
        )
        window_rows = self._stations(a) * cfg.window_days * 24 * LEADS
        weights, intercept = None, 0.0
        if self.model is not None:
            coef, intercept = coefficients(self.model.model)
            weights = lead_weights(coef)
        every = max(cfg.station_skill_every_hours, 1)
        spec = _Pass(
            first=a,
            last=b,
            clim_days=cfg.clim_days,
            window_days=cfg.window_days,
            weights=weights,
            intercept=intercept,
            version=self.model.version if self.model else 0,
            defer_last=defer_last,
            sample_rate=min(1.0, cfg.train_max_rows / window_rows),
            station_skill=(b // every) != ((a - 1) // every) or every == 1,
        )

        def step(left: pd.DataFrame, right: pd.DataFrame) -> pd.DataFrame:
            return _step_group(left, right, spec)

        return (
            rows.groupBy("bucket")
            .cogroup(verify.groupBy("bucket"))
            .applyInPandas(step, _OUT_SCHEMA)
        )

    # -- publishing ---------------------------------------------------------------------------

    def _skill_docs(
        self, out: DataFrame, totals: list[Any], b: int, result: StepResult, station_docs: int
    ) -> DataFrame | None:
        """Add the step's error sums to ``ALL``'s; the skill documents to publish (None: no
        forecast was verified in the step)."""
        state = self.state
        sums, counts = _sums(totals, lambda r, c: r[c], prefix="v_")
        if not counts.sum():
            return None
        if state.skill_all:
            sums += np.array(state.skill_all["sums"], dtype=float)
            counts += np.array(state.skill_all["n"], dtype=float)
        state.skill_all = {"sums": sums.tolist(), "n": counts.tolist()}
        version = self.model.version if self.model else 0
        result.skill_all = skill_document("ALL", sums, counts, b, version)
        result.skill_keys = 1 + station_docs
        if self.sink is None:
            return None
        return _sql(
            "SELECT key, value FROM {out} WHERE kind = 'skill_doc' UNION ALL SELECT 'ALL', :all",
            {"all": _json(result.skill_all)},
            out=out,
        )

    def _score_deferred(
        self, out: DataFrame, model: StoredModel
    ) -> tuple[DataFrame, DataFrame, int]:
        """The issues of a retrain hour, scored with the model just trained (one
        ``transform``): their pending rows, their documents and how many."""
        rows = _kind(
            out,
            "deferred",
            f"""station_id, hour AS issue_hour, name, lead, last_c, {_FEATURE_COLUMNS},
                {_columns(_P[1:])}""",
        )
        scored = score(model.model, rows).persist()
        n = scored.where("lead = 1").count()
        # one row per issue: predictor-major values, as in PENDING_SCHEMA
        predictions = ["value", *(f"v_{p}" for p in PREDICTORS[1:])]
        values = ", ".join(
            f"max(CASE WHEN lead = {lead} THEN `{value}` END)"
            for value in predictions
            for lead in range(1, LEADS + 1)
        )
        issues = _sql(
            f"""SELECT station_id, issue_hour, first(name, true) AS name,
                       array({values}) AS `values`
                FROM {{scored}} GROUP BY station_id, issue_hour""",
            scored=scored,
        )
        pending = _sql("SELECT station_id, issue_hour, `values` FROM {issues}", issues=issues)
        docs = _forecast_docs(
            _sql(
                f"SELECT station_id, issue_hour, name, slice(`values`, 1, {LEADS}) AS `values` "
                "FROM {issues}",
                issues=issues,
            ),
            model.version,
        )
        return pending, docs, int(n)

    # 3. retrain -----------------------------------------------------------------------------

    def _adopt(self, hour: int, stored: StoredModel | None, seconds: float) -> None:
        """Make the training for ``hour`` current: its training set, and its model if any."""
        self.state.train_version = hour
        if stored is None:
            return
        self.model = stored
        if self.on_train:
            self.on_train(stored, seconds)

    def _train(self, hour: int) -> tuple[StoredModel | None, float]:
        """Train on the window before ``hour`` (targets up to ``hour``); the new training set
        (the previous one, the candidates since, labels filled in) is written as
        ``train/v<hour>``. Returns the saved model (None: no labelled row) and the seconds
        it took; the engine's state is left to :meth:`_adopt`."""
        started = time.perf_counter()
        cfg, store, state = self.config, self.store, self.state
        first_hour = state.first_hour if state.first_hour is not None else hour
        window_start = max(hour - cfg.window_days * 24 + 1, first_hour)
        previous = state.train_version
        if previous is not None and previous >= hour:  # never: versions follow event time
            previous = None
        since = previous if previous is not None else first_hour
        # the labels of the rows whose target hours became final since the last training
        inputs = ", ".join(f"r.`{c}`" for c in CANDIDATE_SCHEMA.fieldNames() if c != "label")
        filled = _sql(
            f"""SELECT {inputs},
                       CASE WHEN r.label IS NOT NULL THEN r.label
                            WHEN r.issue_hour + r.lead <= {int(hour)} THEN a.x - r.last_c
                       END AS label
                FROM (SELECT * FROM {{previous}} UNION ALL SELECT * FROM {{candidates}}) r
                LEFT JOIN (SELECT station_id, hour, x FROM {{actuals}}
                           WHERE x IS NOT NULL AND NOT isnan(x)) a
                  ON r.station_id = a.station_id AND r.issue_hour + r.lead = a.hour
                WHERE r.issue_hour >= {int(window_start)}""",
            previous=store.read_version(store.train_dir, previous, CANDIDATE_SCHEMA),
            candidates=store.candidates.read_hours(range(since, hour)),
            actuals=store.hours.read_hours(range(since + 1, hour + 1)),
        )
        # in as many files as tasks: Spark ML reads the set twice (statistics, normal
        # equations), so it is also kept in memory for the training's duration. Many small
        # tasks (two per bucket): beside issuing, a step's tasks wait for a core only until
        # one of the training's short tasks ends, not for a quarter of the training
        store.write_version(store.train_dir, hour, filled, files=max(cfg.buckets * 2, 1))
        training = store.read_version(store.train_dir, hour, CANDIDATE_SCHEMA)
        labelled = training.where("label IS NOT NULL").persist(StorageLevel.MEMORY_AND_DISK)
        try:
            stats = _sql(
                "SELECT count(1) AS rows, count(DISTINCT station_id) AS stations FROM {labelled}",
                labelled=labelled,
            ).collect()[0]  # an aggregate without grouping: always one row
            if not stats["rows"]:
                return None, time.perf_counter() - started
            fit_on = labelled
            if stats["rows"] > cfg.train_max_rows * 1.1:
                # more rows than the candidates' sample allows for (never, unless the station
                # count grew fast): a deterministic subset of issues bounds the training's cost
                keep = cfg.train_max_rows / stats["rows"]
                log.warning(
                    "training set of %d rows: training on %.1f%% of its issues",
                    stats["rows"],
                    100 * keep,
                )
                fit_on = _sql(
                    f"SELECT * FROM {{labelled}} WHERE {_ISSUE_DRAW} < :keep",
                    {"keep": float(keep)},
                    labelled=labelled,
                ).persist(StorageLevel.MEMORY_AND_DISK)
            try:
                model, errors = train(fit_on, cfg.reg_param)
            finally:
                if fit_on is not labelled:
                    fit_on.unpersist()
        finally:
            labelled.unpersist()
        stored = self.models.save(
            model,
            {
                "trained_through_hour": hour,
                "trained_through": format_epoch_hour(hour),
                "window_days": cfg.window_days,
                "window_start": format_epoch_hour(window_start),
                "window_end": format_epoch_hour(hour),
                "clim_days": cfg.clim_days,
                "features": list(FEATURES),
                "lead_knots": list(LEAD_KNOTS),
                "stations": int(stats["stations"]),
                "train_max_rows": cfg.train_max_rows,
                **errors,
            },
        )
        return stored, time.perf_counter() - started

    # -- retention ------------------------------------------------------------------------------

    def _retain(self, last_final: int) -> None:
        store, cfg, state = self.store, self.config, self.state
        store.drop_incoming(last_final)
        store.hours.drop_steps(before=last_final - cfg.keep_hours)
        if state.train_version is not None:
            # merged into the training set: candidates wholly before its hour
            store.candidates.drop_steps(before=state.train_version)
        store.candidates.drop_steps(before=last_final - cfg.window_days * 24 - LEADS)
        store.drop_pending(through=last_final)
        store.drop_versions(store.train_dir, [state.train_version, self.training_hour])
        store.drop_versions(store.skill_dir, [state.skill_version])


def _pack(values: np.ndarray) -> np.ndarray:
    """(issues, 24 leads, 4 predictors) → rows of 96, predictor-major (as stored)."""
    return values.transpose(0, 2, 1).reshape(-1, len(_P) * LEADS)


def _unpack(stored: np.ndarray) -> np.ndarray:
    """The inverse of :func:`_pack`."""
    return stored.reshape(-1, len(_P), LEADS).transpose(0, 2, 1)


def _side_by_side(jobs: list[Callable[[], None]]) -> None:
    """Run a step's writes (each a Spark job of one or a few small tasks, reading the cached
    pass) side by side: one after another, the step would wait for each one's fixed costs in
    turn. The first error is raised once every job has ended."""
    with ThreadPoolExecutor(max(len(jobs), 1), thread_name_prefix="forecast-write") as pool:
        futures = [pool.submit(job) for job in jobs]
        wait(futures)
    for future in futures:
        future.result()


def _totals_and_counts(out: DataFrame) -> tuple[list[Any], dict[str, dict[str, Any]]]:
    """One collect: the step's error sums, and each output's rows and latest hour."""
    small = out.where("kind IN ('total', 'count')").collect()
    counts: dict[str, dict[str, Any]] = {}
    for r in small:
        if r["kind"] == "count" and r["n"]:
            c = counts.setdefault(r["key"], {"n": 0, "latest": None})
            c["n"] += int(r["n"])
            if r["hour"] is not None:
                c["latest"] = r["hour"] if c["latest"] is None else max(c["latest"], r["hour"])
    return [r for r in small if r["kind"] == "total"], counts


def _kind(out: DataFrame, kind: str, columns: StructType | str) -> DataFrame:
    """The pass's rows of one output, in ``columns`` (a schema's, or SQL select items)."""
    if isinstance(columns, StructType):
        columns = _columns(columns.fieldNames())
    return _sql(f"SELECT {columns} FROM {{out}} WHERE kind = :kind", {"kind": kind}, out=out)


#: The features of a training row or an issue's lead (SQL select items).
_FEATURE_COLUMNS = _columns(f"f_{name}" for name in FEATURES)


def _candidates(out: DataFrame) -> DataFrame:
    """The step's training candidates, as the candidates table holds them (no label yet)."""
    return _kind(
        out,
        "candidate",
        f"""station_id, hour AS issue_hour, lead, last_c, {_FEATURE_COLUMNS},
            CAST(NULL AS DOUBLE) AS label""",
    )


def _forecast_docs(issues: DataFrame, version: int) -> DataFrame:
    """``key``, ``value`` (forecast.v1 JSON) of issues (``station_id``, ``issue_hour``, ``name``,
    ``values``: the model's forecasts for leads 1 … 24), built by Spark in the write's tasks
    (the JVM encodes a document several times faster than Python builds it)."""
    return _sql(
        """SELECT concat_ws('|', station_id, issued) AS key, to_json(named_struct(
                'schema', :schema,
                'station_id', station_id,
                'issued_at', issued,
                'model_version', :version,
                'points', transform(`values`, (v, i) -> named_struct(
                    'lead', i + 1,
                    'target_hour',
                        date_format(timestamp_seconds((issue_hour + i + 1) * 3600), :fmt),
                    'value', round(v, 3))),
                'name', name)) AS value
           FROM (SELECT *, date_format(timestamp_seconds(issue_hour * 3600), :fmt) AS issued
                 FROM {issues})""",
        {"schema": FORECAST_SCHEMA, "version": int(version), "fmt": SPARK_HOUR_FORMAT},
        issues=issues,
    )


# -- the pass's body (pandas in, pandas out; pure numpy inside) --------------------------------


def _floats(series: pd.Series) -> np.ndarray:
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _sums(
    rows: Any, get: Callable[[Any, str], Any], prefix: str = "s_"
) -> tuple[np.ndarray, np.ndarray]:
    sums, counts = np.zeros((len(PREDICTORS), LEADS)), np.zeros(LEADS)
    for row in rows:
        lead = int(get(row, "lead"))
        counts[lead - 1] += float(get(row, "n"))
        for i, p in enumerate(PREDICTORS):
            sums[i, lead - 1] += float(get(row, f"{prefix}{p}"))
    return sums, counts


def _frame(kind: str, columns: dict[str, Any]) -> pd.DataFrame:
    frame = pd.DataFrame(columns)
    frame.insert(0, "kind", kind)
    return frame


def _step_group(left: pd.DataFrame, right: pd.DataFrame, spec: _Pass) -> pd.DataFrame:  # noqa: PLR0912, PLR0915 - one pass, in the order of the module docstring
    """One bucket of stations through one step (see the module's docstring)."""
    a, b = spec.first, spec.last
    m = b - a + 1
    stations = np.asarray(
        pd.unique(pd.concat([left["station_id"], right["station_id"]]).dropna()), dtype=object
    )
    stations.sort()
    index = {s: i for i, s in enumerate(stations)}
    n = len(stations)
    outputs: list[pd.DataFrame] = []
    if not n:
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in _OUT_SCHEMA.fieldNames()})

    # 1. finalize: the table's rows of a … b (of several means of one station and hour, the
    # latest to arrive counts: highest batch, partition and offset)
    left = _latest_arrivals(left)
    kind = left["kind"].to_numpy()
    hour = left["hour"].to_numpy(dtype=np.int64)
    code = left["station_id"].map(index).to_numpy(dtype=np.int64)
    old, new = kind == 0, kind == 1
    lookback_hours = np.unique(hour[old])
    col = np.searchsorted(lookback_hours, hour[old])
    fields: dict[str, np.ndarray] = {}
    for name in (*RAW_FIELDS, *CUM_FIELDS):
        values = np.full((n, len(lookback_hours)), 0.0 if name in CUM_FIELDS else math.nan)
        values[code[old], col] = _floats(left.loc[old, name])
        fields[name] = values
    lookback = Table(stations, lookback_hours, fields)
    raw = {name: np.full((n, m), math.nan) for name in RAW_FIELDS}
    for name in RAW_FIELDS:
        raw[name][code[new], hour[new] - a] = _floats(left.loc[new, name])
    fresh = extend_table(lookback, a, raw)
    named = left.loc[left["name"].notna(), ["station_id", "hour", "name"]].sort_values("hour")
    name_of = named.groupby("station_id")["name"].last().reindex(stations).to_numpy(dtype=object)
    # every station ever seen: one row per hour (a station before its first value has none)
    seen = np.zeros(n, dtype=bool)
    seen[code[old]] = True
    seen[code[new]] = True
    rows = {
        "station_id": np.repeat(stations, m),
        "hour": np.tile(np.arange(a, b + 1, dtype=np.int64), n),
        "name": np.repeat(name_of, m),
    }
    for name in (*RAW_FIELDS, *CUM_FIELDS):
        rows[name] = fresh.fields[name].reshape(-1)
    outputs.append(_frame("hours", rows))

    # 2. features and baselines of every issue of the step
    table = Table(
        stations,
        np.concatenate([lookback_hours, fresh.hours]),
        {k: np.concatenate([lookback.fields[k], fresh.fields[k]], axis=1) for k in fields},
    )
    issue_hours = np.arange(a, b + 1, dtype=np.int64)
    ok, last, feats, base = features_from_summaries(
        issue_summaries(table, issue_hours, spec.clim_days, spec.window_days)
    )
    station_of = np.repeat(np.arange(n), m)
    issued_at = np.tile(issue_hours, n)
    # candidates: a deterministic sample (by station and hour); and the issues of a retrain
    # hour, which wait for the new model ("deferred", with their baselines)
    keep = ok & (_draw(stations[station_of], issued_at) < spec.sample_rate)
    deferred = ok & spec.defer_last & (issued_at == b)
    for label, mask in (("candidate", keep), ("deferred", deferred)):
        k = int(mask.sum())
        cand = {
            "station_id": np.repeat(stations[station_of[mask]], LEADS),
            "hour": np.repeat(issued_at[mask], LEADS),
            "name": np.repeat(name_of[station_of[mask]], LEADS),
            "lead": np.tile(np.arange(1, LEADS + 1, dtype=np.int32), k),
            "last_c": np.repeat(last[mask], LEADS),
        }
        flat = feats[mask].reshape(k * LEADS, len(FEATURES))
        for i, fname in enumerate(FEATURES):
            cand[f"f_{fname}"] = flat[:, i]
        if label == "deferred":
            flat_base = base[mask].reshape(k * LEADS, 3)
            for i, p in enumerate(PREDICTORS[1:]):
                cand[f"v_{p}"] = flat_base[:, i]
        outputs.append(_frame(label, cand))

    # 3. issue with the latest model (not the deferred hour: it waits for the new model)
    issue = ok & ~deferred if spec.weights is not None else np.zeros_like(ok)
    if issue.any():
        model = linear_forecasts(spec.weights, spec.intercept, last[issue], feats[issue])
        preds = np.concatenate([model[:, :, None], base[issue]], axis=2)  # (k, 24, 4)
        outputs.append(
            _frame(
                "forecast",
                {
                    "station_id": stations[station_of[issue]],
                    "hour": issued_at[issue],
                    "name": name_of[station_of[issue]],
                    "values": list(model),
                },
            )
        )
        # pending: the issues whose last target hour is after the step (the others are
        # verified right here), one row each, predictor-major
        own = np.flatnonzero(issue)
        later = issued_at[own] + LEADS > b
        outputs.append(
            _frame(
                "pending",
                {
                    "station_id": stations[station_of[own[later]]],
                    "hour": issued_at[own[later]],
                    "values": list(_pack(preds[later])),
                },
            )
        )
        v_station = station_of[own[~later]]
        v_issue = issued_at[own[~later]]
        v_values = preds[~later]  # (k, 24, 4)
    else:
        v_station = v_issue = np.zeros(0, dtype=np.int64)
        v_values = np.zeros((0, LEADS, len(_P)))

    # 4. verify every issue whose last target hour is in the step (those of earlier steps
    # and the step's own): its 24 forecasts against the actual means
    rkind = right["kind"].to_numpy()
    pend_rows = right.loc[rkind == 0]
    if len(pend_rows):
        v_station = np.concatenate(
            [v_station, pend_rows["station_id"].map(index).to_numpy(dtype=np.int64)]
        )
        v_issue = np.concatenate([v_issue, pend_rows["hour"].to_numpy(dtype=np.int64)])
        stored = np.stack(pend_rows["values"].to_numpy()).astype(float)
        v_values = np.concatenate([v_values, _unpack(stored)])
    err_n = np.zeros((n, LEADS))
    err_s = np.zeros((n, LEADS, 4))
    if len(v_station):
        targets = v_issue[:, None] + np.arange(1, LEADS + 1)[None, :]  # (k, 24)
        at = np.minimum(np.searchsorted(table.hours, targets), len(table.hours) - 1)
        actual = table.fields["x"][v_station[:, None], at]
        actual[table.hours[at] != targets] = math.nan
        verified = ~np.isnan(actual)
        rows_v, leads_v = np.nonzero(verified)
        np.add.at(err_n, (v_station[rows_v], leads_v), 1.0)
        np.add.at(
            err_s,
            (v_station[rows_v], leads_v),
            np.abs(v_values[rows_v, leads_v] - actual[rows_v, leads_v, None]),
        )
    skill_rows = right.loc[rkind == 1]
    old_n = np.zeros((n, LEADS))
    old_s = np.zeros((n, LEADS, 4))
    if len(skill_rows):
        s_code = skill_rows["station_id"].map(index).to_numpy(dtype=np.int64)
        sums = np.stack(skill_rows["values"].to_numpy()).astype(float)
        old_n[s_code] = sums[:, :LEADS]
        old_s[s_code] = _unpack(sums[:, LEADS:])
    tot_n, tot_s = old_n + err_n, old_s + err_s
    has = tot_n.sum(axis=1) > 0
    st = np.flatnonzero(has)
    skill = {
        "station_id": stations[st],
        "values": list(np.concatenate([tot_n[st], _pack(tot_s[st])], axis=1)),
    }
    outputs.append(_frame("skill", skill))
    if err_n.any():
        totals = {"lead": np.arange(1, LEADS + 1, dtype=np.int32), "n": err_n.sum(axis=0)}
        for i, c in enumerate(_P):
            totals[c] = err_s[:, :, i].sum(axis=0)
        outputs.append(_frame("total", totals))
        touched = np.flatnonzero(err_n.sum(axis=1) > 0)
        if spec.station_skill and len(touched):
            docs = skill_documents(
                [str(k) for k in stations[touched]],
                tot_s[touched].transpose(0, 2, 1),
                tot_n[touched],
                b,
                spec.version,
            )
            texts = [_json(doc) for doc in docs]
            outputs.append(_frame("skill_doc", {"key": stations[touched], "value": texts}))
    outputs.append(
        _frame(
            "count",
            {
                "key": [o["kind"].iat[0] for o in outputs if len(o)],
                "n": [float(len(o)) for o in outputs if len(o)],
                "hour": [o["hour"].max() if "hour" in o else None for o in outputs if len(o)],
            },
        )
    )
    frame = pd.concat(outputs, ignore_index=True, sort=False)
    frame = frame.reindex(columns=_OUT_SCHEMA.fieldNames())
    for column in (*_TEXT, "values"):  # an all-missing column would be float: Arrow wants
        # text (or arrays)
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    return frame


def _latest_arrivals(left: pd.DataFrame) -> pd.DataFrame:
    new = left["kind"].to_numpy() == 1
    if not new.any():
        return left
    arrived = left.loc[new].sort_values(list(_ARRIVAL), kind="stable")
    arrived = arrived.drop_duplicates(["station_id", "hour"], keep="last")
    return pd.concat([left.loc[~new], arrived], ignore_index=True)


_ENCODER = msgspec.json.Encoder()


def _json(doc: dict[str, Any]) -> str:
    """A document as compact JSON text (msgspec: several times faster than ``json``; the job
    encodes one forecast and one skill document per station every hour)."""
    return _ENCODER.encode(doc).decode()


def _draw(station_ids: np.ndarray, hours: np.ndarray) -> np.ndarray:
    """A deterministic number in [0, 1) per station and hour (the candidates' sample)."""
    keys = pd.Series([f"{s}|{h}" for s, h in zip(station_ids, hours, strict=True)], dtype=object)
    hashed = pd.util.hash_pandas_object(keys, index=False).to_numpy(dtype=np.uint64)
    return (hashed % np.uint64(1_000_000)).astype(float) / 1_000_000
