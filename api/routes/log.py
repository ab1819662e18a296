"""The transparency log (issue 16): `/checkpoint`, `/log/consistency` and C2SP tlog-tiles under `/tile/`.

Served from the store's tiles, byte for byte what the sealer publishes as static files, so a
reader can check packproof with any C2SP tlog-tiles client, from this API or from the directory.
"""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response

from packproof import tiles
from packproof.api.deps import MAX_ROW, StoreDep
from packproof.errors import ProofError
from packproof.records import CheckpointRecord
from packproof.store import Store

router = APIRouter(tags=["log"])

NOTE_TYPE = "text/plain; charset=utf-8"
IMMUTABLE = "public, max-age=31536000, immutable"  # a full tile never changes


async def served_note(store: Store, checkpoint: CheckpointRecord) -> str:
    """The latest checkpoint's note as served: the log's own signature, and (issue 16, witnesses)
    the cosignature lines kept for it appended."""
    return await store.cosigned_note(checkpoint)


async def _latest(store: Store) -> CheckpointRecord:
    cp = await store.latest_checkpoint()
    if cp is None:
        raise HTTPException(404, "the log has no checkpoint yet: nothing is sealed")
    return cp


@router.get("/checkpoint", response_class=Response, responses={200: {"content": {NOTE_TYPE: {}}}})
async def checkpoint(store: StoreDep) -> Response:
    """The latest signed C2SP checkpoint (text/plain)."""
    cp = await _latest(store)
    return Response(await served_note(store, cp), media_type=NOTE_TYPE, headers={"Cache-Control": "no-cache"})


@router.get("/log/consistency")
async def consistency(store: StoreDep, from_: Annotated[int, Query(alias="from", ge=0, le=MAX_ROW)],
                      to: Annotated[int, Query(ge=0, le=MAX_ROW)]) -> dict[str, object]:
    """RFC 6962 consistency proof from size `from` to size `to` (standard base64 hashes)."""
    cp = await _latest(store)
    if from_ > to or to > cp.size:
        raise HTTPException(422, f"a consistency proof needs from <= to <= {cp.size} (the latest checkpoint's "
                                 f"size); got from {from_}, to {to}")
    proof = await store.consistency_proof(from_, to)
    return {"from": from_, "to": to, "proof": [base64.b64encode(h).decode() for h in proof]}


@router.get("/tile/{path:path}", response_class=Response,
            responses={200: {"content": {"application/octet-stream": {}}}})
async def tile(store: StoreDep, path: str) -> Response:
    """A hash tile or an entry bundle (c2sp.org/tlog-tiles), at the width the path asks for."""
    try:
        address = tiles.parse_tile_path("tile/" + path)
    except ProofError as exc:
        raise HTTPException(404, str(exc)) from None
    cp = await _latest(store)
    level = 0 if address.level == tiles.ENTRIES else address.level
    have = tiles.tile_width(level, address.index, cp.size)
    if address.width > have:  # a partial width below `have` is an older version of the tile: a prefix of it
        raise HTTPException(404, f"tile {address.path} does not exist at the log's size {cp.size}")
    start = address.index * tiles.WIDTH
    if address.level == tiles.ENTRIES:
        data = tiles.entry_bundle(await store.log_entries(start, start + address.width))
    else:
        found = await store.log_tiles([(level, address.index)])
        data = found.get((level, address.index), b"")[:address.width * 32]
        if len(data) != address.width * 32:
            raise HTTPException(404, f"tile {address.path} is not in the store")
    headers = {"Cache-Control": IMMUTABLE if address.width == tiles.WIDTH else "no-cache"}
    return Response(data, media_type="application/octet-stream", headers=headers)
