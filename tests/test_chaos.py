"""The chaos run's pure parts: its seeded schedule and the comparison of two runs' results."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

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
