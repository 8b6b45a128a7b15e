"""The whole real chain for a benchmark: its own Kafka and FerretDB on free loopback ports,
then producer, stats job and insert job as real processes (the feeder is the caller's)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from moaa.localstack.services import LocalStack
from moaa.localstack.settings import LocalStackSettings
from moaa.localstack.testing import free_ports

MOAA = str(Path(sys.executable).with_name("moaa"))


@dataclass
class Chain:
    work: Path
    settings: LocalStackSettings
    env: dict[str, str]


def ephemeral_settings(work: Path) -> tuple[LocalStackSettings, list[int]]:
    """Local-stack settings on free loopback ports, state under ``work``; and the ports."""
    ports = free_ports(10)
    settings = LocalStackSettings(
        state_dir=work / "stack", kafka_port=ports[0], kafka_controller_port=ports[1],
        mongo_port=ports[2], ferretdb_debug_port=ports[3], producer_metrics_port=ports[4],
        spark_ui_port=ports[5], insert_metrics_port=ports[6], forecast_ui_port=ports[7],
        dashboard_port=ports[8], kafka_heap="768m",
    )  # fmt: skip
    return settings, ports


@contextmanager
def running_chain(work: Path, dataset: Path) -> Iterator[Chain]:
    """Start the stack and the jobs replaying ``dataset``; stop everything on exit."""
    settings, ports = ephemeral_settings(work)
    stack = LocalStack(settings)
    stack.up()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        env = {
            **os.environ,
            "MOAA_LOG_FORMAT": "json",
            "MOAA_STATE_DIR": str(work / "stack"),
            "MOAA_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "MOAA_MONGO_URI": settings.mongo_uri,
            "MOAA_SOCKET_PATH": str(work / "p.sock"),
            "MOAA_DATASET_DIR": str(dataset),
            "MOAA_CHECKPOINT_PATH": str(work / "ckpt.json"),
            "MOAA_CHECKPOINT_DIR": str(work / "checkpoints"),
            "MOAA_SPARK_JARS": ",".join(str(p) for p in stack.toolchain.spark_jars()),
            "MOAA_SPARK_MASTER": "local[2]",
            "MOAA_PRODUCER_METRICS_PORT": str(ports[4]),
            "MOAA_SPARK_UI_PORT": str(ports[5]),
            "MOAA_INSERT_METRICS_PORT": str(ports[6]),
            "MOAA_FEEDER_METRICS_PORT": str(ports[9]),
        }
        for name in ("producer", "stats", "insert"):
            log = (work / f"{name}.log").open("wb")
            procs.append(
                subprocess.Popen([MOAA, name], env=env, stdout=log, stderr=subprocess.STDOUT)
            )
        while not (work / "p.sock").exists():
            time.sleep(0.2)
        time.sleep(20)  # let Spark start its queries (not part of any measure)
        yield Chain(work, settings, env)
    finally:
        stop_all(procs, 30)
        stack.down()


def stop_all(procs: list[subprocess.Popen[bytes]], timeout_s: float) -> None:
    """Terminate every process, then kill those still running after ``timeout_s``."""
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
