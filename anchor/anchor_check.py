"""Judging a proof's log checkpoint against the chain's anchors (issue 17). Pure, no I/O, no web3.

A proof bundle's log section carries a signed C2SP checkpoint (c2sp.org/tlog-checkpoint) of size
n. The anchor contract (anchor/chain/PackproofAnchor.sol) answers the first anchor at or after n:

* the same size: its root must be the checkpoint's root (two roots at one size is a fork the
  operator published, RFC 6962 2.1.2 / tlog-checkpoint "Signatures"); its note hash should be the
  SHA-256 of the checkpoint note as the log alone signed it (`log_signed_note`: the cosignature
  lines witnesses add later are not part of what was anchored), and a difference is named;
* a later size m: an RFC 6962 consistency proof from (n, root) to (m, anchored root) must hold
  (anchor/consistency.py): then every leaf of the checkpoint is under the anchored head;
* none: the chain says nothing yet about this checkpoint (not a pass, not a failure).

`judge_anchor` returns one `AnchorVerdict`; the command line (app/cli/verify.py) prints it and
maps its outcome to an exit code. `compare_anchors` is the same judgement for `packproof ledger
anchors`: every anchor the store recorded against what the chain holds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from packproof.anchor.consistency import verify_consistency
from packproof.anchor.note import parse_note
from packproof.anchor.tlog_checkpoint import parse_checkpoint
from packproof.errors import NoteError, ProofError
from packproof.records import AnchorRow, AnchorState

__all__ = [
    "Anchor",
    "AnchoredLog",
    "AnchorVerdict",
    "Finding",
    "LogHead",
    "Outcome",
    "Receipt",
    "compare_anchors",
    "judge_anchor",
    "log_signed_note",
    "note_hash",
]

_LOG_SIGNATURE_BYTES = 64  # an Ed25519 note signature; a cosignature/v1 line carries 8 + 64 (tlog-cosignature)


@dataclass(frozen=True)
class Anchor:
    """One anchor as the chain holds it, with the transaction that put it there when known (here, not
    in anchoring.py, so a verifier judges a certificate's carried anchor without loading web3)."""

    size: int
    root: bytes
    note_hash: bytes
    tx_hash: bytes | None
    block_number: int | None
    block_time: int
    gas_used: int | None


def note_hash(note: str) -> bytes:
    """SHA-256 of the signed note's UTF-8 bytes exactly as served (C2SP signed-note text)."""
    return hashlib.sha256(note.encode("utf-8")).digest()


def log_signed_note(note: str) -> str:
    """The checkpoint note as the log signed it: its text and the log's own signature line(s) (key
    name = the checkpoint's origin, a plain Ed25519 signature), without the cosignature lines the
    store appends for witnesses (anchor/cosignature.py). This is what the anchor's note hash is of."""
    parsed = parse_note(note.encode("utf-8"))
    origin = parse_checkpoint(parsed.text).origin
    own = [s for s in parsed.signatures if s.name == origin and len(s.signature) == _LOG_SIGNATURE_BYTES]
    if not own:
        raise NoteError("unknown-key", f"the checkpoint note carries no signature line by the log ({origin})")
    return parsed.text + "\n" + "".join(s.line() for s in own)


@dataclass(frozen=True, slots=True)
class LogHead:
    """The log state a proof shows: size, root and, when the proof carries the signed note, the
    SHA-256 of its log-signed part."""

    size: int
    root: bytes
    note_hash: bytes | None


class Outcome(StrEnum):
    ANCHORED = "anchored"  # an anchor at this very size holds this root
    COVERED = "covered"  # a later anchor, and the consistency proof to it holds
    CONFLICT = "conflict"  # the chain holds a head this checkpoint is not part of
    NOT_ANCHORED = "not-anchored"  # no anchor at or after this size yet
    UNPROVEN = "unproven"  # a later anchor, but no consistency proof to reach it

    @property
    def holds(self) -> bool:
        return self in (Outcome.ANCHORED, Outcome.COVERED)


@dataclass(frozen=True, slots=True)
class AnchorVerdict:
    outcome: Outcome
    detail: str  # one sentence naming sizes and roots (hex)
    warnings: tuple[str, ...] = ()  # not failures: e.g. the note hash differs while the root agrees


def judge_anchor(head: LogHead, anchor: Anchor | None, proof: Sequence[bytes] | None) -> AnchorVerdict:
    """The anchor step's verdict for `head`, given the first anchor at or after its size (None: none)
    and, when that anchor is later, the consistency proof from head.size to anchor.size (None: not had)."""
    mine = f"size {head.size} root {head.root.hex()}"
    if anchor is None:
        return AnchorVerdict(Outcome.NOT_ANCHORED, f"no anchor at or after size {head.size} on chain yet: the "
                                                   f"checkpoint ({mine}) is not covered by the chain (yet)")
    theirs = f"size {anchor.size} root {anchor.root.hex()}"
    if anchor.size < head.size:  # the contract answers sizes >= the one asked: a contract that does not is lying
        return AnchorVerdict(Outcome.CONFLICT, f"the contract answered an anchor at {theirs} for a size at or after "
                                               f"{head.size}: not this contract's interface")
    if anchor.size == head.size:
        if anchor.root != head.root:
            return AnchorVerdict(Outcome.CONFLICT, f"the chain holds another root for size {head.size}: anchored "
                                                   f"{anchor.root.hex()}, this checkpoint's {head.root.hex()}")
        warnings: tuple[str, ...] = ()
        if head.note_hash is not None and head.note_hash != anchor.note_hash:
            warnings = (f"note hash differs: anchored {anchor.note_hash.hex()}, this checkpoint's log-signed note "
                        f"hashes to {head.note_hash.hex()} (the same head, signed or written differently)",)
        return AnchorVerdict(Outcome.ANCHORED, f"anchored at this very size: {theirs}", warnings)
    if proof is None:
        return AnchorVerdict(Outcome.UNPROVEN, f"the first anchor after this checkpoint ({mine}) is at {theirs}; "
                                               f"the consistency proof from size {head.size} to {anchor.size} "
                                               "is missing (it comes from the API: give --api URL)")
    try:
        verify_consistency(head.size, anchor.size, proof, head.root, anchor.root)
    except ProofError as exc:
        return AnchorVerdict(Outcome.CONFLICT, f"the anchored head ({theirs}) does not extend this checkpoint "
                                               f"({mine}): {exc}")
    return AnchorVerdict(Outcome.COVERED, f"covered by the later anchor at {theirs}: the consistency proof from "
                                          f"size {head.size} holds ({len(proof)} hashes)")


# ---- every recorded anchor against the chain (`packproof ledger anchors`) -------------------


@dataclass(frozen=True, slots=True)
class AnchoredLog:
    """One Anchored(size, root, noteHash) event in the contract's log, with the transaction and
    block that emitted it (from eth_getLogs)."""

    size: int
    root: bytes
    note_hash: bytes
    tx_hash: bytes
    block_number: int
    block_hash: bytes


@dataclass(frozen=True, slots=True)
class Receipt:
    """A transaction's receipt as the node answers it (eth_getTransactionReceipt), with the
    Anchored events among its logs."""

    tx_hash: bytes
    block_number: int
    block_hash: bytes
    status: int
    events: tuple[AnchoredLog, ...]


@dataclass(frozen=True, slots=True)
class Finding:
    size: int
    ok: bool | None  # None: not judged (pending)
    detail: str


def compare_anchors(recorded: Sequence[AnchorRow], events: Sequence[AnchoredLog],
                    stored: Mapping[int, Anchor | None], receipts: Mapping[bytes, Receipt | None]) -> list[Finding]:
    """Each recorded anchor against the chain, then each anchor on chain the store does not know.

    `events`: the contract's Anchored events (eth_getLogs over the contract's life); `stored`:
    size -> the contract's storage answer for anchorAtOrAfter(size), per recorded size; `receipts`:
    tx hash -> its receipt (None: the node knows no such transaction), per recorded tx. A recorded
    anchor holds when the storage has its size, root and note hash; its transaction's receipt is in
    the recorded block (number and hash), succeeded and emitted Anchored with the same values; and
    that event is in the contract's event log. A pending row is not judged (its block is not known
    yet); a failed or replaced one is expected nowhere on chain.
    """
    findings = [_judge_recorded(r, events, stored.get(r.size), receipts.get(r.tx_hash)) for r in recorded]
    known = {r.tx_hash for r in recorded}
    for e in events:
        if e.tx_hash not in known:
            findings.append(Finding(e.size, False, f"on chain but not in the store: size {e.size} root {e.root.hex()} "
                                                   f"in tx {e.tx_hash.hex()} (block {e.block_number}): the anchorer "
                                                   "key sent an anchor the store did not record"))
    return sorted(findings, key=lambda f: f.size)


def _judge_recorded(r: AnchorRow, events: Sequence[AnchoredLog], on_chain: Anchor | None,
                    receipt: Receipt | None) -> Finding:
    what = f"anchor at size {r.size} (tx {r.tx_hash.hex()})"
    if r.status in (AnchorState.FAILED, AnchorState.REPLACED):
        on = [e for e in events if e.tx_hash == r.tx_hash]
        if on:
            return Finding(r.size, False, f"{what}: recorded {r.status.value}, yet its Anchored event is on chain "
                                          f"in block {on[0].block_number}")
        return Finding(r.size, None, f"{what}: {r.status.value} ({r.error or 'no reason recorded'}): not on chain")
    if r.status is AnchorState.PENDING or r.block_number is None:
        return Finding(r.size, None, f"{what}: pending, not mined when last recorded")
    problems = []
    if on_chain is None or on_chain.size != r.size:
        got = "nothing" if on_chain is None else f"size {on_chain.size}"
        problems.append(f"the contract holds no anchor at size {r.size} (anchorAtOrAfter answers {got})")
    else:
        if on_chain.root != r.root:
            problems.append(f"root: chain {on_chain.root.hex()}, store {r.root.hex()}")
        if on_chain.note_hash != r.note_hash:
            problems.append(f"note hash: chain {on_chain.note_hash.hex()}, store {r.note_hash.hex()}")
    if receipt is None:
        problems.append("the node has no receipt of the recorded transaction")
    else:
        if receipt.block_number != r.block_number:
            problems.append(f"block: the receipt is in block {receipt.block_number}, the store says {r.block_number}")
        elif r.block_hash is not None and receipt.block_hash != r.block_hash:
            problems.append(f"block hash: chain {receipt.block_hash.hex()}, store {r.block_hash.hex()} (a reorg?)")
        if receipt.status != 1:
            problems.append("the transaction failed (receipt status 0)")
        said = [(e.size, e.root, e.note_hash) for e in receipt.events]
        if (r.size, r.root, r.note_hash) not in said:
            shown = "; ".join(f"size {s} root {root.hex()} note hash {h.hex()}" for s, root, h in said) or "none"
            problems.append(f"the transaction's Anchored event differs from the store's (event: {shown})")
    if not any(e.tx_hash == r.tx_hash and e.size == r.size for e in events):
        problems.append("not in the contract's Anchored event log")
    if problems:
        return Finding(r.size, False, f"{what}: " + "; ".join(problems))
    return Finding(r.size, True, f"size {r.size} root {r.root.hex()[:16]}.. block {r.block_number} "
                                 f"tx {r.tx_hash.hex()[:16]}..")
