"""The store on each engine: the same schema and versions, dense ids with several writers, one sealer.

Each test runs on SQLite and on PostgreSQL (a fresh schema in the `test` database; skipped
with the reason where no server answers).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from packproof.anchor.merkle import leaf_hash
from packproof.app.services import SealerLock
from packproof.crypto import private_key_from_seed, public_key_bytes
from packproof.errors import StoreError
from packproof.paths import DataDir
from packproof.records import IngestBatch, ReadingRow
from packproof.store import SCHEMA_VERSION, Store
from tests.dbutil import query_sync as query
from tests.storeutil import driver_of, write_batch


def batch(device: str, seqs: range) -> IngestBatch:
    b = IngestBatch()
    for s in seqs:
        body = f'{{"d":"{device}","seq":{s}}}'.encode()
        b.readings.append(ReadingRow(device, s, "S", "2026-11-23T00:00:00Z", 0.0, body, leaf_hash(body)))
    return b


async def test_a_new_store_is_created_at_the_current_version_and_reopened_with_its_data(store_url: str) -> None:
    store = await Store.open(store_url)
    key = public_key_bytes(private_key_from_seed(b"d"))
    await store.register({"S": "un38.3-cell"}, [("d", "S", key)])
    await store.close()
    again = await Store.open(store_url)
    (d,) = await again.devices()
    assert (d.device_id, d.public_key, d.keys) == ("d", key, ((0, key),))
    await again.close()
    assert query(store_url, "SELECT value FROM meta WHERE key='schema_version'") == [(str(SCHEMA_VERSION),)]
    reader = await Store.open(store_url, readonly=True)
    with pytest.raises(StoreError):
        await reader.register({"T": "un38.3-cell"}, [])  # a read-only store refuses writes
    await reader.close()


async def test_reading_an_empty_store_says_the_ingestor_has_not_run(store_url: str, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="has the ingestor run"):
        await Store.open(store_url, readonly=True)


async def test_concurrent_writers_keep_ids_dense_in_commit_order(store_url: str) -> None:
    """Four connections (as four ingestors) write at once: every id from 1 up, each reading once."""
    setup = await Store.open(store_url)
    await setup.register({"S": "un38.3-cell"}, [(f"d{i}", "S", None) for i in range(4)])
    await setup.close()
    writers = [await Store.open(store_url) for _ in range(4)]

    async def write(w: Store, device: str) -> None:
        for start in range(0, 200, 20):
            await write_batch(w, batch(device, range(start, start + 20)))

    await asyncio.gather(*(write(w, f"d{i}") for i, w in enumerate(writers)))
    for w in writers:
        await w.close()
    (n, lo, hi), = query(store_url, "SELECT count(*), min(id), max(id) FROM readings")
    assert (n, lo, hi) == (804, 1, 804)  # 800 readings and 4 registration records, no hole


async def test_one_sealer_at_a_time_and_the_next_takes_over_when_it_goes(store_url: str, tmp_path: Path) -> None:
    await (await Store.open(store_url)).close()
    dirs = DataDir(tmp_path / "data", store_url=store_url)
    first = await SealerLock.acquire(dirs)
    second = asyncio.create_task(SealerLock.acquire(dirs, poll=0.05))
    await asyncio.sleep(0.5)
    assert not second.done()  # waiting
    await first.release()
    taken = await asyncio.wait_for(second, 5)
    await taken.release()


async def test_a_sealer_whose_postgresql_lock_was_cut_stops_before_appending(tmp_path: Path) -> None:
    """The lock's connection ended (a restart, pg_terminate_backend) while the sealer lives on:
    another sealer may hold the lock now, so this one must not append a block."""
    import psycopg

    from packproof.app.services import start_sealer
    from packproof.errors import LedgerIntegrityError
    from tests.conftest import PG_URL, pg_schema

    with pg_schema() as url:
        dirs = DataDir(tmp_path / "data", store_url=url)
        store = await dirs.open_writer()
        await store.register({"S": "un38.3-cell"}, [("d", "S", None)])
        lock = await SealerLock.acquire(dirs)
        assert lock is not None and await lock.held()
        sealer = await start_sealer(store, dirs, 1.0, 64, lock)
        assert (await sealer.seal_once()) is not None  # held: seals the registration record
        await write_batch(store, batch("d", range(3)))
        with psycopg.connect(PG_URL, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
                          "AND objid = 2 AND classid = (SELECT hashtext(%s)::oid)", (url.rsplit("%3D", 1)[1],))
        assert not await lock.held()
        blocks = len(list(sealer.ledger.read()))
        with pytest.raises(LedgerIntegrityError, match="lost its lock"):
            await sealer.seal_once()
        assert len(list(sealer.ledger.read())) == blocks  # nothing appended
        await lock.release()
        await store.close()


async def test_a_postgresql_store_reconnects_after_its_connection_is_cut() -> None:
    """A server restart or failover: the write in flight fails (and is retried by the ingestor), the next one works."""
    import psycopg

    from tests.conftest import PG_URL, pg_schema

    with pg_schema() as url:
        store = await Store.open(url)
        await store.register({"S": "un38.3-cell"}, [("d", "S", None)])
        ((pid,),) = await driver_of(store).fetch("SELECT pg_backend_pid()")
        with psycopg.connect(PG_URL, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(StoreError):
            await write_batch(store, batch("d", range(3)))
        await write_batch(store, batch("d", range(3)))  # the same batch again, on a new connection
        assert query(url, "SELECT count(*) FROM readings WHERE device_id = 'd'") == [(3,)]
        await store.close()
