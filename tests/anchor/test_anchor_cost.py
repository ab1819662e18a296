"""benchmarks/anchor_cost.py measures what it says on a real Hardhat node (issue 17): the
per-event contract compiles with the pinned solc, a value transfer costs the protocol's 21,000
gas floor, and the anchor's gas is what the contract's work implies."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.chainutil import eth_rpc  # noqa: F401 (fixture)

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from anchor_cost import measure  # noqa: E402


def test_the_cost_benchmark_measures_real_transactions(eth_rpc: str) -> None:  # noqa: F811
    m = measure(eth_rpc, anchors=3, events=2)
    assert m.transfer == 21_000  # the intrinsic gas of a transaction (yellow paper G_transaction)
    # 32 bytes of calldata: 16 gas a byte, or EIP-7623's floor of 40 a byte (Prague) on top of 21,000
    assert m.calldata_only in (21_000 + 32 * 16, 21_000 + 32 * 40), m.calldata_only
    # a fresh storage slot (SSTORE 0 -> non-zero: 22,100 cold) and a log: above 43,100, well below an anchor
    assert min(m.per_event_call) > 43_100 and max(m.per_event_call) < m.later_anchors[0]
    # an anchor writes three fresh slots (size+time, root, note hash); the first also the array length
    assert 3 * 22_100 < min(m.later_anchors) < m.first_anchor < 150_000, (m.first_anchor, m.later_anchors)
