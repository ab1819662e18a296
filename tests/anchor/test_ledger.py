"""The ledger file and the sealer's crash repair, on a real store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from packproof.anchor.ledger import GENESIS_PREV, LedgerFile, check_block, make_block, verify_chain
from packproof.anchor.merkle import leaf_hash
from packproof.anchor.sealer import Sealer
from packproof.crypto import private_key_from_seed, public_key_bytes
from packproof.errors import LedgerIntegrityError
from packproof.intake import IntakeKey
from packproof.records import DeviceBatchStats, IngestBatch, ReadingRow
from packproof.store import Store
from tests.storeutil import write_batch

KEY = private_key_from_seed(b"ledger")
PUB = public_key_bytes(KEY)


def chain(n: int) -> list:  # type: ignore[type-arg]
    blocks, prev = [], GENESIS_PREV
    for h in range(n):
        b = make_block(height=h, prev_hash=prev, merkle_root=bytes([h]) * 32, leaf_count=h + 1,
                       sealed_at="2026-11-22T08:00:00.000Z", key=KEY)
        blocks.append(b)
        prev = b.hash
    return blocks


def test_a_good_chain_verifies_and_round_trips_through_the_file(tmp_path: Path) -> None:
    f = LedgerFile(tmp_path / "ledger.jsonl")
    for b in chain(5):
        f.append(b)
    read = list(f.read())
    assert read == chain(5)
    verify_chain(read, PUB)


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda bs: bs.pop(2), r"block at position 2 has height 3"),
    (lambda bs: bs.insert(1, bs.pop(3)), r"block at position 1 has height 3"),
    (lambda bs: bs[2].header.__setitem__("leaf_count", 99), r"block 2: header hashes to [0-9a-f]{64}"),
    (lambda bs: bs[3].header.__setitem__("prev_hash", "00" * 32), r"block 3: prev_hash 0{64} does not link"),
])
def test_each_tampering_names_the_block(mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    blocks = chain(5)
    mutate(blocks)
    with pytest.raises(LedgerIntegrityError, match=message):
        verify_chain(blocks, PUB)


def test_a_wrong_signature_or_key_is_named() -> None:
    blocks = chain(2)
    other = public_key_bytes(private_key_from_seed(b"other"))
    with pytest.raises(LedgerIntegrityError, match=r"block 0: signed by key [0-9a-f]{16}, expected key"):
        check_block(blocks[0], None, other)
    forged = type(blocks[1])(blocks[1].header, blocks[1].hash, bytes(64))
    with pytest.raises(LedgerIntegrityError, match=r"block 1: signature does not verify"):
        check_block(forged, blocks[0], PUB)


def test_an_incomplete_last_line_is_reported_then_cut(tmp_path: Path) -> None:
    f = LedgerFile(tmp_path / "ledger.jsonl")
    for b in chain(2):
        f.append(b)
    with f.path.open("ab") as fh:
        fh.write(b'{"header": {"v": 1, "hei')
    with pytest.raises(LedgerIntegrityError, match=r"ledger.jsonl:3: last line is incomplete"):
        list(f.read())
    assert f.repair_tail() > 0
    assert len(list(f.read())) == 2


async def _store_with(url: str, n: int) -> Store:
    store = await Store.open(url, intake_key=IntakeKey(b"i" * 32))
    await store.register({"S": "un38.3-cell"}, [("d", "S", None)])
    b = IngestBatch()
    for i in range(n):
        body = json.dumps({"seq": i}).encode()
        b.readings.append(ReadingRow("d", i, "S", "2026-11-22T08:00:00Z", 0.0, body, leaf_hash(body)))
    b.stats.append(DeviceBatchStats("d", "S", n, 0, n - 1, "t0", "t1", 0.0, n - 1, 0, "[]"))
    await write_batch(store, b)
    return store


async def test_sealer_completes_a_block_written_to_the_ledger_but_not_recorded(
        tmp_path: Path, store_url: str) -> None:
    store = await _store_with(store_url, 10)
    ledger = LedgerFile(tmp_path / "ledger.jsonl")
    sealer = Sealer(store, ledger, KEY, max_leaves=4)
    await sealer.recover()
    assert (await sealer.seal_once()).leaf_count == 4  # type: ignore[union-attr]
    # Crash between the ledger append and the store transaction: simulate by appending
    # the next block to the ledger only.
    rows = await store.sealable(4, 4)
    from packproof.anchor.merkle import root_from_leaf_hashes
    head = await store.head_block()
    assert head is not None
    sealed = await store.sealable(0, 8)  # the log after block 1: the first 8 leaves
    orphan = make_block(height=1, prev_hash=head.hash, merkle_root=root_from_leaf_hashes([r.leaf_hash for r in rows]),
                        leaf_count=4, sealed_at="2026-11-22T08:00:01.000Z", key=KEY,
                        log=(8, root_from_leaf_hashes([r.leaf_hash for r in sealed])))
    ledger.append(orphan)
    restarted = Sealer(store, ledger, KEY, max_leaves=4)
    assert await restarted.recover() == 1
    assert (await restarted.seal_once()).height == 2  # type: ignore[union-attr]
    assert await restarted.seal_once() is None
    verify_chain(list(ledger.read()), PUB)
    assert (await store.head_block()).leaf_count == 3  # 10 readings + the registration record = 4 + 4 + 3  # type: ignore[union-attr]
    # the completed block has its checkpoint, and the log goes on from it
    assert (await store.checkpoint_at(8)) is not None
    assert (await store.latest_checkpoint()).size == 11  # type: ignore[union-attr]
    await store.close()


async def test_sealer_refuses_a_ledger_shorter_than_the_store(tmp_path: Path, store_url: str) -> None:
    store = await _store_with(store_url, 3)
    ledger = LedgerFile(tmp_path / "ledger.jsonl")
    sealer = Sealer(store, ledger, KEY)
    await sealer.recover()
    await sealer.seal_once()
    ledger.path.write_bytes(b"")
    with pytest.raises(LedgerIntegrityError, match=r"store records block 0 but the ledger .* ends at block -1"):
        await Sealer(store, ledger, KEY).recover()
    await store.close()
