"""One skill definition: what the forecast job computes is what the website and its API say.

The definition is taken from the job's code (``moaa.streaming.forecast_features``:
``SKILL_DEFINITION``, checked against what ``skill`` computes on made-up MAEs, with the
predictors in ``PREDICTORS`` order), then looked for in the station page, the OpenAPI
document and the forecast job's metric help.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from moaa.dashboard.app import STATIC_DIR, create_app
from moaa.dashboard.models import SKILL_DEFINITION
from moaa.dashboard.settings import DashboardSettings
from moaa.streaming import forecast_features
from moaa.streaming.forecast_features import PREDICTORS


def _normal(text: str) -> str:
    """One spelling: the minus sign and the hyphen, underscores and spaces, case."""
    return re.sub(r"\s+", " ", text.replace("−", "-").replace("_", " ")).strip().lower()


@pytest.fixture(scope="module")
def definition() -> str:
    """``1 − MAE(model) / MAE(<baseline>)`` as the job says and computes it."""
    doc = forecast_features.SKILL_DEFINITION
    match = re.fullmatch(r"1 [−-] MAE\((\w[\w ]*)\) / MAE\((\w[\w ]*)\)", doc)
    assert match, f"the job's SKILL_DEFINITION is not a definition: {doc!r}"
    model, baseline = match.groups()
    names = {p.replace("_", " "): p for p in PREDICTORS}
    assert model in names and baseline in names, (model, baseline, PREDICTORS)
    # the docstring says what the code does: 1 - model / baseline, on made-up MAEs
    maes = np.array([1.0 + k for k in range(len(PREDICTORS))])
    expected = 1 - maes[PREDICTORS.index(names[model])] / maes[PREDICTORS.index(names[baseline])]
    assert model == PREDICTORS[0]  # skill(...) takes the model's MAE first, then the baseline's
    assert forecast_features.skill(maes[0], maes[PREDICTORS.index(names[baseline])]) == (
        pytest.approx(expected)
    )
    return doc


def test_the_site_states_the_jobs_definition(definition: str) -> None:
    assert _normal(SKILL_DEFINITION) == _normal(definition)
    page = (STATIC_DIR / "station.html").read_text()
    shown = re.search(r'id="skill-definition">Skill = ([^<]+)<', page)
    assert shown and _normal(shown.group(1)) == _normal(definition)
    scripts = " ".join(p.read_text() for p in STATIC_DIR.glob("*.js"))
    assert "best baseline" not in _normal(page + scripts)


def test_the_api_documents_the_jobs_definition(definition: str) -> None:
    spec = create_app(DashboardSettings(), watch=False).openapi()
    schemas = spec["components"]["schemas"]
    for model in ("LeadSkill", "SkillOverall"):
        text = schemas[model]["properties"]["skill"]["description"]
        assert _normal(definition) in _normal(text), (model, text)
    every = _normal(str(spec))
    assert "best baseline" not in every


def test_the_forecast_metric_help_matches(definition: str) -> None:
    from moaa.streaming.forecast import SKILL

    assert _normal(definition) in _normal(SKILL._documentation)
