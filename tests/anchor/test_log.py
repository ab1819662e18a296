"""The transparency log on a real store (SQLite and PostgreSQL): sealing grows it, checkpoints sign
it, proofs come from the stored tiles, the static directory is a tlog-tiles log that `tlog-scales`
(PyPI, nobody here wrote it) reads and verifies, and a store sealed before the log gets one."""

from __future__ import annotations

from pathlib import Path

import pytest
from tlog_scales.backend import LocalBackend
from tlog_scales.reader import TilesReader
from tlog_scales.signing import Vkey
from tlog_scales.tlog import Checkpoint as ScalesCheckpoint

from packproof import tiles
from packproof.anchor.audit import audit
from packproof.anchor.consistency import verify_consistency
from packproof.anchor.ledger import LedgerFile, log_of, make_block, verify_chain
from packproof.anchor.merkle import root_from_inclusion_proof, root_from_leaf_hashes
from packproof.anchor.sealer import Sealer, _record
from packproof.anchor.tlog import default_origin, log_verifier, sign_log_checkpoint
from packproof.anchor.tlog_checkpoint import open_checkpoint
from packproof.canonical import canonical_bytes
from packproof.crypto import key_id, private_key_from_seed, public_key_bytes
from packproof.errors import LedgerIntegrityError, ProofError
from packproof.intake import IntakeKey
from packproof.reading import Reading
from packproof.records import DeviceBatchStats, IngestBatch, ReadingRow
from packproof.rfc6962 import leaf_hash
from packproof.store import Store
from tests.conftest import Db
from tests.storeutil import write_batch

KEY = private_key_from_seed(b"ledger")
PUB = public_key_bytes(KEY)


async def _add(store: Store, device: str, start: int, n: int) -> None:
    b = IngestBatch()
    for i in range(start, start + n):
        body = canonical_bytes(Reading.model_validate({
            "v": 1, "device_id": device, "shipment_id": "S", "seq": i, "ts": "2026-01-02T03:04:05Z",
            "temperature_c": 21.5, "vibration": {"peak_g": 0.3, "freq_hz": 20.0},
            "shock": {"peak_g": 0.0, "duration_ms": 0.0}, "pressure_kpa": 101.0}))
        b.readings.append(ReadingRow(device, i, "S", "2026-01-02T03:04:05Z", 0.0, body, leaf_hash(body)))
    b.stats.append(DeviceBatchStats(device, "S", n, start, start + n - 1, "t0", "t1", 0.0, start + n - 1, 0, "[]"))
    await write_batch(store, b)


async def _store(url: str) -> Store:
    store = await Store.open(url, intake_key=IntakeKey(b"i" * 32))
    await store.register({"S": "un38.3-cell"}, [("d", "S", None)])
    return store


async def _all_leaves(store: Store) -> list[bytes]:
    return [r.leaf_hash for r in await store.sealable(0, 1_000_000)]


async def test_sealing_grows_one_log_with_a_checkpoint_per_block(tmp_path: Path, store_url: str) -> None:
    store = await _store(store_url)
    sealer = Sealer(store, LedgerFile(tmp_path / "ledger.jsonl"), KEY, max_leaves=100, tiles_dir=tmp_path / "tiles")
    await sealer.recover()
    sizes = []
    for n in (5, 300, 1, 250):  # blocks that cross tile boundaries
        await _add(store, "d", sum(sizes), n)
        while await sealer.seal_once():
            pass
        sizes.append(n)
    leaves = await _all_leaves(store)
    blocks = list(LedgerFile(tmp_path / "ledger.jsonl").read())
    verify_chain(blocks, PUB)
    assert all(b.header["v"] == 2 for b in blocks)
    # every block's header names the log after it: the root of every leaf sealed so far
    for b in blocks:
        size, root = log_of(b.header)  # type: ignore[misc]
        assert root == root_from_leaf_hashes(leaves[:size])
        cp = await store.checkpoint_at(size)
        assert cp is not None and cp.root == root
    origin = default_origin(key_id(PUB))
    latest = await store.latest_checkpoint()
    assert latest is not None and latest.size == len(leaves) == log_of(blocks[-1].header)[0]  # type: ignore[index]
    opened = open_checkpoint(latest.note.encode(), [log_verifier(origin, PUB)])
    assert (opened.checkpoint.origin, opened.checkpoint.size, opened.checkpoint.root) == (origin, latest.size,
                                                                                           latest.root)
    # proofs from the stored tiles, at every checkpoint
    for b in blocks:
        m = log_of(b.header)[0]  # type: ignore[index]
        proof = await store.consistency_proof(m, latest.size)
        verify_consistency(m, latest.size, proof, root_from_leaf_hashes(leaves[:m]), latest.root)
        for i in (0, m - 1):
            path = await store.log_inclusion(i, m)
            assert root_from_inclusion_proof(i, m, leaves[i], path) == root_from_leaf_hashes(leaves[:m])
    with pytest.raises(ProofError, match="from <= to"):
        await store.consistency_proof(2, latest.size + 1)
    await store.close()


async def test_the_static_directory_is_a_tlog_tiles_log_tlog_scales_reads(tmp_path: Path, store_url: str) -> None:
    store = await _store(store_url)
    directory = tmp_path / "tiles"
    sealer = Sealer(store, LedgerFile(tmp_path / "ledger.jsonl"), KEY, max_leaves=97, tiles_dir=directory)
    await sealer.recover()
    await _add(store, "d", 0, 600)
    old = None
    while await sealer.seal_once():
        if old is None:
            old = await store.latest_checkpoint()
    leaves = await _all_leaves(store)
    latest = await store.latest_checkpoint()
    assert latest is not None and old is not None
    assert (directory / "checkpoint").read_text() == latest.note
    # tlog-scales: the checkpoint's signature under the log's vkey, the root from our tiles, proofs
    vkey = Vkey.from_string(str(log_verifier(default_origin(key_id(PUB)), PUB)))
    theirs = ScalesCheckpoint.from_text((directory / "checkpoint").read_text())
    theirs.verify(vkey)
    reader = TilesReader(LocalBackend(directory))
    assert reader.get_checkpoint().size == len(leaves)
    assert reader.calculate_root_hash() == latest.root == theirs.root_hash
    for i in (0, 255, 256, 599, len(leaves) - 1):
        reader.get_inclusion_proof(i, latest.size).check(leaves[i], latest.root)
        assert reader.get_entry(i) == (await store.log_entries(i, i + 1))[0]
        assert leaf_hash(reader.get_entry(i)) == leaves[i]
    reader.get_consistency_proof(old.size, latest.size).check(old.root, latest.root)
    assert reader.get_consistency_proof(old.size, latest.size).node_hashes == \
        await store.consistency_proof(old.size, latest.size)
    # every file the directory holds is named as tlog-tiles names it, and written whole
    for f in directory.rglob("*"):
        if f.is_file() and f.name != "checkpoint":
            rel = f.relative_to(directory).as_posix()
            assert tiles.parse_tile_path(rel).path == rel
            assert not f.name.startswith(".")
    await store.close()


async def test_a_store_sealed_before_the_log_gets_one_on_first_start(tmp_path: Path, store_url: str) -> None:
    """v1 blocks stay as they are; the log is built over them, then sealing goes on in v2."""
    store = await _store(store_url)
    await _add(store, "d", 0, 40)
    ledger = LedgerFile(tmp_path / "ledger.jsonl")
    # blocks as packproof sealed them before the log: v1 headers, no log rows
    rows = await store.sealable(0, 1000)
    prev = None
    for height, chunk in enumerate((rows[:16], rows[16:])):
        block = make_block(height=height, prev_hash=prev.hash if prev else bytes(32),
                           merkle_root=root_from_leaf_hashes([r.leaf_hash for r in chunk]), leaf_count=len(chunk),
                           sealed_at="2026-11-22T08:00:00.000Z", key=KEY)
        ledger.append(block)
        prev = block
        await store.record_block(_record(block, chunk[0].id, chunk[-1].id), chunk)
    assert await store.log_head() is None
    sealer = Sealer(store, ledger, KEY, max_leaves=100, tiles_dir=tmp_path / "tiles")
    await sealer.recover()
    leaves = await _all_leaves(store)
    cp = await store.latest_checkpoint()
    assert cp is not None and cp.size == len(leaves) and cp.root == root_from_leaf_hashes(leaves)
    await _add(store, "d", 40, 5)
    assert await sealer.seal_once() is not None
    blocks = list(ledger.read())
    verify_chain(blocks, PUB)
    assert [b.header["v"] for b in blocks] == [1, 1, 2]
    assert log_of(blocks[2].header) == (len(leaves) + 5, root_from_leaf_hashes(await _all_leaves(store)))
    await store.close()


def test_a_rolled_back_or_truncated_log_in_a_header_is_named() -> None:
    leaves = [leaf_hash(bytes([i])) for i in range(10)]
    b0 = make_block(height=0, prev_hash=bytes(32), merkle_root=root_from_leaf_hashes(leaves[:4]), leaf_count=4,
                    sealed_at="2026-11-22T08:00:00.000Z", key=KEY, log=(4, root_from_leaf_hashes(leaves[:4])))
    for size, message in ((3, "log_size 3 is not the previous log size 4 plus its 6 leaves"),
                          (11, "log_size 11 is not the previous log size 4 plus its 6 leaves")):
        b1 = make_block(height=1, prev_hash=b0.hash, merkle_root=root_from_leaf_hashes(leaves[4:]), leaf_count=6,
                        sealed_at="2026-11-22T08:00:00.000Z", key=KEY, log=(size, root_from_leaf_hashes(leaves)))
        with pytest.raises(LedgerIntegrityError, match=message):
            verify_chain([b0, b1], PUB)
    v1 = make_block(height=1, prev_hash=b0.hash, merkle_root=root_from_leaf_hashes(leaves[4:]), leaf_count=6,
                    sealed_at="2026-11-22T08:00:00.000Z", key=KEY)
    with pytest.raises(LedgerIntegrityError, match="block 1 is a v1 block after v2 block 0: the log stopped"):
        verify_chain([b0, v1], PUB)


async def _sealed_store(tmp_path: Path, url: str) -> tuple[Store, LedgerFile]:
    store = await _store(url)
    ledger = LedgerFile(tmp_path / "ledger.jsonl")
    sealer = Sealer(store, ledger, KEY, max_leaves=100)
    await sealer.recover()
    await _add(store, "d", 0, 450)
    while await sealer.seal_once():
        pass
    return store, ledger


async def test_audit_passes_an_honest_log_and_names_each_tampering(tmp_path: Path, store_url: str) -> None:
    store, ledger = await _sealed_store(tmp_path, store_url)
    report = await audit(store, ledger, PUB, signatures=False)
    assert report.ok, report
    await store.close()
    db = Db(store_url)

    # a rewritten tile: the stored tiles no longer give the leaves' root
    tile = db.execute("SELECT hashes FROM log_tiles WHERE level=0 AND idx=0").fetchone()[0]
    db.execute("UPDATE log_tiles SET hashes=? WHERE level=0 AND idx=0", (bytes(32) + bytes(tile)[32:],))
    store = await Store.open(store_url, readonly=True)
    report = await audit(store, ledger, PUB, signatures=False)
    assert any("a rewritten tile" in p for p in report.log), report.log
    await store.close()
    db.execute("UPDATE log_tiles SET hashes=? WHERE level=0 AND idx=0", (bytes(tile),))

    # a split view: another root signed at a size the log had
    size = db.execute("SELECT log_end FROM log_blocks WHERE height=1").fetchone()[0]
    forged = sign_log_checkpoint(default_origin(key_id(PUB)), size, bytes(32), KEY)
    db.execute("UPDATE checkpoints SET root=?, note=? WHERE size=?", (forged.root, forged.note, size))
    store = await Store.open(store_url, readonly=True)
    report = await audit(store, ledger, PUB, signatures=False)
    assert any(f"the checkpoint at size {size} signs root {'00' * 32}" in p and "split view" in p
               for p in report.log), report.log
    await store.close()

    # a truncated log: the last blocks' places gone, and the latest checkpoint beyond what is left
    db.execute("DELETE FROM log_blocks WHERE height >= 3")
    store = await Store.open(store_url, readonly=True)
    report = await audit(store, ledger, PUB, signatures=False)
    assert any("block 3 and later ones have no place in the store's log" in p for p in report.log), report.log
    await store.close()


async def test_audit_names_the_first_block_whose_log_root_is_wrong(tmp_path: Path, store_url: str) -> None:
    """A block rewritten and re-signed by the operator: chain and block root hold, the log root does not."""
    store, ledger = await _sealed_store(tmp_path, store_url)
    blocks = list(ledger.read())
    last = blocks[-1]
    rewritten = make_block(height=last.height, prev_hash=bytes.fromhex(last.header["prev_hash"]),
                           merkle_root=bytes.fromhex(last.header["merkle_root"]),
                           leaf_count=last.header["leaf_count"], sealed_at=last.header["sealed_at"], key=KEY,
                           log=(last.header["log_size"], bytes(32)))
    ledger.path.write_bytes(b"".join(b.to_line() for b in blocks[:-1]) + rewritten.to_line())
    await store.close()
    Db(store_url).execute("UPDATE blocks SET hash=?, header=?, signature=? WHERE height=?",
                          (rewritten.hash, rewritten.header_text, rewritten.to_json()["signature"], last.height))
    store = await Store.open(store_url, readonly=True)
    report = await audit(store, ledger, PUB, signatures=False)
    assert report.chain == []
    assert [(h, "first block whose log_root is wrong" in m) for h, m in report.blocks_bad] == [(last.height, True)]
    await store.close()


async def test_a_lost_or_lagging_static_directory_is_caught_up_on_start(tmp_path: Path, store_url: str) -> None:
    """A crash after the store's commit and before publishing leaves the directory behind: the next
    start writes everything since the checkpoint it serves (here: all of it, the directory deleted)."""
    store = await _store(store_url)
    directory = tmp_path / "tiles"
    ledger = LedgerFile(tmp_path / "ledger.jsonl")
    sealer = Sealer(store, ledger, KEY, max_leaves=100, tiles_dir=directory)
    await sealer.recover()
    await _add(store, "d", 0, 300)
    while await sealer.seal_once():
        pass
    before = {f.relative_to(directory): f.read_bytes() for f in directory.rglob("*") if f.is_file()}
    for f in sorted(directory.rglob("*"), reverse=True):
        f.unlink() if f.is_file() else f.rmdir()
    await Sealer(store, ledger, KEY, max_leaves=100, tiles_dir=directory).recover()
    after = {f.relative_to(directory): f.read_bytes() for f in directory.rglob("*") if f.is_file()}
    latest = await store.latest_checkpoint()
    assert latest is not None
    # the newest version of every tile and the checkpoint are back (older partial widths are not needed)
    assert {k: v for k, v in before.items() if k in after} == {k: after[k] for k in before if k in after}
    reader = TilesReader(LocalBackend(directory))
    assert reader.get_checkpoint().size == latest.size and reader.calculate_root_hash() == latest.root
    await store.close()
