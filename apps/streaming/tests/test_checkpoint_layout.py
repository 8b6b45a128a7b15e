"""Each stats query keeps its checkpoint in a directory named by its state layout, so an
upgrade that changes a query's aggregation starts a new checkpoint instead of failing on the
old one (Spark refuses to restore state of another layout)."""

from __future__ import annotations

from pathlib import Path

import pytest

from moaa.streaming import stats
from moaa.streaming.stats import checkpoint_location, superseded_checkpoints


def test_every_query_has_a_layout_version() -> None:
    assert set(stats.STATE_VERSIONS) == {"hourly_stats", "hourly_summary"}


def test_version_one_is_the_plain_query_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stats, "STATE_VERSIONS", {"q": 1})
    assert checkpoint_location(tmp_path, "q") == tmp_path / "q"
    (tmp_path / "q").mkdir()
    assert superseded_checkpoints(tmp_path, "q") == []


def test_a_bumped_layout_moves_the_checkpoint_and_names_the_old_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stats, "STATE_VERSIONS", {"q": 3})
    assert checkpoint_location(tmp_path, "q") == tmp_path / "q.v3"
    assert superseded_checkpoints(tmp_path, "q") == []  # a fresh install: nothing to report
    for name in ("q", "q.v2", "q.v3", "other"):
        (tmp_path / name).mkdir()
    assert superseded_checkpoints(tmp_path, "q") == [tmp_path / "q", tmp_path / "q.v2"]
