"""Dependencies shared by the routes: the read-only store and the API's settings."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from packproof.api.notify import MqttTarget
from packproof.edge.decode import PLAUSIBLE, Plausibility
from packproof.edge.thresholds import BUILTIN_PROFILES
from packproof.paths import DataDir
from packproof.store import Store

MAX_ROW = 2**62  # ids, cursors and offsets beyond SQLite's 64-bit integers are bad input, not a 500


@dataclass(frozen=True, slots=True)
class ApiSettings:
    data_dir: DataDir
    stale_after: float = 120.0  # seconds of silence before a pack is listed as stale
    admin_token: str | None = None  # required by every endpoint that changes state; None: writes disabled
    read_token: str | None = None  # None: reads are open; else reads need it (or the admin token)
    profiles: frozenset[str] = frozenset(BUILTIN_PROFILES)  # what POST /devices may name (and the ingestor knows)
    notify: MqttTarget | None = None  # where accepted custody events are announced (api/notify.py); None: nowhere
    plausibility: Plausibility = PLAUSIBLE  # a custody event's ts is bounded as a reading's (the ingest settings)
    live_clients: int = 32  # the dashboard's live feed: listeners at once (GET /events/stream; api/live.py)
    handover_window_s: float = 300.0  # an excursion this near a change of hands names both sides (api/condition.py)


def _bearer(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def require_reader(request: Request) -> None:
    """Reads are open unless the API was started with a read token."""
    s: ApiSettings = request.app.state.settings
    if s.read_token is None:
        return
    token = _bearer(request)
    if token is None:
        raise HTTPException(401, "this API requires a bearer token for reads", {"WWW-Authenticate": "Bearer"})
    if not (_same(token, s.read_token) or (s.admin_token is not None and _same(token, s.admin_token))):
        raise HTTPException(403, "the bearer token is not valid for reads")


def require_admin(request: Request) -> None:
    """Every endpoint that changes state needs the admin token."""
    s: ApiSettings = request.app.state.settings
    if s.admin_token is None:
        raise HTTPException(403, "writes are disabled: start the API with --admin-token-file to allow them")
    token = _bearer(request)
    if token is None:
        raise HTTPException(401, "this endpoint changes state and requires the admin bearer token",
                            {"WWW-Authenticate": "Bearer"})
    if not _same(token, s.admin_token):
        raise HTTPException(403, "the bearer token is not the admin token")


def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def get_settings(request: Request) -> ApiSettings:
    settings: ApiSettings = request.app.state.settings
    return settings


StoreDep = Annotated[Store, Depends(get_store)]
SettingsDep = Annotated[ApiSettings, Depends(get_settings)]
