"""The feeder: replay the prepared dataset hour by hour over the producer's Unix socket.

One hour of every station is one ``batch`` frame (see :mod:`moaa.common.protocol`). The
durable checkpoint (the next hour to send) advances only after the producer's ``ack``,
so a restart resumes at the first unacknowledged hour; a ``nack``, a timeout or a lost
connection makes it resend the same hour after a backoff. Ticks are measured from the
start of each send: with a 30 s tick, hour H+1 leaves 30 s after hour H left (or at once,
if the acknowledgement took longer). A tick of 0 sends as fast as the producer acks.
"""

from __future__ import annotations

import json
import logging
import os
import random
import select
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import msgspec
import typer
from prometheus_client import Counter, Gauge, Histogram
from pydantic import Field

from moaa.common.errors import MoaaError
from moaa.common.hours import format_hour, parse_hour
from moaa.common.logs import configure_logging
from moaa.common.ops import run_component
from moaa.common.progress import ProgressReporter
from moaa.common.protocol import (
    PROTOCOL_VERSION,
    Ack,
    Hello,
    Nack,
    PeerClosed,
    decode_server_message,
    encode,
    encode_batch,
    read_frame,
    send_frame,
)
from moaa.common.settings import MoaaSettings
from moaa.feeder.dataset import HourlyDataset, year_hours

__all__ = ["Checkpoint", "Feeder", "FeederError", "FeederSettings", "command"]

log = logging.getLogger(__name__)

HOURS_SENT = Counter("weather_feeder_hours_sent_total", "Hours sent and acknowledged")
RECORDS_SENT = Counter(
    "weather_feeder_records_sent_total", "Records sent and acknowledged, by kind", ["kind"]
)
REPLAY_HOUR = Gauge(
    "weather_feeder_replay_hour_timestamp_seconds", "The last acknowledged replay hour (Unix time)"
)
ACK_LATENCY = Histogram(
    "weather_feeder_ack_latency_seconds",
    "Time from sending a batch to its acknowledgement",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
RECONNECTS = Counter(
    "weather_feeder_reconnects_total", "Connections (re)opened to the producer after a failure"
)
NACKS = Counter("weather_feeder_nacks_total", "Batches the producer refused, by reason", ["reason"])
_HOUR = timedelta(hours=1)
#: Acks arriving back to back share one checkpoint write, but never one older than this.
_CHECKPOINT_MAX_AGE_S = 0.5


class FeederSettings(MoaaSettings):
    """Settings of the feeder (``MOAA_*``)."""

    dataset_dir: Path = Field(
        Path(".local/dataset"), description="Prepared dataset to replay (`moaa prepare`)."
    )
    socket_path: Path = Field(
        Path(".local/run/producer.sock"), description="The producer's Unix socket."
    )
    tick_seconds: float = Field(
        30.0, ge=0, description="Seconds between hours; 0 = as fast as acks come."
    )
    replay_year: int | None = Field(
        None, description="Year to replay (default: the dataset's year)."
    )
    replay_start: datetime | None = Field(
        None, description="First hour (UTC, default: 1 January 00:00)."
    )
    replay_end: datetime | None = Field(
        None, description="Last hour, inclusive (default: 31 December 23:00)."
    )
    checkpoint_path: Path = Field(
        Path(".local/feeder/checkpoint.json"),
        description="Durable checkpoint: the next hour to send.",
    )
    ack_timeout_s: float = Field(120.0, description="How long to wait for an ack before resending.")
    feeder_window: int = Field(
        8, ge=1, description="Batches that may await their ack at once (matters at short ticks)."
    )
    reconnect_max_backoff_s: float = Field(
        10.0, description="Upper bound of the reconnect backoff."
    )
    feeder_metrics_port: int = Field(
        9300, description="Port of /metrics, /healthz, /readyz (0 = off)."
    )
    progress_log_every_s: float = Field(
        10.0, description="Seconds between progress log lines (no terminal)."
    )


class Checkpoint:
    """The next hour to send, written atomically (temp file, fsync, rename).

    The folder is not fsynced after the rename: after a power loss the file is either the
    new checkpoint or the previous one, and the previous one only makes the feeder resend
    hours the producer already has (redeliveries with the same ids), never skip one.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> datetime | None:
        try:
            data = json.loads(self.path.read_text())
            return parse_hour(data["next_hour"])
        except FileNotFoundError:
            return None
        except (ValueError, KeyError) as exc:
            raise FeederError(
                f"unreadable checkpoint {self.path}: {exc}; delete it to restart the replay"
            ) from None

    def save(self, next_hour: datetime) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("w") as fh:
            json.dump(
                {"next_hour": format_hour(next_hour), "saved_at": datetime.now(UTC).isoformat()}, fh
            )
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(self.path)


class FeederError(MoaaError):
    """The replay cannot go on: a bad checkpoint or range, or the producer refused for good."""


class _Stopping(Exception):
    """Asked to stop while waiting for the producer: end the replay where it is."""


@dataclass(frozen=True)
class _InFlight:
    """A batch sent and not yet acknowledged."""

    hour: datetime
    batch_id: str
    records: int
    rejects: int
    sent_at: float


class Feeder:
    """Send hours ``[start, end]`` of ``dataset`` to the producer, resuming from the checkpoint.

    The transport and the clock are injectable (the unit tests play the producer on a socket
    pair and move a fake clock): ``connect`` returns a connected stream socket (default: the
    producer's Unix socket at ``settings.socket_path``), ``clock`` monotonic seconds, ``sleep``
    waits.
    """

    def __init__(
        self,
        settings: FeederSettings,
        dataset: HourlyDataset,
        *,
        connect: Callable[[], socket.socket] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.dataset = dataset
        self._open = connect or self._open_unix_socket
        self._clock = clock
        self._sleep = sleep
        year = settings.replay_year or dataset.year
        first, last = year_hours(year)
        self.start = (settings.replay_start or first).astimezone(UTC)
        self.end = (settings.replay_end or last).astimezone(UTC)
        if self.end < self.start:
            raise FeederError(
                f"replay end {format_hour(self.end)} is before its start {format_hour(self.start)}"
            )
        self.checkpoint = Checkpoint(settings.checkpoint_path)
        self._sock: socket.socket | None = None
        self._in_flight: deque[_InFlight] = deque()
        self._next_hour = self.start
        self._next_send_at = 0.0
        self._acked_through: datetime | None = None
        self._saved_at = clock()
        self._backoff = 0.2
        self._stopping = False
        #: (records, seconds from send to ack, hour) of the largest batch acknowledged.
        self.busiest: tuple[int, float, str] = (0, 0.0, "")

    # -- connection -------------------------------------------------------------------------

    def _open_unix_socket(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.settings.ack_timeout_s)
        try:
            sock.connect(str(self.settings.socket_path))
        except OSError:
            sock.close()
            raise
        return sock

    def _connect(self) -> socket.socket:
        """Connect and say hello, retrying with exponential backoff and jitter."""
        attempt = 0
        while not self._stopping:
            sock: socket.socket | None = None
            try:
                sock = self._open()
                sock.settimeout(self.settings.ack_timeout_s)
                send_frame(sock, encode(Hello(PROTOCOL_VERSION, "moaa-feeder")))
                answer = decode_server_message(read_frame(sock))
                if isinstance(answer, Nack):
                    raise FeederError(
                        f"producer refused the connection: {answer.reason} {answer.detail}"
                    )
                self._backoff = 0.2
                if attempt:
                    log.info("connected to the producer after %d attempts", attempt + 1)
                return sock
            except (OSError, PeerClosed) as exc:
                if sock is not None:
                    sock.close()
                attempt += 1
                RECONNECTS.inc()
                jitter = 0.5 + random.random() / 2  # noqa: S311 - jitter, not cryptography
                delay = min(self._backoff, self.settings.reconnect_max_backoff_s) * jitter
                if attempt == 1 or attempt % 10 == 0:
                    log.warning(
                        "producer not reachable at %s (%s); retrying",
                        self.settings.socket_path,
                        exc,
                    )
                self._sleep(delay)
                self._backoff = min(self._backoff * 2, self.settings.reconnect_max_backoff_s)
        raise _Stopping

    def _drop_connection(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    # -- replay -------------------------------------------------------------------------------

    def ready(self) -> tuple[bool, str]:
        if self._sock is None:
            return False, "not connected to the producer"
        return True, "ok"

    def stop(self) -> None:
        self._stopping = True

    def _restart_from_first_unacked(self, why: str) -> None:
        """Forget the connection and every unacknowledged batch; resend from the first."""
        self._save_checkpoint()
        self._drop_connection()
        if self._in_flight:
            self._next_hour = self._in_flight[0].hour
            log.warning(
                "%s; resending from %s",
                why,
                format_hour(self._next_hour),
                extra={"in_flight": len(self._in_flight)},
            )
            self._in_flight.clear()
        self._sleep(min(self._backoff, self.settings.reconnect_max_backoff_s))
        self._backoff = min(self._backoff * 2, self.settings.reconnect_max_backoff_s)

    def _may_send(self, now: float) -> bool:
        return (
            self._next_hour <= self.end
            and not self._stopping
            and len(self._in_flight) < self.settings.feeder_window
            and now >= self._next_send_at
        )

    def _send_next(self, now: float) -> None:
        if self._sock is None:
            self._sock = self._connect()
        rows = self.dataset.hour(self._next_hour)
        batch_id = format_hour(self._next_hour)
        batch = _InFlight(self._next_hour, batch_id, len(rows.records), len(rows.rejects), now)
        self._in_flight.append(batch)
        try:
            send_frame(self._sock, encode_batch(batch_id, batch_id, rows.records, rows.rejects))
        except OSError as exc:
            self._restart_from_first_unacked(f"lost the producer ({exc})")
            return
        log.debug("sent %s", batch_id, extra={"hour": batch_id, "sent_at_unix_s": time.time()})
        self._next_hour += _HOUR
        tick = self.settings.tick_seconds
        self._next_send_at = max(self._next_send_at + tick, now) if tick else now

    def _await_answer(self, now: float) -> Ack | None:
        """The oldest batch's ack, or None (no answer yet, or the batch must be resent)."""
        head = self._in_flight[0]
        wait = head.sent_at + self.settings.ack_timeout_s - now
        if wait <= 0:
            self._restart_from_first_unacked(f"no answer for {head.batch_id}")
            return None
        if self._next_hour <= self.end and len(self._in_flight) < self.settings.feeder_window:
            wait = min(wait, self._next_send_at - now)  # wake up for the next tick
        sock = self._sock
        if sock is None:  # never: the loop runs while connected
            return None
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            # Nothing to read right now: a good moment to persist what was acknowledged
            # (acks that arrive together share one checkpoint write).
            self._save_checkpoint()
            readable, _, _ = select.select([sock], [], [], max(wait, 0.0))
        if not readable:
            return None
        try:
            answer = decode_server_message(read_frame(sock))
        except (OSError, PeerClosed, msgspec.DecodeError, msgspec.ValidationError) as exc:
            self._restart_from_first_unacked(f"lost the producer ({exc})")
            return None
        if isinstance(answer, Ack) and answer.batch_id == head.batch_id:
            return answer
        reason = answer.reason if isinstance(answer, Nack) else "unexpected answer"
        NACKS.labels(reason).inc()
        if isinstance(answer, Nack) and not answer.retry:
            raise FeederError(
                f"producer rejected {head.batch_id} for good: {reason} {answer.detail}"
            )
        self._restart_from_first_unacked(f"{head.batch_id} not acknowledged ({reason})")
        return None

    def _acknowledged(self) -> _InFlight:
        head = self._in_flight.popleft()
        self._backoff = 0.2
        latency = self._clock() - head.sent_at
        ACK_LATENCY.observe(latency)
        if head.records + head.rejects > self.busiest[0]:
            self.busiest = (head.records + head.rejects, latency, head.batch_id)
        self._acked_through = head.hour
        if self._clock() - self._saved_at >= _CHECKPOINT_MAX_AGE_S:
            self._save_checkpoint()  # acks keep streaming in: do not let the file lag behind
        HOURS_SENT.inc()
        RECORDS_SENT.labels("obs").inc(head.records)
        RECORDS_SENT.labels("reject").inc(head.rejects)
        REPLAY_HOUR.set(head.hour.timestamp())
        return head

    def _save_checkpoint(self) -> None:
        """Persist the first unacknowledged hour, if acks arrived since the last save."""
        if self._acked_through is not None:
            self.checkpoint.save(self._acked_through + _HOUR)
            self._acked_through = None
            self._saved_at = self._clock()

    def run(self) -> int:
        """Replay until the end of the range (or a stop signal); return hours acknowledged.

        Up to ``window`` batches may await their acknowledgement at once (acks come back
        in order); the checkpoint always names the first unacknowledged hour.
        """
        resume = self.checkpoint.load()
        self._next_hour = max(resume or self.start, self.start)
        if resume:
            log.info(
                "resuming at %s from checkpoint %s",
                format_hour(self._next_hour),
                self.checkpoint.path,
            )
        self.dataset.hour(self._next_hour)  # read the first day (and start on the next)
        self._next_send_at = self._clock()
        acked = records = 0
        first_send: float | None = None
        total_hours = int((self.end - self.start) / _HOUR) + 1
        with ProgressReporter(
            "replaying hours", total_hours, "hours", log, self.settings.progress_log_every_s
        ) as progress:
            progress.advance(int((self._next_hour - self.start) / _HOUR))
            while self._in_flight or (self._next_hour <= self.end and not self._stopping):
                now = self._clock()
                if self._may_send(now):
                    first_send = first_send or now
                    try:
                        self._send_next(now)
                    except _Stopping:
                        break
                elif not self._in_flight:
                    self._save_checkpoint()
                    self._sleep(min(max(self._next_send_at - now, 0.0), 0.5))
                elif answer := self._await_answer(now):
                    head = self._acknowledged()
                    acked += 1
                    records += head.records + head.rejects
                    progress.advance(
                        1, hour=head.batch_id, accepted=answer.accepted, rejected=answer.rejected
                    )
        self._save_checkpoint()
        self._drop_connection()
        duration = self._clock() - first_send if first_send else 0.0
        log.info(
            "replay %s",
            "stopped" if self._stopping else "finished",
            extra={
                "hours_sent": acked,
                "records_sent": records,
                "duration_s": round(duration, 3),
                "next_hour": format_hour(self._next_hour),
                "busiest_hour": self.busiest[2],
                "busiest_hour_records": self.busiest[0],
                "busiest_hour_ack_s": round(self.busiest[1], 3),
            },
        )
        return acked


def command(
    dataset: Annotated[
        Path | None, typer.Option(help="Prepared dataset [env MOAA_DATASET_DIR].")
    ] = None,
    socket_path: Annotated[
        Path | None, typer.Option("--socket", help="Producer socket [env MOAA_SOCKET_PATH].")
    ] = None,
    tick: Annotated[
        float | None,
        typer.Option(help="Seconds per hour, 0 = as fast as possible [env MOAA_TICK_SECONDS]."),
    ] = None,
    start: Annotated[
        datetime | None, typer.Option(help="First hour, UTC [env MOAA_REPLAY_START].")
    ] = None,
    end: Annotated[
        datetime | None, typer.Option(help="Last hour, UTC, inclusive [env MOAA_REPLAY_END].")
    ] = None,
    hours: Annotated[
        int | None, typer.Option(help="Replay this many hours from the start (overrides --end).")
    ] = None,
) -> None:
    """Replay the prepared dataset hour by hour over the producer's Unix socket.

    Each tick sends the next hour of every station as one batch and waits for the
    producer's acknowledgement before advancing the durable checkpoint, so a restart
    resumes at the first unacknowledged hour. Default range: the dataset's whole year.
    """
    overrides: dict[str, object] = {
        "dataset_dir": dataset,
        "socket_path": socket_path,
        "tick_seconds": tick,
        "replay_start": start.replace(tzinfo=UTC) if start and start.tzinfo is None else start,
        "replay_end": end.replace(tzinfo=UTC) if end and end.tzinfo is None else end,
    }
    settings = FeederSettings(**{k: v for k, v in overrides.items() if v is not None})
    configure_logging(settings.log_level, settings.log_format, component="feeder")
    data = HourlyDataset(settings.dataset_dir)
    feeder = Feeder(settings, data)
    if hours is not None:
        feeder.end = feeder.start + (hours - 1) * _HOUR
    run_component("feeder", settings.feeder_metrics_port, feeder.ready, feeder.run, feeder.stop)
