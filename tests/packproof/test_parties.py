"""The custody parties' registry in the store (issue 15), on SQLite and PostgreSQL.

Every change is a `~parties` record leaf naming everything a verifier needs: replaying the
leaves (`sealed_parties`) rebuilds exactly what the tables hold. Weak keys, unknown roles and
bad ids are refused before anything is written; a registration contradicting the registry is
a conflict; re-adding a party as it is changes nothing.
"""

from __future__ import annotations

import json

import pytest

from packproof.crypto import b64, private_key_from_seed, public_key_bytes
from packproof.errors import ConfigError, RegistryConflict
from packproof.parties import PARTIES, party_problems, sealed_parties
from packproof.records import PartyKey, PartyRecord
from packproof.store import Store
from tests.dbutil import query_sync as query


def key(name: str) -> bytes:
    return public_key_bytes(private_key_from_seed(name.encode()))


async def leaves(store: Store) -> list[dict[str, object]]:
    return [json.loads(r.body) for r in await store.records(PARTIES)]


async def test_add_rotate_revoke_are_sealed_records_that_rebuild_the_tables(store_url: str) -> None:
    store = await Store.open(store_url)
    try:
        assert await store.add_party("hamburg-air", "Hamburg Air Cargo", ["carrier"], key("a1"))
        assert await store.add_party("plant-1", "Plant One", ["receiver", "inspector"], key("p1"))
        assert not await store.add_party("hamburg-air", "Hamburg Air Cargo", ["carrier"], key("a1"))  # as it is
        await store.rotate_party_key("hamburg-air", key("a2"), 7)
        await store.revoke_party("plant-1", "key leaked")

        air = await store.party("hamburg-air")
        assert air is not None and air.keys == (PartyKey(1, key("a1")), PartyKey(7, key("a2")))
        assert (air.key_at(1), air.key_at(6), air.key_at(7), air.key_at(10**6), air.key_at(0)) == (
            key("a1"), key("a1"), key("a2"), key("a2"), None)
        plant = await store.party("plant-1")
        assert plant is not None and plant.roles == {"receiver", "inspector"}
        assert plant.revoked and plant.revoked_reason == "key leaked"
        assert await store.party("nobody") is None
        assert [p.party_id for p in await store.parties()] == ["hamburg-air", "plant-1"]

        records = await leaves(store)
        assert [(r["record"], r["party_id"]) for r in records] == [
            ("party-added", "hamburg-air"), ("party-added", "plant-1"), ("party-key-rotated", "hamburg-air"),
            ("party-revoked", "plant-1")]
        assert {k: v for k, v in records[1].items() if k != "at"} == {
            "record": "party-added", "party_id": "plant-1", "name": "Plant One", "roles": ["inspector", "receiver"],
            "public_key": b64(key("p1")), "valid_from_seq": 1}
        assert {k: v for k, v in records[2].items() if k != "at"} == {
            "record": "party-key-rotated", "party_id": "hamburg-air", "public_key": b64(key("a2")),
            "valid_from_seq": 7}
        replayed = sealed_parties(records)
        sealed = replayed.parties
        assert replayed.problems == []
        table = await store.parties()
        assert party_problems(table, sealed) == []
        assert {p.party_id: (p.name, p.roles, p.keys, p.revoked_reason) for p in table} == {
            p.party_id: (p.name, p.roles, p.keys, p.revoked_reason) for p in sealed.values()}
        # the leaves sit in the one leaf sequence the sealer seals, numbered per kind
        assert query(store_url, "SELECT seq FROM readings WHERE device_id=? ORDER BY seq", (PARTIES,)) == [
            (0,), (1,), (2,), (3,)]
    finally:
        await store.close()


async def test_refusals_name_what_is_wrong_and_write_nothing(store_url: str) -> None:
    store = await Store.open(store_url)
    try:
        await store.add_party("maker", "Pack Maker", ["manufacturer"], key("m1"))
        with pytest.raises(ConfigError, match="not a usable Ed25519 public key"):
            await store.add_party("weak", "Weak", ["carrier"], bytes(32))
        with pytest.raises(ConfigError, match="a key is 32 bytes, not 31"):
            await store.add_party("short", "Short", ["carrier"], key("s")[:31])
        with pytest.raises(ConfigError, match="unknown role"):
            await store.add_party("shipper", "Shipper", ["shipper"], key("x"))
        with pytest.raises(ConfigError, match="at least one role"):
            await store.add_party("none", "None", [], key("x"))
        with pytest.raises(ConfigError, match="must be a slug"):
            await store.add_party("Bad_Id", "Bad", ["carrier"], key("x"))
        with pytest.raises(ConfigError, match="printable"):
            await store.add_party("ctl", "bell\x07", ["carrier"], key("x"))
        with pytest.raises(RegistryConflict, match="already registered as 'Pack Maker'"):
            await store.add_party("maker", "Pack Maker", ["manufacturer"], key("m2"))  # another key
        with pytest.raises(RegistryConflict):
            await store.add_party("maker", "Pack Maker", ["manufacturer", "carrier"], key("m1"))  # other roles
        with pytest.raises(ConfigError, match="must start after event seq 1"):
            await store.rotate_party_key("maker", key("m2"), 1)
        with pytest.raises(RegistryConflict, match="has held key"):
            await store.rotate_party_key("maker", key("m1"), 5)
        with pytest.raises(ConfigError, match="not a usable"):
            await store.rotate_party_key("maker", bytes(32), 5)
        with pytest.raises(ConfigError, match="not registered"):
            await store.rotate_party_key("ghost", key("g"), 5)
        await store.revoke_party("maker", "gone bust")
        with pytest.raises(ConfigError, match="revoked already"):
            await store.revoke_party("maker", "again")
        with pytest.raises(ConfigError, match="is revoked"):
            await store.rotate_party_key("maker", key("m2"), 5)
        assert [r["record"] for r in await leaves(store)] == ["party-added", "party-revoked"]
    finally:
        await store.close()


def test_the_audit_comparison_names_a_swapped_key_and_a_party_added_by_hand() -> None:
    sealed = {"a": PartyRecord("a", "A", frozenset({"carrier"}), (PartyKey(1, key("a")),), 0.0)}
    swapped = PartyRecord("a", "A", frozenset({"carrier"}), (PartyKey(1, key("evil")),), 0.0)
    by_hand = PartyRecord("b", "B", frozenset({"carrier"}), (PartyKey(1, key("b")),), 0.0)
    problems = party_problems([swapped, by_hand], sealed)
    assert len(problems) == 2
    assert "party a: the table holds keys" in problems[0] and "a key swapped in the table" in problems[0]
    assert problems[1] == "party b is in the parties table but no sealed record added it"
    assert party_problems([], sealed) == ["party a was added by a sealed record but is gone from the parties table"]
    unrevoked = party_problems([sealed["a"]], {"a": PartyRecord("a", "A", frozenset({"carrier"}),
                                                                (PartyKey(1, key("a")),), 0.0, 5.0, "leak")})
    assert unrevoked == ["party a: the table says not revoked, its sealed records revoked (leak)"]


def test_replaying_records_that_the_store_never_writes_reports_them() -> None:
    at = "2026-12-01T00:00:00.000Z"
    added = {"record": "party-added", "party_id": "a", "name": "A", "roles": ["carrier"],
             "public_key": b64(key("a")), "valid_from_seq": 1, "at": at}
    replayed = sealed_parties([
        added, added, {"record": "party-revoked", "party_id": "z", "reason": "r", "at": at},
        {"record": "party-key-rotated", "party_id": "a", "at": at}, {"record": "party-renamed", "party_id": "a"}])
    parties, problems = replayed.parties, replayed.problems
    assert list(parties) == ["a"]
    assert [p.split()[:2] for p in problems] == [["record", "1:"], ["record", "2:"], ["record", "3"], ["record", "4:"]]
    assert "added a second time" in problems[0] and "which no earlier record added" in problems[1]
    assert "malformed" in problems[2] and "unknown kind 'party-renamed'" in problems[3]
