"""`/readings/{device_id}:{seq}`: one reading, and its self-contained proof bundle."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, HTTPException, Request

from anchor.ledger import Block
from anchor.proof import build_bundle
from api.deps import StoreDep
from api.schemas import ReadingOut
from packproof.crypto import key_id, unb64
from packproof.reading import parse_reading_id
from packproof.timefmt import rfc3339

router = APIRouter(prefix="/readings", tags=["readings"])


async def _reading(store: StoreDep, reading_id: str) -> tuple[str, int, tuple[Any, ...]]:
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
    _, _, (_id, body, rx, height, index) = await _reading(store, reading_id)
    return ReadingOut(reading_id=reading_id, reading=orjson.loads(body), received_at=rfc3339(rx),
                      block_height=height, leaf_index=index)


@router.get("/{reading_id}/proof")
async def get_proof(request: Request, store: StoreDep, reading_id: str) -> dict[str, Any]:
    """The proof bundle: `packproof verify --bundle FILE` checks it offline."""
    device_id, seq, (_id, body, _rx, height, index) = await _reading(store, reading_id)
    if height is None:
        raise HTTPException(409, f"reading {reading_id!r} is stored but not sealed yet; "
                                 "blocks close at least every second, try again shortly")
    record = await store.block(height)
    device = await store.device(device_id)
    if record is None or device is None:
        raise HTTPException(409, f"reading {reading_id!r}: its block {height} or device is not in the store")
    block = Block.from_json({"header": orjson.loads(record.header), "hash": record.hash.hex(),
                             "signature": record.signature}, f"block {height}")
    leaves = await store.block_leaf_hashes(record)
    return build_bundle(reading_id=reading_id, body=body, device_id=device_id,
                        device_key=device.key_at(seq), leaf_index=index, block_leaves=leaves,
                        block=block, ledger_public_key=await signing_key(request, store, block))


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
