"""The forecast job's history store: compaction keeps what a restart reads, with the order
that makes the last value per station and hour win, and a crash at any point of the swap
leaves one whole history."""

from __future__ import annotations

from pathlib import Path

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


def _history(spark: SparkSession, path: Path, value: float) -> None:
    _append(spark, path, [("A", _hour(0), value, 0, 0, 0)])


def test_a_crash_between_the_renames_completes_the_swap(
    spark: SparkSession, tmp_path: Path
) -> None:
    history, staging, retired = (
        tmp_path / n for n in ("history", "history.compacting", "history.retired")
    )
    _history(spark, retired, 1.0)
    _history(spark, staging, 2.0)  # written whole (Spark's _SUCCESS marker) before the renames
    recover_history(history)
    assert _last_values(spark, history) == {("A", _hour(0)): 2.0}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history"]


def test_a_crash_while_writing_the_new_copy_keeps_the_old_history(
    spark: SparkSession, tmp_path: Path
) -> None:
    history, staging = tmp_path / "history", tmp_path / "history.compacting"
    _history(spark, history, 1.0)
    staging.mkdir()
    (staging / "part-00000.parquet").write_bytes(b"half a file")
    recover_history(history)
    assert _last_values(spark, history) == {("A", _hour(0)): 1.0}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history"]


def test_a_crash_after_the_swap_drops_the_retired_copy(spark: SparkSession, tmp_path: Path) -> None:
    history, retired = tmp_path / "history", tmp_path / "history.retired"
    _history(spark, history, 2.0)
    _history(spark, retired, 1.0)
    recover_history(history)
    assert _last_values(spark, history) == {("A", _hour(0)): 2.0}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history"]


def test_an_incomplete_new_copy_with_no_history_restores_the_retired_one(
    spark: SparkSession, tmp_path: Path
) -> None:
    history, staging, retired = (
        tmp_path / n for n in ("history", "history.compacting", "history.retired")
    )
    _history(spark, retired, 1.0)
    staging.mkdir()
    recover_history(history)
    assert _last_values(spark, history) == {("A", _hour(0)): 1.0}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history"]
