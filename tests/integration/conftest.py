"""Fixtures for the pipeline integration tests: real processes, real Kafka, unique topics."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from moaa.dataprep.prepare import prepare
from moaa.localstack.testing import free_ports

MOAA = str(Path(sys.executable).with_name("moaa"))


@pytest.fixture(scope="session")
def sample_dir(repo_root: Path) -> Path:
    return repo_root / "data" / "sample" / "2013"


@pytest.fixture(scope="session")
def sample_dataset(sample_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled sample, prepared (year 2013)."""
    out = tmp_path_factory.mktemp("sample-dataset")
    prepare(sample_dir, out, 2013)
    return out


def wait_until(
    what: str,
    check: Callable[[], Any],
    timeout_s: float,
    every_s: float = 0.5,
    detail: Callable[[], str] | None = None,
) -> Any:
    """Poll ``check`` until it returns something truthy and return that; on timeout fail
    naming ``what`` (and ``detail()``, e.g. a log tail)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError(f"timed out waiting for {what}" + (f":\n{detail()}" if detail else ""))


@dataclass
class Pipeline:
    """Feeder and producer processes wired to one Kafka with this test's own topics."""

    kafka_bootstrap: str
    dataset: Path
    workdir: Path
    topic: str = field(default_factory=lambda: f"it.obs.{uuid.uuid4().hex[:8]}")
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.dlq = self.topic + ".dlq"
        self.stats_topic = self.topic + ".stats"
        self.summary_topic = self.topic + ".summary"
        self.database = "it_" + self.topic.replace(".", "_")
        self.spark_ui_port, self.insert_port = free_ports(2)
        self.spark_jars = ""
        self.mongo_uri = ""
        self.socket = self.workdir / "p.sock"
        self.checkpoint = self.workdir / "checkpoint.json"
        self.producer_port, self.feeder_port = free_ports(2)
        self.checkpoint_dir = self.workdir / "checkpoints"  # the Spark jobs' (a test may move it)

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "MOAA_LOG_FORMAT": "json",
            "MOAA_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "MOAA_TOPIC_OBSERVATIONS": self.topic,
            "MOAA_TOPIC_DLQ": self.dlq,
            "MOAA_SOCKET_PATH": str(self.socket),
            "MOAA_DATASET_DIR": str(self.dataset),
            "MOAA_CHECKPOINT_PATH": str(self.checkpoint),
            "MOAA_PRODUCER_METRICS_PORT": str(self.producer_port),
            "MOAA_FEEDER_METRICS_PORT": str(self.feeder_port),
            "MOAA_TOPIC_HOURLY_STATS": self.stats_topic,
            "MOAA_TOPIC_HOURLY_SUMMARY": self.summary_topic,
            "MOAA_CHECKPOINT_DIR": str(self.checkpoint_dir),
            "MOAA_SPARK_JARS": self.spark_jars,
            "MOAA_SPARK_MASTER": "local[2]",
            "MOAA_SPARK_UI_PORT": str(self.spark_ui_port),
            "MOAA_MONGO_URI": self.mongo_uri,
            "MOAA_MONGO_DATABASE": self.database,
            "MOAA_INSERT_GROUP_ID": f"insert-{self.topic}",
            "MOAA_INSERT_METRICS_PORT": str(self.insert_port),
            **extra,
        }

    def _start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (self.workdir / f"{name}.log").open("ab")
        # Own process group: a "crash" kills the job and its children (Spark's JVM) together,
        # as a container crash would.
        proc = subprocess.Popen(
            [MOAA, *args], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.procs.append(proc)
        return proc

    def start_producer(self) -> subprocess.Popen[bytes]:
        proc = self._start("producer", ["producer"], self.env())
        deadline = time.monotonic() + 60
        while not self._accepts():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"producer did not start:\n{self.log('producer')}")
            time.sleep(0.1)
        return proc

    def _accepts(self) -> bool:
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(self.socket))
        except OSError:
            return False
        finally:
            probe.close()
        return True

    def start_stats(self) -> subprocess.Popen[bytes]:
        return self._start("stats", ["stats"], self.env())

    def start_insert(self) -> subprocess.Popen[bytes]:
        return self._start("insert", ["insert"], self.env())

    def start_feeder(self, *args: str, **env: str) -> subprocess.Popen[bytes]:
        return self._start("feeder", ["feeder", *args], self.env(**env))

    def crash(self, proc: subprocess.Popen[bytes]) -> None:
        """kill -9 a component and everything it started."""
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def wait_for_checkpoint(self, after: str, timeout_s: float = 90) -> str:
        """Wait until the feeder's checkpoint is past ``after``; return it."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                value = json.loads(self.checkpoint.read_text())["next_hour"]
            except (FileNotFoundError, ValueError, KeyError):
                value = ""
            if value > after:
                return value
            time.sleep(0.1)
        raise AssertionError(f"the checkpoint did not pass {after}:\n{self.log('feeder')[-2000:]}")

    def log(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture
def pipeline(
    kafka_bootstrap: str, mongo_uri: str, spark_jars: list[Path], sample_dataset: Path
) -> Iterator[Pipeline]:
    # Unix socket paths are limited to 107 bytes: keep the work dir short.
    workdir = Path(tempfile.mkdtemp(prefix="moaa-it-"))
    pipe = Pipeline(kafka_bootstrap, sample_dataset, workdir)
    pipe.spark_jars = ",".join(str(p) for p in spark_jars)
    pipe.mongo_uri = mongo_uri
    yield pipe
    pipe.stop()
    if os.environ.get("MOAA_KEEP_TEST_WORKDIR"):
        print(f"kept the pipeline's work dir (logs, checkpoints): {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)


def consume_all(
    bootstrap: str, topic: str, expected: int | None = None, idle_s: float = 5.0
) -> list:
    """Every message of ``topic`` from the beginning (until ``expected`` or ``idle_s`` of silence)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"it-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    meta = consumer.list_topics(topic, timeout=10).topics[topic]
    consumer.assign([TopicPartition(topic, p, 0) for p in meta.partitions])
    messages: list = []
    last = time.monotonic()
    try:
        while time.monotonic() - last < idle_s:
            batch = consumer.consume(num_messages=5000, timeout=0.5)
            for msg in batch:
                if msg.error() is None:
                    messages.append(msg)
            if batch:
                last = time.monotonic()
            if expected is not None and len(messages) >= expected:
                break
    finally:
        consumer.close()
    return messages


CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's Chromium, driven by Playwright (never a downloaded browser)."""
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: run `make browser`")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield browser
        browser.close()
