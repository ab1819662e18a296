"""RFC 6962 consistency proofs between two sizes of one append-only tree. Pure, no I/O.

A consistency proof shows that the tree of size m (root `old_root`) is a prefix of the tree of
size n (root `new_root`): every leaf the old root committed to is still there, in the same
place, and the log only appended after it. It is what lets a witness or a monitor accept a new
checkpoint only if it extends every one it saw before (issue 16); it is a building block, not
yet wired into the sealer, the ledger, the API or the CLI.

Definitions (RFC 6962 §2.1.2, restated in RFC 9162 §2.1.4.1), over the leaf hashes D[n]:

* ``PROOF(m, D[n]) = SUBPROOF(m, D[n], true)`` for 0 < m < n;
* ``SUBPROOF(m, D[m], true) = {}`` and ``SUBPROOF(m, D[m], false) = {MTH(D[m])}``;
* for m < n, with k the largest power of two smaller than n: if m <= k,
  ``SUBPROOF(m, D[0:k], b) : MTH(D[k:n])``, else ``SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k])``.

The flag b says whether the subtree being descended into is still the old tree's own root
(which the verifier already holds, so it is left out).

Sizes at the edge, decided here once:

* m == n: the proof is empty and the two roots must be equal (a tree is consistent only with
  itself at its own size);
* m == 0: the proof is empty and the old root must be the empty tree's root, SHA-256("")
  (RFC 6962 §2.1). The empty tree is a prefix of every tree, so nothing is left to prove:
  C2SP tlog-witness says exactly this ("If the old size is zero, the consistency proof MUST be
  empty, because the empty tree is consistent with any tree") and accepts `old 0` with an
  empty proof. transparency-dev/merkle's verifier refuses size 0 instead ("consistency proof
  from empty tree is meaningless"); a witness must follow the C2SP rule.

Verification follows RFC 9162 §2.1.4.2 step by step, but only after checking the shape of the
claim (0 <= m <= n, every hash 32 bytes, the proof exactly as long as m and n require), so a
malformed proof fails with a message naming what is wrong, before any hashing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from packproof.anchor.merkle import EMPTY_ROOT, HASH_LEN, NODE_PREFIX, inclusion_proof_length, root_from_leaf_hashes
from packproof.errors import ProofError

__all__ = ["consistency_proof", "consistency_proof_length", "verify_consistency"]


def _split(size: int) -> int:
    """k, the largest power of two smaller than `size` (size > 1): where RFC 6962 §2.1 splits a tree."""
    return 1 << ((size - 1).bit_length() - 1)


def consistency_proof(m: int, hashes: Sequence[bytes]) -> list[bytes]:
    """PROOF(m, D[n]) of RFC 6962 §2.1.2 for the tree whose leaf hashes are `hashes` (n = len).

    Empty for m == 0 and m == n (see the module's note on the edges); ProofError for m outside
    0..n. The recursion of SUBPROOF is walked top-down as a loop: each step keeps the subtree
    that still holds the old tree's edge and records the root of the other half. SUBPROOF
    appends after recursing, so the nodes are collected top-down and returned reversed
    (deepest first, as the RFC orders them). The recorded subtrees are disjoint, so the proof
    costs at most n - 1 hashes.
    """
    n = len(hashes)
    if not 0 <= m <= n:
        raise ProofError(f"old size {m} out of range for tree size {n}")
    if m in (0, n):
        return []
    top_down: list[bytes] = []
    lo, hi = 0, n  # the subtree D[lo:hi] being descended into
    own_root = True  # SUBPROOF's b: is D[lo:hi] the old tree's root itself?
    while hi != m:
        k = _split(hi - lo)
        if m - lo <= k:
            top_down.append(root_from_leaf_hashes(hashes[lo + k : hi]))
            hi = lo + k
        else:
            top_down.append(root_from_leaf_hashes(hashes[lo : lo + k]))
            lo += k
            own_root = False
    if not own_root:
        top_down.append(root_from_leaf_hashes(hashes[lo:hi]))
    top_down.reverse()
    return top_down


def consistency_proof_length(m: int, n: int) -> int:
    """How many hashes PROOF(m, D[n]) has; 0 when m == 0 or m == n (0 <= m <= n).

    RFC 9162 §2.1.4.2 starts from the old tree's last leaf, m - 1, skips the levels where it is
    a right child (the trailing 1 bits of m - 1, as many as m has trailing zeros: there the
    subtree ending at leaf m - 1 is complete and one node stands for it), and then climbs like
    an inclusion proof of that node. The proof carries that node itself as its first hash
    unless it is the whole old tree (m a power of two), which the verifier already holds.
    """
    if m in (0, n):
        return 0
    complete = (m & -m).bit_length() - 1  # levels below the node that ends at leaf m - 1
    seed = 0 if m & (m - 1) == 0 else 1
    return seed + inclusion_proof_length(m - 1, n) - complete


def verify_consistency(m: int, n: int, proof: Sequence[bytes], old_root: bytes, new_root: bytes) -> None:
    """Return if `proof` shows the tree of size m with `old_root` is a prefix of size n with `new_root`.

    Raises ProofError otherwise: before any hashing if the claim cannot be well formed (sizes
    out of order, a hash that is not 32 bytes, a proof of the wrong length), and after
    RFC 9162 §2.1.4.2 if a computed root differs from the one given; such a mismatch carries
    both roots in hex (`expected` = the root given, `got` = the one the proof implies).
    """
    if m < 0 or n < 0:
        raise ProofError(f"tree sizes must not be negative (old size {m}, new size {n})")
    if m > n:
        raise ProofError(f"old size {m} is larger than new size {n}: a log never shrinks")
    for label, root in (("old", old_root), ("new", new_root)):
        if len(root) != HASH_LEN:
            raise ProofError(f"{label} root has {len(root)} bytes, expected {HASH_LEN}")
    for k, p in enumerate(proof):
        if len(p) != HASH_LEN:
            raise ProofError(f"consistency proof hash {k} has {len(p)} bytes, expected {HASH_LEN}")
    want = consistency_proof_length(m, n)
    if len(proof) != want:
        raise ProofError(f"consistency proof has {len(proof)} hashes, expected {want} for sizes {m} and {n}")

    if m == 0 and old_root != EMPTY_ROOT:
        raise ProofError(
            f"old root {old_root.hex()} of size 0 is not the empty tree's root {EMPTY_ROOT.hex()}",
            expected=EMPTY_ROOT.hex(),
            got=old_root.hex(),
        )
    if m == n:
        if old_root != new_root:
            raise ProofError(
                f"old root {old_root.hex()} and new root {new_root.hex()} differ at the same size {n}",
                expected=old_root.hex(),
                got=new_root.hex(),
            )
        return
    if m == 0:
        return

    # RFC 9162 §2.1.4.2, steps 1-7, names as there (first = m, second = n). With the length
    # checked above, neither the empty-path test nor the `sn` test can fire; they stay because
    # they are the RFC's own guards and cost nothing.
    path = list(proof)
    if not path:  # step 1
        raise ProofError(f"consistency proof is empty for sizes {m} and {n}")
    if m & (m - 1) == 0:  # step 2: first is an exact power of 2
        path.insert(0, old_root)
    fn, sn = m - 1, n - 1  # step 3
    while fn & 1:  # step 4
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]  # step 5
    sha = hashlib.sha256
    for c in path[1:]:  # step 6
        if sn == 0:
            raise ProofError(f"consistency proof is longer than sizes {m} and {n} allow")
        if fn & 1 or fn == sn:
            fr = sha(NODE_PREFIX + c + fr).digest()
            sr = sha(NODE_PREFIX + c + sr).digest()
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = sha(NODE_PREFIX + sr + c).digest()
        fn >>= 1
        sn >>= 1
    # step 7
    if sn != 0:
        raise ProofError(f"consistency proof is shorter than sizes {m} and {n} require")
    if fr != old_root:
        raise ProofError(
            f"computed old root {fr.hex()} does not match expected old root {old_root.hex()} for sizes {m} and {n}",
            expected=old_root.hex(),
            got=fr.hex(),
        )
    if sr != new_root:
        raise ProofError(
            f"computed new root {sr.hex()} does not match expected new root {new_root.hex()} for sizes {m} and {n}",
            expected=new_root.hex(),
            got=sr.hex(),
        )
