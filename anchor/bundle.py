"""A reading's proof bundle, assembled from the store: the one place a bundle is built.

The API's proof route is one call to `proof_bundle`, which answers the typed `ProofBundle`
that `packproof verify` parses a bundle into; `ProofBundle.document()` is the JSON served.
What cannot be proven yet (the reading or its registry record not sealed, a block missing)
is `NotSealed`, with the message a client acts on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError

from packproof.anchor.ledger import Block, key_in_force, log_of
from packproof.anchor.merkle import inclusion_proofs
from packproof.anchor.proof import FORMAT, LogProof, ProofBundle, SealedLeaf, key_record_in_force
from packproof.crypto import b64, key_id
from packproof.errors import LedgerIntegrityError, PackproofError
from packproof.reading import parse_reading_id
from packproof.records import LeafPlace, ReadingRecord
from packproof.store import Store


class NotAReadingId(PackproofError):
    """The text is not `device_id:seq` (HTTP 422)."""


class NotStored(PackproofError):
    """No reading with that id is stored (HTTP 404)."""


class NotSealed(PackproofError):
    """The reading is stored, but part of its proof is not sealed (or not found) yet (HTTP 409)."""


@dataclass(frozen=True, slots=True)
class StoredReading:
    """A stored reading with the id it was asked by: the store's record and where it is sealed."""

    device_id: str
    seq: int
    record: ReadingRecord

    @property
    def body(self) -> bytes:
        return self.record.body

    @property
    def received_at(self) -> float:
        return self.record.received_at

    @property
    def place(self) -> LeafPlace | None:
        """None until a block seals it."""
        return self.record.place


async def stored_reading(store: Store, reading_id: str) -> StoredReading:
    """The stored reading `reading_id` ("device:seq", as a client spells it) names."""
    try:
        device_id, seq = parse_reading_id(reading_id)
    except ValueError as exc:
        raise NotAReadingId(str(exc)) from None
    row = await store.reading(device_id, seq)
    if row is None:
        raise NotStored(f"reading {reading_id!r} is not stored")
    return StoredReading(device_id, seq, row)


class LedgerKeys:
    """The ledger keys that sign the store's blocks: the genesis key, followed through the
    rotations the store's blocks announce (`ledger.key_in_force`). The rotation headers are read
    again only when a block above those already covered is asked for: rotations are rare."""

    def __init__(self, genesis_key: bytes) -> None:
        self.genesis_key = genesis_key
        self._rotations: list[dict[str, Any]] = []
        self._covered = 0  # every rotation below this height is in _rotations

    async def signing_key(self, store: Store, block: Block) -> bytes:
        """The key in force at `block`'s height, which must be the key that signed it."""
        if block.height > self._covered:
            # Block `height` is stored, so every block below it is: one read covers them all.
            self._rotations, self._covered = await store.rotation_headers(), block.height
        key = key_in_force(self.genesis_key, self._rotations, block.height)
        wanted = block.header["key_id"]
        if wanted != key_id(key):
            raise NotSealed(f"block {block.height} is signed by key {wanted}, which no rotation announced")
        return key


@dataclass(frozen=True, slots=True)
class _LeafAt:
    text: bytes
    height: int
    index: int


async def proof_bundle(store: Store, keys: LedgerKeys, reading_id: str) -> ProofBundle:
    """The proof bundle of `reading_id`: beside the reading it carries the sealed registry record
    that gives the device its key at the reading's seq (or says it has none), chosen from the
    sealed record leaves themselves."""
    reading = await stored_reading(store, reading_id)
    if reading.place is None:
        raise NotSealed(f"reading {reading_id!r} is stored but not sealed yet; "
                        "blocks close at least every second, try again shortly")
    device_id = reading.device_id
    records = await store.registry_records(device_id)
    chosen = key_record_in_force([r.body for r in records], device_id, reading.seq)
    if chosen is None:
        raise NotSealed(f"reading {reading_id!r}: the registry holds no key record for device {device_id}")
    record = records[chosen]
    where = (await store.locate([record.id])).get(record.id)
    if where is None:
        raise NotSealed(f"reading {reading_id!r}: the registry record of device {device_id} is not "
                        "sealed yet; try again shortly")
    proven, registry = await _sealed(store, keys, [_LeafAt(reading.body, reading.place.height, reading.place.index),
                                                   _LeafAt(record.body, where.height, where.index)])
    return ProofBundle(format=FORMAT, reading=proven, registry=registry, log=await _log_proof(store, proven))


async def _sealed(store: Store, keys: LedgerKeys, leaves: list[_LeafAt]) -> list[SealedLeaf]:
    """Each leaf with its audit path and signed block. In a v2 block the path is the leaf's in the
    log at the block's log size, read from the stored tiles; in a v1 block (sealed before the log)
    it is rebuilt from the block's leaves, once for the leaves that share a block."""
    out: dict[_LeafAt, SealedLeaf] = {}
    for height in {leaf.height for leaf in leaves}:
        record = await store.block(height)
        if record is None:
            raise NotSealed(f"block {height} is not in the store")
        block = Block.from_json({"header": orjson.loads(record.header), "hash": record.hash.hex(),
                                 "signature": record.signature}, f"block {height}")
        key = await keys.signing_key(store, block)
        here = [leaf for leaf in leaves if leaf.height == height]
        logged = log_of(block.header)
        if logged is not None:
            first = logged[0] - record.leaf_count
            paths = await store.log_inclusions([(first + leaf.index, logged[0]) for leaf in here])
            for leaf, path in zip(here, paths, strict=True):
                out[leaf] = _sealed_leaf(leaf, first + leaf.index, path, logged[0], block, key)
            continue
        hashes = await store.block_leaf_hashes(record)
        for leaf, path in zip(here, inclusion_proofs([leaf.index for leaf in here], hashes), strict=True):
            out[leaf] = _sealed_leaf(leaf, leaf.index, path, len(hashes), block, key)
    return [out[leaf] for leaf in leaves]


def _sealed_leaf(leaf: _LeafAt, index: int, audit_path: list[bytes], tree_size: int, block: Block,
                 key: bytes) -> SealedLeaf:
    """The SEALED part of a bundle, typed as the verifier types it; stored data that does not
    type-check (a block altered in the database) is a broken ledger, named by the field."""
    try:
        return SealedLeaf.model_validate({
            "leaf": leaf.text.decode(), "leaf_index": index, "tree_size": tree_size,
            "audit_path": [h.hex() for h in audit_path], "block": block.to_json(), "ledger_public_key": b64(key)})
    except (ValidationError, UnicodeDecodeError) as exc:
        raise LedgerIntegrityError(f"block {block.height}, leaf {leaf.index}: the stored proof does not "
                                   f"type-check: {exc}", block.height) from None


# ---- shared with anchor/custody_proof.py: a custody bundle's leaves are sealed leaves like these ----

LeafAt = _LeafAt  # a leaf's bytes and where it is sealed (block height, index in the block)


async def sealed_leaves(store: Store, keys: LedgerKeys, leaves: list[_LeafAt]) -> list[SealedLeaf]:
    """Each leaf with its audit path and signed block (a shared block read once)."""
    return await _sealed(store, keys, leaves)


async def _witnessed(store: Store, index: int) -> LogProof | None:
    """The leaf at log `index` in the largest checkpoint witnesses cosigned, with their cosignatures
    (issue 16, witnesses): the sealer signs a checkpoint per block, the witnesses are asked for the
    latest only, so a block's own checkpoint may never be cosigned. None when no cosigned checkpoint
    covers the leaf yet."""
    checkpoint = await store.latest_cosigned_checkpoint()
    if checkpoint is None or checkpoint.size <= index:
        return None
    path = await store.log_inclusion(index, checkpoint.size)
    return LogProof(index=index, size=checkpoint.size, checkpoint=await store.cosigned_note(checkpoint),
                    path=[b64(h) for h in path])


async def _log_proof(store: Store, sealed: SealedLeaf) -> LogProof | None:
    """The leaf's inclusion in the log at a signed checkpoint: the one signed with its block (then the
    path is the one SEALED already carries), or the latest for a leaf of a v1 block."""
    header = sealed.block.header
    if header.log_size is not None and (witnessed := await _witnessed(store, sealed.leaf_index)) is not None:
        return witnessed
    if header.log_size is not None:
        checkpoint = await store.checkpoint_at(header.log_size)
        if checkpoint is not None:
            return LogProof(index=sealed.leaf_index, size=checkpoint.size, checkpoint=checkpoint.note,
                            path=[b64(bytes.fromhex(h)) for h in sealed.audit_path])
        index = sealed.leaf_index
    else:
        place = (await store.log_places([header.height])).get(header.height)
        if place is None:
            return None  # the log does not reach this block yet (being built over an old store)
        index = place.end - header.leaf_count + sealed.leaf_index
    if (witnessed := await _witnessed(store, index)) is not None:
        return witnessed
    checkpoint = await store.latest_checkpoint()
    if checkpoint is None or checkpoint.size <= index:
        return None
    path = await store.log_inclusion(index, checkpoint.size)
    note = await store.cosigned_note(checkpoint)
    return LogProof(index=index, size=checkpoint.size, checkpoint=note, path=[b64(h) for h in path])
