"""Ed25519 keys for devices and for the ledger.

Two libraries, each where it is strongest (measured on this machine, 250-byte message):
`cryptography` signs and serializes keys (PEM files, 0600); PyNaCl (libsodium) verifies
device signatures on the ingest hot path at ~46 us against ~96 us for `cryptography`,
and verification is the largest single cost of an honest ingestor.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from nacl.bindings import crypto_core_ed25519_is_valid_point, crypto_sign_open
from nacl.exceptions import BadSignatureError

from packproof.errors import ConfigError

__all__ = [
    "BadSignatureError",
    "DeviceVerifier",
    "b64",
    "key_id",
    "load_or_create_ledger_key",
    "new_private_key",
    "private_key_from_seed",
    "public_key_bytes",
    "read_public_key",
    "unb64",
    "weak_key_problem",
    "write_private_key",
]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def weak_key_problem(public_key: bytes) -> str | None:
    """Why `public_key` cannot be a device's Ed25519 key, or None.

    An all-zero key, another small-order point or a non-canonical encoding is not a key anyone
    holds the private half of, and some verifiers accept forged signatures for small-order
    points: libsodium's point check refuses all of them, and every real key passes it.
    """
    if len(public_key) != 32:
        return f"a key is 32 bytes, not {len(public_key)}"
    if not crypto_core_ed25519_is_valid_point(public_key):
        return "not a usable Ed25519 public key (all zero, of small order, or not a curve point)"
    return None


def public_key_bytes(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public_key: bytes) -> str:
    """A short, stable name for a public key: first 16 hex digits of its SHA-256."""
    return hashlib.sha256(public_key).hexdigest()[:16]


def private_key_from_seed(seed: bytes) -> Ed25519PrivateKey:
    """Deterministic key from 32 seed bytes: lets the simulator re-create a fleet from --seed."""
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(seed).digest())


class DeviceVerifier:
    """Verifies one device's signatures; built once per registered key and cached."""

    __slots__ = ("public_key",)

    def __init__(self, public_key: bytes) -> None:
        if len(public_key) != 32:
            raise ValueError(f"Ed25519 public key must be 32 bytes, got {len(public_key)}")
        self.public_key = public_key

    def verify(self, signature: bytes, message: bytes) -> bool:
        return signature_holds(self.public_key, signature, message)


def signature_holds(public_key: bytes, signature: bytes, message: bytes) -> bool:
    try:
        crypto_sign_open(signature + message, public_key)
    except BadSignatureError:
        return False
    return True


def verify_many(checks: list[tuple[bytes, bytes, bytes]]) -> list[bool]:
    """(public key, signature, message) -> does it verify; run in the ingestor's verifier processes."""
    return [signature_holds(*c) for c in checks]


def new_private_key() -> Ed25519PrivateKey:
    """A fresh random Ed25519 key (a device's, or the ledger's)."""
    return Ed25519PrivateKey.generate()


def write_private_key(path: Path, key: Ed25519PrivateKey, *, overwrite: bool = False) -> None:
    """Write `key` as an unencrypted PKCS8 PEM file that only its owner can read: mode 0600 is
    given as the file is made, so the key is never readable by others, not even for a moment.

    A file already at `path` is FileExistsError (O_EXCL): a key is never overwritten by mistake.
    `overwrite` is for a staging file of the caller's own (a device key written before the
    registry names it), which a failed earlier attempt may have left behind.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL), 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))


def load_or_create_ledger_key(path: Path) -> Ed25519PrivateKey:
    """The sealer's signing key, created on first use, readable by its owner only."""
    if path.exists():
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except ValueError as exc:
            raise ConfigError(f"ledger key {path} is not a PEM private key: {exc}") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError(f"ledger key {path} is not an Ed25519 key")
        return key
    key = new_private_key()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_private_key(path, key)
    path.with_suffix(".pub").write_text(b64(public_key_bytes(key)) + "\n")
    return key


def read_public_key(text_or_path: str) -> bytes:
    """A trusted ledger public key given as base64 text or as a file holding it (or a PEM)."""
    p = Path(text_or_path)
    try:
        text = p.read_text().strip() if p.exists() else text_or_path.strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the public key file {text_or_path}: {exc}") from exc
    if text.startswith("-----BEGIN PUBLIC KEY-----"):
        try:
            pub = serialization.load_pem_public_key(text.encode())
        except ValueError as exc:
            raise ConfigError(f"{text_or_path}: not a PEM public key: {exc}") from exc
        if not isinstance(pub, Ed25519PublicKey):
            raise ConfigError(f"{text_or_path}: not an Ed25519 public key")
        return public_key_bytes(pub)
    try:
        raw = unb64(text)
    except ValueError as exc:
        raise ConfigError(f"ledger public key {text_or_path!r} is neither a file nor base64") from exc
    if len(raw) != 32:
        raise ConfigError(f"ledger public key must be 32 bytes, got {len(raw)}")
    return raw
