"""Checking the transparency log's claims (issue 16): a signed checkpoint, a leaf's inclusion in it,
and consistency between two checkpoints. Pure.

A checkpoint (anchor/tlog_checkpoint.py) is opened with the log's verifier keys: the key name is the
log's origin, so a ledger public key becomes a verifier key under the origin the note itself
names (`VerifierKey(origin, key)`), and a key given as a vkey text (`--log-key`) is taken whole.
Two checkpoints of one log are consistent when the older is a prefix of the newer (RFC 6962
§2.1.2, anchor/consistency.py); anything else is a fork (two roots at one size), a rollback (the
"newer" is smaller) or a rewritten log (the proof fails), each named with both sizes and roots.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

from packproof.anchor.consistency import verify_consistency
from packproof.anchor.merkle import root_from_inclusion_proof
from packproof.anchor.note import VerifierKey, parse_note
from packproof.anchor.tlog_checkpoint import Checkpoint, open_checkpoint, parse_checkpoint
from packproof.errors import NoteError, ProofError

__all__ = ["check_consistent", "describe", "log_keys_for", "open_log_checkpoint", "root_from_log_path"]


def describe(cp: Checkpoint) -> str:
    return f"size {cp.size} root {base64.b64encode(cp.root).decode()}"


def log_keys_for(note: str, public_keys: Sequence[bytes], vkeys: Sequence[VerifierKey] = ()) -> list[VerifierKey]:
    """The verifier keys to open `note` with: each given vkey, and each ledger public key under the
    origin the note names (the log's key name is its origin)."""
    try:
        origin = parse_checkpoint(parse_note(note.encode()).text).origin
    except NoteError:
        return list(vkeys)
    keys = list(vkeys)
    for public in dict.fromkeys(public_keys):
        try:
            keys.append(VerifierKey(origin, public))
        except NoteError:
            continue  # an origin that cannot be a key name: only an explicit vkey can open it
    return keys


def open_log_checkpoint(note: str, public_keys: Sequence[bytes], vkeys: Sequence[VerifierKey] = ()) -> Checkpoint:
    """The checkpoint in `note` if one of the keys signed it; NoteError naming why not otherwise."""
    return open_checkpoint(note.encode(), log_keys_for(note, public_keys, vkeys)).checkpoint


def root_from_log_path(index: int, size: int, leaf: bytes, path: Sequence[str]) -> bytes:
    """The log root a base64 audit path implies for leaf hash `leaf` (ProofError if malformed)."""
    try:
        hashes = [base64.b64decode(h, validate=True) for h in path]
    except ValueError:
        raise ProofError("the log path holds a hash that is not base64") from None
    return root_from_inclusion_proof(index, size, leaf, hashes)


def check_consistent(old: Checkpoint, new: Checkpoint, proof: Sequence[bytes]) -> None:
    """Return if `new` extends `old` (the proof from old.size to new.size holds); ProofError naming
    both sizes and roots and what the mismatch means otherwise."""
    both = f"old {describe(old)}, new {describe(new)}"
    if old.origin != new.origin:
        raise ProofError(f"the checkpoints are of two logs ({old.origin!r} and {new.origin!r})")
    if old.size > new.size:
        raise ProofError(f"rollback: the newer checkpoint is smaller than the older ({both})")
    if old.size == new.size and old.root != new.root:
        raise ProofError(f"fork: two different roots at one size ({both})")
    try:
        verify_consistency(old.size, new.size, proof, old.root, new.root)
    except ProofError as exc:
        raise ProofError(f"not consistent: the log was rewritten or forked ({both}): {exc}") from None
