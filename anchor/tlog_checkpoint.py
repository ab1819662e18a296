"""C2SP transparency-log checkpoints (c2sp.org/tlog-checkpoint): a tree head as a signed note. Pure.

A checkpoint is the text of a signed note (anchor/note.py) that names a log and one state of
its RFC 6962 tree ("Note text"):

    <origin>            the log's identity, non-empty
    <tree size>         ASCII decimal, no leading zeros ("0" for the empty tree)
    <root hash>         standard base64 of the RFC 6962 root at that size
    [extension lines]   optional, opaque, each non-empty (NOT RECOMMENDED)

each line ending in a newline. Two checkpoints of one origin are consistent if a consistency
proof (anchor/consistency.py) leads from the smaller to the larger; a log must never sign two
that are not ("Signatures"). This is the body packproof's checkpoints will have (issue 16); it
is a building block, not yet wired into the sealer, the ledger, the API or the CLI.

The origin is taken as it comes when reading: the spec recommends a schema-less URL with no
space or "+", but says clients MUST NOT assume it. The log's key name SHOULD equal the origin;
packproof's own log will see to that when it is configured (a key name cannot hold a space or
"+" anyway).

Sizes are capped at 2**64 - 1, as the C2SP tools (tlog-tiles indices, Go's uint64) read them.
The parse is exact: `parse_checkpoint(cp.body()) == cp` and `parse_checkpoint(t).body() == t`.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from packproof.anchor.merkle import HASH_LEN
from packproof.anchor.note import NoteSignature, OpenedNote, SignerKey, VerifierKey, open_note, sign_note
from packproof.errors import NoteError

__all__ = ["MAX_SIZE", "Checkpoint", "SignedCheckpoint", "open_checkpoint", "parse_checkpoint", "sign_checkpoint"]

MAX_SIZE: Final = 2**64 - 1
_DECIMAL: Final = re.compile(r"0|[1-9][0-9]*")


def _line_problem(line: str) -> str | None:
    if not line:
        return "is empty"
    for ch in line:
        if ch < " ":
            return f"holds control character {ch!r}"
    return None


@dataclass(frozen=True)
class Checkpoint:
    """One tree head of one log: origin, size, 32-byte root, and any extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        problem = _line_problem(self.origin)
        if problem:
            raise NoteError("bad-origin", f"checkpoint origin {self.origin!r} {problem}")
        if isinstance(self.size, bool) or not isinstance(self.size, int) or not 0 <= self.size <= MAX_SIZE:
            raise NoteError("bad-size", f"checkpoint size {self.size!r} is not an integer in 0..2**64 - 1")
        if len(self.root) != HASH_LEN:
            raise NoteError("bad-root", f"checkpoint root has {len(self.root)} bytes, expected {HASH_LEN}")
        for k, line in enumerate(self.extensions):
            problem = _line_problem(line)
            if problem:
                raise NoteError("bad-extension", f"checkpoint extension line {k + 1} {problem}")

    def body(self) -> str:
        """The note text: origin, size, base64 root and extension lines, each ending in a newline."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode("ascii"), *self.extensions]
        return "".join(line + "\n" for line in lines)


def parse_checkpoint(text: str) -> Checkpoint:
    """The checkpoint a note text states, refusing any text tlog-checkpoint's "Note text" does not allow.

    Refused, each with its own reason: fewer than three lines, a text not ending in a newline,
    an empty line, a size that is not plain ASCII decimal (no sign, no leading zero, no
    underscore, no other script's digits), a root that is not the canonical base64 of 32 bytes.
    """
    if not text.endswith("\n"):
        raise NoteError("text-not-terminated", "checkpoint text must end in a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise NoteError("checkpoint-too-short", f"checkpoint has {len(lines)} lines, needs origin, size and root")
    origin, size_text, root_text, *extensions = lines
    if len(size_text) > len(str(MAX_SIZE)) or not _DECIMAL.fullmatch(size_text):
        raise NoteError("bad-size", f"checkpoint size {size_text!r} is not a decimal number without leading zeros")
    try:
        root = base64.b64decode(root_text, validate=True)
    except (binascii.Error, ValueError):
        raise NoteError("bad-root", f"checkpoint root {root_text!r} is not base64") from None
    if base64.b64encode(root).decode("ascii") != root_text:
        raise NoteError("bad-root", f"checkpoint root {root_text!r} is not canonical base64")
    return Checkpoint(origin, int(size_text), root, tuple(extensions))


@dataclass(frozen=True)
class SignedCheckpoint:
    """A checkpoint and the note it came in (verified signatures, and the unknown ones kept aside)."""

    checkpoint: Checkpoint
    note: OpenedNote


def sign_checkpoint(checkpoint: Checkpoint, signers: Sequence[SignerKey], keep: Sequence[NoteSignature] = ()) -> bytes:
    """The checkpoint as a signed note (anchor.note.sign_note over its body)."""
    return sign_note(checkpoint.body(), signers, keep)


def open_checkpoint(msg: bytes, known: Iterable[VerifierKey]) -> SignedCheckpoint:
    """The checkpoint in a signed note that a known key signed (anchor.note.open_note), parsed."""
    note = open_note(msg, known)
    return SignedCheckpoint(parse_checkpoint(note.text), note)
