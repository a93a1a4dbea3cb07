"""The gateway's PUBLISH parser (BufferedMqttClient.take_publishes) against paho's own reading of
the same bytes, cut into the same socket reads."""

from __future__ import annotations

import struct
from collections.abc import Sequence

import paho.mqtt.client as mqtt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from citychain.iot.mqtt_receive import BufferedMqttClient, Delivery

PINGRESP = b"\xd0\x00"


def remaining_length(length: int) -> bytes:
    """MQTT's variable-length integer (3.1.1 section 2.2.3)."""
    out = bytearray()
    while True:
        byte, length = length % 128, length // 128
        out.append(byte | (0x80 if length else 0))
        if not length:
            return bytes(out)


def publish_packet(topic: bytes, payload: bytes, qos: int, mid: int, *, dup: bool = False,
                   retain: bool = False) -> bytes:
    body = struct.pack(">H", len(topic)) + topic + (struct.pack(">H", mid) if qos else b"")
    body += payload
    command = 0x30 | (0x08 if dup else 0) | qos << 1 | (0x01 if retain else 0)
    return bytes([command]) + remaining_length(len(body)) + body


class ScriptedSocket:
    """A non-blocking socket whose reads return ``chunks`` in order (a read takes at most the
    rest of the current chunk; after each chunk one read finds nothing yet)."""

    def __init__(self, chunks: Sequence[bytes]) -> None:
        self.chunks = [chunk for chunk in chunks if chunk]
        self.current = b""
        self.paused = False
        self.sent = bytearray()

    def recv(self, size: int) -> bytes:
        if not self.current:
            if self.paused or not self.chunks:
                self.paused = False
                raise BlockingIOError
            self.current = self.chunks.pop(0)
            self.paused = True
        data, self.current = self.current[:size], self.current[size:]
        return data

    def send(self, data: bytes) -> int:
        self.sent += data
        return len(data)

    def exhausted(self) -> bool:
        return not self.chunks and not self.current

    def fileno(self) -> int:
        return -1

    def close(self) -> None:
        pass


def attach(client: mqtt.Client, chunks: Sequence[bytes]) -> tuple[ScriptedSocket, list[Delivery]]:
    sock = ScriptedSocket(chunks)
    client._sock = sock  # type: ignore[assignment]
    delivered: list[Delivery] = []
    client.on_message = lambda _client, _userdata, message: delivered.append(Delivery.of(message))
    return sock, delivered


def read_with_paho(chunks: Sequence[bytes]) -> tuple[list[Delivery], bytes, int]:
    """paho's deliveries, the bytes it sent back and its first error (or success)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311, manual_ack=True)
    sock, delivered = attach(client, chunks)
    rc = mqtt.MQTT_ERR_SUCCESS
    while rc == mqtt.MQTT_ERR_SUCCESS and (not sock.exhausted() or sock.paused):
        rc = client.loop_read()
    return delivered, bytes(sock.sent), rc


def read_with_gateway(chunks: Sequence[bytes], limit: int,
                      protocol: int = mqtt.MQTTv311) -> tuple[list[Delivery], bytes, int, int]:
    """As the gateway's ingest loop reads: the buffered PUBLISH packets, then one loop_read.
    Returns the deliveries in order, the bytes sent back, the first error (or success) and how
    many packets the parser took."""
    client = BufferedMqttClient(CallbackAPIVersion.VERSION2, protocol=protocol,
                                manual_ack=True)
    sock, delivered = attach(client, chunks)
    taken = 0
    rc = mqtt.MQTT_ERR_SUCCESS
    while rc == mqtt.MQTT_ERR_SUCCESS and (not sock.exhausted() or sock.paused or
                                           client.buffered()):
        count = client.take_publishes(delivered, limit)
        assert count <= limit
        taken += count
        rc = client.loop_read()
    return delivered, bytes(sock.sent), rc, taken


def cut(data: bytes, sizes: Sequence[int]) -> list[bytes]:
    chunks, position = [], 0
    for size in sizes:
        chunks.append(data[position:position + size])
        position += size
    chunks.append(data[position:])
    return chunks


topics = st.one_of(
    st.builds(lambda device, stream: f"city/{device}/{stream}".encode(),
              st.text("abcdef0123456789:", min_size=1, max_size=60),
              st.text("abcxyz_.", min_size=1, max_size=12)),
    st.binary(max_size=40),  # any bytes, not UTF-8 among them
)
packets = st.one_of(
    st.builds(publish_packet, topics, st.binary(max_size=20_000), st.sampled_from([0, 1, 2]),
              st.integers(1, 65_535), dup=st.booleans(), retain=st.booleans()),
    st.just(PINGRESP),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(packets, max_size=30), st.lists(st.integers(1, 9_000), max_size=12),
       st.integers(1, 40))
def test_take_publishes_delivers_what_paho_delivers_from_the_same_reads(
        sequence: list[bytes], sizes: list[int], limit: int) -> None:
    data = b"".join(sequence)
    expected, expected_sent, expected_rc = read_with_paho(cut(data, sizes))
    delivered, sent, rc, _ = read_with_gateway(cut(data, sizes), limit)
    assert delivered == expected
    assert sent == expected_sent  # QoS 2: paho's PUBREC, the same; QoS 0 and 1: nothing
    assert rc == expected_rc      # an empty topic is malformed: both stop there


def test_complete_publishes_in_the_buffer_are_taken_without_paho() -> None:
    sequence = [publish_packet(b"city/a/pm25", b'{"v":%d}' % n, 1, n + 1) for n in range(50)]
    delivered, sent, rc, taken = read_with_gateway([b"".join(sequence)], limit=1_000)
    # paho reads the first packet (its read fills the buffer), the parser the other 49
    assert taken == 49
    assert [each.mid for each in delivered] == list(range(1, 51))
    assert delivered[7] == Delivery("city/a/pm25", b'{"v":7}', 8, 1)
    assert rc == mqtt.MQTT_ERR_SUCCESS
    assert sent == b""  # manual acks: nothing is acked before the gateway commits


def test_a_four_byte_remaining_length_and_a_packet_cut_by_the_buffer() -> None:
    big = publish_packet(b"city/a/b", b"x" * 2_100_000, 1, 9)
    assert big[4] < 0x80 and big[1] & big[2] & big[3] & 0x80  # four length bytes
    small = publish_packet(b"city/a/b", b"{}", 0, 0)
    data = small + big + small
    delivered, _, rc, taken = read_with_gateway(cut(data, [len(small) + 100]), limit=10)
    assert [len(each.payload) for each in delivered] == [2, 2_100_000, 2]
    assert delivered[0].mid == 0 and delivered[1].mid == 9
    assert rc == mqtt.MQTT_ERR_SUCCESS and taken >= 1


def test_a_topic_not_utf8_is_delivered_with_an_empty_topic() -> None:
    data = publish_packet(b"\xff\xfe", b"{}", 1, 3) * 2
    delivered, _, rc, taken = read_with_gateway([data], limit=10)
    assert rc == mqtt.MQTT_ERR_SUCCESS and taken == 1
    assert delivered == [Delivery("", b"{}", 3, 1)] * 2


def test_a_malformed_publish_is_left_to_paho_which_drops_the_connection() -> None:
    good = publish_packet(b"city/a/b", b"{}", 1, 1)
    bad = b"\x32\x03\x00\x09x"  # a topic length of 9 in a body of 3
    client = BufferedMqttClient(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311,
                                manual_ack=True)
    _sock, delivered = attach(client, [good + good + bad + good])
    assert client.loop_read() == mqtt.MQTT_ERR_SUCCESS  # paho: the first packet
    assert client.take_publishes(delivered, 10) == 1
    assert client.take_publishes(delivered, 10) == 0
    assert client.loop_read() == mqtt.MQTT_ERR_PROTOCOL
    assert len(delivered) == 2


@pytest.mark.parametrize("protocol", [mqtt.MQTTv5, mqtt.MQTTv31])
def test_other_protocol_versions_are_left_to_paho(protocol: int) -> None:
    # MQTT 5 puts properties before the payload; the parser knows only 3.1.1's layout
    client = BufferedMqttClient(CallbackAPIVersion.VERSION2, protocol=protocol,
                                manual_ack=True)
    # (a payload starting with a zero byte reads in MQTT 5 as no properties, then "{}")
    _sock, delivered = attach(client, [publish_packet(b"city/a/b", b"\x00{}", 0, 0) * 3])
    assert client.loop_read() == mqtt.MQTT_ERR_SUCCESS
    assert client.buffered() and len(delivered) == 1
    assert client.take_publishes(delivered, 10) == 0


def test_the_time_of_the_last_bytes_received_moves_for_taken_packets() -> None:
    client = BufferedMqttClient(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311,
                                manual_ack=True)
    _sock, delivered = attach(client, [publish_packet(b"city/a/b", b"{}", 0, 0) * 3])
    assert client.loop_read() == mqtt.MQTT_ERR_SUCCESS
    client._last_bytes_received = 0.0
    assert client.take_publishes(delivered, 10) == 2
    assert client._last_bytes_received > 0.0  # paho's keepalive reads it


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 65_535), st.sampled_from([0, 1, 2])), max_size=40))
def test_ack_all_sends_the_bytes_of_pahos_ack_per_message(acks: list[tuple[int, int]]) -> None:
    deliveries = [Delivery("city/a/b", b"{}", mid, qos) for mid, qos in acks]
    one_by_one = BufferedMqttClient(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311,
                                    manual_ack=True)
    expected, _ = attach(one_by_one, [])
    for each in deliveries:
        one_by_one.ack(each.mid, each.qos)
    one_by_one.loop_write()
    together = BufferedMqttClient(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311,
                                  manual_ack=True)
    sock, _ = attach(together, [])
    together.ack_all(deliveries)
    together.loop_write()
    assert sock.sent == expected.sent
    assert len(sock.sent) == 4 * sum(1 for _, qos in acks if qos)
