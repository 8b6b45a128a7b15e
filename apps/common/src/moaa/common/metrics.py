"""Prometheus helpers: every metric of moaa starts with ``weather_``.

Conventions (see the README metrics table); they are served by
:class:`moaa.common.ops.OpsServer`: base units with plural suffixes
(``_seconds``, ``_bytes``, ``_celsius``), counters end in ``_total``, and no label
with one value per station.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Info

__all__ = ["METRIC_PREFIX", "publish_build_info"]

METRIC_PREFIX = "weather"


def publish_build_info(
    component: str, version: str, registry: CollectorRegistry = REGISTRY
) -> None:
    """``weather_build_info{component,version}``: which build is running."""
    info = Info(f"{METRIC_PREFIX}_build", "Build of the running moaa component", registry=registry)
    info.info({"component": component, "version": version})
