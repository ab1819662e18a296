"""A sealer never writes a ledger that does not continue the chain the store records (issue 12, item 6).

The ledger file deleted, truncated or replaced while packproof runs: the sealer refuses the
next append with an error naming the store's last block and the file's, stops sealing
without taking the ingestor down, and `/health` reports it. Run on both store engines.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from packproof.anchor.ledger import LedgerFile
from packproof.anchor.merkle import leaf_hash
from packproof.anchor.sealer import Sealer
from packproof.api.deps import ApiSettings
from packproof.api.main import create_app
from packproof.crypto import b64, private_key_from_seed, public_key_bytes
from packproof.errors import LedgerIntegrityError
from packproof.intake import IntakeKey
from packproof.paths import DataDir
from packproof.records import IngestBatch, ReadingRow
from packproof.store import Store
from tests.conftest import Service, wait_for
from tests.storeutil import write_batch

KEY = private_key_from_seed(b"continuity")
INTAKE = IntakeKey(b"k" * 32)


async def add(store: Store, start: int, n: int) -> None:
    b = IngestBatch()
    for i in range(start, start + n):
        body = json.dumps({"seq": i}).encode()
        b.readings.append(ReadingRow("d", i, "S", "2026-11-22T08:00:00Z", 0.0, body, leaf_hash(body)))
    await write_batch(store, b)


async def sealed_store(url: str, ledger: LedgerFile, blocks: int) -> tuple[Store, Sealer]:
    store = await Store.open(url, intake_key=INTAKE)
    await store.register({"S": "un38.3-cell"}, [("d", "S", None)])
    sealer = Sealer(store, ledger, KEY, max_leaves=4)
    await sealer.recover()
    await add(store, 0, 4 * blocks)
    for _ in range(blocks):
        assert await sealer.seal_once() is not None
    return store, sealer


async def test_a_deleted_ledger_is_not_recreated_mid_chain(tmp_path: Path, store_url: str) -> None:
    ledger = LedgerFile(tmp_path / "ledger.jsonl")
    store, sealer = await sealed_store(store_url, ledger, 3)
    head = await store.head_block()
    assert head is not None and head.height == 2
    ledger.path.unlink()
    await add(store, 100, 4)
    with pytest.raises(LedgerIntegrityError, match=r"refusing to seal block 3: the store records block 2 .* "
                                                   r"ledger .* is missing or empty"):
        await sealer.seal_once()
    assert not ledger.path.exists()  # nothing started afresh at block 3
    await store.close()


async def test_a_replaced_ledger_is_refused_naming_both_blocks(tmp_path: Path, store_url: str) -> None:
    ledger = LedgerFile(tmp_path / "ledger.jsonl")
    store, sealer = await sealed_store(store_url, ledger, 3)
    lines = ledger.path.read_bytes().splitlines(keepends=True)
    ledger.path.write_bytes(b"".join(lines[:2]))  # cut back to block 1
    await add(store, 100, 4)
    with pytest.raises(LedgerIntegrityError, match=r"the store records block 2 \([0-9a-f]{16}\.\.\) but the ledger "
                                                   r".* ends at block 1 \([0-9a-f]{16}\.\.\)"):
        await sealer.seal_once()
    assert len(ledger.path.read_bytes().splitlines()) == 2
    await store.close()


async def test_the_sealer_halts_and_says_why_while_the_caller_lives_on(tmp_path: Path, store_url: str) -> None:
    ledger = LedgerFile(tmp_path / "ledger.jsonl")
    store, sealer = await sealed_store(store_url, ledger, 2)
    ledger.path.unlink()
    await add(store, 100, 4)
    stop = asyncio.Event()
    await asyncio.wait_for(sealer.run(stop), 10)  # returns on its own: no exception for the ingestor's task
    assert sealer.halted is not None and "is missing or empty" in sealer.halted
    assert not ledger.path.exists()
    await add(store, 200, 4)  # the store still takes readings
    await store.close()


async def test_health_reports_a_ledger_that_does_not_continue_the_store(tmp_path: Path, store_url: str) -> None:
    dirs = DataDir(tmp_path / "data", store_url=store_url)
    store, _ = await sealed_store(store_url, LedgerFile(dirs.ledger), 2)
    await store.close()
    dirs.ledger_pub.write_text(b64(public_key_bytes(KEY)) + "\n")
    app = create_app(ApiSettings(dirs))
    async with app.router.lifespan_context(app):
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")
        ok = (await client.get("/health")).json()
        assert ok["status"] == "ok" and "problem" not in ok
        dirs.ledger.unlink()
        broken = (await client.get("/health")).json()
        await client.aclose()
    assert broken["status"] == "ledger-broken", broken
    assert "the store records block 1" in broken["problem"] and "missing or empty" in broken["problem"]


def test_packproof_seal_stops_loudly_when_its_ledger_is_deleted(tmp_path: Path) -> None:
    """The command an operator runs: no new ledger, no traceback, exit 1 naming the store's block."""
    data = tmp_path / "data"

    async def write(start: int) -> None:
        store = await DataDir(data).open_writer()
        if start == 0:
            await store.register({"S": "un38.3-cell"}, [("d", "S", None)])
        await add(store, start, 4)
        await store.close()

    asyncio.run(write(0))
    sealer = Service("seal", "--data-dir", str(data), "--seal-interval", "0.1", log=tmp_path / "seal.log",
                     env={"COLUMNS": "300"})
    try:
        wait_for(lambda: (data / "ledger.jsonl").exists() and (data / "ledger.jsonl").read_text().count("\n") >= 1,
                 20, "the first block")
        (data / "ledger.jsonl").unlink()
        asyncio.run(write(100))
        wait_for(lambda: sealer.proc.poll() is not None, 20, "the sealer to stop")
    finally:
        code = sealer.stop()
    out = sealer.output()
    assert code == 1, out
    assert "SEALING STOPPED" in out
    assert "error: sealing stopped: refusing to seal block 1: the store records block 0" in out
    assert "Traceback" not in out and not (data / "ledger.jsonl").exists()
