"""The feeder ↔ producer protocol over a Unix stream socket (version 1).

Framing
    Every message is one frame: a 4-byte big-endian unsigned length ``N`` followed by
    ``N`` bytes of UTF-8 JSON (one object). ``N`` must be between 1 and the receiver's
    maximum frame size (default 64 MiB); a length outside that range means the framing
    is lost, so the receiver answers with a ``nack`` and closes the connection.

Conversation
    1. The client (feeder) sends ``hello`` with the protocol version it speaks; the server
       (producer) answers ``hello`` with its own, or ``nack`` (``unsupported_protocol``)
       and closes.
    2. The client sends one ``batch`` per replayed hour and waits for its answer:
       ``ack`` once every record of the batch is durably in Kafka (valid records on the
       observations topic, invalid ones and the feeder's rejects on the dead-letter topic),
       or ``nack`` (with ``retry`` telling whether resending may succeed). The client
       advances its checkpoint only on ``ack``; on ``nack``, timeout or disconnect it
       resends the same batch. Redelivered records keep their ``obs_id``.
    3. A frame that is valid JSON but not a known message, or not valid JSON or UTF-8, is
       answered with ``nack`` (``invalid_frame``, ``retry: false``) and the connection
       stays usable.

Messages (``type`` is the tag)::

    {"type": "hello", "protocol": 1, "peer": "feeder/0.1.0"}
    {"type": "batch", "batch_id": "2013-01-01T06:00:00Z", "hour": "2013-01-01T06:00:00Z",
     "records": [<Observation JSON>, ...], "rejects": [<Rejection JSON>, ...]}
    {"type": "ack", "batch_id": "...", "accepted": 41, "rejected": 1}
    {"type": "nack", "batch_id": "..." | null, "reason": "delivery_failed", "detail": "...",
     "retry": true}
"""

from __future__ import annotations

import socket
import struct
from datetime import datetime

import msgspec

__all__ = [
    "DEFAULT_MAX_FRAME_BYTES",
    "PROTOCOL_VERSION",
    "Ack",
    "Batch",
    "FrameError",
    "Hello",
    "Nack",
    "PeerClosed",
    "decode_client_message",
    "decode_server_message",
    "encode",
    "encode_batch",
    "frame",
    "read_frame",
    "send_frame",
]

PROTOCOL_VERSION = 1
DEFAULT_MAX_FRAME_BYTES = 64 * 1024 * 1024
_LENGTH = struct.Struct(">I")


class FrameError(Exception):
    """The frame length is invalid: the stream can no longer be trusted."""


class PeerClosed(Exception):
    """The peer closed the connection; ``partial`` says whether it did so mid-frame."""

    def __init__(self, partial: bool) -> None:
        super().__init__("peer closed the connection" + (" mid-frame" if partial else ""))
        self.partial = partial


class Hello(msgspec.Struct, tag="hello", frozen=True):
    protocol: int
    peer: str = ""


class Batch(msgspec.Struct, tag="batch", frozen=True):
    """One replayed hour. Records stay raw JSON so the producer publishes them unchanged."""

    batch_id: str
    hour: datetime
    records: list[msgspec.Raw] = []
    rejects: list[msgspec.Raw] = []


class Ack(msgspec.Struct, tag="ack", frozen=True):
    batch_id: str
    accepted: int
    rejected: int


class Nack(msgspec.Struct, tag="nack", frozen=True):
    batch_id: str | None
    reason: str
    detail: str = ""
    retry: bool = True


_ENCODER = msgspec.json.Encoder()
_CLIENT_DECODER = msgspec.json.Decoder(Hello | Batch)
_SERVER_DECODER = msgspec.json.Decoder(Hello | Ack | Nack)


def encode(message: msgspec.Struct) -> bytes:
    return _ENCODER.encode(message)


def encode_batch(batch_id: str, hour: str, records: list[bytes], rejects: list[bytes]) -> bytes:
    """A ``batch`` payload built from already-encoded records, without re-encoding them."""
    head = _ENCODER.encode({"type": "batch", "batch_id": batch_id, "hour": hour})
    return b"".join(
        [
            head[:-1],
            b',"records":[',
            b",".join(records),
            b'],"rejects":[',
            b",".join(rejects),
            b"]}",
        ]
    )


def decode_client_message(payload: bytes) -> Hello | Batch:
    """Decode what a client sent; raises :class:`msgspec.DecodeError` (or ValidationError)."""
    return _CLIENT_DECODER.decode(payload)


def decode_server_message(payload: bytes) -> Hello | Ack | Nack:
    return _SERVER_DECODER.decode(payload)


def frame(payload: bytes) -> bytes:
    return _LENGTH.pack(len(payload)) + payload


def send_frame(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(frame(payload))


def _recv_exactly(sock: socket.socket, size: int, started: bool) -> bytes:
    buf = bytearray()
    while len(buf) < size:
        chunk = sock.recv(min(size - len(buf), 1 << 20))
        if not chunk:
            raise PeerClosed(partial=started or bool(buf))
        buf += chunk
    return bytes(buf)


def read_frame(sock: socket.socket, max_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> bytes:
    """Read one frame's payload. Raises :class:`PeerClosed` or :class:`FrameError`."""
    (length,) = _LENGTH.unpack(_recv_exactly(sock, _LENGTH.size, started=False))
    if length == 0 or length > max_bytes:
        raise FrameError(f"frame length {length} outside 1..{max_bytes}")
    return _recv_exactly(sock, length, started=True)
