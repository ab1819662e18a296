"""The transparency log at scale (issue 16): proof bundles and consistency proofs through the API over a
log of millions of leaves, and the sealer's cost per block.

Builds a SQLite store of `--leaves` readings (unsigned trackers: the log's cost does not depend on
signatures) bulk-loaded through the store's own write path (`Store.write_rows`, intake MACs and all,
no MQTT), seals it with the real Sealer in blocks of `--block` leaves (timing every seal), starts the
real `packproof api` on it and times, from a client, `--requests` proof bundles of random readings and
consistency proofs between random checkpoints (p50/p99).

    python benchmarks/log.py [--leaves 10000000] [--block 8192] [--requests 2000]
    python benchmarks/log.py --seal-only --leaves 200000    # the sealing cost alone (runs on main too)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from packproof.anchor.ledger import LedgerFile
from packproof.anchor.sealer import Sealer
from packproof.crypto import load_or_create_ledger_key
from packproof.net import free_port
from packproof.paths import DataDir
from packproof.records import IngestBatch, ReadingRow
from packproof.rfc6962 import leaf_hash

DEVICES = 1000
SHIPMENT = "SHP-LOG"
BATCH = 50_000


def body(device: str, seq: int) -> bytes:
    """An unsigned tracker's reading in RFC 8785 canonical form (keys sorted), built as text: fast."""
    return (f'{{"device_id":"{device}","pressure_kpa":101.3,"seq":{seq},"shipment_id":"{SHIPMENT}",'
            f'"shock":{{"duration_ms":0,"peak_g":0}},"temperature_c":21.5,"ts":"2026-11-22T08:00:00.000Z",'
            f'"v":1,"vibration":{{"freq_hz":25,"peak_g":0.3}}}}').encode()


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def build(dirs: DataDir, leaves: int, block: int) -> list[float]:
    """Store `leaves` readings (with the registration records) and seal them; returns each seal's seconds."""
    store = await dirs.open_writer()
    devices = [f"trk-{d:04d}" for d in range(DEVICES)]
    await store.register({SHIPMENT: "un38.3-cell"}, [(d, SHIPMENT, None) for d in devices])
    n = leaves - DEVICES  # the registration records are leaves too
    t0 = time.perf_counter()
    for start in range(0, n, BATCH):
        batch = IngestBatch()
        count = min(BATCH, n - start)
        for i in range(start, start + count):
            device, seq = devices[i % DEVICES], i // DEVICES
            text = body(device, seq)
            batch.readings.append(ReadingRow(device, seq, SHIPMENT, "2026-11-22T08:00:00.000Z", 0.0, text,
                                             leaf_hash(text)))
        async with store.transaction("bulk load"):
            await store.write_rows(batch)
        done = start + count
        print(f"\r  stored {done:,} readings ({done / (time.perf_counter() - t0):,.0f}/s)", end="", flush=True)
    print()
    sealer = Sealer(store, LedgerFile(dirs.ledger), load_or_create_ledger_key(dirs.ledger_key), max_leaves=block,
                    key_path=dirs.ledger_key)
    await sealer.recover()
    times = []
    t0 = time.perf_counter()
    while True:
        t = time.perf_counter()
        record = await sealer.seal_once()
        if record is None:
            break
        times.append(time.perf_counter() - t)
        if len(times) % 50 == 0:
            print(f"\r  sealed {sealer.sealed_leaves:,} leaves in {len(times):,} blocks "
                  f"({sealer.sealed_leaves / (time.perf_counter() - t0):,.0f}/s)", end="", flush=True)
    print(f"\r  sealed {sealer.sealed_leaves:,} leaves in {len(times):,} blocks in {time.perf_counter() - t0:.0f} s")
    await store.close()
    return times


def time_api(dirs: DataDir, leaves: int, requests: int) -> None:
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    api = subprocess.Popen([sys.executable, "-m", "packproof", "api", "--data-dir", str(dirs.root), "--port",
                            str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(timeout=10) as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if client.get(f"{base}/checkpoint").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("the API did not start")
                time.sleep(0.2)
            size = int(client.get(f"{base}/checkpoint").text.split("\n")[1])
            rng = random.Random(1)
            n = leaves - DEVICES
            ids = [rng.randrange(n) for _ in range(requests)]
            for i in ids[:50]:  # warm up
                client.get(f"{base}/readings/trk-{i % DEVICES:04d}:{i // DEVICES}/proof")
            lat, sizes = [], []
            for i in ids:
                t = time.perf_counter()
                r = client.get(f"{base}/readings/trk-{i % DEVICES:04d}:{i // DEVICES}/proof")
                lat.append((time.perf_counter() - t) * 1000)
                r.raise_for_status()
                sizes.append(len(r.content))
                path = r.json()["log"]["path"]
            print(f"  proof bundle via the API, log of {size:,} leaves: p50 {pct(lat, 50):.2f} ms, p99 "
                  f"{pct(lat, 99):.2f} ms, max {max(lat):.2f} ms ({requests:,} random readings); bundle "
                  f"{statistics.mean(sizes):,.0f} bytes, log path {len(path)} hashes")
            cps = [int(x) for x in sorted({rng.randrange(1, size) for _ in range(requests)})]
            lat, lengths = [], []
            for m in cps[:requests]:
                t = time.perf_counter()
                r = client.get(f"{base}/log/consistency", params={"from": m, "to": size})
                lat.append((time.perf_counter() - t) * 1000)
                r.raise_for_status()
                lengths.append(len(r.json()["proof"]))
            print(f"  consistency proof via the API (random old size to {size:,}): p50 {pct(lat, 50):.2f} ms, "
                  f"p99 {pct(lat, 99):.2f} ms ({len(lat):,} requests); {statistics.mean(lengths):.1f} hashes on "
                  f"average, at most {max(lengths)}")
            lat = []
            for _ in range(200):
                t = time.perf_counter()
                client.get(f"{base}/tile/0/{'000'}").raise_for_status()
                lat.append((time.perf_counter() - t) * 1000)
            print(f"  a full tile via the API: p50 {pct(lat, 50):.2f} ms, p99 {pct(lat, 99):.2f} ms")
    finally:
        api.terminate()
        api.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--leaves", type=int, default=10_000_000)
    ap.add_argument("--block", type=int, default=8192)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--seal-only", action="store_true", help="only build and seal, and print the cost per block")
    ap.add_argument("--dir", type=Path, default=None, help="build here (kept) instead of a temporary directory")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="packproof-log-", dir=a.dir) as tmp:
        dirs = DataDir(Path(tmp))
        print(f"building a store of {a.leaves:,} leaves, sealed in blocks of {a.block:,} ...")
        times = asyncio.run(build(dirs, a.leaves, a.block))
        full = [t * 1000 for t in times[:-1]] or [t * 1000 for t in times]  # the last block is partial
        print(f"  sealing cost per block of {a.block:,}: mean {statistics.mean(full):.1f} ms, p50 {pct(full, 50):.1f} "
              f"ms, p99 {pct(full, 99):.1f} ms ({len(full):,} blocks)")
        if not a.seal_only:
            time_api(dirs, a.leaves, a.requests)


if __name__ == "__main__":
    main()
