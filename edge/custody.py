"""Who may do what to a pack in which state: custody as a pure state machine.

`apply(state, event, parties)` takes the custody state of the items an event touches, the
event (already parsed: `packproof.custody` checked its shape) and the parties it names, and
returns either `Accepted` (the new state and what changed) or `Refused` (a code from
`packproof.custody.REFUSAL_CODES` and a reason a person can act on). No I/O, no clock, no
randomness: the same inputs give the same answer, so an accepted history replays to the
same state, and the store only records what this module decided.

The rules are those of the two contracts packproof's custody descends from, with their
holes closed (README.md, "Custody rules", maps each function and modifier to its rule here):

- ProductManager: `registerProduct` / `registerResource` (a pack, a lot of cells; ownership
  starts with its maker), `transferOwnership` guarded by `onlyOwner`. Hole closed: the owner
  could push a product onto anyone; here ownership moves only when the owner has offered
  (`ownership-offered`) and the offered party has accepted (`ownership-accepted`), two
  signatures. A pack registration consumes the cell lots it names, which its maker must own.
- MovementManager: `assignTransporter` / `changeTransporter` (`onlyOwner`), `updateLocation`
  (`onlyTransporter`), an event for every change. Holes closed: a carrier could hand a
  shipment to anyone; here a handover goes only to the carrier the owner assigned next and
  carries that carrier's countersignature, and a delivery goes only to the owner or to the
  consignee the owner named. Every event names the previous accepted event of each pack
  (`prev`) and may not be dated before it, so a missing, reordered or racing event is refused,
  not merged, and a pack's intervals never come out inverted.

Checks run in a fixed order, so each refusal has one code: the actor (unknown-party,
revoked), its signatures (bad-signature; a handover's next carrier is looked up here to check
its countersig), its sequence (replay, out-of-order), its role and
the parties it names (forbidden, unknown-party, revoked), the items' existence (conflict),
their hash chains (wrong-prev), their time order (out-of-order: an event dated before the
last accepted event of an item it touches), the shipment it claims (conflict: not the items'
shipment), then the kind's rule in the items' state (forbidden: this party may not; conflict:
nobody may, in this state).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from packproof.custody import (
    CustodyEvent,
    Delivered,
    HandedOver,
    Inspected,
    LocationUpdated,
    LotRegistered,
    OwnershipAccepted,
    OwnershipOffered,
    OwnershipWithdrawn,
    PackRegistered,
    PickedUp,
    ReceiptResult,
    Received,
    RefusalCode,
    Role,
    TransporterAssigned,
    TransporterReleased,
    event_hash,
    signature_problem,
)
from packproof.records import PartyKey, PartyRecord, key_index_at
from packproof.timefmt import epoch_of

Status = Literal["registered", "in-transit", "delivered", "received", "consumed"]
ItemKind = Literal["pack", "lot"]

# The role an actor must hold for each kind; ownership acts need none (any party may own).
REQUIRED_ROLE: dict[str, Role | None] = {
    "pack-registered": "manufacturer",
    "lot-registered": "manufacturer",
    "ownership-offered": None,
    "ownership-accepted": None,
    "ownership-withdrawn": None,
    "transporter-assigned": None,
    "transporter-released": None,
    "picked-up": "carrier",
    "handed-over": "carrier",
    "location": "carrier",
    "delivered": "carrier",
    "received": "receiver",
    "inspected": "inspector",
}


# ---- parties ----


@dataclass(frozen=True, slots=True)
class PartyView:
    """A party as the rules see it: the store's `PartyRecord` without its names and times.

    A revoked party can do nothing more: its later events are refused whatever they carry,
    since whoever holds its key now may not be it.
    """

    party_id: str
    roles: frozenset[str]
    keys: tuple[PartyKey, ...] = ()  # in the order they were registered
    revoked: bool = False

    def key_at(self, seq: int) -> bytes | None:
        """The key the party's event `seq` is signed with (`packproof.records.key_index_at`, the rule's one home)."""
        i = key_index_at(self.keys, seq)
        return self.keys[i].public_key if i is not None else None

    @classmethod
    def of(cls, record: PartyRecord) -> PartyView:
        """The view of a store record, or of one the audit rebuilt from the sealed `~parties` leaves."""
        return cls(record.party_id, frozenset(record.roles), tuple(record.keys), record.revoked)


# ---- state ----


@dataclass(frozen=True, slots=True)
class PendingOffer:
    """An offer of ownership waiting for its party's acceptance; `packs` are all the packs it offers,
    which its acceptance (or withdrawal) must name exactly."""

    event_id: str
    to: str
    packs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ItemState:
    """The custody state of one pack or cell lot.

    `owner` is who owns it (the maker until an offer is accepted); `transporter` the carrier the
    owner assigned (None: none); `holder` who physically has it: the maker's or owner's site
    (that party's id) until picked up, then the carrier carrying it, then the receiver it was
    delivered to. `last_event` is the hash the next event's `prev` must name, `last_ts` the
    `ts` of that event: a later event may not be dated before it (review 15, 1.3).

    `shipment` is the shipment the item travels in: the one its registration names, changed
    only by its owner on `transporter-assigned`; an event claiming another shipment for it is
    refused (1.4). `consignee` is the party the owner named on `transporter-assigned` as the
    one a carrier may deliver it to besides the owner itself (1.8); a new owner names its own.
    """

    serial: str
    item: ItemKind
    maker: str
    owner: str
    holder: str
    status: Status
    registration: str  # hash of the registering event (a lot is named by it in cell_lots)
    last_event: str  # lowercase hex SHA-256 of the last accepted event touching it
    last_event_id: str
    transporter: str | None = None
    offer: PendingOffer | None = None
    delivered_to: str | None = None
    receipt: ReceiptResult | None = None
    consumed_by: str | None = None  # a lot: the serial of the pack built from it
    un38_3_failed: tuple[str, ...] = ()  # tests its UN 38.3 summary records as failed ("T.4")
    last_ts: str | None = None  # RFC 3339 `ts` of `last_event`
    shipment: str | None = None
    consignee: str | None = None


@dataclass(frozen=True, slots=True)
class CustodyState:
    """Custody state: per item its `ItemState`, per party its last accepted seq, per lot hash its serial.

    Never changed in place: `apply` returns a new state. It needs to hold only what an event
    touches (`state_keys` says what), so a store can load that part and no more.
    """

    items: Mapping[str, ItemState] = field(default_factory=dict)
    seqs: Mapping[str, int] = field(default_factory=dict)
    lots: Mapping[str, str] = field(default_factory=dict)  # lot registration hash -> lot serial

    def last_seq(self, party_id: str) -> int:
        return self.seqs.get(party_id, 0)


@dataclass(frozen=True, slots=True)
class StateKeys:
    """The parts of `CustodyState` and the parties `apply` reads for one event."""

    items: frozenset[str]
    lot_hashes: frozenset[str]
    parties: frozenset[str]


def state_keys(event: CustodyEvent) -> StateKeys:
    """What to load before `apply(state, event, parties)`: items, lots by hash, parties (and their seqs)."""
    parties = {event.actor}
    for name in ("to", "transporter", "consignee"):
        other = getattr(event, name, None)
        if isinstance(other, str):
            parties.add(other)
    lots = frozenset(event.cell_lots) if isinstance(event, PackRegistered) else frozenset()
    return StateKeys(frozenset(event.packs), lots, frozenset(parties))


# ---- outcomes ----

ChangeField = Literal[
    "registered", "owner", "offer", "transporter", "holder", "status", "delivered_to", "receipt", "consumed_by",
    "shipment", "consignee",
]


@dataclass(frozen=True, slots=True)
class Change:
    """One field of one item changed by an accepted event (for notifications and the store's per-item rows)."""

    serial: str
    field: ChangeField
    before: str | None
    after: str | None


@dataclass(frozen=True, slots=True)
class Accepted:
    """The event holds: `state` is the state after it; `items` the items it touched, as they are now."""

    state: CustodyState
    event_hash: str
    items: tuple[ItemState, ...]
    effects: tuple[Change, ...]


@dataclass(frozen=True, slots=True)
class Refused:
    """The event is refused; `code` maps to an HTTP status (`packproof.custody.HTTP_STATUS`).

    `apply` never answers `malformed`: a body that is no event never gets here, its
    `InvalidCustodyEvent` (from `packproof.custody.parse_event`) carries that code.
    """

    code: RefusalCode
    reason: str


Outcome = Accepted | Refused


# ---- apply ----


class _Refusal(Exception):
    """Internal: a rule broken, carried out of the nested checks to `apply` (never escapes it)."""

    def __init__(self, code: RefusalCode, reason: str) -> None:
        super().__init__(reason)
        self.refused = Refused(code, reason)


def apply(state: CustodyState, event: CustodyEvent, parties: Mapping[str, PartyView]) -> Outcome:
    """The outcome of `event` in `state`, given the parties it names (`state_keys(event).parties`)."""
    try:
        return _apply(state, event, parties)
    except _Refusal as r:
        return r.refused


def _party(parties: Mapping[str, PartyView], party_id: str, what: str) -> PartyView:
    party = parties.get(party_id)
    if party is None:
        raise _Refusal("unknown-party", f"{what} {party_id!r} is not a registered party")
    if party.revoked:
        raise _Refusal("revoked", f"{what} {party_id!r} is revoked: it can take part in no new event")
    return party


def _needs_role(party: PartyView, role: Role, what: str) -> None:
    if role not in party.roles:
        held = ", ".join(sorted(party.roles)) or "none"
        raise _Refusal("forbidden", f"{what} {party.party_id} does not hold role {role} (roles: {held})")


def _apply(state: CustodyState, event: CustodyEvent, parties: Mapping[str, PartyView]) -> Accepted:
    actor = _party(parties, event.actor, "actor")
    seq = event.seq
    key = actor.key_at(seq)
    if key is None:
        raise _Refusal("bad-signature", f"{actor.party_id} has no key valid at seq {seq}")
    counter_key = None
    if isinstance(event, HandedOver):
        counter_key = _countersigner_key(state, _party(parties, event.to, "next carrier"))
    problem = signature_problem(event, key, counter_key)
    if problem is not None:
        raise _Refusal("bad-signature", problem)

    last = state.last_seq(actor.party_id)
    if seq <= last:
        raise _Refusal("replay", f"{event.event_id} is already used: {actor.party_id}'s last accepted seq is {last}")
    if seq > last + 1:
        raise _Refusal(
            "out-of-order",
            f"{event.event_id} skips seq {last + 1}: {actor.party_id}'s next event must be {actor.party_id}:{last + 1}",
        )

    role = REQUIRED_ROLE[event.kind]
    if role is not None:
        _needs_role(actor, role, "actor")
    _check_named_parties(event, parties)

    digest = event_hash(event)
    rule = _RULES[event.kind]
    if isinstance(event, PackRegistered | LotRegistered):
        _check_new(state, event)
        touched = rule(state, event, actor, digest)
    else:
        items = _existing(state, event)
        touched = rule(state, event, actor, digest, items)

    return _accepted(state, event, digest, touched)


def _countersigner_key(state: CustodyState, party: PartyView) -> bytes:
    """The key a handover's countersig must verify with: the next carrier's key in force now, the
    one its next own event (last accepted seq + 1) would be signed with. A key rotated out before
    the handover cannot countersign it (review 15, 1.6). The audit replays the parties' records and
    the events in the order they were sealed, so it checks against the same key."""
    last = state.last_seq(party.party_id)
    key = party.key_at(last + 1)
    if key is None:
        raise _Refusal("bad-signature", f"next carrier {party.party_id} has no key valid at its seq {last + 1} "
                       "to check its countersig with")
    return key


def _check_named_parties(event: CustodyEvent, parties: Mapping[str, PartyView]) -> None:
    if isinstance(event, OwnershipOffered):
        _party(parties, event.to, "offered party")
    elif isinstance(event, TransporterAssigned):
        _needs_role(_party(parties, event.transporter, "transporter"), "carrier", "transporter")
        if event.consignee is not None:
            _needs_role(_party(parties, event.consignee, "consignee"), "receiver", "consignee")
    elif isinstance(event, HandedOver):
        _needs_role(_party(parties, event.to, "next carrier"), "carrier", "next carrier")
    elif isinstance(event, Delivered):
        _needs_role(_party(parties, event.to, "receiver"), "receiver", "receiver")


def _check_new(state: CustodyState, event: PackRegistered | LotRegistered) -> None:
    serial = event.serial
    existing = state.items.get(serial)
    if existing is not None:
        raise _Refusal("conflict", f"{serial} is already registered ({existing.item}, by {existing.maker}): "
                      "a serial is registered once")
    if event.prev[serial] is not None:
        raise _Refusal("wrong-prev", f"prev of {serial} must be null: a registration starts its chain")


def _existing(state: CustodyState, event: CustodyEvent) -> list[ItemState]:
    items = []
    for serial in event.packs:
        item = state.items.get(serial)
        if item is None:
            raise _Refusal("conflict", f"{serial} is not registered: register it before any other event")
        items.append(item)
    for item in items:
        prev = event.prev[item.serial]
        if prev != item.last_event:
            raise _Refusal(
                "wrong-prev",
                f"prev of {item.serial} is {prev}, but its last accepted event is {item.last_event_id}"
                f" ({item.last_event}): read its custody again",
            )
    for item in items:
        _check_time(item, event)
    if event.shipment_id is not None and not isinstance(event, TransporterAssigned):  # its owner may change it
        for item in items:
            if item.shipment != event.shipment_id:
                raise _Refusal("conflict", f"{event.event_id} claims shipment {event.shipment_id}, but {item.serial} "
                               f"travels in {_shipment_text(item.shipment)}: only its owner changes that, on "
                               "transporter-assigned")
    for item in items:
        if item.status == "consumed" and not isinstance(event, Inspected):
            raise _Refusal("conflict", f"lot {item.serial} was consumed by pack {item.consumed_by}: "
                          "it can no longer move")
    return items


def _check_time(item: ItemState, event: CustodyEvent) -> None:
    """An item's events are dated in the order they are accepted: none before the one it follows."""
    if item.last_ts is not None and event.epoch < epoch_of(item.last_ts):
        raise _Refusal("out-of-order", f"{event.event_id} is dated {event.ts}, before {item.last_ts} of "
                       f"{item.serial}'s last accepted event {item.last_event_id}: an item's events are dated in "
                       "the order they happen")


def _shipment_text(shipment: str | None) -> str:
    return f"shipment {shipment}" if shipment is not None else "no shipment"


def _accepted(state: CustodyState, event: CustodyEvent, digest: str, touched: list[ItemState]) -> Accepted:
    items = dict(state.items)
    effects: list[Change] = []
    for new in touched:
        new = dataclasses.replace(new, last_event=digest, last_event_id=event.event_id, last_ts=event.ts)
        effects.extend(_diff(items.get(new.serial), new))
        items[new.serial] = new
    seqs = dict(state.seqs)
    seqs[event.actor] = event.seq
    lots = state.lots
    if isinstance(event, LotRegistered):
        lots = {**lots, digest: event.serial}
    new_state = CustodyState(items, seqs, lots)
    return Accepted(new_state, digest, tuple(items[i.serial] for i in touched), tuple(effects))


_DIFFED: tuple[ChangeField, ...] = (
    "owner", "offer", "transporter", "holder", "status", "delivered_to", "receipt", "consumed_by", "shipment",
    "consignee",
)


def _diff(old: ItemState | None, new: ItemState) -> list[Change]:
    if old is None:
        return [Change(new.serial, "registered", None, new.owner)]
    out = []
    for name in _DIFFED:
        a, b = getattr(old, name), getattr(new, name)
        if isinstance(a, PendingOffer):
            a = a.event_id
        if isinstance(b, PendingOffer):
            b = b.event_id
        if a != b:
            out.append(Change(new.serial, name, a, b))
    return out


# ---- the rules, one per kind ----


def _not_owner(item: ItemState, actor: PartyView) -> _Refusal:
    return _Refusal("forbidden",
                   f"{actor.party_id} is not the current owner of {item.item} {item.serial} (owner: {item.owner})")


def _register_pack(state: CustodyState, event: PackRegistered, actor: PartyView, digest: str) -> list[ItemState]:
    """ProductManager.registerProduct: a new pack owned by its maker, consuming the lots it names."""
    consumed = []
    for lot_hash in event.cell_lots:
        serial = state.lots.get(lot_hash)
        lot = state.items.get(serial) if serial is not None else None
        if lot is None:
            raise _Refusal("conflict", f"no cell lot is registered by event {lot_hash}")
        if lot.status == "consumed":
            raise _Refusal("conflict", f"lot {lot.serial} was already consumed by pack {lot.consumed_by}")
        if lot.owner != actor.party_id:
            raise _not_owner(lot, actor)
        _check_time(lot, event)
        if lot.offer is not None:
            raise _Refusal("conflict",
                           f"lot {lot.serial} has a pending offer ({lot.offer.event_id}): withdraw it first")
        if lot.status not in ("registered", "received") or lot.transporter is not None:
            raise _Refusal("conflict", f"lot {lot.serial} is {lot.status} with transporter {lot.transporter}: it "
                          "must be at its owner's site with no transporter assigned to be built into a pack")
        consumed.append(dataclasses.replace(lot, status="consumed", consumed_by=event.serial, holder=actor.party_id))
    pack = ItemState(
        serial=event.serial, item="pack", maker=actor.party_id, owner=actor.party_id, holder=actor.party_id,
        status="registered", registration=digest, last_event=digest, last_event_id=event.event_id,
        un38_3_failed=event.un38_3.results.failed(), last_ts=event.ts, shipment=event.shipment_id,
    )
    return [pack, *consumed]


def _register_lot(state: CustodyState, event: LotRegistered, actor: PartyView, digest: str) -> list[ItemState]:
    """ProductManager.registerResource: a new lot of cells owned by its supplier."""
    lot = ItemState(
        serial=event.serial, item="lot", maker=actor.party_id, owner=actor.party_id, holder=actor.party_id,
        status="registered", registration=digest, last_event=digest, last_event_id=event.event_id,
        last_ts=event.ts, shipment=event.shipment_id,
    )
    return [lot]


def _offer(state: CustodyState, event: OwnershipOffered, actor: PartyView, digest: str,
           items: list[ItemState]) -> list[ItemState]:
    """transferOwnership's first half (onlyOwner): the owner offers; one offer pending at a time."""
    for item in items:
        if item.owner != actor.party_id:
            raise _not_owner(item, actor)
    for item in items:
        if item.offer is not None:
            raise _Refusal("conflict", f"{item.serial} already has a pending offer to {item.offer.to} "
                          f"({item.offer.event_id}): it must be accepted or withdrawn first")
    offer = PendingOffer(event.event_id, event.to, tuple(event.packs))
    return [dataclasses.replace(i, offer=offer) for i in items]


def _other_offer(serial: str, pending: PendingOffer, named: str) -> _Refusal:
    return _Refusal("conflict", f"the pending offer of {serial} is {pending.event_id}, not {named}")


def _whole_offer(event: OwnershipAccepted | OwnershipWithdrawn, offer: PendingOffer) -> None:
    """An offer is accepted or withdrawn as a whole: the event names exactly the packs it offered."""
    if tuple(event.packs) != offer.packs:
        raise _Refusal("conflict", f"offer {offer.event_id} is of packs {', '.join(offer.packs)}: "
                       f"{event.kind} names exactly those, not {', '.join(event.packs)}")


def _accept(state: CustodyState, event: OwnershipAccepted, actor: PartyView, digest: str,
            items: list[ItemState]) -> list[ItemState]:
    """transferOwnership's second half: the offered party accepts, and ownership moves."""
    for item in items:
        if item.offer is None:
            raise _Refusal("conflict", f"{item.serial} has no pending offer to accept")
        if item.offer.to != actor.party_id:
            raise _Refusal("forbidden", f"the pending offer of {item.serial} ({item.offer.event_id}) is to "
                          f"{item.offer.to}, not to {actor.party_id}")
        if item.offer.event_id != event.offer:
            raise _other_offer(item.serial, item.offer, event.offer)
        _whole_offer(event, item.offer)
    # the consignee was the former owner's choice: the new owner names its own
    return [dataclasses.replace(i, owner=actor.party_id, offer=None, consignee=None) for i in items]


def _withdraw(state: CustodyState, event: OwnershipWithdrawn, actor: PartyView, digest: str,
              items: list[ItemState]) -> list[ItemState]:
    """The owner takes back a pending offer (the original contract had none to take back)."""
    for item in items:
        if item.owner != actor.party_id:
            raise _not_owner(item, actor)
        if item.offer is None:
            raise _Refusal("conflict", f"{item.serial} has no pending offer to withdraw")
        if item.offer.event_id != event.offer:
            raise _other_offer(item.serial, item.offer, event.offer)
        _whole_offer(event, item.offer)
    return [dataclasses.replace(i, offer=None) for i in items]


def _assign(state: CustodyState, event: TransporterAssigned, actor: PartyView, digest: str,
            items: list[ItemState]) -> list[ItemState]:
    """assignTransporter / changeTransporter (onlyOwner). While a carrier holds the item, this names the next one.

    The owner's event also sets the item's shipment (when it names one) and its consignee (when
    it names one; otherwise the one named before stays)."""
    for item in items:
        if item.owner != actor.party_id:
            raise _not_owner(item, actor)
    for item in items:
        if item.un38_3_failed:
            raise _Refusal("forbidden", f"pack {item.serial} failed UN 38.3 {', '.join(item.un38_3_failed)}: a battery "
                          "that failed its type tests may not be transported (UN Manual of Tests and Criteria, 38.3)")
        if item.status == "delivered":
            raise _Refusal("conflict", f"{item.serial} is delivered to {item.delivered_to} and awaits its receipt")
        if item.transporter == event.transporter:
            raise _Refusal("conflict", f"{event.transporter} is already the assigned transporter of {item.serial}")
    return [dataclasses.replace(i, transporter=event.transporter,
                                shipment=event.shipment_id if event.shipment_id is not None else i.shipment,
                                consignee=event.consignee if event.consignee is not None else i.consignee)
            for i in items]


def _release(state: CustodyState, event: TransporterReleased, actor: PartyView, digest: str,
             items: list[ItemState]) -> list[ItemState]:
    """The owner releases the assigned carrier, only while nobody carries the item."""
    for item in items:
        if item.owner != actor.party_id:
            raise _not_owner(item, actor)
    for item in items:
        if item.transporter is None:
            raise _Refusal("conflict", f"{item.serial} has no assigned transporter to release")
        if item.status == "in-transit":
            raise _Refusal("conflict", f"{item.serial} is in transit with {item.holder}: it must be delivered first")
    return [dataclasses.replace(i, transporter=None) for i in items]


def _not_holder(item: ItemState, actor: PartyView) -> _Refusal:
    return _Refusal("forbidden", f"{actor.party_id} is not the carrier holding {item.serial} (holder: {item.holder})")


def _in_transit(item: ItemState) -> None:
    if item.status != "in-transit":
        raise _Refusal("conflict", f"{item.serial} is not in transit (status: {item.status})")


def _pick_up(state: CustodyState, event: PickedUp, actor: PartyView, digest: str,
             items: list[ItemState]) -> list[ItemState]:
    """The assigned transporter takes the item from the site where it is."""
    for item in items:
        if item.transporter != actor.party_id:
            raise _Refusal("forbidden", f"{actor.party_id} is not the assigned transporter of {item.serial} "
                          f"(assigned: {item.transporter or 'none'})")
    for item in items:
        if item.status not in ("registered", "received"):
            raise _Refusal("conflict", f"{item.serial} cannot be picked up: it is {item.status}"
                          + (f" with {item.holder}" if item.status == "in-transit" else ""))
    return [dataclasses.replace(i, status="in-transit", holder=actor.party_id) for i in items]


def _hand_over(state: CustodyState, event: HandedOver, actor: PartyView, digest: str,
               items: list[ItemState]) -> list[ItemState]:
    """The carrier holding the item gives it to the next carrier the owner assigned, who countersigned."""
    for item in items:
        _in_transit(item)
    for item in items:
        if item.holder != actor.party_id:
            raise _not_holder(item, actor)
        if item.transporter != event.to:
            raise _Refusal("forbidden", f"{event.to} is not the assigned transporter of {item.serial} (assigned: "
                          f"{item.transporter or 'none'}): its owner assigns the next carrier first")
    return [dataclasses.replace(i, holder=event.to) for i in items]


def _locate(state: CustodyState, event: LocationUpdated, actor: PartyView, digest: str,
            items: list[ItemState]) -> list[ItemState]:
    """updateLocation (onlyTransporter): the carrier holding the item says where it is."""
    for item in items:
        _in_transit(item)
    for item in items:
        if item.holder != actor.party_id:
            raise _not_holder(item, actor)
    return list(items)


def _deliver(state: CustodyState, event: Delivered, actor: PartyView, digest: str,
             items: list[ItemState]) -> list[ItemState]:
    """The carrier holding the item, still its assigned transporter, delivers it to its owner or to the
    consignee its owner named (never to a receiver of the carrier's choosing)."""
    for item in items:
        _in_transit(item)
    for item in items:
        if item.holder != actor.party_id:
            raise _not_holder(item, actor)
        if item.transporter != actor.party_id:
            raise _Refusal("forbidden", f"the owner of {item.serial} has assigned {item.transporter or 'no carrier'} "
                          f"as its transporter: {actor.party_id} hands it over instead of delivering it")
        if event.to not in (item.owner, item.consignee):
            raise _Refusal("forbidden", f"{event.to} is neither the owner of {item.serial} ({item.owner}) nor the "
                           f"consignee its owner named ({item.consignee or 'none'}): the owner names it on "
                           "transporter-assigned")
    return [dataclasses.replace(i, status="delivered", delivered_to=event.to, holder=event.to, transporter=None,
                                consignee=None) for i in items]


def _receive(state: CustodyState, event: Received, actor: PartyView, digest: str,
             items: list[ItemState]) -> list[ItemState]:
    """The receiver the item was delivered to takes it in, with its inspection result."""
    for item in items:
        if item.status != "delivered":
            raise _Refusal("conflict", f"{item.serial} is not awaiting receipt (status: {item.status})")
    for item in items:
        if item.delivered_to != actor.party_id:
            raise _Refusal("forbidden", f"{item.serial} was delivered to {item.delivered_to}, not to {actor.party_id}")
    return [dataclasses.replace(i, status="received", receipt=event.result) for i in items]


def _inspect(state: CustodyState, event: Inspected, actor: PartyView, digest: str,
             items: list[ItemState]) -> list[ItemState]:
    """An inspector's finding: recorded in the item's chain, no change of custody."""
    return list(items)


_RULES: dict[str, Callable[..., list[ItemState]]] = {
    "pack-registered": _register_pack,
    "lot-registered": _register_lot,
    "ownership-offered": _offer,
    "ownership-accepted": _accept,
    "ownership-withdrawn": _withdraw,
    "transporter-assigned": _assign,
    "transporter-released": _release,
    "picked-up": _pick_up,
    "handed-over": _hand_over,
    "location": _locate,
    "delivered": _deliver,
    "received": _receive,
    "inspected": _inspect,
}


@dataclass(frozen=True, slots=True)
class Replay:
    """What `replay` gives: the state after the accepted events, and each event's outcome in order."""

    state: CustodyState
    outcomes: tuple[Outcome, ...]


def replay(events: Iterable[CustodyEvent], parties: Mapping[str, PartyView],
           state: CustodyState | None = None) -> Replay:
    """Apply events in order from `state` (empty by default) with the same parties for all of them."""
    current = state if state is not None else CustodyState()
    outcomes = []
    for event in events:
        outcome = apply(current, event, parties)
        if isinstance(outcome, Accepted):
            current = outcome.state
        outcomes.append(outcome)
    return Replay(current, tuple(outcomes))


# ---- intervals: who held a pack when ----


@dataclass(frozen=True, slots=True)
class Interval:
    """`party` had the item from `start` (the event `start_event`) to `end` (None: still has it)."""

    party: str
    start: str  # RFC 3339, the ts of the event that began it
    start_event: str
    end: str | None = None
    end_event: str | None = None

    def covers(self, at: float, margin_s: float = 0.0) -> bool:
        """Whether the instant `at` (POSIX seconds) falls in [start - margin, end + margin]; both ends included."""
        if at < epoch_of(self.start) - margin_s:
            return False
        return self.end is None or at <= epoch_of(self.end) + margin_s


@dataclass(frozen=True, slots=True)
class Attribution:
    """Who owned, who carried and who physically had an item at an instant; both sides of a change at it."""

    owners: tuple[str, ...]
    carriers: tuple[str, ...]
    holders: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CustodyIntervals:
    """An item's owners, carriers and holders over time.

    A carrier is the party carrying it in transit (none while it rests at a site); a holder is
    whoever physically has it, a site included: its maker's, or the receiver's after delivery.
    """

    serial: str
    owners: tuple[Interval, ...]
    carriers: tuple[Interval, ...]
    holders: tuple[Interval, ...]

    def at(self, epoch: float, margin_s: float = 0.0) -> Attribution:
        """Who was responsible at `epoch`. An instant within `margin_s` of a change (a handover at a
        cargo terminal) names both sides, the earlier first."""

        def who(spans: tuple[Interval, ...]) -> tuple[str, ...]:
            return tuple(i.party for i in spans if i.covers(epoch, margin_s))

        return Attribution(who(self.owners), who(self.carriers), who(self.holders))


def custody_intervals(serial: str, events: Sequence[CustodyEvent]) -> CustodyIntervals:
    """The owner, carrier and holder intervals of item `serial` from its accepted events, in accept order.

    Pure and total over an accepted history (the rules already held when each was accepted):
    ownership begins at registration and moves at each `ownership-accepted`; a carrier's interval
    runs from its `picked-up` (or the `handed-over` to it) to its `handed-over` or `delivered`;
    the holder is the maker from registration, each carrier in turn, then the receiver from
    delivery. A pack registration naming this item as a consumed lot ends its intervals.
    Times are the events' own `ts` (the parties' clocks), as the readings' are the devices'.
    """
    owners: list[Interval] = []
    carriers: list[Interval] = []
    holders: list[Interval] = []

    def close(spans: list[Interval], event: CustodyEvent) -> None:
        if spans and spans[-1].end is None:
            spans[-1] = dataclasses.replace(spans[-1], end=event.ts, end_event=event.event_id)

    def open_(spans: list[Interval], party: str, event: CustodyEvent) -> None:
        close(spans, event)
        spans.append(Interval(party, event.ts, event.event_id))

    for event in events:
        if isinstance(event, PackRegistered | LotRegistered):
            if event.serial == serial:
                open_(owners, event.actor, event)
                open_(holders, event.actor, event)
            else:  # this item is a lot consumed by the pack registered here
                for spans in (owners, carriers, holders):
                    close(spans, event)
        elif isinstance(event, OwnershipAccepted):
            open_(owners, event.actor, event)
        elif isinstance(event, PickedUp):
            open_(carriers, event.actor, event)
            open_(holders, event.actor, event)
        elif isinstance(event, HandedOver):
            open_(carriers, event.to, event)
            open_(holders, event.to, event)
        elif isinstance(event, Delivered):
            close(carriers, event)
            open_(holders, event.to, event)
    return CustodyIntervals(serial, tuple(owners), tuple(carriers), tuple(holders))
