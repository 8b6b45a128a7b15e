"""The chaos run's pure parts: its seeded schedule and the comparison of two runs' results."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from moaa.localstack import chaos
from moaa.localstack.chaos import COMPONENTS, _normal, compare, mismatches, schedule


def test_the_schedule_is_seeded_and_reaches_every_component() -> None:
    plan = schedule(seed=7, faults=12)
    assert plan == schedule(seed=7, faults=12)
    assert plan != schedule(seed=8, faults=12)
    assert len(plan) == 12
    assert {f.component for f in plan} == set(COMPONENTS)
    # the feeder first, at a point of its replay; every other fault after a seeded gap
    assert plan[0].component == "feeder"
    assert plan[0].at_fraction is not None and 0.2 <= plan[0].at_fraction <= 0.6
    assert all(5.0 <= f.after_s <= 20.0 and f.at_fraction is None for f in plan[1:])


def test_too_few_faults_for_every_component_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot reach each"):
        schedule(seed=1, faults=len(COMPONENTS) - 1)


def test_values_are_compared_without_the_write_stamp_and_in_utc() -> None:
    hour = datetime(2020, 1, 1, 5, tzinfo=UTC)
    a = {"hour": hour.replace(tzinfo=None), "mean_c": 0.1 + 0.2, "updated_at": hour}
    b = {
        "hour": hour.astimezone(timezone(timedelta(hours=2))),
        "mean_c": 0.3,
        "updated_at": hour + timedelta(hours=1),
    }
    assert _normal(a) == _normal(b)
    assert _normal({"points": [{"value": 1.0000000001}]}) == {"points": [{"value": 1.0}]}


def test_missing_extra_and_different_documents_are_each_counted() -> None:
    reference = {"hourly_stats": {"a": {"v": 1}, "b": {"v": 2}, "c": {"v": 3}}}
    got = {"hourly_stats": {"a": {"v": 1}, "b": {"v": 5}, "d": {"v": 4}}}
    result = compare(reference, got)
    assert result["hourly_stats"] == {
        "documents": 3,
        "missing": 1,
        "extra": 1,
        "different": 1,
        "examples": ["c", "d", "b"],
    }
    assert result["forecasts"]["documents"] == 0
    assert mismatches(result) == 3
    assert mismatches(compare(reference, reference)) == 0


def test_the_runs_settings_do_not_leak_into_the_callers_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen: dict[str, str | None] = {}

    def runs(*_args: object) -> str:
        seen.update({k: os.environ.get(k) for k in chaos.JOB_ENV})
        return "report"

    monkeypatch.setattr(chaos, "_run_chaos", runs)
    monkeypatch.delenv("MOAA_FORECAST_TRAIN_IN_BACKGROUND", raising=False)
    assert chaos.run_chaos(tmp_path, tmp_path, 2020, datetime(2020, 1, 1, tzinfo=UTC), 1, 1)
    assert seen == chaos.JOB_ENV  # the runs' jobs see them
    assert "MOAA_FORECAST_TRAIN_IN_BACKGROUND" not in os.environ  # the caller's later jobs do not
