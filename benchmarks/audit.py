"""How long `packproof audit` takes over a large store (issue target: 1,000,000 readings < 1 min).

Builds a store through the real write path (Store.write_rows in a store transaction) and seals it with the
real Sealer, then times the real `packproof audit` command and reports its peak memory.

    python benchmarks/audit.py [--readings 1000000] [--no-signatures]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from packproof.anchor.ledger import LedgerFile
from packproof.anchor.merkle import leaf_hash
from packproof.anchor.sealer import Sealer
from packproof.canonical import canonical_bytes, signing_bytes
from packproof.crypto import b64, load_or_create_ledger_key, private_key_from_seed, public_key_bytes
from packproof.paths import DataDir
from packproof.reading import Reading, Shock, Vibration
from packproof.records import IngestBatch, ReadingRow
from packproof.store import Store


async def store_batch(store: Store, batch: IngestBatch) -> None:
    """One write transaction of new readings, as the ingestor writes them."""
    async with store.transaction("storing a batch"):
        await store.write_rows(batch)


async def build(dirs: DataDir, n: int, devices: int) -> None:
    store = await dirs.open_writer()  # the ingestor's write path: rows carry their intake MAC
    keys = {f"dev-{d:04d}": private_key_from_seed(f"audit/{d}".encode()) for d in range(devices)}
    await store.register({"SHP-AUDIT": "un38.3-cell"}, [(d, "SHP-AUDIT", public_key_bytes(k)) for d, k in keys.items()])
    ids = list(keys)
    batch = IngestBatch()
    t = time.perf_counter()
    for i in range(n):
        device = ids[i % devices]
        r = Reading.model_construct(
            v=1, device_id=device, shipment_id="SHP-AUDIT", seq=i // devices, ts="2026-11-22T08:00:00.000Z",
            temperature_c=20.0 + (i % 100) / 10, vibration=Vibration.model_construct(peak_g=0.3, freq_hz=25.0),
            shock=Shock.model_construct(peak_g=0.0, duration_ms=0.0), pressure_kpa=101.3, location=None, sig=None)
        r = r.model_copy(update={"sig": b64(keys[device].sign(signing_bytes(r)))})
        body = canonical_bytes(r)
        batch.readings.append(ReadingRow(device, r.seq, "SHP-AUDIT", r.ts, 0.0, body, leaf_hash(body)))
        if len(batch.readings) == 20000:
            await store_batch(store, batch)
            batch = IngestBatch()
            print(f"\r  stored {i + 1:,} readings ({(i + 1) / (time.perf_counter() - t):,.0f}/s)", end="", flush=True)
    await store_batch(store, batch)
    print()
    sealer = Sealer(store, LedgerFile(dirs.ledger), load_or_create_ledger_key(dirs.ledger_key), max_leaves=8192)
    await sealer.recover()
    while await sealer.seal_once():
        pass
    print(f"  sealed {sealer.sealed_leaves:,} readings in {sealer.sealed_blocks:,} blocks")
    await store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--readings", type=int, default=1_000_000)
    ap.add_argument("--devices", type=int, default=500)
    ap.add_argument("--no-signatures", action="store_true", help="also time `audit --no-signatures`")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="packproof-audit-") as tmp:
        dirs = DataDir(Path(tmp))
        print(f"building a store of {a.readings:,} signed readings ...")
        asyncio.run(build(dirs, a.readings, a.devices))
        runs: list[list[str]] = [[]] + ([["--no-signatures"]] if a.no_signatures else [])
        for extra in runs:
            t = time.perf_counter()
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            r = subprocess.run([sys.executable, "-m", "packproof", "audit", "--data-dir", tmp, *extra],
                               capture_output=True, text=True)
            elapsed = time.perf_counter() - t
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime  # the audit and its checkers
            print(f"packproof audit {' '.join(extra)}: {elapsed:.1f} s for {a.readings:,} readings "
                  f"({a.readings / elapsed:,.0f}/s), {cpu:.1f} s of CPU, exit {r.returncode}, "
                  f"peak RSS {after.ru_maxrss / 1024:.0f} MiB")
            print("  " + r.stdout.strip().replace("\n", "\n  "))


if __name__ == "__main__":
    main()
