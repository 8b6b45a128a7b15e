"""Build the SparkSession every moaa job uses, the same way locally and under the operator.

Locally (``local[*]``) the Kafka connector jars come from ``MOAA_SPARK_JARS`` (the
toolchain cache, filled by ``moaa local toolchain``); in the Spark image they are baked
into ``$SPARK_HOME/jars`` and the setting stays empty. Nothing is downloaded at start.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import msgspec
from pydantic import Field
from pyspark.sql import SparkSession
from pyspark.sql import types as T

from moaa.common.kafka import KafkaSettings
from moaa.common.ops import STOP_REQUESTED, exit_now, exit_on_thread_crash
from moaa.common.settings import MoaaSettings

__all__ = [
    "SparkDriverLost",
    "SparkSettings",
    "build_session",
    "kafka_options",
    "kafka_source_options",
    "metrics_conf",
    "run_spark_job",
    "spark_schema",
    "supervise",
]

log = logging.getLogger(__name__)


def spark_schema(record: type[msgspec.Struct], fields: Iterable[str] | None = None) -> T.StructType:
    """The Spark schema of a record of :mod:`moaa.common.records` (all its fields, or
    ``fields`` in that order), to parse its JSON with ``from_json``: strings, doubles,
    longs, timestamps (UTC hour strings), arrays and nested structs, every field nullable.
    A name that is not a field of the record raises :class:`KeyError`, so a renamed field
    fails where it is read instead of becoming nulls."""
    info = msgspec.inspect.type_info(record)
    if not isinstance(info, msgspec.inspect.StructType):
        raise TypeError(f"{record!r} is not a msgspec Struct")
    by_name = {f.encode_name: f for f in info.fields}
    names = list(by_name) if fields is None else list(fields)
    missing = [n for n in names if n not in by_name]
    if missing:
        raise KeyError(f"{record.__name__} has no field {missing}")
    return T.StructType([T.StructField(n, _spark_type(by_name[n].type)) for n in names])


def _spark_type(info: msgspec.inspect.Type) -> T.DataType:  # noqa: PLR0911 - one per kind
    if isinstance(info, msgspec.inspect.Metadata):  # Annotated constraints
        return _spark_type(info.type)
    if isinstance(info, msgspec.inspect.UnionType):
        kinds = [t for t in info.types if not isinstance(t, msgspec.inspect.NoneType)]
        if len(kinds) != 1:
            raise TypeError(f"no Spark type for the union {info}")
        return _spark_type(kinds[0])
    if isinstance(info, msgspec.inspect.StrType):
        return T.StringType()
    if isinstance(info, msgspec.inspect.FloatType):
        return T.DoubleType()
    if isinstance(info, msgspec.inspect.BoolType):
        return T.BooleanType()
    if isinstance(info, msgspec.inspect.IntType):
        return T.LongType()
    if isinstance(info, msgspec.inspect.DateTimeType):
        return T.TimestampType()
    if isinstance(info, msgspec.inspect.ListType):
        return T.ArrayType(_spark_type(info.item_type))
    if isinstance(info, msgspec.inspect.DictType):
        return T.MapType(_spark_type(info.key_type), _spark_type(info.value_type))
    if isinstance(info, msgspec.inspect.StructType):
        return T.StructType(
            [T.StructField(f.encode_name, _spark_type(f.type)) for f in info.fields]
        )
    raise TypeError(f"no Spark type for {info}")


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
    spark_driver_memory: str = Field(
        "1g",
        description="spark.driver.memory of local runs (the JVM heap of the driver, which also "
        "runs the tasks in local mode); under the operator the SparkApplication sets it.",
    )
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
        # Python workers (pandas UDFs) run this interpreter, the one with moaa installed.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        builder = (
            builder.master(settings.spark_master)
            .config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.driver.host", "127.0.0.1")
            .config("spark.driver.memory", settings.spark_driver_memory)
            # An OutOfMemoryError leaves a JVM that answers nothing more: end it at once, so
            # the job fails (exit code, restart) instead of hanging (see run_spark_job). Under
            # the operator the SparkApplication's javaOptions say the same.
            .config("spark.driver.extraJavaOptions", _EXIT_ON_OOM)
        )
    conf = {
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": str(settings.spark_shuffle_partitions),
        "spark.ui.port": str(settings.spark_ui_port),
        "spark.ui.showConsoleProgress": "false",
        # list the directories a query reads on the driver: a distributed listing job for a
        # few hundred local directories costs more than the listing
        "spark.sql.sources.parallelPartitionDiscovery.threshold": "100000",
        # what the driver keeps for its UI: at Spark's defaults (1,000 SQL executions, jobs and
        # stages) the plans of a long run took a growing share of a 1 GiB heap (the forecast
        # walk over a year ended in an OutOfMemoryError on day ~100)
        "spark.sql.ui.retainedExecutions": "50",
        "spark.ui.retainedJobs": "100",
        "spark.ui.retainedStages": "100",
        "spark.ui.retainedTasks": "10000",
        "spark.sql.streaming.ui.retainedProgressUpdates": "50",
        **(extra_conf or {}),
    }
    if settings.spark_jars:
        conf["spark.jars"] = settings.spark_jars
    for key, value in conf.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


_EXIT_ON_OOM = "-XX:+ExitOnOutOfMemoryError"


class SparkDriverLost(RuntimeError):
    """The Spark driver's JVM is gone (it exited, e.g. on an OutOfMemoryError)."""


def _jvm_exit_code(spark: SparkSession) -> int | None:
    """The exit code of the driver JVM this process started, or None while it runs (or when
    the JVM started this process, as under spark-submit)."""
    gateway = getattr(spark.sparkContext, "_gateway", None)
    proc = getattr(gateway, "proc", None)
    return None if proc is None else proc.poll()


def supervise(
    spark: SparkSession,
    queries: Iterable[Any],
    stop: threading.Event,
    every_second: Callable[[], None] | None = None,
) -> None:
    """Wait until ``stop`` is set; raise when a query stops by itself or the JVM is gone.
    ``every_second`` (e.g. reading the queries' progress) runs once per check."""
    queries = list(queries)
    while not stop.wait(1.0):
        if every_second is not None:
            every_second()
        code = _jvm_exit_code(spark)
        if code is not None:
            raise SparkDriverLost(f"the Spark driver JVM exited with code {code}")
        for query in queries:
            try:
                active = query.isActive
            except Exception as exc:
                raise SparkDriverLost(f"the Spark driver stopped answering: {exc}") from exc
            if not active:
                raise SystemExit(f"query {query.name} stopped: {query.exception()}")


def run_spark_job(component: str, main: Callable[[], object]) -> None:
    """Run a Spark job's ``main``; any fatal error ends the process with exit code 1 and one
    clear log line, at once (no cleanup that could wait on a dead JVM, so never a hang).

    An ``OutOfMemoryError`` in the driver ends its JVM (``-XX:+ExitOnOutOfMemoryError``, see
    :func:`build_session`); the Python side then sees the JVM gone and exits here.
    """
    exit_on_thread_crash(component)
    try:
        main()
    except (KeyboardInterrupt, SystemExit) as exc:
        code = exc.code if isinstance(exc, SystemExit) else 130
        if code in (None, 0):
            return
        log.critical("%s job failed: %s", component, code)
        exit_now(1)
    except BaseException as exc:
        if STOP_REQUESTED.is_set():
            # `moaa local down` signals the whole process group: the JVM ends with the
            # signal while the query stops, and py4j then fails; the stop was asked for
            log.info(
                "%s job stopped (the Spark JVM ended with the stop signal: %s)",
                component,
                type(exc).__name__,
            )
            exit_now(0)
        log.critical(
            "%s job failed: %s: %s (if the Spark driver ran out of memory, its log above says "
            "java.lang.OutOfMemoryError: raise its memory, MOAA_SPARK_DRIVER_MEMORY locally)",
            component,
            type(exc).__name__,
            str(exc).splitlines()[0] if str(exc) else "",
            exc_info=exc,
        )
        exit_now(1)


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
