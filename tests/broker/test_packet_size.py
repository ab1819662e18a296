"""Both brokers refuse a packet above the maximum size and close that connection (issue 12, item 7).

A 16 MB message was once held by the broker, the ingestor's inbox and a 17.8 MB quarantine
row. Now the broker refuses anything above 8 KiB: the publisher is disconnected, nothing
reaches a subscriber, and the next honest client is served as before.
"""

from __future__ import annotations

import threading

import paho.mqtt.client as mqtt

from packproof.broker.embedded import MAX_PACKET_SIZE
from tests.conftest import BrokerThread

TOPIC = "packproof/v1/S/dev-b/telemetry"


def client(port: int, cid: str, login: tuple[str, str] | None) -> mqtt.Client:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid)
    if login is not None:
        c.username_pw_set(*login)
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


def oversized_packets_are_refused(port: int, reader: tuple[str, str] | None,
                                  writer: tuple[str, str] | None) -> None:
    """Publish too large, then just under the limit, then small; only the last two are delivered."""
    got: list[bytes] = []
    subscribed, arrived = threading.Event(), threading.Event()
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="size-sub")
    if reader is not None:
        sub.username_pw_set(*reader)
    sub.on_connect = lambda c, *_a: c.subscribe("packproof/v1/+/+/telemetry", qos=1)
    sub.on_subscribe = lambda *_a: subscribed.set()
    sub.on_message = lambda _c, _u, m: (got.append(bytes(m.payload)), len(got) == 2 and arrived.set())
    sub.connect("127.0.0.1", port)
    sub.loop_start()
    assert subscribed.wait(10), "no SUBACK"

    dropped = threading.Event()
    big = client(port, "size-big", writer)
    big.on_disconnect = lambda *_a: dropped.set()
    big.publish(TOPIC, b"x" * (2 * MAX_PACKET_SIZE), qos=1)
    assert dropped.wait(10), "the broker kept a connection that sent an oversized packet"
    big.loop_stop()

    ok = client(port, "size-ok", writer)
    near = b"y" * (MAX_PACKET_SIZE - 200)  # with its topic and header, just under the limit
    ok.publish(TOPIC, near, qos=1).wait_for_publish(10)
    ok.publish(TOPIC, b"small", qos=1).wait_for_publish(10)
    assert arrived.wait(10), got
    for c in (ok, sub):
        c.disconnect()
        c.loop_stop()
    assert got == [near, b"small"]


def test_the_embedded_broker_refuses_oversized_packets(mqtt_broker: BrokerThread) -> None:
    oversized_packets_are_refused(mqtt_broker.port, None, None)
