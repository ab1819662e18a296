"""`verify_inclusion`: an inclusion proof checked against a root, for the Merkle tests.

Production code never needs it (the verifier in packproof.anchor.proof computes the root with
`root_from_inclusion_proof` and compares it with the signed block's own), so it lives here.
"""

from __future__ import annotations

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
