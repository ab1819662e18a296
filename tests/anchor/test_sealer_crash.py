"""The sealer dies in its narrowest windows (failpoints, as kill -9 would) and the next one repairs.

Each test fills a real store, runs `packproof seal` as a subprocess that dies at a
failpoint, then runs it again and checks that the ledger and the store agree, sealing
resumed at the next height, and `packproof audit` passes. The store is filled through
the store's own batch writer with real signed readings from the simulated fleet.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from packproof.anchor.merkle import leaf_hash
from packproof.failpoints import EXIT_CODE
from packproof.paths import DataDir
from packproof.records import IngestBatch, ReadingRow
from packproof.simulators.fleet import build_fleet, shipments_of
from tests.conftest import Service, cli, packproof_cmd, wait_for
from tests.storeutil import write_batch

ROOT = Path(__file__).resolve().parents[2]


async def fill(data: Path, per_device: int, start: int = 0) -> int:
    """Store `per_device` signed readings from each of 4 devices; returns how many were stored."""
    fleet = build_fleet(shipments=1, packs=4, scenario="nominal-road", seed=3)
    store = await DataDir(data).open_writer()  # as the ingestor writes: with the intake key
    try:
        await store.register(shipments_of(fleet), [(d.device_id, d.shipment_id, d.public_key) for d in fleet])
        batch = IngestBatch()
        for d in fleet:
            d.next_seq = start
            for _ in range(per_device):
                body = d.reading(time.time())
                batch.readings.append(ReadingRow(d.device_id, d.next_seq - 1, d.shipment_id, json.loads(body)["ts"],
                                       time.time(), body, leaf_hash(body)))
        await write_batch(store, batch)
        return len(batch.readings)
    finally:
        await store.close()


def seal_dies_at(data: Path, failpoint: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PACKPROOF_FAILPOINT": failpoint}
    return subprocess.run(packproof_cmd("seal", "--data-dir", str(data), "--seal-interval", "0.1"),
                          capture_output=True, text=True, timeout=60, cwd=ROOT, env=env)


def blocks(data: Path) -> list[tuple[int, int, int]]:
    with sqlite3.connect(data / "packproof.db") as db:
        return db.execute("SELECT height, first_id, last_id FROM blocks ORDER BY height").fetchall()


def unsealed(data: Path) -> int:
    with sqlite3.connect(data / "packproof.db") as db:
        last = db.execute("SELECT coalesce(max(last_id), 0) FROM blocks").fetchone()[0]
        return int(db.execute("SELECT count(*) FROM readings WHERE id > ?", (last,)).fetchone()[0])


def seal_everything(data: Path, tmp_path: Path) -> str:
    s = Service("seal", "--data-dir", str(data), "--seal-interval", "0.1", log=tmp_path / "seal.log")
    try:
        s.wait_output("sealing")
        wait_for(lambda: unsealed(data) == 0, 30, "every reading sealed")
    finally:
        assert s.stop() == 0, s.output()
    return s.output()


@pytest.mark.parametrize("failpoint", ["seal.after-ledger", "seal.mid-ledger"])
def test_a_sealer_killed_mid_block_is_repaired_on_restart(tmp_path: Path, failpoint: str) -> None:
    data = tmp_path / "data"
    asyncio.run(fill(data, 50))
    dead = seal_dies_at(data, failpoint)
    assert dead.returncode == EXIT_CODE, dead.stdout + dead.stderr
    assert f"failpoint {failpoint} fired" in dead.stderr
    assert blocks(data) == []  # the store never recorded the block
    lines = (data / "ledger.jsonl").read_bytes()
    if failpoint == "seal.after-ledger":
        assert lines.count(b"\n") == 1  # ...but the ledger holds it, complete
    else:
        assert lines and not lines.endswith(b"\n")  # half a line

    asyncio.run(fill(data, 10, start=50))  # more readings arrive while the sealer is down
    log = seal_everything(data, tmp_path)
    heights = [h for h, _, _ in blocks(data)]
    assert heights == list(range(len(heights)))
    if failpoint == "seal.after-ledger":
        assert len(heights) >= 2  # the recovered block, then the next height for the later readings
        assert "recovered 1 block(s) written to the ledger but not recorded" in log
        assert blocks(data)[0][1:] == (1, 4 + 200)  # the same readings it sealed before dying (4 records first)
    else:
        assert "cut an incomplete last line" in log  # then sealed anew from block 0
    r = cli("audit", "--data-dir", str(data))
    assert r.returncode == 0 and "audit passed" in r.stdout, r.stdout + r.stderr


def test_a_second_sealer_waits_and_takes_over_without_a_fork(tmp_path: Path) -> None:
    data = tmp_path / "data"
    asyncio.run(fill(data, 20))
    first = Service("seal", "--data-dir", str(data), "--seal-interval", "0.1", log=tmp_path / "first.log")
    first.wait_output("sealing")
    wait_for(lambda: unsealed(data) == 0, 30, "the first sealer to seal")
    second = Service("seal", "--data-dir", str(data), "--seal-interval", "0.1", log=tmp_path / "second.log")
    try:
        second.wait_output("another sealer holds")
        first.proc.kill()  # kill -9: the lock goes with the process
        first.proc.wait()
        second.wait_output("took over sealing")
        asyncio.run(fill(data, 20, start=20))
        wait_for(lambda: unsealed(data) == 0, 30, "the second sealer to seal")
    finally:
        assert second.stop() == 0, second.output()
        first.stop()
    heights = [h for h, _, _ in blocks(data)]
    assert heights == list(range(len(heights)))
    r = cli("ledger", "verify", "--data-dir", str(data))
    assert r.returncode == 0, r.stdout + r.stderr
    r = cli("audit", "--data-dir", str(data))
    assert r.returncode == 0 and "audit passed" in r.stdout, r.stdout + r.stderr
