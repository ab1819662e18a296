"""`/quarantine`: every payload the ingestor refused, with its reason, newest first.

Nothing rejected is silently dropped: the raw bytes are kept as received, so an operator
can see what a device really sent (as text when it is UTF-8, always as base64).
"""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import MAX_ROW, StoreDep
from api.schemas import QuarantinedOut, QuarantinePage
from packproof.timefmt import rfc3339

router = APIRouter(prefix="/quarantine", tags=["quarantine"])


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
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> QuarantinePage:
    rows = await store.quarantined(device_id=device_id, reason_code=reason, before_id=before, limit=limit)
    items = [QuarantinedOut(id=r[0], received_at=rfc3339(r[1]), topic=r[2], reason_code=r[4], reason=r[5],
                            device_id=r[6], shipment_id=r[7], payload_text=_text(r[3]),
                            payload_b64=base64.b64encode(r[3]).decode()) for r in rows]
    return QuarantinePage(items=items, next_before=rows[-1][0] if len(rows) == limit else None)
