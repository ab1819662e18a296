"""Custody figures (issue 15): events/s accepted through the API, and the condition query with attribution.

1. `accept`: a real `packproof api` and a real `packproof seal` on a fresh data directory; carriers
   each holding their own pack post pre-signed `location` events (a hash chain per pack, signed
   with real Ed25519 keys), one HTTP client per carrier. Reported: events accepted per second
   (201s over the wall time of the POSTs) and the time until the last one is sealed.
2. `condition`: a shipment with READINGS readings bulk-loaded straight into the store (the
   ingestor's write path, `Store.write_rows`, without MQTT), its trackers' excursions, and a
   pallet of PACKS packs carried through CUSTODY custody events (accepted by the API's own accept
   path); then GET /shipments/{id}/condition on a real `packproof api`, p50/p99 over QUERIES runs.

    python benchmarks/custody.py [--store URL] [--events N] [--carriers K] [--readings N] [--queries N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from packproof.api.routes.custody import accept_event
from packproof.crypto import private_key_from_seed, public_key_bytes
from packproof.custody import event_from_object, event_hash, sign_event
from packproof.net import free_port, port_in_use
from packproof.paths import DataDir
from packproof.records import DeviceBatchStats, Excursion, IngestBatch, ReadingRow
from packproof.rfc6962 import leaf_hash

UN = {"report_id": "R-1", "lab": "Lab", "date": "2025-01-01", "manual_revision": "Rev. 8",
      "results": {f"T{i}": "pass" for i in range(1, 9)}}
WHERE = {"lat": 50.0331, "lon": 8.5706}


def _ts(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(1_772_000_000 + second)) + ".000Z"


def _start(*args: str, port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "packproof", *args], stdout=log.open("w"),
                            stderr=subprocess.STDOUT, env={**os.environ, **env})
    deadline = time.monotonic() + 30
    while port and not port_in_use("127.0.0.1", port):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{args[0]} did not start:\n{log.read_text()}")
        time.sleep(0.1)
    return proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(2)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


def _event(actor: str, seq: int, kind: str, packs: list[str], prev: dict[str, str | None], at: int,
           shipment: str, **fields: Any) -> dict[str, Any]:
    return {"v": 1, "kind": kind, "event_id": f"{actor}:{seq}", "actor": actor, "ts": _ts(at), "packs": packs,
            "shipment_id": shipment, "location": WHERE, "prev": prev, **fields}


class Chain:
    """Signed events for packs, each naming the hash of the pack's previous one (computed here)."""

    def __init__(self) -> None:
        self.heads: dict[str, str | None] = {}
        self.seqs: dict[str, int] = {}

    def sign(self, actor: str, kind: str, packs: list[str], at: int, shipment: str, **fields: Any) -> dict[str, Any]:
        seq = self.seqs.get(actor, 0) + 1
        self.seqs[actor] = seq
        body = _event(actor, seq, kind, packs, {p: self.heads.get(p) for p in packs}, at, shipment, **fields)
        signed = sign_event(body, private_key_from_seed(actor.encode()))
        digest = event_hash(event_from_object(signed))
        for p in packs:
            self.heads[p] = digest
        return signed

    def journey(self, maker: str, carrier: str, packs: list[str], shipment: str, trackers: dict[str, str],
                locations: int) -> list[dict[str, Any]]:
        """Registration of each pack, an assignment, a pick-up, then `locations` location updates."""
        out = [self.sign(maker, "pack-registered", [p], 0, shipment, serial=p, model="M", chemistry="NMC811",
                         rated_wh=80000.5, mass_kg=512.25, un38_3=UN, profile="un38.3-large", cell_lots=[],
                         **({"tracker": trackers[p]} if p in trackers else {})) for p in packs]
        out.append(self.sign(maker, "transporter-assigned", packs, 60, shipment, transporter=carrier))
        out.append(self.sign(carrier, "picked-up", packs, 120, shipment))
        out += [self.sign(carrier, "location", packs, 180 + 60 * i, shipment) for i in range(locations)]
        return out


async def _parties(dirs: DataDir, parties: dict[str, str]) -> None:
    store = await dirs.open_writer()
    try:
        for party, role in parties.items():
            await store.add_party(party, party, [role], public_key_bytes(private_key_from_seed(party.encode())))
    finally:
        await store.close()


def accept(store_url: str | None, events: int, carriers: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        dirs = DataDir(root, store_url=store_url)
        env = {"PACKPROOF_STORE": dirs.store}
        names = [f"carrier-{i}" for i in range(carriers)]
        asyncio.run(_parties(dirs, {"maker": "manufacturer", **dict.fromkeys(names, "carrier")}))
        sealer = _start("seal", "--data-dir", str(root), "--seal-interval", "0.2", port=0, env=env,
                        log=Path(tmp) / "seal.log")
        time.sleep(2)  # the ledger key exists once the sealer has started
        port = free_port()
        api = _start("api", "--data-dir", str(root), "--port", str(port), port=port, env=env, log=Path(tmp) / "api.log")
        base = f"http://127.0.0.1:{port}"
        try:
            chain = Chain()
            per = max(events // carriers, 1)
            setups, streams = [], []
            for i, name in enumerate(names):
                journey = chain.journey("maker", name, [f"B-{i}"], "SHP-B", {}, per)
                setups += journey[:3]
                streams.append(journey[3:])
            with httpx.Client(timeout=30) as c:
                for e in setups:
                    assert c.post(f"{base}/custody/events", json=e).status_code == 201
            accepted = [0] * carriers

            def post_all(i: int) -> None:
                with httpx.Client(timeout=30) as c:
                    for e in streams[i]:
                        r = c.post(f"{base}/custody/events", content=json.dumps(e).encode())
                        accepted[i] += r.status_code == 201

            threads = [threading.Thread(target=post_all, args=(i,)) for i in range(carriers)]
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - t0
            last = streams[-1][-1]["event_id"]
            while httpx.get(f"{base}/custody/events/{last}").json()["block_height"] is None:
                time.sleep(0.05)
            sealed = time.perf_counter() - t0
        finally:
            _stop(api)
            _stop(sealer)
        return {"posted": sum(len(s) for s in streams), "accepted": sum(accepted), "seconds": wall,
                "events_per_s": sum(accepted) / wall, "all_sealed_after_s": sealed}


async def _fill(dirs: DataDir, readings: int, packs: int, custody: int) -> str:
    """One shipment: `packs` trackers sharing `readings` readings, 5 excursions each, and a pallet of
    `packs` packs through `custody` events touching all of them."""
    sid = "SHP-Q"
    trackers = {f"Q-{i}": f"q-dev-{i}" for i in range(packs)}
    store = await dirs.open_writer()
    try:
        for party, role in {"maker": "manufacturer", "road": "carrier"}.items():
            await store.add_party(party, party, [role], public_key_bytes(private_key_from_seed(party.encode())))
        await store.register({sid: "un38.3-large"}, [(d, sid, None) for d in trackers.values()])
        chain = Chain()
        locations = custody - packs - 2
        for e in chain.journey("maker", "road", sorted(trackers), sid, trackers, locations):
            decision = await accept_event(store, json.dumps(e).encode())
            assert decision.event is not None, decision.reason
        per_device = readings // packs
        chunk = 20_000
        devices = sorted(trackers.values())
        t0 = time.perf_counter()
        for d_i, device in enumerate(devices):
            for start in range(0, per_device, chunk):
                b = IngestBatch()
                n = min(chunk, per_device - start)
                for seq in range(start, start + n):
                    body = (f'{{"device_id":"{device}","seq":{seq},"shipment_id":"{sid}","temperature_c":21.5,'
                            f'"ts":"{_ts(seq)}","v":1}}').encode()
                    b.readings.append(ReadingRow(device, seq, sid, _ts(seq), 1.0, body, leaf_hash(body)))
                b.stats.append(DeviceBatchStats(device, sid, n, start, start + n - 1, _ts(start), _ts(start + n - 1),
                                                time.time(), start + n - 1, 0, "[]"))
                if start == 0:
                    first = await store.next_excursion_id()
                    b.excursions += [Excursion(first + k, device, sid, "T.4", "shock.peak_g", "violation",
                                               _ts(200 + 600 * k + d_i), _ts(200 + 600 * k + d_i), k, k, 80.0, 50.0,
                                               "shock above 50 g", 1, False) for k in range(5)]
                async with store.transaction("bulk load"):
                    await store.write_rows(b)
        print(f"  loaded {per_device * packs:,} readings in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    finally:
        await store.close()
    return sid


def condition(store_url: str | None, readings: int, packs: int, custody: int, queries: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        dirs = DataDir(root, store_url=store_url)
        env = {"PACKPROOF_STORE": dirs.store}
        from packproof.crypto import load_or_create_ledger_key  # not at start-up: only this part needs a ledger key

        load_or_create_ledger_key(dirs.ledger_key)  # the API names the ledger key in proofs
        sid = asyncio.run(_fill(dirs, readings, packs, custody))
        port = free_port()
        api = _start("api", "--data-dir", str(root), "--port", str(port), port=port, env=env, log=Path(tmp) / "api.log")
        try:
            times = []
            with httpx.Client(timeout=30) as c:
                doc = c.get(f"http://127.0.0.1:{port}/shipments/{sid}/condition").json()
                named = sum(1 for e in doc["excursions"] if e["custody"] and e["custody"]["carriers"])
                for _ in range(queries):
                    t0 = time.perf_counter()
                    r = c.get(f"http://127.0.0.1:{port}/shipments/{sid}/condition")
                    times.append(time.perf_counter() - t0)
                    assert r.status_code == 200
        finally:
            _stop(api)
        times.sort()
        return {"readings": doc["readings"], "excursions": len(doc["excursions"]),
                "excursions_with_carrier": named, "custody_events": custody,
                "p50_ms": 1000 * statistics.median(times), "p99_ms": 1000 * times[int(0.99 * (len(times) - 1))]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--store", help="store URL (default: SQLite in a temporary data directory)")
    p.add_argument("--events", type=int, default=2000)
    p.add_argument("--carriers", type=int, default=4)
    p.add_argument("--readings", type=int, default=1_000_000)
    p.add_argument("--packs", type=int, default=10)
    p.add_argument("--custody", type=int, default=100)
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--only", choices=("accept", "condition"))
    a = p.parse_args()
    if a.only in (None, "accept"):
        print("accept:", json.dumps(accept(a.store, a.events, a.carriers)), flush=True)
    if a.only in (None, "condition"):
        print("condition:", json.dumps(condition(a.store, a.readings, a.packs, a.custody, a.queries)), flush=True)


if __name__ == "__main__":
    main()
