"""C2SP cosignatures (c2sp.org/tlog-cosignature), the Ed25519 `cosignature/v1` kind. Pure, no I/O.

A cosignature is a witness's note signature line on a log's checkpoint: "as of this time, the
consistent tree head with the largest size I have observed for this origin has this root".
A verifier that requires K of a set of witnesses to have cosigned a checkpoint can no longer be
shown a split view by the log alone (issue 16).

The format, for the Ed25519 kind (tlog-cosignature "Format", "Ed25519 signed message"):

* key id = SHA-256(<name> || 0x0A || 0x04 || 32-byte public key)[:4]: the type byte 0x04 keeps
  a cosignature from ever being read as a plain note signature (type 0x01) and back;
* verifier key (vkey) text ``<name>+<hex8 key id>+<base64(0x04 || public key)>``;
* signed message = ``cosignature/v1\\n`` ``time <POSIX seconds, decimal>\\n`` then the whole
  checkpoint body (origin, size, root and any extension lines, with its final newline);
* signature field (after the 4-byte key id of the note line) = 8-byte big-endian timestamp ||
  64-byte Ed25519 signature; the timestamp must not exceed 2**63 - 1.

Signer key text, which the spec leaves open: ``PRIVATE+KEY+<name>+<hex8 key id>+<base64(0x04 ||
32-byte seed)>``, the shape anchor/note.py's signer keys have, with the cosignature type byte.

A line is matched to a witness by name AND key id (signed-note: ignore signatures from unknown
keys, even if they share a name or an id with a known one); `tally` reports, per witness key
given, whether its cosignature is valid, invalid or missing, so a verifier can name which.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from packproof.anchor.note import NoteSignature, _key_text_parts, key_id, parse_note, valid_key_name
from packproof.crypto import public_key_bytes, weak_key_problem
from packproof.errors import NoteError

__all__ = [
    "COSIGNATURE_V1",
    "MAX_TIMESTAMP",
    "CosignatureTally",
    "CosignerKey",
    "WitnessKey",
    "cosigned_message",
    "cosignature_time",
    "tally",
    "verify_cosignature",
]

COSIGNATURE_V1: Final = 0x04  # the key id's type byte for Ed25519 cosignature/v1 (tlog-cosignature)
MAX_TIMESTAMP: Final = 2**63 - 1
_HEADER: Final = b"cosignature/v1\n"
_PRIVATE_PREFIX: Final = "PRIVATE+KEY+"


def cosigned_message(checkpoint_body: str, timestamp: int) -> bytes:
    """``cosignature/v1\\ntime <timestamp>\\n`` followed by the checkpoint body: what the witness signs."""
    if isinstance(timestamp, bool) or not 0 <= timestamp <= MAX_TIMESTAMP:
        raise NoteError("bad-timestamp", f"cosignature time {timestamp!r} is not in 0..2**63 - 1")
    if not checkpoint_body.endswith("\n"):
        raise NoteError("text-not-terminated", "a checkpoint body ends in a newline")
    return _HEADER + f"time {timestamp}\n".encode() + checkpoint_body.encode("utf-8")


def cosignature_time(sig: NoteSignature) -> int:
    """The timestamp a cosignature line carries (its first 8 bytes, big-endian); NoteError if it has none."""
    if len(sig.signature) != 72:
        raise NoteError("bad-cosignature",
                        f"cosignature by {sig.name} has {len(sig.signature)} bytes after the key id, expected 8 + 64")
    return int.from_bytes(sig.signature[:8], "big")


@dataclass(frozen=True)
class WitnessKey:
    """A witness's cosignature/v1 verifier key: a name and a 32-byte Ed25519 public key."""

    name: str
    public_key: bytes
    key_id: int = field(init=False)
    _key: Ed25519PublicKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not valid_key_name(self.name):
            raise NoteError("bad-key-name", f"witness key name {self.name!r} is not a key name")
        problem = weak_key_problem(self.public_key)
        if problem:
            raise NoteError("bad-public-key", f"witness key {self.name}: {problem}")
        object.__setattr__(self, "key_id", key_id(self.name, COSIGNATURE_V1, self.public_key))
        object.__setattr__(self, "_key", Ed25519PublicKey.from_public_bytes(self.public_key))

    @classmethod
    def parse(cls, vkey: str) -> WitnessKey:
        """Read ``<name>+<hex8 key id>+<base64(0x04 || public key)>``; the id must be the one name and key give."""
        name, id_hex, raw = _key_text_parts(vkey, "verifier", lambda _: f"witness key {vkey!r}")
        if raw[0] != COSIGNATURE_V1:
            raise NoteError("unknown-algorithm", f"witness key {vkey!r}: signature type {raw[0]:#04x} is not "
                                                 f"cosignature/v1 ({COSIGNATURE_V1:#04x})")
        if len(raw) != 33:
            raise NoteError("bad-verifier-key", f"witness key {vkey!r}: an Ed25519 key is 32 bytes, not {len(raw) - 1}")
        if int(id_hex, 16) != key_id(name, raw[0], raw[1:]):
            raise NoteError("key-id-mismatch", f"witness key {vkey!r}: key id {id_hex} is not the one name and key "
                                               f"give ({key_id(name, raw[0], raw[1:]):08x})")
        return cls(name, raw[1:])

    def __str__(self) -> str:
        return f"{self.name}+{self.key_id:08x}+{base64.b64encode(bytes([COSIGNATURE_V1]) + self.public_key).decode()}"

    def matches(self, sig: NoteSignature) -> bool:
        return sig.name == self.name and sig.key_id == self.key_id

    def verifies(self, checkpoint_body: str, sig: NoteSignature) -> bool:
        """Whether `sig` is this witness's cosignature/v1 of the checkpoint body (name, id, time, signature)."""
        if not self.matches(sig) or len(sig.signature) != 72:
            return False
        timestamp = int.from_bytes(sig.signature[:8], "big")
        if timestamp > MAX_TIMESTAMP:
            return False
        try:
            self._key.verify(sig.signature[8:], cosigned_message(checkpoint_body, timestamp))
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class CosignerKey:
    """A witness's signing key: a name and an Ed25519 seed. The seed never prints."""

    name: str
    seed: bytes = field(repr=False)
    _key: Ed25519PrivateKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not valid_key_name(self.name):
            raise NoteError("bad-key-name", f"witness key name {self.name!r} is not a key name")
        if len(self.seed) != 32:
            raise NoteError("bad-signer-key", f"witness signer key {self.name}: an Ed25519 seed is 32 bytes, "
                                              f"not {len(self.seed)}")
        object.__setattr__(self, "_key", Ed25519PrivateKey.from_private_bytes(self.seed))

    @classmethod
    def generate(cls, name: str) -> CosignerKey:
        return cls(name, Ed25519PrivateKey.generate().private_bytes_raw())

    @classmethod
    def parse(cls, skey: str) -> CosignerKey:
        """Read ``PRIVATE+KEY+<name>+<hex8 key id>+<base64(0x04 || seed)>``, its key id checked."""
        if not skey.startswith(_PRIVATE_PREFIX):
            raise NoteError("bad-signer-key", "a witness signer key starts with PRIVATE+KEY+")
        name, id_hex, raw = _key_text_parts(skey.removeprefix(_PRIVATE_PREFIX), "signer",
                                            lambda n: f"witness signer key for {n!r}")  # never echo the secret
        if raw[0] != COSIGNATURE_V1 or len(raw) != 33:
            raise NoteError("bad-signer-key", f"witness signer key for {name!r}: not type {COSIGNATURE_V1:#04x} "
                                              "followed by a 32-byte seed")
        signer = cls(name, raw[1:])
        if int(id_hex, 16) != signer.verifier.key_id:
            raise NoteError("key-id-mismatch", f"witness signer key for {name!r}: key id {id_hex} is not its "
                                               f"public key's ({signer.verifier.key_id:08x})")
        return signer

    def __str__(self) -> str:
        return f"CosignerKey({self.verifier.name}+{self.verifier.key_id:08x})"

    def text(self) -> str:
        """The secret key text, ``PRIVATE+KEY+<name>+<hex8 key id>+<base64(0x04 || seed)>``."""
        raw = base64.b64encode(bytes([COSIGNATURE_V1]) + self.seed).decode()
        return f"{_PRIVATE_PREFIX}{self.name}+{self.verifier.key_id:08x}+{raw}"

    @property
    def verifier(self) -> WitnessKey:
        return WitnessKey(self.name, public_key_bytes(self._key))

    def cosign(self, checkpoint_body: str, timestamp: int) -> NoteSignature:
        """The cosignature/v1 line's signature on a checkpoint body at `timestamp` (POSIX seconds)."""
        msg = cosigned_message(checkpoint_body, timestamp)
        return NoteSignature(self.name, self.verifier.key_id, timestamp.to_bytes(8, "big") + self._key.sign(msg))


def verify_cosignature(key: WitnessKey, checkpoint_body: str, sig: NoteSignature) -> int:
    """The cosignature's timestamp if `sig` is `key`'s valid cosignature/v1 of the body; NoteError otherwise."""
    if not key.matches(sig):
        raise NoteError("unknown-key", f"signature by {sig.name}+{sig.key_id:08x} is not by witness {key.name}"
                                       f"+{key.key_id:08x}")
    if not key.verifies(checkpoint_body, sig):
        raise NoteError("invalid-signature", f"cosignature by witness {key.name}+{key.key_id:08x} does not verify")
    return cosignature_time(sig)


@dataclass(frozen=True)
class CosignatureTally:
    """Per witness key given (by its vkey text): which cosigned validly, which signed something
    that does not verify, which did not sign at all; `valid` is ordered as the keys were given."""

    valid: tuple[str, ...]
    invalid: tuple[str, ...]
    missing: tuple[str, ...]

    def satisfied(self, minimum: int) -> bool:
        return len(self.valid) >= minimum


def tally(note: bytes, witnesses: Sequence[WitnessKey]) -> CosignatureTally:
    """Count the valid cosignatures of `witnesses` on a signed checkpoint note. Lines by other keys
    (the log's own, unknown witnesses) are ignored, never an error; NoteError if the note itself is
    malformed. A key given twice counts once. A witness is valid if any of its lines verifies
    (a note may carry an older and a newer one), invalid if it has lines and none verifies."""
    parsed = parse_note(note)
    valid: list[str] = []
    invalid: list[str] = []
    missing: list[str] = []
    for key in _unique(witnesses):
        lines = [s for s in parsed.signatures if key.matches(s)]
        if not lines:
            missing.append(str(key))
        elif any(key.verifies(parsed.text, s) for s in lines):
            valid.append(str(key))
        else:
            invalid.append(str(key))
    return CosignatureTally(tuple(valid), tuple(invalid), tuple(missing))


def _unique(keys: Iterable[WitnessKey]) -> list[WitnessKey]:
    seen: set[WitnessKey] = set()
    out: list[WitnessKey] = []
    for k in keys:
        if k not in seen:
            seen.add(k)
            out.append(k)
    return out
