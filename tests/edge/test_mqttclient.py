"""BatchingClient against a scripted broker on a real local socket.

The subclass reads the socket in large chunks and writes PUBACKs in one piece; these
tests check that paho still sees exactly the packets the broker sent (whatever way TCP
cuts them), that each acknowledgement carries the right message id, and that bytes left
from a lost connection never leak into the next one. They also pin the paho internals
the subclass relies on, so an upgrade that moves them fails here. And a trickle of
messages, one `send` each as amqtt writes them, is read a few at a time, not one by one.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt

from packproof.edge.mqttclient import READ_CHUNK, SMALL_READ, BatchingClient

CONNACK = b"\x20\x02\x00\x00"


def remaining(n: int) -> bytes:
    out = bytearray()
    while True:
        n, b = divmod(n, 128)
        out.append(b | (128 if n else 0))
        if not n:
            return bytes(out)


def publish(topic: str, payload: bytes, mid: int, qos: int = 1) -> bytes:
    t = topic.encode()
    body = struct.pack("!H", len(t)) + t + (struct.pack("!H", mid) if qos else b"") + payload
    return bytes([0x30 | qos << 1]) + remaining(len(body)) + body


class ScriptedBroker:
    """Accepts connections and plays a script per connection; records what clients send."""

    def __init__(self, scripts: list[Callable[[socket.socket], None]]) -> None:
        self.srv = socket.create_server(("127.0.0.1", 0))
        self.port = self.srv.getsockname()[1]
        self.received = bytearray()
        self.scripts = scripts
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        for script in self.scripts:
            conn, _ = self.srv.accept()
            with conn:
                conn.recv(4096)  # CONNECT
                conn.sendall(CONNACK)
                script(conn)
        self.srv.close()

    def drain(self, conn: socket.socket, nbytes: int, timeout: float = 10.0) -> None:
        conn.settimeout(timeout)
        while len(self.received) < nbytes:
            data = conn.recv(65536)
            if not data:
                return
            self.received += data
        conn.recv(4096)  # the client's DISCONNECT, or the end of the stream

    def join(self) -> None:
        self.thread.join(10)
        assert not self.thread.is_alive()


def client(cls: type[BatchingClient] = BatchingClient) -> tuple[BatchingClient, list[mqtt.MQTTMessage]]:
    got: list[mqtt.MQTTMessage] = []
    c = cls(mqtt.CallbackAPIVersion.VERSION2, client_id="t", clean_session=True,
            protocol=mqtt.MQTTv311, manual_ack=True)
    c.on_message = lambda _c, _u, m: got.append(m)
    c.reconnect_delay_set(1, 1)
    return c, got


def wait_for(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert cond()


def test_every_packet_arrives_whole_however_tcp_cuts_the_stream() -> None:
    msgs = [(f"packproof/v1/S/d{i % 7}/telemetry", bytes([i % 251]) * (1 + i * 37 % 600), i + 1) for i in range(500)]
    msgs.append(("packproof/v1/S/big/telemetry", b"x" * (3 * READ_CHUNK + 5), 501))  # larger than a chunk
    stream = b"".join(publish(t, p, mid) for t, p, mid in msgs)
    cuts = [1, 2, 3, 5, 300, 4096, READ_CHUNK + 1, 17]  # odd pieces, then the rest at once

    def script(conn: socket.socket) -> None:
        pos = 0
        for n in cuts:
            conn.sendall(stream[pos:pos + n])
            pos += n
            time.sleep(0.01)
        conn.sendall(stream[pos:])
        broker.drain(conn, 4 * len(msgs))

    broker = ScriptedBroker([script])
    c, got = client()
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    try:
        wait_for(lambda: len(got) == len(msgs))
        assert [(m.topic, m.payload, m.mid, m.qos) for m in got] == [(t, p, mid, 1) for t, p, mid in msgs]
        c.ack_many([(m.mid, m.qos) for m in got])
        wait_for(lambda: len(broker.received) >= 4 * len(msgs))
        assert bytes(broker.received) == b"".join(struct.pack("!BBH", 0x40, 2, mid) for _, _, mid in msgs)
    finally:
        c.disconnect()
        c.loop_stop()
        broker.join()


def test_ack_many_acknowledges_qos1_only_and_nothing_without_manual_ack() -> None:
    def script(conn: socket.socket) -> None:
        conn.sendall(publish("a/b", b"q0", 0, qos=0) + publish("a/b", b"q1", 9) + publish("a/b", b"q1", 10))
        broker.drain(conn, 8)

    broker = ScriptedBroker([script])
    c, got = client()
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    try:
        wait_for(lambda: len(got) == 3)
        c.ack_many([(m.mid, m.qos) for m in got])
        wait_for(lambda: len(broker.received) >= 8)
        assert bytes(broker.received) == b"\x40\x02\x00\x09\x40\x02\x00\x0a"
    finally:
        c.disconnect()
        c.loop_stop()
        broker.join()
    auto = BatchingClient(mqtt.CallbackAPIVersion.VERSION2, client_id="auto", manual_ack=False)
    auto.ack_many([(5, 1)])  # paho acks on arrival in this mode: nothing is queued
    assert not auto.want_write()
    auto._reset_sockets()


def test_bytes_of_a_lost_connection_never_reach_the_next_one() -> None:
    first = publish("a/b", b"first", 1)
    cut = publish("a/b", b"cut short " * 50, 2)

    def lost(conn: socket.socket) -> None:
        conn.sendall(first + cut[:len(cut) // 2])  # half a packet, then the connection drops
        time.sleep(0.2)
        conn.close()

    def second(conn: socket.socket) -> None:
        conn.sendall(publish("a/b", b"after", 3))
        broker.drain(conn, 4)

    broker = ScriptedBroker([lost, second])
    c, got = client()
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    try:
        wait_for(lambda: len(got) == 2)
        assert [(m.payload, m.mid) for m in got] == [(b"first", 1), (b"after", 3)]
    finally:
        c.disconnect()
        c.loop_stop()
        broker.join()


class _CountingRecv(mqtt.Client):
    """Sits under BatchingClient in the MRO: counts the reads it makes from the socket."""

    reads = 0

    def _sock_recv(self, bufsize: int) -> bytes:
        self.reads += 1
        return super()._sock_recv(bufsize)


class _CountedClient(BatchingClient, _CountingRecv):
    pass


def test_a_trickle_of_messages_is_read_a_few_at_a_time() -> None:
    n = 300
    msgs = [publish("packproof/v1/S/d/telemetry", b"r" * 200, i + 1) for i in range(n)]
    assert len(msgs[0]) * 2 < SMALL_READ  # each send alone is a small read

    def script(conn: socket.socket) -> None:
        for m in msgs:  # one send per message, about 0.2 ms apart, as amqtt sends them
            conn.sendall(m)
            time.sleep(0.0002)
        broker.drain(conn, 4 * n)

    broker = ScriptedBroker([script])
    c, got = client(_CountedClient)
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    try:
        wait_for(lambda: len(got) == n)
        c.ack_many([(m.mid, m.qos) for m in got])
        assert [m.mid for m in got] == list(range(1, n + 1))
        assert isinstance(c, _CountedClient)
        assert c.reads < n / 2, f"{c.reads} socket reads for {n} messages"
    finally:
        c.disconnect()
        c.loop_stop()
        broker.join()
