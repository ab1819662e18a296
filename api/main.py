"""The REST API (FastAPI): the app, its lifespan and the one error handler.

Laid out by resource (`api/routes/<resource>.py`); every domain error becomes JSON with
a message a person can act on, and nothing the user sends can produce a 500.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from packproof.anchor.bundle import LedgerKeys
from packproof.api.deps import ApiSettings, require_admin, require_reader
from packproof.api.live import LiveFeed
from packproof.api.notify import CustodyNotifier
from packproof.api.routes import (
    anchors,
    certificates,
    dashboard,
    devices,
    health,
    ledger,
    log,
    quarantine,
    readings,
    shipments,
)
from packproof.api.routes import custody as custody_routes
from packproof.api.routes import parties as parties_routes
from packproof.api.series import SeriesCache
from packproof.crypto import read_public_key
from packproof.errors import ConfigError, PackproofError, StoreError
from packproof.paths import DataDir
from packproof.store import Store


def ledger_public_key(dirs: DataDir) -> bytes:
    """The ledger's genesis key, which every proof the API serves names."""
    if not dirs.ledger_pub.exists():
        raise ConfigError(f"no ledger public key at {dirs.ledger_pub}: start the sealer first "
                          "(`packproof seal` or `packproof ingest`) on this data directory")
    return read_public_key(str(dirs.ledger_pub))


async def check_startup(dirs: DataDir) -> None:
    """What the lifespan needs, checked before the server starts: `packproof api` then reports a
    missing key or an unreachable store in one line instead of uvicorn's lifespan traceback."""
    ledger_public_key(dirs)
    store = await Store.open(dirs.store, readonly=True)
    await store.close()


async def end_streams(app: FastAPI) -> None:
    """End the dashboard's open event streams and refuse new ones: the server is stopping, and it
    waits for every open response to finish before the lifespan ends (app/services.py)."""
    feed: LiveFeed | None = getattr(app.state, "live_feed", None)
    if feed is not None:
        await feed.close()


def create_app(settings: ApiSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.ledger_public_key = ledger_public_key(settings.data_dir)  # the genesis key
        app.state.ledger_keys = LedgerKeys(app.state.ledger_public_key)  # and the keys rotated to
        app.state.store = await Store.open(settings.data_dir.store, readonly=True)
        app.state.series_cache = SeriesCache()  # the dashboard's decoded series (api/series.py)
        app.state.live_feed = LiveFeed(app.state.store, max_clients=settings.live_clients)
        notifier = CustodyNotifier(settings.notify) if settings.notify is not None else None
        custody_routes.init_state(app.state, notifier)
        if notifier is not None:
            notifier.start()
        try:
            yield
        finally:
            if notifier is not None:
                notifier.stop()
            await app.state.live_feed.close()
            await custody_routes.close_writer(app.state)
            await app.state.store.close()

    app = FastAPI(title="packproof", version="1", lifespan=lifespan,
                  description="Condition and proofs of lithium-ion battery packs in transit.")
    app.state.settings = settings
    readers = [Depends(require_reader)]
    for module in (shipments, readings, ledger, log, anchors, quarantine):
        app.include_router(module.router, dependencies=readers)
    app.include_router(parties_routes.router, dependencies=readers)
    app.include_router(certificates.router, dependencies=readers)
    app.include_router(custody_routes.router, dependencies=readers)
    app.include_router(custody_routes.intake)  # the signed event is its own authentication
    app.include_router(dashboard.router, dependencies=readers)
    app.include_router(dashboard.pages)  # the pages hold no data: each fetch they make is a read as above
    app.include_router(health.router)  # /health stays open for orchestrators; /metrics follows reads
    app.include_router(health.metrics_router, dependencies=readers)
    app.include_router(devices.router, dependencies=[Depends(require_admin)])

    @app.exception_handler(PackproofError)
    async def domain_error(_: Request, exc: PackproofError) -> JSONResponse:
        status = 503 if isinstance(exc, StoreError) else 400
        return JSONResponse({"detail": str(exc)}, status_code=status)

    return app
