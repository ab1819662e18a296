"""The anchor step's pure judgement (issue 17), without a node: a checkpoint against the chain's
anchor (same size, later + consistency proof, none), the log-signed part of a cosigned note, and
every recorded anchor against the chain's events, storage and receipts."""

from __future__ import annotations

import hashlib

import pytest

from packproof.anchor.anchor_check import (
    AnchoredLog,
    LogHead,
    Outcome,
    Receipt,
    compare_anchors,
    judge_anchor,
    log_signed_note,
)
from packproof.anchor.anchoring import Anchor, note_hash
from packproof.anchor.consistency import consistency_proof
from packproof.anchor.cosignature import CosignerKey
from packproof.anchor.merkle import root_from_leaf_hashes
from packproof.anchor.note import parse_note
from packproof.anchor.tlog import sign_log_checkpoint
from packproof.anchor.tlog_checkpoint import parse_checkpoint
from packproof.crypto import private_key_from_seed
from packproof.errors import NoteError
from packproof.records import AnchorRow, AnchorState

LEAVES = [hashlib.sha256(bytes([i])).digest() for i in range(40)]
ORIGIN = "packproof.example/anchor-check"


def root(n: int) -> bytes:
    return root_from_leaf_hashes(LEAVES[:n])


def anchor(size: int, at_root: bytes | None = None, nhash: bytes = b"n" * 32) -> Anchor:
    return Anchor(size, root(size) if at_root is None else at_root, nhash, None, None, 1_700_000_000, None)


def test_same_size_same_root_is_anchored_and_a_different_note_hash_is_named() -> None:
    head = LogHead(10, root(10), b"n" * 32)
    v = judge_anchor(head, anchor(10), None)
    assert v.outcome is Outcome.ANCHORED and v.outcome.holds and v.warnings == ()
    v = judge_anchor(LogHead(10, root(10), b"m" * 32), anchor(10), None)
    assert v.outcome is Outcome.ANCHORED and len(v.warnings) == 1
    assert (b"n" * 32).hex() in v.warnings[0] and (b"m" * 32).hex() in v.warnings[0]
    assert judge_anchor(LogHead(10, root(10), None), anchor(10), None).warnings == ()  # no note to compare


def test_another_root_at_the_same_size_is_a_conflict_naming_both_roots() -> None:
    v = judge_anchor(LogHead(10, root(10), None), anchor(10, root(11)), None)
    assert v.outcome is Outcome.CONFLICT and not v.outcome.holds
    assert root(10).hex() in v.detail and root(11).hex() in v.detail and "size 10" in v.detail


def test_a_later_anchor_needs_a_consistency_proof_that_holds() -> None:
    head = LogHead(7, root(7), None)
    proof = consistency_proof(7, LEAVES[:33])
    v = judge_anchor(head, anchor(33), proof)
    assert v.outcome is Outcome.COVERED and "size 33" in v.detail and f"{len(proof)} hashes" in v.detail
    missing = judge_anchor(head, anchor(33), None)
    assert missing.outcome is Outcome.UNPROVEN and not missing.outcome.holds
    assert "consistency proof from size 7 to 33 is missing" in missing.detail
    # an anchored root that does not extend the checkpoint (another leaf 20): the proof fails
    rewritten = root_from_leaf_hashes(LEAVES[:20] + [bytes(32)] + LEAVES[21:33])
    v = judge_anchor(head, anchor(33, rewritten), proof)
    assert v.outcome is Outcome.CONFLICT and rewritten.hex() in v.detail and root(7).hex() in v.detail
    # a tampered proof hash
    v = judge_anchor(head, anchor(33), [bytes(32)] + list(proof[1:]))
    assert v.outcome is Outcome.CONFLICT


def test_no_anchor_yet_and_a_contract_answering_a_smaller_size() -> None:
    v = judge_anchor(LogHead(12, root(12), None), None, None)
    assert v.outcome is Outcome.NOT_ANCHORED and "no anchor at or after size 12" in v.detail
    v = judge_anchor(LogHead(12, root(12), None), anchor(11), None)
    assert v.outcome is Outcome.CONFLICT and "not this contract's interface" in v.detail


def test_the_log_signed_note_drops_cosignature_lines_only() -> None:
    key = private_key_from_seed(b"log")
    cp = sign_log_checkpoint(ORIGIN, 10, root(10), key)
    witness = CosignerKey.generate("witness.example")
    body = parse_note(cp.note.encode()).text
    cosigned = cp.note + witness.cosign(body, 1_700_000_000).line()
    assert cosigned != cp.note
    assert log_signed_note(cosigned) == log_signed_note(cp.note) == cp.note
    assert note_hash(log_signed_note(cosigned)) == hashlib.sha256(cp.note.encode()).digest()
    assert parse_checkpoint(body).size == 10
    only_witness = body + "\n" + witness.cosign(body, 1).line()
    with pytest.raises(NoteError, match="no signature line by the log"):
        log_signed_note(only_witness)


def _event(size: int, tx: bytes, block: int = 5, at_root: bytes | None = None) -> AnchoredLog:
    return AnchoredLog(size, root(size) if at_root is None else at_root, b"n" * 32, tx, block, b"B" * 32)


def _recorded(size: int, tx: bytes, block: int | None = 5, at_root: bytes | None = None,
              status: AnchorState = AnchorState.CONFIRMED) -> AnchorRow:
    return AnchorRow(size, 31337, "0x" + "00" * 20, size, root(size) if at_root is None else at_root, b"n" * 32, tx,
                     size, 2, 1, 0.0, 1, block, None if block is None else b"B" * 32, None if block is None else 1,
                     None if block is None else 50_000, AnchorState.PENDING if block is None else status, None, 0.0)


def _receipt(e: AnchoredLog) -> Receipt:
    return Receipt(e.tx_hash, e.block_number, e.block_hash, 1, (e,))


def test_recorded_anchors_against_the_chain() -> None:
    e10, e20 = _event(10, b"a" * 32), _event(20, b"b" * 32, block=6)
    stored = {10: anchor(10), 20: anchor(20)}
    receipts = {e.tx_hash: _receipt(e) for e in (e10, e20)}
    recorded = [_recorded(10, b"a" * 32), _recorded(20, b"b" * 32, block=6)]
    found = compare_anchors(recorded, [e10, e20], stored, receipts)
    assert [(f.size, f.ok) for f in found] == [(10, True), (20, True)]
    # a row edited in the store: another root
    edited = [_recorded(10, b"a" * 32, at_root=root(11)), recorded[1]]
    (bad, good) = compare_anchors(edited, [e10, e20], stored, receipts)
    assert bad.ok is False and good.ok is True
    assert f"root: chain {root(10).hex()}, store {root(11).hex()}" in bad.detail
    assert "Anchored event differs" in bad.detail
    # another tx hash in the store: no receipt, not in the event log
    found = compare_anchors([_recorded(10, b"z" * 32), recorded[1]], [e10, e20], stored, receipts)
    bad, unknown = sorted((f for f in found if f.size == 10), key=lambda f: "on chain" in f.detail)
    assert bad.ok is False and "no receipt" in bad.detail and "not in the contract's Anchored event log" in bad.detail
    assert (b"z" * 32).hex() in bad.detail
    assert unknown.ok is False and "on chain but not in the store" in unknown.detail
    assert (b"a" * 32).hex() in unknown.detail
    # another block recorded
    (bad, _) = compare_anchors([_recorded(10, b"a" * 32, block=4), recorded[1]], [e10, e20], stored, receipts)
    assert bad.ok is False and "the receipt is in block 5, the store says 4" in bad.detail
    # an anchor on chain the store does not know, and a pending one
    e30 = _event(30, b"c" * 32, block=7)
    found = compare_anchors([*recorded, _recorded(40, b"d" * 32, block=None)], [e10, e20, e30], stored, receipts)
    assert [(f.size, f.ok) for f in found] == [(10, True), (20, True), (30, False), (40, None)]
    assert "on chain but not in the store" in found[2].detail and (b"c" * 32).hex() in found[2].detail
    # the contract's storage holds another root for a recorded size (the forged-first case)
    (bad, _) = compare_anchors(recorded, [e10, e20], {10: anchor(10, root(12)), 20: anchor(20)}, receipts)
    assert bad.ok is False and f"root: chain {root(12).hex()}" in bad.detail
    # a failed row is expected nowhere on chain
    (failed,) = compare_anchors([_recorded(50, b"f" * 32, status=AnchorState.FAILED)], [], {}, {})
    assert failed.ok is None and "failed" in failed.detail
    (failed,) = compare_anchors([_recorded(10, b"a" * 32, status=AnchorState.FAILED)], [e10], stored, receipts)
    assert failed.ok is False and "recorded failed, yet its Anchored event is on chain" in failed.detail
