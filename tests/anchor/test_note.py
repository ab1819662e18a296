"""C2SP signed notes: known answers from code nobody here wrote, every malformation named, round trips.

Known-answer data (copied as data, never code):

* golang/mod `sumdb/note/note_test.go` (golang.org/x/mod/sumdb/note, the package C2SP
  signed-note grew out of): the PeterNeumann signer and verifier keys, the EnochRoot verifier
  key, the two-line text and both signature lines, and the malformed notes of its TestOpen;
* C2SP/C2SP `signed-note.md` ("Example"): the example.com/foo verifier key and its note;
* C2SP/C2SP `tlog-checkpoint.md`: the example.com/behind-the-sofa checkpoint (its key is not
  published, so it serves as a note by an unknown key).
"""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from packproof.anchor.note import (
    ED25519,
    MAX_SIGNATURES,
    NoteSignature,
    SignerKey,
    VerifierKey,
    key_id,
    open_note,
    parse_note,
    sign_note,
    valid_key_name,
)
from packproof.errors import NoteError

# golang/mod sumdb/note/note_test.go
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
PETER_SIG = (
    "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
ENOCH_SIG = (
    "\u2014 EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"
)
PETER_NOTE = (TEXT + "\n" + PETER_SIG).encode()

# C2SP signed-note.md, "Example"
FOO_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
FOO_NOTE = (
    "This is an example message.\n\n"
    "\u2014 example.com/foo "
    "Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
).encode()

# C2SP tlog-checkpoint.md (its verifier key is not published)
SOFA_NOTE = (
    "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n"
    "\u2014 example.com/behind-the-sofa "
    "Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
).encode()


def _peter() -> VerifierKey:
    return VerifierKey.parse(PETER_VKEY)


def _enoch() -> VerifierKey:
    return VerifierKey.parse(ENOCH_VKEY)


def _sig(line: str) -> NoteSignature:
    return parse_note((TEXT + "\n" + line).encode()).signatures[0]


# ---- known answers -----------------------------------------------------------------------


def test_the_peter_neumann_note_verifies() -> None:
    opened = open_note(PETER_NOTE, [_peter()])
    assert opened.text == TEXT
    assert [(s.name, s.key_id) for s in opened.verified] == [("PeterNeumann", 0xC74F20A3)]
    assert opened.unverified == ()


def test_signing_reproduces_the_signature_line() -> None:
    """Ed25519 is deterministic: the Go test's signer key gives the Go test's note, byte for byte."""
    signer = SignerKey.parse(PETER_SKEY)
    assert sign_note(TEXT, [signer]) == PETER_NOTE
    assert signer.key_id == 0xC74F20A3
    assert str(signer.verifier) == PETER_VKEY
    assert signer.verifier == _peter()
    assert signer.text() == PETER_SKEY


def test_key_ids_and_verifier_keys_are_derived_as_the_spec_says() -> None:
    peter = _peter()
    assert key_id("PeterNeumann", ED25519, peter.public_key) == 0xC74F20A3 == peter.key_id
    assert str(peter) == PETER_VKEY
    assert str(_enoch()) == ENOCH_VKEY and _enoch().key_id == 0xAF0CFE78
    assert str(VerifierKey("PeterNeumann", peter.public_key)) == PETER_VKEY


def test_the_c2sp_example_note_verifies() -> None:
    opened = open_note(FOO_NOTE, [VerifierKey.parse(FOO_VKEY)])
    assert opened.text == "This is an example message.\n"
    assert [s.name for s in opened.verified] == ["example.com/foo"]


def test_the_c2sp_checkpoint_example_parses_and_its_unknown_key_is_named() -> None:
    note = parse_note(SOFA_NOTE)
    assert note.text == "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    assert [(s.name, s.key_id, len(s.signature)) for s in note.signatures] == [
        ("example.com/behind-the-sofa", 0x033DE0AE, 64)
    ]
    with pytest.raises(
        NoteError, match=r"^note has no signature by a known key \(signed by example.com/behind-the-sofa\+033de0ae\)$"
    ) as err:
        open_note(SOFA_NOTE, [_peter(), VerifierKey.parse(FOO_VKEY)])
    assert err.value.reason == "unknown-key"


def test_every_single_byte_change_of_the_note_is_refused() -> None:
    """All 255 other values at each of the note's bytes: none opens (53,550 variants)."""
    known = [_peter()]
    reasons: set[str] = set()
    for i in range(len(PETER_NOTE)):
        for value in range(256):
            if value == PETER_NOTE[i]:
                continue
            changed = PETER_NOTE[:i] + bytes([value]) + PETER_NOTE[i + 1 :]
            with pytest.raises(NoteError) as err:
                open_note(changed, known)
            reasons.add(err.value.reason)
    assert {"not-utf8", "control-character", "invalid-signature", "unknown-key", "bad-base64"} <= reasons


def test_a_changed_text_with_the_same_signature_is_refused_as_invalid() -> None:
    with pytest.raises(NoteError, match=r"^signature by known key PeterNeumann\+c74f20a3 does not verify$") as err:
        open_note(PETER_NOTE.replace(b"problem,", b"problem;"), [_peter()])
    assert err.value.reason == "invalid-signature"


# ---- Go's TestOpen, case by case ------------------------------------------------------------


def test_one_signature_verified_one_kept_unverified() -> None:
    opened = open_note((TEXT + "\n" + PETER_SIG + ENOCH_SIG).encode(), [_peter()])
    assert opened.verified == (_sig(PETER_SIG),)
    assert opened.unverified == (_sig(ENOCH_SIG),)


def test_both_signatures_verified() -> None:
    opened = open_note((TEXT + "\n" + PETER_SIG + ENOCH_SIG).encode(), [_peter(), _enoch()])
    assert opened.verified == (_sig(PETER_SIG), _sig(ENOCH_SIG))
    assert opened.unverified == ()


def test_no_known_key_is_refused_naming_the_signers() -> None:
    with pytest.raises(NoteError) as err:
        open_note((TEXT + "\n" + PETER_SIG + ENOCH_SIG).encode(), [])
    assert err.value.reason == "unknown-key"
    assert (
        str(err.value) == "note has no signature by a known key (signed by PeterNeumann+c74f20a3, EnochRoot+af0cfe78)"
    )


def test_a_key_listed_twice_is_ambiguous_once_a_signature_names_it() -> None:
    with pytest.raises(NoteError, match=r"^two known keys are named EnochRoot\+af0cfe78$") as err:
        open_note((TEXT + "\n" + ENOCH_SIG).encode(), [_enoch(), _peter(), _enoch()])
    assert err.value.reason == "ambiguous-key"
    open_note(PETER_NOTE, [_enoch(), _peter(), _enoch()])  # unused, so harmless


def test_too_many_signatures() -> None:
    assert len(parse_note((TEXT + "\n" + PETER_SIG * MAX_SIGNATURES).encode()).signatures) == 100
    open_note((TEXT + "\n" + PETER_SIG * MAX_SIGNATURES).encode(), [_peter()])
    for known in ([_peter()], []):
        with pytest.raises(NoteError, match=r"^note has 101 signature lines, at most 100 are read$") as err:
            open_note((TEXT + "\n" + PETER_SIG * 101).encode(), known)
        assert err.value.reason == "too-many-signatures"


def test_a_known_key_whose_signature_fails_rejects_the_whole_note() -> None:
    bad = PETER_SIG[:60] + "ABCD" + PETER_SIG[60:]
    with pytest.raises(NoteError, match=r"^signature by known key PeterNeumann\+c74f20a3 does not verify$") as err:
        open_note((TEXT + "\n" + ENOCH_SIG + bad).encode(), [_peter(), _enoch()])
    assert err.value.reason == "invalid-signature"
    # As in Go, a known key counts once: its second signature line is dropped unchecked.
    opened = open_note((TEXT + "\n" + PETER_SIG + bad).encode(), [_peter()])
    assert opened.verified == (_sig(PETER_SIG),)


def test_repeated_signatures_count_once() -> None:
    enoch_abcd = ENOCH_SIG[:60] + "ABCD" + ENOCH_SIG[60:]
    msg = TEXT + "\n" + PETER_SIG + PETER_SIG + ENOCH_SIG + ENOCH_SIG + enoch_abcd
    opened = open_note(msg.encode(), [_peter()])
    assert opened.verified == (_sig(PETER_SIG),)
    assert opened.unverified == (_sig(ENOCH_SIG), _sig(enoch_abcd))


# The malformed notes of Go's TestOpen, with the reason each is refused for here.
MALFORMED: list[tuple[str, bytes, str]] = [
    ("text only", TEXT.encode(), "no-signature-block"),
    ("text and blank line", (TEXT + "\n").encode(), "no-signatures"),
    ("last line unterminated", (TEXT + "\n" + PETER_SIG[:-1]).encode(), "unterminated"),
    ("control character", ("\x01" + TEXT + "\n" + PETER_SIG).encode(), "control-character"),
    ("not UTF-8", b"\xff" + (TEXT + "\n" + PETER_SIG).encode(), "not-utf8"),
    ("space in name", (TEXT + "\n" + PETER_SIG.replace("PeterNeumann", "Bad Name")).encode(), "bad-base64"),
    ("unexpected line", (TEXT + "\n" + PETER_SIG + "Unexpected line.\n").encode(), "bad-signature-line"),
    # and more of the same kinds, ours
    ("plus in name", (TEXT + "\n" + PETER_SIG.replace("PeterNeumann", "Peter+Neumann")).encode(), "bad-key-name"),
    ("no-break space in name", (TEXT + "\n" + PETER_SIG.replace("Peter", "Peter\u00a0")).encode(), "bad-key-name"),
    ("empty name", (TEXT + "\n" + PETER_SIG.replace("PeterNeumann", "")).encode(), "bad-key-name"),
    ("no signature", (TEXT + "\n\u2014 PeterNeumann\n").encode(), "bad-base64"),
    ("hyphen for dash", (TEXT + "\n" + PETER_SIG.replace("\u2014", "-")).encode(), "bad-signature-line"),
    ("en dash for em dash", (TEXT + "\n" + PETER_SIG.replace("\u2014", "\u2013")).encode(), "bad-signature-line"),
    ("two spaces after dash", (TEXT + "\n" + PETER_SIG.replace("\u2014 ", "\u2014  ")).encode(), "bad-key-name"),
    ("carriage return", (TEXT + "\n" + PETER_SIG.replace("\n", "\r\n")).encode(), "control-character"),
    ("tab", (TEXT.replace(" ", "\t", 1) + "\n" + PETER_SIG).encode(), "control-character"),
    ("NUL", (TEXT + "\n" + PETER_SIG).encode() + b"\x00", "control-character"),
    ("overlong UTF-8", (TEXT + "\n").encode() + b"\xc0\xae" + PETER_SIG.encode(), "not-utf8"),
    ("surrogate in UTF-8", b"\xed\xa0\x80" + (TEXT + "\n" + PETER_SIG).encode(), "not-utf8"),
    ("url-safe base64", (TEXT + "\n" + PETER_SIG.replace("/", "_")).encode(), "bad-base64"),
    ("base64 unpadded", (TEXT + "\n" + PETER_SIG.replace("=\n", "\n")).encode(), "bad-base64"),
    ("base64 non-canonical", (TEXT + "\n" + PETER_SIG.replace("nAM=", "nAN=")).encode(), "bad-base64"),
    ("signature of 4 bytes", (TEXT + "\n\u2014 PeterNeumann x08gow==\n").encode(), "short-signature"),
    ("trailing blank line", (TEXT + "\n" + PETER_SIG + "\n").encode(), "no-signatures"),
    ("empty", b"", "no-signature-block"),
]


@pytest.mark.parametrize(("name", "msg", "reason"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_notes_are_refused_with_their_reason(name: str, msg: bytes, reason: str) -> None:
    for known in ([_peter()], []):
        with pytest.raises(NoteError) as err:
            open_note(msg, known)
        assert err.value.reason == reason, str(err.value)
    with pytest.raises(NoteError):
        parse_note(msg)


def test_the_text_ends_at_the_last_blank_line() -> None:
    """A text may hold blank lines; the signatures start after the last one (signed-note "Format")."""
    signer = SignerKey.parse(PETER_SKEY)
    text = "first\n\nsecond\n\n\nthird\n\n"
    opened = open_note(sign_note(text, [signer]), [signer.verifier])
    assert opened.text == text
    assert open_note(sign_note("\n", [signer]), [signer.verifier]).text == "\n"


# ---- keys ------------------------------------------------------------------------------------


def _manglings(key: str) -> list[str]:
    """Go's TestNewVerifier/TestNewSigner: every proper substring, and every character moved up by one."""
    out = [key[i:j] for i in range(len(key) + 1) for j in range(i + 1, len(key) + 1) if (i, j) != (0, len(key))]
    out += [key[:i] + chr(ord(key[i]) + 1) + key[i + 1 :] for i in range(len(key))]
    return out


def test_every_mangled_verifier_key_is_refused() -> None:
    for bad in _manglings(PETER_VKEY):
        with pytest.raises(NoteError):
            VerifierKey.parse(bad)


def test_every_mangled_signer_key_is_refused() -> None:
    for bad in _manglings(PETER_SKEY):
        with pytest.raises(NoteError):
            SignerKey.parse(bad)


def test_verifier_keys_refused_for_their_reason() -> None:
    # From Go's TestNewVerifier: a key of the wrong length and an unknown algorithm, each with its
    # key id adjusted so that only the named fault remains. The first one's base64 ("...Y==")
    # has non-zero trailing bits, which Go's decoder ignores and this one refuses first.
    with pytest.raises(NoteError, match=r"the key is not canonical base64$") as err:
        VerifierKey.parse("PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==")
    assert err.value.reason == "bad-base64"
    long_key = bytes([ED25519]) + _peter().public_key + b"BAD"
    long_vkey = (
        f"PeterNeumann+{key_id('PeterNeumann', ED25519, long_key[1:]):08x}+{base64.b64encode(long_key).decode()}"
    )
    with pytest.raises(NoteError, match=r"an Ed25519 key is 32 bytes, not 35$") as err:
        VerifierKey.parse(long_vkey)
    assert err.value.reason == "bad-verifier-key"
    with pytest.raises(NoteError, match=r"signature type 0x65 is not Ed25519$") as err:
        VerifierKey.parse("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
    assert err.value.reason == "unknown-algorithm"
    with pytest.raises(NoteError, match=r"key id c74f20a4 is not the one name and key give \(c74f20a3\)$") as err:
        VerifierKey.parse(PETER_VKEY.replace("c74f20a3", "c74f20a4"))
    assert err.value.reason == "key-id-mismatch"
    with pytest.raises(NoteError, match=r"the key id is not 8 hex digits$"):
        VerifierKey.parse("PeterNeumann+0xc74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
    zero = bytes([ED25519]) + bytes(32)
    weak = f"weak+{key_id('weak', ED25519, bytes(32)):08x}+{base64.b64encode(zero).decode()}"
    with pytest.raises(NoteError, match=r"^verifier key weak: not a usable Ed25519 public key") as err:
        VerifierKey.parse(weak)
    assert err.value.reason == "bad-public-key"


def test_signer_key_refused_when_its_id_is_not_its_public_keys() -> None:
    with pytest.raises(NoteError, match=r"key id c74f20a4 is not its public key's \(c74f20a3\)$") as err:
        SignerKey.parse(PETER_SKEY.replace("c74f20a3", "c74f20a4"))
    assert err.value.reason == "key-id-mismatch"
    with pytest.raises(NoteError, match=r"^a signer key starts with PRIVATE\+KEY\+$"):
        SignerKey.parse(PETER_VKEY)
    with pytest.raises(NoteError, match=r"an Ed25519 seed is 32 bytes, not 31$"):
        SignerKey("PeterNeumann", bytes(31))


def test_a_signer_key_never_prints_its_seed() -> None:
    signer = SignerKey.parse(PETER_SKEY)
    seed64 = PETER_SKEY.rsplit("+", 1)[1]
    for shown in (str(signer), repr(signer), f"{signer}", str([signer])):
        assert "AYEKFALV" not in shown and seed64 not in shown
    assert str(signer) == "SignerKey(PeterNeumann+c74f20a3)"


def test_a_signer_from_an_existing_ed25519_key() -> None:
    key = Ed25519PrivateKey.generate()
    signer = SignerKey.from_private_key("packproof.example/log", key)
    assert SignerKey.parse(signer.text()) == signer
    assert VerifierKey.parse(str(signer.verifier)) == signer.verifier
    open_note(sign_note("hello\n", [signer]), [signer.verifier])


def test_key_names_follow_gos_rule() -> None:
    """Non-empty, no "+", none of Unicode's White_Space characters (Go's unicode.IsSpace)."""
    for ok in ("PeterNeumann", "example.com/log42", "sum.golang.org", "a", "zero\u200bwidth", "caf\u00e9"):
        assert valid_key_name(ok), ok
    spaces = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2005\u200a\u2028\u2029\u202f\u205f\u3000"
    for bad in ["", "a+b", "+", "lone\ud800surrogate", *(f"a{s}b" for s in spaces)]:
        assert not valid_key_name(bad), repr(bad)
        with pytest.raises(NoteError, match=r"is not a key name") as err:
            SignerKey(bad, bytes(32))
        assert err.value.reason == "bad-key-name"


# ---- signing ------------------------------------------------------------------------------------


def test_signing_replaces_a_kept_signature_by_the_same_key() -> None:
    """Go's TestSign: a stale signature by the signing key gives way to the new one."""
    signer = SignerKey.parse(PETER_SKEY)
    stale = NoteSignature("PeterNeumann", 0xC74F20A3, b"BADSIGN")
    assert sign_note(TEXT, [signer], keep=[stale]) == PETER_NOTE
    enoch = _sig(ENOCH_SIG)
    both = sign_note(TEXT, [signer], keep=[enoch])
    assert both == (TEXT + "\n" + ENOCH_SIG + PETER_SIG).encode()
    opened = open_note(both, [_peter(), _enoch()])
    assert opened.verified == (enoch, _sig(PETER_SIG))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("abc", "text-not-terminated"),
        ("", "text-not-terminated"),
        ("a\x01b\n", "control-character"),
        ("a\rb\n", "control-character"),
        ("lone \ud800 surrogate\n", "not-utf8"),
    ],
)
def test_a_text_that_could_not_open_again_is_not_signed(text: str, reason: str) -> None:
    with pytest.raises(NoteError) as err:
        sign_note(text, [SignerKey.parse(PETER_SKEY)])
    assert err.value.reason == reason


def test_a_key_id_is_32_bits() -> None:
    for bad in (-1, 2**32):
        with pytest.raises(NoteError, match=r"is not a 32-bit number$") as err:
            NoteSignature("PeterNeumann", bad, b"sig")
        assert err.value.reason == "bad-key-id"


def test_a_kept_signature_with_a_bad_name_is_refused() -> None:
    with pytest.raises(NoteError) as err:
        sign_note(TEXT, [], keep=[NoteSignature("a+b", 1, b"ABCD")])
    assert err.value.reason == "bad-key-name"


# ---- properties ----------------------------------------------------------------------------------

_NOTE_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters=[chr(c) for c in range(32) if c != 10])
_SEEDS = [bytes([i]) * 32 for i in range(1, 6)]
_SIGNERS = [SignerKey(f"witness-{i}.example/w", seed) for i, seed in enumerate(_SEEDS)]


@settings(max_examples=200, deadline=None)
@given(st.text(_NOTE_CHARS, max_size=200), st.sets(st.integers(0, len(_SIGNERS) - 1), min_size=1), st.data())
def test_sign_open_round_trip(body: str, chosen: set[int], data: st.DataObject) -> None:
    text = body + "\n"
    signers = [_SIGNERS[i] for i in sorted(chosen)]
    msg = sign_note(text, signers)
    opened = open_note(msg, [s.verifier for s in signers])
    assert opened.text == text
    assert [s.name for s in opened.verified] == [s.name for s in signers]
    # A reader who knows one of the keys verifies that one and keeps the others aside.
    one = data.draw(st.sampled_from(signers), label="known")
    partial = open_note(msg, [one.verifier])
    assert [s.name for s in partial.verified] == [one.name]
    assert len(partial.unverified) == len(signers) - 1
    # Parsing what was signed gives back the same note, signature for signature.
    assert sign_note(text, [], keep=parse_note(msg).signatures) == msg


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass"))))
def test_arbitrary_input_is_a_note_or_a_named_refusal(msg: bytes) -> None:
    try:
        open_note(msg, [_peter()])
    except NoteError as err:
        assert err.reason and str(err)
