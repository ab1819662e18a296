"""The ingestor against a real amqtt broker and a real store, on each engine.

Every kind of bad input is published over MQTT between honest readings; each must end
in the quarantine table with a reason a person understands, be counted, and never
stop the honest readings behind it.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from packproof.canonical import canonical_bytes, signing_bytes
from packproof.crypto import b64, private_key_from_seed, public_key_bytes
from packproof.edge.ingestor import Ingestor
from packproof.edge.options import IngestorOptions, MqttOptions
from packproof.errors import ConfigError
from packproof.reading import Reading
from packproof.store import QUARANTINE_KEEP, Store
from tests.conftest import BrokerThread, Db, publish_all, writes_blocked
from tests.storeutil import driver_of
from tests.waiting import wait_until

KEY = private_key_from_seed(b"test-device")
FUTURE = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
OTHER = private_key_from_seed(b"someone-else")


def reading(seq: int, device: str = "dev-1", shipment: str = "SHP-1", key=KEY, **over) -> Reading:  # type: ignore[no-untyped-def]
    doc = {"v": 1, "device_id": device, "shipment_id": shipment, "seq": seq, "ts": "2026-11-22T08:15:30.250Z",
           "temperature_c": 24.3, "vibration": {"peak_g": 0.4, "freq_hz": 22.0},
           "shock": {"peak_g": 0.0, "duration_ms": 0.0}, "pressure_kpa": 101.3} | over
    r = Reading.model_validate(doc)
    return r.model_copy(update={"sig": b64(key.sign(signing_bytes(r)))}) if key else r


def topic(device: str = "dev-1", shipment: str = "SHP-1") -> str:
    return f"packproof/v1/{shipment}/{device}/telemetry"


async def start_ingestor(store: Store, port: int, client_id: str, until,  # type: ignore[no-untyped-def]
                         verify_workers: int = 0) -> tuple[Ingestor, asyncio.Task[Ingestor]]:
    """A connected ingestor, and the task running it until `until(ingestor)` (or 10 s).

    Returned once `connect()` has: its persistent session exists, so what the test publishes
    next is kept for it. A fixed sleep was too short on a busy machine once verifiers started
    in connect().
    """
    ing = Ingestor(store, MqttOptions(port=port, client_id=client_id), IngestorOptions(verify_workers=verify_workers))
    await ing.reload_registry()
    await ing.connect()

    async def run() -> Ingestor:
        stop = asyncio.Event()
        task = asyncio.create_task(ing.run(stop))
        await wait_until(lambda: until(ing))
        stop.set()
        await task
        return ing

    return ing, asyncio.create_task(run())


@pytest.fixture
async def store(store_url: str):  # type: ignore[no-untyped-def]
    s = await Store.open(store_url)
    await s.register({"SHP-1": "un38.3-cell", "SHP-2": "un38.3-cell"},
                     [("dev-1", "SHP-1", public_key_bytes(KEY)), ("dev-u", "SHP-1", None),
                      ("dev-2", "SHP-2", public_key_bytes(KEY))])
    yield s
    await s.close()


def with_field(base_seq: int, /, **changes: object) -> bytes:
    return json.dumps({**json.loads(canonical_bytes(reading(base_seq))), **changes}).encode()


BAD = [
    ("malformed_json", topic(), b'{"v": 1, "device_id": '),
    ("malformed_json", topic(), b"\xff\xfe not utf-8"),
    ("invalid_schema", topic(), canonical_bytes(reading(100))[:-1] + b',"colour":"red"}'),
    ("invalid_schema", topic(), with_field(101, seq="101")),
    ("invalid_schema", topic(), json.dumps({k: v for k, v in json.loads(canonical_bytes(reading(102))).items()
                                            if k != "pressure_kpa"}).encode()),
    ("invalid_schema", topic(), with_field(103, temperature_c=900)),
    ("topic_mismatch", topic(device="dev-2", shipment="SHP-2"), canonical_bytes(reading(104))),
    ("unknown_device", topic(device="ghost"), canonical_bytes(reading(105, device="ghost"))),
    ("bad_signature", topic(), canonical_bytes(reading(106, key=OTHER))),
    ("missing_signature", topic(), canonical_bytes(reading(107, key=None))),
    ("unexpected_signature", topic(device="dev-u"), canonical_bytes(reading(108, device="dev-u"))),
    ("shipment_mismatch", topic(shipment="SHP-2"), canonical_bytes(reading(109, shipment="SHP-2"))),
    ("bad_topic", "packproof/v1/SHP-1/dev!1/telemetry", canonical_bytes(reading(110))),
    ("too_large", topic(), b" " * 5000),
    ("clock_skew", topic(), canonical_bytes(reading(111, ts=FUTURE))),
    ("invalid_schema", topic(), canonical_bytes(reading(112)).replace(b"2026-11-22T", b"2026-02-30T")),
]


@pytest.mark.parametrize("verify_workers", [0, 1], ids=["verified-inline", "verifier-process"])
async def test_bad_input_is_quarantined_with_reasons_and_honest_readings_flow(
        store: Store, mqtt_broker: BrokerThread, tmp_path: Path, verify_workers: int) -> None:
    honest = [(topic(), canonical_bytes(reading(i))) for i in range(10)]
    unsigned = [(topic(device="dev-u"), canonical_bytes(reading(i, device="dev-u", key=None))) for i in range(3)]
    bad = [(t, p) for _, t, p in BAD]
    # Interleave: honest, bad, honest, ... so a bad payload must not block what follows it.
    messages = [m for pair in zip(honest, bad, strict=False) for m in pair] + bad[len(honest):] + unsigned
    messages += honest[:3]  # 3 duplicates too
    # The ingestor's persistent session must exist before publishing, so connect it first.
    _, ing_task = await start_ingestor(
        store, mqtt_broker.port, f"ing-bad-{verify_workers}", lambda i: i.stats.processed >= len(messages),
        verify_workers)
    await asyncio.to_thread(publish_all, mqtt_broker.port, messages)
    ing = await ing_task
    assert ing.stats.accepted == 13 and ing.stats.duplicates == 3
    db = Db(store.url)
    rows = db.execute("SELECT reason_code, reason, payload, topic FROM quarantine ORDER BY id").fetchall()
    assert sorted(r[0] for r in rows) == sorted(code for code, _, _ in BAD)
    by_code = {r[0]: r[1] for r in rows}
    assert "unknown field 'colour'" in by_code["invalid_schema"] or any(
        "unknown field 'colour'" in r[1] for r in rows)
    assert any("missing field 'pressure_kpa'" in r[1] for r in rows)
    assert any("temperature_c: input should be less than or equal to 200" in r[1] for r in rows)
    assert any("seq: input should be a valid integer" in r[1] for r in rows)
    assert "does not verify" in by_code["bad_signature"]
    assert "device ghost is not registered" in by_code["unknown_device"]
    assert "published on the topic of device dev-2" in by_code["topic_mismatch"]
    assert {r[2] for r in rows} == {p[:QUARANTINE_KEEP] for _, _, p in BAD}  # raw bytes kept as received, up to 4 KiB
    stored = db.execute("SELECT count(*), count(DISTINCT device_id || ':' || seq) FROM readings "
                        "WHERE device_id NOT LIKE '~%'").fetchone()
    assert stored == (13, 13)
    counters = dict(db.execute("SELECT name, value FROM counters").fetchall())
    assert counters["readings_accepted"] == 13 and counters["readings_duplicate"] == 3
    assert counters["quarantined:invalid_schema"] == 5 and counters["quarantined:bad_signature"] == 1
    assert "ahead of the ingestor's clock" in by_code["clock_skew"]
    assert any("is not a real instant: day is out of range" in r[1] for r in rows)


async def test_a_restarted_ingestor_keeps_state_and_stores_duplicates_once(
        store: Store, mqtt_broker: BrokerThread) -> None:
    first = [(topic(device="dev-2", shipment="SHP-2"), canonical_bytes(reading(i, "dev-2", "SHP-2")))
             for i in range(5)]
    _, t = await start_ingestor(store, mqtt_broker.port, "ing-restart", lambda i: i.stats.accepted >= 5)
    await asyncio.to_thread(publish_all, mqtt_broker.port, first)
    assert (await t).stats.accepted == 5
    # A second ingestor (as after a restart) sees a resend of everything plus new readings.
    more = first + [(topic(device="dev-2", shipment="SHP-2"), canonical_bytes(reading(i, "dev-2", "SHP-2")))
                    for i in range(5, 8)]
    _, t = await start_ingestor(store, mqtt_broker.port, "ing-restart", lambda i: i.stats.processed >= 8)
    await asyncio.to_thread(publish_all, mqtt_broker.port, more)
    ing = await t
    assert ing.stats.accepted == 3 and ing.stats.duplicates == 5
    db = Db(store.url)
    assert db.execute("SELECT reading_count, first_seq, last_seq FROM device_stats WHERE device_id='dev-2'"
                      ).fetchone() == (8, 0, 7)




async def test_a_replay_is_a_duplicate_and_a_second_version_is_refused(
        store: Store, mqtt_broker: BrokerThread) -> None:
    t = lambda seq, **kw: (topic(device="dev-2", shipment="SHP-2"),  # noqa: E731
                           canonical_bytes(reading(seq, "dev-2", "SHP-2", **kw)))
    first = [t(i) for i in range(4)]
    replay = first[1]
    second_version = t(1, temperature_c=21.0)  # validly signed, same seq, other content
    messages = [*first, replay, second_version, t(4)]
    _, task = await start_ingestor(store, mqtt_broker.port, "ing-replay",
                                   lambda i: i.stats.processed >= len(messages))
    await asyncio.to_thread(publish_all, mqtt_broker.port, messages)
    ing = await task
    assert (ing.stats.accepted, ing.stats.duplicates, ing.stats.quarantined) == (5, 1, 1)
    db = Db(store.url)
    (code, reason, payload), = db.execute("SELECT reason_code, reason, payload FROM quarantine").fetchall()
    assert code == "conflicting_reading" and "dev-2:1 was already stored with different content" in reason
    assert payload == second_version[1]
    (body,), = db.execute("SELECT body FROM readings WHERE device_id='dev-2' AND seq=1").fetchall()
    assert body == first[1][1]  # the first version stands


async def test_the_ack_watermark_holds_at_a_gap_and_moves_when_it_fills(
        store: Store, mqtt_broker: BrokerThread) -> None:
    import json as _json
    import threading

    import paho.mqtt.client as mqtt

    acks: list[dict] = []  # type: ignore[type-arg]
    got = threading.Event()
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="device-ack-listener")

    def on_message(_c, _u, m) -> None:  # type: ignore[no-untyped-def]
        acks.append(_json.loads(m.payload))
        got.set()

    sub.on_message = on_message
    sub.connect("127.0.0.1", mqtt_broker.port)
    sub.subscribe("packproof/v1/SHP-2/dev-2/ack", qos=1)
    sub.loop_start()
    msg = lambda seq: (topic("dev-2", "SHP-2"), canonical_bytes(reading(seq, "dev-2", "SHP-2")))  # noqa: E731
    db = Db(store.url)
    # The third round is all duplicates: acknowledged again, so a device whose ack was lost stops resending.
    for seqs, expected, more in (([0, 1, 2, 5, 6], (2, 2), (6, [[3, 4]])), ([3, 4], (6, 0), (6, [])),
                                 ([5, 6], (6, 0), (6, []))):
        got.clear()
        n = len(seqs)
        _, task = await start_ingestor(store, mqtt_broker.port, "ing-ack", lambda i, n=n: i.stats.processed >= n)
        await asyncio.to_thread(publish_all, mqtt_broker.port, [msg(s) for s in seqs])
        await task
        assert db.execute("SELECT acked_seq, missing FROM device_stats WHERE device_id='dev-2'").fetchone() == expected
        assert await asyncio.to_thread(got.wait, 5)
        await asyncio.sleep(0.2)
        assert acks[-1] == {"acked_seq": expected[0], "missing": expected[1], "highest": more[0], "gaps": more[1]}
        assert db.execute("SELECT gaps FROM device_stats WHERE device_id='dev-2'").fetchone() == (
            _json.dumps(more[1], separators=(",", ":")),)
    sub.disconnect()
    sub.loop_stop()


async def test_a_stalled_store_slows_intake_instead_of_growing_memory(
        tmp_path: Path, store: Store, mqtt_broker: BrokerThread) -> None:
    """Another connection holds the database's write lock: intake stops at the bounds, nothing is lost."""
    ing = Ingestor(store, MqttOptions(port=mqtt_broker.port, client_id="ing-backpressure"),
                   IngestorOptions(inbox_max=200, batch_max=50))
    await ing.reload_registry()
    await ing.connect()
    stop = asyncio.Event()
    task = asyncio.create_task(ing.run(stop))
    n = 1500
    try:
        with writes_blocked(store.url):  # the store falls behind: no commit can happen
            await asyncio.to_thread(publish_all, mqtt_broker.port, [(topic(), canonical_bytes(reading(s)))
                                                                    for s in range(n)])
            peak = 0
            for _ in range(40):  # two seconds of stall
                peak = max(peak, len(ing.subscriber.inbox))
                await asyncio.sleep(0.05)
            # Taken in: the inbox, plus the batches in the write queue (2) and the one being written.
            assert ing.stats.accepted <= 4 * 50 and peak <= 200, (ing.stats.accepted, peak)
            assert ing.stats.received <= 200 + 4 * 50, ing.stats.received  # the rest waits in the broker
    finally:
        for _ in range(300):
            if ing.stats.processed >= n:
                break
            await asyncio.sleep(0.05)
        stop.set()
        await task
    db = Db(store.url)
    assert db.execute("SELECT count(*), min(seq), max(seq) FROM readings WHERE device_id='dev-1'").fetchone() == (
        n, 0, n - 1)


async def test_a_verifier_process_that_dies_is_replaced_and_nothing_goes_unchecked(
        store: Store, mqtt_broker: BrokerThread, caplog: pytest.LogCaptureFixture) -> None:
    ing, task = await start_ingestor(store, mqtt_broker.port, "ing-verifier-dies", lambda i: i.stats.processed >= 11,
                                     verify_workers=1)
    await asyncio.to_thread(publish_all, mqtt_broker.port, [(topic(), canonical_bytes(reading(s))) for s in range(5)])
    await wait_until(lambda: ing.stats.accepted >= 5)
    verifiers = verifier_processes()
    for p in verifiers:
        p.kill()
    await asyncio.sleep(0.3)
    more = [(topic(), canonical_bytes(reading(s))) for s in range(5, 10)]
    more.append((topic(), canonical_bytes(reading(10, key=OTHER))))  # signed with a key not registered
    await asyncio.to_thread(publish_all, mqtt_broker.port, more)
    await task
    assert verifiers, "no verifier process"
    assert "a signature verifier process died" in caplog.text
    assert (ing.stats.accepted, ing.stats.quarantined) == (10, 1)
    db = Db(store.url)
    assert db.execute("SELECT reason_code FROM quarantine").fetchall() == [("bad_signature",)]


def verifier_processes() -> list[Any]:
    import psutil

    return [p for p in psutil.Process().children(recursive=True)
            if "spawn_main" in " ".join(p.cmdline()) and "resource_tracker" not in " ".join(p.cmdline())]


async def test_verifier_processes_run_before_the_first_reading_arrives(
        store: Store, mqtt_broker: BrokerThread) -> None:
    """A spawned verifier takes about a second to start: not while the first readings wait for it."""
    before = {p.pid for p in verifier_processes()}
    ing, task = await start_ingestor(store, mqtt_broker.port, "ing-verifiers-ready", lambda i: i.stats.accepted >= 3,
                                     verify_workers=2)
    started = [p.is_running() for p in verifier_processes() if p.pid not in before]
    await asyncio.to_thread(publish_all, mqtt_broker.port, [(topic(), canonical_bytes(reading(s))) for s in range(3)])
    await task
    assert started == [True, True]
    assert ing.stats.accepted == 3


def _failing_start() -> None:
    raise RuntimeError("this verifier cannot start")


async def test_verifiers_that_cannot_start_stop_the_ingestor_with_a_clear_error(
        store: Store, mqtt_broker: BrokerThread) -> None:
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    ing = Ingestor(store, MqttOptions(port=mqtt_broker.port, client_id="ing-verifiers-broken"),
                   IngestorOptions(verify_workers=1))
    assert ing.verifiers.pool is not None
    ing.verifiers.pool.shutdown()
    ing.verifiers.pool = ProcessPoolExecutor(1, mp_context=get_context("spawn"), initializer=_failing_start)
    with pytest.raises(ConfigError, match="verifier processes .* did not start.*--verify-workers 0"):
        await ing.connect()
    ing.verifiers.pool.shutdown()


async def test_a_full_disk_pauses_intake_acknowledges_nothing_unwritten_and_resumes(
        tmp_path: Path, mqtt_broker: BrokerThread) -> None:
    """SQLite's real SQLITE_FULL (`max_page_count` on the ingestor's connection: the file may not grow).

    While full: nothing stored and nothing acknowledged beyond what is stored (that much at once,
    not at the next stop), and the process's disk record names the ingestor. Space again: intake
    resumes by itself. A stop while full ends within the grace, and no acknowledgement ever covers
    a reading that was not stored.
    """
    import paho.mqtt.client as mqtt

    from packproof.diskfull import DISK

    store = await Store.open(tmp_path / "s.db")
    await store.register({"SHP-DF": "un38.3-cell"}, [("dev-df", "SHP-DF", public_key_bytes(KEY))])
    db = Db(store.url)
    acks: list[int] = []
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="disk-full-ack-listener")
    sub.on_message = lambda _c, _u, m: acks.append(json.loads(m.payload)["acked_seq"])
    sub.connect("127.0.0.1", mqtt_broker.port)
    sub.subscribe("packproof/v1/SHP-DF/dev-df/ack", qos=1)  # a device of its own: no retained ack of others
    sub.loop_start()

    async def limit(pages: int | None) -> None:
        if pages is None:
            pages = (await driver_of(store).fetch("PRAGMA page_count"))[0][0]
        await driver_of(store).execute(f"PRAGMA max_page_count={pages}")

    def msgs(seqs: range) -> list[tuple[str, bytes]]:
        return [(topic("dev-df", "SHP-DF"), canonical_bytes(reading(s, "dev-df", "SHP-DF", temperature_c=20 + s % 7)))
                for s in seqs]

    def stored() -> int:
        return int(db.execute("SELECT count(*) FROM readings WHERE device_id='dev-df'").fetchone()[0])  # type: ignore[index]

    try:
        await limit(None)
        ing = Ingestor(store, MqttOptions(port=mqtt_broker.port, client_id="ing-disk-full"),
                       IngestorOptions(stop_grace=1.0))
        await ing.reload_registry()
        await ing.connect()
        stop = asyncio.Event()
        task = asyncio.create_task(ing.run(stop))
        await asyncio.to_thread(publish_all, mqtt_broker.port, msgs(range(0, 300)))
        assert await wait_until(lambda: "ingestor" in [d.component for d in DISK.current()], 10)
        await asyncio.sleep(1.0)
        assert stored() == ing.stats.accepted < 300 and (not acks or max(acks) < stored())
        await limit(1073741823)  # space again
        assert await wait_until(lambda: ing.stats.accepted == 300, 15), ing.stats
        assert not DISK.current() and stored() == 300
        # Full again, and stopped while full: the stop takes the grace, not forever.
        await limit(None)
        await asyncio.to_thread(publish_all, mqtt_broker.port, msgs(range(300, 400)))
        assert await wait_until(lambda: bool(DISK.current()), 10)
        # Paused: what did fit before the disk filled (if anything) is acknowledged now, during the
        # pause, not held back to the stop (seqs 0.. dense, so the mark is stored() - 1).
        assert await wait_until(lambda: max(acks) == stored() - 1, 10), (max(acks), stored())
        stop.set()
        await asyncio.wait_for(task, 10)
        assert ing.stats.unwritten > 0 and ing.stats.accepted + ing.stats.unwritten == 400
        # A retry may still fit a small batch during the stop's grace (a failed write frees pages): its
        # ack goes out when the next write fails, and may still be on its way through the broker here.
        assert await wait_until(lambda: max(acks) == stored() - 1, 15), (max(acks), stored())
        await asyncio.sleep(0.3)
        assert max(acks) == stored() - 1 < 399  # exactly what is stored, never more
        await limit(1073741823)
        DISK.cleared("ingestor")  # this test's episode; the process-wide record outlives the ingestor
    finally:
        sub.disconnect()
        sub.loop_stop()
        await store.close()
