"""C2SP signed notes (c2sp.org/signed-note) with Ed25519 keys: keys, signing, parsing, opening. Pure.

A note is a text signed by one or more keys; a transparency-log checkpoint is a note whose text
is the tree head (anchor/tlog_checkpoint.py), and a witness's cosignature is one more signature
line on it. This module is a building block for issue 16, not yet wired into the sealer, the
ledger, the API or the CLI.

The format (signed-note "Format"):

    <text, ending in a newline; it may hold blank lines>
    <a blank line>
    — <key name> <base64(4-byte big-endian key id || signature)>
    — ...

The dash is U+2014 followed by one space. A note must be valid UTF-8 with no ASCII control
characters but the newline; the text ends at the *last* blank line, and includes its final
newline. Key names are non-empty, with no Unicode space and no "+".

Keys ("Signatures", "Verifier keys"), for signature type 0x01 (Ed25519, RFC 8032):

* key id = the first 4 bytes, big-endian, of SHA-256(key name || 0x0A || 0x01 || 32-byte public key);
* verifier key (vkey) text ``<name>+<hex8(key id)>+<base64(0x01 || public key)>``;
* signer key text, as golang.org/x/mod/sumdb/note writes it (the spec does not define one):
  ``PRIVATE+KEY+<name>+<hex8(key id)>+<base64(0x01 || 32-byte seed)>``.

Parsing and opening follow golang.org/x/mod/sumdb/note (`Open`, `NewVerifier`, `NewSigner`,
`Sign`), which the spec grew out of, rule for rule: at most 100 signature lines; signatures by
unknown keys are kept aside, never an error by themselves ("Verifiers MUST ignore signatures
from unknown keys, even if they share a name or ID (but not both) with a known key"); a known
key whose signature fails rejects the whole note; repeated signatures by one key count once; a
note no known key signed is refused. Three deliberate differences, all stricter:

* base64 must be canonical (standard alphabet, padded, zero trailing bits), so one signature
  has exactly one spelling and a changed character is never silently the same signature;
* a verifier key whose public key is not a usable Ed25519 point (small order, not on the curve)
  is refused when it is read, not left to fail or, worse, to pass later
  (packproof.crypto.weak_key_problem);
* a text to be signed must itself follow the note rules (UTF-8, no control characters), so
  that what is signed always opens again.

Every refusal is a NoteError whose `reason` names what is wrong.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from packproof.crypto import public_key_bytes, weak_key_problem
from packproof.errors import NoteError

__all__ = [
    "ED25519",
    "MAX_SIGNATURES",
    "Note",
    "NoteSignature",
    "OpenedNote",
    "SignerKey",
    "VerifierKey",
    "key_id",
    "open_note",
    "parse_note",
    "sign_note",
    "valid_key_name",
]

ED25519: Final = 0x01  # signature type byte of Ed25519 (signed-note "Signature types")
MAX_SIGNATURES: Final = 100  # the Go package's limit; the spec asks verifiers to accept at least 16
SIGNATURE_PREFIX: Final = "\u2014 "  # em dash, space
_PRIVATE_PREFIX: Final = "PRIVATE+KEY+"

# Unicode's White_Space property, as Go's unicode.IsSpace tests it (str.isspace differs at the edges).
_SPACES: Final = frozenset(
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)


def valid_key_name(name: str) -> bool:
    """Non-empty UTF-8, with no Unicode space and no "+" (signed-note "Format"; Go's isValidName)."""
    if not name or "+" in name or any(ch in _SPACES for ch in name):
        return False
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, which no UTF-8 note can hold
        return False
    return True


def _check_name(name: str, what: str) -> None:
    if not valid_key_name(name):
        raise NoteError("bad-key-name", f"{what} {name!r} is not a key name (empty, or holds a space or '+')")


def key_id(name: str, sig_type: int, public_key: bytes) -> int:
    """SHA-256(key name || 0x0A || signature type || public key)[:4] as a big-endian integer (signed-note)."""
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([sig_type]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes | None:
    """Standard base64 (RFC 4648 §4) in its one canonical spelling, or None."""
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return data if _b64(data) == text else None



def _key_text_parts(text: str, kind: str, label: Callable[[str], str]) -> tuple[str, str, bytes]:
    """Name, hex key id and type-tagged key of ``<name>+<hex8 key id>+<base64(type || key)>``, the
    shape of both key texts. As Go's note package: the base64 part may itself hold "+", so only
    the first two "+" split. `label(name)` names the key in errors (a signer key's text is secret)."""
    name, _, rest = text.partition("+")
    id_hex, _, key64 = rest.partition("+")
    if len(id_hex) != 8 or any(c not in "0123456789abcdefABCDEF" for c in id_hex):
        raise NoteError(f"bad-{kind}-key", f"{label(name)}: the key id is not 8 hex digits")
    _check_name(name, f"{kind} key name")
    raw = _unb64(key64)
    if not raw:
        raise NoteError("bad-base64", f"{label(name)}: the key is not canonical base64")
    return name, id_hex, raw

@dataclass(frozen=True)
class VerifierKey:
    """A note verifier key: a name and a 32-byte Ed25519 public key; its key id follows from both."""

    name: str
    public_key: bytes
    key_id: int = field(init=False)
    _key: Ed25519PublicKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_name(self.name, "key name")
        problem = weak_key_problem(self.public_key)
        if problem:
            raise NoteError("bad-public-key", f"verifier key {self.name}: {problem}")
        object.__setattr__(self, "key_id", key_id(self.name, ED25519, self.public_key))
        object.__setattr__(self, "_key", Ed25519PublicKey.from_public_bytes(self.public_key))

    @classmethod
    def parse(cls, vkey: str) -> VerifierKey:
        """Read ``<name>+<hex8 key id>+<base64(0x01 || public key)>`` (signed-note "Verifier keys").

        As Go's NewVerifier: the base64 part may itself hold "+", so only the first two "+"
        split; the key id must be the one the name and key give.
        """
        name, id_hex, raw = _key_text_parts(vkey, "verifier", lambda _: f"verifier key {vkey!r}")
        if int(id_hex, 16) != key_id(name, raw[0], raw[1:]):
            raise NoteError(
                "key-id-mismatch",
                f"verifier key {vkey!r}: key id {id_hex} is not the one name and key give "
                f"({key_id(name, raw[0], raw[1:]):08x})",
            )
        if raw[0] != ED25519:
            raise NoteError("unknown-algorithm", f"verifier key {vkey!r}: signature type {raw[0]:#04x} is not Ed25519")
        if len(raw) != 33:
            raise NoteError(
                "bad-verifier-key", f"verifier key {vkey!r}: an Ed25519 key is 32 bytes, not {len(raw) - 1}"
            )
        return cls(name, raw[1:])

    def __str__(self) -> str:
        """The vkey text, ``<name>+<hex8 key id>+<base64(0x01 || public key)>``."""
        return f"{self.name}+{self.key_id:08x}+{_b64(bytes([ED25519]) + self.public_key)}"

    def verifies(self, text: bytes, signature: bytes) -> bool:
        """Whether `signature` (the bytes after the key id) is this key's Ed25519 signature of `text`."""
        if len(signature) != 64:
            return False
        try:
            self._key.verify(signature, text)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: the key's name and id, and the signature bytes after the id."""

    name: str
    key_id: int
    signature: bytes

    def __post_init__(self) -> None:
        if not 0 <= self.key_id < 2**32:
            raise NoteError("bad-key-id", f"key id {self.key_id} of {self.name} is not a 32-bit number")

    def line(self) -> str:
        """``— <name> <base64(4-byte id || signature)>`` and its newline."""
        return f"{SIGNATURE_PREFIX}{self.name} {_b64(self.key_id.to_bytes(4, 'big') + self.signature)}\n"


@dataclass(frozen=True)
class SignerKey:
    """A note signer: a name and an Ed25519 private key (its 32-byte seed). The seed never prints."""

    name: str
    seed: bytes = field(repr=False)
    _key: Ed25519PrivateKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_name(self.name, "key name")
        if len(self.seed) != 32:
            raise NoteError(
                "bad-signer-key", f"signer key {self.name}: an Ed25519 seed is 32 bytes, not {len(self.seed)}"
            )
        object.__setattr__(self, "_key", Ed25519PrivateKey.from_private_bytes(self.seed))

    @classmethod
    def from_private_key(cls, name: str, key: Ed25519PrivateKey) -> SignerKey:
        """A signer for an Ed25519 key packproof already holds (the ledger key, say) under `name`."""
        return cls(name, key.private_bytes_raw())

    @classmethod
    def parse(cls, skey: str) -> SignerKey:
        """Read ``PRIVATE+KEY+<name>+<hex8 key id>+<base64(0x01 || seed)>`` (Go's NewSigner).

        The key id is checked against the public key the seed gives, so a mistyped or
        mismatched signer key fails here rather than signing notes nobody can verify.
        """
        if not skey.startswith(_PRIVATE_PREFIX):
            raise NoteError("bad-signer-key", "a signer key starts with PRIVATE+KEY+")
        name, id_hex, raw = _key_text_parts(skey.removeprefix(_PRIVATE_PREFIX), "signer",
                                            lambda n: f"signer key for {n!r}")  # never echo the secret
        if raw[0] != ED25519:
            raise NoteError(
                "unknown-algorithm", f"signer key for {name!r}: signature type {raw[0]:#04x} is not Ed25519"
            )
        if len(raw) != 33:
            raise NoteError(
                "bad-signer-key", f"signer key for {name!r}: an Ed25519 seed is 32 bytes, not {len(raw) - 1}"
            )
        signer = cls(name, raw[1:])
        if int(id_hex, 16) != signer.key_id:
            raise NoteError(
                "key-id-mismatch",
                f"signer key for {name!r}: key id {id_hex} is not its public key's ({signer.key_id:08x})",
            )
        return signer

    def __str__(self) -> str:
        return f"SignerKey({self.name}+{self.key_id:08x})"

    def text(self) -> str:
        """The secret signer key text, ``PRIVATE+KEY+<name>+<hex8 key id>+<base64(0x01 || seed)>``."""
        return f"{_PRIVATE_PREFIX}{self.name}+{self.key_id:08x}+{_b64(bytes([ED25519]) + self.seed)}"

    @property
    def verifier(self) -> VerifierKey:
        return VerifierKey(self.name, public_key_bytes(self._key))

    @property
    def key_id(self) -> int:
        return key_id(self.name, ED25519, public_key_bytes(self._key))

    def sign(self, text: bytes) -> NoteSignature:
        """This key's signature of a note text (Ed25519 is deterministic: same text, same line)."""
        return NoteSignature(self.name, self.key_id, self._key.sign(text))


@dataclass(frozen=True)
class Note:
    """A note as written: its text and every signature line in order, none of them checked yet."""

    text: str
    signatures: tuple[NoteSignature, ...]


@dataclass(frozen=True)
class OpenedNote:
    """A note at least one known key signed: its text, the verified and the unknown signatures.

    `unverified` holds the signatures of keys the opener does not know (a witness's cosignature,
    a rotated-out log key): kept so they can be passed on, never trusted.
    """

    text: str
    verified: tuple[NoteSignature, ...]
    unverified: tuple[NoteSignature, ...]


def _check_characters(msg: bytes, what: str) -> str:
    """The note decoded, if it is UTF-8 with no ASCII control character but the newline."""
    try:
        text = msg.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NoteError("not-utf8", f"{what} is not valid UTF-8 (byte {exc.start})") from None
    for i, ch in enumerate(text):
        if ch < " " and ch != "\n":
            raise NoteError("control-character", f"{what} holds control character {ch!r} at character {i}")
    return text


def _parse_signature_line(line: str) -> NoteSignature:
    if not line.startswith(SIGNATURE_PREFIX):
        raise NoteError("bad-signature-line", f"signature line {line!r} does not start with '\u2014 '")
    name, _, sig64 = line[len(SIGNATURE_PREFIX) :].partition(" ")
    _check_name(name, "signature key name")
    raw = _unb64(sig64) if sig64 else None
    if raw is None:
        raise NoteError("bad-base64", f"signature by {name} is not canonical base64: {sig64!r}")
    if len(raw) < 5:
        raise NoteError("short-signature", f"signature by {name} has {len(raw)} bytes: a key id and at least one more")
    return NoteSignature(name, int.from_bytes(raw[:4], "big"), raw[4:])


def parse_note(msg: bytes) -> Note:
    """Split a signed note into its text and signature lines, refusing what is malformed.

    Checks syntax only (Go's Open before it looks up keys): the characters, the blank line
    before the signatures, every signature line's form, at most MAX_SIGNATURES of them. No
    signature is verified: use `open_note` for that.
    """
    decoded = _check_characters(msg, "note")
    split = decoded.rfind("\n\n")
    if split < 0:
        raise NoteError("no-signature-block", "note has no blank line before signature lines")
    text, block = decoded[: split + 1], decoded[split + 2 :]
    if not block:
        raise NoteError("no-signatures", "note has no signature lines")
    if not block.endswith("\n"):
        raise NoteError("unterminated", "note's last signature line does not end in a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(
            "too-many-signatures", f"note has {len(lines)} signature lines, at most {MAX_SIGNATURES} are read"
        )
    return Note(text, tuple(_parse_signature_line(line) for line in lines))


def open_note(msg: bytes, known: Iterable[VerifierKey]) -> OpenedNote:
    """The note, once every signature by a known key verifies and at least one does.

    A key is known by its name and key id together; a list naming one pair twice is ambiguous
    (Go's VerifierList: someone tampered with it) and refused once a signature names that pair.
    Signatures by unknown keys are returned unverified, identical lines once; a second signature
    by a known key is dropped unchecked, as Go does (a note counts each key once).
    """
    keys: dict[tuple[str, int], VerifierKey] = {}
    ambiguous: set[tuple[str, int]] = set()
    for v in known:
        k = (v.name, v.key_id)
        if k in keys:
            ambiguous.add(k)
        keys[k] = v
    note = parse_note(msg)
    text = note.text.encode()
    verified: list[NoteSignature] = []
    unverified: list[NoteSignature] = []
    seen: set[tuple[str, int]] = set()
    for sig in note.signatures:
        k = (sig.name, sig.key_id)
        if k in ambiguous:
            raise NoteError("ambiguous-key", f"two known keys are named {sig.name}+{sig.key_id:08x}")
        verifier = keys.get(k)
        if verifier is None:
            if sig not in unverified:
                unverified.append(sig)
            continue
        if k in seen:
            continue
        seen.add(k)
        if not verifier.verifies(text, sig.signature):
            raise NoteError("invalid-signature", f"signature by known key {sig.name}+{sig.key_id:08x} does not verify")
        verified.append(sig)
    if not verified:
        signers = ", ".join(f"{s.name}+{s.key_id:08x}" for s in unverified)
        raise NoteError("unknown-key", f"note has no signature by a known key (signed by {signers})")
    return OpenedNote(note.text, tuple(verified), tuple(unverified))


def sign_note(text: str, signers: Sequence[SignerKey], keep: Sequence[NoteSignature] = ()) -> bytes:
    """The signed note: `text`, a blank line, the signatures in `keep`, then each signer's.

    As Go's Sign: a kept signature by a key that signs again is replaced by the new one (so
    re-signing a note is idempotent), and the text must end in a newline. The text must also
    pass the note's own character rules, so that what is signed here always opens again.
    """
    if not text.endswith("\n"):
        raise NoteError("text-not-terminated", "a note text must end in a newline")
    try:
        encoded = text.encode("utf-8")
    except UnicodeEncodeError:
        raise NoteError("not-utf8", "note text is not valid UTF-8 (it holds a lone surrogate)") from None
    _check_characters(encoded, "note text")
    if len(keep) + len(signers) > MAX_SIGNATURES:
        raise NoteError("too-many-signatures", f"a note carries at most {MAX_SIGNATURES} signatures")
    fresh = [s.sign(encoded) for s in signers]
    replaced = {(s.name, s.key_id) for s in fresh}
    for s in keep:
        _check_name(s.name, "signature key name")
    lines = [s.line() for s in keep if (s.name, s.key_id) not in replaced] + [s.line() for s in fresh]
    return (text + "\n" + "".join(lines)).encode("utf-8")
