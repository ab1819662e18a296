"""`/shipments`: what is travelling, and in what condition."""

from __future__ import annotations

import time
from typing import Annotated

import orjson
from fastapi import APIRouter, HTTPException, Query

from packproof.api.condition import RECENT_DISPUTES, condition, tracked_intervals
from packproof.api.deps import MAX_ROW, SettingsDep, StoreDep
from packproof.api.schemas import Condition, ReadingOut, ReadingPage, ShipmentDetail, ShipmentList, ShipmentSummary
from packproof.records import ShipmentRecord
from packproof.timefmt import rfc3339

router = APIRouter(prefix="/shipments", tags=["shipments"])


async def _shipment_or_404(store: StoreDep, shipment_id: str) -> ShipmentRecord:
    shipment = await store.shipment(shipment_id)
    if shipment is None:
        raise HTTPException(404, f"shipment {shipment_id!r} is not known")
    return shipment


@router.get("", response_model=ShipmentList)
async def list_shipments(store: StoreDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                         offset: Annotated[int, Query(ge=0, le=MAX_ROW)] = 0) -> ShipmentList:
    rows = await store.shipments(limit + 1, offset)
    return ShipmentList(
        shipments=[ShipmentSummary(shipment_id=s.shipment_id, profile=s.profile, devices=s.device_count)
                   for s in rows[:limit]],
        next_offset=offset + limit if len(rows) > limit else None)


@router.get("/{shipment_id}", response_model=ShipmentDetail)
async def get_shipment(store: StoreDep, shipment_id: str) -> ShipmentDetail:
    shipment = await _shipment_or_404(store, shipment_id)
    devices = await store.shipment_devices(shipment.shipment_id)
    return ShipmentDetail(shipment_id=shipment.shipment_id, profile=shipment.profile,
                          devices=[d.device_id for d in devices])


@router.get("/{shipment_id}/condition", response_model=Condition)
async def get_condition(store: StoreDep, settings: SettingsDep, shipment_id: str) -> Condition:
    """Overall and per-pack status from maintained aggregates, excursions and disputes (no scan of readings);
    each excursion names who owned and who carried its pack then (its custody events)."""
    shipment = await _shipment_or_404(store, shipment_id)
    sid = shipment.shipment_id
    excursions = await store.shipment_excursions(sid)
    return condition(sid, shipment.profile, await store.shipment_devices(sid), excursions,
                     time.time(), settings.stale_after, await store.shipment_disputes(sid, RECENT_DISPUTES),
                     tracked_intervals(await store.custody_of_trackers(sorted({e.device_id for e in excursions}))),
                     settings.handover_window_s)


@router.get("/{shipment_id}/readings", response_model=ReadingPage)
async def list_readings(
    store: StoreDep, shipment_id: str,
    after: Annotated[int, Query(ge=0, le=MAX_ROW, description="cursor: next_after of the last page")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> ReadingPage:
    await _shipment_or_404(store, shipment_id)
    rows = await store.shipment_readings(shipment_id, after, limit)
    out = []
    for r in rows:
        reading = orjson.loads(r.body)
        out.append(ReadingOut(reading_id=f"{reading['device_id']}:{reading['seq']}", reading=reading,
                              received_at=rfc3339(r.received_at), block_height=r.place.height if r.place else None,
                              leaf_index=r.place.index if r.place else None))
    return ReadingPage(readings=out, next_after=rows[-1].id if len(rows) == limit else None)
