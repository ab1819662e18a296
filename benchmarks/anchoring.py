"""Checkpoint signed -> anchor confirmed on a dev node, and gas per anchor (issue 17), printed as figures.

A Hardhat node (anchor/chain/node_modules, `make install`) mines a block every `--block-ms`
(evm_setIntervalMining, automine off: transactions wait for the next block as on a real chain).
A real sealer seals readings into a SQLite store; the real anchoring loop (anchor/anchorer.py,
every = 0, a pass every `--poll` s) signs with a fresh funded key and sends each new checkpoint.
For each of `--rounds` rounds: wait a random part of a block interval (so a checkpoint is signed
at any moment between two blocks, not just after one), seal a block, then wait until the loop records the anchor of its
checkpoint as confirmed with N confirmations; the time is the row's confirmation time minus the
checkpoint's signing time. Expected: about N - 1/2 block intervals (the wait for the next
block, then N - 1 more) plus up to one pass.

    python benchmarks/anchoring.py [--confirmations 1 3 12] [--rounds 5] [--block-ms 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import httpx

from packproof.anchor import anchoring
from packproof.anchor.anchor_options import AnchoringOptions
from packproof.anchor.anchorer import Anchoring
from packproof.anchor.ledger import LedgerFile
from packproof.anchor.sealer import Sealer
from packproof.canonical import canonical_bytes
from packproof.crypto import private_key_from_seed
from packproof.intake import IntakeKey
from packproof.reading import Reading
from packproof.records import AnchorState, DeviceBatchStats, IngestBatch, ReadingRow
from packproof.rfc6962 import leaf_hash
from packproof.store import Store

CHAIN = Path(__file__).resolve().parents[1] / "anchor" / "chain"
ORIGIN = "packproof.example/anchoring-bench"


def rpc(url: str, method: str, *params: object) -> object:
    answer = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)},
                        timeout=10).json()
    if "error" in answer:
        raise RuntimeError(f"{method}: {answer['error']}")
    return answer.get("result")


def start_node() -> tuple[subprocess.Popen[bytes], str]:
    hardhat = CHAIN / "node_modules" / ".bin" / "hardhat"
    if shutil.which("node") is None or not hardhat.exists():
        raise SystemExit("needs Node.js and anchor/chain/node_modules (make install)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([str(hardhat), "node", "--hostname", "127.0.0.1", "--port", str(port)], cwd=CHAIN,
                            env={**os.environ, "HARDHAT_DISABLE_TELEMETRY_PROMPT": "true"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:
        try:
            if rpc(url, "eth_chainId") == hex(31337):
                return proc, url
        except (httpx.HTTPError, RuntimeError):
            pass
        if time.monotonic() > deadline:
            raise SystemExit("the Hardhat node did not start")
        time.sleep(0.2)


async def add_readings(store: Store, start: int, n: int) -> None:
    b = IngestBatch()
    for i in range(start, start + n):
        body = canonical_bytes(Reading.model_validate({
            "v": 1, "device_id": "d", "shipment_id": "S", "seq": i, "ts": "2026-01-02T03:04:05Z",
            "temperature_c": 21.5, "vibration": {"peak_g": 0.3, "freq_hz": 20.0},
            "shock": {"peak_g": 0.0, "duration_ms": 0.0}, "pressure_kpa": 101.0}))
        b.readings.append(ReadingRow("d", i, "S", "2026-01-02T03:04:05Z", time.time(), body, leaf_hash(body)))
    b.stats.append(DeviceBatchStats("d", "S", n, start, start + n - 1, "t0", "t1", 0.0, start + n - 1, 0, "[]"))
    async with store.transaction("benchmark readings"):
        await store.write_rows(b)


async def measure(url: str, work: Path, confirmations: int, rounds: int, poll: float,
                  block_s: float) -> tuple[list[float], list[int]]:
    key = work / f"anchor-{confirmations}.key"
    address = anchoring.new_key_file(key)
    rpc(url, "hardhat_setBalance", address, hex(10**20))
    contract = await asyncio.to_thread(anchoring.deploy_signed, anchoring.connect(url), ORIGIN,
                                       anchoring.load_key(key), 31337)
    store = await Store.open(work / f"bench-{confirmations}.db", intake_key=IntakeKey(b"i" * 32))
    await store.register({"S": "un38.3-cell"}, [("d", "S", None)])
    sealer = Sealer(store, LedgerFile(work / f"ledger-{confirmations}.jsonl"), private_key_from_seed(b"bench"),
                    origin=ORIGIN)
    await sealer.recover()
    opts = AnchoringOptions(rpc=url, contract=contract, key_file=key, chain_id=31337, every=0.0,
                            confirmations=confirmations, poll=poll, timeout=5.0, backoff_max=1.0, stop_wait=0.0)
    stop = asyncio.Event()
    loop = Anchoring(store, replace(opts))
    task = asyncio.create_task(loop.run(stop))
    times: list[float] = []
    gas: list[int] = []
    leaves = 0
    try:
        for _ in range(rounds):
            await asyncio.sleep(random.uniform(0, block_s))
            await add_readings(store, leaves, 100)
            leaves += 100
            while await sealer.seal_once():
                pass
            cp = await store.latest_checkpoint()
            assert cp is not None
            while True:
                row = await store.latest_confirmed_anchor()
                if row is not None and row.size == cp.size:
                    break
                await asyncio.sleep(0.02)
            times.append(row.updated_at - cp.signed_at)
            gas.append(row.gas_used or 0)
    finally:
        stop.set()
        await task
        assert all(a.status is AnchorState.CONFIRMED for a in await store.anchors(rounds))
        await store.close()
    return times, gas


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--confirmations", type=int, nargs="+", default=[1, 3, 12])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--block-ms", type=int, default=1000)
    ap.add_argument("--poll", type=float, default=0.25)
    a = ap.parse_args()
    proc, url = start_node()
    try:
        rpc(url, "evm_setAutomine", False)
        rpc(url, "evm_setIntervalMining", a.block_ms)
        print(f"Hardhat node, a block every {a.block_ms} ms; the loop looks every {a.poll:g} s; {a.rounds} rounds each")
        print("| confirmations | signed -> confirmed p50 | min..max | gas per anchor |")
        print("|---|---|---|---|")
        with tempfile.TemporaryDirectory(prefix="packproof-anchor-bench-") as tmp:
            for n in a.confirmations:
                times, gas = asyncio.run(measure(url, Path(tmp), n, a.rounds, a.poll, a.block_ms / 1000))
                print(f"| {n} | {statistics.median(times):.2f} s | {min(times):.2f}..{max(times):.2f} s | "
                      f"{min(gas):,}..{max(gas):,} |", flush=True)
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
