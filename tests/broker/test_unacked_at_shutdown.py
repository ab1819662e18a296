"""A delivery its subscriber never acknowledged (the ingestor on a full disk) ends the embedded
broker with one log line, not amqtt's traceback: `packproof run` prints no traceback for it."""

from __future__ import annotations

import asyncio
import logging
import threading

import paho.mqtt.client as mqtt
import pytest

from packproof.broker.embedded import EmbeddedBroker
from packproof.net import free_port


async def test_an_unacknowledged_delivery_at_shutdown_is_one_line(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    caplog.set_level(logging.WARNING)
    async with EmbeddedBroker(port=port):
        got = threading.Event()
        sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="never-acks", manual_ack=True)
        sub.on_message = lambda *_: got.set()  # and no ack: what it received, it did not store
        sub.on_connect = lambda cl, *_: cl.subscribe("t/x", qos=1)
        sub.connect("127.0.0.1", port)
        sub.loop_start()
        await asyncio.sleep(0.5)
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="publisher")
        pub.connect("127.0.0.1", port)
        pub.loop_start()
        pub.publish("t/x", b"reading", qos=1).wait_for_publish(5)
        assert await asyncio.to_thread(got.wait, 5)
        await asyncio.sleep(6)  # amqtt gives up waiting for the PUBACK after 5 s
        for c in (pub, sub):
            c.disconnect()
            c.loop_stop()
    shutdown = [r for r in caplog.records if "at shutdown a delivery was still unacknowledged" in r.getMessage()]
    assert shutdown and all(r.exc_info is None and r.levelno == logging.WARNING for r in shutdown)
    assert not any(r.exc_info for r in caplog.records if r.name.startswith("amqtt"))
