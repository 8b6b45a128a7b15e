"""Build the SparkSession every moaa job uses, the same way locally and under the operator.

Locally (``local[*]``) the Kafka connector jars come from ``MOAA_SPARK_JARS`` (the
toolchain cache, filled by ``moaa local toolchain``); in the Spark image they are baked
into ``$SPARK_HOME/jars`` and the setting stays empty. Nothing is downloaded at start.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import Field
from pyspark.sql import SparkSession

from moaa.common.kafka import KafkaSettings
from moaa.common.settings import MoaaSettings

__all__ = [
    "SparkSettings",
    "build_session",
    "kafka_options",
    "kafka_source_options",
    "metrics_conf",
]


class SparkSettings(MoaaSettings):
    """How jobs reach Spark (environment variables ``MOAA_SPARK_*``)."""

    spark_master: str = Field(
        "local[*]", description="Spark master; ignored under the operator (spark-submit sets it)."
    )
    spark_jars: str = Field(
        "",
        description="Comma-separated local jar paths added to the classpath (the Kafka "
        "connector locally; empty in the image, where the jars are baked in).",
    )
    spark_shuffle_partitions: int = Field(
        1,
        description="spark.sql.shuffle.partitions: each partition is a state store written "
        "every micro-batch, and per-hour state is small; 1 gave the lowest latency locally.",
    )
    spark_ui_port: int = Field(4040, description="Driver UI port (serves /metrics/prometheus).")
    checkpoint_dir: Path = Field(
        Path(".local/checkpoints"),
        description="Streaming checkpoints and the forecast job's model store, one directory "
        "per query or job (a PVC in Kubernetes).",
    )
    spark_kafka_fetch_max_wait_ms: int = Field(
        20,
        ge=0,
        description="fetch.max.wait.ms of the Kafka source's consumers: how long the broker may "
        "hold a fetch for more data. Kafka's default (500 ms) added half a second to every "
        "micro-batch's read tasks.",
    )


def build_session(
    app_name: str,
    settings: SparkSettings | None = None,
    extra_conf: Mapping[str, str] | None = None,
) -> SparkSession:
    """Create (or return the active) SparkSession for ``app_name``."""
    settings = settings or SparkSettings()
    builder = SparkSession.builder.appName(app_name)
    if (
        "SPARK_KUBERNETES_DRIVER_POD_NAME" not in os.environ
        and "KUBERNETES_SERVICE_HOST" not in os.environ
    ):
        # Local run: loopback only, whatever this machine's hostname resolves to.
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        builder = (
            builder.master(settings.spark_master)
            .config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.driver.host", "127.0.0.1")
        )
    conf = {
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": str(settings.spark_shuffle_partitions),
        "spark.ui.port": str(settings.spark_ui_port),
        "spark.ui.showConsoleProgress": "false",
        **(extra_conf or {}),
    }
    if settings.spark_jars:
        conf["spark.jars"] = settings.spark_jars
    for key, value in conf.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def kafka_options(settings: KafkaSettings) -> dict[str, str]:
    """Spark Kafka source/sink options (``kafka.*``) from the shared Kafka settings."""
    options = {
        "kafka.bootstrap.servers": settings.kafka_bootstrap,
        "kafka.security.protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_security_protocol.startswith("SASL"):
        password = settings.kafka_password.get_secret_value()
        options |= {
            "kafka.sasl.mechanism": settings.kafka_sasl_mechanism,
            "kafka.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required "
                f'username="{settings.kafka_username}" password="{password}";'
            ),
        }
    if settings.kafka_ca_location:
        options |= {
            "kafka.ssl.truststore.type": "PEM",
            "kafka.ssl.truststore.location": settings.kafka_ca_location,
        }
    return options


def kafka_source_options(settings: SparkSettings) -> dict[str, str]:
    """:func:`kafka_options` plus the consumer settings of a Kafka *source* (reads only).

    ``settings`` carries both the Kafka client and the Spark settings (every job's settings
    class derives from both).
    """
    if not isinstance(settings, KafkaSettings):
        raise TypeError("the settings of a Kafka source need the Kafka client settings too")
    wait_ms = str(settings.spark_kafka_fetch_max_wait_ms)
    return kafka_options(settings) | {"kafka.fetch.max.wait.ms": wait_ms}


def metrics_conf(namespace: str) -> dict[str, str]:
    """Prometheus metrics of the driver on its UI port, under a stable namespace.

    ``/metrics/prometheus/`` (driver, mind the trailing slash): streaming input and
    processing rates, batch duration, state rows and watermark per named query; and
    ``/metrics/executors/prometheus``.
    A fixed ``spark.metrics.namespace`` keeps series names stable across restarts.
    """
    sink = "spark.metrics.conf.*.sink.prometheusServlet"
    return {
        "spark.ui.prometheus.enabled": "true",
        "spark.metrics.namespace": namespace,
        "spark.sql.streaming.metricsEnabled": "true",
        f"{sink}.class": "org.apache.spark.metrics.sink.PrometheusServlet",
        f"{sink}.path": "/metrics/prometheus",
    }
