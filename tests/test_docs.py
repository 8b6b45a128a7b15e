"""The README stays the user's manual: every setting and every metric is in its tables."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from prometheus_client import REGISTRY

from moaa.common.settings import MoaaSettings

# Every module that defines settings or metrics, so their classes and collectors exist.
MODULES = [
    "moaa.common.kafka",
    "moaa.localstack.settings",
    "moaa.streaming.spark",
    "moaa.dataprep.download",
    "moaa.dataprep.prepare",
    "moaa.feeder.feeder",
    "moaa.producer.server",
    "moaa.producer.publisher",
    "moaa.streaming.stats",
    "moaa.streaming.forecast",
    "moaa.streaming.insert",
    "moaa.streaming.show",
    "moaa.dashboard.settings",
    "moaa.dashboard.app",
]


def _subclasses(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub, *_subclasses(sub)}
    return found


def test_every_setting_is_documented(repo_root: Path) -> None:
    for name in MODULES:
        importlib.import_module(name)
    readme = (repo_root / "README.md").read_text()
    documented = set(re.findall(r"`(MOAA_[A-Z0-9_]+)`", readme))
    fields = {
        f"MOAA_{field.upper()}"
        for cls in {MoaaSettings, *_subclasses(MoaaSettings)}
        for field in cls.model_fields
    }
    assert fields - documented == set(), "settings missing from the README settings table"


def test_every_metric_is_documented(repo_root: Path) -> None:
    for name in MODULES:
        importlib.import_module(name)
    readme = (repo_root / "README.md").read_text()
    ours = {m.name for m in REGISTRY.collect() if m.name.startswith("weather_")}
    assert ours, "no weather_ metric registered"
    missing = {m for m in ours if f"`{m}" not in readme}
    assert missing == set(), "metrics missing from the README metrics table"
