"""RFC 6962 Merkle trees: known answers, a naive reference, and systematic proof corruptions.

Known-answer vectors (data only, hex): the eight leaf inputs, the node hashes of the
8-leaf tree and the roots of trees of size 0..8 are those of Certificate Transparency as
kept in transparency-dev/merkle `testonly/constants.go` (LeafInputs, NodeHashes,
RootHashes); the inclusion proofs are the `inclusionProofs` table of
transparency-dev/merkle `proof/verify_test.go` (whose leaf numbers are 1-based; the
indices below are 0-based). All use SHA-256 with the RFC 6962 0x00 / 0x01 prefixes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from packproof.anchor.merkle import (
    EMPTY_ROOT,
    HASH_LEN,
    LEAF_PREFIX,
    NODE_PREFIX,
    inclusion_proof,
    inclusion_proofs,
    leaf_hash,
    node_hash,
    root_from_inclusion_proof,
    root_from_leaf_hashes,
)
from packproof.errors import ProofError
from tests.anchor.merkle_check import reference_root, verify_inclusion

LEAF_INPUTS = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
]
LEAVES = [bytes.fromhex(h) for h in LEAF_INPUTS]

# RootHashes(): index = tree size.
ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]

# NodeHashes(): [level][position] of the complete subtrees of the 8-leaf tree.
NODE_HASHES = [
    [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    ],
    [
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    ],
    [
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    [
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ],
]

# (0-based leaf index, tree size, audit path) from verify_test.go's inclusionProofs.
INCLUSION_PROOFS: list[tuple[int, int, list[str]]] = [
    (0, 1, []),
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        3,
        [
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        ],
    ),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]



def _reference_path(index: int, hashes: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) exactly as RFC 6962 §2.1.1 writes it."""
    n = len(hashes)
    if n <= 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if index < k:
        return [*_reference_path(index, hashes[:k]), reference_root(hashes[k:])]
    return [*_reference_path(index - k, hashes[k:]), reference_root(hashes[:k])]


# ---- constants and primitive hashes -------------------------------------------------


def test_constants() -> None:
    assert LEAF_PREFIX == b"\x00" and NODE_PREFIX == b"\x01" and HASH_LEN == 32
    assert hashlib.sha256(b"").digest() == EMPTY_ROOT
    assert EMPTY_ROOT.hex() == ROOTS[0]


def test_leaf_and_node_hashes_match_the_vectors() -> None:
    assert [leaf_hash(x).hex() for x in LEAVES] == NODE_HASHES[0]
    for level in range(1, len(NODE_HASHES)):
        below = [bytes.fromhex(h) for h in NODE_HASHES[level - 1]]
        assert [node_hash(below[2 * i], below[2 * i + 1]).hex() for i in range(len(below) // 2)] == NODE_HASHES[level]


# ---- known answers --------------------------------------------------------------------


@pytest.mark.parametrize("size", range(len(ROOTS)))
def test_known_answer_roots(size: int) -> None:
    hashes = [leaf_hash(x) for x in LEAVES[:size]]
    assert root_from_leaf_hashes(hashes).hex() == ROOTS[size]
    assert reference_root(hashes).hex() == ROOTS[size]


@pytest.mark.parametrize(
    ("index", "size", "path"), INCLUSION_PROOFS, ids=[f"{i}-of-{n}" for i, n, _ in INCLUSION_PROOFS]
)
def test_known_answer_inclusion_proofs(index: int, size: int, path: list[str]) -> None:
    hashes = [leaf_hash(x) for x in LEAVES[:size]]
    proof = inclusion_proof(index, hashes)
    assert [p.hex() for p in proof] == path
    root = bytes.fromhex(ROOTS[size])
    assert root_from_inclusion_proof(index, size, hashes[index], proof) == root
    verify_inclusion(index, size, hashes[index], [bytes.fromhex(p) for p in path], root)


# ---- cross-check against the naive reference ------------------------------------------


@pytest.mark.parametrize("size", range(1, 131))
def test_fast_tree_matches_the_reference_and_every_proof_verifies(size: int) -> None:
    hashes = [leaf_hash(i.to_bytes(4, "big")) for i in range(size)]
    root = root_from_leaf_hashes(hashes)
    assert root == reference_root(hashes)
    for i in range(size):
        proof = inclusion_proof(i, hashes)
        assert proof == _reference_path(i, hashes), f"path of leaf {i} in tree size {size}"
        assert root_from_inclusion_proof(i, size, hashes[i], proof) == root
        verify_inclusion(i, size, hashes[i], proof, root)


@pytest.mark.parametrize("size", [1, 2, 5, 8, 13, 64, 100])
def test_several_paths_of_one_tree_are_each_leafs_own_path(size: int) -> None:
    hashes = [leaf_hash(i.to_bytes(4, "big")) for i in range(size)]
    indices = [size - 1, 0, size // 2, 0]
    assert inclusion_proofs(indices, hashes) == [inclusion_proof(i, hashes) for i in indices]
    with pytest.raises(ProofError, match=f"leaf index {size} out of range"):
        inclusion_proofs([0, size], hashes)


def test_inclusion_proof_rejects_an_index_outside_the_tree() -> None:
    hashes = [leaf_hash(bytes([i])) for i in range(5)]
    with pytest.raises(ProofError, match=r"^leaf index 7 out of range for tree size 5$"):
        inclusion_proof(7, hashes)
    with pytest.raises(ProofError, match=r"^leaf index -1 out of range for tree size 5$"):
        inclusion_proof(-1, hashes)
    with pytest.raises(ProofError, match=r"^leaf index 0 out of range for tree size 0$"):
        inclusion_proof(0, [])


# ---- systematic corruptions of one good proof ------------------------------------------

GOOD_INDEX, GOOD_SIZE = 5, 13  # a 4-hash path mixing left and right siblings and a promoted node


def _flip(h: bytes, byte: int = 0, bit: int = 3) -> bytes:
    return h[:byte] + bytes([h[byte] ^ (1 << bit)]) + h[byte + 1 :]


Claim = tuple[int, int, bytes, list[bytes]]
Corruption = Callable[[int, int, bytes, list[bytes], list[bytes]], Claim]

_MISMATCH = r"^computed root [0-9a-f]{64} does not match expected root [0-9a-f]* for leaf index -?\d+ in tree size \d+$"

# name -> (how to corrupt (index, size, leaf, proof, all leaf hashes), the message it must fail with)
CORRUPTIONS: dict[str, tuple[Corruption, str]] = {
    "index + 1": (lambda i, n, leaf, p, hs: (i + 1, n, leaf, p), _MISMATCH),
    "index - 1": (lambda i, n, leaf, p, hs: (i - 1, n, leaf, p), _MISMATCH),
    "index ^ 2": (lambda i, n, leaf, p, hs: (i ^ 2, n, leaf, p), _MISMATCH),
    "size x 2": (
        lambda i, n, leaf, p, hs: (i, n * 2, leaf, p),
        r"^audit path has 4 hashes, expected 5 for index 5 in tree size 26$",
    ),
    "size / 2": (
        lambda i, n, leaf, p, hs: (i, n // 2, leaf, p),
        r"^audit path has 4 hashes, expected 2 for index 5 in tree size 6$",
    ),
    "flipped bit in path[0]": (lambda i, n, leaf, p, hs: (i, n, leaf, [_flip(p[0]), *p[1:]]), _MISMATCH),
    "flipped bit in path[1]": (lambda i, n, leaf, p, hs: (i, n, leaf, [p[0], _flip(p[1], 17), *p[2:]]), _MISMATCH),
    "flipped bit in path[-1]": (lambda i, n, leaf, p, hs: (i, n, leaf, [*p[:-1], _flip(p[-1], 31, 0)]), _MISMATCH),
    "flipped bit in leaf": (lambda i, n, leaf, p, hs: (i, n, _flip(leaf, 9, 7), p), _MISMATCH),
    "wrong leaf": (lambda i, n, leaf, p, hs: (i, n, hs[i + 1], p), _MISMATCH),
    "path one too long": (
        lambda i, n, leaf, p, hs: (i, n, leaf, [*p, p[0]]),
        r"^audit path has 5 hashes, expected 4 for index 5 in tree size 13$",
    ),
    "path one too short": (
        lambda i, n, leaf, p, hs: (i, n, leaf, p[:-1]),
        r"^audit path has 3 hashes, expected 4 for index 5 in tree size 13$",
    ),
    "path hashes swapped": (lambda i, n, leaf, p, hs: (i, n, leaf, [p[1], p[0], *p[2:]]), _MISMATCH),
    "empty path": (
        lambda i, n, leaf, p, hs: (i, n, leaf, []),
        r"^audit path has 0 hashes, expected 4 for index 5 in tree size 13$",
    ),
    "31-byte path hash": (
        lambda i, n, leaf, p, hs: (i, n, leaf, [p[0], p[1][:31], *p[2:]]),
        r"^audit path hash 1 has 31 bytes, expected 32$",
    ),
    "33-byte path hash": (
        lambda i, n, leaf, p, hs: (i, n, leaf, [*p[:-1], p[-1] + b"\x00"]),
        r"^audit path hash 3 has 33 bytes, expected 32$",
    ),
    "31-byte leaf": (lambda i, n, leaf, p, hs: (i, n, leaf[:31], p), r"^leaf hash has 31 bytes, expected 32$"),
    "raw data as leaf": (lambda i, n, leaf, p, hs: (i, n, b"\x05", p), r"^leaf hash has 1 bytes, expected 32$"),
    "index = size": (lambda i, n, leaf, p, hs: (n, n, leaf, p), r"^leaf index 13 out of range for tree size 13$"),
    "index > size": (lambda i, n, leaf, p, hs: (n + 7, n, leaf, p), r"^leaf index 20 out of range for tree size 13$"),
    "negative index": (lambda i, n, leaf, p, hs: (-1, n, leaf, p), r"^leaf index -1 out of range for tree size 13$"),
    "size 0": (lambda i, n, leaf, p, hs: (i, 0, leaf, p), r"^leaf index 5 out of range for tree size 0$"),
}


def _good() -> tuple[list[bytes], bytes, list[bytes]]:
    hashes = [leaf_hash(bytes([i])) for i in range(GOOD_SIZE)]
    return hashes, root_from_leaf_hashes(hashes), inclusion_proof(GOOD_INDEX, hashes)


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_each_corruption_of_a_good_proof_fails(name: str) -> None:
    hashes, root, proof = _good()
    leaf = hashes[GOOD_INDEX]
    assert len(proof) == 4
    verify_inclusion(GOOD_INDEX, GOOD_SIZE, leaf, proof, root)  # the uncorrupted claim holds
    corrupt, message = CORRUPTIONS[name]
    claim = corrupt(GOOD_INDEX, GOOD_SIZE, leaf, list(proof), hashes)
    with pytest.raises(ProofError, match=message):
        verify_inclusion(*claim, root)


@pytest.mark.parametrize("bad_root", [EMPTY_ROOT, b"\xab" * 32, b"", b"WrongRoot"])
def test_a_good_proof_fails_against_another_root(bad_root: bytes) -> None:
    hashes, _, proof = _good()
    with pytest.raises(ProofError, match=_MISMATCH):
        verify_inclusion(GOOD_INDEX, GOOD_SIZE, hashes[GOOD_INDEX], proof, bad_root)


def test_the_tree_size_is_not_bound_by_the_proof_alone() -> None:
    """Leaf 5's path in 13 leaves is also a valid path in 12: both trees split 8 | rest, and the
    last path hash is just "the right subtree's root". RFC 6962 roots do not commit to the size,
    so the size must come from the same signed record as the root (proof.py checks the bundle's
    tree_size against the block's leaf_count). Pinned here so nobody mistakes it for a bug.
    """
    hashes, root, proof = _good()
    verify_inclusion(GOOD_INDEX, GOOD_SIZE - 1, hashes[GOOD_INDEX], proof, root)


def test_a_mismatch_carries_both_roots_in_hex() -> None:
    hashes, root, proof = _good()
    bad_leaf = _flip(hashes[GOOD_INDEX])
    with pytest.raises(ProofError) as err:
        verify_inclusion(GOOD_INDEX, GOOD_SIZE, bad_leaf, proof, root)
    got = root_from_inclusion_proof(GOOD_INDEX, GOOD_SIZE, bad_leaf, proof)
    assert err.value.expected == root.hex()
    assert err.value.got == got.hex()
    assert str(err.value) == (
        f"computed root {got.hex()} does not match expected root {root.hex()} for leaf index 5 in tree size 13"
    )


def test_shape_errors_carry_no_roots() -> None:
    hashes, root, proof = _good()
    with pytest.raises(ProofError) as err:
        verify_inclusion(GOOD_INDEX, GOOD_SIZE, hashes[GOOD_INDEX], proof[:-1], root)
    assert err.value.expected is None and err.value.got is None


def test_single_leaf_tree_has_an_empty_path_and_its_leaf_as_root() -> None:
    h = leaf_hash(b"data")
    assert root_from_leaf_hashes([h]) == h
    assert inclusion_proof(0, [h]) == []
    verify_inclusion(0, 1, h, [], h)
    with pytest.raises(ProofError, match=r"^audit path has 1 hashes, expected 0 for index 0 in tree size 1$"):
        verify_inclusion(0, 1, h, [h], h)
    with pytest.raises(ProofError, match=r"^leaf hash has 0 bytes, expected 32$"):
        verify_inclusion(0, 1, b"", [], h)


def test_a_leaf_cannot_pose_as_an_inner_node() -> None:
    """The 0x00/0x01 prefixes: the two children of a node, given as one 64-byte 'leaf', hash differently."""
    a, b = leaf_hash(b"a"), leaf_hash(b"b")
    assert leaf_hash(a + b) != node_hash(a, b)


# ---- property: build, prove, verify ----------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=40), min_size=1, max_size=300), st.data())
def test_build_prove_verify_round_trip(leaves: list[bytes], data: st.DataObject) -> None:
    hashes = [leaf_hash(x) for x in leaves]
    size = len(hashes)
    root = root_from_leaf_hashes(hashes)
    index = data.draw(st.integers(0, size - 1), label="index")
    proof = inclusion_proof(index, hashes)
    assert root_from_inclusion_proof(index, size, hashes[index], proof) == root
    verify_inclusion(index, size, hashes[index], proof, root)
    # The same proof must not vouch for any other leaf of the tree unless it is a duplicate.
    other = data.draw(st.integers(0, size - 1), label="other")
    if hashes[other] != hashes[index]:
        with pytest.raises(ProofError, match=_MISMATCH):
            verify_inclusion(index, size, hashes[other], proof, root)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 2**40), st.data())
def test_expected_path_length_matches_the_tree_shape(size: int, data: st.DataObject) -> None:
    """A path the length check accepts is one the RFC 9162 loop consumes exactly (no sn guard fires)."""
    index = data.draw(st.integers(0, size - 1), label="index")
    # Depth of the leaf in the RFC 6962 tree, walked top-down by the split at the largest power of two.
    depth, lo, n = 0, index, size
    while n > 1:
        k = 1 << ((n - 1).bit_length() - 1)
        lo, n = (lo, k) if lo < k else (lo - k, n - k)
        depth += 1
    zero = b"\x00" * 32
    root_from_inclusion_proof(index, size, zero, [zero] * depth)
    with pytest.raises(ProofError, match=r"^audit path has"):
        root_from_inclusion_proof(index, size, zero, [zero] * (depth + 1))
