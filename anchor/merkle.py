"""RFC 6962 Merkle trees (RFC 9162 §2.1): hashes, roots and inclusion proofs. Pure.

Leaf hash = SHA-256(0x00 || data), node hash = SHA-256(0x01 || left || right), and the
tree splits at the largest power of two below its size (RFC 6962 §2.1). Building level
by level and carrying an odd last node up unchanged gives exactly that shape, which lets
the root be computed in one pass of ~n hashes with no recursion.

The verifier checks the shape first (index < size, 32-byte hashes, the exact path length
for this index and size), then hashes (RFC 9162 §2.1.3.2), as transparency-dev/merkle's
`proof/verify.go` does, so a malformed proof fails with a message naming what is wrong.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from packproof.errors import ProofError

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
HASH_LEN = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

_sha256 = hashlib.sha256


def leaf_hash(data: bytes) -> bytes:
    return _sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return _sha256(NODE_PREFIX + left + right).digest()


def _next_level(level: Sequence[bytes]) -> list[bytes]:
    n = len(level)
    up = [_sha256(NODE_PREFIX + level[i] + level[i + 1]).digest() for i in range(0, n - 1, 2)]
    if n % 2:
        up.append(level[-1])  # promoted unchanged: RFC 6962's left-heavy split
    return up


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    if not hashes:
        return EMPTY_ROOT
    level: Sequence[bytes] = hashes
    while len(level) > 1:
        level = _next_level(level)
    return level[0]


def inclusion_proof(index: int, hashes: Sequence[bytes]) -> list[bytes]:
    """The audit path of leaf `index`, bottom-up, as RFC 6962 §2.1.1 defines it."""
    size = len(hashes)
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} out of range for tree size {size}")
    path: list[bytes] = []
    level: Sequence[bytes] = hashes
    i = index
    while len(level) > 1:
        sibling = i ^ 1
        if sibling < len(level):
            path.append(level[sibling])
        level = _next_level(level)
        i //= 2
    return path


def _proof_length(index: int, size: int) -> int:
    """Hashes in the audit path of `index` in a tree of `size` (RFC 9162 §2.1.3.2 shape)."""
    inner = (index ^ (size - 1)).bit_length()
    border = bin(index >> inner).count("1")
    return inner + border


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} out of range for tree size {size}")
    if len(leaf) != HASH_LEN:
        raise ProofError(f"leaf hash has {len(leaf)} bytes, expected {HASH_LEN}")
    for k, h in enumerate(proof):
        if len(h) != HASH_LEN:
            raise ProofError(f"audit path hash {k} has {len(h)} bytes, expected {HASH_LEN}")
    want = _proof_length(index, size)
    if len(proof) != want:
        raise ProofError(f"audit path has {len(proof)} hashes, expected {want} for index {index} "
                         f"in tree size {size}")
    # RFC 9162 §2.1.3.2
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return r


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> None:
    got = root_from_inclusion_proof(index, size, leaf, proof)
    if got != root:
        raise ProofError(f"computed root {got.hex()} does not match expected root {root.hex()}",
                         expected=root.hex(), got=got.hex())
