"""Prometheus helpers: every metric of moaa starts with ``weather_``.

Conventions (see the README metrics table): base units with plural suffixes
(``_seconds``, ``_bytes``, ``_celsius``), counters end in ``_total``, and no label
with one value per station.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Info, start_http_server

__all__ = ["METRIC_PREFIX", "publish_build_info", "serve_metrics"]

METRIC_PREFIX = "weather"


def serve_metrics(port: int, addr: str = "0.0.0.0", registry: CollectorRegistry = REGISTRY) -> None:  # noqa: S104 - pods are scraped from outside
    """Expose ``/metrics`` on ``addr:port`` from a background thread (0 disables it)."""
    if port:
        start_http_server(port, addr=addr, registry=registry)


def publish_build_info(
    component: str, version: str, registry: CollectorRegistry = REGISTRY
) -> None:
    """``weather_build_info{component,version}``: which build is running."""
    info = Info(f"{METRIC_PREFIX}_build", "Build of the running moaa component", registry=registry)
    info.info({"component": component, "version": version})
