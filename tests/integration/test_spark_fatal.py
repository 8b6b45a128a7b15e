"""A Spark driver that hits a fatal error ends the process with exit code 1 and a clear log
line, never a hang: the supervision both Spark jobs run under (``run_spark_job`` around the
job, ``supervise`` while its queries run), on a real local Spark.

* an ``OutOfMemoryError`` in the driver (a tiny heap, a collect far beyond it): the JVM ends
  at once (``-XX:+ExitOnOutOfMemoryError``) and the Python side exits;
* the driver's JVM killed (-9) while the job waits on its queries: the watchdog exits.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

PRELUDE = """
import threading
from moaa.common.logs import configure_logging
from moaa.streaming.spark import SparkSettings, build_session, run_spark_job, supervise
configure_logging("INFO", "json", component="fatal-test")
settings = SparkSettings(spark_ui_port=0, spark_driver_memory="512m", spark_master="local[1]")
"""

OOM = (
    PRELUDE
    + """
def main():
    spark = build_session("moaa-fatal-test", settings)
    spark.range(0, 300_000_000).selectExpr("id", "repeat('x', 200) AS s").collect()
run_spark_job("fatal-test", main)
"""
)

IDLE = (
    PRELUDE
    + """
def main():
    spark = build_session("moaa-fatal-test", settings)
    print("SPARK READY", flush=True)
    supervise(spark, [], threading.Event())
run_spark_job("fatal-test", main)
"""
)


def _run(code: str, tmp_path: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "MOAA_LOG_FORMAT": "json", "SPARK_LOCAL_DIRS": str(tmp_path)}
    return subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=tmp_path,
        start_new_session=True,
    )


def _finish(proc: subprocess.Popen[str], timeout_s: float) -> str:
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"the process hung past {timeout_s} s:\n{out[-3000:]}")
    return out


def test_a_driver_out_of_memory_exits_non_zero_with_a_clear_line(tmp_path: Path) -> None:
    proc = _run(OOM, tmp_path)
    out = _finish(proc, 240)
    assert proc.returncode == 1, out[-3000:]
    assert "OutOfMemoryError" in out, out[-3000:]
    assert "fatal-test job failed" in out, out[-3000:]


def test_a_killed_driver_jvm_ends_the_job(tmp_path: Path) -> None:
    proc = _run(IDLE, tmp_path)
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    seen = ""
    while "SPARK READY" not in seen and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen += line
    assert "SPARK READY" in seen, seen[-3000:]
    jvms = subprocess.run(
        ["pgrep", "-P", str(proc.pid), "java"], capture_output=True, text=True, check=False
    ).stdout.split()
    assert jvms, "no driver JVM under the job"
    started = time.monotonic()
    for pid in jvms:
        os.kill(int(pid), signal.SIGKILL)
    out = seen + _finish(proc, 60)
    assert proc.returncode == 1, out[-3000:]
    assert "the Spark driver JVM exited" in out, out[-3000:]
    assert time.monotonic() - started < 30
