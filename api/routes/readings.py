"""`/readings/{device_id}:{seq}`: one reading, and its self-contained proof bundle."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import APIRouter, HTTPException, Request

from packproof.anchor.ledger import Block
from packproof.anchor.merkle import inclusion_proofs
from packproof.anchor.proof import build_bundle, key_record_in_force, sealed_leaf
from packproof.api.deps import StoreDep
from packproof.api.schemas import ReadingOut
from packproof.crypto import key_id, unb64
from packproof.reading import parse_reading_id
from packproof.records import ReadingRecord
from packproof.timefmt import rfc3339

router = APIRouter(prefix="/readings", tags=["readings"])


async def _reading(store: StoreDep, reading_id: str) -> tuple[str, int, ReadingRecord]:
    try:
        device_id, seq = parse_reading_id(reading_id)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    row = await store.reading(device_id, seq)
    if row is None:
        raise HTTPException(404, f"reading {reading_id!r} is not stored")
    return device_id, seq, row


@router.get("/{reading_id}", response_model=ReadingOut)
async def get_reading(store: StoreDep, reading_id: str) -> ReadingOut:
    _, _, row = await _reading(store, reading_id)
    return ReadingOut(reading_id=reading_id, reading=orjson.loads(row.body), received_at=rfc3339(row.received_at),
                      block_height=row.place.height if row.place else None,
                      leaf_index=row.place.index if row.place else None)


@router.get("/{reading_id}/proof")
async def get_proof(request: Request, store: StoreDep, reading_id: str) -> dict[str, Any]:
    """The proof bundle: `packproof verify --bundle FILE` checks it offline.

    Beside the reading it carries the sealed registry record that gives the device its key at
    the reading's seq (or says it has none), chosen from the sealed record leaves themselves.
    """
    device_id, seq, row = await _reading(store, reading_id)
    if row.place is None:
        raise HTTPException(409, f"reading {reading_id!r} is stored but not sealed yet; "
                                 "blocks close at least every second, try again shortly")
    records = await store.registry_records(device_id)
    chosen = key_record_in_force([r.body for r in records], device_id, seq)
    if chosen is None:
        raise HTTPException(409, f"reading {reading_id!r}: the registry holds no key record for device {device_id}")
    record = records[chosen]
    where = (await store.locate([record.id])).get(record.id)
    if where is None:
        raise HTTPException(409, f"reading {reading_id!r}: the registry record of device {device_id} is not "
                                 "sealed yet; try again shortly")
    reading, registry = await _sealed(request, store, [LeafAt(row.body, row.place.height, row.place.index),
                                                       LeafAt(record.body, where.height, where.index)])
    return build_bundle(reading, registry)


@dataclass(frozen=True, slots=True)
class LeafAt:
    text: bytes
    height: int
    index: int


async def _sealed(request: Request, store: StoreDep, leaves: list[LeafAt]) -> list[dict[str, Any]]:
    """Each leaf with its audit path and signed block; a block shared by several leaves (a registry
    record often shares the reading's) is read and its tree levels built once."""
    out: dict[LeafAt, dict[str, Any]] = {}
    for height in {leaf.height for leaf in leaves}:
        record = await store.block(height)
        if record is None:
            raise HTTPException(409, f"block {height} is not in the store")
        block = Block.from_json({"header": orjson.loads(record.header), "hash": record.hash.hex(),
                                 "signature": record.signature}, f"block {height}")
        key = await signing_key(request, store, block)
        hashes = await store.block_leaf_hashes(record)
        here = [leaf for leaf in leaves if leaf.height == height]
        for leaf, path in zip(here, inclusion_proofs([leaf.index for leaf in here], hashes), strict=True):
            out[leaf] = sealed_leaf(leaf.text, leaf.index, path, len(hashes), block, key)
    return [out[leaf] for leaf in leaves]


async def signing_key(request: Request, store: StoreDep, block: Block) -> bytes:
    """The ledger key that signed `block`: the genesis key, or one a rotation block announced."""
    keys: dict[str, bytes] = request.app.state.ledger_keys
    wanted = block.header["key_id"]
    if wanted not in keys:
        for header in await store.rotation_headers():
            announced = unb64(header["next_key"])
            keys[key_id(announced)] = announced
    if wanted not in keys:
        raise HTTPException(409, f"block {block.height} is signed by key {wanted}, which no rotation announced")
    return keys[wanted]
