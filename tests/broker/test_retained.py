"""Retained messages reach a client only along its own subscriptions (an amqtt 0.12.1 flaw, fixed here)."""

from __future__ import annotations

import threading
import time

import paho.mqtt.client as mqtt

from packproof.broker.embedded import _Subscriptions
from tests.conftest import BrokerThread


def client(port: int, client_id: str, got: list[str], subscribe: str | None = None) -> mqtt.Client:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
    ready = threading.Event()
    c.on_message = lambda _c, _u, m: got.append(m.topic)
    c.on_connect = lambda cl, *_: (cl.subscribe(subscribe, qos=1) if subscribe else None, ready.set())
    c.on_subscribe = lambda *_: ready.set()
    c.connect("127.0.0.1", port)
    c.loop_start()
    assert ready.wait(5)
    return c


def test_a_connecting_client_gets_no_retained_message_of_another_clients_filter(mqtt_broker: BrokerThread) -> None:
    port = mqtt_broker.port
    own: list[str] = []
    b = client(port, "retained-owner", own, subscribe="packproof/v1/S/dev-b/ack")
    pub = client(port, "retained-publisher", [])
    pub.publish("packproof/v1/S/dev-b/ack", b'{"acked_seq":1,"missing":0}', qos=1, retain=True).wait_for_publish(5)
    stranger: list[str] = []
    a = client(port, "retained-stranger", stranger, subscribe="packproof/v1/S/dev-a/ack")
    late: list[str] = []
    c = client(port, "retained-late-owner", late, subscribe="packproof/v1/S/dev-b/ack")
    time.sleep(0.5)
    for cl in (a, b, c, pub):
        cl.disconnect()
        cl.loop_stop()
    assert stranger == []  # amqtt 0.12.1 alone delivers dev-b's ack here
    assert own == ["packproof/v1/S/dev-b/ack"] and late == ["packproof/v1/S/dev-b/ack"]


def test_the_subscription_map_can_change_while_a_broadcast_walks_it() -> None:
    """amqtt 0.12.1 awaits inside its loops over the subscriptions (seen dying in `packproof run`
    with outages: "dictionary changed size during iteration", the message reaching nobody);
    the embedded broker's map is walked over a snapshot."""
    subs = _Subscriptions({"a": [], "b": []})
    walked = []
    for topic_filter, _ in subs.items():
        subs[f"{topic_filter}/new"] = []  # a client subscribes meanwhile
        walked.append(topic_filter)
    for topic_filter in subs:
        subs.pop(topic_filter)  # and unsubscribes
    assert walked == ["a", "b"] and subs == {}
