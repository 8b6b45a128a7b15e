"""The feeder's state machine with an injected clock and transport: each test plays the
producer on the other end of a socket pair, scripted, and a fake clock that only moves when
the feeder sleeps (so ticks and timeouts are checked without waiting for them)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from moaa.common.protocol import (
    PROTOCOL_VERSION,
    Ack,
    Batch,
    Hello,
    Nack,
    PeerClosed,
    decode_client_message,
    encode,
    read_frame,
    send_frame,
)
from moaa.feeder.dataset import HourRows
from moaa.feeder.feeder import Feeder, FeederError, FeederSettings

START = datetime(2020, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


class FakeDataset:
    """``hours`` hours of one record each (plus a reject at 02:00)."""

    year = 2020

    def hour(self, hour: datetime) -> HourRows:
        n = int((hour - START) / HOUR)
        rejects = [json.dumps({"line": n}).encode()] if n == 2 else []
        return HourRows(hour=hour, records=[json.dumps({"n": n}).encode()], rejects=rejects)


class FakeClock:
    """Monotonic seconds that advance only when the feeder sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(seconds, 0.0)


#: How the scripted producer answers one batch: ``ack``, ``nack`` (retry), ``fatal`` (a nack
#: without retry), ``drop`` (close the connection without an answer).
Answer = str


@dataclass
class FakeProducer:
    """The producer's side of each connection: a hello, then ``script``'s answers in order
    (``ack`` once the script is exhausted). Records every batch received and at what time."""

    clock: FakeClock
    script: list[Answer] = field(default_factory=list)
    batches: list[tuple[str, float]] = field(default_factory=list)
    connections: int = 0
    threads: list[threading.Thread] = field(default_factory=list)

    def connect(self) -> socket.socket:
        ours, theirs = socket.socketpair()
        self.connections += 1
        thread = threading.Thread(target=self._serve, args=(ours,), daemon=True)
        thread.start()
        self.threads.append(thread)
        return theirs

    def _serve(self, sock: socket.socket) -> None:
        with sock:
            try:
                hello = decode_client_message(read_frame(sock))
                assert isinstance(hello, Hello)
                send_frame(sock, encode(Hello(PROTOCOL_VERSION, "fake-producer")))
                while True:
                    batch = decode_client_message(read_frame(sock))
                    assert isinstance(batch, Batch)
                    self.batches.append((batch.batch_id, self.clock()))
                    answer = self.script.pop(0) if self.script else "ack"
                    if answer == "drop":
                        return
                    if answer in ("nack", "fatal"):
                        reply = Nack(batch.batch_id, "kafka_unavailable", retry=answer == "nack")
                    else:
                        reply = Ack(batch.batch_id, len(batch.records), len(batch.rejects))
                    send_frame(sock, encode(reply))
            except (PeerClosed, OSError):
                return

    def sent(self) -> list[str]:
        return [batch_id for batch_id, _ in self.batches]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_feeder(
    tmp_path: Path, clock: FakeClock
) -> Iterator[Callable[..., tuple[Feeder, FakeProducer]]]:
    producers: list[FakeProducer] = []

    def make(
        hours: int, script: list[Answer] | None = None, **settings: object
    ) -> tuple[Feeder, FakeProducer]:
        producer = FakeProducer(clock, list(script or []))
        producers.append(producer)
        config = FeederSettings(
            checkpoint_path=tmp_path / "checkpoint.json",
            replay_start=START,
            replay_end=START + (hours - 1) * HOUR,
            feeder_metrics_port=0,
            **settings,  # type: ignore[arg-type] - pydantic validates them
        )
        feeder = Feeder(
            config, FakeDataset(), connect=producer.connect, clock=clock, sleep=clock.sleep
        )
        return feeder, producer

    yield make
    for producer in producers:
        for thread in producer.threads:
            thread.join(5)


def _checkpoint(tmp_path: Path) -> str:
    return json.loads((tmp_path / "checkpoint.json").read_text())["next_hour"]


def test_every_hour_is_sent_once_in_order_and_the_checkpoint_follows_the_acks(
    make_feeder: Callable[..., tuple[Feeder, FakeProducer]], tmp_path: Path
) -> None:
    feeder, producer = make_feeder(6, tick_seconds=0)
    assert feeder.run() == 6
    assert producer.sent() == [f"2020-01-01T0{h}:00:00Z" for h in range(6)]
    assert producer.connections == 1
    assert _checkpoint(tmp_path) == "2020-01-01T06:00:00Z"


def test_hours_leave_one_tick_apart(
    make_feeder: Callable[..., tuple[Feeder, FakeProducer]], clock: FakeClock
) -> None:
    feeder, producer = make_feeder(4, tick_seconds=30, feeder_window=1)
    began = clock()
    feeder.run()
    assert [round(at - began, 3) for _, at in producer.batches] == [0.0, 30.0, 60.0, 90.0]


def test_a_nack_resends_the_same_hour_and_a_lost_connection_resends_from_the_first_unacked(
    make_feeder: Callable[..., tuple[Feeder, FakeProducer]], tmp_path: Path
) -> None:
    # window 1: each batch waits for its answer: 00 acked, 01 nacked then acked, 02 dropped
    # (the connection closed without an answer) then acked, 03 acked
    feeder, producer = make_feeder(
        4, ["ack", "nack", "ack", "drop"], tick_seconds=0, feeder_window=1
    )
    assert feeder.run() == 4
    hours = [f"2020-01-01T0{h}:00:00Z" for h in range(4)]
    assert producer.sent() == [hours[0], hours[1], hours[1], hours[2], hours[2], hours[3]]
    assert producer.connections == 3  # the first, after the nack, after the drop
    assert _checkpoint(tmp_path) == "2020-01-01T04:00:00Z"


def test_a_restart_resumes_at_the_first_unacknowledged_hour(
    make_feeder: Callable[..., tuple[Feeder, FakeProducer]], tmp_path: Path
) -> None:
    (tmp_path / "checkpoint.json").write_text(json.dumps({"next_hour": "2020-01-01T03:00:00Z"}))
    feeder, producer = make_feeder(5, tick_seconds=0)
    assert feeder.run() == 2
    assert producer.sent() == ["2020-01-01T03:00:00Z", "2020-01-01T04:00:00Z"]


def test_no_answer_within_the_timeout_resends(
    make_feeder: Callable[..., tuple[Feeder, FakeProducer]], clock: FakeClock
) -> None:
    feeder, producer = make_feeder(2, tick_seconds=0, feeder_window=1, ack_timeout_s=0.5)
    original = producer._serve

    def slow_first(sock: socket.socket) -> None:
        if producer.connections == 1:  # the first connection never answers a batch
            with sock:
                read_frame(sock)
                send_frame(sock, encode(Hello(PROTOCOL_VERSION, "fake-producer")))
                read_frame(sock)
                producer.batches.append(("unanswered", clock()))
                clock.now += 1  # the ack timeout passes
                try:
                    read_frame(sock)
                except (PeerClosed, OSError):
                    return
            return
        original(sock)

    producer._serve = slow_first  # type: ignore[method-assign]
    assert feeder.run() == 2
    assert producer.sent() == ["unanswered", "2020-01-01T00:00:00Z", "2020-01-01T01:00:00Z"]


def test_a_refusal_for_good_ends_the_replay_with_the_reason(
    make_feeder: Callable[..., tuple[Feeder, FakeProducer]],
) -> None:
    feeder, _ = make_feeder(3, ["fatal"], tick_seconds=0, feeder_window=1)
    with pytest.raises(FeederError, match="rejected 2020-01-01T00:00:00Z for good"):
        feeder.run()


def test_a_stop_while_the_producer_is_unreachable_ends_the_replay(
    make_feeder: Callable[..., tuple[Feeder, FakeProducer]], tmp_path: Path, clock: FakeClock
) -> None:
    feeder, producer = make_feeder(3, tick_seconds=0)

    def unreachable() -> socket.socket:
        if len(clock.sleeps) >= 3:  # after three retries, someone sends SIGTERM
            feeder.stop()
        raise ConnectionRefusedError("no producer")

    feeder._open = unreachable
    assert feeder.run() == 0
    assert clock.sleeps[:3] == pytest.approx([0.15, 0.3, 0.6], rel=0.34)  # backoff, jittered
    assert not (tmp_path / "checkpoint.json").exists()
    assert producer.connections == 0


def test_a_command_error_is_one_line_and_exit_code_1(tmp_path: Path) -> None:
    moaa = Path(sys.executable).with_name("moaa")
    result = subprocess.run(
        [str(moaa), "feeder", "--dataset", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
