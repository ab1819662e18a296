"""CPU per reading in the ingestor's hot path, stage by stage, without a broker.

`make bench` measures the pipeline through a real broker, where the broker, the
publisher and the ingestor share two cores and the figures drift with the machine's
load. This script feeds pre-signed payloads straight into the same code the ingestor
runs per batch (`CheckStage.process`, then `Ingestor.commit`, then `Sealer.seal_once`)
and prints µs per reading for each stage, so a change to the hot path can be judged on
its own. Each figure is the best of several rounds (the least disturbed by other
processes); the decode sub-steps are timed in isolation on the same payloads.

    python benchmarks/hotpath.py [--readings 20000] [--devices 20] [--batch 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import socket
import sys
import tempfile
import threading
import time
from binascii import a2b_base64, b2a_base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

# The repository root, for the tests' scripted-broker PUBLISH encoder (a script run as
# `python benchmarks/hotpath.py` has only benchmarks/ on its path).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from packproof.anchor.ledger import LedgerFile  # noqa: E402
from packproof.anchor.merkle import leaf_hash  # noqa: E402
from packproof.anchor.sealer import Sealer  # noqa: E402
from packproof.canonical import signed_and_full  # noqa: E402
from packproof.crypto import DeviceVerifier, load_or_create_ledger_key  # noqa: E402
from packproof.edge.decode import DeviceEntry, decode  # noqa: E402
from packproof.edge.ingestor import Ingestor  # noqa: E402
from packproof.edge.message import Message  # noqa: E402
from packproof.edge.mqttclient import BatchingClient  # noqa: E402
from packproof.edge.options import IngestorOptions  # noqa: E402
from packproof.edge.thresholds import BUILTIN_PROFILES, evaluate  # noqa: E402
from packproof.paths import DataDir  # noqa: E402
from packproof.reading import DEFAULT_PROFILE, DeviceTopic, Reading  # noqa: E402
from packproof.simulators.fleet import build_fleet, shipments_of  # noqa: E402
from tests.edge.test_mqttclient import publish  # noqa: E402  (the scripted broker's PUBLISH encoder)


def payloads(n: int, devices: int, seed: int) -> tuple[list[tuple[str, bytes]], list[Any]]:
    fleet = build_fleet(shipments=1, packs=devices, scenario="nominal-road", seed=seed)
    now = time.time()
    out = [(d.topic, d.reading(now + k * 0.001)) for k in range(n // devices) for d in fleet]
    return out, fleet


def per_item(fn: Callable[[Any], object], items: list[Any], rounds: int) -> float:
    """Best-of-`rounds` µs per item of a synchronous step."""
    best = float("inf")
    for _ in range(rounds):
        t = time.process_time()
        for x in items:
            fn(x)
        best = min(best, time.process_time() - t)
    return best / len(items) * 1e6


async def pipeline_round(msgs: list[tuple[str, bytes]], fleet: list[Any], batch: int,
                         verify: bool) -> dict[str, float]:
    """One pass of all messages through a fresh store: CPU seconds per stage."""
    with tempfile.TemporaryDirectory(prefix="packproof-hotpath-") as tmp:
        store = await DataDir(Path(tmp)).open_writer()  # as the ingestor opens it: rows carry their intake MAC
        await store.register(shipments_of(fleet), [(d.device_id, d.shipment_id, d.public_key) for d in fleet])
        ing = Ingestor(store, options=IngestorOptions(verify_signatures=verify, batch_max=batch))
        await ing.reload_registry()
        sealer = Sealer(store, LedgerFile(Path(tmp) / "ledger.jsonl"),
                        load_or_create_ledger_key(Path(tmp) / "ledger.key"), max_leaves=8192)
        await sealer.recover()
        now = time.time()
        inbox: list[Message] = [Message(t, p, i + 1, 1, now) for i, (t, p) in enumerate(msgs)]
        cpu = {"process": 0.0, "write": 0.0, "seal": 0.0}
        for i in range(0, len(inbox), batch):
            t0 = time.process_time()
            decoded = await ing.decoder.process(inbox[i:i + batch])
            t1 = time.process_time()
            await ing.commit(decoded)
            t2 = time.process_time()
            cpu["process"] += t1 - t0
            cpu["write"] += t2 - t1
        t3 = time.process_time()
        while await sealer.seal_once() is not None:
            pass
        cpu["seal"] = time.process_time() - t3
        if ing.stats.accepted != len(msgs):
            raise SystemExit(f"only {ing.stats.accepted} of {len(msgs)} accepted: the hot path is not the honest one")
        await store.close()
        return cpu


def mqtt_receive(msgs: list[tuple[str, bytes]], client_cls: type[mqtt.Client], batched_ack: bool,
                 batch: int) -> float:
    """CPU µs per message of paho receiving QoS 1 PUBLISHes and sending their PUBACKs.

    A scripted broker on a local socket sends the whole stream at once (the broker is
    ahead of us, as in the benchmark) and counts PUBACKs; the client acks from this
    thread in batches, as the ingestor's writer does. The scripted broker's own thread
    time is subtracted, so the figure is paho's and the acking thread's.
    """
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    stream = b"".join(publish(t, p, i % 65535 + 1) for i, (t, p) in enumerate(msgs))
    n = len(msgs)
    broker_cpu = [0.0]
    done = threading.Event()

    def broker() -> None:
        conn, _ = srv.accept()
        t0 = time.thread_time()
        conn.recv(4096)  # CONNECT
        conn.sendall(b"\x20\x02\x00\x00")  # CONNACK, accepted
        sender = threading.Thread(target=conn.sendall, args=(stream,))
        sender.start()
        got = 0
        while got < 4 * n:
            data = conn.recv(65536)
            if not data:
                break
            got += len(data)
        sender.join()
        broker_cpu[0] = time.thread_time() - t0
        done.set()
        conn.close()

    bt = threading.Thread(target=broker)
    bt.start()
    inbox: collections.deque[tuple[int, int]] = collections.deque()
    c = client_cls(mqtt.CallbackAPIVersion.VERSION2, client_id="hotpath", clean_session=True,
                   protocol=mqtt.MQTTv311, manual_ack=True)
    c.on_message = lambda _c, _u, m: inbox.append((m.mid, m.qos))
    t0 = time.process_time()
    c.connect("127.0.0.1", port)
    c.loop_start()
    acked = 0
    while acked < n:
        if len(inbox) < batch and acked + len(inbox) < n:
            time.sleep(0.002)
            continue
        acks = [inbox.popleft() for _ in range(min(batch, len(inbox)))]
        if batched_ack:
            c.ack_many(acks)  # type: ignore[attr-defined]
        else:
            for mid, qos in acks:
                c.ack(mid, qos)
        acked += len(acks)
    done.wait(60)
    cpu = time.process_time() - t0 - broker_cpu[0]
    c.disconnect()
    c.loop_stop()
    bt.join()
    srv.close()
    return cpu / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--readings", type=int, default=20000)
    ap.add_argument("--devices", type=int, default=20)
    ap.add_argument("--batch", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    msgs, fleet = payloads(a.readings, a.devices, a.seed)
    n = len(msgs)
    print(f"packproof hot path: {n:,} signed readings from {a.devices} devices, batches of {a.batch}, "
          f"best of {a.rounds} rounds, CPU µs per reading")

    # Decode sub-steps, each on its own, in the order decode() runs them.
    payload_list = [p for _, p in msgs]
    topics = [t for t, _ in msgs]
    readings = [Reading.model_validate_json(p) for p in payload_list]
    keys = {d.device_id: d.public_key for d in fleet}
    profile = BUILTIN_PROFILES[DEFAULT_PROFILE]
    registry = {d.device_id: DeviceEntry(d.shipment_id, DeviceVerifier(keys[d.device_id]), profile) for d in fleet}
    unsigned = [signed_and_full(r)[0] for r in readings]
    verify_items = [(registry[r.device_id].verifier, a2b_base64(r.sig or ""), u)
                    for r, u in zip(readings, unsigned, strict=True)]
    bodies = [signed_and_full(r)[1] for r in readings]
    steps = {
        "topic parse": per_item(DeviceTopic.parse, topics, a.rounds),
        "pydantic validate": per_item(Reading.model_validate_json, payload_list, a.rounds),
        "canonical bytes": per_item(signed_and_full, readings, a.rounds),
        "sig base64 check": per_item(lambda r: b2a_base64(a2b_base64(r.sig), newline=False).decode() == r.sig,
                                     readings, a.rounds),
        "ed25519 verify": per_item(lambda x: x[0].verify(x[1], x[2]), verify_items, a.rounds),
        "leaf hash": per_item(leaf_hash, bodies, a.rounds),
        "ts -> epoch": per_item(lambda r: r.epoch, readings, a.rounds),
        "thresholds": per_item(lambda r: evaluate(profile, r), readings, a.rounds),
    }
    now = time.time()
    full_decode = per_item(lambda m: decode(m[0], m[1], registry, True, now), msgs, a.rounds)
    for name, step_us in steps.items():
        print(f"  {name:<22} {step_us:7.2f}")
    print(f"  {'decode() as a whole':<22} {full_decode:7.2f}  (sum of its steps above, "
          f"thresholds excluded: {sum(v for k, v in steps.items() if k != 'thresholds'):.2f})")

    plain = min(mqtt_receive(msgs, mqtt.Client, False, a.batch) for _ in range(a.rounds))
    batching = min(mqtt_receive(msgs, BatchingClient, True, a.batch) for _ in range(a.rounds))
    print("MQTT receive + PUBACK (scripted broker):")
    print(f"  {'paho Client, ack() each':<28} {plain:7.2f}")
    print(f"  {'BatchingClient, ack_many()':<28} {batching:7.2f}  (the ingestor's)")

    for verify in (True, False):
        best: dict[str, float] = {}
        for _ in range(a.rounds):
            cpu = asyncio.run(pipeline_round(msgs, fleet, a.batch, verify))
            for k, v in cpu.items():
                best[k] = min(best.get(k, float("inf")), v)
        us = {k: v / n * 1e6 for k, v in best.items()}
        classify = us["process"] - full_decode if verify else None
        label = "signatures on" if verify else "signatures off"
        print(f"pipeline without the broker, {label}:")
        print(f"  {'decode (decode+classify)':<28} {us['process']:7.2f}"
              + (f"  (classify and bookkeeping ≈ {classify:.2f})" if classify is not None else ""))
        print(f"  {'commit (settle + write)':<28} {us['write']:7.2f}")
        print(f"  {'seal':<28} {us['seal']:7.2f}")
        print(f"  {'total':<28} {sum(us.values()):7.2f}")


if __name__ == "__main__":
    main()
