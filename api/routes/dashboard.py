"""The dashboard (issue 18): its pages at `/` and `/ui/...`, the charts' series, the live feed.

The pages are static files inside the package (api/static/: plain JavaScript modules, SVG, no
build step and nothing fetched from elsewhere at run time); every URL they use is relative to
the document's base, which the page's own path sets (`<base href="../..">` under /ui/), so the
dashboard works against whatever packproof API serves it, also behind a path prefix.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from importlib import resources
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import HTMLResponse, StreamingResponse

from packproof.api.deps import StoreDep
from packproof.api.live import LiveFeed, TooManyListeners
from packproof.api.schemas import BandOut, SeriesOut, TrackOut
from packproof.api.series import QUANTITIES, SeriesCache, profile_of
from packproof.records import DeviceStats
from packproof.store import Store

pages = APIRouter(tags=["dashboard"], include_in_schema=False)  # the HTML, open like /health: it holds no data
router = APIRouter(tags=["dashboard"])
STATIC = resources.files("packproof.api") / "static"
MAX_POINTS = 10_000
HEARTBEAT_S = 15.0  # a comment line this often: a proxy keeps the stream, a gone client is noticed


def _index(depth: int) -> HTMLResponse:
    base = "../" * depth or "./"
    html = (STATIC / "index.html").read_text(encoding="utf-8").replace("<base href=\"./\">",
                                                                       f"<base href=\"{base}\">", 1)
    return HTMLResponse(html, headers={"Cache-Control": "no-cache"})


@pages.get("/")
async def home() -> HTMLResponse:
    return _index(0)


@pages.get("/ui/assets/{name}")
async def asset(name: str) -> Response:
    """A file of the dashboard (JavaScript modules, CSS, the vendored-free licence notes)."""
    kinds = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
    kind = next((v for k, v in kinds.items() if name.endswith(k)), None)
    path = STATIC / name
    if kind is None or "/" in name or name.startswith(".") or not path.is_file():
        raise HTTPException(404, f"no dashboard asset {name!r}")
    return Response(path.read_bytes(), media_type=kind, headers={"Cache-Control": "no-cache"})


@pages.get("/ui/{page:path}")
async def page(page: str) -> HTMLResponse:
    """Every dashboard page is the one document; its script reads the path."""
    return _index(page.count("/") + 1)


async def _pack(store: Store, shipment_id: str, device_id: str) -> tuple[str, DeviceStats]:
    shipment = await store.shipment(shipment_id)
    if shipment is None:
        raise HTTPException(404, f"shipment {shipment_id!r} is not known")
    for d in await store.shipment_devices(shipment_id):
        if d.device_id == device_id:
            return shipment.profile, d
    raise HTTPException(404, f"device {device_id!r} is not a pack of shipment {shipment_id!r}")


def _cache(request: Request) -> SeriesCache:
    cache: SeriesCache = request.app.state.series_cache
    return cache


@router.get("/shipments/{shipment_id}/packs/{device_id}/series", response_model=SeriesOut)
async def series(request: Request, store: StoreDep, shipment_id: str, device_id: str,
                 quantity: Annotated[str, Query(description=", ".join(QUANTITIES))] = "temperature_c",
                 points: Annotated[int, Query(ge=2, le=MAX_POINTS)] = 1000) -> SeriesOut:
    """One quantity of one pack over time, downsampled with LTTB to at most `points`, with the
    UN 38.3 bands of the shipment's profile."""
    if quantity not in QUANTITIES:
        raise HTTPException(422, f"quantity must be one of {', '.join(QUANTITIES)}; got {quantity[:40]!r}")
    profile_name, stats = await _pack(store, shipment_id, device_id)
    cache = _cache(request)
    cols = await cache.columns(store, device_id, stats.readings or 0)
    s = await cache.series(device_id, cols, quantity, points, profile_of(profile_name))  # type: ignore[arg-type]
    tracked = (await store.custody_of_trackers([device_id])).get(device_id)
    return SeriesOut(shipment_id=shipment_id, device_id=device_id, pack=tracked.serial if tracked else None,
                     profile=profile_name, quantity=s.quantity, unit=s.unit, total=s.total, points=len(s.seq),
                     seq=s.seq, t=s.t, y=s.y, limit=s.limit,
                     bands=[BandOut(label=b.label, value=b.value, severity=b.severity, side=b.side) for b in s.bands])


@router.get("/shipments/{shipment_id}/packs/{device_id}/track", response_model=TrackOut)
async def route(request: Request, store: StoreDep, shipment_id: str, device_id: str,
                points: Annotated[int, Query(ge=2, le=MAX_POINTS)] = 500) -> TrackOut:
    """Where the pack was: its readings' locations, thinned evenly to at most `points`."""
    _, stats = await _pack(store, shipment_id, device_id)
    cache = _cache(request)
    t = await cache.track(device_id, await cache.columns(store, device_id, stats.readings or 0), points)
    return TrackOut(shipment_id=shipment_id, device_id=device_id, total=t.total, points=len(t.seq), seq=t.seq, t=t.t,
                    lat=t.lat, lon=t.lon)


@router.get("/events/stream", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}}})
async def events(request: Request,
                 shipment: Annotated[str | None, Query(max_length=64)] = None) -> StreamingResponse:
    """Server-sent events: `readings` (a poll's new readings of one shipment), `excursion` (for
    `shipment` only, when given), `block`, and `lag` when more arrived at once than the feed
    forwards (reload the series then)."""
    feed: LiveFeed = request.app.state.live_feed
    try:
        sub = feed.subscribe(shipment)
    except TooManyListeners as exc:
        raise HTTPException(503, str(exc), {"Retry-After": "10"}) from None

    async def stream() -> AsyncIterator[bytes]:
        try:
            yield b"retry: 3000\nevent: hello\ndata: {}\n\n"
            while True:
                try:
                    event = await asyncio.wait_for(sub.queue.get(), HEARTBEAT_S)
                except TimeoutError:
                    if await request.is_disconnected():
                        return
                    yield b": keep-alive\n\n"
                    continue
                if event is None:  # dropped (too slow) or the API is stopping: the browser reconnects
                    return
                yield event.encode()
        finally:
            feed.unsubscribe(sub)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
