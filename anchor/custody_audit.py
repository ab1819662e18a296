"""The custody part of `packproof audit` (issue 15): the custody tables against a replay of the sealed leaves.

The `~parties` and `~custody` record leaves are replayed together in the order they were
written (their store ids, the order the sealer seals them in): each custody event goes through
the rules (packproof/edge/custody.py) with the parties as their sealed records stood at that
point. So a party revoked before an event refuses it, a key rotated before it is the one it
must verify with (a handover's countersig included), and neither applies to the events sealed
before it, exactly as when the store accepted them (review 15, 1.5). Replaying under the final
registry instead would excuse an event sealed after its party's revocation, and would check
old countersignatures against keys registered after them.

`replay_sealed` is pure (the leaves in, the replay out) so that it can be tested without a
store; `check_custody` reads the store and compares.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from packproof.custody import CustodyEvent, canonical_event_bytes, event_from_object
from packproof.edge.custody import Accepted, CustodyState, PartyView, apply
from packproof.edge.custody_codec import item_json
from packproof.errors import PackproofError
from packproof.parties import PARTIES, PartyReplay
from packproof.records import StoredRow
from packproof.store import CUSTODY, Store


@dataclass(frozen=True, slots=True)
class SealedStep:
    """One sealed event as it left one pack: the row `custody_event_packs` must hold for it."""

    position: int  # 1, 2, ... in the pack's hash chain
    event_id: str
    owner: str | None  # as `packproof.records.CustodyStep` types them
    transporter: str | None
    holder: str | None


@dataclass(frozen=True, slots=True)
class SealedEvent:
    """A custody event as sealed: the store id of its leaf and the event's canonical bytes."""

    leaf_id: int
    body: bytes


@dataclass(slots=True)
class SealedCustody:
    """What the sealed leaves say: each event, the state and per-pack history their replay gives, and
    what did not replay (a leaf that holds no event, an event the rules refuse where it was sealed)."""

    events: dict[str, SealedEvent] = field(default_factory=dict)  # event id -> where and what
    state: CustodyState = field(default_factory=CustodyState)
    history: dict[str, list[SealedStep]] = field(default_factory=dict)  # serial -> its steps in chain order
    parties: PartyReplay = field(default_factory=PartyReplay)
    problems: list[str] = field(default_factory=list)


def _party_body(row: StoredRow) -> object:
    try:
        return json.loads(row.body)
    except ValueError:
        return None  # PartyReplay names it: not a JSON object


def _event(row: StoredRow) -> CustodyEvent:
    return event_from_object(json.loads(row.body)["event"])


def replay_sealed(rows: Iterable[StoredRow]) -> SealedCustody:
    """Replay the `~parties` and `~custody` leaves among `rows` in store-id order (other rows are ignored)."""
    out = SealedCustody()
    views: dict[str, PartyView] = {}
    for row in sorted(rows, key=lambda r: r.id):
        if row.device_id == PARTIES:
            changed = out.parties.add(_party_body(row), f"leaf {row.id}")
            if changed is not None:
                views[changed] = PartyView.of(out.parties.parties[changed])
            continue
        if row.device_id != CUSTODY:
            continue
        try:
            event = _event(row)
        except (ValueError, KeyError, TypeError, PackproofError) as exc:
            out.problems.append(f"custody leaf {row.id} holds no valid custody event: {exc}")
            continue
        out.events[event.event_id] = SealedEvent(row.id, canonical_event_bytes(event))
        outcome = apply(out.state, event, views)
        if not isinstance(outcome, Accepted):
            out.problems.append(f"sealed custody event {event.event_id} (leaf {row.id}) does not replay with the "
                                f"parties as sealed before it: {outcome.code}: {outcome.reason}")
            continue
        out.state = outcome.state
        for item in outcome.items:
            steps = out.history.setdefault(item.serial, [])
            steps.append(SealedStep(len(steps) + 1, event.event_id, item.owner, item.transporter, item.holder))
    return out


async def check_custody(store: Store, party_rows: list[StoredRow]) -> list[str]:
    """The custody tables against the sealed `~custody` leaves, replayed with the `~parties` leaves
    (`party_rows`, read once by the audit for this and for the parties' own check).

    Each table row must be a sealed event byte for byte (its hash included); a leaf without its
    row is an event deleted from the table. Every sealed event must be accepted again where it
    was sealed, and the replay must leave every pack with the state, position and head
    `custody_packs` holds, and the history `custody_event_packs` holds.
    """
    sealed = replay_sealed([*party_rows, *await store.records(CUSTODY)])
    out = list(sealed.problems)
    table = {e.event_id: e for e in await store.custody_events_table()}
    for event_id, e in table.items():
        leaf = sealed.events.get(event_id)
        if leaf is None:
            out.append(f"custody event {event_id} is in the custody_events table but no sealed leaf holds it "
                       "(added by hand)")
            continue
        if e.body != leaf.body:
            out.append(f"custody event {event_id}: its stored body differs from its sealed leaf {leaf.leaf_id} "
                       "(edited)")
        if e.hash != hashlib.sha256(leaf.body).digest():
            out.append(f"custody event {event_id}: its stored hash {e.hash.hex()} is not the sealed event's "
                       f"{hashlib.sha256(leaf.body).hexdigest()}")
        if e.leaf_id != leaf.leaf_id:
            out.append(f"custody event {event_id}: the table points to leaf {e.leaf_id}, it is sealed in "
                       f"{leaf.leaf_id}")
    out += [f"custody event {i} is sealed (leaf {sealed.events[i].leaf_id}) but gone from the custody_events table "
            "(deleted)" for i in sorted(set(sealed.events) - set(table))]

    held = await store.custody_packs_table()
    for serial, item in sorted(sealed.state.items.items()):
        kept = held.get(serial)
        if kept is None:
            out.append(f"pack {serial} is gone from the custody_packs table; its sealed events give it state "
                       f"{item.status}, owner {item.owner}")
            continue
        position, head, text = kept.position, kept.head, kept.state
        if text != item_json(item):
            out.append(f"pack {serial}: custody_packs holds a state its sealed events do not give (owner "
                       f"{json.loads(text).get('owner')!r} held, {item.owner!r} sealed; holder "
                       f"{json.loads(text).get('holder')!r} held, {item.holder!r} sealed)")
        steps = sealed.history[serial]
        if head.hex() != item.last_event or position != len(steps):
            out.append(f"pack {serial}: custody_packs says {position} events up to {head.hex()[:16]}.., its sealed "
                       f"events {len(steps)} up to {item.last_event[:16]}..")
    out += [f"pack {s} is in the custody_packs table but no sealed event registered it"
            for s in sorted(set(held) - set(sealed.state.items))]
    steps_held = await store.custody_steps(sorted(sealed.history))
    for serial, steps in sorted(sealed.history.items()):
        got = [SealedStep(s.position, s.event_id, s.owner, s.transporter, s.holder)
               for s in steps_held.get(serial, [])]
        if got != steps:
            first = next((i for i, (a, b) in enumerate(zip(got, steps, strict=False)) if a != b),
                         min(len(got), len(steps)))
            out.append(f"pack {serial}: its custody history in custody_event_packs differs from its sealed events "
                       f"from step {first + 1} on")
    return out
