"""RFC 6962 Merkle trees: known answers, a naive reference, and systematic proof corruptions.

Known-answer vectors: the eight leaf inputs and the roots of trees of size 0..8 used by
Certificate Transparency and transparency-dev/merkle (`testonly/constants.go`,
LeafInputs/RootHashes/NodeHashes), computed there with SHA-256 and the RFC 6962 prefixes.
"""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anchor.merkle import (
    EMPTY_ROOT,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_from_inclusion_proof,
    root_from_leaf_hashes,
    verify_inclusion,
)
from packproof.errors import ProofError

LEAVES = [bytes.fromhex(h) for h in
          ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]]
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
# Level-1 node hashes of the 8-leaf tree (NodeHashes()[1]): the audit path of leaf 0 uses them.
LEAF_HASHES_HEX = ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                   "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"]
LEVEL1_HEX = ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
              "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"]
LEVEL2_HEX = ["d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
              "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]


def reference_root(hashes: list[bytes]) -> bytes:
    """MTH exactly as RFC 6962 §2.1 defines it: split at the largest power of two below n."""
    n = len(hashes)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashes[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return node_hash(reference_root(hashes[:k]), reference_root(hashes[k:]))


@pytest.mark.parametrize("size", range(9))
def test_known_answer_roots(size: int) -> None:
    assert root_from_leaf_hashes([leaf_hash(x) for x in LEAVES[:size]]).hex() == ROOTS[size]


def test_known_leaf_hashes_and_an_audit_path() -> None:
    hashes = [leaf_hash(x) for x in LEAVES]
    assert [h.hex() for h in hashes[:2]] == LEAF_HASHES_HEX
    assert EMPTY_ROOT.hex() == ROOTS[0]
    # Leaf 0 of 8: its sibling leaf, then the level-1 node to its right, then the level-2 node.
    assert [h.hex() for h in inclusion_proof(0, hashes)] == [LEAF_HASHES_HEX[1], LEVEL1_HEX[1], LEVEL2_HEX[1]]


@pytest.mark.parametrize("size", range(1, 131))
def test_fast_tree_matches_the_reference_and_every_proof_verifies(size: int) -> None:
    hashes = [leaf_hash(i.to_bytes(4, "big")) for i in range(size)]
    root = root_from_leaf_hashes(hashes)
    assert root == reference_root(hashes)
    for i in range(size):
        verify_inclusion(i, size, hashes[i], inclusion_proof(i, hashes), root)


def good(index: int = 5, size: int = 13) -> tuple[int, int, bytes, list[bytes], bytes, list[bytes]]:
    hashes = [leaf_hash(bytes([i])) for i in range(size)]
    return index, size, hashes[index], inclusion_proof(index, hashes), root_from_leaf_hashes(hashes), hashes


def flip(h: bytes, bit: int = 0) -> bytes:
    return bytes([h[0] ^ (1 << bit)]) + h[1:]


CORRUPTIONS = {
    "index + 1": lambda i, n, leaf, p, hs: (i + 1, n, leaf, p),
    "index - 1": lambda i, n, leaf, p, hs: (i - 1, n, leaf, p),
    "size x 2": lambda i, n, leaf, p, hs: (i, n * 2, leaf, p),
    "flipped bit in path": lambda i, n, leaf, p, hs: (i, n, leaf, [p[0], flip(p[1]), *p[2:]]),
    "flipped bit in leaf": lambda i, n, leaf, p, hs: (i, n, flip(leaf, 7), p),
    "path one too long": lambda i, n, leaf, p, hs: (i, n, leaf, [*p, p[0]]),
    "path one too short": lambda i, n, leaf, p, hs: (i, n, leaf, p[:-1]),
    "wrong leaf": lambda i, n, leaf, p, hs: (i, n, hs[i + 1], p),
    "31-byte hash": lambda i, n, leaf, p, hs: (i, n, leaf, [p[0][:31], *p[1:]]),
    "index = size": lambda i, n, leaf, p, hs: (n, n, leaf, p),
    "negative index": lambda i, n, leaf, p, hs: (-1, n, leaf, p),
}


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_each_corruption_of_a_good_proof_fails(name: str) -> None:
    i, n, leaf, proof, root, hashes = good()
    verify_inclusion(i, n, leaf, proof, root)  # the good one holds
    ci, cn, cleaf, cproof = CORRUPTIONS[name](i, n, leaf, proof, hashes)
    with pytest.raises(ProofError, match=r"does not match expected root|expected \d+ for index|out of range|bytes"):
        verify_inclusion(ci, cn, cleaf, cproof, root)


def test_messages_say_what_was_expected() -> None:
    i, n, leaf, proof, root, _ = good()
    with pytest.raises(ProofError, match=r"audit path has 3 hashes, expected 4 for index 5 in tree size 13"):
        verify_inclusion(i, n, leaf, proof[:-1], root)
    with pytest.raises(ProofError, match=r"leaf index 13 out of range for tree size 13"):
        verify_inclusion(13, n, leaf, proof, root)
    with pytest.raises(ProofError) as err:
        verify_inclusion(i, n, flip(leaf), proof, root)
    assert err.value.expected == root.hex() and err.value.got and len(err.value.got) == 64


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=40), min_size=1, max_size=70), st.data())
def test_build_prove_verify_round_trip(leaves: list[bytes], data: st.DataObject) -> None:
    hashes = [leaf_hash(x) for x in leaves]
    index = data.draw(st.integers(0, len(leaves) - 1))
    proof = inclusion_proof(index, hashes)
    assert root_from_inclusion_proof(index, len(hashes), hashes[index], proof) == root_from_leaf_hashes(hashes)
