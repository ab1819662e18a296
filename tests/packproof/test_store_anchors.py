"""The `anchors` table (schema 7, issue 17) on both engines: sends, receipts, confirmations, reorgs,
the compare-and-set on the state the loop saw, pages newest first, and the migration from 6."""

from __future__ import annotations

import pytest

from packproof.errors import StoreError
from packproof.records import AnchorMined, AnchorSent, AnchorState
from packproof.store import SCHEMA_VERSION, Store
from tests.storeutil import driver_of

CONTRACT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def sent(size: int, tx: int, nonce: int = 0, chain_id: int = 31337) -> AnchorSent:
    return AnchorSent(chain_id, CONTRACT, size, bytes([size % 256]) * 32, b"\x07" * 32, bytes([tx]) * 32, nonce,
                      2_000_000_000, 1_000_000_000, 1000.0 + size)


MINED = AnchorMined(12, b"\x12" * 32, 1_700_000_000, 98_723)


async def test_an_anchor_through_its_states(store_url: str) -> None:
    store = await Store.open(store_url)
    try:
        a = await store.record_anchor_sent(sent(10, 1))
        assert (a.status, a.size, a.tx_hash, a.nonce, a.sends, a.mined) == (AnchorState.PENDING, 10, b"\x01" * 32,
                                                                             0, 1, None)
        b = await store.record_anchor_resent(a.id, AnchorState.PENDING, sent(10, 2), "dropped by the node")
        assert (b.tx_hash, b.nonce, b.sends, b.error) == (b"\x02" * 32, 0, 2, "dropped by the node")
        m = await store.record_anchor_mined(a.id, MINED)
        assert (m.status, m.mined, m.error) == (AnchorState.MINED, MINED, None)
        assert await store.latest_confirmed_anchor() is None
        c = await store.record_anchor_confirmed(a.id)
        assert c.status is AnchorState.CONFIRMED and await store.latest_confirmed_anchor() == c
        r = await store.record_anchor_reorged(a.id, AnchorState.CONFIRMED, "block 12 is no longer canonical")
        assert (r.status, r.mined, r.error) == (AnchorState.PENDING, None, "block 12 is no longer canonical")
        assert await store.latest_confirmed_anchor() is None
        assert await store.anchor(a.id) == r
    finally:
        await store.close()


async def test_a_change_from_a_state_the_row_is_not_in_is_refused(store_url: str) -> None:
    store = await Store.open(store_url)
    try:
        a = await store.record_anchor_sent(sent(10, 1))
        with pytest.raises(StoreError, match=f"anchor {a.id} is pending, not mined as its loop saw it"):
            await store.record_anchor_confirmed(a.id)
        with pytest.raises(StoreError, match="anchor 999 is not in the store"):
            await store.record_anchor_mined(999, MINED)
        with pytest.raises(StoreError, match="an anchor ends failed or replaced, not mined"):
            await store.record_anchor_final(a.id, AnchorState.MINED, "no")
        f = await store.record_anchor_final(a.id, AnchorState.FAILED, "SizeBackwards", MINED)
        assert (f.status, f.error, f.mined) == (AnchorState.FAILED, "SizeBackwards", MINED)
    finally:
        await store.close()


async def test_lists_open_anchors_sizes_and_pages(store_url: str) -> None:
    store = await Store.open(store_url)
    try:
        assert await store.anchored_size(31337, CONTRACT) == 0
        rows = [await store.record_anchor_sent(sent(size, i, nonce=i)) for i, size in enumerate([4, 8, 16, 32], 1)]
        await store.record_anchor_mined(rows[0].id, MINED)
        await store.record_anchor_confirmed(rows[0].id)
        await store.record_anchor_mined(rows[1].id, MINED)
        await store.record_anchor_confirmed(rows[1].id)
        await store.record_anchor_final(rows[3].id, AnchorState.REPLACED, "nonce 4 used by another transaction")
        assert await store.anchored_size(31337, CONTRACT) == 16  # 32 was replaced
        assert await store.anchored_size(1, CONTRACT) == 0
        assert [a.size for a in await store.open_anchors(31337, CONTRACT)] == [8, 16]  # newest confirmed + pending
        assert (await store.latest_confirmed_anchor(31337, CONTRACT)).size == 8  # type: ignore[union-attr]
        assert await store.latest_confirmed_anchor(1, CONTRACT) is None
        page = await store.anchors(limit=3)
        assert [a.size for a in page] == [32, 16, 8]
        assert [a.size for a in await store.anchors(limit=3, before_id=page[-1].id)] == [4]
    finally:
        await store.close()


async def test_a_version_6_store_gains_the_anchors_table(store_url: str) -> None:
    store = await Store.open(store_url)
    await store.set_log_origin("example.com/log")
    db = driver_of(store)  # what a store written before schema 7 looks like
    async with store.transaction("making a schema 6 store"):
        await db.execute("DROP TABLE anchors")
        await db.execute("UPDATE meta SET value='6' WHERE key='schema_version'")
    await store.close()
    store = await Store.open(store_url)
    try:
        version = (await driver_of(store).fetch("SELECT value FROM meta WHERE key='schema_version'"))[0][0]
        assert (version, SCHEMA_VERSION) == ("7", 7)
        assert await store.log_origin() == "example.com/log"
        assert (await store.record_anchor_sent(sent(3, 9))).status is AnchorState.PENDING
    finally:
        await store.close()
