"""A C2SP tlog-witness's decision (c2sp.org/tlog-witness, "add-checkpoint"), as a pure function.

The witness keeps, per log origin, the size and root of the latest checkpoint it cosigned. A
request is ``old <size>\\n``, up to 63 base64 consistency proof lines, an empty line, then the
signed checkpoint note. `decide` maps (the logs' keys, the state known for the origin, the
request) to a refusal with the spec's status or to the new state to store, in the spec's order:

* body malformed (old line, proof lines, note syntax)       -> 400 Bad Request
* origin unknown to the witness                             -> 404 Not Found
* no signature verifies against a key trusted for the origin -> 403 Forbidden
* old size > checkpoint size                                -> 400 Bad Request
* old size != size last cosigned (0 if none)                -> 409 Conflict, body ``<known size>\\n``,
                                                               Content-Type ``text/x.tlog.size``
* old size == checkpoint size but another root (split view) -> 409 Conflict (same body)
* consistency proof from (known size, known root) fails     -> 422 Unprocessable Entity
  (with old size 0 the proof must be empty: the empty tree is consistent with every tree)

otherwise the new state is (checkpoint size, root) and the witness cosigns. A rollback (a
smaller checkpoint after a larger) can only arrive with an old size that is not the known one
(409) or larger than the checkpoint (400); a split view at a size the witness holds is the
same-size 409; a split view at a larger size fails its consistency proof (422). Nothing here
signs or stores: the caller must apply the new state with a compare-and-swap against the
state it decided on (the spec's race between two requests) and only then cosign.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from packproof.anchor.consistency import verify_consistency
from packproof.anchor.merkle import EMPTY_ROOT
from packproof.anchor.note import VerifierKey, open_note, parse_note
from packproof.anchor.tlog_checkpoint import MAX_SIZE, Checkpoint, parse_checkpoint
from packproof.errors import NoteError, ProofError

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_PROOF_LINES",
    "SIZE_CONTENT_TYPE",
    "Accepted",
    "AddCheckpoint",
    "LogState",
    "Refused",
    "decide",
    "parse_add_checkpoint",
    "request_body",
]

MAX_PROOF_LINES: Final = 63  # "The client MUST NOT send more than 63 consistency proof lines"
MAX_BODY_BYTES: Final = 64 * 1024  # 63 proof lines and a note with 100 signature lines fit well below
SIZE_CONTENT_TYPE: Final = "text/x.tlog.size"
_DECIMAL: Final = re.compile(r"0|[1-9][0-9]*")


@dataclass(frozen=True)
class LogState:
    """What the witness holds for one origin: the size and root it last cosigned."""

    size: int
    root: bytes


@dataclass(frozen=True)
class AddCheckpoint:
    """An add-checkpoint request body, split: old size, proof hashes, the note's bytes and origin."""

    old_size: int
    proof: tuple[bytes, ...]
    note: bytes
    checkpoint: Checkpoint


@dataclass(frozen=True)
class Refused:
    """A refusal: the HTTP status, a reason for people, and for 409 the size the witness knows."""

    status: int
    reason: str
    known_size: int | None = None

    @property
    def content_type(self) -> str:
        return SIZE_CONTENT_TYPE if self.known_size is not None else "text/plain; charset=utf-8"

    @property
    def body(self) -> str:
        return f"{self.known_size}\n" if self.known_size is not None else self.reason + "\n"


@dataclass(frozen=True)
class Accepted:
    """Cosign `checkpoint`; store `new` in place of `old` (None: nothing known yet) atomically first."""

    checkpoint: Checkpoint
    old: LogState | None
    new: LogState


def request_body(old_size: int, proof: Sequence[bytes], note: bytes) -> bytes:
    """The add-checkpoint body a client sends (the log side, and tests)."""
    lines = [f"old {old_size}"] + [base64.b64encode(p).decode() for p in proof]
    return ("\n".join(lines) + "\n\n").encode() + note


def _decimal(text: str) -> int | None:
    if len(text) > len(str(MAX_SIZE)) or not _DECIMAL.fullmatch(text):
        return None
    return int(text)


def parse_add_checkpoint(body: bytes) -> AddCheckpoint | Refused:
    """The request, or a 400 naming what in the body is malformed (the note's syntax included;
    its signatures are checked by `decide`, which knows the origin's keys)."""
    if len(body) > MAX_BODY_BYTES:
        return Refused(400, f"request body has {len(body)} bytes, at most {MAX_BODY_BYTES}")
    head, sep, note = body.partition(b"\n\n")
    if not sep:
        return Refused(400, "request body has no empty line between the old size and proof lines and the checkpoint")
    try:
        lines = head.decode("ascii").split("\n")
    except UnicodeDecodeError:
        return Refused(400, "old size and proof lines must be ASCII")
    first = lines[0]
    old = _decimal(first.removeprefix("old ")) if first.startswith("old ") else None
    if old is None:
        return Refused(400, f"first line {first[:40]!r} is not 'old <size>' with a decimal size without leading zeros")
    if len(lines) - 1 > MAX_PROOF_LINES:
        return Refused(400, f"{len(lines) - 1} consistency proof lines, at most {MAX_PROOF_LINES}")
    proof: list[bytes] = []
    for k, line in enumerate(lines[1:]):
        try:
            h = base64.b64decode(line, validate=True)
        except (binascii.Error, ValueError):
            h = b""
        if len(h) != 32 or base64.b64encode(h).decode() != line:
            return Refused(400, f"consistency proof line {k + 1} is not the canonical base64 of a 32-byte hash")
        proof.append(h)
    try:
        checkpoint = parse_checkpoint(parse_note(note).text)
    except NoteError as exc:
        return Refused(400, f"checkpoint: {exc.message}")
    return AddCheckpoint(old, tuple(proof), note, checkpoint)


def decide(req: AddCheckpoint, log_keys: Sequence[VerifierKey], known: LogState | None) -> Accepted | Refused:
    """The witness's answer to one request, given the keys it trusts for the request's origin
    (empty: origin unknown) and the state it holds for that origin (None: never cosigned)."""
    cp = req.checkpoint
    if not log_keys:
        return Refused(404, f"unknown log origin {cp.origin!r}")
    try:
        open_note(req.note, log_keys)
    except NoteError as exc:
        return Refused(403, f"checkpoint of {cp.origin}: {exc.message}")
    if req.old_size > cp.size:
        return Refused(400, f"old size {req.old_size} is larger than the checkpoint size {cp.size}")
    have = known or LogState(0, EMPTY_ROOT)
    if req.old_size != have.size:
        return Refused(409, f"old size {req.old_size} is not the size {have.size} last cosigned for {cp.origin}",
                       known_size=have.size)
    if cp.size == have.size and cp.root != have.root:
        return Refused(409, f"split view: checkpoint of size {cp.size} has root {cp.root.hex()}, the witness "
                            f"cosigned root {have.root.hex()} at that size for {cp.origin}", known_size=have.size)
    try:
        verify_consistency(have.size, cp.size, req.proof, have.root, cp.root)
    except ProofError as exc:
        return Refused(422, f"consistency proof from size {have.size} to {cp.size} fails: {exc}")
    return Accepted(cp, known, LogState(cp.size, cp.root))
