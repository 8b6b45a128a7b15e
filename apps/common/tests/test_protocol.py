"""Socket protocol v1: framing and messages, on socket pairs (no services)."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from datetime import UTC, datetime

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moaa.common.protocol import (
    Ack,
    Batch,
    FrameError,
    Hello,
    Nack,
    PeerClosed,
    decode_client_message,
    decode_server_message,
    encode,
    encode_batch,
    read_frame,
    send_frame,
)


def test_batch_built_from_raw_records_decodes_without_reencoding() -> None:
    records = [b'{"a":1}', b'{"b":[2,3]}']
    payload = encode_batch("2013-01-01T06:00:00Z", "2013-01-01T06:00:00Z", records, [b'{"r":1}'])
    message = decode_client_message(payload)
    assert isinstance(message, Batch)
    assert message.hour == datetime(2013, 1, 1, 6, tzinfo=UTC)
    assert [bytes(r) for r in message.records] == records
    assert [bytes(r) for r in message.rejects] == [b'{"r":1}']


def test_empty_batch() -> None:
    message = decode_client_message(encode_batch("x", "2013-01-01T06:00:00Z", [], []))
    assert isinstance(message, Batch) and message.records == [] and message.rejects == []


def test_server_messages_round_trip() -> None:
    for message in (Hello(1, "p"), Ack("b", 3, 1), Nack(None, "invalid_frame", "x", retry=False)):
        assert decode_server_message(encode(message)) == message


@pytest.mark.parametrize(
    "payload", [b"", b"{", b"\xff", b"[]", b'{"type":"ack","batch_id":"b"}', b'{"type":"x"}']
)
def test_unknown_or_invalid_client_messages_raise_decode_errors(payload: bytes) -> None:
    with pytest.raises((msgspec.DecodeError, msgspec.ValidationError)):
        decode_client_message(payload)


def test_frames_over_a_socket_pair() -> None:
    a, b = socket.socketpair()
    with a, b:
        big = b"x" * 3_000_000
        sender = threading.Thread(target=lambda: (send_frame(a, b"hello"), send_frame(a, big)))
        sender.start()
        assert read_frame(b) == b"hello"
        assert read_frame(b) == big
        sender.join()


def test_bad_length_and_peer_closing() -> None:
    a, b = socket.socketpair()
    with b:
        a.sendall(struct.pack(">I", 0))
        with pytest.raises(FrameError):
            read_frame(b)
        a.sendall(struct.pack(">I", 100))
        with pytest.raises(FrameError):
            read_frame(b, max_bytes=10)
        a.sendall(struct.pack(">I", 10) + b"abc")
        a.close()
        with pytest.raises(PeerClosed) as closed:
            read_frame(b)
        assert closed.value.partial
    c, d = socket.socketpair()
    with d:
        c.close()
        with pytest.raises(PeerClosed) as closed:
            read_frame(d)
        assert not closed.value.partial


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_garbage_payloads_only_raise_decode_errors(payload: bytes) -> None:
    with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError):
        decode_client_message(payload)
