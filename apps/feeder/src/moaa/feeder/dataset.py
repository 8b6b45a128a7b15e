"""The hour-indexed dataset that ``moaa prepare`` writes and the feeder replays.

Layout (``moaa-hours/1``)::

    <dataset>/
      manifest.json                 layout, year, per-source-file counts, hour range
      report.json                   per-file rows accepted / rejected by reason
      staging/batch-<id>/day=…/     one folder per batch of source CSVs (for incremental re-runs)
      hours/day=YYYY-MM-DD/*.parquet  every row of that UTC day (hard links to the batches' files)

Columns (:data:`SCHEMA`): ``hour`` (UTC), ``kind`` (``obs`` or ``reject``), ``station_id``,
``obs_id``, ``temperature_c`` (for ground truth and reports), ``reason`` (rejects),
``source_file``, ``seq`` (the row's line number in that file), and ``record``: the exact JSON the
feeder sends — an
:class:`~moaa.common.observation.Observation` for ``obs`` rows, a
:class:`~moaa.common.observation.Rejection` for ``reject`` rows. Rejected rows are placed at
their own hour when their ``DATE`` is readable, else at the hour of the row before them in
the same file, so they reach the dead-letter topic during the replay like any other row.
"""

from __future__ import annotations

import itertools
import json
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from moaa.common.errors import MoaaError

__all__ = ["LAYOUT", "SCHEMA", "DatasetError", "HourRows", "HourlyDataset", "year_hours"]

LAYOUT = "moaa-hours/1"
SCHEMA = pa.schema(
    [
        ("hour", pa.timestamp("us", tz="UTC")),
        ("day", pa.string()),
        ("kind", pa.string()),
        ("station_id", pa.string()),
        ("obs_id", pa.string()),
        ("temperature_c", pa.float64()),
        ("reason", pa.string()),
        ("source_file", pa.string()),
        ("seq", pa.int32()),
        ("record", pa.binary()),
    ]
)


class DatasetError(MoaaError):
    """The dataset is missing or not in the expected layout."""


def year_hours(year: int) -> tuple[datetime, datetime]:
    """First and last hour of a UTC year (8,784 hours in 2020, 8,760 in 2013)."""
    start = datetime(year, 1, 1, tzinfo=UTC)
    return start, datetime(year + 1, 1, 1, tzinfo=UTC) - timedelta(hours=1)


@dataclass(frozen=True)
class HourRows:
    """Everything the feeder sends for one hour: observations and rejected rows, as JSON."""

    hour: datetime
    records: list[bytes]
    rejects: list[bytes]


class HourlyDataset:
    """Read one prepared dataset hour by hour, one day partition in memory at a time.

    Reading a day also starts reading the next one in a background thread (Parquet
    decoding releases the GIL), so a replay at full speed never waits for a day to load.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        manifest = root / "manifest.json"
        if not manifest.exists():
            raise DatasetError(f"no prepared dataset at {root} (run `moaa prepare` first)")
        self.manifest: dict[str, Any] = json.loads(manifest.read_text())
        if self.manifest.get("layout") != LAYOUT:
            raise DatasetError(
                f"{root} has layout {self.manifest.get('layout')!r}, expected {LAYOUT}"
            )
        self._day: str | None = None
        self._hours: dict[datetime, HourRows] = {}
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dataset-prefetch")
        self._next: tuple[str, Future[dict[datetime, HourRows]]] | None = None

    @property
    def year(self) -> int:
        return int(self.manifest["year"])

    @property
    def dataset_id(self) -> str:
        """Changes whenever the dataset is rebuilt; checkpoints are tied to it."""
        return str(self.manifest["dataset_id"])

    def _read_day(self, day: str) -> dict[datetime, HourRows]:
        folder = self.root / "hours" / f"day={day}"
        files = sorted(folder.glob("*.parquet"))
        if not files:
            return {}
        columns = ["hour", "kind", "seq", "source_file", "record"]
        # ParquetFile, not pq.read_table: the dataset API imports pandas (seconds at start).
        table = pa.concat_tables(pq.ParquetFile(f).read(columns=columns) for f in files)
        order = [("hour", "ascending"), ("source_file", "ascending"), ("seq", "ascending")]
        table = table.sort_by(order).combine_chunks()
        # No to_numpy(): pyarrow imports pandas for it (seconds at the replay's start).
        hours = table.column("hour").cast(pa.int64())
        n = len(hours)
        changes = pc.not_equal(hours.slice(1), hours.slice(0, max(n - 1, 0)))
        starts = [0, *(i + 1 for i in pc.indices_nonzero(changes).to_pylist()), n]
        is_obs = [kind == "obs" for kind in table.column("kind").to_pylist()]
        records = table.column("record").to_pylist()
        micros = hours.to_pylist()
        out: dict[datetime, HourRows] = {}
        for lo, hi in itertools.pairwise(starts):
            hour = datetime.fromtimestamp(micros[lo] / 1e6, tz=UTC)
            kinds = is_obs[lo:hi]
            chunk = records[lo:hi]
            out[hour] = HourRows(
                hour,
                [r for r, obs in zip(chunk, kinds, strict=True) if obs],
                [r for r, obs in zip(chunk, kinds, strict=True) if not obs],
            )
        return out

    def _load_day(self, day: str) -> None:
        if self._next is not None and self._next[0] == day:
            self._hours = self._next[1].result()
        else:
            self._hours = self._read_day(day)
        self._day = day
        following = (date.fromisoformat(day) + timedelta(days=1)).isoformat()
        self._next = (following, self._reader.submit(self._read_day, following))

    def hour(self, hour: datetime) -> HourRows:
        """The rows of one UTC hour (empty lists for an hour without data)."""
        hour = hour.astimezone(UTC)
        day = hour.strftime("%Y-%m-%d")
        if day != self._day:
            self._load_day(day)
        return self._hours.get(hour) or HourRows(hour, [], [])

    def count_by_hour(self, kind: str = "obs") -> dict[datetime, int]:
        """Rows per hour over the whole dataset (for reports and tests)."""
        table = pq.read_table(self.root / "hours", columns=["hour", "kind"])
        table = table.filter(pc.equal(table.column("kind"), kind))
        counts = table.group_by("hour").aggregate([("kind", "count")])
        return dict(
            zip(
                counts.column("hour").to_pylist(),
                counts.column("kind_count").to_pylist(),
                strict=True,
            )
        )
