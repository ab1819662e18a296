"""A log monitor's judgement (issue 16 item 6): does a new checkpoint extend the last one seen? Pure.

A monitor keeps the last checkpoint it verified and, for each new one the log serves, demands
an RFC 6962 consistency proof from the old size to the new (anchor/consistency.py). Witnesses
refuse to cosign a fork; a monitor is how someone outside notices when the log tries anyway,
or when a cosignature quorum is not required by every client. The outcomes:

* the same checkpoint again (same size and root): nothing new;
* a larger size whose proof verifies: advance, the new checkpoint becomes the saved one;
* the same size with another root: a fork (a split view: the log signed two histories);
* a larger size whose proof does not verify: a fork (the new tree does not contain the old);
* a smaller size: a rollback (a log never shrinks; serving an older head hides leaves);
* another origin, or a note the log's key did not sign: refused before any of the above.

Each alarm is one line naming both sizes and both roots (base64, as checkpoints write them),
so it can be acted on and quoted as evidence. Fetching the checkpoint and the proof, and
keeping the state in a file, is app/cli/monitor.py's part.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from packproof.anchor.consistency import verify_consistency
from packproof.anchor.note import VerifierKey
from packproof.anchor.tlog_checkpoint import Checkpoint, open_checkpoint
from packproof.errors import NoteError, ProofError

__all__ = ["Advance", "Alarm", "NeedProof", "Same", "assess", "conclude", "read_checkpoint"]


def _b64(root: bytes) -> str:
    return base64.b64encode(root).decode("ascii")


@dataclass(frozen=True)
class Same:
    """The checkpoint the monitor already holds."""


@dataclass(frozen=True)
class NeedProof:
    """Ask the log for PROOF(old, new) and `conclude` with it."""

    old: int
    new: int


@dataclass(frozen=True)
class Advance:
    checkpoint: Checkpoint


@dataclass(frozen=True)
class Alarm:
    kind: Literal["fork", "rollback", "origin", "signature"]
    line: str


def read_checkpoint(note: bytes, log_key: VerifierKey) -> Checkpoint | Alarm:
    """The checkpoint in a note the log's key signed (other signature lines, cosignatures, ignored)."""
    try:
        cp = open_checkpoint(note, [log_key]).checkpoint
    except NoteError as exc:
        return Alarm("signature", f"SIGNATURE: the checkpoint served is not signed by the log key {log_key}: {exc}")
    if cp.origin != log_key.name:
        return Alarm("origin", f"ORIGIN: the checkpoint names origin {cp.origin!r}, the log key {log_key.name!r}")
    return cp


def assess(saved: Checkpoint | None, new: Checkpoint) -> Same | NeedProof | Advance | Alarm:
    """What a new checkpoint means against the saved one (None: the first one seen: trusted as is)."""
    if saved is None:
        return Advance(new)
    if new.origin != saved.origin:
        return Alarm("origin", f"ORIGIN: saved checkpoint of {saved.origin!r}, served one of {new.origin!r}")
    if new.size < saved.size:
        return Alarm("rollback", f"ROLLBACK: log {saved.origin} served size {new.size} root {_b64(new.root)} after "
                                 f"size {saved.size} root {_b64(saved.root)}")
    if new.size == saved.size:
        if new.root == saved.root:
            return Same()
        return Alarm("fork", f"FORK: log {saved.origin} signed two roots at size {new.size}: {_b64(saved.root)} "
                             f"(saved) and {_b64(new.root)} (served now)")
    return NeedProof(saved.size, new.size)


def conclude(saved: Checkpoint, new: Checkpoint, proof: Sequence[bytes]) -> Advance | Alarm:
    """Advance if `proof` shows `saved` is a prefix of `new`; a fork alarm naming both otherwise."""
    try:
        verify_consistency(saved.size, new.size, proof, saved.root, new.root)
    except ProofError as exc:
        return Alarm("fork", f"FORK: log {saved.origin} size {new.size} root {_b64(new.root)} is not an extension "
                             f"of size {saved.size} root {_b64(saved.root)}: {exc}")
    return Advance(new)
