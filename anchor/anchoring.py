"""Anchoring the log's checkpoints on an Ethereum chain (issue 17): the contract's client.

One transaction per interval records (log size, RFC 6962 root, SHA-256 of the signed C2SP
checkpoint note) in anchor/chain/PackproofAnchor.sol; every earlier leaf is covered by the
anchor at or after its checkpoint through a consistency proof (RFC 6962 2.1.2), so the chain's
block time bounds when the log's head existed. The pure part (hashing the note, decoding the
contract's named reverts) is separate from the JSON-RPC calls made through web3.py.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

_RECURSION_LIMIT = sys.getrecursionlimit()

from web3 import Web3  # noqa: E402  (after reading the recursion limit: see below)
from web3.exceptions import ContractCustomError, ContractLogicError  # noqa: E402

from packproof.errors import PackproofError  # noqa: E402
from packproof.records import CheckpointRecord  # noqa: E402

# web3 imports py_ecc, which raises the interpreter's recursion limit to 100,000 on import. At
# that limit a deeply nested JSON document (a forged proof bundle, a custody POST) overflows the
# C stack and kills the process with SIGSEGV instead of raising RecursionError, which the parsers
# turn into a named refusal. Nothing packproof asks of web3 recurses that deep: put it back.
sys.setrecursionlimit(_RECURSION_LIMIT)


def connect(rpc_url: str, timeout: float = 10.0) -> Web3:
    """A web3 client of the Ethereum JSON-RPC endpoint at `rpc_url` (HTTP)."""
    return Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout}))


class AnchorRefused(PackproofError):
    """The contract reverted: `error` names the Solidity error (SizeBackwards, NotAnchorer, ...)."""

    def __init__(self, error: str, message: str) -> None:
        super().__init__(message)
        self.error = error


@dataclass(frozen=True)
class Anchor:
    """One anchor as the chain holds it, with the transaction that put it there when known."""

    size: int
    root: bytes
    note_hash: bytes
    tx_hash: bytes | None
    block_number: int | None
    block_time: int
    gas_used: int | None


@cache
def artifact() -> dict[str, Any]:
    """The committed ABI and bytecode (tests/anchor/test_chain_contract.py keeps them = the source)."""
    text = resources.files("packproof.anchor").joinpath("chain/PackproofAnchor.json").read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def note_hash(note: str) -> bytes:
    """SHA-256 of the signed note's UTF-8 bytes exactly as served (C2SP signed-note text)."""
    return hashlib.sha256(note.encode("utf-8")).digest()


def revert_errors() -> dict[str, str]:
    """Solidity custom-error selector (0x + 4 bytes hex) -> error name, from the ABI."""
    out = {}
    for entry in artifact()["abi"]:
        if entry["type"] == "error":
            signature = f"{entry['name']}({','.join(i['type'] for i in entry['inputs'])})"
            out["0x" + Web3.keccak(text=signature)[:4].hex()] = entry["name"]
    return out


def _refused(exc: ContractLogicError) -> AnchorRefused:
    # web3.py passes the revert data as a hex string, or (from Hardhat) inside the error object
    data = exc.data.get("data", "") if isinstance(exc.data, dict) else exc.data
    data = data if isinstance(data, str) else ""
    name = revert_errors().get(data[:10], "unknown revert")
    return AnchorRefused(name, f"anchor contract refused: {name} (revert data {data or exc.message})")


def contract(w3: Web3, address: str) -> Any:
    return w3.eth.contract(address=Web3.to_checksum_address(address), abi=artifact()["abi"])


def deploy(w3: Web3, origin: str, sender: str) -> str:
    """Deploy a contract whose only anchorer is `sender` (an account the node signs for)."""
    factory = w3.eth.contract(abi=artifact()["abi"], bytecode=artifact()["bytecode"])
    tx = factory.constructor(origin).transact({"from": sender})
    receipt = w3.eth.wait_for_transaction_receipt(tx)
    return str(receipt["contractAddress"])


def send_anchor(w3: Web3, address: str, checkpoint: CheckpointRecord, sender: str) -> Anchor:
    """Anchor one checkpoint; waits for its receipt (confirmations come later, issue 17)."""
    if len(checkpoint.root) != 32:
        raise PackproofError(f"checkpoint root: expected 32 bytes, got {len(checkpoint.root)}")
    call = contract(w3, address).functions.anchor(checkpoint.size, checkpoint.root, note_hash(checkpoint.note))
    try:
        tx = call.transact({"from": sender})
    except (ContractCustomError, ContractLogicError) as exc:
        raise _refused(exc) from exc
    receipt = w3.eth.wait_for_transaction_receipt(tx)
    if receipt["status"] != 1:
        raise AnchorRefused("failed", f"anchor transaction {tx.hex()} failed in block {receipt['blockNumber']}")
    block = w3.eth.get_block(receipt["blockNumber"])
    return Anchor(
        size=checkpoint.size,
        root=checkpoint.root,
        note_hash=note_hash(checkpoint.note),
        tx_hash=bytes(tx),
        block_number=int(receipt["blockNumber"]),
        block_time=int(block["timestamp"]),
        gas_used=int(receipt["gasUsed"]),
    )


def _read(raw: Any) -> Anchor:
    size, time, root, nhash = raw
    return Anchor(int(size), bytes(root), bytes(nhash), None, None, int(time), None)


def latest(w3: Web3, address: str) -> Anchor | None:
    """The newest anchor, or None before the first."""
    c = contract(w3, address)
    if c.functions.count().call() == 0:
        return None
    return _read(c.functions.latest().call())


def at_or_after(w3: Web3, address: str, size: int) -> Anchor | None:
    """The first anchor whose size is >= `size` (it covers every leaf below `size`), or None."""
    try:
        return _read(contract(w3, address).functions.anchorAtOrAfter(size).call())
    except (ContractCustomError, ContractLogicError) as exc:
        if _refused(exc).error == "NoAnchor":
            return None
        raise _refused(exc) from exc
