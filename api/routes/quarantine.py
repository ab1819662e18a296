"""`/quarantine`: every payload the ingestor refused, with its reason, newest first.

Nothing rejected is silently dropped: the raw bytes are kept as received, so an operator
can see what a device really sent (as text when it is UTF-8, always as base64). A page is
bounded: at most PAGE_MAX rows of at most PAYLOAD_MAX bytes each (a payload the ingestor
cut at its 4 KiB prefix says so in its reason, with the whole one's size and SHA-256; rows
from before that bound are cut here, `payload_truncated` and `payload_size` tell).
"""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import APIRouter, Query

from packproof.api.deps import MAX_ROW, StoreDep
from packproof.api.schemas import QuarantinedOut, QuarantinePage
from packproof.store import QUARANTINE_KEEP
from packproof.timefmt import rfc3339

router = APIRouter(prefix="/quarantine", tags=["quarantine"])

PAYLOAD_MAX = QUARANTINE_KEEP  # bytes of a payload shown: a page is ~10 KB a row at most, base64 and text
PAGE_MAX = 500  # rows a page: ~5 MB at most


def _text(payload: bytes) -> str | None:
    try:
        return payload.decode()
    except UnicodeDecodeError:
        return None


@router.get("", response_model=QuarantinePage)
async def list_quarantine(
    store: StoreDep,
    device_id: Annotated[str | None, Query(description="Only payloads from this device (by its topic).")] = None,
    reason: Annotated[str | None, Query(description="Only this reason code, e.g. bad_signature.")] = None,
    before: Annotated[int | None, Query(ge=1, le=MAX_ROW, description="Cursor: next_before of the last page.")] = None,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 100,
) -> QuarantinePage:
    rows = await store.quarantined(device_id=device_id, reason_code=reason, before_id=before, limit=limit,
                                   payload_max=PAYLOAD_MAX)
    items = [QuarantinedOut(id=r.id, received_at=rfc3339(r.received_at), topic=r.topic, reason_code=r.reason_code,
                            reason=r.reason, device_id=r.device_id, shipment_id=r.shipment_id,
                            payload_text=_text(r.payload), payload_b64=base64.b64encode(r.payload).decode(),
                            payload_size=r.payload_size, payload_truncated=r.truncated) for r in rows]
    return QuarantinePage(items=items, next_before=rows[-1].id if len(rows) == limit else None)
