"""The checkpoint directory running out of space: the stats job, and the forecast job under its
state, exit with a clear error, and once space is freed a restart resumes from its checkpoints
without losing or doubling an hour.

The checkpoints live on a small tmpfs of their own (the test mounts one: it needs root and
a kernel that lets it, else it is skipped with the reason). Once the job has stored results,
a filler file takes every free byte, more hours are replayed, and the job must fail on its
next checkpoint write; the filler is then removed, the job started again, and MongoDB must
equal the DuckDB ground truth for every replayed hour.
"""

from __future__ import annotations

import errno
import json
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from moaa.streaming.forecast_store import LAYOUT

from .conftest import Pipeline, consume_all, wait_until
from .test_forecast import DAY, STATIONS, ForecastRun
from .test_stats import _check_summary, _mismatches, _settled, _truth, _wait_for_documents

pytestmark = pytest.mark.integration

FIRST, MORE = 48, 48


@pytest.fixture
def small_disk() -> Iterator[Path]:
    mount = Path(tempfile.mkdtemp(prefix="moaa-small-disk-"))
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)],
            capture_output=True,
            text=True,
            check=False,
        )
        why = done.stderr.strip() or f"mount exited {done.returncode}"
    except OSError as exc:  # no mount command
        done, why = None, str(exc)
    if done is None or done.returncode != 0:
        mount.rmdir()
        pytest.skip(f"cannot mount a small tmpfs here: {why}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
        mount.rmdir()


def _fill(disk: Path) -> Path:
    """Take every free byte of ``disk`` with one file; return it."""
    filler = disk / "filler"
    chunk = b"\0" * (1 << 20)
    with filler.open("wb", buffering=0) as fh:
        try:
            while True:
                fh.write(chunk)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
        try:  # the last, partial megabyte
            while True:
                fh.write(b"\0" * 4096)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
    return filler


def _ends_on_a_full_disk(
    pipeline: Pipeline, job: str, proc: subprocess.Popen[bytes], timeout_s: float
) -> None:
    """``job`` exits non-zero within ``timeout_s``, saying why: it never hangs."""
    try:
        code = proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the {job} job did not end on a full disk:\n{pipeline.log(job)[-3000:]}")
    log = pipeline.log(job)
    assert code != 0
    assert f"{job} job failed" in log and "No space left on device" in log, log[-3000:]


def test_a_full_checkpoint_disk_ends_the_job_and_a_restart_loses_nothing(
    pipeline: Pipeline, sample_dir: Path, small_disk: Path
) -> None:
    pipeline.checkpoint_dir = small_disk / "checkpoints"
    pipeline.start_producer()
    stats = pipeline.start_stats()
    pipeline.start_insert()
    feeder = pipeline.start_feeder("--tick", "0", "--hours", str(FIRST))
    assert feeder.wait(180) == 0, pipeline.log("feeder")
    _settled(pipeline, _truth(sample_dir, FIRST), timeout_s=180)

    filler = _fill(small_disk)
    feeder = pipeline.start_feeder("--tick", "0.2", "--hours", str(FIRST + MORE))
    _ends_on_a_full_disk(pipeline, "stats", stats, timeout_s=240)
    assert feeder.wait(240) == 0, pipeline.log("feeder")

    filler.unlink()
    pipeline.start_stats()
    truth = _truth(sample_dir, FIRST + MORE)
    _wait_for_documents(pipeline, "hourly_stats", len(truth), timeout_s=240)
    docs = _settled(pipeline, truth, timeout_s=240)
    assert _mismatches(docs, truth) == [], pipeline.log("stats")[-3000:]
    _check_summary(pipeline, truth)


def _last_final(checkpoints: Path) -> str:
    try:
        last = json.loads((checkpoints / LAYOUT / "state.json").read_text())["last_final"]
    except (FileNotFoundError, ValueError, KeyError):
        return ""
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(hours=last or 0)).isoformat()


def test_a_full_disk_under_the_forecast_state_ends_the_job_and_a_restart_resumes(
    pipeline: Pipeline, small_disk: Path
) -> None:
    run = ForecastRun(pipeline)
    checkpoints = small_disk / "checkpoints"  # the forecast job's only: the stats job's are not
    env = {**run.env(), "MOAA_CHECKPOINT_DIR": str(checkpoints)}
    pipeline.start_producer()
    pipeline.start_stats()
    forecast = pipeline._start("forecast", ["forecast"], env)
    feeder = pipeline.start_feeder("--tick", "0", "--hours", str(3 * DAY))
    assert feeder.wait(180) == 0, pipeline.log("feeder")
    wait_until(  # the first model after two days of history, and forecasts issued with it
        "forecasts issued",
        lambda: _last_final(checkpoints) >= "2013-01-03T12",
        420,
        every_s=1,
        detail=lambda: pipeline.log("forecast")[-3000:],
    )

    filler = _fill(small_disk)
    feeder = pipeline.start_feeder("--tick", "0", "--hours", str(4 * DAY + 5))
    _ends_on_a_full_disk(pipeline, "forecast", forecast, timeout_s=300)
    assert feeder.wait(240) == 0, pipeline.log("feeder")

    filler.unlink()
    pipeline._start("forecast", ["forecast"], env)
    wait_until(  # every hour final but the last ones the stats watermark still holds
        "the restarted job through the replay",
        lambda: _last_final(checkpoints) >= "2013-01-05T01",
        420,
        every_s=1,
        detail=lambda: pipeline.log("forecast")[-3000:],
    )
    # one issue per hour for both stations, none lost across the failure
    docs = [json.loads(m.value()) for m in consume_all(pipeline.kafka_bootstrap, run.forecasts)]
    issues: dict[str, set[str]] = {}
    for doc in docs:
        issues.setdefault(doc["issued_at"], set()).add(doc["station_id"])
    hours = sorted(datetime.fromisoformat(h) for h in issues)
    assert hours and hours[-1] >= datetime(2013, 1, 5, 1, tzinfo=UTC), hours[-3:]
    assert len(hours) == (hours[-1] - hours[0]) // timedelta(hours=1) + 1
    assert all(stations == STATIONS for stations in issues.values())
