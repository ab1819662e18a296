"""API access: state-changing endpoints need the admin token; reads can be closed by config."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from packproof.crypto import private_key_from_seed, public_key_bytes
from packproof.net import free_port
from tests.conftest import Service, cli

ADMIN, READER = "admin-token-0123456789", "reader-token-0123456789"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("access")
    r = cli("run", "--data-dir", str(tmp / "d"), "--api-port", str(free_port()), "--duration", "1",
            "--shipments", "2", "--packs", "1", timeout=90)
    assert r.returncode == 0, r.stdout + r.stderr
    (tmp / "admin").write_text(ADMIN + "\n")
    (tmp / "reader").write_text(READER)
    return tmp


def serve(data: Path, *extra: str) -> Iterator[str]:
    port = free_port()
    svc = Service("api", "--data-dir", str(data / "d"), "--port", str(port), *extra, log=data / f"api-{port}.log")
    try:
        svc.wait_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        svc.stop()


@pytest.fixture
def open_api(data: Path) -> Iterator[str]:
    yield from serve(data)


@pytest.fixture
def closed_api(data: Path) -> Iterator[str]:
    yield from serve(data, "--admin-token-file", str(data / "admin"), "--read-token-file", str(data / "reader"))


DEVICE = {"device_id": "api-dev-1", "shipment_id": "SHP-API",
          "public_key": base64.b64encode(public_key_bytes(private_key_from_seed(b"api-dev-1"))).decode()}


def test_writes_are_off_without_an_admin_token(open_api: str) -> None:
    r = httpx.post(f"{open_api}/devices", json=DEVICE)
    assert r.status_code == 403 and "writes are disabled" in r.json()["detail"]
    assert httpx.get(f"{open_api}/shipments").status_code == 200  # reads open by default


def test_writes_need_the_admin_token_and_reads_the_read_token(closed_api: str) -> None:
    assert httpx.post(f"{closed_api}/devices", json=DEVICE).status_code == 401
    bad = httpx.post(f"{closed_api}/devices", json=DEVICE, headers={"Authorization": f"Bearer {READER}"})
    assert bad.status_code == 403 and "not the admin token" in bad.json()["detail"]
    admin = {"Authorization": f"Bearer {ADMIN}"}
    r = httpx.post(f"{closed_api}/devices", json=DEVICE, headers=admin)
    assert r.status_code == 201 and r.json()["created"] is True and len(r.json()["key_id"]) == 16
    again = httpx.post(f"{closed_api}/devices", json=DEVICE, headers=admin)
    assert again.status_code == 201 and again.json()["created"] is False
    assert httpx.post(f"{closed_api}/devices", json={**DEVICE, "public_key": "xx"}, headers=admin).status_code == 422
    conflict = httpx.post(f"{closed_api}/devices", json={**DEVICE, "shipment_id": "OTHER"}, headers=admin)
    assert conflict.status_code == 409 and "already registered" in conflict.json()["detail"]

    assert httpx.get(f"{closed_api}/shipments").status_code == 401
    assert httpx.get(f"{closed_api}/metrics").status_code == 401
    assert httpx.get(f"{closed_api}/health").status_code == 200
    for token in (READER, ADMIN):
        shipments = httpx.get(f"{closed_api}/shipments", headers={"Authorization": f"Bearer {token}"}).json()
        assert "SHP-API" in {s["shipment_id"] for s in shipments["shipments"]}
    assert httpx.get(f"{closed_api}/shipments", headers={"Authorization": "Bearer wrong"}).status_code == 403


def test_health_is_degraded_while_an_ingestor_has_no_broker_session(open_api: str, data: Path) -> None:
    """/health reads what each component says of itself (packproof.health): the API runs apart from
    the ingestors, so a frozen intake must still show here, with the reason."""
    import asyncio
    import time

    from packproof.store import Store

    assert httpx.get(f"{open_api}/health").json()["status"] == "ok"  # `run` stopped its ingestor cleanly

    async def lose_session() -> None:
        store = await Store.open(data / "d" / "packproof.db")
        now = time.time()
        await store.set_status("ingestor:ing-x", {
            "component": "ingestor", "client_id": "ing-x", "state": "disconnected", "since": "2026-12-01T00:00:00Z",
            "since_unix": now, "losses": 3, "takeovers": 1,
            "last_loss": {"at": "2026-12-01T00:00:00Z", "at_unix": now, "reason": "Session taken over"}})
        await store.close()

    asyncio.run(lose_session())
    try:
        h = httpx.get(f"{open_api}/health").json()
        assert h["status"] == "degraded"
        assert h["problems"] == ["ingestor:ing-x: not connected to the MQTT broker since 2026-12-01T00:00:00Z "
                                 "(Session taken over); intake is stopped until it reconnects"]
        metrics = httpx.get(f"{open_api}/metrics").text
        assert 'packproof_ingestor_session_losses_total{client_id="ing-x"} 3.0' in metrics
        assert "packproof_broker_refused_total" in metrics or "# TYPE packproof_broker_refused" in metrics
    finally:
        async def restore() -> None:
            store = await Store.open(data / "d" / "packproof.db")
            await store.set_status("ingestor:ing-x", {"component": "ingestor", "client_id": "ing-x",
                                                      "state": "stopped", "losses": 3})
            await store.close()
        asyncio.run(restore())


def test_the_dashboard_pages_are_open_and_their_data_needs_the_read_token(closed_api: str) -> None:
    """The pages hold no data (issue 18): they load without a token; what they fetch is a read."""
    assert httpx.get(f"{closed_api}/").status_code == 200
    assert httpx.get(f"{closed_api}/ui/assets/app.js").status_code == 200
    series = f"{closed_api}/shipments/SHP-001-0001/packs/SHP-001-0001-P01/series"
    assert httpx.get(series).status_code == 401
    assert httpx.get(f"{closed_api}/events/stream").status_code == 401
    r = httpx.get(series, headers={"Authorization": f"Bearer {READER}"})
    assert r.status_code == 200 and r.json()["total"] > 0
