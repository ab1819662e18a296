"""Anchoring against a real Ethereum dev node (Hardhat, JSON-RPC over HTTP): deploy, anchor,
read back, and the contract's refusals (issue 17)."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest

from packproof.anchor import anchoring
from packproof.records import CheckpointRecord
from tests.chainutil import eth_rpc  # noqa: F401 (fixture)

ORIGIN = "packproof.example/test"


def _checkpoint(size: int, tag: str = "") -> CheckpointRecord:
    root = hashlib.sha256(f"root {size}{tag}".encode()).digest()
    note = f"{ORIGIN}\n{size}\n{root.hex()}\n\n— {ORIGIN} sig{tag}\n"
    return CheckpointRecord(size=size, root=root, note=note, signed_at=0.0)


@pytest.fixture(scope="module")
def chain(eth_rpc: str) -> tuple[anchoring.Web3, str, list[str]]:  # noqa: F811
    w3 = anchoring.connect(eth_rpc)
    accounts = list(w3.eth.accounts)
    return w3, anchoring.deploy(w3, ORIGIN, accounts[0]), accounts


def test_deploy_records_anchorer_and_origin(chain: tuple[anchoring.Web3, str, list[str]]) -> None:
    w3, address, accounts = chain
    c = anchoring.contract(w3, address)
    assert c.functions.anchorer().call() == accounts[0]
    assert bytes(c.functions.originHash().call()) == anchoring.Web3.keccak(text=ORIGIN)


def test_anchor_two_checkpoints_and_read_them_back(chain: tuple[anchoring.Web3, str, list[str]]) -> None:
    w3, address, accounts = chain
    assert anchoring.latest(w3, address) is None
    first = anchoring.send_anchor(w3, address, _checkpoint(10), accounts[0])
    second = anchoring.send_anchor(w3, address, _checkpoint(25), accounts[0])
    for sent in (first, second):
        assert sent.gas_used is not None and 21_000 < sent.gas_used < 150_000, sent.gas_used
        print(f"gas used anchoring size {sent.size}: {sent.gas_used}")
    assert second.block_number is not None and first.block_number is not None
    assert second.block_number > first.block_number
    got = anchoring.latest(w3, address)
    assert got is not None
    assert (got.size, got.root, got.note_hash, got.block_time) == (25, second.root, second.note_hash, second.block_time)
    assert got.note_hash == hashlib.sha256(_checkpoint(25).note.encode()).digest()
    # at or after: below/at the first -> first, between -> second, past the last -> none
    for size, want in [(0, 10), (10, 10), (11, 25), (25, 25)]:
        found = anchoring.at_or_after(w3, address, size)
        assert found is not None and found.size == want, (size, found)
    assert anchoring.at_or_after(w3, address, 26) is None


def test_size_going_backwards_is_refused(chain: tuple[anchoring.Web3, str, list[str]]) -> None:
    w3, address, accounts = chain
    anchoring.send_anchor(w3, address, _checkpoint(40), accounts[0])
    with pytest.raises(anchoring.AnchorRefused) as caught:
        anchoring.send_anchor(w3, address, _checkpoint(39), accounts[0])
    assert caught.value.error == "SizeBackwards"
    with pytest.raises(anchoring.AnchorRefused) as caught:
        anchoring.send_anchor(w3, address, _checkpoint(40, tag="forked"), accounts[0])
    assert caught.value.error == "RootMismatch"
    latest = anchoring.latest(w3, address)
    assert latest is not None and latest.root == _checkpoint(40).root


def test_another_account_is_refused(chain: tuple[anchoring.Web3, str, list[str]]) -> None:
    w3, address, accounts = chain
    with pytest.raises(anchoring.AnchorRefused) as caught:
        anchoring.send_anchor(w3, address, _checkpoint(1000), accounts[1])
    assert caught.value.error == "NotAnchorer"
    latest = anchoring.latest(w3, address)
    assert latest is not None and latest.size != 1000


def test_importing_web3_leaves_nested_json_refused_not_fatal() -> None:
    """py_ecc (under web3) raises the recursion limit to 100,000 on import; at that limit a deeply
    nested document overflowed the C stack (SIGSEGV) in the bundle parser. Run in a child process:
    a crash here must not take the test run with it."""
    code = ("import packproof.anchor.anchoring\n"
            "from packproof.anchor.proof import strict_json\n"
            "try:\n    strict_json('[' * 300000 + ']' * 300000)\n"
            "except ValueError as exc:\n    print(exc)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "nested too deeply" in done.stdout, (done.returncode, done.stderr[-500:])
