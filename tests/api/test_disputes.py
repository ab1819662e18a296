"""A reading that arrives in two versions is a disputed record (issue 12, items 9 and 10).

With only an unsigned tracker's MQTT login, someone stored a reading at a future seq (a
false T.2 excursion); the honest reading at that seq was then quarantined as a conflict
while the condition report showed nothing of it. Now the pack is `disputed`, counted, and
both versions are one GET away: over a real broker, ingestor, store (each engine) and the
API in-process.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from packproof.api.deps import ApiSettings
from packproof.api.main import create_app
from packproof.canonical import canonical_bytes
from packproof.crypto import b64, private_key_from_seed, public_key_bytes
from packproof.paths import DataDir
from packproof.store import Store
from tests.conftest import BrokerThread, publish_all
from tests.edge.test_ingestor import reading, start_ingestor, store, topic

__all__ = ["store"]  # the fixture, shared with the ingestor's tests


@pytest.fixture
async def api(tmp_path: Path, store: Store) -> AsyncIterator[httpx.AsyncClient]:
    (tmp_path / "ledger.pub").write_text(b64(public_key_bytes(private_key_from_seed(b"ledger"))))
    app = create_app(ApiSettings(DataDir(tmp_path, store.url)))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
        yield client


def tracker(seq: int, **over: object) -> tuple[str, bytes]:
    return topic(device="dev-u"), canonical_bytes(reading(seq, device="dev-u", key=None, **over))


async def test_a_second_version_of_a_reading_makes_the_pack_disputed_with_both_versions_reachable(
        store: Store, mqtt_broker: BrokerThread, api: httpx.AsyncClient) -> None:
    forged, honest = tracker(3, temperature_c=80.0), tracker(3)
    gap = [tracker(0), tracker(1), forged]  # seq 2 still on its way
    _, task = await start_ingestor(store, mqtt_broker.port, "ing-dispute", lambda i: i.stats.processed >= 3)
    await asyncio.to_thread(publish_all, mqtt_broker.port, gap)
    await task
    c = (await api.get("/shipments/SHP-1/condition")).json()
    pack = next(p for p in c["packs"] if p["device_id"] == "dev-u")
    assert (pack["status"], pack["missing"], pack["disputed"]) == ("violated", 1, 0)

    _, task = await start_ingestor(store, mqtt_broker.port, "ing-dispute", lambda i: i.stats.processed >= 2)
    await asyncio.to_thread(publish_all, mqtt_broker.port, [tracker(2), honest])
    await task
    c = (await api.get("/shipments/SHP-1/condition")).json()
    pack = next(p for p in c["packs"] if p["device_id"] == "dev-u")
    assert (pack["status"], pack["missing"], pack["disputed"], c["disputed"], c["status"]) == (
        "disputed", 0, 1, 1, "disputed")
    assert any(e["device_id"] == "dev-u" and e["test"] == "T.2" for e in c["excursions"])  # the forged one's
    (d,) = pack["disputes"]
    assert d["reading_id"] == "dev-u:3"
    stored = (await api.get(d["stored"])).json()
    quarantined = (await api.get(d["quarantined"])).json()["items"]
    assert stored["reading"]["temperature_c"] == 80.0  # the first version stands in the store...
    assert [(q["id"], q["reason_code"], q["payload_text"].encode()) for q in quarantined] == [
        (d["quarantine_id"], "conflicting_reading", honest[1])]  # ...and the other is one GET away
    metrics = (await api.get("/metrics")).text
    assert 'packproof_quarantined_total{reason="conflicting_reading"} 1.0' in metrics, metrics
