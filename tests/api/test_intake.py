"""The API over a store the ingestor filled with hostile input (issue 12, items 7 and 8).

Served in-process (httpx over ASGI, with the app's lifespan) over a real store of each engine: a quarantine
page stays small whatever was kept before payloads were bounded, and `POST /devices`
cannot change a shipment's profile, name an unknown one, or register a weak key.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from packproof.api.deps import ApiSettings
from packproof.api.main import create_app
from packproof.crypto import b64, private_key_from_seed, public_key_bytes
from packproof.paths import DataDir
from packproof.records import IngestBatch, Refusal
from packproof.store import Store
from tests.storeutil import write_batch

ADMIN = {"authorization": "Bearer admin-token-0123456789"}
KEY = b64(public_key_bytes(private_key_from_seed(b"api-intake")))


async def in_store(url: str, work: Any) -> Any:
    store = await Store.open(url)
    try:
        return await work(store)
    finally:
        await store.close()


@pytest.fixture
async def api(tmp_path: Path, store_url: str) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    await in_store(store_url, lambda st: st.register({"SHP-L": "un38.3-large"}, []))
    (tmp_path / "ledger.pub").write_text(b64(public_key_bytes(private_key_from_seed(b"ledger"))))
    app = create_app(ApiSettings(DataDir(tmp_path, store_url), admin_token=ADMIN["authorization"][7:]))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
        yield client, store_url


async def test_a_quarantine_page_is_bounded_whatever_rows_hold(api: tuple[httpx.AsyncClient, str]) -> None:
    client, url = api
    legacy = b"{" + b"x" * 1_000_000  # kept whole before the ingestor cut payloads at 4 KiB
    rows = [Refusal(1.0, "packproof/v1/S/d/telemetry", legacy, "too_large", "payload is 1000001 bytes", "d", "S")] + [
        Refusal(2.0, "packproof/v1/S/d/telemetry", b"bad", "malformed_json", "not JSON", "d", "S")] * 3
    await in_store(url, lambda st: write_batch(st, IngestBatch(quarantine=rows)))
    r = await client.get("/quarantine")
    assert r.status_code == 200 and len(r.content) < 20_000, len(r.content)
    item = r.json()["items"][-1]
    assert (item["payload_size"], item["payload_truncated"]) == (1_000_001, True)
    assert base64.b64decode(item["payload_b64"]) == legacy[:4096] and item["payload_text"] == legacy[:4096].decode()
    assert r.json()["items"][0] | {"id": 0, "received_at": ""} == {
        "id": 0, "received_at": "", "topic": "packproof/v1/S/d/telemetry", "device_id": "d", "shipment_id": "S",
        "reason_code": "malformed_json", "reason": "not JSON", "payload_text": "bad",
        "payload_b64": base64.b64encode(b"bad").decode(), "payload_size": 3, "payload_truncated": False}
    assert (await client.get("/quarantine", params={"limit": 501})).status_code == 422


def device(device_id: str, **over: object) -> dict[str, object]:
    return {"device_id": device_id, "shipment_id": "SHP-L", "public_key": KEY} | over


async def test_post_devices_cannot_change_a_profile_or_register_unknown_profiles_or_weak_keys(
        api: tuple[httpx.AsyncClient, str]) -> None:
    client, url = api
    refused = {
        "another profile": (device("d-1", profile="un38.3-cell"), 409, "already has profile 'un38.3-large'"),
        "an unknown profile": (device("d-2", shipment_id="SHP-N", profile="un38.3-made-up"), 422,
                               "unknown profile 'un38.3-made-up'"),
        "a 100 KB profile": (device("d-3", shipment_id="SHP-N", profile="p" * 100_000), 422, "profile"),
        "an all-zero key": (device("d-4", public_key=b64(bytes(32))), 422, "not a usable Ed25519 public key"),
        "a small-order key": (device("d-5", public_key=b64(bytes([1]) + bytes(31))), 422,
                              "not a usable Ed25519 public key"),
    }
    for what, (body, status, detail) in refused.items():
        r = await client.post("/devices", json=body, headers=ADMIN)
        assert (r.status_code, detail in r.text) == (status, True), (what, r.status_code, r.text[:300])
    # Without a profile a device joins its shipment as it is; a new shipment gets the default.
    assert (await client.post("/devices", json=device("d-6"), headers=ADMIN)).status_code == 201
    assert (await client.post("/devices", json=device("d-7", shipment_id="SHP-N"), headers=ADMIN)).status_code == 201
    assert (await client.post("/devices", json=device("d-8", profile="un38.3-large"), headers=ADMIN)).status_code == 201
    profiles = {r["shipment_id"]: r["profile"] for r in (await client.get("/shipments")).json()["shipments"]}
    assert profiles == {"SHP-L": "un38.3-large", "SHP-N": "un38.3-cell"}
    devices = await in_store(url, lambda st: st.devices())
    assert sorted(d.device_id for d in devices) == ["d-6", "d-7", "d-8"]
