"""The gateway's MQTT receive path: paho's client, its socket read 64 KiB at a time, the
PUBLISH packets waiting in that buffer parsed in one pass, and a chunk's acks sent as one write.

paho (2.2) handles each incoming packet through a chain of Python calls: a ``recv`` per byte of
the fixed header, a dict of partial-packet state, ``decode_publish``, an ``MQTTMessage``, a
debug log call, a topic-filter match and the ``on_message`` callback, ~20 us per reading on this
machine, a quarter of the gateway's ingest thread. :meth:`BufferedMqttClient.take_publishes`
parses the complete QoS 0 and QoS 1 PUBLISH packets at the head of the buffer itself (MQTT
3.1.1, section 3.3: fixed header, remaining length, topic, packet identifier, payload) and
leaves everything else to paho: other packet types (CONNACK, SUBACK, PINGRESP, ...), QoS 2
(which has state), malformed packets (paho drops the connection), a packet cut by the end of
the buffer, and MQTT 5 (properties). paho's state is left as after the same packets were read
by ``loop_read`` with ``manual_ack``: it keeps no state for an incoming QoS 0 or 1 message, and
the time of the last bytes received (its keepalive) is updated.

:meth:`BufferedMqttClient.ack_all` queues a chunk's acks, in order, as one packet (one write),
where paho's ``ack`` queues and later writes each one apart.

Both use paho's internals (the read state ``_in_packet``, ``_packet_queue``, the keepalive
clock), which is why paho-mqtt is pinned to one version in pyproject.toml;
tests/iot/test_iot_mqtt_receive.py compares both with paho's own reading and acks, so an
upgrade that changes them fails there first.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any, NamedTuple

import paho.mqtt.client as mqtt

_PUBLISH = 0x30          # packet type 3 in the high nibble of the fixed header's first byte
_ACK_COMMANDS = {1: mqtt.PUBACK, 2: mqtt.PUBCOMP}  # what paho's ack() sends, by QoS
_ACK = struct.Struct(">BBH")  # command, remaining length 2, packet identifier


class Delivery(NamedTuple):
    """One PUBLISH the broker delivered: ``topic`` (decoded; "" when it is not UTF-8: no topic
    of ours), ``payload``, the packet identifier ``mid`` (0 at QoS 0) and ``qos``."""

    topic: str
    payload: bytes
    mid: int
    qos: int

    @classmethod
    def of(cls, message: mqtt.MQTTMessage) -> Delivery:
        """The delivery of a message paho parsed."""
        try:
            topic = message.topic
        except UnicodeDecodeError:
            topic = ""
        return cls(topic, bytes(message.payload), message.mid, message.qos)


class BufferedMqttClient(mqtt.Client):
    """paho's client reading its socket up to 64 KiB at a time, with :meth:`take_publishes`.

    paho reads each packet's fixed header a byte at a time, one ``recv()`` each: four system
    calls per reading. This serves those reads from one buffer, refilled when empty, and drops
    it when paho opens a new socket. :meth:`buffered` tells the ingest loop that packets are
    waiting although the socket may have nothing new to read.
    """

    READ_SIZE = 65_536

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_buffer = b""
        self._read_position = 0
        self._read_socket: object = None

    def _sock_recv(self, bufsize: int) -> bytes:
        if self._read_socket is not self._sock:  # a new connection: the old bytes are void
            self._read_buffer, self._read_position, self._read_socket = b"", 0, self._sock
        if self._read_position >= len(self._read_buffer):
            data = super()._sock_recv(self.READ_SIZE)  # BlockingIOError, OSError as paho's
            if not data:
                return data  # closed by the broker
            self._read_buffer, self._read_position = data, 0
        start = self._read_position
        chunk = self._read_buffer[start:start + bufsize]
        self._read_position = start + len(chunk)
        return chunk

    def buffered(self) -> bool:
        """Whether bytes read from the current socket wait in the buffer."""
        return (self._read_socket is self._sock
                and self._read_position < len(self._read_buffer))

    def take_publishes(self, into: list[Delivery], limit: int) -> int:
        """Append to ``into`` up to ``limit`` QoS 0/1 PUBLISH packets complete at the head of the
        read buffer, in order, and consume them; return how many. Stops at the first byte that
        is anything else, which ``loop_read`` then reads as paho would."""
        if self._read_socket is not self._sock or self._in_packet["command"] != 0 or \
                self._protocol != mqtt.MQTTv311:
            return 0
        buffer = self._read_buffer
        end = len(buffer)
        position = self._read_position
        taken = 0
        while taken < limit and position < end:
            command = buffer[position]
            qos = (command >> 1) & 3
            if command & 0xF0 != _PUBLISH or qos == 3 or qos == 2:
                break
            cursor, length, shift = position + 1, 0, 0
            while cursor < end and shift <= 21:  # at most four length bytes
                byte = buffer[cursor]
                cursor += 1
                length |= (byte & 0x7F) << shift
                shift += 7
                if byte < 0x80:
                    break
            else:
                break  # the length is cut by the buffer's end, or too long: paho's to read
            packet_end = cursor + length
            if packet_end > end or length < 2:
                break
            topic_end = cursor + 2 + (buffer[cursor] << 8 | buffer[cursor + 1])
            if topic_end == cursor + 2 or topic_end + (2 if qos else 0) > packet_end:
                break  # malformed (3.1.1 topics are not empty): paho drops the connection
            body = topic_end + (2 if qos else 0)
            try:
                topic = buffer[cursor + 2:topic_end].decode("utf-8")
            except UnicodeDecodeError:
                topic = ""
            mid = buffer[topic_end] << 8 | buffer[topic_end + 1] if qos else 0
            into.append(Delivery(topic, buffer[body:packet_end], mid, qos))
            position = packet_end
            taken += 1
        if taken:
            self._read_position = position
            with self._msgtime_mutex:
                self._last_bytes_received = mqtt.time_func()
        return taken

    def ack_all(self, deliveries: Sequence[Delivery]) -> None:
        """Ack ``deliveries`` in order, as ``ack(mid, qos)`` on each would with manual acks (QoS
        1: PUBACK, QoS 2: PUBCOMP, QoS 0: nothing), queued as one packet: one write."""
        pack = _ACK.pack
        acks = b"".join([pack(_ACK_COMMANDS[each.qos], 2, each.mid)
                         for each in deliveries if each.qos])
        if acks:
            self._packet_queue(mqtt.PUBACK, acks, 0, 0)
