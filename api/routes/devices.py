"""`POST /devices`: register a device over the API. Changes state, so it needs the admin token.

The API reads through a query-only connection; a registration opens the store's writer
side for the one transaction, and, like every registry change, is sealed in the ledger.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from packproof.api.deps import SettingsDep
from packproof.crypto import key_id, unb64, weak_key_problem
from packproof.edge.thresholds import profile_problem
from packproof.errors import RegistryConflict
from packproof.reading import ID_PATTERN

router = APIRouter(prefix="/devices", tags=["devices"])

Ident = Annotated[str, Field(pattern=ID_PATTERN)]


class DeviceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    device_id: Ident
    shipment_id: Ident
    profile: Ident | None = Field(None, description="UN 38.3 profile of the shipment: given for a new shipment "
                                                    "(default un38.3-cell); for an existing one it must be the "
                                                    "profile it has (changing it is `packproof shipments set-profile`)")
    public_key: str | None = Field(None, description="Ed25519 public key, base64; null for a tracker that cannot sign")


class DeviceOut(BaseModel):
    device_id: str
    shipment_id: str
    key_id: str | None
    created: bool


@router.post("", response_model=DeviceOut, status_code=201)
async def register_device(body: DeviceIn, settings: SettingsDep, _request: Request) -> DeviceOut:
    """422 for an unknown profile or a key that is not a usable Ed25519 key; 409 when the registry
    already holds this device with another key or shipment, or the shipment with another profile."""
    if body.profile is not None and (problem := profile_problem(body.profile, settings.profiles)):
        raise HTTPException(422, f"profile: {problem}")
    key = None
    if body.public_key is not None:
        try:
            key = unb64(body.public_key)
        except ValueError:
            key = b""
        if len(key) != 32:
            raise HTTPException(422, "public_key must be the base64 of a 32-byte Ed25519 public key")
        if problem := weak_key_problem(key):
            raise HTTPException(422, f"public_key is {problem}")
    store = await settings.data_dir.open_writer()  # the registry record it appends carries the intake MAC
    try:
        created = await store.register({body.shipment_id: body.profile}, [(body.device_id, body.shipment_id, key)])
    except RegistryConflict as exc:
        raise HTTPException(409, str(exc)) from None
    finally:
        await store.close()
    return DeviceOut(device_id=body.device_id, shipment_id=body.shipment_id,
                     key_id=key_id(key) if key else None, created=bool(created))
