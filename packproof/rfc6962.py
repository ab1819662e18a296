"""The RFC 6962 hasher: leaf and node hashes with their domain prefixes. Pure.

RFC 6962 §2.1 (restated unchanged in RFC 9162 §2.1.1):

* leaf hash  ``MTH({d}) = SHA-256(0x00 || d)``
* node hash  ``SHA-256(0x01 || left || right)``
* empty tree ``MTH({}) = SHA-256("")``

The distinct 0x00 / 0x01 prefixes are what stop a leaf being passed off as an inner node
(second-preimage attack), so they are never optional here.

This is the kernel's part of the Merkle tree (as transparency-dev/merkle keeps its hasher,
rfc6962/rfc6962.go, apart from its proofs): the store hashes every leaf it writes, the
ingestor every reading it accepts, and neither needs trees or proofs for it. Trees, roots and
inclusion proofs are anchor/merkle.py's.
"""

from __future__ import annotations

import hashlib

__all__ = ["EMPTY_ROOT", "HASH_LEN", "LEAF_PREFIX", "NODE_PREFIX", "NODE_STATE", "leaf_hash", "node_hash"]

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
HASH_LEN = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

_sha256 = hashlib.sha256
# A SHA-256 state that has already absorbed the node prefix: copying it and feeding the two
# children is measurably faster than building a 65-byte string for every inner node.
NODE_STATE = hashlib.sha256(NODE_PREFIX)


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data): the hash a leaf enters the tree with (RFC 6962 §2.1)."""
    return _sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right): an inner node over two child hashes (RFC 6962 §2.1)."""
    return _sha256(NODE_PREFIX + left + right).digest()
