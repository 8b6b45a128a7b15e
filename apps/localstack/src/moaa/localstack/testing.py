"""pytest fixtures that start the real local services (loaded as the ``moaa_localstack`` plugin).

The session-scoped ``local_stack`` fixture runs Kafka and FerretDB with the same code as
``moaa local up``, in a temporary state dir, on free loopback ports, and stops them at the
end of the session. Fixtures are lazy: a test run that asks for none starts nothing.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from moaa.localstack.services import LocalStack
from moaa.localstack.settings import LocalStackSettings
from moaa.localstack.toolchain import Toolchain

__all__ = [
    "FakeNoaa",
    "free_ports",
    "kafka_bootstrap",
    "local_stack",
    "mongo_uri",
    "spark_jars",
    "toolchain",
]


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports that were free a moment ago."""
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [s.getsockname()[1] for s in socks]
    finally:
        for sock in socks:
            sock.close()


class FakeNoaa:
    """A local HTTP server playing NOAA, with scripted faults (``with fake.serving():``).

    Serves ``files`` (path → body) on a free loopback port, honours ``Range`` requests,
    answers 404 for anything else; ``cut_once`` paths send half their body then drop the
    connection, ``fail_once`` paths answer 503, each once. ``requests`` and ``ranges``
    record what was asked.
    """

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut_once: set[str] = set()  # send half the body, then drop the connection
        self.fail_once: set[str] = set()  # answer 503 the first time
        self.requests: Counter[str] = Counter()
        self.ranges: list[tuple[str, str]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                path = self.path
                owner.requests[path] += 1
                if path in owner.fail_once:
                    owner.fail_once.discard(path)
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = owner.files.get(path)
                if body is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                start = 0
                if rng := self.headers.get("Range"):
                    owner.ranges.append((path, rng))
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                part = body[start:]
                self.send_header("Content-Length", str(len(part)))
                self.end_headers()
                if path in owner.cut_once:
                    owner.cut_once.discard(path)
                    self.wfile.write(part[: len(part) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.wfile.write(part)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @contextlib.contextmanager
    def serving(self) -> Iterator[FakeNoaa]:
        """Serve in a background thread for the duration of the block."""
        self.thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture(scope="session")
def toolchain() -> Toolchain:
    """The cached toolchain (``MOAA_CACHE_DIR``); fetched on first use."""
    return Toolchain(LocalStackSettings().cache_dir)


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """A real Kafka broker and a real FerretDB for the whole test session."""
    (
        kafka, controller, mongo, debug, producer, spark_ui, insert, forecast_ui,
        forecast_metrics, dashboard,
    ) = free_ports(10)  # fmt: skip
    settings = LocalStackSettings(
        state_dir=tmp_path_factory.mktemp("stack"),
        kafka_port=kafka,
        kafka_controller_port=controller,
        mongo_port=mongo,
        ferretdb_debug_port=debug,
        producer_metrics_port=producer,
        spark_ui_port=spark_ui,
        insert_metrics_port=insert,
        forecast_ui_port=forecast_ui,
        forecast_metrics_port=forecast_metrics,
        dashboard_port=dashboard,
        kafka_heap="512m",
        min_free_disk_mb=256,
    )
    stack = LocalStack(settings)
    try:
        stack.up()
        yield stack
    finally:
        stack.down()


@pytest.fixture(scope="session")
def kafka_bootstrap(local_stack: LocalStack) -> str:
    """``host:port`` of the session's Kafka broker."""
    return local_stack.settings.kafka_bootstrap


@pytest.fixture(scope="session")
def mongo_uri(local_stack: LocalStack) -> str:
    """MongoDB URI of the session's FerretDB."""
    return local_stack.settings.mongo_uri


@pytest.fixture(scope="session")
def spark_jars(toolchain: Toolchain) -> list[Path]:
    """Spark's Kafka connector jars, exactly matching the pinned Spark version."""
    return toolchain.spark_jars()


@pytest.fixture(scope="session")
def spark(spark_jars: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """The session's one local SparkSession, with the Kafka connector on its classpath.

    One per test session on purpose: the first session in a process fixes the driver's
    classpath, so a later one could not add the connector jars.
    """
    from moaa.streaming.spark import SparkSettings, build_session  # noqa: PLC0415

    settings = SparkSettings(
        spark_master="local[2]",
        spark_jars=",".join(str(p) for p in spark_jars),
        spark_shuffle_partitions=2,
    )
    session = build_session(
        "moaa-tests",
        settings,
        {
            "spark.ui.enabled": "false",
            "spark.sql.warehouse.dir": str(tmp_path_factory.mktemp("spark-warehouse")),
            "spark.local.dir": str(tmp_path_factory.mktemp("spark-local")),
        },
    )
    yield session
    session.stop()


def pytest_configure(config: pytest.Config) -> None:
    """Turn SIGTERM (e.g. from `timeout` or a CI runner) into a normal interruption, so
    session fixtures still stop the servers they started instead of leaking them."""

    def _terminate(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
