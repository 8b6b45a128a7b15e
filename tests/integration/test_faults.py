"""Faults of the infrastructure under a running replay: the Kafka broker and the MongoDB-wire
server killed with ``kill -9`` and restarted on the same ports and data directories, as a
node or pod restart would. The session's own broker and FerretDB are the ones killed (the
same :class:`~moaa.localstack.services.Service` objects ``moaa local`` uses restart them),
so every later test finds them healthy again.

What must hold afterwards: the MongoDB collections equal the DuckDB ground truth (nothing
lost, nothing counted twice) and the dead-letter topic holds exactly the expected rejects.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import time
import urllib.error
import urllib.request
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from moaa.common.hours import record_key
from moaa.dataprep.groundtruth import hourly_temperature_stats
from moaa.dataprep.prepare import prepare
from moaa.dataprep.synth import COLUMNS, synthesize
from moaa.localstack.services import LocalStack, Service
from moaa.localstack.testing import free_ports

from .conftest import Pipeline, consume_all, wait_until
from .test_stats import _check_summary, _mismatches, _settled, _wait_for_documents

pytestmark = pytest.mark.integration

YEAR = 2020
START = datetime(YEAR, 1, 1, tzinfo=UTC)
DAYS = 12
HOURS = DAYS * 24


@pytest.fixture(scope="module")
def synth_replay(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, Any]]:
    """Two synthetic stations, 12 days, 3 % malformed rows: raw files, dataset, manifest."""
    raw = tmp_path_factory.mktemp("faults-raw")
    manifest = synthesize(2, YEAR, raw, seed=15, malformed_rate=0.03, days=DAYS)
    dataset = tmp_path_factory.mktemp("faults-dataset")
    prepare(raw, dataset, YEAR)
    return raw, dataset, manifest


def _well_formed(row: list[str]) -> bool:
    """Whether a synthetic row is none of the kinds ``moaa synth`` malforms on purpose (the
    DuckDB oracle reads well-formed ISD files; flagged temperatures it excludes itself)."""
    if len(row) != len(COLUMNS):
        return False
    values = dict(zip(COLUMNS, row, strict=True))
    try:
        datetime.strptime(values["DATE"], "%Y-%m-%dT%H:%M:%S")  # noqa: DTZ007 - a format check
    except ValueError:
        return False
    return abs(float(values["LATITUDE"])) <= 90 and values["TMP"].split(",")[0][1:].isdigit()


def _truth(raw: Path, workdir: Path) -> dict[str, tuple[float, float, float, int]]:
    """Per station and hour, by DuckDB, over the raw files without the malformed rows."""
    clean = workdir / "clean"
    clean.mkdir()
    for path in raw.glob("*.csv"):
        with path.open(newline="") as src, (clean / path.name).open("w", newline="") as out:
            rows = csv.reader(src)
            writer = csv.writer(out, quoting=csv.QUOTE_ALL)
            writer.writerow(next(rows))
            writer.writerows(row for row in rows if _well_formed(row))
    end = START + timedelta(hours=HOURS)
    return {
        record_key(station, hour): value
        for (station, hour), value in hourly_temperature_stats(clean).items()
        if START <= hour < end
    }


def kill_9(service: Service) -> None:
    """``kill -9`` a local service and everything it started; wait until it is gone."""
    proc = service.process()
    assert proc is not None, f"{service.name} is not running"
    group = [proc, *proc.children(recursive=True)]
    os.killpg(proc.pid, signal.SIGKILL)
    _, alive = psutil.wait_procs(group, 30)
    assert not alive, alive


def _feed(pipeline: Pipeline, tick: float = 0) -> Any:
    return pipeline.start_feeder(
        "--tick", str(tick), "--hours", str(HOURS), "--start", f"{YEAR}-01-01T00:00:00"
    )


def _get(url: str) -> tuple[int, dict[str, Any]]:
    """Status and JSON body of a GET (an error status is an answer too)."""
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:  # noqa: S310 - http://127.0.0.1 only
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
    except OSError as exc:
        return 0, {"error": str(exc)}


def _committed(pipeline: Pipeline) -> dict[tuple[str, int], int]:
    """The insert job's committed offsets (what it has written), by topic and partition."""
    consumer = Consumer(
        {
            "bootstrap.servers": pipeline.kafka_bootstrap,
            "group.id": pipeline.env()["MOAA_INSERT_GROUP_ID"],
        }
    )
    try:
        parts = [
            TopicPartition(topic, p)
            for topic in (pipeline.stats_topic, pipeline.summary_topic)
            for p in consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ]
        return {(tp.topic, tp.partition): tp.offset for tp in consumer.committed(parts, timeout=10)}
    finally:
        consumer.close()


def _end_offsets(pipeline: Pipeline, parts: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
    consumer = Consumer(
        {"bootstrap.servers": pipeline.kafka_bootstrap, "group.id": "it-watermarks"}
    )
    try:
        return {
            (t, p): consumer.get_watermark_offsets(TopicPartition(t, p), timeout=10)[1]
            for t, p in parts
        }
    finally:
        consumer.close()


def _check_dead_letters(pipeline: Pipeline, manifest: dict[str, Any]) -> None:
    """Exactly the expected rejects, each once (no resent batch doubled one)."""
    expected = manifest["expected"]["rejected"]
    dead = consume_all(pipeline.kafka_bootstrap, pipeline.dlq, sum(expected.values()), idle_s=3)
    letters = [json.loads(m.value()) for m in dead]
    assert Counter(d["reason"] for d in letters) == Counter(expected)
    assert len({(d["source"], d["line"]) for d in letters}) == len(letters)


def test_broker_killed_mid_replay_loses_nothing_and_doubles_nothing(
    pipeline: Pipeline, local_stack: LocalStack, synth_replay: tuple[Path, Path, dict[str, Any]]
) -> None:
    raw, dataset, manifest = synth_replay
    pipeline.dataset = dataset
    jobs = {
        "producer": pipeline.start_producer(),
        "stats": pipeline.start_stats(),
        "insert": pipeline.start_insert(),
    }
    # Foreign messages on the observations topic too: dropped, logged, never a lost good one.
    foreign = Producer({"bootstrap.servers": pipeline.kafka_bootstrap})
    for value in (b"\xff not json", b"[1, 2]", b'{"obs_id": "no time"}'):
        foreign.produce(pipeline.topic, value, b"72502014734")
    assert foreign.flush(30) == 0
    feeder = _feed(pipeline)
    pipeline.wait_for_checkpoint(f"{YEAR}-01-01T06:00:00Z")
    assert feeder.poll() is None, "the replay finished before the kill: make it longer"

    kafka = local_stack.services["kafka"]
    kill_9(kafka)
    down_at = time.monotonic()
    time.sleep(3)  # batches in flight and new ones pile up in the producer meanwhile
    kafka.start()  # same port, same log dir
    print(f"broker down for {time.monotonic() - down_at:.1f} s")
    assert feeder.wait(240) == 0, pipeline.log("feeder")[-3000:]

    truth = _truth(raw, pipeline.workdir)
    print(f"{len(truth)} station-hours, manifest {manifest['expected']}")
    docs = _settled(pipeline, truth, timeout_s=240)
    assert _mismatches(docs, truth) == [], pipeline.log("stats")[-3000:]
    _check_summary(pipeline, truth)
    _check_dead_letters(pipeline, manifest)
    assert '"reason": "not_an_observation"' in pipeline.log("stats")
    assert '"skipped_total": 3' in pipeline.log("stats")
    for name, proc in jobs.items():  # they rode the outage out: nobody restarted them
        assert proc.poll() is None, f"{name} exited:\n{pipeline.log(name)[-3000:]}"


def test_database_killed_mid_write_the_insert_job_waits_and_the_site_recovers(
    pipeline: Pipeline, local_stack: LocalStack, synth_replay: tuple[Path, Path, dict[str, Any]]
) -> None:
    raw, dataset, _ = synth_replay
    pipeline.dataset = dataset
    (port,) = free_ports(1)
    site = f"http://127.0.0.1:{port}"
    insert_ready = f"http://127.0.0.1:{pipeline.insert_port}/readyz"
    jobs = {
        "producer": pipeline.start_producer(),
        "stats": pipeline.start_stats(),
        "insert": pipeline.start_insert(),
        "dashboard": pipeline._start(
            "dashboard",
            ["dashboard"],
            pipeline.env(MOAA_DASHBOARD_PORT=str(port), MOAA_DASHBOARD_REFRESH_S="0.5"),
        ),
    }
    feeder = _feed(pipeline, tick=0.1)  # about 30 s of replay: the insert job keeps writing
    _wait_for_documents(pipeline, "hourly_stats", 20, timeout_s=180)
    wait_until("the site ready", lambda: _get(f"{site}/readyz")[0] == 200, 60)
    truth = _truth(raw, pipeline.workdir)
    station = next(iter(truth)).split("|")[0]
    assert _get(f"{site}/api/stations/{station}/forecast")[0] == 200

    ferretdb = local_stack.services["ferretdb"]
    kill_9(ferretdb)
    down_at = time.monotonic()
    status, body = wait_until(
        "the site to report the outage", lambda: (s := _get(f"{site}/readyz"))[0] == 503 and s, 30
    )
    assert "mongodb unreachable" in body["reason"], body
    status, body = _get(f"{site}/api/stations/{station}/forecast")
    assert status == 503 and "MongoDB unreachable" in body["detail"], (status, body)
    status, body = wait_until(
        "the insert job to report the outage", lambda: (s := _get(insert_ready))[0] == 503 and s, 30
    )
    assert "mongodb unreachable" in body["reason"], body
    wait_until("a failed write", lambda: "MongoDB write failed" in pipeline.log("insert"), 60)
    # While it cannot write, the insert job commits nothing, though results keep coming.
    before = _committed(pipeline)
    time.sleep(4)
    after = _committed(pipeline)
    assert after == before
    ends = wait_until(
        "results the insert job has not written",
        lambda: (
            (e := _end_offsets(pipeline, list(after))) and any(e[k] > after[k] for k in e) and e
        ),
        60,
    )
    print(f"unwritten results at the restart: {sum(ends[k] - max(after[k], 0) for k in ends)}")

    ferretdb.start()  # same port, same SQLite files
    print(f"database down for {time.monotonic() - down_at:.1f} s")
    wait_until("the site to recover", lambda: _get(f"{site}/readyz")[0] == 200, 60)
    assert _get(f"{site}/api/stations/{station}/forecast")[0] == 200
    wait_until("the insert job to recover", lambda: _get(insert_ready)[0] == 200, 60)
    assert feeder.wait(240) == 0, pipeline.log("feeder")[-3000:]

    docs = _settled(pipeline, truth, timeout_s=240)
    assert _mismatches(docs, truth) == [], pipeline.log("insert")[-3000:]
    _check_summary(pipeline, truth)
    for name, proc in jobs.items():
        assert proc.poll() is None, f"{name} exited:\n{pipeline.log(name)[-3000:]}"
