"""One multi-leaf inclusion proof for many leaves (issue 18): the store's prover reads tiles
(packproof.tiles.multi_inclusion_proof), the verifier folds (anchor.merkle.root_from_multi_proof).
Both are checked against a naive reference (every carried subtree's root rebuilt from the leaves)
and against the single-leaf RFC 6962 paths: every hash the multi-proof carries is on one of the
leaves' own audit paths, and no hash is carried twice."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from packproof import tiles
from packproof.anchor.merkle import (
    inclusion_proofs,
    leaf_hash,
    multi_inclusion_proof,
    root_from_leaf_hashes,
    root_from_multi_proof,
)
from packproof.errors import ProofError


def leaves(n: int) -> list[bytes]:
    return [leaf_hash(hashlib.sha256(str(i).encode()).digest()) for i in range(n)]


@st.composite
def trees(draw: st.DrawFn) -> tuple[int, list[int]]:
    size = draw(st.integers(1, 1300))
    picked = draw(st.sets(st.integers(0, size - 1), min_size=1, max_size=min(size, 60)))
    if draw(st.booleans()):  # a pack's readings often sit in runs
        start = draw(st.integers(0, size - 1))
        picked |= set(range(start, min(size, start + draw(st.integers(1, 300)))))
    return size, sorted(picked)


@settings(max_examples=150, deadline=None)
@given(trees())
def test_the_tile_prover_matches_the_naive_reference_and_verifies(tree: tuple[int, list[int]]) -> None:
    size, wanted = tree
    hashes = leaves(size)
    appended = tiles.append_leaves(0, {}, hashes)
    proof = tiles.multi_inclusion_proof(wanted, size, appended.tiles)
    assert proof == multi_inclusion_proof(wanted, hashes)
    assert root_from_multi_proof(size, [(i, hashes[i]) for i in wanted], proof) == root_from_leaf_hashes(hashes)
    singles = inclusion_proofs(wanted, hashes)
    union = {h for path in singles for h in path}
    assert set(proof) <= union  # nothing but audit-path nodes, each once
    assert len(proof) == len(set(proof)) <= sum(len(p) for p in singles)


@settings(max_examples=60, deadline=None)
@given(trees(), st.data())
def test_any_change_to_a_leaf_or_a_proof_hash_fails(tree: tuple[int, list[int]], data: st.DataObject) -> None:
    size, wanted = tree
    hashes = leaves(size)
    proof = multi_inclusion_proof(wanted, hashes)
    root = root_from_leaf_hashes(hashes)
    given_leaves = [(i, hashes[i]) for i in wanted]
    k = data.draw(st.integers(0, len(given_leaves) - 1))
    forged = list(given_leaves)
    forged[k] = (forged[k][0], hashlib.sha256(b"forged").digest())
    assert root_from_multi_proof(size, forged, proof) != root
    if proof:
        j = data.draw(st.integers(0, len(proof) - 1))
        bent = [*proof[:j], hashlib.sha256(b"x").digest(), *proof[j + 1:]]
        assert root_from_multi_proof(size, given_leaves, bent) != root


def test_a_whole_run_needs_only_the_roots_around_it() -> None:
    hashes = leaves(1000)
    proof = multi_inclusion_proof(list(range(256, 512)), hashes)
    assert len(proof) == len(inclusion_proofs([256], hashes)[0]) - 8  # the run's own subtree is rebuilt


@pytest.mark.parametrize(("indices", "proof_len", "message"), [
    ([3, 2], 0, "leaf indices must rise: 3 then 2"),
    ([10], 0, "leaf index 10 out of range for tree size 8"),
    ([], 0, "needs at least one leaf"),
    ([0], 2, "the multi-proof has 2 hashes, too few"),
    ([0], 4, "the multi-proof has 4 hashes, these leaves in tree size 8 need 3"),
])
def test_a_malformed_claim_is_named(indices: list[int], proof_len: int, message: str) -> None:
    hashes = leaves(8)
    with pytest.raises(ProofError, match=message):
        root_from_multi_proof(8, [(i, hashes[i % 8]) for i in indices], [hashes[0]] * proof_len)
