"""Settings of the local stack (environment variables ``MOAA_*``)."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field

from moaa.common.settings import MoaaSettings

__all__ = ["LocalStackSettings", "default_cache_dir"]


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/moaa`` (``~/.cache/moaa``): shared by every clone on the machine."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "moaa"


class LocalStackSettings(MoaaSettings):
    """Ports, places and sizes of the local Kafka and FerretDB."""

    cache_dir: Path = Field(
        default_factory=default_cache_dir,
        description="Toolchain cache (Kafka jars, FerretDB and helm binaries, Spark jars); "
        "reused across clones and runs.",
    )
    kafka_port: int = Field(9092, description="Kafka client listener on 127.0.0.1.")
    kafka_controller_port: int = Field(9093, description="Kafka KRaft controller listener.")
    kafka_heap: str = Field("768m", description="Kafka broker JVM heap (-Xmx/-Xms).")
    mongo_port: int = Field(27017, description="FerretDB MongoDB-wire listener on 127.0.0.1.")
    ferretdb_debug_port: int = Field(
        8088, description="FerretDB debug listener (its /debug/metrics, pprof)."
    )
    producer_metrics_port: int = Field(
        9301,
        description="Ops port (/metrics, /readyz) of the producer run by `moaa local up producer`.",
    )
    spark_ui_port: int = Field(
        4040, description="Spark driver UI port (serves /metrics/prometheus)."
    )
    insert_metrics_port: int = Field(9302, description="Ops port of the insert job.")
    forecast_ui_port: int = Field(
        4041, description="Spark driver UI port of the forecast job (serves /metrics/prometheus)."
    )
    forecast_metrics_port: int = Field(
        9303, description="Ops port (/metrics with the forecast MAE and skill) of the forecast job."
    )
    dashboard_port: int = Field(8080, description="The MOAA website (dashboard) on 127.0.0.1.")
    min_free_disk_mb: int = Field(
        1024, description="`moaa local up` refuses to start below this free space in the state dir."
    )
    start_timeout_s: float = Field(
        90.0, description="How long a service may take to become healthy."
    )

    @property
    def kafka_bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def mongo_uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.mongo_port}/"
