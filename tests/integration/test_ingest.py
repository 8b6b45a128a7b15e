"""Ingest on the real chain: feeder → Unix socket → producer → Kafka, losing nothing."""

from __future__ import annotations

import json
import socket
import struct
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from moaa.common.observation import Observation
from moaa.common.protocol import decode_server_message, encode_batch, frame
from moaa.dataprep.groundtruth import hourly_counts
from moaa.dataprep.prepare import prepare
from moaa.dataprep.synth import synthesize
from moaa.feeder.feeder import FeederSettings

from .conftest import Pipeline, consume_all

pytestmark = pytest.mark.integration

START = datetime(2013, 1, 1, tzinfo=UTC)


def _wait(proc, timeout: float, pipe: Pipeline, name: str) -> None:
    try:
        assert proc.wait(timeout) == 0, pipe.log(name)
    except Exception:
        print(pipe.log("producer"), pipe.log("feeder"))
        raise


def _by_hour(messages: list) -> Counter[datetime]:
    return Counter(Observation.from_json(m.value()).hour for m in messages)


def test_replayed_hours_match_duckdb_counts(pipeline: Pipeline, sample_dir: Path) -> None:
    hours = 96
    pipeline.start_producer()
    feeder = pipeline.start_feeder("--tick", "0", "--hours", str(hours))
    _wait(feeder, 120, pipeline, "feeder")

    messages = consume_all(pipeline.kafka_bootstrap, pipeline.topic, idle_s=3)
    end = START + timedelta(hours=hours)
    truth = {h: n for h, n in hourly_counts(sample_dir).items() if START <= h < end}
    assert _by_hour(messages) == truth
    assert sum(truth.values()) > 150  # the sample starts 2013-01-01 06:00 UTC, 2 stations
    assert {m.key().decode() for m in messages} == {"72502014734", "74486094789"}
    assert all(dict(m.headers())["moaa-schema"] == b"observation.v1" for m in messages)
    assert consume_all(pipeline.kafka_bootstrap, pipeline.dlq, idle_s=1) == []
    checkpoint = json.loads(pipeline.checkpoint.read_text())
    assert checkpoint["next_hour"] == "2013-01-05T00:00:00Z"


def test_producer_killed_mid_replay_loses_nothing(pipeline: Pipeline, sample_dir: Path) -> None:
    hours = 300
    producer = pipeline.start_producer()
    feeder = pipeline.start_feeder("--tick", "0.05", "--hours", str(hours))
    pipeline.wait_for_checkpoint("2013-01-01T12:00:00Z")
    assert feeder.poll() is None, "the replay finished before the kill: slow the tick"
    pipeline.crash(producer)
    time.sleep(1.0)
    assert pipeline.socket.exists()  # a crashed producer leaves a stale socket behind
    pipeline.start_producer()
    _wait(feeder, 180, pipeline, "feeder")

    messages = consume_all(pipeline.kafka_bootstrap, pipeline.topic, idle_s=3)
    ids = Counter(Observation.from_json(m.value()).obs_id for m in messages)
    end = START + timedelta(hours=hours)
    truth = {h: n for h, n in hourly_counts(sample_dir).items() if START <= h < end}
    # every hour complete: counting distinct ids per hour gives the ground truth exactly
    distinct = {Observation.from_json(m.value()).obs_id: m for m in messages}
    assert _by_hour(list(distinct.values())) == truth
    # duplicates are only redeliveries of the same record (same id, same bytes)
    values: dict[str, set[bytes]] = {}
    for m in messages:
        values.setdefault(Observation.from_json(m.value()).obs_id, set()).add(m.value())
    assert all(len(v) == 1 for v in values.values())
    assert sum(ids.values()) - len(ids) <= 200  # at most the batches in flight were resent
    assert "lost the producer" in pipeline.log("feeder") or "not reachable" in pipeline.log(
        "feeder"
    )


def test_feeder_killed_resumes_from_checkpoint(pipeline: Pipeline, sample_dir: Path) -> None:
    hours = 300
    pipeline.start_producer()
    feeder = pipeline.start_feeder("--tick", "0.05", "--hours", str(hours))
    pipeline.wait_for_checkpoint("2013-01-01T12:00:00Z")
    assert feeder.poll() is None, "the replay finished before the kill: slow the tick"
    pipeline.crash(feeder)
    resume_at = json.loads(pipeline.checkpoint.read_text())["next_hour"]
    assert resume_at > "2013-01-01T12:00:00Z"

    again = pipeline.start_feeder("--tick", "0", "--hours", str(hours))
    _wait(again, 120, pipeline, "feeder")
    assert f"resuming at {resume_at}" in pipeline.log("feeder")

    messages = consume_all(pipeline.kafka_bootstrap, pipeline.topic, idle_s=3)
    distinct = {Observation.from_json(m.value()).obs_id: m for m in messages}
    end = START + timedelta(hours=hours)
    truth = {h: n for h, n in hourly_counts(sample_dir).items() if START <= h < end}
    assert _by_hour(list(distinct.values())) == truth
    # at most the hours in flight at the kill (the feeder's window) were sent twice
    window = FeederSettings().feeder_window
    assert len(messages) - len(distinct) <= window * 2 * 2


def test_malformed_rows_reach_the_dlq_and_counts_reconcile(
    kafka_bootstrap: str, tmp_path: Path, pipeline: Pipeline
) -> None:
    raw = tmp_path / "synth"
    manifest = synthesize(6, 2020, raw, seed=7, malformed_rate=0.03, days=3)
    dataset = tmp_path / "dataset"
    prepare(raw, dataset, 2020)
    pipeline.dataset = dataset
    pipeline.start_producer()
    feeder = pipeline.start_feeder(
        "--tick", "0", "--hours", str(3 * 24), "--start", "2020-01-01T00:00:00"
    )
    _wait(feeder, 120, pipeline, "feeder")

    accepted = consume_all(kafka_bootstrap, pipeline.topic, idle_s=3)
    dead = consume_all(kafka_bootstrap, pipeline.dlq, idle_s=2)
    reasons = Counter(json.loads(m.value())["reason"] for m in dead)
    expected = manifest["expected"]
    assert len(accepted) == expected["accepted"]
    assert reasons == Counter(expected["rejected"])
    assert len(accepted) + len(dead) == manifest["rows"]  # in = accepted + rejected
    assert {json.loads(m.value())["stage"] for m in dead} == {"parse"}
    assert all(json.loads(m.value())["detail"] for m in dead)


def _talk(sock: socket.socket, payload: bytes) -> object:
    sock.sendall(frame(payload))
    (length,) = struct.unpack(">I", sock.recv(4, socket.MSG_WAITALL))
    return decode_server_message(sock.recv(length, socket.MSG_WAITALL))


def _connect(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(30)
    sock.connect(str(path))
    assert type(_talk(sock, b'{"type":"hello","protocol":1,"peer":"test"}')).__name__ == "Hello"
    return sock


def test_garbage_on_the_socket_never_crashes_the_producer(pipeline: Pipeline) -> None:
    producer = pipeline.start_producer()

    sock = _connect(pipeline.socket)
    answer = _talk(sock, b"\xff\xfe not json")
    assert answer.reason == "invalid_frame" and answer.retry is False  # type: ignore[attr-defined]
    answer = _talk(sock, b'{"type":"shout","text":"hi"}')
    assert answer.reason == "invalid_frame"  # type: ignore[attr-defined]
    good = Observation(
        obs_id="72502014734-20130101060000-00000000", station_id="72502014734",
        ts=datetime(2013, 1, 1, 6, tzinfo=UTC), name="N", latitude=40.7, longitude=-74.2,
        elevation_m=2.0, report_type="FM-15", source="7", temperature_c=3.9, temperature_quality="1",
    )  # fmt: skip
    bad = good.to_json().replace(b'"latitude":40.7', b'"latitude":400.7')
    answer = _talk(sock, encode_batch("b1", "2013-01-01T06:00:00Z", [good.to_json(), bad], []))
    assert (answer.accepted, answer.rejected) == (1, 1)  # type: ignore[attr-defined]
    # the same connection still works after garbage
    answer = _talk(sock, encode_batch("b2", "2013-01-01T07:00:00Z", [], []))
    assert (answer.accepted, answer.rejected) == (0, 0)  # type: ignore[attr-defined]

    # an impossible length: nack, then the producer closes this connection
    sock.sendall(struct.pack(">I", 0xFFFFFFF0))
    (length,) = struct.unpack(">I", sock.recv(4, socket.MSG_WAITALL))
    assert decode_server_message(sock.recv(length, socket.MSG_WAITALL)).reason == "bad_frame_length"  # type: ignore[union-attr]
    assert sock.recv(1) == b""
    sock.close()

    # a peer closing mid-frame
    sock = _connect(pipeline.socket)
    sock.sendall(struct.pack(">I", 1000) + b'{"type":"batch"')
    sock.close()

    # a batch before hello is refused; the server keeps serving
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(pipeline.socket))
    assert (
        _talk(sock, encode_batch("b3", "2013-01-01T08:00:00Z", [], [])).reason == "hello_required"
    )  # type: ignore[attr-defined]
    sock.close()

    sock = _connect(pipeline.socket)
    assert (
        _talk(sock, encode_batch("b4", "2013-01-01T09:00:00Z", [good.to_json()], [])).accepted == 1
    )  # type: ignore[attr-defined]
    sock.close()
    assert producer.poll() is None

    dead = consume_all(pipeline.kafka_bootstrap, pipeline.dlq, idle_s=2)
    reasons = Counter(json.loads(m.value())["reason"] for m in dead)
    assert reasons == {"invalid_frame": 2, "invalid_record": 1, "bad_frame_length": 1}
    assert all(json.loads(m.value())["stage"] == "producer" for m in dead)
    log = pipeline.log("producer")
    assert "mid-frame" in log


def test_stale_socket_is_replaced_and_a_live_one_refused(pipeline: Pipeline) -> None:
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(pipeline.socket))
    stale.close()  # bound, never listening: a crashed producer's leftover
    first = pipeline.start_producer()
    assert oct(pipeline.socket.stat().st_mode & 0o777) == "0o660"
    second = pipeline._start(
        "producer2", ["producer"], pipeline.env(MOAA_PRODUCER_METRICS_PORT="0")
    )
    assert second.wait(60) != 0
    assert "already serving" in pipeline.log("producer2")
    assert first.poll() is None
