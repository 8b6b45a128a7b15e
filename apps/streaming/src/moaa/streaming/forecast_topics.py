"""Names of the forecast job's output topics and the schema ids of their values.

A module of its own so the insert job can read them without importing the forecast job
(and registering its Prometheus metrics in the insert job's process).
"""

from __future__ import annotations

__all__ = ["FORECAST_SCHEMA", "SKILL_SCHEMA", "TOPIC_FORECASTS", "TOPIC_FORECAST_SKILL"]

TOPIC_FORECASTS = "weather.forecasts"
TOPIC_FORECAST_SKILL = "weather.forecast-skill"
FORECAST_SCHEMA = "forecast.v1"
SKILL_SCHEMA = "forecast-skill.v1"
