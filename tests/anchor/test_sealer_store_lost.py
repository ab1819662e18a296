"""The sealer's database connection is cut under it (PostgreSQL's pg_terminate_backend, as a
server restart or a failover does): sealing pauses, says why, and resumes on a new connection
once the store answers; it never ends the sealer while readings keep arriving."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from packproof.anchor.ledger import LedgerFile, verify_chain
from packproof.anchor.merkle import leaf_hash
from packproof.anchor.sealer import Sealer
from packproof.crypto import load_or_create_ledger_key, public_key_bytes
from packproof.health import problems
from packproof.paths import DataDir
from packproof.records import IngestBatch, ReadingRow
from packproof.simulators.fleet import build_fleet, shipments_of
from tests.conftest import _pg_admin, pg_schema
from tests.storeutil import driver_of, write_batch
from tests.waiting import wait_until


def _batch(fleet, per_device: int) -> IngestBatch:  # type: ignore[no-untyped-def]
    batch = IngestBatch()
    for d in fleet:
        for _ in range(per_device):
            body = d.reading(time.time())
            batch.readings.append(ReadingRow(d.device_id, d.next_seq - 1, d.shipment_id, json.loads(body)["ts"],
                                             time.time(), body, leaf_hash(body)))
    return batch


async def test_a_sealer_whose_database_connection_is_terminated_pauses_and_resumes(tmp_path: Path) -> None:
    fleet = build_fleet(shipments=1, packs=2, scenario="nominal-road", seed=5)
    with pg_schema() as url:
        store = await DataDir(tmp_path / "data", store_url=url).open_writer()
        try:
            await store.register(shipments_of(fleet), [(d.device_id, d.shipment_id, d.public_key) for d in fleet])
            await write_batch(store, _batch(fleet, 20))
            key = load_or_create_ledger_key(tmp_path / "ledger.key")
            ledger = LedgerFile(tmp_path / "ledger.jsonl")
            sealer = Sealer(store, ledger, key, interval=0.05, max_leaves=16)
            stop = asyncio.Event()
            task = asyncio.create_task(sealer.run(stop))
            assert await wait_until(lambda: sealer.sealed_readings == 40, 20), sealer.sealed_readings

            pid = (await driver_of(store).fetch("SELECT pg_backend_pid()"))[0][0]
            with _pg_admin() as admin:
                assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)
            # the next seal finds its connection gone: a StoreError, which used to end the sealer
            assert await wait_until(lambda: sealer.paused is not None or sealer.sealed_blocks > 3, 20)
            await write_batch(store, _batch(fleet, 10))  # intake goes on (the store reconnects)
            assert await wait_until(lambda: sealer.sealed_readings == 60, 20), (sealer.sealed_readings, sealer.paused)
            assert not task.done() and sealer.halted is None and sealer.paused is None

            stop.set()
            await task
            blocks = list(ledger.read())
            verify_chain(blocks, public_key_bytes(key))
            head = await store.head_block()
            assert head is not None and head.hash == blocks[-1].hash
        finally:
            await store.close()


def test_a_paused_sealer_is_a_problem_named_with_its_cause() -> None:
    status = {"component": "sealer", "state": "paused", "since": "2026-12-01T10:00:00Z",
              "written_unix": 100.0, "error": "store postgresql://x: server closed the connection"}
    said = problems({"sealer": status}, now=101.0)
    assert len(said) == 1 and "sealing paused since 2026-12-01T10:00:00Z" in said[0]
    assert "server closed the connection" in said[0]
