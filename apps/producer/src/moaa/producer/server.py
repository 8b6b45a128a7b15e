"""The producer process: owns the Unix socket, serves the feeder, publishes to Kafka.

Garbage on the socket never crashes it: a bad length is answered with a ``nack`` and the
connection is closed (framing is lost); invalid JSON or UTF-8, or an unknown message, is
answered with a ``nack`` and sent to the dead-letter topic; a peer closing mid-frame is
logged. Either way the socket keeps serving the next connection.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import socketserver
import stat
import threading
from pathlib import Path
from typing import Annotated

import msgspec
import typer
from confluent_kafka.admin import AdminClient
from prometheus_client import Counter, Gauge
from pydantic import Field

from moaa.common.errors import MoaaError
from moaa.common.kafka import (
    TOPIC_DLQ,
    TOPIC_OBSERVATIONS,
    KafkaSettings,
    ensure_topics,
)
from moaa.common.logs import configure_logging
from moaa.common.ops import run_component
from moaa.common.protocol import (
    DEFAULT_MAX_FRAME_BYTES,
    PROTOCOL_VERSION,
    FrameError,
    Hello,
    Nack,
    PeerClosed,
    decode_client_message,
    encode,
    read_frame,
    send_frame,
)
from moaa.producer.publisher import Publisher, Receipt, producer_rejection

__all__ = ["ProducerServer", "ProducerSettings", "command"]

log = logging.getLogger(__name__)

FRAMES = Counter(
    "weather_producer_frames_total", "Frames received on the socket, by result", ["result"]
)
CONNECTIONS = Gauge("weather_producer_connections", "Open feeder connections")
_UNIX_PATH_MAX = 107


class ProducerSettings(KafkaSettings):
    """Settings of the producer (``MOAA_*``)."""

    socket_path: Path = Field(
        Path(".local/run/producer.sock"), description="Unix socket the producer listens on."
    )
    topic_observations: str = Field(TOPIC_OBSERVATIONS, description="Topic of valid observations.")
    topic_dlq: str = Field(
        TOPIC_DLQ, description="Dead-letter topic (rejected rows, invalid records and frames)."
    )
    max_frame_bytes: int = Field(
        DEFAULT_MAX_FRAME_BYTES, description="Largest frame accepted on the socket."
    )
    delivery_timeout_s: float = Field(
        60.0, description="A batch not delivered by then is nacked and resent."
    )
    producer_queue_max_messages: int = Field(
        100_000, description="Local queue size before backpressure."
    )
    producer_linger_ms: int = Field(
        10,
        description="librdkafka linger.ms (batching delay): an hour's batch of thousands of "
        "records leaves in fewer, larger requests, for at most this much more delivery time.",
    )
    producer_metrics_port: int = Field(
        9301, description="Port of /metrics, /healthz, /readyz (0 = off)."
    )


class ProducerError(MoaaError):
    """The producer cannot serve its socket; the message says why."""


def _claim_socket(path: Path) -> None:
    """Remove a stale socket; refuse to start if a live producer already serves it."""
    if len(str(path)) > _UNIX_PATH_MAX:
        raise ProducerError(
            f"socket path too long for a Unix socket ({len(str(path))} > {_UNIX_PATH_MAX}): {path}"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() and not path.is_symlink():
        return
    if not stat.S_ISSOCK(path.lstat().st_mode):
        raise ProducerError(f"{path} exists and is not a socket; refusing to replace it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        log.info("replacing stale socket %s", path)
        path.unlink()
    else:
        raise ProducerError(f"another producer is already serving {path}")
    finally:
        probe.close()


class ProducerServer(socketserver.ThreadingUnixStreamServer):
    """A threading Unix-socket server with one :class:`Publisher` shared by connections."""

    daemon_threads = True

    def __init__(self, settings: ProducerSettings, publisher: Publisher) -> None:
        self.settings = settings
        self.publisher = publisher
        _claim_socket(settings.socket_path)
        super().__init__(str(settings.socket_path), _Handler)
        os.chmod(settings.socket_path, 0o660)

    def ready(self) -> tuple[bool, str]:
        if not self.settings.socket_path.exists():
            return False, "socket missing"
        return self.publisher.check_kafka()


_CLOSE = object()  # queued after the last reply of a connection that must end


class _Handler(socketserver.BaseRequestHandler):
    """One feeder connection: a reader (this thread) and a replier thread.

    The reader decodes frames and submits batches without waiting for their delivery, so
    the next batch can be produced while the previous one is in flight. Every reply goes
    through one queue to the replier, which waits for each batch's outcome in turn:
    replies leave in the order the frames came.
    """

    server: ProducerServer

    def handle(self) -> None:
        CONNECTIONS.inc()
        replies: queue.Queue[object] = queue.Queue()
        replier = threading.Thread(
            target=self._reply_loop, args=(replies,), name="replier", daemon=True
        )
        replier.start()
        try:
            self._read_loop(replies)
        except Exception:
            # A bug must cost this connection (the feeder reconnects and resends), not the process.
            log.exception("connection failed unexpectedly; closing it")
        finally:
            replies.put(_CLOSE)
            replier.join()
            CONNECTIONS.dec()

    def _reply_loop(self, replies: queue.Queue[object]) -> None:
        publisher = self.server.publisher
        broken = False
        while True:
            item = replies.get()
            if item is _CLOSE:
                return
            message = publisher.outcome(item) if isinstance(item, Receipt) else item
            if broken:
                continue  # keep waiting for outcomes so nothing is left half-tracked
            try:
                send_frame(self.request, encode(message))
            except OSError as exc:
                log.warning("could not answer the feeder: %s", exc)
                broken = True

    def _dead_letter(self, reason: str, detail: str, payload: bytes) -> None:
        rejection = producer_rejection("socket", 0, reason, detail, payload)
        if not self.server.publisher.publish_dead_letter(rejection):
            log.error("could not deliver a dead letter", extra={"reason": reason})

    def _read_loop(self, replies: queue.Queue[object]) -> None:
        publisher = self.server.publisher
        greeted = False
        while True:
            try:
                payload = read_frame(self.request, self.server.settings.max_frame_bytes)
            except PeerClosed as exc:
                if exc.partial:
                    FRAMES.labels("peer_closed_mid_frame").inc()
                    log.warning("feeder closed the connection mid-frame")
                return
            except FrameError as exc:
                FRAMES.labels("bad_length").inc()
                log.warning("bad frame length, closing the connection: %s", exc)
                self._dead_letter("bad_frame_length", str(exc), b"")
                replies.put(Nack(None, "bad_frame_length", str(exc), retry=False))
                return
            except OSError as exc:
                log.warning("connection error: %s", exc)
                return
            try:
                message = decode_client_message(payload)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                FRAMES.labels("invalid").inc()
                log.warning("invalid frame: %s", exc)
                self._dead_letter("invalid_frame", str(exc), payload)
                replies.put(Nack(None, "invalid_frame", str(exc), retry=False))
                continue
            if isinstance(message, Hello):
                FRAMES.labels("hello").inc()
                if message.protocol != PROTOCOL_VERSION:
                    detail = f"server speaks {PROTOCOL_VERSION}"
                    replies.put(Nack(None, "unsupported_protocol", detail, retry=False))
                    return
                greeted = True
                replies.put(Hello(PROTOCOL_VERSION, "moaa-producer"))
                continue
            if not greeted:
                FRAMES.labels("no_hello").inc()
                replies.put(
                    Nack(message.batch_id, "hello_required", "send hello first", retry=False)
                )
                return
            FRAMES.labels("batch").inc()
            replies.put(publisher.submit(message))


def run(settings: ProducerSettings) -> None:
    """Create topics, open the socket, serve until SIGTERM/SIGINT, then drain and exit."""
    config = settings.kafka_client_config()
    ensure_topics(
        AdminClient(config),
        [settings.topic_observations, settings.topic_dlq],
        settings.topic_partitions,
        settings.topic_replication_factor,
        settings.topic_retention_ms,
    )
    publisher = Publisher(
        config,
        settings.topic_observations,
        settings.topic_dlq,
        settings.delivery_timeout_s,
        settings.producer_queue_max_messages,
        settings.producer_linger_ms,
    )
    server = ProducerServer(settings, publisher)
    log.info(
        "producer serving %s",
        settings.socket_path,
        extra={
            "socket": str(settings.socket_path),
            "kafka": settings.kafka_bootstrap,
            "metrics_port": settings.producer_metrics_port,
        },
    )

    def serve() -> None:
        try:
            server.serve_forever(poll_interval=0.2)
        finally:
            server.server_close()
            settings.socket_path.unlink(missing_ok=True)
            publisher.close()
            log.info("producer stopped")

    def stop() -> None:
        # shutdown() waits for serve_forever to return: never call it from the handler's thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    run_component("producer", settings.producer_metrics_port, server.ready, serve, stop)


def command(
    socket_path: Annotated[
        Path | None, typer.Option("--socket", help="Unix socket path [env MOAA_SOCKET_PATH].")
    ] = None,
    bootstrap: Annotated[
        str | None, typer.Option(help="Kafka bootstrap [env MOAA_KAFKA_BOOTSTRAP].")
    ] = None,
    metrics_port: Annotated[
        int | None, typer.Option(help="Ops port [env MOAA_PRODUCER_METRICS_PORT].")
    ] = None,
) -> None:
    """Serve the feeder's Unix socket and publish every record to Kafka.

    Valid observations go to weather.observations (key = station id), rejected rows and
    invalid records or frames to weather.observations.dlq with a reason. A batch is
    acknowledged only after every delivery in it succeeded. Topics are created when
    missing (7-day retention). /metrics, /healthz and /readyz are served on the ops port.
    """
    overrides = {
        k: v
        for k, v in {
            "socket_path": socket_path,
            "kafka_bootstrap": bootstrap,
            "producer_metrics_port": metrics_port,
        }.items()
        if v is not None
    }
    settings = ProducerSettings(**overrides)
    configure_logging(settings.log_level, settings.log_format, component="producer")
    run(settings)
