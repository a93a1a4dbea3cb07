"""ABCI socket framing: every message is ``uvarint(len(body)) || body`` (protobuf bytes).

The length is an *unsigned* LEB128 varint, as CometBFT writes it since v0.37 (``binary.PutUvarint``
in ``libs/protoio``); the signed zig-zag form of Tendermint v0.34 is not accepted here.
"""

from __future__ import annotations

MAX_VARINT_BYTES = 10
MAX_MESSAGE_BYTES = 2**31 - 1  # CometBFT refuses anything larger (MaxInt32)


class FramingError(ValueError):
    """The byte stream is not a sequence of well-formed frames; the connection cannot continue."""


def encode_uvarint(value: int) -> bytes:
    """Return the unsigned LEB128 encoding of ``value`` (0 <= value < 2**64).

    Raises:
        ValueError: ``value`` is negative or does not fit in 64 bits.
    """
    if value < 0 or value >= 2**64:
        raise ValueError(f"uvarint out of range: {value}")
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_uvarint(data: bytes | bytearray | memoryview, pos: int = 0) -> tuple[int, int] | None:
    """Decode an unsigned varint at ``pos``; return (value, position after it), None if incomplete.

    Raises:
        FramingError: the varint is longer than 10 bytes or overflows 64 bits.
    """
    value = 0
    shift = 0
    end = len(data)
    for index in range(pos, min(end, pos + MAX_VARINT_BYTES)):
        byte = data[index]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            if value >= 2**64:
                raise FramingError("length prefix overflows 64 bits")
            return value, index + 1
        shift += 7
    if end - pos >= MAX_VARINT_BYTES:
        raise FramingError(f"length prefix longer than {MAX_VARINT_BYTES} bytes")
    return None


def encode_frame(body: bytes) -> bytes:
    """Return ``body`` with its length prefix."""
    return encode_uvarint(len(body)) + body


class FrameReader:
    """Splits a byte stream into message bodies; feed it whatever the socket delivers."""

    def __init__(self, max_message_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self._buffer = bytearray()
        self._max = max_message_bytes

    @property
    def pending(self) -> int:
        """Bytes received that do not yet form a whole frame."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """Add ``data``; return every message body it completes, in order.

        Raises:
            FramingError: a malformed length prefix, or a message larger than the limit.
        """
        buffer = self._buffer
        buffer += data
        bodies: list[bytes] = []
        pos = 0
        size = len(buffer)
        while pos < size:
            header = decode_uvarint(buffer, pos)
            if header is None:
                break
            length, start = header
            if length > self._max:
                raise FramingError(f"message of {length} bytes exceeds the limit of {self._max}")
            end = start + length
            if end > size:
                break
            bodies.append(bytes(buffer[start:end]))
            pos = end
        if pos:
            del buffer[:pos]
        return bodies
