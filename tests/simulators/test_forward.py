"""Store-and-forward against real brokers: what a device resends because of an ack, outages,
a broker restart and a simulator killed with -9, with nothing lost and no seq reused.

Acks in the first tests are published by a test MQTT client on the device's ack topic (a
real client, as the ingestor would be), so the device side of the contract is checked with
`gaps`/`highest` before any ingestor sends them; the others run the real ingestor.
"""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from packproof.net import free_port
from packproof.simulators.buffer import SimBuffer
from packproof.simulators.fleet import SimDevice, build_fleet, shipments_of
from packproof.simulators.publisher import FleetPublisher
from packproof.store import Store
from tests.conftest import BrokerThread, Pipeline, Service, cli, publish_all, wait_for
from tests.dbutil import query_sync as query


class Listener:
    """A subscriber to one device's telemetry: which seqs arrived, how often."""

    def __init__(self, port: int, topic: str) -> None:
        self.seqs: list[int] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"listen-{topic}")
        self.client.on_message = self._on_message
        ready = threading.Event()
        self.client.on_subscribe = lambda *_a: ready.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.client.subscribe(topic, qos=1)
        assert ready.wait(10)

    def _on_message(self, _c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.seqs.append(json.loads(msg.payload)["seq"])

    def take(self) -> list[int]:
        with self._lock:
            seqs, self.seqs = self.seqs, []
        return seqs

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def ack_topic(d: SimDevice) -> str:
    return f"packproof/v1/{d.shipment_id}/{d.device_id}/ack"


@pytest.fixture
def device(tmp_path: Path, mqtt_broker: BrokerThread, request: pytest.FixtureRequest) -> Iterator[
        tuple[SimDevice, FleetPublisher, Listener]]:
    """One device that measured seqs 0..19 with nobody acknowledging them (seed per test: own ids)."""
    fleet = build_fleet(shipments=1, packs=1, seed=900 + request.node.callspec.indices.get("ack", 0))
    d = fleet[0]
    listener = Listener(mqtt_broker.port, d.topic)
    buffer = SimBuffer(tmp_path / "sim-buffer.db")
    pub = FleetPublisher(fleet, buffer, port=mqtt_broker.port, rate=50, backlog_rate=500, resend_after=1.0)
    pub.connect()
    try:
        pub.run(stop=threading.Event(), count=20)
        wait_for(lambda: len(listener.seqs) >= 20, 10, "20 readings")
        assert sorted(listener.take()) == list(range(20)) and pub.stats.buffered == 20
        yield d, pub, listener
    finally:
        pub.close()
        listener.close()
        buffer.close()


@pytest.mark.parametrize(("ack", "resent", "kept"), [
    ({"acked_seq": 9, "missing": 4, "highest": 15, "gaps": [[10, 10], [12, 13]]},
     {10, 12, 13, 16, 17, 18, 19}, 10),
    ({"acked_seq": 9, "missing": 3}, set(range(10, 20)), 10),  # an older ingestor: everything above the mark
], ids=["gaps", "old-form"])
def test_device_drops_what_is_acked_and_resends_only_what_is_missing(
        ack: dict, resent: set[int], kept: int, device: tuple[SimDevice, FleetPublisher, Listener],  # type: ignore[type-arg]
        mqtt_broker: BrokerThread, caplog: pytest.LogCaptureFixture) -> None:
    d, pub, listener = device
    publish_all(mqtt_broker.port, [(ack_topic(d), b"not an ack"), (ack_topic(d), b'{"acked_seq": 99, "missing": 0}'),
                                   (ack_topic(d), json.dumps(ack).encode())])
    done: list[bool] = []
    drain = threading.Thread(target=lambda: done.append(pub.drain(timeout=30)))
    drain.start()
    try:
        wait_for(lambda: resent <= set(listener.seqs), 15, f"resends of {sorted(resent)}")
        assert pub.stats.buffered == kept and pub.stats.acked == 10
        assert set(listener.take()) == resent  # nothing acked, nothing stored resent
        assert "ignoring a malformed ack" in caplog.text and "it has not made yet" in caplog.text
    finally:
        publish_all(mqtt_broker.port, [(ack_topic(d), b'{"acked_seq": 19, "missing": 0, "highest": 19}')])
        drain.join(30)
    assert done == [True] and pub.stats.buffered == 0 and pub.stats.acked == 20


def register(store_url: str, fleet: list[SimDevice]) -> None:
    async def go() -> None:
        store = await Store.open(store_url)
        try:
            await store.register(shipments_of(fleet), [(x.device_id, x.shipment_id, x.public_key) for x in fleet])
        finally:
            await store.close()
    asyncio.run(go())


def stored(store_url: str) -> dict[str, list[int]]:
    rows = query(store_url, "SELECT device_id, seq FROM readings WHERE device_id LIKE 'SHP-%' "
                            "ORDER BY device_id, seq")  # not the registry's record leaves
    ((conflicts,),) = query(store_url, "SELECT COUNT(*) FROM quarantine")
    assert conflicts == 0
    out: dict[str, list[int]] = {}
    for device_id, seq in rows:
        out.setdefault(device_id, []).append(seq)
    return out


def buffered(data: Path) -> int:
    with SimBuffer(data / "sim-buffer.db") as b:
        return len(b)


@pytest.mark.e2e
def test_outages_lose_nothing(pipeline_services: Pipeline) -> None:
    data, port = pipeline_services.data, pipeline_services.mqtt
    r = cli("simulate", "--mqtt-port", str(port), "--data-dir", str(data), "--shipments", "2", "--packs", "2",
            "--count", "100", "--rate", "20", "--outage-every", "2", "--outage-for", "1", "--outage-devices", "0.5",
            "--resend-after", "1")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "outages 4" in r.stdout and "the buffer is empty" in r.stdout, r.stdout
    seqs = stored(pipeline_services.store)
    assert len(seqs) == 4 and all(s == list(range(100)) for s in seqs.values()), seqs
    assert buffered(data) == 0


@pytest.mark.e2e
def test_a_broker_restart_loses_nothing(tmp_path: Path) -> None:
    broker = BrokerThread().start()
    data = tmp_path / "data"
    fleet = build_fleet(shipments=1, packs=2, seed=41)
    url = f"sqlite:///{data / 'packproof.db'}"
    register(url, fleet)
    ingest = Service("ingest", "--data-dir", str(data), "--mqtt-port", str(broker.port), "--no-seal",
                     log=tmp_path / "ingest.log")
    buffer = SimBuffer(data / "sim-buffer.db")
    pub = FleetPublisher(fleet, buffer, port=broker.port, rate=20, resend_after=1.0)
    try:
        ingest.wait_output("ingesting from")
        pub.connect()
        measuring = threading.Thread(target=pub.run, kwargs={"stop": threading.Event(), "count": 120})
        measuring.start()
        wait_for(lambda: pub.stats.acked >= 20, 20, "first acknowledgements")
        broker.stop()
        wait_for(lambda: pub.stats.measured >= 60, 20, "measuring on while the broker is away")
        again = BrokerThread()
        again.port = broker.port
        broker = again.start()
        measuring.join(30)
        assert pub.drain(timeout=40), (pub.stats, ingest.output())
        assert pub.stats.acked == 240
    finally:
        pub.close()
        buffer.close()
        ingest.stop()
        broker.stop()
    seqs = stored(url)
    assert all(s == list(range(120)) for s in seqs.values()) and len(seqs) == 2, seqs


@pytest.mark.e2e
def test_simulator_killed_with_9_resumes_without_reusing_a_seq(tmp_path: Path, pipeline_services: Pipeline) -> None:
    data, port = pipeline_services.data, pipeline_services.mqtt
    sim = Service("simulate", "--mqtt-port", str(port), "--data-dir", str(data), "--shipments", "1", "--packs", "2",
                  "--rate", "50", log=tmp_path / "sim.log")
    try:
        wait_for(lambda: sum(len(s) for s in stored(pipeline_services.store).values()) >= 100, 30, "readings stored")
    finally:
        sim.proc.send_signal(signal.SIGKILL)
        sim.stop()
    r = cli("simulate", "--mqtt-port", str(port), "--data-dir", str(data), "--shipments", "1", "--packs", "2",
            "--count", "10", "--rate", "50")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "the buffer is empty" in r.stdout, r.stdout
    seqs = stored(pipeline_services.store)  # no conflicting reading was quarantined: no seq was signed twice
    assert len(seqs) == 2 and all(s == list(range(len(s))) and len(s) >= 60 for s in seqs.values()), seqs
    assert buffered(data) == 0


def test_a_refused_login_on_reconnecting_is_reported_as_a_refusal(tmp_path: Path) -> None:
    """The broker restarts without the devices' logins: they lose it once, and then each refused
    reconnect was logged as having "lost the broker" again, hiding that the broker said no."""
    port, data, passwd = free_port(), tmp_path / "d", tmp_path / "mqtt.passwd"
    r = cli("simulate", "--data-dir", str(data), "--shipments", "1", "--packs", "1", "--credentials-only",
            "--password-file", str(passwd))
    assert r.returncode == 0, r.stdout + r.stderr
    broker = Service("broker", "--port", str(port), "--password-file", str(passwd), log=tmp_path / "b1.log")
    broker.wait_port(port)
    sim = Service("simulate", "--data-dir", str(data), "--mqtt-port", str(port), "--shipments", "1", "--packs", "1",
                  "--password-file", str(passwd), "--no-register", "--drain-timeout", "0", log=tmp_path / "sim.log")
    try:
        sim.wait_output("simulating 1 shipments", timeout=30)
        broker.kill()
        other = tmp_path / "other.passwd"
        other.write_text("")
        broker = Service("broker", "--port", str(port), "--password-file", str(other), log=tmp_path / "b2.log")
        broker.wait_port(port)
        sim.wait_output("the broker refused its login on reconnecting", timeout=30)
        time.sleep(6)  # several refused reconnects (paho retries within 1-5 s)
    finally:
        sim.stop()
        broker.stop()
    log = sim.output()
    assert log.count("lost the broker") == 1, log  # the restart, and only the restart
    assert log.count("refused its login on reconnecting") == 1, log  # said once, not at every retry


def test_a_fleet_refused_at_the_door_leaves_no_traceback_at_the_broker(tmp_path: Path) -> None:
    """Devices refused at their first login hang up at once: the embedded broker then failed to close
    each connection and logged a traceback per device ("Unhandled exception in client_connected_cb")."""
    port, data = free_port(), tmp_path / "d"
    (tmp_path / "empty.passwd").write_text("")
    broker = Service("broker", "--port", str(port), "--password-file", str(tmp_path / "empty.passwd"),
                     log=tmp_path / "broker.log")
    try:
        broker.wait_port(port)
        r = cli("simulate", "--data-dir", str(data), "--mqtt-port", str(port), "--shipments", "8", "--packs", "8",
                "--password-file", str(tmp_path / "devices.passwd"), "--count", "1", timeout=60)
        assert r.returncode == 3 and "refused 64 device(s)" in r.stderr, r.stdout + r.stderr
        time.sleep(1)
    finally:
        broker.stop()
    assert "Traceback" not in broker.output() and "refused" in broker.output(), broker.output()


def test_each_reading_is_stamped_at_its_scheduled_instant(tmp_path: Path, mqtt_broker: BrokerThread) -> None:
    """Reading k of a run is dated `epoch + k / rate`, the instant the custody poster's clock gives the journey
    time it covers (one time base), never later however the loop is scheduled, and never ahead of now."""
    from packproof.timefmt import epoch_of, rfc3339

    fleet = build_fleet(shipments=1, packs=1, seed=977)
    got: dict[int, str] = {}
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="stamps")
    sub.on_message = lambda _c, _u, m: got.update({json.loads(m.payload)["seq"]: json.loads(m.payload)["ts"]})
    ready = threading.Event()
    sub.on_subscribe = lambda *_a: ready.set()
    sub.connect("127.0.0.1", mqtt_broker.port)
    sub.loop_start()
    sub.subscribe(fleet[0].topic, qos=1)
    assert ready.wait(10)
    buffer = SimBuffer(tmp_path / "sim-buffer.db")
    pub = FleetPublisher(fleet, buffer, port=mqtt_broker.port, rate=20, backlog_rate=500)
    pub.connect()
    epoch = round(time.time() - 0.5, 3)  # half a second ago: the first ten are due at once
    try:
        pub.run(stop=threading.Event(), count=30, epoch=epoch)
        wait_for(lambda: len(got) >= 30, 10, "30 readings")
        assert got == {k: rfc3339(epoch + k * (1.0 / 20)) for k in range(30)}  # as the publisher computes it
        assert max(epoch_of(t) for t in got.values()) <= time.time()
    finally:
        pub.close()
        sub.loop_stop()
        sub.disconnect()
        buffer.close()
