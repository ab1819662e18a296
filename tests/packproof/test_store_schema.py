"""Store schema versions: an older store is migrated in place and keeps its data; a newer one is refused."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from packproof.anchor.merkle import leaf_hash
from packproof.errors import StoreError
from packproof.records import DeviceBatchStats, IngestBatch, ReadingRow
from packproof.store import SCHEMA_VERSION, Store
from tests.storeutil import write_batch


async def test_a_version_1_store_is_migrated_and_keeps_its_data(tmp_path: Path) -> None:
    path = tmp_path / "packproof.db"
    store = await Store.open(path)
    await store.register({"SHP-1": "un38.3-cell"}, [("dev-1", "SHP-1", None)])
    await store.close()
    with sqlite3.connect(path) as db:  # what a store written by packproof before schema 2 looks like
        db.execute("ALTER TABLE device_stats DROP COLUMN gaps")
        db.execute("ALTER TABLE readings DROP COLUMN intake_mac")
        db.execute("UPDATE meta SET value='1' WHERE key='schema_version'")
    store = await Store.open(path)
    assert [d.device_id for d in await store.devices()] == ["dev-1"]
    await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == (str(SCHEMA_VERSION),)
        assert "gaps" in {r[1] for r in db.execute("PRAGMA table_info(device_stats)")}


async def test_a_store_from_a_newer_packproof_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "packproof.db"
    await (await Store.open(path)).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    with pytest.raises(StoreError, match="schema version 99 is newer than this packproof"):
        await Store.open(path)


async def test_a_version_2_store_gets_every_gap_back_from_its_readings(tmp_path: Path) -> None:
    """Schema 2 kept only the first 16 gaps; a restore from that would take missing seqs for stored ones."""
    path = tmp_path / "packproof.db"
    store = await Store.open(path)
    await store.register({"S": "un38.3-cell"}, [("d", "S", None)])
    b = IngestBatch()
    seqs = list(range(0, 80, 2))  # 39 gaps
    for s in seqs:
        body = f'{{"seq":{s}}}'.encode()
        b.readings.append(ReadingRow("d", s, "S", "t", 0.0, body, leaf_hash(body)))
    b.stats.append(DeviceBatchStats("d", "S", len(seqs), 0, 78, "t", "t", 0.0, 0, 39, "[[1,1]]"))
    await write_batch(store, b)
    await store.close()
    with sqlite3.connect(path) as db:
        db.execute("ALTER TABLE readings DROP COLUMN intake_mac")
        db.execute("UPDATE meta SET value='2' WHERE key='schema_version'")
    store = await Store.open(path)
    state, = (await store.delivery_states(["d"])).values()
    await store.close()
    assert (state.acked_seq, state.highest) == (0, 78)
    assert [list(g) for g in state.gaps] == [[s + 1, s + 1] for s in seqs[:-1]]


async def test_a_version_3_store_keeps_sealing_its_rows_stored_before_intake_macs(tmp_path: Path) -> None:
    """Rows stored before schema 4 carry no intake MAC: sealed as before; rows after it must carry one."""
    from packproof.anchor.ledger import LedgerFile
    from packproof.anchor.sealer import Sealer
    from packproof.crypto import private_key_from_seed
    from packproof.intake import IntakeKey

    path = tmp_path / "packproof.db"
    store = await Store.open(path)
    await store.register({"S": "un38.3-cell"}, [("d", "S", None)])
    b = IngestBatch()
    for s in range(3):
        body = f'{{"seq":{s}}}'.encode()
        b.readings.append(ReadingRow("d", s, "S", "t", 0.0, body, leaf_hash(body)))
    await write_batch(store, b)
    await store.close()
    with sqlite3.connect(path) as db:
        db.execute("ALTER TABLE readings DROP COLUMN intake_mac")
        db.execute("UPDATE meta SET value='3' WHERE key='schema_version'")
    store = await Store.open(path, intake_key=IntakeKey(b"i" * 32))
    assert await store.intake_mac_from() == 5  # the registration record and 3 readings: ids 1..4
    sealer = Sealer(store, LedgerFile(tmp_path / "ledger.jsonl"), private_key_from_seed(b"l"))
    await sealer.recover()
    block = await sealer.seal_once()
    assert block is not None and block.leaf_count == 4 and sealer.refused == 0
    await store.close()
