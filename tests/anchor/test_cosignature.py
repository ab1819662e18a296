"""C2SP cosignature/v1: keys, the signed message, verification, tallies; cross-checked with tlog-scales.

The signed message and key id are rebuilt here byte by byte from the text of c2sp.org/tlog-cosignature
(not from the module under test), and every cosignature is also verified by the `tlog-scales`
package from PyPI, code nobody here wrote.
"""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st
from tlog_scales import signing, tlog

from packproof.anchor.cosignature import (
    COSIGNATURE_V1,
    CosignerKey,
    WitnessKey,
    cosignature_time,
    cosigned_message,
    tally,
    verify_cosignature,
)
from packproof.anchor.merkle import leaf_hash
from packproof.anchor.note import NoteSignature, SignerKey, parse_note
from packproof.anchor.tlog_checkpoint import Checkpoint, sign_checkpoint
from packproof.errors import NoteError

ORIGIN = "packproof.example/0123456789abcdef"
LOG = SignerKey(ORIGIN, bytes(range(32)))
W1 = CosignerKey("witness.example/w1", bytes(range(1, 33)))
W2 = CosignerKey("witness.example/w2", bytes(range(2, 34)))
CP = Checkpoint(ORIGIN, 20852163, leaf_hash(b"hello world"))
T = 1679315147


def _cosigned(cp: Checkpoint, *cosigners: CosignerKey, at: int = T) -> bytes:
    return sign_checkpoint(cp, [LOG]) + b"".join(c.cosign(cp.body(), at).line().encode() for c in cosigners)


# ---- the format, from the spec's text ---------------------------------------------------------


def test_the_signed_message_is_the_spec_example() -> None:
    body = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    assert cosigned_message(body, 1679315147) == (
        b"cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\n"
        b"CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    )


def test_key_id_uses_type_0x04_and_the_vkey_round_trips() -> None:
    v = W1.verifier
    want = hashlib.sha256(b"witness.example/w1\n\x04" + v.public_key).digest()[:4]
    assert v.key_id == int.from_bytes(want, "big")
    text = str(v)
    tagged = base64.b64encode(b"\x04" + v.public_key).decode()
    assert text == f"witness.example/w1+{want.hex()}+{tagged}"
    assert WitnessKey.parse(text) == v


def test_a_cosignature_is_time_then_ed25519_over_the_message() -> None:
    sig = W1.cosign(CP.body(), T)
    assert sig.name == W1.name and sig.key_id == W1.verifier.key_id and len(sig.signature) == 72
    assert sig.signature[:8] == T.to_bytes(8, "big") and cosignature_time(sig) == T
    msg = b"cosignature/v1\ntime %d\n" % T + CP.body().encode()
    Ed25519PublicKey.from_public_bytes(W1.verifier.public_key).verify(sig.signature[8:], msg)  # raises if not
    assert verify_cosignature(W1.verifier, CP.body(), sig) == T


def test_signer_key_text_round_trips_and_never_prints_the_seed() -> None:
    text = W1.text()
    assert text.startswith(f"PRIVATE+KEY+witness.example/w1+{W1.verifier.key_id:08x}+")
    assert CosignerKey.parse(text) == W1
    assert base64.b64encode(W1.seed).decode() not in repr(W1) + str(W1)


# ---- cross-check: tlog-scales (PyPI) -----------------------------------------------------------


def test_tlog_scales_verifies_our_cosignatures_and_checkpoint() -> None:
    note = _cosigned(CP, W1, W2).decode()
    theirs = tlog.Checkpoint.from_text(note)
    for vkey in (str(LOG.verifier), str(W1.verifier), str(W2.verifier)):
        theirs.verify(signing.Vkey.from_string(vkey))  # raises if not
    assert signing.Vkey.from_string(str(W1.verifier)).key_id == W1.verifier.key_id
    # and tlog-scales refuses one of ours whose timestamp was changed (the time is signed too)
    sig = W1.cosign(CP.body(), T)
    forged = NoteSignature(sig.name, sig.key_id, (T + 1).to_bytes(8, "big") + sig.signature[8:])
    v = signing.Vkey.from_string(str(W1.verifier)).get_verifier()
    with pytest.raises(InvalidSignature):
        v.verify(forged.signature, theirs)


# ---- refusals -------------------------------------------------------------------------------


def test_every_single_byte_change_of_a_cosignature_is_refused() -> None:
    sig = W1.cosign(CP.body(), T)
    for i in range(len(sig.signature)):
        for bit in range(8):
            raw = bytearray(sig.signature)
            raw[i] ^= 1 << bit
            assert not W1.verifier.verifies(CP.body(), NoteSignature(sig.name, sig.key_id, bytes(raw))), (i, bit)


def test_a_cosignature_does_not_carry_to_another_checkpoint() -> None:
    sig = W1.cosign(CP.body(), T)
    for other in (Checkpoint(ORIGIN, CP.size + 1, CP.root), Checkpoint(ORIGIN, CP.size, leaf_hash(b"x")),
                  Checkpoint(ORIGIN + "x", CP.size, CP.root), Checkpoint(ORIGIN, CP.size, CP.root, ("ext",))):
        with pytest.raises(NoteError, match="does not verify") as err:
            verify_cosignature(W1.verifier, other.body(), sig)
        assert err.value.reason == "invalid-signature"


def test_a_plain_note_signature_is_not_a_cosignature() -> None:
    """Type 0x01 and 0x04 ids differ for one name and key, so neither reads as the other."""
    same = SignerKey(W1.name, W1.seed)
    assert same.verifier.key_id != W1.verifier.key_id
    plain = same.sign(CP.body().encode())
    with pytest.raises(NoteError) as err:
        verify_cosignature(W1.verifier, CP.body(), plain)
    assert err.value.reason == "unknown-key"


@pytest.mark.parametrize(("text", "reason"), [
    (str(LOG.verifier), "unknown-algorithm"),  # type 0x01
    (str(W1.verifier).replace("+", "+0", 1)[:-1], "bad-verifier-key"),
    (str(W1.verifier).split("+")[0] + "+00000000+" + str(W1.verifier).split("+", 2)[2], "key-id-mismatch"),
    ("bad name+00000000+BA==", "bad-key-name"),
])
def test_witness_keys_refused_for_their_reason(text: str, reason: str) -> None:
    with pytest.raises(NoteError) as err:
        WitnessKey.parse(text)
    assert err.value.reason == reason


def test_a_short_key_and_a_weak_key_are_refused() -> None:
    name = "w"
    short = b"\x04" + bytes(31)
    from packproof.anchor.note import key_id  # the id must be right for the length check to be reached

    with pytest.raises(NoteError) as err:
        WitnessKey.parse(f"{name}+{key_id(name, 4, short[1:]):08x}+{base64.b64encode(short).decode()}")
    assert err.value.reason == "bad-verifier-key"
    with pytest.raises(NoteError) as err:
        WitnessKey(name, bytes(32))
    assert err.value.reason == "bad-public-key"


@pytest.mark.parametrize("t", [-1, 2**63, True])
def test_timestamps_outside_the_spec_are_refused(t: int) -> None:
    with pytest.raises(NoteError) as err:
        cosigned_message(CP.body(), t)
    assert err.value.reason == "bad-timestamp"


def test_a_timestamp_above_2_63_never_verifies() -> None:
    sig = W1.cosign(CP.body(), T)
    big = NoteSignature(sig.name, sig.key_id, (2**63).to_bytes(8, "big") + sig.signature[8:])
    assert not W1.verifier.verifies(CP.body(), big)


# ---- tallies ---------------------------------------------------------------------------------


def test_tally_names_valid_invalid_and_missing_witnesses() -> None:
    w3 = CosignerKey("witness.example/w3", bytes(range(3, 35)))
    note = _cosigned(CP, W1).decode()
    bad = W2.cosign(Checkpoint(ORIGIN, 1, CP.root).body(), T).line()  # W2's line, over another checkpoint
    t = tally((note + bad).encode(), [W1.verifier, W2.verifier, w3.verifier, W1.verifier])
    assert t.valid == (str(W1.verifier),)
    assert t.invalid == (str(W2.verifier),)
    assert t.missing == (str(w3.verifier),)
    assert t.satisfied(1) and not t.satisfied(2)


def test_tally_ignores_the_logs_own_and_unknown_lines_and_takes_any_valid_line() -> None:
    older = W1.cosign(Checkpoint(ORIGIN, 1, CP.root).body(), T).line()
    note = sign_checkpoint(CP, [LOG]).decode() + older + W1.cosign(CP.body(), T + 5).line()
    t = tally(note.encode(), [W1.verifier])
    assert t.valid == (str(W1.verifier),) and not t.invalid and not t.missing


def test_tally_of_a_malformed_note_is_a_note_error() -> None:
    with pytest.raises(NoteError):
        tally(b"no signatures\n", [W1.verifier])


@settings(max_examples=50, deadline=None)
@given(size=st.integers(0, 2**64 - 1), root=st.binary(min_size=32, max_size=32), t=st.integers(0, 2**63 - 1),
       seed=st.binary(min_size=32, max_size=32))
def test_cosign_verify_round_trip(size: int, root: bytes, t: int, seed: bytes) -> None:
    w = CosignerKey("w.example/h", seed)
    cp = Checkpoint(ORIGIN, size, root)
    sig = w.cosign(cp.body(), t)
    assert verify_cosignature(w.verifier, cp.body(), sig) == t
    line = sig.line()
    parsed = parse_note(sign_checkpoint(cp, [LOG]) + line.encode())
    assert parsed.signatures[-1] == sig
    assert COSIGNATURE_V1 == 4
