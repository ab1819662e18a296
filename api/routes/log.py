"""The transparency log (issue 16): `/checkpoint`, `/log/consistency` and C2SP tlog-tiles under `/tile/`.

Served from the store's tiles, byte for byte what the sealer publishes as static files, so a
reader can check packproof with any C2SP tlog-tiles client, from this API or from the directory.
"""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse

from packproof import tiles
from packproof.api.deps import MAX_ROW, StoreDep
from packproof.api.routes.anchors import anchor_out, chain_head
from packproof.errors import ProofError
from packproof.records import AnchorRow, CheckpointRecord
from packproof.store import Store
from packproof.timefmt import rfc3339

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


def anchor_header(a: AnchorRow) -> str:
    """`Packproof-Anchor`: the latest confirmed anchor, as `key=value` pairs (RFC 9110 5.6.6 parameters:
    a value is a token or a quoted-string; the block time's colons are not token characters, so it is
    quoted)."""
    when = f'"{rfc3339(a.block_time)}"' if a.block_time is not None else "-"
    return (f"size={a.size}; chain-id={a.chain_id}; contract={a.contract}; tx=0x{a.tx_hash.hex()}; "
            f"block={a.block_number}; block-time={when}")


def _wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/plain" not in accept


@router.get("/checkpoint", response_class=Response,
            responses={200: {"content": {NOTE_TYPE: {}, "application/json": {}}}})
async def checkpoint(store: StoreDep, request: Request) -> Response:
    """The latest signed C2SP checkpoint: text/plain, byte for byte the note (with cosignature lines);
    the latest confirmed anchor on Ethereum (issue 17) in the `Packproof-Anchor` header. With
    `Accept: application/json` (and not text/plain), JSON: the note, its size and root, and that anchor
    with its confirmations as the anchoring loop last counted them."""
    cp = await _latest(store)
    note = await served_note(store, cp)
    anchored = await store.latest_confirmed_anchor()
    headers = {"Cache-Control": "no-cache", "Vary": "Accept"}
    if anchored is not None:
        headers["Packproof-Anchor"] = anchor_header(anchored)
    if _wants_json(request):
        head, _ = await chain_head(store)
        body = {"size": cp.size, "root": base64.b64encode(cp.root).decode(), "note": note,
                "anchor": None if anchored is None else anchor_out(anchored, head).model_dump()}
        return JSONResponse(body, headers=headers)
    return Response(note, media_type=NOTE_TYPE, headers=headers)


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
