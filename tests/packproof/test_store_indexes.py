"""No query the API makes scans all readings, on either engine.

Every store method an API route calls is run against a store with readings, sealed blocks,
quarantine and excursions; each statement it sent is then explained by the engine itself.
On PostgreSQL sequential scans are disabled for the EXPLAIN, so a plan that still scans a
table has no index to use; on SQLite `EXPLAIN QUERY PLAN` names every full scan.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from packproof.anchor.ledger import LedgerFile
from packproof.anchor.merkle import leaf_hash
from packproof.anchor.sealer import Sealer
from packproof.api.routes.custody import accept_event
from packproof.crypto import load_or_create_ledger_key, private_key_from_seed, public_key_bytes
from packproof.custody import sign_event
from packproof.intake import IntakeKey
from packproof.records import DeviceBatchStats, Excursion, IngestBatch, ReadingRow, Refusal
from packproof.store import Store
from tests.storeutil import driver_of, write_batch

BIG_TABLES = ("readings", "quarantine", "excursions", "blocks", "device_stats", "custody_events", "custody_event_packs",
              "custody_packs", "custody_refused", "registry_leaves")


async def filled(url: str, tmp_path: Path) -> Store:
    store = await Store.open(url, intake_key=IntakeKey(b"i" * 32))
    await store.register({"S": "un38.3-cell", "T": "un38.3-cell"}, [("d1", "S", None), ("d2", "T", None)])
    for start in range(0, 600, 200):
        b = IngestBatch()
        for device, sid in (("d1", "S"), ("d2", "T")):
            for seq in range(start, start + 200):
                body = f'{{"d":"{device}","seq":{seq}}}'.encode()
                b.readings.append(ReadingRow(device, seq, sid, "2026-11-23T00:00:00Z", 1.0, body, leaf_hash(body)))
            b.stats.append(DeviceBatchStats(device, sid, 200, start, start + 199, "t", "t", 1.0, start + 199, 0, "[]"))
        b.quarantine.append(Refusal(1.0, "packproof/v1/S/d1/telemetry", b"{", "malformed_json", "bad", "d1", "S"))
        b.excursions.append(Excursion(start + 1, "d1", "S", "T.2", "temperature_c", "violation", "t", "t", start,
                                      start, 80.0, 72.0, "limit", 1, False))
        await write_batch(store, b)
    await _custody(store)
    sealer = Sealer(store, LedgerFile(tmp_path / "ledger.jsonl"), load_or_create_ledger_key(tmp_path / "k"),
                    max_leaves=100)
    await sealer.recover()
    while await sealer.seal_once() is not None:
        pass
    return store


async def _custody(store: Store) -> None:
    """Custody events through the API's own accept path (api/routes/custody.py): a pack tracked by d1
    with 40 events, and refusals."""
    maker, road = private_key_from_seed(b"maker"), private_key_from_seed(b"road")
    await store.add_party("maker", "Maker", ["manufacturer"], public_key_bytes(maker))
    await store.add_party("road", "Road", ["carrier"], public_key_bytes(road))
    un = {"report_id": "R", "lab": "L", "date": "2025-01-01", "manual_revision": "8",
          "results": {f"T{i}": "pass" for i in range(1, 9)}}
    where = {"lat": 1.5, "lon": 2.5}
    base = {"v": 1, "shipment_id": "S", "location": where, "ts": "2026-11-23T00:00:00.000Z"}
    head = None
    for n, (kind, fields, key, actor) in enumerate(
            [("pack-registered", {"serial": "P1", "model": "M", "chemistry": "NMC", "rated_wh": 10.5, "mass_kg": 1.5,
                                  "tracker": "d1", "un38_3": un, "profile": "un38.3-cell", "cell_lots": []}, maker,
              "maker"),
             ("transporter-assigned", {"transporter": "road"}, maker, "maker"),
             ("picked-up", {}, road, "road"),
             *[("location", {}, road, "road")] * 37]):
        seq = 1 + sum(1 for k in (["maker"] * 2 + ["road"] * 38)[:n] if k == actor)
        event = sign_event({**base, "kind": kind, "event_id": f"{actor}:{seq}", "actor": actor, "packs": ["P1"],
                            "prev": {"P1": head}, **fields}, key)
        decision = await accept_event(store, json.dumps(event).encode())
        assert decision.event is not None, decision.reason
        head = decision.event.hash.hex()
    refused = await accept_event(store, b'{"kind": "location"}')
    assert refused.code == "malformed"


async def api_statements(store: Store) -> list[tuple[str, tuple[Any, ...]]]:
    """What the API's store calls send to the database."""
    seen: list[tuple[str, tuple[Any, ...]]] = []
    driver = driver_of(store)
    fetch = driver.fetch

    async def recording(sql: str, params: Any = ()) -> Any:
        seen.append((sql, tuple(params)))
        return await fetch(sql, params)

    driver.fetch = recording  # type: ignore[method-assign]
    try:
        head = await store.head_block()
        assert head is not None and head.height > 3
        await store.shipments(50, 0)
        await store.shipment("S")
        await store.shipment_devices("S")
        await store.shipment_excursions("S")
        await store.shipment_readings("S", 300, 50)
        await store.reading("d1", 450)
        await store.device("d1")
        await store.registry_records("d1")  # a proof bundle's registry leaves (schema 6)
        await store.counters()
        await store.statuses()
        await store.quarantined(device_id="d1", reason_code=None, before_id=None, limit=20, payload_max=4096)
        await store.quarantined(device_id=None, reason_code="malformed_json", before_id=2, limit=20, payload_max=4096)
        await store.blocks(2, 10)
        block = await store.block(3)
        assert block is not None
        await store.block_leaf_hashes(block)
        # custody (issue 15): the accept path's reads, the routes', and the condition's attribution
        await store.custody_items(["P1", "P2"])
        await store.custody_lots([b"\x01" * 32])
        await store.custody_seqs(["maker", "road"])
        await store.custody_positions(["P1"])
        await store.custody_seq_before("road", 10)
        await store.party_next_seq("road")
        await store.custody_event("road:3")
        await store.pack_custody("P1")
        await store.shipment_custody("S", 0, 50)
        await store.custody_refused(actor=None, before_id=None, limit=20, body_max=4096)
        await store.custody_refused(actor="road", before_id=5, limit=20, body_max=4096)
        assert (await store.custody_of_trackers(["d1", "d2"]))["d1"].serial == "P1"
        assert (await store.custody_tracker_claim("d1")).packs == ("P1",)
        # the dashboard (issue 18): a pack's series read on from a seq, and the live feed's watermarks
        assert len(await store.device_series("d1", 100, 1000)) == 499
        assert len(await store.readings_after(500, 50)) == 50
        assert len(await store.excursions_after(1, 10)) == 2
    finally:
        driver.fetch = fetch  # type: ignore[method-assign]
    return seen


def full_scans(sql: str, plan: str) -> list[str]:
    """Plan lines that read a whole table. SQLite says `SCAN blocks` for a walk in rowid (height)
    order too, which `ORDER BY height ... LIMIT` stops after the rows it returns: not a full scan."""
    found = []
    for line in plan.splitlines():
        for table in BIG_TABLES:
            rowid_walk = table == "blocks" and "ORDER BY height" in sql and "LIMIT" in sql
            sqlite_scan = f"SCAN {table}" in line and "USING" not in line and not rowid_walk
            if f"Seq Scan on {table}" in line or sqlite_scan:
                found.append(line)
    return found


async def test_no_api_query_scans_a_whole_table(store_url: str, tmp_path: Path) -> None:
    store = await filled(store_url, tmp_path)
    try:
        statements = await api_statements(store)
        assert len(statements) >= 29
        db = driver_of(store)
        if store.engine == "postgresql":
            await db.execute("SET enable_seqscan = off")
        for sql, params in statements:
            explain = "EXPLAIN " if store.engine == "postgresql" else "EXPLAIN QUERY PLAN "
            plan = "\n".join(" ".join(str(c) for c in row) for row in await db.fetch(explain + sql, params))
            assert not full_scans(sql, plan), f"{sql}\n{plan}"
    finally:
        await store.close()
