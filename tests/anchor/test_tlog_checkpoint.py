"""C2SP tlog checkpoints: the body's exact grammar, known answers, and signed round trips.

Known-answer data (copied as data, never code):

* C2SP/C2SP `tlog-checkpoint.md`: the example.com/behind-the-sofa checkpoint;
* golang/mod `sumdb/tlog/note_test.go` (TestFormatTree, TestParseTree): the go.sum database
  tree head, whose root is the RFC 6962 leaf hash of "hello world", and its malformed variants.
"""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from packproof.anchor.consistency import consistency_proof, verify_consistency
from packproof.anchor.merkle import EMPTY_ROOT, leaf_hash, root_from_leaf_hashes
from packproof.anchor.note import SignerKey, parse_note, sign_note
from packproof.anchor.tlog_checkpoint import (
    MAX_SIZE,
    Checkpoint,
    open_checkpoint,
    parse_checkpoint,
    sign_checkpoint,
)
from packproof.errors import NoteError
from tests.anchor.test_note import SOFA_NOTE

GO_TREE = "go.sum database tree\n123456789012\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=\n"
SOFA_ROOT = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="
ORIGIN = "packproof.example/0123456789abcdef"
LOG_KEY = SignerKey(ORIGIN, bytes(range(32)))


def _root(i: int) -> bytes:
    return leaf_hash(i.to_bytes(4, "big"))


# ---- known answers --------------------------------------------------------------------------


def test_the_c2sp_example_checkpoint() -> None:
    cp = parse_checkpoint(parse_note(SOFA_NOTE).text)
    assert cp == Checkpoint("example.com/behind-the-sofa", 20852163, base64.b64decode(SOFA_ROOT))
    assert cp.body() == f"example.com/behind-the-sofa\n20852163\n{SOFA_ROOT}\n"


def test_the_go_sumdb_tree_head() -> None:
    """An origin with spaces is still an origin: clients MUST NOT assume the URL form."""
    cp = parse_checkpoint(GO_TREE)
    assert cp.origin == "go.sum database tree" and cp.size == 123456789012
    assert cp.root == leaf_hash(b"hello world")
    assert cp.body() == GO_TREE


def test_the_go_sumdb_bad_tree_heads_are_refused() -> None:
    with pytest.raises(NoteError, match=r"^checkpoint size '0xabcdef' is not a decimal number") as err:
        parse_checkpoint(GO_TREE.replace("123456789012", "0xabcdef"))
    assert err.value.reason == "bad-size"
    with pytest.raises(NoteError, match=r"is not (canonical )?base64$") as err:
        parse_checkpoint(GO_TREE.replace("HmuwBb0=", "HmuwBTOOBIG="))
    assert err.value.reason == "bad-root"


def test_lines_after_the_root_are_extension_lines() -> None:
    """Go's sumdb ignores junk after the tree head; a C2SP checkpoint calls such lines extension
    lines, keeps them (they are signed), and wants every line ended."""
    assert parse_checkpoint(GO_TREE + "JOE\n").extensions == ("JOE",)
    assert parse_checkpoint(GO_TREE + "JOE\n" * 3).extensions == ("JOE", "JOE", "JOE")
    with pytest.raises(NoteError) as err:
        parse_checkpoint(GO_TREE + "JOE")
    assert err.value.reason == "text-not-terminated"


# ---- the grammar, line by line ------------------------------------------------------------------

_ROOT64 = base64.b64encode(_root(1)).decode()

BAD_BODIES: list[tuple[str, str, str]] = [
    ("no final newline", f"o\n1\n{_ROOT64}", "text-not-terminated"),
    ("two lines", "o\n1\n", "checkpoint-too-short"),
    ("one line", "o\n", "checkpoint-too-short"),
    ("empty", "", "text-not-terminated"),
    ("empty origin", f"\n1\n{_ROOT64}\n", "bad-origin"),
    ("tab in origin", f"a\tb\n1\n{_ROOT64}\n", "bad-origin"),
    ("leading zero", f"o\n01\n{_ROOT64}\n", "bad-size"),
    ("plus sign", f"o\n+1\n{_ROOT64}\n", "bad-size"),
    ("minus sign", f"o\n-1\n{_ROOT64}\n", "bad-size"),
    ("underscore", f"o\n1_000\n{_ROOT64}\n", "bad-size"),
    ("space before size", f"o\n 1\n{_ROOT64}\n", "bad-size"),
    ("empty size", f"o\n\n{_ROOT64}\n", "bad-size"),
    ("Arabic-Indic digits", f"o\n\u0661\u0662\n{_ROOT64}\n", "bad-size"),
    ("2**64", f"o\n{2**64}\n{_ROOT64}\n", "bad-size"),
    ("5,000 digits", f"o\n{'9' * 5000}\n{_ROOT64}\n", "bad-size"),
    ("hex root", f"o\n1\n{_root(1).hex()}\n", "bad-root"),
    ("31-byte root", f"o\n1\n{base64.b64encode(_root(1)[:31]).decode()}\n", "bad-root"),
    ("33-byte root", f"o\n1\n{base64.b64encode(_root(1) + b'x').decode()}\n", "bad-root"),
    ("unpadded root", f"o\n1\n{_ROOT64.rstrip('=')}\n", "bad-root"),
    ("non-canonical root", f"o\n1\n{_ROOT64[:-2]}{chr(ord(_ROOT64[-2]) + 1)}=\n", "bad-root"),
    ("url-safe root", f"o\n1\n{base64.urlsafe_b64encode(bytes([0xFB]) * 32).decode()}\n", "bad-root"),
    ("empty root", "o\n1\n\n", "bad-root"),
    ("empty extension line", f"o\n1\n{_ROOT64}\n\nx\n", "bad-extension"),
    ("control character in extension", f"o\n1\n{_ROOT64}\nx\x01\n", "bad-extension"),
]


@pytest.mark.parametrize(("name", "text", "reason"), BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
def test_malformed_bodies_are_refused_with_their_reason(name: str, text: str, reason: str) -> None:
    with pytest.raises(NoteError) as err:
        parse_checkpoint(text)
    assert err.value.reason == reason, str(err.value)


def test_sizes_at_the_edges() -> None:
    assert parse_checkpoint(f"o\n0\n{base64.b64encode(EMPTY_ROOT).decode()}\n").size == 0
    assert parse_checkpoint(f"o\n{MAX_SIZE}\n{_ROOT64}\n").size == 2**64 - 1


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"origin": ""}, "bad-origin"),
        ({"origin": "two\nlines"}, "bad-origin"),
        ({"size": -1}, "bad-size"),
        ({"size": 2**64}, "bad-size"),
        ({"size": True}, "bad-size"),
        ({"root": b"\x00" * 31}, "bad-root"),
        ({"root": b""}, "bad-root"),
        ({"extensions": ("",)}, "bad-extension"),
        ({"extensions": ("a\nb",)}, "bad-extension"),
    ],
)
def test_a_checkpoint_that_could_not_be_written_is_not_made(kwargs: dict[str, object], reason: str) -> None:
    fields: dict[str, object] = {"origin": ORIGIN, "size": 1, "root": _root(1), **kwargs}
    with pytest.raises(NoteError) as err:
        Checkpoint(**fields)  # type: ignore[arg-type]
    assert err.value.reason == reason


# ---- signed checkpoints ----------------------------------------------------------------------------


def test_sign_and_open_a_checkpoint() -> None:
    cp = Checkpoint(ORIGIN, 13, root_from_leaf_hashes([_root(i) for i in range(13)]))
    msg = sign_checkpoint(cp, [LOG_KEY])
    assert msg.decode().startswith(cp.body() + "\n\u2014 " + ORIGIN + " ")
    signed = open_checkpoint(msg, [LOG_KEY.verifier])
    assert signed.checkpoint == cp
    assert [s.name for s in signed.note.verified] == [ORIGIN]


def test_a_witness_cosignature_rides_along_unverified() -> None:
    cp = Checkpoint(ORIGIN, 2, root_from_leaf_hashes([_root(0), _root(1)]))
    witness = SignerKey("witness.example/w1", bytes([7]) * 32)
    msg = sign_checkpoint(cp, [LOG_KEY, witness])
    signed = open_checkpoint(msg, [LOG_KEY.verifier])
    assert [s.name for s in signed.note.unverified] == ["witness.example/w1"]
    both = open_checkpoint(msg, [LOG_KEY.verifier, witness.verifier])
    assert [s.name for s in both.note.verified] == [ORIGIN, "witness.example/w1"]


def test_a_signature_does_not_carry_over_to_another_tree_head() -> None:
    cp = Checkpoint(ORIGIN, 13, _root(13))
    sig = parse_note(sign_checkpoint(cp, [LOG_KEY])).signatures
    for other in (
        Checkpoint(ORIGIN, 14, _root(13)),
        Checkpoint(ORIGIN, 13, _root(14)),
        Checkpoint(ORIGIN + "x", 13, _root(13)),
        Checkpoint(ORIGIN, 13, _root(13), ("ext",)),
    ):
        forged = sign_checkpoint(other, [], keep=sig)
        with pytest.raises(NoteError) as err:
            open_checkpoint(forged, [LOG_KEY.verifier])
        assert err.value.reason == "invalid-signature"


def test_a_checkpoint_by_another_key_is_refused() -> None:
    cp = Checkpoint(ORIGIN, 1, _root(1))
    impostor = SignerKey(ORIGIN, bytes([9]) * 32)  # same name, another key: another key id
    with pytest.raises(NoteError) as err:
        open_checkpoint(sign_checkpoint(cp, [impostor]), [LOG_KEY.verifier])
    assert err.value.reason == "unknown-key"


def test_a_signed_note_whose_text_is_not_a_checkpoint_is_refused() -> None:
    """The signature holds, the text is not a tree head: the reason names the text's fault."""
    with pytest.raises(NoteError) as err:
        open_checkpoint(sign_note("just a note\n", [LOG_KEY]), [LOG_KEY.verifier])
    assert err.value.reason == "checkpoint-too-short"


def test_two_signed_checkpoints_and_a_consistency_proof_between_them() -> None:
    """The building blocks meet as a witness will use them: two checkpoints of one log, opened
    with the log's key, and a consistency proof from the older to the newer."""
    leaves = [_root(i) for i in range(13)]
    old = sign_checkpoint(Checkpoint(ORIGIN, 6, root_from_leaf_hashes(leaves[:6])), [LOG_KEY])
    new = sign_checkpoint(Checkpoint(ORIGIN, 13, root_from_leaf_hashes(leaves)), [LOG_KEY])
    a = open_checkpoint(old, [LOG_KEY.verifier]).checkpoint
    b = open_checkpoint(new, [LOG_KEY.verifier]).checkpoint
    verify_consistency(a.size, b.size, consistency_proof(a.size, leaves), a.root, b.root)


# ---- properties ---------------------------------------------------------------------------------------

_LINE = st.text(st.characters(blacklist_categories=("Cs",), min_codepoint=32), min_size=1, max_size=40)


@settings(max_examples=300, deadline=None)
@given(_LINE, st.integers(0, MAX_SIZE), st.binary(min_size=32, max_size=32), st.lists(_LINE, max_size=3))
def test_body_parse_round_trip(origin: str, size: int, root: bytes, extensions: list[str]) -> None:
    cp = Checkpoint(origin, size, root, tuple(extensions))
    assert parse_checkpoint(cp.body()) == cp
    assert parse_checkpoint(cp.body()).body() == cp.body()


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_is_a_checkpoint_or_a_named_refusal(text: str) -> None:
    try:
        cp = parse_checkpoint(text)
    except NoteError as err:
        assert err.reason
    else:
        assert cp.body() == text
