"""The forecast job's tables on disk: Parquet under ``<checkpoint>/forecast.v5/``, read by Spark.

Every table is written by *steps*: a step processes the final hours ``a … b`` and writes its
rows under ``step=<a>`` (overwriting that directory), so a step that a crash interrupted is
simply done again: the same directories are replaced, never appended to twice. Steps are
contiguous, so step ``a_i`` covers the hours ``a_i … a_{i+1} − 1``; :meth:`StepTable.read_hours`
opens only the directories of the hours it is asked for. ``state.json`` (written atomically
after a step) names the last final hour; on start, any directory of a later step is left over
from an interrupted step and is removed.

=================  ===========================================================================
``incoming/``      hourly means as they arrive from Kafka: one directory per micro-batch,
                   named by its first batch id and its hours (``b<id>_h<first>_<last>``),
                   with batch id, partition and offset per row (the last one wins)
``hours/``         the final-hours table (:mod:`moaa.streaming.forecast_features`): one row per
                   station ever seen and final hour, with running sums
``candidates/``    training rows: a deterministic sample of the issues, features per lead
``train/v<r>/``    the training set of the model trained at hour ``r``: earlier training set +
                   new candidates, labels filled in as their target hours became final
``pending/``       issues awaiting their last target hour (model and the three baselines, 24
                   leads: one row per station and issue hour)
``skill/v<h>/``    Σ|error| and n per station (arrays over leads), through final hour ``h``
``models/``        the versioned Spark ML models (:class:`.forecast_model.ModelStore`)
=================  ===========================================================================
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql.types import (
    ArrayType,
    DoubleType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
)

from moaa.streaming.forecast_features import CUM_FIELDS, FEATURES, LEADS, RAW_FIELDS

__all__ = [
    "CANDIDATE_SCHEMA",
    "HOURS_SCHEMA",
    "INCOMING_SCHEMA",
    "LAYOUT",
    "OLD_LAYOUTS",
    "PENDING_SCHEMA",
    "SKILL_TABLE_SCHEMA",
    "EngineState",
    "ForecastStore",
    "IncomingBatch",
    "StepTable",
]

#: The directory of this layout under the checkpoint directory. Earlier versions of the job kept
#: other layouts (``forecast/``: Python-side history; ``forecast.v2/``: pending forecasts by
#: target hour; ``forecast.v3/``: pending forecasts and error sums one row per lead;
#: ``forecast.v4/``: incoming means partitioned by hour): they are not read
#: (:data:`OLD_LAYOUTS`), the job re-reads the retained stats.
LAYOUT = "forecast.v5"
OLD_LAYOUTS = ("forecast", "forecast.v2", "forecast.v3", "forecast.v4")

_D, _L, _S = DoubleType(), LongType(), StringType()

INCOMING_SCHEMA = StructType(
    [
        StructField("station_id", _S, False),
        StructField("name", _S),
        *(StructField(name, _D) for name in RAW_FIELDS),
        StructField("batch_id", _L, False),
        StructField("partition", IntegerType(), False),
        StructField("offset", _L, False),
        StructField("hour", _L, False),
    ]
)
HOURS_SCHEMA = StructType(
    [
        StructField("station_id", _S, False),
        StructField("hour", _L, False),
        StructField("name", _S),
        *(StructField(name, _D) for name in RAW_FIELDS),
        *(StructField(name, _D, False) for name in CUM_FIELDS),
    ]
)
_FEATURE_FIELDS = [StructField(f"f_{name}", _D, False) for name in FEATURES]
CANDIDATE_SCHEMA = StructType(
    [
        StructField("station_id", _S, False),
        StructField("issue_hour", _L, False),
        StructField("lead", IntegerType(), False),
        StructField("last_c", _D, False),
        *_FEATURE_FIELDS,
        StructField("label", _D),
    ]
)
#: An issue awaiting its last target hour: the forecasts of the model and of the three baselines
#: for leads 1 … 24, predictor-major (``values[i * 24 + lead - 1]`` is predictor ``i`` of
#: :data:`~moaa.streaming.forecast_features.PREDICTORS`). One row per station and issue hour,
#: written once, read once: the issue is verified when its 24th target hour becomes final.
PENDING_SCHEMA = StructType(
    [
        StructField("station_id", _S, False),
        StructField("issue_hour", _L, False),
        StructField("values", ArrayType(_D), False),
    ]
)
#: Error sums of one station: ``n[lead - 1]`` verified forecasts, ``sums[i * 24 + lead - 1]``
#: their Σ|error| for predictor ``i``.
SKILL_TABLE_SCHEMA = StructType(
    [
        StructField("station_id", _S, False),
        StructField("n", ArrayType(_D), False),
        StructField("sums", ArrayType(_D), False),
    ]
)

#: Row groups of the step tables: a few hours of every station each.
_ROW_GROUP_BYTES = str(4 << 20)
_STEP = re.compile(r"step=(-?\d+)")
_BATCH = re.compile(r"b(-?\d+)_h(-?\d+)_(-?\d+)")
_VERSION = re.compile(r"v(-?\d+)")


def _ints(path: Path, pattern: re.Pattern[str]) -> list[int]:
    if not path.is_dir():
        return []
    return sorted(int(m.group(1)) for p in path.iterdir() if (m := pattern.fullmatch(p.name)))


def _empty(spark: SparkSession, schema: StructType) -> DataFrame:
    return spark.createDataFrame([], schema)


class StepTable:
    """A table written step by step (``<root>/step=<a>/``; see the module's docstring)."""

    def __init__(self, spark: SparkSession, root: Path, schema: StructType, hour_col: str) -> None:
        self.spark, self.root, self.schema, self.hour_col = spark, root, schema, hour_col

    def steps(self) -> list[int]:
        return _ints(self.root, _STEP)

    def write(self, df: DataFrame, step: int) -> None:
        """Replace step ``step``'s rows with ``df`` (one file). The step's own directory is the
        output path: writing it does not invalidate a cached DataFrame that reads *other*
        steps of the table (Spark drops the cache of every plan reading under the path it
        writes, and the step's pass, which feeds every write of the step, reads this table)."""
        (
            df.coalesce(1)
            # by hour, in small row groups: a read of a few hours skips the others' row
            # groups (Parquet statistics) instead of decoding the whole step
            .sortWithinPartitions(self.hour_col)
            .write.mode("overwrite")
            .option("parquet.block.size", _ROW_GROUP_BYTES)
            .parquet(str(self.root / f"step={step}"))
        )

    def read_all(self) -> DataFrame:
        """Every row of every step."""
        steps = self.steps()
        if not steps:
            return _empty(self.spark, self.schema)
        return self._read([self.root / f"step={a}" for a in steps])

    def _read(self, paths: list[Path]) -> DataFrame:
        """The rows of these step directories, in the table's columns. Each path is its own
        base path, so Spark adds no ``step`` partition column; the plan is built with a
        handful of calls to the JVM (a ``select`` of named columns costs a few per column,
        and a step builds its plans on every live hour)."""
        return self.spark.read.schema(self.schema).parquet(*map(str, paths))

    def read_hours(self, hours: Iterable[int]) -> DataFrame:
        """The rows whose hour column is one of ``hours`` (only their steps are opened)."""
        wanted = sorted({int(h) for h in hours})
        steps = self.steps()
        if not wanted or not steps:
            return _empty(self.spark, self.schema)
        paths = []
        for i, a in enumerate(steps):
            end = steps[i + 1] - 1 if i + 1 < len(steps) else None
            if any(h >= a and (end is None or h <= end) for h in _probe(wanted, a, end)):
                paths.append(self.root / f"step={a}")
        if not paths:
            return _empty(self.spark, self.schema)
        # one range per run of consecutive hours: Parquet gets the ranges (an ``isin`` of
        # more than a few values reaches it as its overall min … max only)
        return self._read(paths).where(_hour_ranges(self.hour_col, wanted))

    def drop_steps(
        self, keep: Iterable[int] | None = None, before: int | None = None, after: int | None = None
    ) -> None:
        """Remove step directories: those starting after ``after`` (an interrupted step), or
        those wholly before hour ``before`` (retention)."""
        steps = self.steps()
        for i, a in enumerate(steps):
            end = steps[i + 1] - 1 if i + 1 < len(steps) else None
            gone = (after is not None and a > after) or (
                before is not None and end is not None and end < before
            )
            if gone and (keep is None or a not in set(keep)):
                shutil.rmtree(self.root / f"step={a}", ignore_errors=True)


def _hour_ranges(column: str, sorted_hours: list[int]) -> str:
    """A SQL condition: ``column`` is one of ``sorted_hours``, as one range per run."""
    return " OR ".join(
        f"`{column}` = {lo}" if lo == hi else f"`{column}` BETWEEN {lo} AND {hi}"
        for lo, hi in _runs(sorted_hours)
    )


def _runs(sorted_hours: list[int]) -> list[tuple[int, int]]:
    """``[1, 2, 3, 7, 8]`` → ``[(1, 3), (7, 8)]``."""
    runs: list[tuple[int, int]] = []
    for h in sorted_hours:
        if runs and h == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], h)
        else:
            runs.append((h, h))
    return runs


def _probe(wanted: list[int], a: int, end: int | None) -> list[int]:
    """The wanted hours that could fall in ``a … end`` (a cheap bisect instead of a scan)."""
    import bisect  # noqa: PLC0415

    lo = bisect.bisect_left(wanted, a)
    hi = len(wanted) if end is None else bisect.bisect_right(wanted, end)
    return wanted[lo:hi]


@dataclass
class EngineState:
    """What survives a restart besides the tables (``state.json``): a few numbers."""

    last_final: int | None = None  # last final hour processed
    clock: int | None = None  # newest hour seen (for the lag; finality follows the marks)
    first_hour: int | None = None  # oldest hour seen
    skill_version: int | None = None  # skill/v<h>
    skill_all: dict[str, list] | None = None  # Σ|error| and n of ALL (4 × 24, 24)
    stations: int | None = None  # stations in the final-hours table
    train_version: int | None = None  # train/v<r>
    marks: dict[str, int] | None = None  # partition → newest hour of the stats job's marks
    partitions: int | None = None  # partitions of the input topic, as the marks say

    def note_marks(self, marks: dict[int, int], partitions: int) -> bool:
        """Keep the newest marked hour of each partition (and the partition count); returns
        whether anything changed. A replayed or reordered mark never moves one back."""
        got = {int(k): v for k, v in (self.marks or {}).items()}
        for partition, hour in marks.items():
            got[partition] = max(hour, got.get(partition, hour))
        merged = {str(k): v for k, v in sorted(got.items())}
        count = max(partitions, self.partitions or 0)
        changed = merged != (self.marks or {}) or count != self.partitions
        self.marks, self.partitions = merged, count
        return changed

    @property
    def marked_through(self) -> int | None:
        """The newest hour marked on *every* partition of the input topic: the hourly means
        of every stats micro-batch up to it are read (None until each partition has a mark).
        """
        if not self.partitions or not self.marks:
            return None
        hours = [self.marks.get(str(p)) for p in range(self.partitions)]
        known = [h for h in hours if h is not None]
        return min(known) if len(known) == len(hours) else None

    @classmethod
    def load(cls, path: Path) -> EngineState:
        if not path.exists():
            return cls()
        data = json.loads(path.read_text())
        return cls(**{k: data.get(k) for k in cls.__dataclass_fields__})

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self)))
        os.replace(tmp, path)


@dataclass(frozen=True)
class IncomingBatch:
    """The figures of a micro-batch's hourly means: how many, how many for hours already
    final (``late``), its newest hour and its oldest hour not final (None: no such mean), and
    its first batch id."""

    rows: int
    late: int
    newest: int | None
    oldest: int | None
    batch: int | None = None

    @staticmethod
    def aggregates(last_final: int | None, where: str = "true") -> str:
        """SQL aggregate items (``n``, ``late``, ``newest``, ``oldest``, ``batch``) of the
        figures of the rows (columns of :data:`INCOMING_SCHEMA`) that match ``where``: the
        forecast job computes them in the same Spark job as its other counts of the batch."""
        late = "false" if last_final is None else f"hour <= {int(last_final)}"
        return (
            f"count(CASE WHEN {where} THEN 1 END) AS n, "
            f"count(CASE WHEN ({where}) AND {late} THEN 1 END) AS late, "
            f"max(CASE WHEN {where} THEN hour END) AS newest, "
            f"min(CASE WHEN ({where}) AND NOT ({late}) THEN hour END) AS oldest, "
            f"min(CASE WHEN {where} THEN batch_id END) AS batch"
        )

    @classmethod
    def of(cls, row: Row | None) -> IncomingBatch:
        """The figures of a row of :meth:`aggregates` (None: an empty batch)."""
        if row is None:
            return cls(0, 0, None, None)
        return cls(
            int(row["n"] or 0), int(row["late"] or 0), row["newest"], row["oldest"], row["batch"]
        )


class ForecastStore:
    """Every table of the forecast job under ``root`` (see the module's docstring)."""

    def __init__(self, spark: SparkSession, root: Path) -> None:
        self.spark, self.root = spark, root
        self.incoming_dir = root / "incoming"
        self.hours = StepTable(spark, root / "hours", HOURS_SCHEMA, "hour")
        self.candidates = StepTable(spark, root / "candidates", CANDIDATE_SCHEMA, "issue_hour")
        self.pending = StepTable(spark, root / "pending", PENDING_SCHEMA, "issue_hour")
        self.train_dir = root / "train"
        self.skill_dir = root / "skill"
        self.state_path = root / "state.json"

    # -- incoming ----------------------------------------------------------------------------

    def append_incoming(
        self, df: DataFrame, last_final: int | None, figures: IncomingBatch | None = None
    ) -> IncomingBatch:
        """Write a micro-batch's hourly means (columns of :data:`INCOMING_SCHEMA`) as one
        directory, in one Spark job; ``figures`` are those of ``df`` (see
        :meth:`IncomingBatch.aggregates`; computed here, one more job, when not given).
        Means for hours ``<= last_final`` are counted in ``late`` and never read
        (:meth:`read_incoming` reads hours after the last final one); a batch of late means
        only is not written. A replayed batch (same first batch id, same hours) replaces its
        directory."""
        if figures is None:
            figures = IncomingBatch.of(
                self.spark.sql(
                    f"SELECT {IncomingBatch.aggregates(last_final)} FROM {{df}}", df=df
                ).first()
            )
        if figures.rows <= figures.late:
            return figures
        self.incoming_dir.mkdir(parents=True, exist_ok=True)
        new = self.incoming_dir / f"_new-{uuid.uuid4().hex}"
        # sorted by hour in small row groups: a step reads a backlog's batch for its hours
        # only (a batch of a million messages holds about 72 hours of every station)
        (
            df.select(*INCOMING_SCHEMA.fieldNames())
            .sortWithinPartitions("hour")
            .write.option("parquet.block.size", _ROW_GROUP_BYTES)
            .parquet(str(new))
        )
        final = self.incoming_dir / f"b{figures.batch}_h{figures.oldest}_{figures.newest}"
        shutil.rmtree(final, ignore_errors=True)
        new.rename(final)
        return figures

    def _incoming(self) -> list[tuple[Path, int, int]]:
        """The micro-batch directories: path, first and last hour."""
        if not self.incoming_dir.is_dir():
            return []
        found = ((p, _BATCH.fullmatch(p.name)) for p in self.incoming_dir.iterdir())
        return [(p, int(m.group(2)), int(m.group(3))) for p, m in found if m]

    def read_incoming(self, first: int, last: int) -> DataFrame:
        """The hourly means of hours ``first … last`` as they arrived: a station and hour may
        have several (a replayed batch); the latest by batch, partition and offset counts."""
        paths = [str(p) for p, lo, hi in self._incoming() if lo <= last and hi >= first]
        if not paths:
            return _empty(self.spark, INCOMING_SCHEMA)
        return (
            self.spark.read.schema(INCOMING_SCHEMA)
            .parquet(*paths)
            .where(f"hour BETWEEN {int(first)} AND {int(last)}")
        )

    def drop_incoming(self, through: int) -> None:
        """Remove the micro-batches whose every mean is for an hour ``<= through``."""
        for path, _, hi in self._incoming():
            if hi <= through:
                shutil.rmtree(path, ignore_errors=True)

    # -- pending forecasts -------------------------------------------------------------------

    def write_pending(self, df: DataFrame, step: int) -> None:
        """Issues of step ``step`` still awaiting a target hour (columns of
        :data:`PENDING_SCHEMA`), replacing that step's."""
        self.pending.write(df.select(*PENDING_SCHEMA.fieldNames()), step)

    def read_pending(self, first: int, last: int) -> DataFrame:
        """The issues whose last target hour (issue hour + 24) is in ``first … last``."""
        return self.pending.read_hours(range(first - LEADS, last - LEADS + 1))

    def drop_pending(self, through: int) -> None:
        """Remove the steps whose every issue has its last target hour ``<= through``."""
        self.pending.drop_steps(before=through - LEADS + 1)

    # -- versioned tables (training set, skill sums) -----------------------------------------

    def versions(self, root: Path) -> list[int]:
        return _ints(root, _VERSION)

    def read_version(self, root: Path, version: int | None, schema: StructType) -> DataFrame:
        path = root / f"v{version}"
        if version is None or not path.exists():
            return _empty(self.spark, schema)
        return self.spark.read.schema(schema).parquet(str(path))

    def write_version(self, root: Path, version: int, df: DataFrame, files: int = 1) -> None:
        """Write ``v<version>`` whole (replacing a copy an interrupted step left), in ``files``
        files (the tasks that read it back)."""
        df = df.repartition(files) if files > 1 else df.coalesce(1)
        df.write.mode("overwrite").parquet(str(root / f"v{version}"))

    def drop_versions(self, root: Path, keep: Iterable[int | None]) -> None:
        kept = {k for k in keep if k is not None}
        for v in self.versions(root):
            if v not in kept:
                shutil.rmtree(root / f"v{v}", ignore_errors=True)

    # -- restart -----------------------------------------------------------------------------

    def discard_after(self, last_final: int | None) -> None:
        """Remove what a step after ``last_final`` wrote before a crash interrupted it."""
        after = -(2**62) if last_final is None else last_final
        if self.incoming_dir.is_dir():  # a micro-batch's write the crash interrupted
            for partial in self.incoming_dir.glob("_new-*"):
                shutil.rmtree(partial, ignore_errors=True)
        self.hours.drop_steps(after=after)
        self.candidates.drop_steps(after=after)
        self.pending.drop_steps(after=after)
