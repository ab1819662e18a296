"""Checkpoints: the ledger's head and public key, signed, for auditors to keep.

An auditor who saved a checkpoint can later show that the ledger still holds the same
block at that height (nothing before it was rewritten) and pin every check to the key
in it, without asking the operator which key to trust.

    {"format": "packproof-checkpoint/1", "height", "hash", "key_id", "ledger_public_key",
     "made_at", "signature"}   # signature: Ed25519 over the RFC 8785 form of the rest
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from packproof.anchor.ledger import Block
from packproof.canonical import canonical_json
from packproof.crypto import b64, key_id, public_key_bytes, unb64
from packproof.errors import ConfigError, LedgerIntegrityError
from packproof.timefmt import rfc3339

FORMAT = "packproof-checkpoint/1"


def make_checkpoint(head: Block, key: Ed25519PrivateKey) -> dict[str, Any]:
    public = public_key_bytes(key)
    body = {"format": FORMAT, "height": head.height, "hash": head.hash.hex(), "key_id": key_id(public),
            "ledger_public_key": b64(public), "made_at": rfc3339()}
    return {**body, "signature": b64(key.sign(canonical_json(body)))}


def checkpoint_key(cp: dict[str, Any]) -> bytes:
    """The checkpoint's key, once its own signature holds; bad shape is bad input."""
    try:
        body = {k: v for k, v in cp.items() if k != "signature"}
        if body.get("format") != FORMAT or set(body) != {"format", "height", "hash", "key_id", "ledger_public_key",
                                                        "made_at"}:
            raise ConfigError(f"not a packproof checkpoint (expected format {FORMAT!r} and its fields)")
        public = unb64(cp["ledger_public_key"])
        Ed25519PublicKey.from_public_bytes(public).verify(unb64(cp["signature"]), canonical_json(body))
    except InvalidSignature as exc:
        raise LedgerIntegrityError("the checkpoint's own signature does not verify") from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"checkpoint is malformed: {exc}") from exc
    if key_id(public) != cp["key_id"]:
        raise LedgerIntegrityError(f"checkpoint key id {cp['key_id']} does not match its key {key_id(public)}")
    return public


def check_against(cp: dict[str, Any], blocks: Sequence[Block]) -> None:
    """The ledger still holds the checkpointed block at its height."""
    height = cp["height"]
    if height >= len(blocks):
        raise LedgerIntegrityError(f"the ledger ends at block {len(blocks) - 1}, before the checkpoint's block "
                                   f"{height}: it was truncated", height)
    if blocks[height].hash.hex() != cp["hash"]:
        raise LedgerIntegrityError(f"block {height} is now {blocks[height].hash.hex()}, the checkpoint saw "
                                   f"{cp['hash']}: the ledger was rewritten", height)
