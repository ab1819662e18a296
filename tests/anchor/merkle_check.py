"""For the Merkle tests: `verify_inclusion` (an inclusion proof checked against a root) and
`reference_root`, the naive RFC 6962 tree the fast code is cross-checked against.

Production code never needs `verify_inclusion` (the verifier in packproof.anchor.proof computes the root with
`root_from_inclusion_proof` and compares it with the signed block's own), so it lives here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from packproof.anchor.merkle import root_from_inclusion_proof
from packproof.errors import ProofError


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> None:
    """Return if `proof` shows leaf hash `leaf` at `index` in the tree of `size` with `root`.

    Raises ProofError otherwise; on a root mismatch it carries both roots in hex
    (`expected` = the trusted root, `got` = the one the proof implies) so a report can
    show them side by side.
    """
    got = root_from_inclusion_proof(index, size, leaf, proof)
    if got != root:
        raise ProofError(
            f"computed root {got.hex()} does not match expected root {root.hex()} "
            f"for leaf index {index} in tree size {size}",
            expected=root.hex(),
            got=got.hex(),
        )


def reference_root(hashes: list[bytes]) -> bytes:
    """MTH exactly as RFC 6962 §2.1 writes it: recurse on a split at k, the largest power of two < n."""
    n = len(hashes)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashes[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + reference_root(hashes[:k]) + reference_root(hashes[k:])).digest()
