"""The documentation stays true: the generated reference pages are what the code generates,
and every relative link of the README and ``docs/`` leads to a file that exists."""

from __future__ import annotations

import re
from pathlib import Path

from moaa.common.settings import MoaaSettings
from moaa.localstack import reference


def test_the_settings_page_is_current(repo_root: Path) -> None:
    page = (repo_root / "docs" / "settings.md").read_text()
    assert page == reference.settings_markdown(), "docs/settings.md is stale: run `make docs`"


def test_the_metrics_page_is_current(repo_root: Path) -> None:
    page = (repo_root / "docs" / "metrics.md").read_text()
    assert page == reference.metrics_markdown(), "docs/metrics.md is stale: run `make docs`"


def test_every_setting_and_metric_is_on_its_page(repo_root: Path) -> None:
    reference.settings_markdown()  # imports every module of reference.MODULES
    documented = set(re.findall(r"`(MOAA_[A-Z0-9_]+)`", reference.settings_markdown()))
    fields = {
        f"MOAA_{name.upper()}"
        for cls in {MoaaSettings, *reference._subclasses(MoaaSettings)}
        for name in cls.model_fields
    }
    assert fields - documented == set()
    assert "`weather_forecast_lag_hours`" in reference.metrics_markdown()


def test_relative_links_lead_somewhere(repo_root: Path) -> None:
    pages = [repo_root / "README.md", *sorted((repo_root / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(repo_root)} → {target}")
    assert broken == []
