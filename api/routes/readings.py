"""`/readings/{device_id}:{seq}`: one reading, and its self-contained proof bundle."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, HTTPException, Request

from packproof.anchor.bundle import NotAReadingId, NotSealed, NotStored, StoredReading, proof_bundle, stored_reading
from packproof.api.deps import StoreDep
from packproof.api.schemas import ReadingOut
from packproof.timefmt import rfc3339

router = APIRouter(prefix="/readings", tags=["readings"])
STATUS = {NotAReadingId: 422, NotStored: 404, NotSealed: 409}


async def _reading(store: StoreDep, reading_id: str) -> StoredReading:
    try:
        return await stored_reading(store, reading_id)
    except (NotAReadingId, NotStored) as exc:
        raise HTTPException(STATUS[type(exc)], str(exc)) from None


@router.get("/{reading_id}", response_model=ReadingOut)
async def get_reading(store: StoreDep, reading_id: str) -> ReadingOut:
    r = await _reading(store, reading_id)
    return ReadingOut(reading_id=reading_id, reading=orjson.loads(r.body), received_at=rfc3339(r.received_at),
                      block_height=r.place.height if r.place else None,
                      leaf_index=r.place.index if r.place else None)


@router.get("/{reading_id}/proof")
async def get_proof(request: Request, store: StoreDep, reading_id: str) -> dict[str, Any]:
    """The proof bundle: `packproof verify --bundle FILE` checks it offline.

    Beside the reading it carries the sealed registry record that gives the device its key at
    the reading's seq (or says it has none), chosen from the sealed record leaves themselves.
    """
    try:
        bundle = await proof_bundle(store, request.app.state.ledger_keys, reading_id)
    except (NotAReadingId, NotStored, NotSealed) as exc:
        raise HTTPException(STATUS[type(exc)], str(exc)) from None
    return bundle.document()
