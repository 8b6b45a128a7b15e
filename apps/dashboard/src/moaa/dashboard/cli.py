"""``moaa dashboard``: serve the MOAA website."""

from __future__ import annotations

from moaa.common.logs import configure_logging
from moaa.common.metrics import publish_build_info
from moaa.common.ops import exit_on_thread_crash

__all__ = ["command"]


def command() -> None:
    """Serve the MOAA website: map, live hourly stats, forecasts, pipeline health.

    Reads MongoDB (MOAA_DASHBOARD_MONGO_URI, a read-only user; else MOAA_MONGO_URI) and
    listens on MOAA_DASHBOARD_HOST:MOAA_DASHBOARD_PORT (127.0.0.1:8080). The API is
    documented at /docs; /healthz, /readyz and /metrics serve operations.
    """
    import uvicorn  # noqa: PLC0415 - keep `moaa --help` fast

    from moaa.dashboard.app import create_app  # noqa: PLC0415
    from moaa.dashboard.settings import DashboardSettings  # noqa: PLC0415

    settings = DashboardSettings()
    configure_logging(settings.log_level, settings.log_format, component="dashboard")
    publish_build_info("dashboard", "0.1.0")
    exit_on_thread_crash("dashboard")
    uvicorn.run(
        create_app(settings),
        host=settings.dashboard_host,
        port=settings.dashboard_port,
        log_config=None,  # our JSON logging, not uvicorn's own
        access_log=False,
        timeout_graceful_shutdown=3,
    )
