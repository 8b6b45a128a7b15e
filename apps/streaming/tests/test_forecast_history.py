"""The forecast job's history store: compaction keeps what a restart reads, with the order
that makes the last value per station and hour win, and a crash at any point of the swap
leaves one whole history."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from moaa.streaming.forecast import compact_history, read_history, recover_history

SCHEMA = "station_id string, hour string, mean_c double, batch_id long, partition int, offset long"


def _hour(h: int) -> str:
    return f"2013-01-01T{h:02d}:00:00Z"


def _append(spark: SparkSession, path: Path, rows: list[tuple]) -> None:
    spark.createDataFrame(rows, SCHEMA).write.mode("append").parquet(str(path))


def _last_values(spark: SparkSession, path: Path) -> dict[tuple[str, str], float]:
    rows = read_history(spark, path).orderBy("batch_id", "partition", "offset").collect()
    return {(r.station_id, r.hour): r.mean_c for r in rows}  # later rows overwrite


def test_compaction_keeps_the_hours_a_restart_reads_and_the_last_value_wins(
    spark: SparkSession, tmp_path: Path
) -> None:
    history = tmp_path / "history"
    for batch in range(6):
        _append(spark, history, [("A", _hour(batch), float(batch), batch, 0, batch)])
    _append(spark, history, [("A", _hour(3), 30.0, 6, 1, 0)])  # hour 3 re-emitted, later
    assert len(list(history.glob("*.parquet"))) >= 7  # one or more per append

    kept = compact_history(spark, history, _hour(2))

    assert kept == 5  # hours 2, 3, 3 again, 4, 5
    assert len(list(history.glob("*.parquet"))) == 1
    assert _last_values(spark, history) == {
        ("A", _hour(2)): 2.0,
        ("A", _hour(3)): 30.0,
        ("A", _hour(4)): 4.0,
        ("A", _hour(5)): 5.0,
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history"]
    _append(spark, history, [("A", _hour(6), 6.0, 7, 0, 7)])  # the job appends on
    assert _last_values(spark, history)[("A", _hour(6))] == 6.0


# A crash at each point of a compaction, as the directories it leaves: a history value, or
# "partial" (a copy being written, no _SUCCESS marker yet); then the value recovery keeps.
CRASHES = {
    "while writing the new copy": ({"history": 1.0, "history.compacting": "partial"}, 1.0),
    "between the two renames": ({"history.retired": 1.0, "history.compacting": 2.0}, 2.0),
    "after the swap": ({"history": 2.0, "history.retired": 1.0}, 2.0),
    "with no complete copy beside the retired one": (
        {"history.retired": 1.0, "history.compacting": "partial"},
        1.0,
    ),
}


@pytest.mark.parametrize("left, kept", CRASHES.values(), ids=CRASHES.keys())
def test_recovery_leaves_one_whole_history(
    spark: SparkSession, tmp_path: Path, left: dict[str, float | str], kept: float
) -> None:
    for name, value in left.items():
        if value == "partial":
            (tmp_path / name).mkdir()
            (tmp_path / name / "part-00000.parquet").write_bytes(b"half a file")
        else:
            _append(spark, tmp_path / name, [("A", _hour(0), value, 0, 0, 0)])
    recover_history(tmp_path / "history")
    assert _last_values(spark, tmp_path / "history") == {("A", _hour(0)): kept}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history"]
