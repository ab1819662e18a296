"""Dependencies shared by the routes: the read-only store and the API's settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from packproof.paths import DataDir
from packproof.store import Store

MAX_ROW = 2**62  # ids, cursors and offsets beyond SQLite's 64-bit integers are bad input, not a 500


@dataclass(frozen=True, slots=True)
class ApiSettings:
    data_dir: DataDir
    stale_after: float = 120.0  # seconds of silence before a pack is listed as stale


def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def get_settings(request: Request) -> ApiSettings:
    settings: ApiSettings = request.app.state.settings
    return settings


StoreDep = Annotated[Store, Depends(get_store)]
SettingsDep = Annotated[ApiSettings, Depends(get_settings)]
