"""RFC 6962 consistency proofs: known answers, a naive reference, and systematic corruptions.

Known-answer vectors (data only), from transparency-dev/merkle:

* `CONSISTENCY_PROOFS` below is the `consistencyProofs` table of `proof/verify_test.go`, over
  the 8-leaf tree of `testonly/constants.go` whose leaves and roots tests/anchor/test_merkle.py
  already carries (imported from there);
* tests/anchor/vectors/transparency-dev-merkle-consistency.json holds every probe of
  `testdata/consistency/` (happy paths and corruptions written by their `cmd/proofgen`), copied
  unchanged with the commit they were read at.

Two documented differences with those probes, both deliberate (see `DIFFERENT_VERDICT`):
this verifier refuses a root that is not 32 bytes even where nothing is hashed, and size 0
follows C2SP tlog-witness (the empty tree is consistent with every tree, with an empty proof
and the empty tree's root), where transparency-dev/merkle refuses size 0 outright.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from packproof.anchor.consistency import consistency_proof, consistency_proof_length, verify_consistency
from packproof.anchor.merkle import EMPTY_ROOT, leaf_hash, root_from_leaf_hashes
from packproof.errors import ProofError
from tests.anchor.merkle_check import reference_root
from tests.anchor.test_merkle import LEAVES, ROOTS

VECTORS = Path(__file__).parent / "vectors" / "transparency-dev-merkle-consistency.json"

# (size1, size2, proof) from transparency-dev/merkle proof/verify_test.go `consistencyProofs`.
CONSISTENCY_PROOFS: list[tuple[int, int, list[str]]] = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]



def _reference_subproof(m: int, hashes: list[bytes], b: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) exactly as RFC 6962 §2.1.2 writes it."""
    n = len(hashes)
    if m == n:
        return [] if b else [reference_root(hashes)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return [*_reference_subproof(m, hashes[:k], b), reference_root(hashes[k:])]
    return [*_reference_subproof(m - k, hashes[k:], False), reference_root(hashes[:k])]


def _reference_proof(m: int, hashes: list[bytes]) -> list[bytes]:
    """PROOF(m, D[n]) = SUBPROOF(m, D[n], true), for 0 < m < n (RFC 6962 §2.1.2)."""
    assert 0 < m < len(hashes)
    return _reference_subproof(m, hashes, True)


def _tree(n: int) -> list[bytes]:
    return [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


def _flip(h: bytes, byte: int = 0, bit: int = 4) -> bytes:
    return h[:byte] + bytes([h[byte] ^ (1 << bit)]) + h[byte + 1 :]


def _length(got: int, want: int, m: int, n: int) -> str:
    """The shape error for a proof of `got` hashes where sizes m and n want `want`."""
    return rf"^consistency proof has {got} hashes, expected {want} for sizes {m} and {n}$"


# ---- known answers ----------------------------------------------------------------------


@pytest.mark.parametrize(("m", "n", "path"), CONSISTENCY_PROOFS, ids=[f"{m}-to-{n}" for m, n, _ in CONSISTENCY_PROOFS])
def test_known_answer_consistency_proofs(m: int, n: int, path: list[str]) -> None:
    hashes = [leaf_hash(x) for x in LEAVES[:n]]
    assert [p.hex() for p in consistency_proof(m, hashes)] == path
    assert consistency_proof_length(m, n) == len(path)
    verify_consistency(m, n, [bytes.fromhex(p) for p in path], bytes.fromhex(ROOTS[m]), bytes.fromhex(ROOTS[n]))


def _probes() -> list[dict[str, Any]]:
    doc = json.loads(VECTORS.read_text())
    assert doc["source"] == "transparency-dev/merkle" and len(doc["probes"]) == 98
    return list(doc["probes"])


def _b64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


# file -> (our verdict, the message that says why), where it differs from the probe's wantErr.
DIFFERENT_VERDICT: dict[str, str] = {
    # A root of 12 bytes ("don't care 2") is never a SHA-256 root; their verifier returns root1
    # unhashed when the sizes are equal, so it never looks at it.
    "testdata/consistency/additional/sizes-are-equal-one-and-proof-is-empty.json": (
        r"^old root has 12 bytes, expected 32$"
    ),
}


@pytest.mark.parametrize("probe", _probes(), ids=lambda p: p["file"].removeprefix("testdata/consistency/"))
def test_transparency_dev_probes(probe: dict[str, Any]) -> None:
    m, n = probe["size1"], probe["size2"]
    claim = (m, n, [_b64(p) for p in probe["proof"] or []], _b64(probe["root1"]), _b64(probe["root2"]))
    if probe["file"] in DIFFERENT_VERDICT:
        assert probe["wantErr"] is False
        with pytest.raises(ProofError, match=DIFFERENT_VERDICT[probe["file"]]):
            verify_consistency(*claim)
    elif probe["wantErr"]:
        with pytest.raises(ProofError):
            verify_consistency(*claim)
    else:
        verify_consistency(*claim)


def test_the_happy_probes_are_the_proofs_we_build() -> None:
    """Their happy paths over the 8-leaf tree are exactly the proofs consistency_proof builds."""
    hashes = [leaf_hash(x) for x in LEAVES]
    happy = [p for p in _probes() if p["desc"] == "happy path"]
    assert {(p["size1"], p["size2"]) for p in happy} == {(1, 1), (1, 8), (6, 8), (2, 5), (6, 7)}
    for p in happy:
        m, n = p["size1"], p["size2"]
        assert [base64.b64encode(h).decode() for h in consistency_proof(m, hashes[:n])] == (p["proof"] or [])
        assert _b64(p["root1"]).hex() == ROOTS[m] and _b64(p["root2"]).hex() == ROOTS[n]


def test_size_zero_probes_are_refused_for_their_own_faults() -> None:
    """Every probe with size1 = 0 is refused here too, but for what is wrong with it under the C2SP
    rule (a non-empty proof, a root that is not 32 bytes or not the empty tree's), never for size 0."""
    zero = [p for p in _probes() if p["size1"] == 0]
    assert len(zero) >= 8
    faults = r"^(old|new) root has \d+ bytes|^consistency proof has [1-9]\d* hashes, expected 0|^old root .* differ"
    for p in zero:
        assert p["wantErr"]
        with pytest.raises(ProofError, match=faults):
            verify_consistency(0, p["size2"], [_b64(h) for h in p["proof"] or []], _b64(p["root1"]), _b64(p["root2"]))


# ---- cross-check against the naive reference ---------------------------------------------


@pytest.mark.parametrize("n", range(0, 65))
def test_fast_proofs_match_the_reference_and_verify(n: int) -> None:
    hashes = _tree(n)
    roots = [root_from_leaf_hashes(hashes[:m]) for m in range(n + 1)]
    assert roots[n] == reference_root(hashes)
    for m in range(0, n + 1):
        proof = consistency_proof(m, hashes)
        if 0 < m < n:
            assert proof == _reference_proof(m, hashes), f"proof {m} -> {n}"
        else:
            assert proof == []
        assert len(proof) == consistency_proof_length(m, n)
        verify_consistency(m, n, proof, roots[m], roots[n])


def test_consistency_proof_refuses_sizes_outside_the_tree() -> None:
    with pytest.raises(ProofError, match=r"^old size 6 out of range for tree size 5$"):
        consistency_proof(6, _tree(5))
    with pytest.raises(ProofError, match=r"^old size -1 out of range for tree size 5$"):
        consistency_proof(-1, _tree(5))


# ---- the edges: size 0 and equal sizes -----------------------------------------------------


def test_the_empty_tree_is_consistent_with_every_tree() -> None:
    for n in (0, 1, 2, 7, 64):
        verify_consistency(0, n, [], EMPTY_ROOT, root_from_leaf_hashes(_tree(n)))


def test_size_zero_needs_an_empty_proof_and_the_empty_root() -> None:
    hashes = _tree(8)
    root = root_from_leaf_hashes(hashes)
    with pytest.raises(ProofError, match=_length(1, 0, 0, 8)):
        verify_consistency(0, 8, [EMPTY_ROOT], EMPTY_ROOT, root)
    with pytest.raises(ProofError, match=r"^old root [0-9a-f]{64} of size 0 is not the empty tree's root e3b0c442"):
        verify_consistency(0, 8, [], root, root)
    with pytest.raises(ProofError, match=r"^old root [0-9a-f]{64} of size 0 is not the empty tree's root"):
        verify_consistency(0, 0, [], b"\x00" * 32, b"\x00" * 32)
    with pytest.raises(ProofError, match=r"^old root .* and new root .* differ at the same size 0$"):
        verify_consistency(0, 0, [], EMPTY_ROOT, root)


def test_equal_sizes_need_equal_roots_and_no_proof() -> None:
    hashes = _tree(5)
    root = root_from_leaf_hashes(hashes)
    verify_consistency(5, 5, [], root, root)
    with pytest.raises(ProofError) as err:
        verify_consistency(5, 5, [], root, _flip(root))
    assert str(err.value) == f"old root {root.hex()} and new root {_flip(root).hex()} differ at the same size 5"
    assert err.value.expected == root.hex() and err.value.got == _flip(root).hex()
    with pytest.raises(ProofError, match=_length(1, 0, 5, 5)):
        verify_consistency(5, 5, [root], root, root)


def test_a_log_never_shrinks() -> None:
    root = root_from_leaf_hashes(_tree(4))
    with pytest.raises(ProofError, match=r"^old size 5 is larger than new size 4: a log never shrinks$"):
        verify_consistency(5, 4, [], root, root)
    with pytest.raises(ProofError, match=r"^tree sizes must not be negative \(old size -1, new size 4\)$"):
        verify_consistency(-1, 4, [], root, root)


# ---- systematic corruptions of one good proof ------------------------------------------------

GOOD_M, GOOD_N = 6, 13  # a 4-hash proof: the seed node, a promoted right edge, left and right siblings

Claim = tuple[int, int, list[bytes], bytes, bytes]
Corruption = Callable[[int, int, list[bytes], bytes, bytes], Claim]

_OLD_MISMATCH = r"^computed old root [0-9a-f]{64} does not match expected old root [0-9a-f]{64} for sizes \d+ and \d+$"
_NEW_MISMATCH = r"^computed new root [0-9a-f]{64} does not match expected new root [0-9a-f]{64} for sizes \d+ and \d+$"
_EITHER_MISMATCH = f"({_OLD_MISMATCH})|({_NEW_MISMATCH})"


# name -> (how to corrupt (m, n, proof, old root, new root), the message it must fail with)
CORRUPTIONS: dict[str, tuple[Corruption, str]] = {
    "m + 1": (lambda m, n, p, o, r: (m + 1, n, p, o, r), _length(4, 5, 7, 13)),
    "m - 1": (lambda m, n, p, o, r: (m - 1, n, p, o, r), _length(4, 5, 5, 13)),
    "m ^ 2": (lambda m, n, p, o, r: (m ^ 2, n, p, o, r), _length(4, 2, 4, 13)),
    "m = 0": (lambda m, n, p, o, r: (0, n, p, o, r), _length(4, 0, 0, 13)),
    "m = n": (lambda m, n, p, o, r: (n, n, p, o, r), _length(4, 0, 13, 13)),
    "n + 4": (lambda m, n, p, o, r: (m, n + 4, p, o, r), _length(4, 5, 6, 17)),
    "n - 6": (lambda m, n, p, o, r: (m, n - 6, p, o, r), _length(4, 3, 6, 7)),
    "n x 2": (lambda m, n, p, o, r: (m, n * 2, p, o, r), _length(4, 5, 6, 26)),
    "n / 2": (lambda m, n, p, o, r: (m, n // 2, p, o, r), _length(4, 0, 6, 6)),
    "n < m": (
        lambda m, n, p, o, r: (m, m - 1, p, o, r),
        r"^old size 6 is larger than new size 5: a log never shrinks$",
    ),
    "swapped roots": (lambda m, n, p, o, r: (m, n, p, r, o), _OLD_MISMATCH),
    "wrong old root": (lambda m, n, p, o, r: (m, n, p, _flip(o, 5), r), _OLD_MISMATCH),
    "wrong new root": (lambda m, n, p, o, r: (m, n, p, o, _flip(r, 31, 0)), _NEW_MISMATCH),
    "empty root as old root": (lambda m, n, p, o, r: (m, n, p, EMPTY_ROOT, r), _OLD_MISMATCH),
    "9-byte old root": (lambda m, n, p, o, r: (m, n, p, b"WrongRoot", r), r"^old root has 9 bytes, expected 32$"),
    "9-byte new root": (lambda m, n, p, o, r: (m, n, p, o, b"WrongRoot"), r"^new root has 9 bytes, expected 32$"),
    "flipped bit in proof[0]": (lambda m, n, p, o, r: (m, n, [_flip(p[0]), *p[1:]], o, r), _EITHER_MISMATCH),
    "flipped bit in proof[1]": (lambda m, n, p, o, r: (m, n, [p[0], _flip(p[1]), *p[2:]], o, r), _EITHER_MISMATCH),
    "flipped bit in proof[2]": (lambda m, n, p, o, r: (m, n, [*p[:2], _flip(p[2]), p[3]], o, r), _EITHER_MISMATCH),
    "flipped bit in proof[3]": (lambda m, n, p, o, r: (m, n, [*p[:3], _flip(p[3])], o, r), _EITHER_MISMATCH),
    "proof hashes swapped": (lambda m, n, p, o, r: (m, n, [p[1], p[0], *p[2:]], o, r), _EITHER_MISMATCH),
    "empty proof": (lambda m, n, p, o, r: (m, n, [], o, r), _length(0, 4, 6, 13)),
    "one hash too many (trailing)": (
        lambda m, n, p, o, r: (m, n, [*p, r], o, r),
        _length(5, 4, 6, 13),
    ),
    "one hash too many (preceding)": (
        lambda m, n, p, o, r: (m, n, [o, *p], o, r),
        _length(5, 4, 6, 13),
    ),
    "one hash too few": (
        lambda m, n, p, o, r: (m, n, p[:-1], o, r),
        _length(3, 4, 6, 13),
    ),
    "first hash dropped": (
        lambda m, n, p, o, r: (m, n, p[1:], o, r),
        _length(3, 4, 6, 13),
    ),
    "31-byte proof hash": (
        lambda m, n, p, o, r: (m, n, [p[0], p[1][:31], *p[2:]], o, r),
        r"^consistency proof hash 1 has 31 bytes, expected 32$",
    ),
    "empty proof hash": (
        lambda m, n, p, o, r: (m, n, [*p[:3], b""], o, r),
        r"^consistency proof hash 3 has 0 bytes, expected 32$",
    ),
}


def _good() -> tuple[bytes, bytes, list[bytes]]:
    hashes = _tree(GOOD_N)
    return root_from_leaf_hashes(hashes[:GOOD_M]), root_from_leaf_hashes(hashes), consistency_proof(GOOD_M, hashes)


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_each_corruption_of_a_good_proof_fails(name: str) -> None:
    old, new, proof = _good()
    assert len(proof) == 4
    verify_consistency(GOOD_M, GOOD_N, proof, old, new)  # the uncorrupted claim holds
    corrupt, message = CORRUPTIONS[name]
    with pytest.raises(ProofError, match=message):
        verify_consistency(*corrupt(GOOD_M, GOOD_N, list(proof), old, new))


def test_every_single_bit_flip_in_the_proof_fails() -> None:
    old, new, proof = _good()
    for k in range(len(proof)):
        for bit in range(256):
            bad = [*proof[:k], _flip(proof[k], bit // 8, bit % 8), *proof[k + 1 :]]
            with pytest.raises(ProofError, match=_EITHER_MISMATCH):
                verify_consistency(GOOD_M, GOOD_N, bad, old, new)


def test_the_new_size_is_not_bound_by_the_proof_alone() -> None:
    """6 -> 13's proof also shows 6 -> 9 .. 16 for the same two roots: every such tree splits 8 | rest,
    and the last proof hash is just "the right subtree's root". RFC 6962 roots do not commit to the
    size, so a size must come from the same signed checkpoint as its root (as test_merkle pins for
    inclusion proofs). A size off by one is refused where it changes the proof's shape.
    """
    old, new, proof = _good()
    for n in range(9, 17):
        verify_consistency(GOOD_M, n, proof, old, new)
    hashes = _tree(14)
    proof = consistency_proof(13, hashes)
    old, new = root_from_leaf_hashes(hashes[:13]), root_from_leaf_hashes(hashes)
    verify_consistency(13, 14, proof, old, new)
    with pytest.raises(ProofError, match=_length(4, 5, 13, 15)):
        verify_consistency(13, 15, proof, old, new)
    with pytest.raises(ProofError, match=_length(4, 0, 13, 13)):
        verify_consistency(13, 13, proof, old, new)


def test_a_mismatch_carries_both_roots_in_hex() -> None:
    old, new, proof = _good()
    bad_new = _flip(new)
    with pytest.raises(ProofError) as err:
        verify_consistency(GOOD_M, GOOD_N, proof, old, bad_new)
    assert err.value.expected == bad_new.hex() and err.value.got == new.hex()
    assert str(err.value) == (
        f"computed new root {new.hex()} does not match expected new root {bad_new.hex()} for sizes 6 and 13"
    )


def test_shape_errors_carry_no_roots() -> None:
    old, new, proof = _good()
    with pytest.raises(ProofError) as err:
        verify_consistency(GOOD_M, GOOD_N, proof[:-1], old, new)
    assert err.value.expected is None and err.value.got is None


def test_a_rewritten_leaf_breaks_consistency() -> None:
    """The split view a witness exists to catch: a tree of size n that rewrote leaf 3 of the first
    m cannot be shown consistent with the old root, whatever proof it builds from its own leaves."""
    hashes = _tree(GOOD_N)
    old = root_from_leaf_hashes(hashes[:GOOD_M])
    forked = [*hashes[:3], leaf_hash(b"rewritten"), *hashes[4:]]
    proof = consistency_proof(GOOD_M, forked)
    with pytest.raises(ProofError, match=_OLD_MISMATCH):
        verify_consistency(GOOD_M, GOOD_N, proof, old, root_from_leaf_hashes(forked))


# ---- properties ---------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=24), min_size=1, max_size=300), st.data())
def test_build_prove_verify_round_trip(leaves: list[bytes], data: st.DataObject) -> None:
    hashes = [leaf_hash(x) for x in leaves]
    n = data.draw(st.integers(1, len(hashes)), label="n")
    m = data.draw(st.integers(0, n), label="m")
    old, new = root_from_leaf_hashes(hashes[:m]), root_from_leaf_hashes(hashes[:n])
    proof = consistency_proof(m, hashes[:n])
    verify_consistency(m, n, proof, old, new)
    # The proof must not vouch for an old tree that differs in any leaf.
    if m > 0:
        i = data.draw(st.integers(0, m - 1), label="changed leaf")
        other = [*hashes[:i], leaf_hash(b"\xff" + leaves[i]), *hashes[i + 1 : m]]
        with pytest.raises(ProofError):
            verify_consistency(m, n, proof, root_from_leaf_hashes(other), new)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 2**40), st.data())
def test_expected_length_is_what_the_rfc_loop_consumes(n: int, data: st.DataObject) -> None:
    """A proof of the length the shape check wants runs RFC 9162 §2.1.4.2 to its end: it fails on a
    root, never on the `sn` guards; one hash more or less fails the shape check."""
    m = data.draw(st.integers(1, n), label="m")
    want = consistency_proof_length(m, n)
    zero = b"\x00" * 32
    if m == n:
        assert want == 0
        return
    with pytest.raises(ProofError, match=_EITHER_MISMATCH):
        verify_consistency(m, n, [zero] * want, b"\x01" * 32, zero)
    with pytest.raises(ProofError, match=r"^consistency proof has"):
        verify_consistency(m, n, [zero] * (want + 1), b"\x01" * 32, zero)
