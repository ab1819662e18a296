"""Reading the anchor contract for a verifier (issue 17): events, receipts, the head. I/O only.

What the contract's storage answers (anchorAtOrAfter) has no transaction in it; the Anchored
event (Solidity ABI event encoding: topic 0 = keccak256("Anchored(uint64,bytes32,bytes32)"),
topic 1 = the indexed size, data = root || noteHash) names the transaction and block that wrote
each anchor. Confirmations count the anchor's block and every block after it up to the node's
head (head - block + 1), as wallets do. The caller runs these through `anchoring.call`, so a node
that fails is one ChainError; the judgement of what was read is pure (anchor/anchor_check.py).

web3 is reached through packproof.anchor.anchoring (it restores the recursion limit py_ecc raises).
"""

from __future__ import annotations

from typing import Any

from packproof.anchor import anchoring
from packproof.anchor.anchor_check import AnchoredLog, Receipt


def _event(log: Any) -> AnchoredLog:
    args = log["args"]
    return AnchoredLog(size=int(args["size"]), root=bytes(args["root"]), note_hash=bytes(args["noteHash"]),
                       tx_hash=bytes(log["transactionHash"]), block_number=int(log["blockNumber"]),
                       block_hash=bytes(log["blockHash"]))


def events(w3: anchoring.Web3, address: str, size: int | None = None, from_block: int = 0,
           to_block: int | None = None) -> list[AnchoredLog]:
    """The contract's Anchored events (of one size, or all), oldest first, from eth_getLogs.

    Public nodes may cap the block range of one eth_getLogs; `from_block` (the contract's deploy
    block) keeps the range short, and `anchor_events` needs none."""
    event = anchoring.contract(w3, address).events.Anchored
    filters = {} if size is None else {"size": size}
    logs = event.get_logs(from_block=from_block, to_block="latest" if to_block is None else to_block,
                          argument_filters=filters)
    return [_event(log) for log in logs]


def all_events(w3: anchoring.Web3, address: str, span: int = 10_000) -> list[AnchoredLog]:
    """Every Anchored event of the contract, oldest first: from the block of its first anchor (found
    by the time the contract stored with it) to the head, `span` blocks per eth_getLogs (public
    nodes cap the range of one query)."""
    first = anchoring.at_or_after(w3, address, 0)
    start = None if first is None else first_block_at(w3, first.block_time)
    if start is None:
        return []
    top = head(w3)
    found: list[AnchoredLog] = []
    for lo in range(start, top + 1, span):
        found += events(w3, address, from_block=lo, to_block=min(lo + span - 1, top))
    return found


def first_block_at(w3: anchoring.Web3, time: int) -> int | None:
    """The lowest block whose timestamp is >= `time` (None: none yet), by binary search over
    eth_getBlockByNumber (about log2(head) calls). Block timestamps never decrease along a chain."""
    lo, hi = 0, head(w3)
    if int(w3.eth.get_block(hi)["timestamp"]) < time:
        return None
    while lo < hi:
        mid = (lo + hi) // 2
        if int(w3.eth.get_block(mid)["timestamp"]) < time:
            lo = mid + 1
        else:
            hi = mid
    return lo


def anchor_events(w3: anchoring.Web3, address: str, size: int, time: int) -> list[AnchoredLog]:
    """The Anchored event of the anchor at `size` the contract says was written at block time `time`:
    looked up only in the blocks of that timestamp, so no node's eth_getLogs range cap applies."""
    first = first_block_at(w3, time)
    if first is None:
        return []
    last = first
    while last < head(w3) and int(w3.eth.get_block(last + 1)["timestamp"]) == time:
        last += 1
    return events(w3, address, size, from_block=first, to_block=last)


def receipt(w3: anchoring.Web3, address: str, tx_hash: bytes) -> Receipt | None:
    """The transaction's receipt and the Anchored events it emitted (None: the node knows no such tx)."""
    from web3.exceptions import TransactionNotFound  # noqa: PLC0415 - web3 is loaded by anchoring already

    try:
        got = w3.eth.get_transaction_receipt(anchoring.Web3.to_hex(tx_hash))
    except TransactionNotFound:
        return None
    decoded = anchoring.contract(w3, address).events.Anchored().process_receipt(got, errors=_discard())
    ours = [_event(log) for log in decoded if anchoring.Web3.to_checksum_address(log["address"])
            == anchoring.Web3.to_checksum_address(address)]
    return Receipt(bytes(got["transactionHash"]), int(got["blockNumber"]), bytes(got["blockHash"]),
                   int(got["status"]), tuple(ours))


def _discard() -> Any:
    from web3.logs import DISCARD  # noqa: PLC0415 - web3 is loaded by anchoring already

    return DISCARD


def head(w3: anchoring.Web3) -> int:
    return int(w3.eth.block_number)


def confirmations(head_block: int, block: int) -> int:
    """Blocks on top of and including the anchor's: head - block + 1 (0 if the head is behind it)."""
    return max(0, head_block - block + 1)
