"""The monitor's judgement: extensions advance, a fork (same size, other root; or a failing proof)
and a rollback alarm with both sizes and roots named; Hypothesis over honest and forked logs."""

from __future__ import annotations

import base64

from hypothesis import given, settings
from hypothesis import strategies as st

from packproof.anchor.consistency import consistency_proof
from packproof.anchor.merkle import leaf_hash, root_from_leaf_hashes
from packproof.anchor.monitor import Advance, Alarm, NeedProof, Same, assess, conclude, read_checkpoint
from packproof.anchor.note import SignerKey
from packproof.anchor.tlog_checkpoint import Checkpoint, sign_checkpoint

ORIGIN = "packproof.example/monitor-test"
LOG = SignerKey(ORIGIN, bytes(range(32)))
LEAVES = [leaf_hash(i.to_bytes(4, "big")) for i in range(64)]
FORK = LEAVES[:9] + [leaf_hash(b"rewritten")] + LEAVES[10:]


def _cp(n: int, leaves: list[bytes] = LEAVES) -> Checkpoint:
    return Checkpoint(ORIGIN, n, root_from_leaf_hashes(leaves[:n]))


def _b64(cp: Checkpoint) -> str:
    return base64.b64encode(cp.root).decode()


def test_the_first_checkpoint_is_taken_and_the_same_again_is_nothing_new() -> None:
    assert assess(None, _cp(10)) == Advance(_cp(10))
    assert assess(_cp(10), _cp(10)) == Same()


def test_an_extension_needs_a_proof_and_advances_with_it() -> None:
    assert assess(_cp(10), _cp(30)) == NeedProof(10, 30)
    assert conclude(_cp(10), _cp(30), consistency_proof(10, LEAVES[:30])) == Advance(_cp(30))


def test_a_split_view_at_one_size_is_a_fork_naming_both_roots() -> None:
    got = assess(_cp(20), _cp(20, FORK))
    assert isinstance(got, Alarm) and got.kind == "fork"
    assert "size 20" in got.line and _b64(_cp(20)) in got.line and _b64(_cp(20, FORK)) in got.line


def test_a_fork_past_the_saved_size_fails_its_proof() -> None:
    for proof in (consistency_proof(10, FORK[:30]), consistency_proof(10, LEAVES[:30]), []):
        got = conclude(_cp(10), _cp(30, FORK), proof)
        assert isinstance(got, Alarm) and got.kind == "fork"
        assert "size 30" in got.line and "size 10" in got.line and _b64(_cp(10)) in got.line


def test_a_wrong_proof_for_an_honest_extension_is_still_an_alarm() -> None:
    """The monitor cannot tell a lying proof from a fork: either way the log failed to prove it."""
    proof = consistency_proof(10, LEAVES[:30])
    for k in range(len(proof)):
        bad = list(proof)
        bad[k] = leaf_hash(b"x")
        assert isinstance(conclude(_cp(10), _cp(30), bad), Alarm)


def test_a_rollback_names_both_sizes_and_roots() -> None:
    got = assess(_cp(30), _cp(10))
    assert isinstance(got, Alarm) and got.kind == "rollback"
    assert "size 10" in got.line and "size 30" in got.line and _b64(_cp(30)) in got.line and _b64(_cp(10)) in got.line


def test_a_note_not_signed_by_the_log_key_or_of_another_origin_alarms() -> None:
    assert read_checkpoint(sign_checkpoint(_cp(5), [LOG]), LOG.verifier) == _cp(5)
    other = SignerKey(ORIGIN, bytes(range(7, 39)))
    got = read_checkpoint(sign_checkpoint(_cp(5), [other]), LOG.verifier)
    assert isinstance(got, Alarm) and got.kind == "signature"
    named = SignerKey("elsewhere.example/log", bytes(range(32)))
    got = read_checkpoint(sign_checkpoint(_cp(5), [named]), named.verifier)
    assert isinstance(got, Alarm) and got.kind == "origin"
    assert assess(_cp(5), Checkpoint("elsewhere.example/log", 6, _cp(6).root)) == Alarm(
        "origin", "ORIGIN: saved checkpoint of 'packproof.example/monitor-test', served one of 'elsewhere.example/log'")


@settings(max_examples=80, deadline=None)
@given(sizes=st.lists(st.integers(1, 64), min_size=2, max_size=10))
def test_following_an_honest_log_never_alarms_and_a_fork_always_does(sizes: list[int]) -> None:
    saved: Checkpoint | None = None
    for n in sorted(sizes):
        v = assess(saved, _cp(n))
        if isinstance(v, NeedProof):
            assert saved is not None
            v = conclude(saved, _cp(n), consistency_proof(saved.size, LEAVES[:n]))
        assert isinstance(v, Advance | Same), v
        saved = _cp(n) if isinstance(v, Advance) else saved
    assert saved is not None
    if saved.size > 9:  # the fork rewrote leaf 9: any fork checkpoint at or past the saved size alarms
        for n in range(saved.size, 65):
            v = assess(saved, _cp(n, FORK))
            if isinstance(v, NeedProof):
                v = conclude(saved, _cp(n, FORK), consistency_proof(saved.size, FORK[:n]))
            assert isinstance(v, Alarm), (saved.size, n)
