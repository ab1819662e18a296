"""What anchoring costs (issue 17): gas measured on a real dev node, priced per day, against the
per-event design (one transaction per reading) measured on the same node.

Measured, each by a real transaction on a Hardhat node (EDR engine, chain 31337, started here from
anchor/chain/node_modules unless --rpc names one) and its receipt's gasUsed:

* deploying PackproofAnchor, the first anchor (cold storage: the array's length slot and a new
  struct) and later anchors (the same work; the gas differs only by the calldata's zero bytes);
* the per-event design's floors: a plain value transfer (21,000 gas, the protocol's minimum), a
  calldata-only transaction carrying one 32-byte event hash to an account (no contract, no
  storage), and a call of tests/anchor/chain/PerEvent.sol (compiled here with the pinned solc)
  storing one event hash and emitting one event, for fresh hashes.

Priced, with the stated parameters (defaults in --help): anchors/day at --every seconds, gas/day,
ETH/day at --gwei and USD at --eth-usd, the same at an L2's execution gas price (--l2-gwei; an
L2's L1 data fee is not included), and the per-event design for the demo fleet's day (the
simulator's defaults: shipments x packs x rate, app/config.py FleetConfig) and for a realistic
fleet (--fleet-packs at --fleet-per-min readings a minute).

    .venv/bin/python benchmarks/anchor_cost.py [--rpc URL] [--gwei 10] [--eth-usd 3000] [--l2-gwei 0.01]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from packproof.anchor import anchoring  # noqa: E402
from packproof.app.config import FleetConfig  # noqa: E402
from packproof.records import CheckpointRecord  # noqa: E402
from tests.chainutil import CHAIN, running_node  # noqa: E402

if TYPE_CHECKING:
    from web3.types import Wei

PER_EVENT_SOL = ROOT / "tests" / "anchor" / "chain" / "PerEvent.sol"
DAY = 86_400


@dataclass(frozen=True)
class Measured:
    deploy: int
    first_anchor: int
    later_anchors: list[int]
    send_to_receipt_ms: list[float]
    transfer: int
    calldata_only: int
    per_event_call: list[int]


def compile_per_event() -> dict[str, Any]:
    """PerEvent.sol through the pinned solc (anchor/chain/node_modules/solc), settings as compile.js."""
    script = """
const solc = require("solc"); const fs = require("fs");
const input = {language: "Solidity", sources: {"PerEvent.sol": {content: fs.readFileSync(process.argv[1], "utf8")}},
  settings: {optimizer: {enabled: true, runs: 200}, metadata: {bytecodeHash: "none"},
             outputSelection: {"*": {PerEvent: ["abi", "evm.bytecode.object"]}}}};
const out = JSON.parse(solc.compile(JSON.stringify(input)));
const errs = (out.errors || []).filter((e) => e.severity === "error");
if (errs.length) { for (const e of errs) process.stderr.write(e.formattedMessage); process.exit(1); }
const c = out.contracts["PerEvent.sol"].PerEvent;
process.stdout.write(JSON.stringify({abi: c.abi, bytecode: "0x" + c.evm.bytecode.object}));
"""
    done = subprocess.run(["node", "-e", script, str(PER_EVENT_SOL)], capture_output=True, text=True,
                          cwd=CHAIN, env={"NODE_PATH": str(CHAIN / "node_modules"), "PATH": "/usr/bin:/bin"},
                          check=False, timeout=120)
    if done.returncode != 0:
        raise SystemExit(f"solc failed on {PER_EVENT_SOL}: {done.stderr}")
    compiled: dict[str, Any] = json.loads(done.stdout)
    return compiled


def _gas(w3: anchoring.Web3, tx: Any) -> int:
    return int(w3.eth.wait_for_transaction_receipt(tx)["gasUsed"])


def _checkpoint(size: int) -> CheckpointRecord:
    root = hashlib.sha256(f"root {size}".encode()).digest()
    note = f"bench.example/log\n{size}\n{root.hex()}\n\n\u2014 bench.example/log sig\n"
    return CheckpointRecord(size=size, root=root, note=note, signed_at=0.0)


def measure(rpc: str, anchors: int, events: int) -> Measured:
    w3 = anchoring.connect(rpc)
    me, other = list(w3.eth.accounts)[:2]
    factory = w3.eth.contract(abi=anchoring.artifact()["abi"], bytecode=anchoring.artifact()["bytecode"])
    deployed = w3.eth.wait_for_transaction_receipt(factory.constructor("bench.example/log").transact({"from": me}))
    deploy, address = int(deployed["gasUsed"]), str(deployed["contractAddress"])
    sent, waits = [], []
    for i in range(anchors):
        t0 = time.perf_counter()
        a = anchoring.send_anchor(w3, address, _checkpoint(1000 * (i + 1)), me)
        waits.append((time.perf_counter() - t0) * 1000)
        assert a.gas_used is not None
        sent.append(a.gas_used)
    transfer = _gas(w3, w3.eth.send_transaction({"from": me, "to": other, "value": cast("Wei", 1)}))
    event_hash = hashlib.sha256(b"one reading").digest()
    calldata = _gas(w3, w3.eth.send_transaction({"from": me, "to": other, "value": cast("Wei", 0), "data": event_hash}))
    compiled = compile_per_event()
    per_factory = w3.eth.contract(abi=compiled["abi"], bytecode=compiled["bytecode"])
    receipt = w3.eth.wait_for_transaction_receipt(per_factory.constructor().transact({"from": me}))
    per = w3.eth.contract(address=receipt["contractAddress"], abi=compiled["abi"])
    calls = [_gas(w3, per.functions.record(hashlib.sha256(f"reading {i}".encode()).digest()).transact({"from": me}))
             for i in range(events)]
    return Measured(deploy, sent[0], sent[1:], waits, transfer, calldata, calls)


def _money(gas: float, gwei: float, eth_usd: float) -> str:
    eth = gas * gwei * 1e-9
    return f"{eth:,.6f} ETH = {eth * eth_usd:,.2f} USD"


def report(m: Measured, a: argparse.Namespace) -> None:
    later = statistics.mean(m.later_anchors) if m.later_anchors else m.first_anchor
    per_day = DAY / a.every
    fleet = FleetConfig()
    demo_packs = fleet.shipments * fleet.packs
    demo_per_day = demo_packs * fleet.rate * DAY
    real_per_day = a.fleet_packs * a.fleet_per_min * 60 * 24
    per_event = statistics.mean(m.per_event_call)
    print(f"measured on the dev node ({a.rpc or 'Hardhat, started here'}), gasUsed from each receipt:")
    print(f"  deploy PackproofAnchor           {m.deploy:>9,} gas (once)")
    print(f"  first anchor                     {m.first_anchor:>9,} gas")
    print(f"  later anchors (n={len(m.later_anchors)})            {later:>9,.0f} gas "
          f"(min {min(m.later_anchors or [m.first_anchor]):,}, max {max(m.later_anchors or [m.first_anchor]):,})")
    print(f"  send -> receipt (automine)       {statistics.median(m.send_to_receipt_ms):>9.1f} ms median")
    print(f"  per-event floors: value transfer {m.transfer:>9,} gas; 32-byte calldata-only tx {m.calldata_only:,} gas; "
          f"PerEvent.record(hash) {per_event:,.0f} gas (n={len(m.per_event_call)})")
    print()
    print(f"anchoring, one anchor every {a.every:g} s: {per_day:g} anchors/day")
    day_gas = per_day * later
    print(f"  gas/day  {day_gas:,.0f}")
    print(f"  L1 at {a.gwei:g} gwei, ETH at {a.eth_usd:,.0f} USD: {_money(day_gas, a.gwei, a.eth_usd)} per day, "
          f"{_money(day_gas * 365, a.gwei, a.eth_usd)} per year")
    print(f"  L2 at {a.l2_gwei:g} gwei (execution only): {_money(day_gas, a.l2_gwei, a.eth_usd)} per day")
    print()
    rows = [(f"demo fleet ({fleet.shipments} shipments x {fleet.packs} packs at {fleet.rate:g} reading/s)",
             demo_per_day), (f"realistic fleet ({a.fleet_packs:,} packs at {a.fleet_per_min:g} reading/min)",
                             real_per_day)]
    capacity = a.l1_gas_per_block / 12 * DAY
    for label, readings in rows:
        print(f"per-event design, {label}: {readings:,.0f} readings/day")
        for name, gas in (("value-transfer floor", m.transfer), ("calldata-only tx", m.calldata_only),
                          ("PerEvent.record", per_event)):
            total = readings * gas
            print(f"  {name:22} {total:>18,.0f} gas/day = {total / day_gas:>10,.0f} x anchoring; "
                  f"L1 {_money(total, a.gwei, a.eth_usd)}; L2 {_money(total, a.l2_gwei, a.eth_usd)}; "
                  f"{100 * total / capacity:.1f} % of L1 capacity ({a.l1_gas_per_block / 1e6:g}M gas per 12 s)")


@contextmanager
def _node(rpc: str | None) -> Iterator[str]:
    if rpc:
        with nullcontext(rpc) as url:
            yield url
    else:
        with running_node() as url:
            yield url


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rpc", help="an Ethereum dev node's JSON-RPC URL whose first account is unlocked "
                                  "(default: start Hardhat from anchor/chain)")
    ap.add_argument("--anchors", type=int, default=6, help="anchors to send (the first and the later ones)")
    ap.add_argument("--events", type=int, default=5, help="per-event calls to send")
    ap.add_argument("--every", type=float, default=600.0, help="seconds between anchors (packproof's default)")
    ap.add_argument("--gwei", type=float, default=10.0, help="L1 gas price (base + priority fee), gwei")
    ap.add_argument("--l2-gwei", type=float, default=0.01, help="an L2's execution gas price, gwei")
    ap.add_argument("--eth-usd", type=float, default=3000.0, help="ETH price in USD (an assumption, not a quote)")
    ap.add_argument("--fleet-packs", type=int, default=1000, help="the realistic fleet's packs")
    ap.add_argument("--fleet-per-min", type=float, default=1.0, help="its readings per pack per minute")
    ap.add_argument("--l1-gas-per-block", type=float, default=36e6, help="L1 block gas limit (12 s blocks)")
    a = ap.parse_args()
    if a.anchors < 2 or a.events < 1:
        raise SystemExit("--anchors >= 2 (the first and a later one), --events >= 1")
    with _node(a.rpc) as url:
        m = measure(url, a.anchors, a.events)
    report(m, a)


if __name__ == "__main__":
    main()
