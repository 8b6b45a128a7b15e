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
import signal
import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from prometheus_client import Counter, Gauge, Histogram
from pydantic import Field

from moaa.common.logs import configure_logging
from moaa.common.metrics import publish_build_info
from moaa.common.ops import OpsServer
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

__all__ = ["Checkpoint", "Feeder", "FeederSettings", "command"]

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


def _iso(hour: datetime) -> str:
    return hour.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
    """The next hour to send, written atomically (temp file, fsync, rename)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> datetime | None:
        try:
            data = json.loads(self.path.read_text())
            return datetime.fromisoformat(data["next_hour"].replace("Z", "+00:00"))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError) as exc:
            raise SystemExit(
                f"unreadable checkpoint {self.path}: {exc}; delete it to restart the replay"
            ) from None

    def save(self, next_hour: datetime) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("w") as fh:
            json.dump({"next_hour": _iso(next_hour), "saved_at": datetime.now(UTC).isoformat()}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


class Feeder:
    """Send hours ``[start, end]`` of ``dataset`` to the producer, resuming from the checkpoint."""

    def __init__(self, settings: FeederSettings, dataset: HourlyDataset) -> None:
        self.settings = settings
        self.dataset = dataset
        year = settings.replay_year or dataset.year
        first, last = year_hours(year)
        self.start = (settings.replay_start or first).astimezone(UTC)
        self.end = (settings.replay_end or last).astimezone(UTC)
        if self.end < self.start:
            raise SystemExit(f"replay end {_iso(self.end)} is before its start {_iso(self.start)}")
        self.checkpoint = Checkpoint(settings.checkpoint_path)
        self._sock: socket.socket | None = None
        self._backoff = 0.2
        self._stopping = False
        self._last_ack = time.monotonic()

    # -- connection -------------------------------------------------------------------------

    def _connect(self) -> socket.socket:
        """Connect and say hello, retrying with exponential backoff and jitter."""
        attempt = 0
        while not self._stopping:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.settings.ack_timeout_s)
            try:
                sock.connect(str(self.settings.socket_path))
                send_frame(sock, encode(Hello(PROTOCOL_VERSION, "moaa-feeder")))
                answer = decode_server_message(read_frame(sock))
                if isinstance(answer, Nack):
                    raise SystemExit(
                        f"producer refused the connection: {answer.reason} {answer.detail}"
                    )
                self._backoff = 0.2
                if attempt:
                    log.info("connected to the producer after %d attempts", attempt + 1)
                return sock
            except (OSError, PeerClosed) as exc:
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
                time.sleep(delay)
                self._backoff = min(self._backoff * 2, self.settings.reconnect_max_backoff_s)
        raise SystemExit(0)

    def _drop_connection(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _send_until_acked(self, hour: datetime, payload: bytes) -> Ack:
        while True:
            if self._sock is None:
                self._sock = self._connect()
            sent = time.perf_counter()
            try:
                send_frame(self._sock, payload)
                answer = decode_server_message(read_frame(self._sock))
            except (OSError, PeerClosed) as exc:
                log.warning("lost the producer while sending %s (%s); resending", _iso(hour), exc)
                self._drop_connection()
                continue
            if isinstance(answer, Ack):
                ACK_LATENCY.observe(time.perf_counter() - sent)
                return answer
            if isinstance(answer, Nack):
                NACKS.labels(answer.reason).inc()
                if not answer.retry:
                    reason = f"{answer.reason} {answer.detail}"
                    raise SystemExit(f"producer rejected hour {_iso(hour)} for good: {reason}")
                log.warning(
                    "hour %s nacked (%s: %s); resending", _iso(hour), answer.reason, answer.detail
                )
                time.sleep(min(self._backoff, self.settings.reconnect_max_backoff_s))
                self._backoff = min(self._backoff * 2, self.settings.reconnect_max_backoff_s)

    # -- replay -------------------------------------------------------------------------------

    def ready(self) -> tuple[bool, str]:
        if self._sock is None:
            return False, "not connected to the producer"
        return True, "ok"

    def stop(self) -> None:
        self._stopping = True

    def run(self) -> int:
        """Replay until the end of the range (or a stop signal); return hours sent."""
        resume = self.checkpoint.load()
        hour = max(resume or self.start, self.start)
        if resume:
            log.info("resuming at %s from checkpoint %s", _iso(hour), self.checkpoint.path)
        total_hours = int((self.end - self.start) / _HOUR) + 1
        done_hours = int((hour - self.start) / _HOUR)
        sent = 0
        with ProgressReporter(
            "replaying hours", total_hours, "hours", log, self.settings.progress_log_every_s
        ) as progress:
            progress.advance(done_hours)
            while hour <= self.end and not self._stopping:
                tick_started = time.monotonic()
                rows = self.dataset.hour(hour)
                payload = encode_batch(_iso(hour), _iso(hour), rows.records, rows.rejects)
                ack = self._send_until_acked(hour, payload)
                self.checkpoint.save(hour + _HOUR)
                HOURS_SENT.inc()
                RECORDS_SENT.labels("obs").inc(len(rows.records))
                RECORDS_SENT.labels("reject").inc(len(rows.rejects))
                REPLAY_HOUR.set(hour.timestamp())
                sent += 1
                progress.advance(1, hour=_iso(hour), accepted=ack.accepted, rejected=ack.rejected)
                hour += _HOUR
                wait = self.settings.tick_seconds - (time.monotonic() - tick_started)
                while wait > 0 and not self._stopping and hour <= self.end:
                    time.sleep(min(wait, 0.5))
                    wait = self.settings.tick_seconds - (time.monotonic() - tick_started)
        self._drop_connection()
        log.info(
            "replay %s",
            "stopped" if self._stopping else "finished",
            extra={"hours_sent": sent, "next_hour": _iso(hour)},
        )
        return sent


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
    publish_build_info("feeder", "0.1.0")
    ops = (
        OpsServer(settings.feeder_metrics_port, feeder.ready).start()
        if settings.feeder_metrics_port
        else None
    )

    def _stop(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping after the current hour", signum)
        feeder.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        feeder.run()
    finally:
        if ops:
            ops.stop()
