"""`/ledger`: the chain of signed blocks, for auditors and for `packproof verify --api`."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, HTTPException, Query, Request

from packproof.api.deps import MAX_ROW, StoreDep
from packproof.api.schemas import BlockOut, BlockPage, LedgerHead
from packproof.crypto import b64, key_id
from packproof.records import BlockRecord

router = APIRouter(prefix="/ledger", tags=["ledger"])


def block_out(b: BlockRecord) -> BlockOut:
    return BlockOut(header=orjson.loads(b.header), hash=b.hash.hex(), signature=b.signature)


@router.get("/head", response_model=LedgerHead)
async def head(request: Request, store: StoreDep) -> LedgerHead:
    b = await store.head_block()
    pub: bytes = request.app.state.ledger_public_key
    return LedgerHead(height=b.height if b else None, hash=b.hash.hex() if b else None,
                      ledger_public_key=b64(pub), key_id=key_id(pub))


@router.get("/blocks", response_model=BlockPage)
async def blocks(store: StoreDep, start: Annotated[int, Query(ge=0, le=MAX_ROW)] = 0,
                 limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> BlockPage:
    rows = await store.blocks(start, limit)
    return BlockPage(blocks=[block_out(b) for b in rows],
                     next_start=rows[-1].height + 1 if len(rows) == limit else None)


@router.get("/blocks/{height}", response_model=BlockOut)
async def block(store: StoreDep, height: int) -> BlockOut:
    if not 0 <= height <= MAX_ROW:
        raise HTTPException(422, f"height must be between 0 and {MAX_ROW}, got {height}")
    b = await store.block(height)
    if b is None:
        raise HTTPException(404, f"block {height} does not exist (yet)")
    return block_out(b)
