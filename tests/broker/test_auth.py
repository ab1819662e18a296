"""Logins and topic rules, on the embedded broker and on Mosquitto with the shipped config.

Real brokers on free ports, real paho clients, the real ingestor and store: anonymous and
wrong-password clients are refused, and a device publishing on another device's topic
never reaches the store while honest readings keep flowing.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from packproof.broker.auth import PasswordFile, hash_password, topic_allowed, verify_password
from packproof.canonical import canonical_bytes
from packproof.crypto import public_key_bytes
from packproof.edge.ingestor import Ingestor
from packproof.edge.options import MqttOptions
from packproof.errors import BrokerError
from packproof.net import free_port
from packproof.store import Store
from tests.broker.conftest import SERVICES, login, run_embedded
from tests.conftest import Db
from tests.edge.test_ingestor import KEY, reading, topic


def test_hashes_are_mosquitto_format_and_verify() -> None:
    h = hash_password("s3cret")
    assert h.startswith("$7$20000$") and verify_password("s3cret", h) and not verify_password("s3cret!", h)
    assert not verify_password("x", "not-a-hash")


@pytest.mark.skipif(shutil.which("mosquitto_passwd") is None, reason="mosquitto_passwd is not installed")
def test_a_mosquitto_passwd_hash_verifies_here(tmp_path: Path) -> None:
    f = tmp_path / "pw"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(f), "dev-1", "p1"], check=True)
    assert PasswordFile(f).check("dev-1", "p1") and not PasswordFile(f).check("dev-1", "p2")


@pytest.mark.parametrize(("user", "topic_", "action", "allowed"), [
    ("dev-1", "packproof/v1/S/dev-1/telemetry", "publish", True),
    ("dev-1", "packproof/v1/S/dev-1/status", "publish", True),
    ("dev-1", "packproof/v1/S/dev-2/telemetry", "publish", False),
    ("dev-1", "packproof/v1/S/dev-1/ack", "subscribe", True),
    ("dev-1", "packproof/v1/S/dev-2/ack", "subscribe", False),
    ("dev-1", "packproof/v1/+/+/telemetry", "subscribe", False),
    ("dev-1", "#", "subscribe", False),
    ("dev-1", "packproof/v1/S/dev-1/ack", "publish", False),
    ("packproof-ingestor", "packproof/v1/+/+/telemetry", "subscribe", True),
    ("packproof-ingestor", "$share/ing/packproof/v1/+/+/telemetry", "subscribe", True),
    ("packproof-ingestor", "packproof/v1/S/dev-1/ack", "publish", True),
    ("packproof-ingestor", "packproof/v1/S/dev-1/telemetry", "publish", False),
    (None, "packproof/v1/S/dev-1/telemetry", "publish", False),
    ("dev/+", "packproof/v1/S/dev/+/telemetry", "publish", False),
])
def test_topic_rules(user: str | None, topic_: str, action: str, allowed: bool) -> None:
    assert topic_allowed(user, SERVICES, topic_, action) is allowed


@pytest.mark.parametrize(("topic_", "action", "allowed"), [
    ("packproof/v1/+/custody", "subscribe", True),
    ("packproof/v1/SHP-1/custody", "receive", True),
    ("packproof/v1/SHP-1/custody", "publish", False),  # only the API announces
    ("packproof/v1/+/+/telemetry", "subscribe", False),
    ("packproof/v1/SHP-1/party-air/telemetry", "publish", False),  # not a device, though named like one might be
    ("#", "subscribe", False),
])
def test_a_custody_reader_only_follows_custody(topic_: str, action: str, allowed: bool) -> None:
    """A party's login (`broker.custody_readers`) follows custody notifications without polling, nothing else."""
    assert topic_allowed("party-air", SERVICES, topic_, action, frozenset({"party-air"})) is allowed


def test_anonymous_and_wrong_passwords_are_refused(secured_broker: int) -> None:
    for user, pw, cid in ((None, None, "anon"), ("dev-1", "wrong", "d1-wrong"), ("nobody", "x", "nobody")):
        c, rc = login(secured_broker, user, pw, cid)
        c.loop_stop()
        assert rc == "Not authorized", (user, rc)
    c, rc = login(secured_broker, "dev-1", "p1", "d1-ok")
    c.disconnect()
    c.loop_stop()
    assert rc == "Success"


async def test_wrong_ingestor_password_is_a_clear_error(secured_broker: int, tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "p.db")
    ing = Ingestor(store, MqttOptions(port=secured_broker, client_id="ing-wrong", username="packproof-ingestor",
                                      password="no"))
    with pytest.raises(BrokerError, match="the MQTT broker refused the ingestor: Not authorized"):
        await ing.connect()
    ing.subscriber.client.loop_stop()
    await store.close()


async def test_an_ingestor_whose_subscription_is_refused_fails_at_start(passwords: Path, tmp_path: Path) -> None:
    """A login the topic rules do not let read telemetry: an error at start, not an ingestor idle forever.
    (The embedded broker refuses the SUBACK; Mosquitto's acl_file grants it and filters deliveries.)"""
    port = free_port()
    gen = run_embedded(port, passwords)
    next(gen)
    store = await Store.open(tmp_path / "p.db")
    ing = Ingestor(store, MqttOptions(port=port, client_id="not-an-ingestor", username="dev-1", password="p1"))
    try:
        with pytest.raises(BrokerError, match=r"refused the subscription to packproof/v1/\+/\+/telemetry"):
            await ing.connect()
    finally:
        ing.subscriber.client.disconnect()
        ing.subscriber.client.loop_stop()
        await store.close()
        next(gen, None)


async def test_a_device_cannot_publish_as_another(secured_broker: int, store_url: str) -> None:
    store = await Store.open(store_url)
    await store.register({"SHP-1": "un38.3-cell", "SHP-2": "un38.3-cell"},
                         [("dev-1", "SHP-1", public_key_bytes(KEY)), ("dev-2", "SHP-2", public_key_bytes(KEY))])
    ing = Ingestor(store, MqttOptions(port=secured_broker, client_id="ing-acl", username="packproof-ingestor",
                                      password="ing"))
    await ing.reload_registry()
    await ing.connect()
    stop = asyncio.Event()
    task = asyncio.create_task(ing.run(stop))
    await asyncio.sleep(0.3)
    dev1, rc = await asyncio.to_thread(login, secured_broker, "dev-1", "p1", "dev-1")
    assert rc == "Success"
    # dev-1 holds dev-2's signing key here, so only the broker's rule can stop this reading.
    forged = dev1.publish(topic("dev-2", "SHP-2"), canonical_bytes(reading(1, "dev-2", "SHP-2")), qos=1)
    honest = [dev1.publish(topic(), canonical_bytes(reading(i)), qos=1) for i in range(5)]
    for info in [forged, *honest]:
        await asyncio.to_thread(info.wait_for_publish, 10)
    for _ in range(100):
        if ing.stats.accepted >= 5:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    stop.set()
    await task
    dev1.disconnect()
    dev1.loop_stop()
    db = Db(store_url)
    assert db.execute("SELECT device_id, count(*) FROM readings WHERE device_id NOT LIKE '~%' GROUP BY device_id"
                      ).fetchall() == [("dev-1", 5)]
    assert db.execute("SELECT count(*) FROM quarantine").fetchone() == (0,)  # it never even reached us
    await store.close()


def test_a_party_login_follows_custody_on_the_embedded_broker(tmp_path: Path) -> None:
    """A custody reader logs in, gets the retained custody notification the API published, and nothing of a
    device's telemetry; its own publish is refused."""
    from packproof.broker.embedded import EmbeddedBroker

    pf = PasswordFile(tmp_path / "mqtt.passwd")
    for user, pw in (("dev-1", "p1"), ("packproof-ingestor", "ing"), ("party-air", "pa")):
        pf.set(user, pw)
    port, ready, stop = free_port(), threading.Event(), threading.Event()

    def serve() -> None:
        async def main() -> None:
            async with EmbeddedBroker(port=port, password_file=pf.path, services=tuple(SERVICES),
                                      readers=("party-air",)):
                ready.set()
                await asyncio.to_thread(stop.wait)
        asyncio.run(main())

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    assert ready.wait(10)
    api, _ = login(port, "packproof-ingestor", "ing", "api")
    device, _ = login(port, "dev-1", "p1", "dev-1")
    party, rc = login(port, "party-air", "pa", "party-air")
    try:
        assert rc == "Success"
        api.publish("packproof/v1/SHP-1/custody", b'{"event_id": "road:2"}', qos=1, retain=True).wait_for_publish(5)
        got: list[tuple[str, bytes]] = []
        party.on_message = lambda _c, _u, m: got.append((m.topic, m.payload))
        party.subscribe([("packproof/v1/+/custody", 1), ("packproof/v1/+/+/telemetry", 1)])
        device.publish("packproof/v1/SHP-1/dev-1/telemetry", b"{}", qos=1).wait_for_publish(5)
        party.publish("packproof/v1/SHP-1/custody", b'{"forged": true}', qos=1)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and not got:
            time.sleep(0.05)
        time.sleep(0.5)  # what else would arrive
        assert got == [("packproof/v1/SHP-1/custody", b'{"event_id": "road:2"}')], got
    finally:
        for c in (api, device, party):
            c.loop_stop()
            c.disconnect()
        stop.set()
        t.join(15)
