"""RFC 6962 Merkle trees: roots and inclusion proofs (consistency proofs: anchor/consistency.py). Pure.

The hasher (leaf and node hashes) is the kernel's, packproof.rfc6962; its names are handed on
here so a reader of trees finds them in one place. Definitions (RFC 6962 §2.1, restated unchanged in RFC 9162 §2.1.1):

* leaf hash  ``MTH({d}) = SHA-256(0x00 || d)``
* node hash  ``SHA-256(0x01 || left || right)``
* empty tree ``MTH({}) = SHA-256("")``
* a tree of n > 1 leaves splits into its first k leaves and the rest, where k is the
  largest power of two smaller than n.

The distinct 0x00 / 0x01 prefixes are what stop a leaf being passed off as an inner node
(second-preimage attack), so they are never optional here.

Building level by level and carrying an odd last node up one level unchanged yields
exactly the RFC's left-heavy shape, so the root costs n - 1 hashes in flat loops with no
recursion and no slicing of the leaf list.

Verification follows RFC 9162 §2.1.3.2 step by step, but only after checking the shape
of the claim (0 <= index < size, every hash 32 bytes, the audit path exactly as long as
this index and size require). A malformed proof therefore fails with a message naming
what is wrong rather than as an anonymous root mismatch, and no hashing is spent on it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from packproof.errors import ProofError
from packproof.rfc6962 import EMPTY_ROOT, HASH_LEN, LEAF_PREFIX, NODE_PREFIX, NODE_STATE, leaf_hash, node_hash
from packproof.tiles import fold_multiproof, multiproof_ranges

__all__ = [
    "EMPTY_ROOT",
    "HASH_LEN",
    "LEAF_PREFIX",
    "NODE_PREFIX",
    "inclusion_proof",
    "inclusion_proof_length",
    "inclusion_proofs",
    "leaf_hash",
    "multi_inclusion_proof",
    "node_hash",
    "root_from_multi_proof",
    "root_from_inclusion_proof",
    "root_from_leaf_hashes",
]

def _next_level(level: Sequence[bytes]) -> list[bytes]:
    """Hash adjacent pairs into the level above; an odd last node goes up unchanged.

    Promoting the odd node rather than duplicating it (as Bitcoin does) is what keeps the
    shape identical to RFC 6962's split at the largest power of two.
    """
    copy = NODE_STATE.copy
    up: list[bytes] = []
    append = up.append
    it = iter(level)
    for left, right in zip(it, it, strict=False):
        h = copy()
        h.update(left)
        h.update(right)
        append(h.digest())
    if len(level) % 2:
        append(level[-1])
    return up


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """The Merkle Tree Hash of a list of leaf hashes; EMPTY_ROOT for an empty list.

    Takes leaf hashes (not raw data) because the store keeps them and sealing should not
    re-hash every reading. The inputs are trusted to be 32-byte leaf hashes: checking them
    here would cost time on every seal, and a tree built from a malformed hash yields no
    proof that `root_from_inclusion_proof` accepts anyway.
    """
    if not hashes:
        return EMPTY_ROOT
    level: Sequence[bytes] = hashes
    while len(level) > 1:
        level = _next_level(level)
    return level[0]


def inclusion_proof(index: int, hashes: Sequence[bytes]) -> list[bytes]:
    """The audit path of leaf `index` among `hashes`, bottom-up, as RFC 6962 §2.1.1 orders it.

    Every sibling on the path is the root of a subtree covering other leaves, so a proof
    from bare leaf hashes costs about n hashes whatever the method; this one builds the
    levels once and picks the sibling at each, skipping levels where the node was promoted
    (it has no sibling there, and the RFC path has no entry for that level).
    """
    return inclusion_proofs([index], hashes)[0]


def inclusion_proofs(indices: Sequence[int], hashes: Sequence[bytes]) -> list[list[bytes]]:
    """The audit paths of several leaves of one tree, in the order of `indices`.

    The levels are built once for all of them, so a second path in the same tree (a proof
    bundle's reading and registry record often share a block) costs no hashing.
    """
    size = len(hashes)
    for index in indices:
        if not 0 <= index < size:
            raise ProofError(f"leaf index {index} out of range for tree size {size}")
    paths: list[list[bytes]] = [[] for _ in indices]
    at = list(indices)
    level: Sequence[bytes] = hashes
    while len(level) > 1:
        for k, i in enumerate(at):
            sibling = i ^ 1
            if sibling < len(level):
                paths[k].append(level[sibling])
            at[k] = i >> 1
        level = _next_level(level)
    return paths


def inclusion_proof_length(index: int, size: int) -> int:
    """How many hashes the audit path of `index` in a tree of `size` has (0 <= index < size).

    Below the highest bit where `index` and `size - 1` differ the leaf sits in a complete
    subtree, one sibling per level ("inner"); above it each 1 bit of the index is a left
    subtree the path must cross ("border"). This is the length RFC 9162 §2.1.3.2 consumes;
    anchor/consistency.py derives the length of a consistency proof from it.
    """
    inner = (index ^ (size - 1)).bit_length()
    border = (index >> inner).bit_count()
    return inner + border


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root that `proof` implies for leaf hash `leaf` at `index` in a tree of `size`.

    Raises ProofError, before any hashing, if the claim cannot be well formed: the index
    out of range, a hash that is not 32 bytes, or an audit path of the wrong length. The
    caller compares the result with a root it trusts (`packproof.anchor.proof` does).
    """
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} out of range for tree size {size}")
    if len(leaf) != HASH_LEN:
        raise ProofError(f"leaf hash has {len(leaf)} bytes, expected {HASH_LEN}")
    for k, p in enumerate(proof):
        if len(p) != HASH_LEN:
            raise ProofError(f"audit path hash {k} has {len(p)} bytes, expected {HASH_LEN}")
    want = inclusion_proof_length(index, size)
    if len(proof) != want:
        raise ProofError(f"audit path has {len(proof)} hashes, expected {want} for index {index} in tree size {size}")

    # RFC 9162 §2.1.3.2, steps 2-5. With the length checked above, neither `sn` test can
    # fire; they stay because they are the RFC's own guard and cost nothing.
    fn, sn = index, size - 1
    r = leaf
    sha = hashlib.sha256
    for p in proof:
        if sn == 0:
            raise ProofError(f"audit path is longer than tree size {size} allows for index {index}")
        if fn & 1 or fn == sn:
            r = sha(NODE_PREFIX + p + r).digest()
            if not fn & 1:
                # A right-edge node promoted past levels where it has no sibling.
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = sha(NODE_PREFIX + r + p).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"audit path is shorter than tree size {size} requires for index {index}")
    return r



# ---- multi-leaf inclusion (issue 18): one proof for every reading of a pack ---------------------


def multi_inclusion_proof(indices: Sequence[int], hashes: Sequence[bytes]) -> list[bytes]:
    """The multi-leaf proof of `indices` among `hashes`, from the leaves themselves: each subtree of
    `packproof.tiles.multiproof_ranges` as its Merkle Tree Hash. The plain reference the store's
    tile-based prover (`packproof.tiles.multi_inclusion_proof`) is tested against."""
    return [root_from_leaf_hashes(hashes[lo:hi]) for lo, hi in multiproof_ranges(indices, len(hashes))]


def root_from_multi_proof(size: int, leaves: Sequence[tuple[int, bytes]], proof: Sequence[bytes]) -> bytes:
    """The root that a multi-leaf `proof` implies for `leaves` ((log index, leaf hash), indices rising)
    in a tree of `size`: the walk of `packproof.tiles.fold_multiproof`, each subtree with no given leaf
    taken from `proof` in order, each subtree of given leaves only rebuilt from them. The caller
    compares the result with a root it trusts. ProofError, naming what is wrong, for indices out of
    order or range, a hash that is not 32 bytes, or a proof of the wrong length."""
    for k, p in enumerate(proof):
        if len(p) != HASH_LEN:
            raise ProofError(f"multi-proof hash {k} has {len(p)} bytes, expected {HASH_LEN}")
    for i, h in leaves:
        if len(h) != HASH_LEN:
            raise ProofError(f"leaf hash at index {i} has {len(h)} bytes, expected {HASH_LEN}")
    indices = [i for i, _ in leaves]
    hashes = [h for _, h in leaves]
    taken = 0

    def missing(lo: int, hi: int) -> bytes:
        nonlocal taken
        if taken == len(proof):
            raise ProofError(f"the multi-proof has {len(proof)} hashes, too few for these leaves in tree size {size}")
        taken += 1
        return proof[taken - 1]

    root = fold_multiproof(size, indices, lambda lo, hi, a, b: root_from_leaf_hashes(hashes[a:b]), missing)
    if taken != len(proof):
        raise ProofError(f"the multi-proof has {len(proof)} hashes, these leaves in tree size {size} need {taken}")
    return root
