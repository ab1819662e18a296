"""The sealer's ledger on a real file system that fills up mid-block.

The ledger lives on a small tmpfs whose last page holds its first lines; a filler takes
every other page. The next appends fit in that page until one crosses its end: a real
short write, then ENOSPC. The ledger must be left with whole lines only, the sealer must
keep running (reporting the full disk), and once the filler is deleted it must resume at
the next height, sealing everything, with a chain that verifies.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from packproof.anchor.ledger import LedgerFile, verify_chain
from packproof.anchor.sealer import Sealer
from packproof.crypto import load_or_create_ledger_key, public_key_bytes
from packproof.diskfull import DISK
from packproof.paths import DataDir
from tests.anchor.test_sealer_crash import fill
from tests.conftest import fill_up, small_fs
from tests.waiting import wait_until


async def test_a_ledger_append_cut_short_by_a_full_disk_leaves_whole_lines_and_sealing_resumes(
        tmp_path: Path) -> None:
    data = tmp_path / "data"
    stored = await fill(data, per_device=100)  # 4 devices: 400 readings, and 4 registry records
    with small_fs(tmp_path / "fs", size="64k") as fs:
        ledger = LedgerFile(fs / "ledger.jsonl")
        key = load_or_create_ledger_key(tmp_path / "ledger.key")
        store = await DataDir(data).open_writer()  # as the ingestor writes: with the intake key
        try:
            sealer = Sealer(store, ledger, key, interval=0.05, max_leaves=8)
            await sealer.recover()
            assert await sealer.seal_once() is not None  # the first line, in the ledger's only page
            filler = fill_up(fs)
            stop = asyncio.Event()
            task = asyncio.create_task(sealer.run(stop))
            assert await wait_until(lambda: "sealer" in [d.component for d in DISK.current()], 20)
            assert 1 < sealer.sealed_blocks < 53  # some lines fitted in the page; then the disk was full
            text = ledger.path.read_bytes()
            assert text.endswith(b"\n") and len(list(ledger.read())) == sealer.sealed_blocks  # no fragment
            await asyncio.sleep(0.5)
            assert not task.done()  # still running, retrying
            filler.unlink()
            assert await wait_until(lambda: sealer.sealed_leaves == stored + 4, 20), sealer.sealed_leaves
            assert not DISK.current()
            stop.set()
            await task
            blocks = list(ledger.read())
            assert [b.height for b in blocks] == list(range(len(blocks))) == list(range(sealer.sealed_blocks))
            verify_chain(blocks, public_key_bytes(key))
            head = await store.head_block()
            assert head is not None and head.height == len(blocks) - 1 and head.hash == blocks[-1].hash
        finally:
            await store.close()
