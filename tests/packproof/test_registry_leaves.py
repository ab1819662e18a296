"""`registry_leaves`: the registry record leaves by the device they name (schema 6, issue 16).

`Store.registry_records` reads through it, so what it returns must be exactly the leaves whose
canonical JSON names the device, in seq order, whether written since (every registry write
indexes its leaf in the same transaction) or before (the migration from schema 5 backfills it).
The reference here is the naive one: parse every `~registry` leaf.
"""

from __future__ import annotations

import json

from packproof.crypto import private_key_from_seed, public_key_bytes
from packproof.store import REGISTRY, SCHEMA_VERSION, Store
from tests.storeutil import driver_of


async def naive_records(store: Store, device_id: str) -> list[tuple[int, bytes]]:
    """Every registry leaf whose `device_id` field is `device_id`, by seq: what the index must give."""
    rows = await driver_of(store).fetch("SELECT id, body FROM readings WHERE device_id=? ORDER BY seq", (REGISTRY,))
    return [(int(i), bytes(b)) for i, b in rows if json.loads(bytes(b)).get("device_id") == device_id]


async def every_kind_of_registry_write(store: Store) -> None:
    key = public_key_bytes(private_key_from_seed(b"dev-a-1"))
    await store.register({"S": "un38.3-cell", "T": None},
                         [("dev-a", "S", key), ("dev-b", "S", None), ("dev-ab", "T", None)])
    await store.set_profile("S", "un38.3-module", "re-packed")  # names no device
    await store.rotate_key("dev-a", public_key_bytes(private_key_from_seed(b"dev-a-2")), 10)
    await store.revoke("dev-b", "lost")
    await store.register({}, [("dev-c", "T", None)])
    await store.add_party("maker", "Maker", ["manufacturer"], public_key_bytes(private_key_from_seed(b"m")))


DEVICES = ("dev-a", "dev-b", "dev-ab", "dev-c", "ghost", "dev")


async def test_every_registry_write_indexes_its_leaf(store_url: str) -> None:
    store = await Store.open(store_url)
    try:
        await every_kind_of_registry_write(store)
        kinds = {d: [json.loads(r.body)["record"] for r in await store.registry_records(d)] for d in DEVICES}
        assert kinds["dev-a"] == ["device-registered", "device-key-rotated"]
        assert kinds["dev-b"] == ["device-registered", "device-revoked"]
        assert kinds["dev-ab"] == kinds["dev-c"] == ["device-registered"]
        assert kinds["ghost"] == kinds["dev"] == []  # no prefix match: "dev" names no leaf
        for d in DEVICES:
            assert [(r.id, r.body) for r in await store.registry_records(d)] == await naive_records(store, d)
        indexed = await driver_of(store).fetch("SELECT count(*) FROM registry_leaves")
        assert indexed[0][0] == 6  # 4 registrations, a rotation, a revocation; not the profile change
    finally:
        await store.close()


async def test_a_version_5_store_is_backfilled(store_url: str) -> None:
    store = await Store.open(store_url)
    await every_kind_of_registry_write(store)
    before = {d: [(r.id, r.body) for r in await store.registry_records(d)] for d in DEVICES}
    db = driver_of(store)  # what a store written before schema 6 looks like
    async with store.transaction("making a schema 5 store"):
        await db.execute("DROP TABLE registry_leaves")
        await db.execute("UPDATE meta SET value='5' WHERE key='schema_version'")
    await store.close()
    store = await Store.open(store_url)
    try:
        db = driver_of(store)
        assert (await db.fetch("SELECT value FROM meta WHERE key='schema_version'"))[0][0] == str(SCHEMA_VERSION)
        after = {d: [(r.id, r.body) for r in await store.registry_records(d)] for d in DEVICES}
        assert after == before
        for d in DEVICES:
            assert after[d] == await naive_records(store, d)
        await store.register({}, [("dev-d", "T", None)])  # written after the migration: indexed as it is written
        assert [json.loads(r.body)["record"] for r in await store.registry_records("dev-d")] == ["device-registered"]
    finally:
        await store.close()
