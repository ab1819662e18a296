"""The tlog-witness decision: each status of c2sp.org/tlog-witness "add-checkpoint", split views and
rollbacks refused, systematic corruptions of the request, and a Hypothesis run of an honest log
against a witness (every step accepted) and of a forked one (never both branches accepted)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from packproof.anchor.consistency import consistency_proof
from packproof.anchor.merkle import EMPTY_ROOT, leaf_hash, root_from_leaf_hashes
from packproof.anchor.note import SignerKey
from packproof.anchor.tlog_checkpoint import Checkpoint, sign_checkpoint
from packproof.anchor.witness import (
    MAX_PROOF_LINES,
    SIZE_CONTENT_TYPE,
    Accepted,
    AddCheckpoint,
    LogState,
    Refused,
    decide,
    parse_add_checkpoint,
    request_body,
)

ORIGIN = "packproof.example/0123456789abcdef"
LOG = SignerKey(ORIGIN, bytes(range(32)))
OTHER = SignerKey(ORIGIN, bytes(range(5, 37)))  # same name, another key
KEYS = [LOG.verifier]
LEAVES = [leaf_hash(i.to_bytes(4, "big")) for i in range(40)]
FORK = LEAVES[:5] + [leaf_hash(b"rewritten")] + LEAVES[6:]


def _cp(n: int, leaves: list[bytes] = LEAVES) -> Checkpoint:
    return Checkpoint(ORIGIN, n, root_from_leaf_hashes(leaves[:n]))


def _state(n: int, leaves: list[bytes] = LEAVES) -> LogState:
    return LogState(n, root_from_leaf_hashes(leaves[:n]))


def _req(old: int, new: int, leaves: list[bytes] = LEAVES, signer: SignerKey = LOG) -> AddCheckpoint:
    body = request_body(old, consistency_proof(old, leaves[:new]), sign_checkpoint(_cp(new, leaves), [signer]))
    parsed = parse_add_checkpoint(body)
    assert isinstance(parsed, AddCheckpoint), parsed
    return parsed


def _decide(old: int, new: int, known: LogState | None, leaves: list[bytes] = LEAVES) -> Accepted | Refused:
    return decide(_req(old, new, leaves), KEYS, known)


# ---- the spec's statuses ----------------------------------------------------------------------


def test_first_checkpoint_with_old_0_and_empty_proof_is_cosigned() -> None:
    got = _decide(0, 7, None)
    assert got == Accepted(_cp(7), None, _state(7))


def test_a_consistent_extension_is_cosigned() -> None:
    got = _decide(7, 20, _state(7))
    assert got == Accepted(_cp(20), _state(7), _state(20))


def test_the_same_checkpoint_again_is_cosigned_again() -> None:
    assert isinstance(_decide(20, 20, _state(20)), Accepted)


def test_an_unknown_origin_is_404() -> None:
    got = decide(_req(0, 3), [], None)
    assert isinstance(got, Refused) and got.status == 404 and ORIGIN in got.reason


def test_a_checkpoint_no_trusted_key_signed_is_403() -> None:
    got = decide(_req(0, 3, signer=OTHER), KEYS, None)
    assert isinstance(got, Refused) and got.status == 403


def test_old_larger_than_the_checkpoint_is_400() -> None:
    req = _req(0, 3)
    got = decide(AddCheckpoint(4, req.proof, req.note, req.checkpoint), KEYS, None)
    assert isinstance(got, Refused) and got.status == 400 and "old size 4" in got.reason


def test_an_old_size_not_the_known_one_is_409_with_the_known_size() -> None:
    got = _decide(0, 20, _state(7))
    assert isinstance(got, Refused) and got.status == 409 and got.known_size == 7
    assert got.body == "7\n" and got.content_type == SIZE_CONTENT_TYPE


def test_a_first_request_with_old_not_0_is_409_naming_0() -> None:
    got = _decide(5, 20, None)
    assert isinstance(got, Refused) and got.status == 409 and got.body == "0\n"


def test_a_bad_consistency_proof_is_422() -> None:
    req = _req(7, 20)
    for k in range(len(req.proof)):
        proof = list(req.proof)
        proof[k] = leaf_hash(b"wrong")
        got = decide(AddCheckpoint(7, tuple(proof), req.note, req.checkpoint), KEYS, _state(7))
        assert isinstance(got, Refused) and got.status == 422, k
    for proof in (req.proof[:-1], (*req.proof, leaf_hash(b"extra"))):
        got = decide(AddCheckpoint(7, tuple(proof), req.note, req.checkpoint), KEYS, _state(7))
        assert isinstance(got, Refused) and got.status == 422


def test_old_0_with_a_proof_is_422() -> None:
    req = _req(0, 20)
    got = decide(AddCheckpoint(0, (LEAVES[0],), req.note, req.checkpoint), KEYS, None)
    assert isinstance(got, Refused) and got.status == 422


# ---- split views and rollbacks ------------------------------------------------------------------


def test_a_split_view_at_the_known_size_is_409() -> None:
    """The operator signs two different checkpoints of size 20; the witness cosigned the first."""
    assert _cp(20) != _cp(20, FORK)
    got = _decide(20, 20, _state(20), FORK)
    assert isinstance(got, Refused) and got.status == 409 and "split view" in got.reason
    assert got.known_size == 20


def test_a_split_view_past_the_known_size_fails_its_proof() -> None:
    got = _decide(7, 20, _state(7), FORK)  # the fork rewrote leaf 5, inside the 7 the witness holds
    assert isinstance(got, Refused) and got.status == 422


def test_a_rollback_is_refused() -> None:
    back = _decide(0, 7, _state(20))
    assert isinstance(back, Refused) and back.status == 409 and back.known_size == 20
    got = decide(AddCheckpoint(20, (), _req(0, 7).note, _cp(7)), KEYS, _state(20))
    assert isinstance(got, Refused) and got.status == 400


def test_the_empty_tree_must_have_the_empty_root() -> None:
    got = decide(_req(0, 0), KEYS, None)
    assert isinstance(got, Accepted) and got.new == LogState(0, EMPTY_ROOT)
    wrong = Checkpoint(ORIGIN, 0, leaf_hash(b"x"))
    req = parse_add_checkpoint(request_body(0, [], sign_checkpoint(wrong, [LOG])))
    assert isinstance(req, AddCheckpoint)
    got = decide(req, KEYS, None)
    assert isinstance(got, Refused) and got.status == 409


# ---- malformed bodies: 400, each named -----------------------------------------------------------

NOTE = sign_checkpoint(_cp(20), [LOG])
PROOF_LINE = base64.b64encode(LEAVES[1]).decode()


@pytest.mark.parametrize(("body", "says"), [
    (b"old 7\n", "no empty line"),
    (b"old 07\n\n" + NOTE, "not 'old <size>'"),
    (b"old -1\n\n" + NOTE, "not 'old <size>'"),
    (b"old  7\n\n" + NOTE, "not 'old <size>'"),
    (b"Old 7\n\n" + NOTE, "not 'old <size>'"),
    (b"old 7\r\n\n" + NOTE, "not 'old <size>'"),
    (b"old 184467440737095516150\n\n" + NOTE, "not 'old <size>'"),
    (b"old \xc3\xa9\n\n" + NOTE, "ASCII"),
    (f"old 7\n{PROOF_LINE[:-2]}\n\n".encode() + NOTE, "proof line 1"),
    (f"old 7\n{PROOF_LINE}x\n\n".encode() + NOTE, "proof line 1"),
    (f"old 7\n{base64.b64encode(bytes(31)).decode()}\n\n".encode() + NOTE, "proof line 1"),
    (("old 7\n" + (PROOF_LINE + "\n") * (MAX_PROOF_LINES + 1) + "\n").encode() + NOTE, "at most 63"),
    (b"old 7\n\n" + NOTE.replace(b"\n\n", b"\n"), "checkpoint"),
    (b"old 7\n\n" + NOTE.replace(b"20\n", b"020\n", 1), "checkpoint"),
    (b"old 7\n\n" + NOTE[:-1], "checkpoint"),
    (b"old 7\n\nx" * 30000, "at most"),
])
def test_malformed_bodies_are_400_naming_what(body: bytes, says: str) -> None:
    got = parse_add_checkpoint(body)
    assert isinstance(got, Refused) and got.status == 400 and says in got.reason, got


def test_every_single_byte_change_of_a_request_is_refused_or_harmless() -> None:
    """Flip each byte of an honest request: it is either refused, or it still states exactly the
    same checkpoint with a valid proof (a change that cannot alter meaning does not exist here,
    so in practice every change is refused)."""
    body = request_body(7, consistency_proof(7, LEAVES[:20]), NOTE)
    accepted = 0
    for i in range(len(body)):
        changed = bytearray(body)
        changed[i] ^= 0x01
        req = parse_add_checkpoint(bytes(changed))
        got = req if isinstance(req, Refused) else decide(req, KEYS, _state(7))
        if isinstance(got, Accepted):
            accepted += 1
            assert got.new == _state(20)
    assert accepted == 0


# ---- an honest log and a forked one, end to end through the decision -----------------------------


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(0, 40), min_size=1, max_size=8))
def test_an_honest_log_is_always_cosigned_and_a_fork_never_beside_it(sizes: list[int]) -> None:
    known: LogState | None = None
    for n in sorted(sizes):
        old = known.size if known else 0
        got = _decide(old, n, known)
        assert isinstance(got, Accepted), got
        known = got.new
        assert known is not None
        if n > 5:  # the fork differs from leaf 5 on: at every such size the witness refuses it
            forked = _decide(n, n, known, FORK)
            assert isinstance(forked, Refused) and forked.status == 409
        if old > 5 and n > old:  # and a fork offered as the extension of what the witness holds
            forked = _decide(old, n, LogState(old, root_from_leaf_hashes(LEAVES[:old])), FORK)
            assert isinstance(forked, Refused) and forked.status == 422


def test_a_rotated_log_key_is_trusted_when_both_are_given() -> None:
    """The ledger key rotates: a witness given both vkeys of the origin (--log twice) cosigns
    checkpoints signed by either; given only the old one, the new checkpoint is 403."""
    rotated = SignerKey(ORIGIN, bytes(range(50, 82)))
    body = request_body(7, consistency_proof(7, LEAVES[:20]), sign_checkpoint(_cp(20), [rotated]))
    req = parse_add_checkpoint(body)
    assert isinstance(req, AddCheckpoint)
    assert isinstance(decide(req, [LOG.verifier, rotated.verifier], _state(7)), Accepted)
    got = decide(req, [LOG.verifier], _state(7))
    assert isinstance(got, Refused) and got.status == 403
