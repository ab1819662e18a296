"""The audit's custody replay (anchor/custody_audit.py): parties and custody leaves in the order sealed.

Review 15, 1.5: the audit used to replay every event under the final registry with revocations
switched off, so an event sealed after its party's revocation passed, and a countersig made
before a rotation had to be accepted with either key. Here each revocation and rotation applies
from the leaf it was sealed in on, and to no earlier event, as when the store accepted them.
The leaves are built as the store writes them (a `~parties` record, a `~custody-event` record).
"""

from __future__ import annotations

from typing import Any

from packproof.anchor.custody_audit import SealedStep, replay_sealed
from packproof.anchor.custody_proof import key_record_in_force, parse_party_key_record
from packproof.canonical import canonical_json
from packproof.crypto import public_key_bytes
from packproof.custody import CustodyEvent, event_object
from packproof.edge.custody import CustodyState
from packproof.parties import PARTIES, added_record, key_rotated_record, revoked_record
from packproof.records import StoredRow
from packproof.store import CUSTODY
from packproof.timefmt import rfc3339
from tests.custodyutil import ROLES, T0, Cast, key_of

PK = "PK-1"
AT = rfc3339(T0)


class Leaves:
    """A store's leaf sequence, written one leaf at a time; events are written against the replay so far."""

    def __init__(self, *parties: str) -> None:
        self.cast = Cast()
        self.rows: list[StoredRow] = []
        for p in parties:
            self.party(added_record(p, p.title(), ROLES[p], public_key_bytes(key_of(p))))

    def _row(self, device_id: str, body: dict[str, Any]) -> int:
        row_id = len(self.rows) + 1
        self.rows.append(StoredRow(row_id, device_id, 0, "", AT, canonical_json({**body, "at": AT}), b""))
        return row_id

    def party(self, record: dict[str, Any]) -> int:
        return self._row(PARTIES, record)

    @property
    def state(self) -> CustodyState:
        return replay_sealed(self.rows).state

    def event(self, kind: str, actor: str, **fields: Any) -> CustodyEvent:
        return self.cast.event(self.state, kind, actor, (PK,), **fields)

    def seal(self, event: CustodyEvent) -> int:
        return self._row(CUSTODY, {"record": "custody-event", "event": event_object(event)})

    def add(self, kind: str, actor: str, **fields: Any) -> int:
        return self.seal(self.event(kind, actor, **fields))


def in_transit() -> Leaves:
    leaves = Leaves("maker-a", "road-co", "air-co", "plant")
    leaves.add("pack-registered", "maker-a")
    leaves.add("transporter-assigned", "maker-a", transporter="road-co", consignee="plant")
    leaves.add("picked-up", "road-co")
    return leaves


def test_a_journey_replays_with_its_history() -> None:
    leaves = in_transit()
    leaves.add("delivered", "road-co", to="plant")
    out = replay_sealed(leaves.rows)
    assert out.problems == [] and out.parties.problems == []
    assert out.history[PK] == [SealedStep(1, "maker-a:1", "maker-a", None, "maker-a"),
                               SealedStep(2, "maker-a:2", "maker-a", "road-co", "maker-a"),
                               SealedStep(3, "road-co:1", "maker-a", "road-co", "road-co"),
                               SealedStep(4, "road-co:2", "maker-a", None, "plant")]
    assert {e: s.leaf_id for e, s in out.events.items()} == {"maker-a:1": 5, "maker-a:2": 6, "road-co:1": 7,
                                                            "road-co:2": 8}


def test_an_event_sealed_after_its_partys_revocation_is_named() -> None:
    leaves = in_transit()
    event = leaves.event("location", "road-co")
    before = Leaves()
    before.rows = [*leaves.rows]
    before.seal(event)  # accepted, then the party is revoked: stands
    before.party(revoked_record("road-co", "key leaked"))
    assert replay_sealed(before.rows).problems == []
    leaves.party(revoked_record("road-co", "key leaked"))
    leaf = leaves.seal(event)  # sealed after the revocation: the store would have refused it
    assert replay_sealed(leaves.rows).problems == [
        f"sealed custody event road-co:2 (leaf {leaf}) does not replay with the parties as sealed before it: "
        "revoked: actor 'road-co' is revoked: it can take part in no new event"]


def test_a_rotation_applies_from_where_it_was_sealed() -> None:
    """air-co countersigns a handover with its first key, then rotates from its seq 1 (it has signed no
    event of its own): the handover still replays, though the final registry gives seq 1 the new key.
    Countersigned with the first key after that rotation was sealed, the handover is named."""
    leaves = in_transit()
    leaves.add("transporter-assigned", "maker-a", transporter="air-co")
    handover = leaves.event("handed-over", "road-co", to="air-co")  # countersigned with air-co's first key
    rotation = key_rotated_record("air-co", public_key_bytes(key_of("air-co new")), 1)

    first = Leaves()
    first.rows = [*leaves.rows]
    first.seal(handover)
    first.party(rotation)
    out = replay_sealed(first.rows)
    assert out.problems == [] and out.state.items[PK].holder == "air-co"
    assert out.parties.parties["air-co"].key_at(1) == public_key_bytes(key_of("air-co new"))

    leaves.party(rotation)
    leaf = leaves.seal(handover)
    problems = replay_sealed(leaves.rows).problems
    assert len(problems) == 1 and problems[0].startswith(
        f"sealed custody event road-co:2 (leaf {leaf}) does not replay with the parties as sealed before it: "
        "bad-signature: countersig of road-co:2 does not verify with air-co's key")


def test_an_event_before_its_party_was_added_is_named() -> None:
    leaves = Leaves("road-co")
    event = Cast().event(CustodyState(), "pack-registered", "maker-a", (PK,))
    leaves.seal(event)
    leaves.party(added_record("maker-a", "Maker A", ROLES["maker-a"], public_key_bytes(key_of("maker-a"))))
    assert replay_sealed(leaves.rows).problems == [
        "sealed custody event maker-a:1 (leaf 2) does not replay with the parties as sealed before it: "
        "unknown-party: actor 'maker-a' is not a registered party"]


def test_unreadable_leaves_are_named_and_other_rows_ignored() -> None:
    leaves = in_transit()
    bad = StoredRow(len(leaves.rows) + 1, CUSTODY, 0, "", AT, b"{not json", b"")
    junk = StoredRow(len(leaves.rows) + 2, PARTIES, 0, "", AT, b"[1]", b"")
    reading = StoredRow(len(leaves.rows) + 3, "dev-1", 0, "SHP-1", AT, b"{}", b"")
    out = replay_sealed([reading, junk, bad, *reversed(leaves.rows)])  # any order in: store-id order out
    assert len(out.problems) == 1 and out.problems[0].startswith(f"custody leaf {bad.id} holds no valid custody event")
    assert out.parties.problems == [f"leaf {junk.id} is not a JSON object"]
    assert len(out.history[PK]) == 3


def test_a_proofs_key_record_is_the_key_the_rules_use() -> None:
    """`key_record_in_force` (the record a custody proof bundle carries) picks, for every seq, the key
    `PartyRecord.key_at` gives from the same records: one rule (packproof.records.key_index_at)."""
    records = [added_record("air-co", "Air", ROLES["air-co"], public_key_bytes(key_of("air-co"))),
               added_record("road-co", "Road", ROLES["road-co"], public_key_bytes(key_of("road-co"))),
               key_rotated_record("air-co", public_key_bytes(key_of("air-co 2")), 3),
               key_rotated_record("air-co", public_key_bytes(key_of("air-co 3")), 7)]
    bodies = [canonical_json({**r, "at": AT}) for r in records]
    party = replay_sealed([StoredRow(i + 1, PARTIES, i, "", AT, b, b"") for i, b in enumerate(bodies)])
    air = party.parties.parties["air-co"]
    for seq in range(10):
        i = key_record_in_force(bodies, "air-co", seq)
        record = parse_party_key_record(bodies[i]) if i is not None else None
        assert (record.public_key if record is not None else None) == air.key_at(seq), seq
    assert key_record_in_force(bodies, "air-co", 0) is None and key_record_in_force(bodies, "sea-co", 5) is None
    assert key_record_in_force(bodies[:3], "air-co", 9) == 2  # a record sealed later is not offered
