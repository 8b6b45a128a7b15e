"""Settings shared by every moaa component, read from ``MOAA_*`` environment variables.

Each component subclasses :class:`MoaaSettings` for its own knobs, keeping the
``MOAA_`` prefix so one ``env`` block configures a whole pod. Every field carries a
description: it is what ``--help`` and the README settings table show.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["LogFormat", "MoaaSettings"]

LogFormat = Literal["auto", "json", "console"]


class MoaaSettings(BaseSettings):
    """Base of all moaa settings (env prefix ``MOAA_``)."""

    model_config = SettingsConfigDict(
        env_prefix="MOAA_", env_nested_delimiter="__", extra="ignore", frozen=True
    )

    log_level: str = Field("INFO", description="Log level (DEBUG, INFO, WARNING, ERROR).")
    log_format: LogFormat = Field(
        "auto",
        description="Log format: json (one object per line), console, or auto "
        "(console on a terminal, json otherwise).",
    )
    state_dir: Path = Field(
        Path(".local"),
        description="Where local state lives: service data, logs, pid files, checkpoints.",
    )
