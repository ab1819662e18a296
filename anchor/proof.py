"""Proof bundles: one JSON document holding everything an offline check of a reading needs.

    {"format": "packproof-proof/1", "reading_id", "reading" (canonical text incl. sig),
     "device": {"device_id", "public_key" | null, "trust"},
     "leaf_hash", "leaf_index", "tree_size", "audit_path": [hex, ...],
     "block": {"header", "hash", "signature"}, "ledger_public_key"}

`verify_bundle` is pure: it checks each link in order and reports every result, so the
command line can print which link broke. Nothing in the bundle is trusted on its own
word: the leaf is re-hashed, the path re-computed (RFC 6962 / RFC 9162 §2.1.3.2), the
block header re-hashed and its signature checked against the key the user trusts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError

from anchor.ledger import Block, block_hash, next_key_of, verify_chain
from anchor.merkle import inclusion_proof, leaf_hash, root_from_inclusion_proof
from packproof.canonical import canonical_bytes, signing_bytes
from packproof.crypto import DeviceVerifier, b64, key_id, unb64
from packproof.errors import ConfigError, LedgerIntegrityError, ProofError
from packproof.reading import Reading

FORMAT = "packproof-proof/1"
TRUST_DEVICE = "device-signature"
TRUST_INGESTOR = "ingestor"  # a tracker that cannot sign: trust begins at our ingestor


def build_bundle(*, reading_id: str, body: bytes, device_id: str, device_key: bytes | None,
                 leaf_index: int, block_leaves: Sequence[bytes], block: Block,
                 ledger_public_key: bytes) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "reading_id": reading_id,
        "reading": body.decode(),
        "device": {
            "device_id": device_id,
            "public_key": b64(device_key) if device_key else None,
            "trust": TRUST_DEVICE if device_key else TRUST_INGESTOR,
        },
        "leaf_hash": block_leaves[leaf_index].hex(),
        "leaf_index": leaf_index,
        "tree_size": len(block_leaves),
        "audit_path": [h.hex() for h in inclusion_proof(leaf_index, block_leaves)],
        "block": block.to_json(),
        "ledger_public_key": b64(ledger_public_key),
    }


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool | None  # None: not checked (said why in detail)
    detail: str


def _field(bundle: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    value = bundle.get(name)
    if not isinstance(value, kind):
        raise ConfigError(f"proof bundle: field {name!r} is missing or not a {getattr(kind, '__name__', kind)}")
    return value


def parse_bundle(text: str | bytes) -> dict[str, Any]:
    """Shape checks only: a malformed bundle is bad input (exit 2), not an invalid proof."""
    try:
        bundle = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"proof bundle is not JSON: {exc}") from exc
    if not isinstance(bundle, dict) or bundle.get("format") != FORMAT:
        raise ConfigError(f"not a packproof proof bundle (expected format {FORMAT!r})")
    for name, kind in (("reading_id", str), ("reading", str), ("device", dict), ("leaf_hash", str),
                       ("leaf_index", int), ("tree_size", int), ("audit_path", list),
                       ("block", dict), ("ledger_public_key", str)):
        _field(bundle, name, kind)
    return bundle


def verify_bundle(bundle: dict[str, Any], trusted_ledger_key: bytes | None = None,
                  chain: Sequence[Block] | None = None) -> list[Check]:
    """Every check, in order; the proof holds only if none is False.

    `chain`: the ledger's blocks from this block's height up to the head (from the API
    or a ledger file), to show the block is in the chain; None when there is none.
    """
    out: list[Check] = []
    try:
        block = Block.from_json(bundle["block"], "bundle block")
        ledger_key = unb64(bundle["ledger_public_key"])
        leaf_given = bytes.fromhex(bundle["leaf_hash"])
        path = [bytes.fromhex(h) for h in bundle["audit_path"]]
        device = bundle["device"]
        device_key = unb64(device["public_key"]) if device.get("public_key") else None
        body = bundle["reading"].encode()
    except (LedgerIntegrityError, ValueError, TypeError, KeyError) as exc:
        raise ConfigError(f"proof bundle is malformed: {exc}") from exc

    # 1. The device signature over the reading's canonical bytes.
    try:
        reading = Reading.model_validate_json(body)
    except ValidationError as exc:
        return [Check("reading", False, f"the reading in the bundle is not a valid reading: {exc.errors()[0]['msg']}")]
    if canonical_bytes(reading) != body:
        out.append(Check("reading", False, "the reading text is not in RFC 8785 canonical form"))
    if device_key is None:
        out.append(Check("device signature", None,
                         f"device {device['device_id']} is registered as unsigned: trust for this "
                         "reading begins at the ingestor"))
    elif reading.sig is None:
        out.append(Check("device signature", False, "the reading carries no signature"))
    else:
        ok = DeviceVerifier(device_key).verify(unb64(reading.sig), signing_bytes(reading))
        out.append(Check("device signature", ok,
                         f"Ed25519 by device {reading.device_id} key {key_id(device_key)}"
                         + ("" if ok else ": signature does not verify")))

    # 2. The leaf hash.
    computed_leaf = leaf_hash(body)
    out.append(Check("leaf hash", computed_leaf == leaf_given,
                     f"SHA-256(0x00 || reading) = {computed_leaf.hex()}"
                     + ("" if computed_leaf == leaf_given else f", bundle says {leaf_given.hex()}")))

    # 3. The Merkle path to the block's root.
    root = block.header["merkle_root"]
    if bundle["tree_size"] != block.header["leaf_count"]:
        out.append(Check("merkle path", False,
                         f"tree size {bundle['tree_size']} differs from the block's leaf_count "
                         f"{block.header['leaf_count']}"))
    else:
        try:
            got = root_from_inclusion_proof(bundle["leaf_index"], bundle["tree_size"], computed_leaf, path)
            ok = got.hex() == root
            out.append(Check("merkle path", ok,
                             f"leaf {bundle['leaf_index']} of {bundle['tree_size']} -> root {got.hex()}"
                             + ("" if ok else f", block root is {root}")))
        except ProofError as exc:
            out.append(Check("merkle path", False, str(exc)))

    # 4. The block hash.
    computed_block = block_hash(block.header)
    ok = computed_block == block.hash
    out.append(Check("block hash", ok, f"block {block.height} header hashes to {computed_block.hex()}"
                     + ("" if ok else f", bundle says {block.hash.hex()}")))

    # 5. The block signature, with the key the user trusts.
    key = trusted_ledger_key or ledger_key
    if trusted_ledger_key is not None and trusted_ledger_key != ledger_key:
        out.append(Check("block signature", False,
                         f"bundle names ledger key {key_id(ledger_key)}, you trust {key_id(trusted_ledger_key)}"))
    else:
        try:
            Ed25519PublicKey.from_public_bytes(key).verify(block.signature, block.hash)
            ok = block.header["key_id"] == key_id(key)
            note = "" if trusted_ledger_key else " (key taken from the bundle; pin it with --ledger-key)"
            out.append(Check("block signature", ok, f"Ed25519 by ledger key {key_id(key)}{note}"))
        except InvalidSignature:
            out.append(Check("block signature", False, f"does not verify with ledger key {key_id(key)}"))

    # 6. The block in the chain.
    if chain is None:
        out.append(Check("block in chain", None, "no chain given (use --api or --ledger to check)"))
    elif not chain or chain[0] != block:
        theirs = f"block {chain[0].hash.hex()}" if chain else "no block"
        out.append(Check("block in chain", False,
                         f"the ledger holds {theirs} at height {block.height}, which differs from this "
                         f"bundle's block {block.hash.hex()}"))
    else:
        try:
            verify_chain(chain[1:], next_key_of(block) or key, start_prev=block)
            out.append(Check("block in chain", True,
                             f"block {block.height} links to head {chain[-1].height} through "
                             f"{len(chain) - 1} later signed blocks"))
        except LedgerIntegrityError as exc:
            out.append(Check("block in chain", False, str(exc)))
    return out
