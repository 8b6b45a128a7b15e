"""The seeded chaos run (``make chaos``) on a small slice: every component of the local chain
``kill -9``\\ ed at least once during a replay at tick 0, and every collection afterwards
(stats, summaries, forecasts, skill) equal, document by document, to a run of the same slice
without faults.

Its own two stacks (Kafka, FerretDB and the jobs on free loopback ports), stopped at the end.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from moaa.dataprep.prepare import prepare
from moaa.dataprep.synth import synthesize
from moaa.localstack.chaos import COMPONENTS, run_chaos

pytestmark = pytest.mark.integration

YEAR = 2020
DAYS = 16  # the first model after 14 days, then forecasts, and a day of them verified


@pytest.mark.timeout(1800)
def test_a_seeded_chaos_run_changes_no_result(tmp_path: Path) -> None:
    raw, dataset = tmp_path / "raw", tmp_path / "dataset"
    manifest = synthesize(5, YEAR, raw, seed=3, malformed_rate=0.02, days=DAYS)
    prepare(raw, dataset, YEAR)
    end = datetime(YEAR, 1, 1, tzinfo=UTC) + timedelta(hours=manifest["hours"] - 1)

    report = run_chaos(
        dataset, tmp_path, YEAR, end, manifest["hours"], manifest["rows"],
        seed=3, faults=len(COMPONENTS), gap_s=(3.0, 8.0), quiet_s=15.0,
    )  # fmt: skip

    summary = report.to_json()
    assert {f["component"] for f in report.faults if f["killed"]} == set(COMPONENTS), summary
    for name in ("hourly_stats", "hourly_summary", "forecasts", "forecast_skill"):
        assert report.collections[name]["documents"] > 0, summary
    for name in ("hourly_stats", "hourly_summary", "forecasts", "forecast_skill"):
        c = report.collections[name]
        assert c["missing"] + c["extra"] + c["different"] == 0, summary
    # a resent reject may be on the dead-letter topic twice, but no rejected line is lost
    assert report.dead_letters["chaos"]["lines"] == report.dead_letters["reference"]["lines"]
    assert report.dead_letters["reference"]["lines"] == sum(
        manifest["expected"]["rejected"].values()
    )
    assert report.website["chaos"] == report.website["reference"], summary
