"""The custody rules (edge/custody.py) against a table written from the issue, and their properties.

- The table: every kind × every party of the cast (each relationship to the pack: owner,
  offered party, assigned and holding carriers, the receiver it was delivered to, strangers of
  each role, a revoked party, an unknown one) × every state a pack passes through. The expected
  code comes from `SPEC`, a declarative reading of the rules (README.md, "Custody rules"), not
  from the module under test.
- Each refusal code by the event that earns it: replay, out of order, wrong and stale `prev`,
  forged and rotated keys, revoked and unknown parties, cell lots.
- Races: two offers, two handovers, two registrations consuming one lot: exactly one wins.
- Hypothesis: random event sequences never raise, `apply` is deterministic, and the accepted
  history replays to the same state.
- Intervals: who owned and who carried a pack when, both sides at a handover.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from packproof.crypto import public_key_bytes
from packproof.custody import KINDS, countersign, event_from_object, event_object, sign_event
from packproof.edge.custody import (
    REQUIRED_ROLE,
    Accepted,
    CustodyState,
    ItemState,
    PartyView,
    Refused,
    apply,
    custody_intervals,
    replay,
    state_keys,
)
from packproof.records import PartyKey, PartyRecord
from packproof.timefmt import epoch_of, rfc3339
from tests.custodyutil import ROLES, T0, Cast, key_of

PK = "PK-1"


def accepted(cast: Cast, state: CustodyState, kind: str, actor: str, packs: tuple[str, ...] = (PK,),
             **kw: Any) -> CustodyState:
    out = apply(state, cast.event(state, kind, actor, packs, **kw), cast.parties)
    assert isinstance(out, Accepted), out
    return out.state


def refused(cast: Cast, state: CustodyState, kind: str, actor: str, packs: tuple[str, ...] = (PK,),
            **kw: Any) -> Refused:
    out = apply(state, cast.event(state, kind, actor, packs, **kw), cast.parties)
    assert isinstance(out, Refused), out
    return out


# ---- the states a pack passes through, and what is true of it in each ----

Step = tuple[str, str, dict[str, Any]]
ASSIGN = {"transporter": "road-co", "consignee": "plant"}  # the owner names who the pack may be delivered to
JOURNEY: dict[str, list[Step]] = {
    "unregistered": [],
    "registered": [("pack-registered", "maker-a", {})],
    "offered": [("pack-registered", "maker-a", {}), ("ownership-offered", "maker-a", {"to": "plant"})],
    "sold": [("pack-registered", "maker-a", {}), ("ownership-offered", "maker-a", {"to": "plant"}),
             ("ownership-accepted", "plant", {"offer": "maker-a:2"})],
    "assigned": [("pack-registered", "maker-a", {}), ("transporter-assigned", "maker-a", ASSIGN)],
    "in-transit": [("pack-registered", "maker-a", {}), ("transporter-assigned", "maker-a", ASSIGN),
                   ("picked-up", "road-co", {})],
    "next-assigned": [("pack-registered", "maker-a", {}),
                      ("transporter-assigned", "maker-a", ASSIGN),
                      ("picked-up", "road-co", {}), ("transporter-assigned", "maker-a", {"transporter": "air-co"})],
    "handed-over": [("pack-registered", "maker-a", {}),
                    ("transporter-assigned", "maker-a", ASSIGN),
                    ("picked-up", "road-co", {}), ("transporter-assigned", "maker-a", {"transporter": "air-co"}),
                    ("handed-over", "road-co", {"to": "air-co"})],
    "delivered": [("pack-registered", "maker-a", {}), ("transporter-assigned", "maker-a", ASSIGN),
                  ("picked-up", "road-co", {}), ("delivered", "road-co", {"to": "plant"})],
    "received": [("pack-registered", "maker-a", {}), ("transporter-assigned", "maker-a", ASSIGN),
                 ("picked-up", "road-co", {}), ("delivered", "road-co", {"to": "plant"}),
                 ("received", "plant", {"result": "rejected", "remarks": "swollen cells"})],
}


@dataclasses.dataclass(frozen=True)
class Facts:
    """What the issue says is true of the pack after its journey so far (written by hand)."""

    owner: str | None = "maker-a"
    offer_to: str | None = None
    transporter: str | None = None
    holder: str | None = "maker-a"
    status: str | None = "registered"
    delivered_to: str | None = None
    consignee: str | None = None


FACTS: dict[str, Facts] = {
    "unregistered": Facts(owner=None, holder=None, status=None),
    "registered": Facts(),
    "offered": Facts(offer_to="plant"),
    "sold": Facts(owner="plant"),
    "assigned": Facts(transporter="road-co", consignee="plant"),
    "in-transit": Facts(transporter="road-co", holder="road-co", status="in-transit", consignee="plant"),
    "next-assigned": Facts(transporter="air-co", holder="road-co", status="in-transit", consignee="plant"),
    "handed-over": Facts(transporter="air-co", holder="air-co", status="in-transit", consignee="plant"),
    "delivered": Facts(holder="plant", status="delivered", delivered_to="plant"),
    "received": Facts(holder="plant", status="received", delivered_to="plant"),
}


def build(name: str) -> tuple[Cast, CustodyState]:
    cast, state = Cast(), CustodyState()
    for kind, actor, fields in JOURNEY[name]:
        state = accepted(cast, state, kind, actor, **fields)
    return cast, state


@pytest.mark.parametrize("name", list(JOURNEY))
def test_each_state_is_what_its_journey_says(name: str) -> None:
    _, state = build(name)
    facts = FACTS[name]
    item = state.items.get(PK)
    if facts.status is None:
        assert item is None
        return
    assert item is not None
    got = Facts(item.owner, item.offer.to if item.offer else None, item.transporter, item.holder, item.status,
                item.delivered_to, item.consignee)
    assert got == facts


# ---- the spec: who may do what in which state, read from the issue ----

Pred = Callable[[Facts, str, dict[str, Any]], bool]
SPEC: dict[str, list[tuple[str, Pred, str]]] = {
    # kind: checks in order (what must hold, predicate, code when it does not)
    "ownership-offered": [("actor owns it", lambda f, a, e: f.owner == a, "forbidden"),
                          ("no offer pending", lambda f, a, e: f.offer_to is None, "conflict")],
    "ownership-accepted": [("an offer is pending", lambda f, a, e: f.offer_to is not None, "conflict"),
                           ("the offer is to the actor", lambda f, a, e: f.offer_to == a, "forbidden")],
    "ownership-withdrawn": [("actor owns it", lambda f, a, e: f.owner == a, "forbidden"),
                            ("an offer is pending", lambda f, a, e: f.offer_to is not None, "conflict")],
    "transporter-assigned": [("actor owns it", lambda f, a, e: f.owner == a, "forbidden"),
                             ("not awaiting receipt", lambda f, a, e: f.status != "delivered", "conflict"),
                             ("a change", lambda f, a, e: f.transporter != e["transporter"], "conflict")],
    "transporter-released": [("actor owns it", lambda f, a, e: f.owner == a, "forbidden"),
                             ("a transporter is assigned", lambda f, a, e: f.transporter is not None, "conflict"),
                             ("nobody carries it", lambda f, a, e: f.status != "in-transit", "conflict")],
    "picked-up": [("actor is the assigned transporter", lambda f, a, e: f.transporter == a, "forbidden"),
                  ("it is at a site", lambda f, a, e: f.status in ("registered", "received"), "conflict")],
    "handed-over": [("it is in transit", lambda f, a, e: f.status == "in-transit", "conflict"),
                    ("actor holds it", lambda f, a, e: f.holder == a, "forbidden"),
                    ("to is the next assigned", lambda f, a, e: f.transporter == e["to"], "forbidden")],
    "location": [("it is in transit", lambda f, a, e: f.status == "in-transit", "conflict"),
                 ("actor holds it", lambda f, a, e: f.holder == a, "forbidden")],
    "delivered": [("it is in transit", lambda f, a, e: f.status == "in-transit", "conflict"),
                  ("actor holds it", lambda f, a, e: f.holder == a, "forbidden"),
                  ("actor is still its transporter", lambda f, a, e: f.transporter == a, "forbidden"),
                  ("to is the owner or the consignee it named", lambda f, a, e: e["to"] in (f.owner, f.consignee),
                   "forbidden")],
    "received": [("it awaits receipt", lambda f, a, e: f.status == "delivered", "conflict"),
                 ("it was delivered to the actor", lambda f, a, e: f.delivered_to == a, "forbidden")],
    "inspected": [],
}
# The role each kind needs of its actor, from the list of kinds.
SPEC_ROLE = {"pack-registered": "manufacturer", "lot-registered": "manufacturer", "picked-up": "carrier",
             "handed-over": "carrier", "location": "carrier", "delivered": "carrier", "received": "receiver",
             "inspected": "inspector"}
ACTORS = [*ROLES, "nobody"]  # every party of the cast (one of them revoked) and one nobody registered


def fields_for(kind: str, actor: str, state: CustodyState) -> dict[str, Any]:
    item = state.items.get(PK)
    if kind == "ownership-offered":
        return {"to": "maker-a" if actor == "plant" else "plant"}
    if kind in ("ownership-accepted", "ownership-withdrawn"):
        return {"offer": item.offer.event_id if item and item.offer else "maker-a:2"}
    if kind == "transporter-assigned":
        return {"transporter": "air-co"}
    if kind == "handed-over":
        return {"to": "last-mile" if actor == "air-co" else "air-co"}
    if kind == "delivered":
        return {"to": "depot" if actor == "depot" else "plant"}
    return {}


def expected(kind: str, actor: str, state_name: str, fields: dict[str, Any]) -> str:
    if actor not in ROLES:
        return "unknown-party"
    if actor == "gone":
        return "revoked"
    role = SPEC_ROLE.get(kind)
    if role is not None and role not in ROLES[actor]:
        return "forbidden"
    facts = FACTS[state_name]
    registered = facts.status is not None
    if kind in ("pack-registered", "lot-registered"):
        return "conflict" if registered else "accepted"
    if not registered:
        return "conflict"
    for _what, holds, code in SPEC[kind]:
        if not holds(facts, actor, fields):
            return code
    return "accepted"


TABLE = [(kind, actor, name) for name in JOURNEY for kind in KINDS for actor in ACTORS]
assert len(TABLE) == 10 * 13 * 11


def test_the_spec_covers_every_kind() -> None:
    assert set(SPEC) | {"pack-registered", "lot-registered"} == set(KINDS)
    assert {k: r for k, r in REQUIRED_ROLE.items() if r} == SPEC_ROLE


@pytest.fixture(scope="module")
def states() -> dict[str, tuple[Cast, CustodyState]]:
    return {name: build(name) for name in JOURNEY}


def test_table(states: dict[str, tuple[Cast, CustodyState]]) -> None:
    """All of TABLE in one test (1,430 cases, each signed and checked): a list of every mismatch."""
    wrong = []
    counts: dict[str, int] = {}
    for kind, actor, name in TABLE:
        cast, state = states[name]
        cast = dataclasses.replace(cast)  # its own clock
        fields = fields_for(kind, actor, state)
        # an unknown party signs with a key of its own, as anyone could
        event = cast.event(state, kind, actor, (PK,), **fields)
        parties = cast.parties
        out = apply(state, event, parties)
        want = expected(kind, actor, name, fields)
        got = "accepted" if isinstance(out, Accepted) else out.code
        counts[got] = counts.get(got, 0) + 1
        if got != want:
            wrong.append(f"{kind} by {actor} when {name}: expected {want}, got {got}"
                         + (f" ({out.reason})" if isinstance(out, Refused) else ""))
        if isinstance(out, Accepted):
            assert out.state.last_seq(actor) == state.last_seq(actor) + 1
            assert out.state.items[PK].last_event == out.event_hash
            assert out.items == (out.state.items[PK],)
    assert not wrong, "\n".join(wrong)
    # The table exercises every outcome the state alone decides.
    assert {"accepted", "forbidden", "conflict", "revoked", "unknown-party"} <= set(counts), counts


@pytest.mark.parametrize(("name", "kind", "actor", "reason"), [
    ("registered", "ownership-offered", "plant", "plant is not the current owner of pack PK-1 (owner: maker-a)"),
    ("offered", "ownership-offered", "maker-a",
     "PK-1 already has a pending offer to plant (maker-a:2): it must be accepted or withdrawn first"),
    ("offered", "ownership-accepted", "depot", "the pending offer of PK-1 (maker-a:2) is to plant, not to depot"),
    ("in-transit", "location", "air-co", "air-co is not the carrier holding PK-1 (holder: road-co)"),
    ("in-transit", "handed-over", "road-co",
     "air-co is not the assigned transporter of PK-1 (assigned: road-co): its owner assigns the next carrier first"),
    ("registered", "picked-up", "road-co", "road-co is not the assigned transporter of PK-1 (assigned: none)"),
    ("delivered", "received", "depot", "PK-1 was delivered to plant, not to depot"),
    ("registered", "location", "road-co", "PK-1 is not in transit (status: registered)"),
    ("registered", "received", "inspect-co", "actor inspect-co does not hold role receiver (roles: inspector)"),
    ("unregistered", "location", "road-co", "PK-1 is not registered: register it before any other event"),
    ("registered", "pack-registered", "maker-b",
     "PK-1 is already registered (pack, by maker-a): a serial is registered once"),
    ("registered", "location", "gone", "actor 'gone' is revoked: it can take part in no new event"),
    ("registered", "location", "nobody", "actor 'nobody' is not a registered party"),
])
def test_reasons_name_what_to_do(states: dict[str, tuple[Cast, CustodyState]], name: str, kind: str, actor: str,
                                 reason: str) -> None:
    cast, state = states[name]
    out = apply(state, cast.event(state, kind, actor, (PK,), **fields_for(kind, actor, state)), cast.parties)
    assert isinstance(out, Refused) and out.reason == reason


# ---- each code by the event that earns it ----


def test_replay_of_an_accepted_event() -> None:
    cast, state = build("registered")
    event = cast.event(state, "transporter-assigned", "maker-a", (PK,))
    first = apply(state, event, cast.parties)
    assert isinstance(first, Accepted)
    again = apply(first.state, event, cast.parties)
    assert again == Refused("replay", "maker-a:2 is already used: maker-a's last accepted seq is 2")
    # a different event reusing the seq is a replay too: the seq is spent
    other = cast.event(first.state, "transporter-released", "maker-a", (PK,), seq=2)
    assert apply(first.state, other, cast.parties).code == "replay"  # type: ignore[union-attr]


def test_out_of_order_seq() -> None:
    cast, state = build("registered")
    out = refused(cast, state, "transporter-assigned", "maker-a", seq=4)
    assert out == Refused("out-of-order", "maker-a:4 skips seq 2: maker-a's next event must be maker-a:2")


def test_a_refused_event_spends_no_seq() -> None:
    cast, state = build("registered")
    refused(cast, state, "ownership-offered", "plant", to="maker-a")  # plant:1 refused: not the owner
    s2 = accepted(cast, state, "inspected", "inspect-co")
    assert s2.last_seq("plant") == 0
    assert refused(cast, s2, "location", "road-co").code == "conflict"
    assert s2.last_seq("road-co") == 0


@pytest.mark.parametrize("prev", [None, "0" * 64, "stale"])
def test_wrong_prev(prev: str | None) -> None:
    cast, state = build("assigned")
    first = state.items[PK].registration  # the registration: an accepted event, but not the last one
    value = first if prev == "stale" else prev
    out = refused(cast, state, "picked-up", "road-co", prev={PK: value})
    last = state.items[PK]
    assert out == Refused("wrong-prev", f"prev of PK-1 is {value}, but its last accepted event is "
                                        f"{last.last_event_id} ({last.last_event}): read its custody again")


def test_registration_prev_must_be_null() -> None:
    cast = Cast()
    out = refused(cast, CustodyState(), "pack-registered", "maker-a", prev={PK: "a" * 64})
    assert out == Refused("wrong-prev", "prev of PK-1 must be null: a registration starts its chain")


def test_forged_signature() -> None:
    cast, state = build("in-transit")
    out = refused(cast, state, "location", "road-co", signer="air-co")
    assert out.code == "bad-signature" and out.reason.startswith("sig of road-co:2 does not verify with road-co's key")


@pytest.mark.parametrize(("path", "value"), [
    ("location.lat", 45.0), ("ts", "2026-11-18T11:00:00.000Z"), ("to", "last-mile"), ("shipment_id", "SHP-2"),
])
def test_a_field_changed_after_signing_is_refused(path: str, value: Any) -> None:
    cast, state = build("next-assigned")
    obj = event_object(cast.event(state, "handed-over", "road-co", (PK,), to="air-co"))
    head, _, leaf = path.rpartition(".")
    (obj[head] if head else obj)[leaf] = value
    out = apply(state, event_from_object(obj), cast.parties)
    assert isinstance(out, Refused) and out.code == "bad-signature", out


def test_handover_needs_the_next_carriers_own_countersignature() -> None:
    cast, state = build("next-assigned")
    out = refused(cast, state, "handed-over", "road-co", to="air-co", countersigner="road-co")
    assert out.code == "bad-signature" and out.reason.startswith("countersig of road-co:2 does not verify")
    assert isinstance(apply(state, cast.event(state, "handed-over", "road-co", (PK,), to="air-co"), cast.parties),
                      Accepted)


def test_rotated_key() -> None:
    """After a rotation valid from seq 3, seq 3 on must be signed with the new key, and the old one no longer holds."""
    cast, state = build("assigned")  # maker-a has used seqs 1 and 2
    new_key = key_of("maker-a new")
    parties = cast.parties
    old = parties["maker-a"]
    parties["maker-a"] = dataclasses.replace(old, keys=(*old.keys, PartyKey(3, public_key_bytes(new_key))))
    with_old = cast.event(state, "transporter-released", "maker-a", (PK,))
    assert apply(state, with_old, parties).code == "bad-signature"  # type: ignore[union-attr]
    body = cast.body(state, "transporter-released", "maker-a", [PK])
    with_new = event_from_object(sign_event(body, new_key))
    assert isinstance(apply(state, with_new, parties), Accepted)
    # and an event from before the rotation still verifies with the old key (history replays)
    assert old.key_at(2) == parties["maker-a"].key_at(2) != parties["maker-a"].key_at(3)


def test_countersig_only_by_the_next_carriers_key_in_force() -> None:
    """air-co has signed seq 1 with its first key. Once it registers a new key from seq 2 (its next),
    only the new key countersigns a handover to it: the rotated-out key no longer does (review 15,
    1.6), nor does a stranger's. A rotation from a later seq leaves the first key in force."""
    cast, state = build("next-assigned")
    state = accepted(cast, state, "inspected", "inspect-co")
    cast.roles = {**cast.roles, "air-co": frozenset({"carrier", "inspector"})}
    state = accepted(cast, state, "inspected", "air-co")  # air-co:1, with its first key
    with_old = cast.event(state, "handed-over", "road-co", (PK,), to="air-co")
    new_key = key_of("air-co new")

    def rotated(from_seq: int) -> dict[str, Any]:
        parties = cast.parties
        air = parties["air-co"]
        parties["air-co"] = dataclasses.replace(air, keys=(*air.keys, PartyKey(from_seq, public_key_bytes(new_key))))
        return parties

    assert isinstance(apply(state, with_old, cast.parties), Accepted)
    out = apply(state, with_old, rotated(2))
    assert out.code == "bad-signature" and out.reason.startswith(  # type: ignore[union-attr]
        "countersig of road-co:2 does not verify with air-co's key")
    body = cast.body(state, "handed-over", "road-co", [PK], to="air-co", ts=with_old.ts)
    with_new = event_from_object(countersign(sign_event(body, key_of("road-co")), new_key))
    assert isinstance(apply(state, with_new, rotated(2)), Accepted)
    assert apply(state, with_new, rotated(3)).code == "bad-signature"  # type: ignore[union-attr]
    assert isinstance(apply(state, with_old, rotated(3)), Accepted)
    stranger = event_from_object(countersign(sign_event(body, key_of("road-co")), key_of("someone")))
    out = apply(state, stranger, rotated(2))
    assert out.code == "bad-signature" and out.reason.startswith("countersig of road-co:2")  # type: ignore[union-attr]


def test_no_key_at_that_seq() -> None:
    cast, state = build("registered")
    parties = cast.parties
    parties["inspect-co"] = dataclasses.replace(parties["inspect-co"], keys=(PartyKey(5, b"\x01" * 32),))
    out = apply(state, cast.event(state, "inspected", "inspect-co", (PK,)), parties)
    assert out == Refused("bad-signature", "inspect-co has no key valid at seq 1")


@pytest.mark.parametrize(("name", "kind", "fields", "code", "reason"), [
    ("registered", "ownership-offered", {"to": "nobody"}, "unknown-party",
     "offered party 'nobody' is not a registered party"),
    ("registered", "ownership-offered", {"to": "gone"}, "revoked",
     "offered party 'gone' is revoked: it can take part in no new event"),
    ("registered", "transporter-assigned", {"transporter": "plant"}, "forbidden",
     "transporter plant does not hold role carrier (roles: receiver)"),
    ("registered", "transporter-assigned", {"transporter": "gone"}, "revoked",
     "transporter 'gone' is revoked: it can take part in no new event"),
    ("in-transit", "delivered", {"to": "maker-b"}, "forbidden",
     "receiver maker-b does not hold role receiver (roles: manufacturer)"),
    ("in-transit", "delivered", {"to": "nobody"}, "unknown-party", "receiver 'nobody' is not a registered party"),
])
def test_the_parties_an_event_names(name: str, kind: str, fields: dict[str, Any], code: str, reason: str) -> None:
    cast, state = build(name)
    actor = "road-co" if kind == "delivered" else "maker-a"
    body = cast.body(state, kind, actor, [PK], **fields)
    out = apply(state, event_from_object(sign_event(body, key_of(actor))), cast.parties)
    assert out == Refused(code, reason)  # type: ignore[arg-type]


def test_handover_to_a_revoked_or_unknown_carrier() -> None:
    cast, state = build("in-transit")
    for to, code in (("gone", "revoked"), ("nobody", "unknown-party"), ("plant", "forbidden")):
        out = refused(cast, state, "handed-over", "road-co", to=to)
        assert out.code == code, out


def test_revoked_after_acting() -> None:
    """A party revoked mid-journey can do nothing more, even with the right seq and prev."""
    cast, state = build("in-transit")
    cast.revoked = frozenset({"gone", "road-co"})
    assert refused(cast, state, "location", "road-co").code == "revoked"


def test_one_event_many_packs_all_must_hold() -> None:
    cast, state = Cast(), CustodyState()
    for serial in ("PK-1", "PK-2"):
        state = accepted(cast, state, "pack-registered", "maker-a", (serial,))
    state = accepted(cast, state, "ownership-offered", "maker-a", ("PK-2",), to="plant")
    state = accepted(cast, state, "ownership-accepted", "plant", ("PK-2",), offer="maker-a:3")
    out = refused(cast, state, "transporter-assigned", "maker-a", ("PK-1", "PK-2"))
    assert out.reason == "maker-a is not the current owner of pack PK-2 (owner: plant)"
    state = accepted(cast, state, "ownership-offered", "plant", ("PK-2",), to="maker-a")
    state = accepted(cast, state, "ownership-accepted", "maker-a", ("PK-2",), offer="plant:2")
    both = accepted(cast, state, "transporter-assigned", "maker-a", ("PK-1", "PK-2"))
    assert both.items["PK-1"].last_event == both.items["PK-2"].last_event


def test_ownership_moves_only_with_both_signatures() -> None:
    """The hole in transferOwnership: an owner could push a pack onto anyone. Here the offer alone moves nothing."""
    cast, state = build("offered")
    assert state.items[PK].owner == "maker-a"
    out = apply(state, cast.event(state, "ownership-accepted", "plant", (PK,), offer="maker-a:2"), cast.parties)
    assert isinstance(out, Accepted)
    assert out.state.items[PK].owner == "plant" and out.state.items[PK].offer is None
    assert [(c.field, c.before, c.after) for c in out.effects] == [("owner", "maker-a", "plant"),
                                                                   ("offer", "maker-a:2", None)]


def test_withdraw_then_offer_again() -> None:
    cast, state = build("offered")
    assert refused(cast, state, "ownership-withdrawn", "maker-a", offer="maker-a:9").reason == (
        "the pending offer of PK-1 is maker-a:2, not maker-a:9")
    state = accepted(cast, state, "ownership-withdrawn", "maker-a", offer="maker-a:2")
    assert refused(cast, state, "ownership-accepted", "plant", offer="maker-a:2").reason == (
        "PK-1 has no pending offer to accept")
    state = accepted(cast, state, "ownership-offered", "maker-a", to="depot")
    state = accepted(cast, state, "ownership-accepted", "depot", offer="maker-a:4")
    assert state.items[PK].owner == "depot"


def test_accepting_an_older_offer_id() -> None:
    cast, state = build("offered")
    state = accepted(cast, state, "ownership-withdrawn", "maker-a", offer="maker-a:2")
    state = accepted(cast, state, "ownership-offered", "maker-a", to="plant")  # maker-a:4
    out = refused(cast, state, "ownership-accepted", "plant", offer="maker-a:2")
    assert out == Refused("conflict", "the pending offer of PK-1 is maker-a:4, not maker-a:2")


def test_un38_3_failure_may_not_travel() -> None:
    cast = Cast()
    results = {f"T{i}": ("fail" if i == 4 else "pass") for i in range(1, 9)}
    un = {"report_id": "TR-9", "lab": "Lab", "date": "2026-01-01", "manual_revision": "Rev. 8", "results": results}
    state = accepted(cast, CustodyState(), "pack-registered", "maker-a", un38_3=un)
    assert state.items[PK].un38_3_failed == ("T.4",)
    out = refused(cast, state, "transporter-assigned", "maker-a")
    assert out.code == "forbidden" and out.reason.startswith("pack PK-1 failed UN 38.3 T.4")


def test_after_a_rejected_receipt_the_owner_sends_it_back() -> None:
    cast, state = build("received")
    assert state.items[PK].receipt == "rejected"
    state = accepted(cast, state, "transporter-assigned", "maker-a", transporter="last-mile")
    state = accepted(cast, state, "picked-up", "last-mile")
    assert (state.items[PK].holder, state.items[PK].status) == ("last-mile", "in-transit")


def test_released_then_nobody_may_pick_up() -> None:
    cast, state = build("assigned")
    state = accepted(cast, state, "transporter-released", "maker-a")
    assert refused(cast, state, "picked-up", "road-co").code == "forbidden"


# ---- cell lots: resources, consumed by the pack built from them ----


def lots_journey() -> tuple[Cast, CustodyState, str]:
    cast, state = Cast(), CustodyState()
    state = accepted(cast, state, "lot-registered", "cells-co", ("LOT-A",))
    lot_hash = state.items["LOT-A"].registration
    assert state.lots == {lot_hash: "LOT-A"}
    state = accepted(cast, state, "ownership-offered", "cells-co", ("LOT-A",), to="maker-a")
    state = accepted(cast, state, "ownership-accepted", "maker-a", ("LOT-A",), offer="cells-co:2")
    return cast, state, lot_hash


def test_a_pack_consumes_the_lots_its_maker_owns() -> None:
    cast, state, lot_hash = lots_journey()
    out = apply(state, cast.event(state, "pack-registered", "maker-a", (PK,), cell_lots=[lot_hash]), cast.parties)
    assert isinstance(out, Accepted)
    lot = out.state.items["LOT-A"]
    assert (lot.status, lot.consumed_by, lot.last_event) == ("consumed", PK, out.event_hash)
    # the lot was still at its supplier's site (ownership moved, the cells did not): now it is in maker-a's pack
    assert {(c.serial, c.field, c.after) for c in out.effects} == {
        (PK, "registered", "maker-a"), ("LOT-A", "status", "consumed"), ("LOT-A", "consumed_by", PK),
        ("LOT-A", "holder", "maker-a")}
    # consumed: it cannot be built into another pack nor move again, but an inspector may still look
    state = out.state
    again = refused(cast, state, "pack-registered", "maker-a", ("PK-2",), cell_lots=[lot_hash])
    assert again == Refused("conflict", "lot LOT-A was already consumed by pack PK-1")
    move = refused(cast, state, "ownership-offered", "maker-a", ("LOT-A",))
    assert move == Refused("conflict", "lot LOT-A was consumed by pack PK-1: it can no longer move")
    accepted(cast, state, "inspected", "inspect-co", ("LOT-A",))


def test_a_pack_cannot_consume_lots_it_does_not_own() -> None:
    cast, state, lot_hash = lots_journey()
    out = refused(cast, state, "pack-registered", "maker-b", (PK,), cell_lots=[lot_hash])
    assert out == Refused("forbidden", "maker-b is not the current owner of lot LOT-A (owner: maker-a)")
    unknown = refused(cast, state, "pack-registered", "maker-a", (PK,), cell_lots=["e" * 64])
    assert unknown == Refused("conflict", f"no cell lot is registered by event {'e' * 64}")


def test_a_lot_on_the_road_cannot_be_built_in() -> None:
    cast, state, lot_hash = lots_journey()
    state = accepted(cast, state, "transporter-assigned", "maker-a", ("LOT-A",))
    out = refused(cast, state, "pack-registered", "maker-a", (PK,), cell_lots=[lot_hash])
    assert out.code == "conflict" and "no transporter assigned" in out.reason
    state = accepted(cast, state, "ownership-offered", "maker-a", ("LOT-A",), to="maker-b")
    assert "pending offer" in refused(cast, state, "pack-registered", "maker-a", (PK,), cell_lots=[lot_hash]).reason


def test_two_packs_racing_for_one_lot() -> None:
    cast, state, lot_hash = lots_journey()
    a = cast.event(state, "pack-registered", "maker-a", ("PK-1",), cell_lots=[lot_hash])
    b = cast.event(state, "pack-registered", "maker-a", ("PK-2",), cell_lots=[lot_hash], seq=3)
    first = apply(state, a, cast.parties)
    assert isinstance(first, Accepted)
    assert apply(first.state, b, cast.parties) == Refused("conflict", "lot LOT-A was already consumed by pack PK-1")


# ---- races: exactly one wins ----


def test_two_offers_racing() -> None:
    """Both written against the same state: the first accepted wins, the second's prev is stale."""
    cast, state = build("registered")
    to_plant = cast.event(state, "ownership-offered", "maker-a", (PK,), to="plant")
    to_depot = cast.event(state, "ownership-offered", "maker-a", (PK,), to="depot", seq=3)
    first = apply(state, to_plant, cast.parties)
    assert isinstance(first, Accepted)
    second = apply(first.state, to_depot, cast.parties)
    assert isinstance(second, Refused) and second.code == "wrong-prev"
    # rewritten against the new state, the second offer is a conflict while the first is pending
    fresh = cast.event(first.state, "ownership-offered", "maker-a", (PK,), to="depot")
    assert apply(first.state, fresh, cast.parties).code == "conflict"  # type: ignore[union-attr]


def test_two_handovers_racing() -> None:
    """The holder hands the same pack to two carriers at once (two countersigned events): one wins."""
    cast, state = build("next-assigned")
    parties = cast.parties
    to_air = cast.event(state, "handed-over", "road-co", (PK,), to="air-co")
    # the same pack, same prev, to the same assigned carrier but a second time (a duplicate under another seq)
    again = cast.event(state, "handed-over", "road-co", (PK,), to="air-co", seq=3)
    outcomes = [apply(state, to_air, parties)]
    outcomes.append(apply(outcomes[0].state, again, parties))  # type: ignore[union-attr]
    assert [type(o).__name__ for o in outcomes] == ["Accepted", "Refused"]
    assert outcomes[1].code == "wrong-prev"  # type: ignore[union-attr]


def test_handover_and_delivery_racing() -> None:
    cast, state = build("in-transit")
    deliver = cast.event(state, "delivered", "road-co", (PK,), to="plant")
    reassign = cast.event(state, "transporter-assigned", "maker-a", (PK,), transporter="air-co")
    first = apply(state, deliver, cast.parties)
    assert isinstance(first, Accepted)
    assert apply(first.state, reassign, cast.parties).code == "wrong-prev"  # type: ignore[union-attr]


# ---- time order, shipment, consignee, whole offers (review 15: 1.3, 1.4, 1.8) ----


def test_an_event_dated_before_an_items_last_is_out_of_order() -> None:
    """A carrier may not date its event before the pack's last accepted one (its delivery before its own
    shock, an interval inverted); the same instant is fine: two events can be signed in one second."""
    cast, state = build("in-transit")
    last = state.items[PK]
    assert last.last_ts is not None and last.last_event_id == "road-co:1"
    early = rfc3339(T0 - 86_400)
    out = refused(cast, state, "delivered", "road-co", to="plant", ts=early)
    assert out == Refused("out-of-order", f"road-co:2 is dated {early}, before {last.last_ts} of PK-1's last accepted "
                                          "event road-co:1: an item's events are dated in the order they happen")
    same = accepted(cast, state, "location", "road-co", ts=last.last_ts)
    assert same.items[PK].last_ts == last.last_ts


def test_a_pack_is_not_dated_before_the_lots_it_consumes() -> None:
    cast, state, lot_hash = lots_journey()
    before = rfc3339(T0 - 60)
    out = refused(cast, state, "pack-registered", "maker-a", (PK,), cell_lots=[lot_hash], ts=before)
    assert out.code == "out-of-order" and "LOT-A's last accepted event maker-a:1" in out.reason


def test_an_item_travels_in_the_shipment_its_owner_names() -> None:
    """Registration names the shipment; an event claiming another is refused; only the owner moves it to
    another, on transporter-assigned; an event claiming none claims nothing."""
    cast, state = Cast(), CustodyState()
    state = accepted(cast, state, "pack-registered", "maker-a", shipment_id="SHP-1")
    state = accepted(cast, state, "transporter-assigned", "maker-a", **ASSIGN)
    assert state.items[PK].shipment == "SHP-1"
    state = accepted(cast, state, "picked-up", "road-co", shipment_id="SHP-1")
    out = refused(cast, state, "location", "road-co", shipment_id="SHP-2")
    assert out == Refused("conflict", "road-co:2 claims shipment SHP-2, but PK-1 travels in shipment SHP-1: only "
                                      "its owner changes that, on transporter-assigned")
    state = accepted(cast, state, "location", "road-co")  # no claim
    assert refused(cast, state, "transporter-assigned", "plant", transporter="air-co",
                   shipment_id="SHP-2").code == "forbidden"
    moved = apply(state, cast.event(state, "transporter-assigned", "maker-a", (PK,), transporter="air-co",
                                    shipment_id="SHP-2"), cast.parties)
    assert isinstance(moved, Accepted) and moved.state.items[PK].shipment == "SHP-2"
    assert ("shipment", "SHP-1", "SHP-2") in [(c.field, c.before, c.after) for c in moved.effects]
    assert refused(cast, moved.state, "location", "road-co", shipment_id="SHP-1").code == "conflict"


def test_an_item_in_no_shipment_is_claimed_by_none() -> None:
    cast, state = build("in-transit")
    assert state.items[PK].shipment is None
    out = refused(cast, state, "location", "road-co", shipment_id="SHP-1")
    assert out.code == "conflict" and "PK-1 travels in no shipment" in out.reason


def test_delivery_only_to_the_owner_or_the_consignee_it_named() -> None:
    """The carrier does not choose the consignee: delivery goes to the owner or to the party the owner
    named on transporter-assigned; a new owner names its own."""
    cast, state = Cast(), CustodyState()
    state = accepted(cast, state, "pack-registered", "maker-a")
    state = accepted(cast, state, "transporter-assigned", "maker-a", transporter="road-co")  # no consignee
    state = accepted(cast, state, "picked-up", "road-co")
    out = refused(cast, state, "delivered", "road-co", to="plant")
    assert out == Refused("forbidden", "plant is neither the owner of PK-1 (maker-a) nor the consignee its owner "
                                       "named (none): the owner names it on transporter-assigned")
    named = accepted(cast, state, "transporter-assigned", "maker-a", transporter="air-co", consignee="depot")
    named = accepted(cast, named, "handed-over", "road-co", to="air-co")
    assert refused(cast, named, "delivered", "air-co", to="plant").code == "forbidden"
    done = accepted(cast, named, "delivered", "air-co", to="depot")
    assert done.items[PK].delivered_to == "depot" and done.items[PK].consignee is None
    # sold to plant in transit: plant, the owner now, may be delivered to; depot, named by maker-a, no more
    sold = accepted(cast, named, "ownership-offered", "maker-a", to="plant")
    sold = accepted(cast, sold, "ownership-accepted", "plant", offer="maker-a:4")
    assert sold.items[PK].consignee is None
    assert refused(cast, sold, "delivered", "air-co", to="depot").code == "forbidden"
    assert accepted(cast, sold, "delivered", "air-co", to="plant").items[PK].delivered_to == "plant"


@pytest.mark.parametrize(("consignee", "code", "reason"), [
    ("road-co", "forbidden", "consignee road-co does not hold role receiver (roles: carrier)"),
    ("nobody", "unknown-party", "consignee 'nobody' is not a registered party"),
    ("gone", "revoked", "consignee 'gone' is revoked: it can take part in no new event"),
])
def test_the_consignee_is_a_receiver_in_good_standing(consignee: str, code: str, reason: str) -> None:
    cast, state = build("registered")
    out = refused(cast, state, "transporter-assigned", "maker-a", transporter="road-co", consignee=consignee)
    assert out == Refused(code, reason)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["ownership-accepted", "ownership-withdrawn"])
def test_an_offer_is_accepted_or_withdrawn_whole(kind: str) -> None:
    cast, state = Cast(), CustodyState()
    for serial in ("PK-1", "PK-2"):
        state = accepted(cast, state, "pack-registered", "maker-a", (serial,))
    state = accepted(cast, state, "ownership-offered", "maker-a", ("PK-1", "PK-2"), to="plant")
    actor = "plant" if kind == "ownership-accepted" else "maker-a"
    out = refused(cast, state, kind, actor, ("PK-1",), offer="maker-a:3")
    assert out == Refused("conflict", f"offer maker-a:3 is of packs PK-1, PK-2: {kind} names exactly those, "
                                      "not PK-1")
    whole = accepted(cast, state, kind, actor, ("PK-1", "PK-2"), offer="maker-a:3")
    assert all(whole.items[s].offer is None for s in ("PK-1", "PK-2"))


# ---- what a store loads ----


def test_state_keys_is_enough() -> None:
    """apply over only the parts `state_keys` names gives the same outcome as over the whole state."""
    cast, state, lot_hash = lots_journey()
    state = accepted(cast, state, "pack-registered", "maker-b", ("PK-9",))
    event = cast.event(state, "pack-registered", "maker-a", (PK,), cell_lots=[lot_hash])
    keys = state_keys(event)
    assert keys.items == {PK} and keys.lot_hashes == {lot_hash} and keys.parties == {"maker-a"}
    lot_serials = {state.lots[h] for h in keys.lot_hashes if h in state.lots}
    part = CustodyState({s: i for s, i in state.items.items() if s in keys.items | lot_serials},
                        {p: n for p, n in state.seqs.items() if p in keys.parties},
                        {h: s for h, s in state.lots.items() if h in keys.lot_hashes})
    parties = {p: v for p, v in cast.parties.items() if p in keys.parties}
    whole, partial = apply(state, event, cast.parties), apply(part, event, parties)
    assert isinstance(whole, Accepted) and isinstance(partial, Accepted)
    assert whole.items == partial.items and whole.effects == partial.effects
    handover = state_keys(build("next-assigned")[0].event(build("next-assigned")[1], "handed-over", "road-co", (PK,)))
    assert handover.parties == {"road-co", "air-co"}


def test_party_view_of_a_store_record() -> None:
    rec = PartyRecord("road-co", "Road Co", frozenset({"carrier"}), (PartyKey(1, b"a" * 32), PartyKey(5, b"b" * 32)),
                      1.0)
    view = PartyView.of(rec)
    assert view == PartyView("road-co", frozenset({"carrier"}), (PartyKey(1, b"a" * 32), PartyKey(5, b"b" * 32)), False)
    assert (view.key_at(0), view.key_at(4), view.key_at(5)) == (None, b"a" * 32, b"b" * 32)
    assert [view.key_at(s) for s in range(7)] == [rec.key_at(s) for s in range(7)]  # one rule, one home
    assert PartyView.of(dataclasses.replace(rec, revoked_at=2.0)).revoked


# ---- Hypothesis: any sequence of events ----

PACKS = ("LOT-A", "PK-1", "PK-2")
PARTIES = [*ROLES, "nobody"]


@st.composite
def moves(draw: st.DrawFn, state: CustodyState, cast: Cast) -> Any:
    """One event, mostly what a party of the pack would plausibly write (so histories get deep), sometimes anything."""
    registered = sorted(i.serial for i in state.items.values() if i.status != "consumed")
    kind = draw(st.sampled_from(KINDS))
    if registered and draw(st.booleans()):  # the next step of some item's journey
        first = state.items[draw(st.sampled_from(registered))]
        kind = draw(st.sampled_from(_next_kinds(first)))
        packs: tuple[str, ...] = (first.serial,)
    elif kind in ("pack-registered", "lot-registered"):
        packs = (draw(st.sampled_from(PACKS)),)
    elif registered and draw(st.integers(0, 9)):
        packs = tuple(sorted(draw(st.sets(st.sampled_from(registered), min_size=1, max_size=2))))
    else:
        packs = tuple(sorted(draw(st.sets(st.sampled_from(PACKS), min_size=1, max_size=2))))
    item = state.items.get(packs[0])
    # whose act the kind is, for this item: the party a plausible history would have write it
    whose: dict[str, str | None] = {}
    if item is not None:
        whose = {"picked-up": item.transporter, "handed-over": item.holder, "location": item.holder,
                 "delivered": item.holder, "received": item.delivered_to,
                 "ownership-accepted": item.offer.to if item.offer else None}
    related = [p for p in [whose.get(kind, item.owner if item else None)] if p]
    if kind in ("pack-registered", "lot-registered"):
        related = ["cells-co", "maker-a", "maker-b"]
    elif kind == "inspected":
        related = ["inspect-co"]
    actor = draw(st.sampled_from(related)) if related and draw(st.integers(0, 4)) else draw(st.sampled_from(PARTIES))
    seq_mode = draw(st.sampled_from(["next"] * 8 + ["same", "skip"]))
    seq = max(1, state.last_seq(actor) + {"next": 1, "same": 0, "skip": 2}[seq_mode])
    prev_mode = draw(st.sampled_from(["right"] * 8 + ["null", "random", "registration"]))
    prev = {}
    for p in packs:
        it = state.items.get(p)
        right = None if kind.endswith("registered") or it is None else it.last_event
        prev[p] = {"right": right, "null": None, "random": "f" * 64,
                   "registration": it.registration if it else None}[prev_mode]
    fields: dict[str, Any] = {}
    carriers = ["road-co", "air-co", "last-mile", "depot"]
    other = draw(st.sampled_from(PARTIES))
    if kind == "handed-over":
        plausible = item.transporter if item and item.transporter else "air-co"
        fields["to"] = plausible if draw(st.integers(0, 3)) else other
    elif kind == "delivered":
        fields["to"] = draw(st.sampled_from(["plant", "depot"])) if draw(st.integers(0, 3)) else other
    elif kind == "ownership-offered":
        fields["to"] = other
    elif kind == "transporter-assigned":
        fields["transporter"] = draw(st.sampled_from(carriers)) if draw(st.integers(0, 3)) else other
    elif kind in ("ownership-accepted", "ownership-withdrawn"):
        offers = [i.offer.event_id for i in state.items.values() if i.offer] + ["maker-a:1"]
        own = item.offer.event_id if item and item.offer else None
        fields["offer"] = own if own and draw(st.integers(0, 3)) else draw(st.sampled_from(offers))
    elif kind == "pack-registered":
        fields["cell_lots"] = sorted(draw(st.sets(st.sampled_from([*state.lots, "d" * 64]), max_size=1)))
    if kind == "transporter-assigned" and draw(st.integers(0, 2)):
        fields["consignee"] = draw(st.sampled_from(["plant", "depot", other]))
    if fields.get("to") == actor:
        fields["to"] = "plant" if actor != "plant" else "maker-a"
    shipment = draw(st.sampled_from([None, None, None, "SHP-1", "SHP-2"]))
    if shipment is not None:
        fields["shipment_id"] = shipment
    ts = None if draw(st.integers(0, 19)) else rfc3339(cast.clock - 3600)  # sometimes dated in the past
    signer = actor if draw(st.integers(0, 19)) else other
    countersigner = fields.get("to") if draw(st.integers(0, 19)) else actor
    return cast.event(state, kind, actor, packs, seq=seq, prev=prev, signer=signer, ts=ts,
                      countersigner=countersigner if kind == "handed-over" else None, **fields)


def _next_kinds(item: ItemState) -> list[str]:
    if item.offer is not None:
        return ["ownership-accepted", "ownership-withdrawn"]
    if item.status == "in-transit":
        return ["location", "handed-over", "delivered", "transporter-assigned"]
    if item.status == "delivered":
        return ["received"]
    if item.transporter is not None:
        return ["picked-up", "transporter-released"]
    return ["transporter-assigned", "ownership-offered", "inspected"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_histories(data: st.DataObject) -> None:
    cast = Cast()
    parties = cast.parties
    state = CustodyState()
    history = []
    for _ in range(data.draw(st.integers(1, 40), label="length")):
        event = data.draw(moves(state, cast))
        out = apply(state, event, parties)
        assert out == apply(state, event, parties)  # deterministic
        if isinstance(out, Accepted):
            _holds_across(state, event, out)
            history.append(event)
            state = out.state
            _invariants(state)
        else:
            assert out.reason
    # the accepted history replays, from nothing, to the same state, every event accepted again
    again = replay(history, parties)
    assert all(isinstance(o, Accepted) for o in again.outcomes)
    assert again.state == state


def _holds_across(before: CustodyState, event: Any, out: Accepted) -> None:
    """What an accepted event keeps true of the items it touched (review 15: 1.3, 1.4, 1.8)."""
    for item in out.items:
        old = before.items.get(item.serial)
        assert item.last_ts == event.ts
        if old is not None and old.last_ts is not None:
            assert epoch_of(item.last_ts) >= epoch_of(old.last_ts)  # an item's events keep their time order
        # a claim holds only if it is the item's (the owner's assignment sets it; the lots a pack
        # registration consumes came in their own shipment to the maker's site, and stay in it)
        if event.shipment_id is not None and old is not None \
                and event.kind not in ("transporter-assigned", "pack-registered"):
            assert old.shipment == event.shipment_id == item.shipment
        if event.kind == "delivered":
            assert old is not None and item.delivered_to in (old.owner, old.consignee)


def _invariants(state: CustodyState) -> None:
    for item in state.items.values():
        assert item.owner in ROLES and item.holder in ROLES
        if item.status == "in-transit":  # a carrier has it (an owner that is a carrier may carry its own)
            assert "carrier" in ROLES[item.holder]
        if item.status == "in-transit":
            assert item.holder != item.maker or "carrier" in ROLES[item.holder]
        assert (item.status == "consumed") == (item.consumed_by is not None)
        assert item.offer is None or item.offer.to != item.owner
        if item.status == "delivered":
            assert item.holder == item.delivered_to and item.transporter is None
    for party, seq in state.seqs.items():
        assert party in ROLES and seq >= 1


# ---- intervals ----


def journey_with_lot() -> tuple[list[Any], CustodyState, Cast]:
    """The field study's journey: cells to the maker, a pack sold to the plant, road, air, last mile, receipt."""
    cast, state, lot_hash = lots_journey()
    history: list[Any] = []

    def step(kind: str, actor: str, packs: tuple[str, ...] = (PK,), **kw: Any) -> None:
        nonlocal state
        event = cast.event(state, kind, actor, packs, **kw)
        out = apply(state, event, cast.parties)
        assert isinstance(out, Accepted), out
        state = out.state
        history.append(event)

    step("pack-registered", "maker-a", cell_lots=[lot_hash])
    step("ownership-offered", "maker-a", to="plant")
    step("ownership-accepted", "plant", offer="maker-a:3")
    step("transporter-assigned", "plant", transporter="road-co")
    step("picked-up", "road-co")
    step("location", "road-co")
    step("transporter-assigned", "plant", transporter="air-co")
    step("handed-over", "road-co", to="air-co")
    step("location", "air-co")
    step("transporter-assigned", "plant", transporter="last-mile")
    step("handed-over", "air-co", to="last-mile")
    step("delivered", "last-mile", to="plant")
    step("received", "plant", result="accepted-with-remarks", remarks="one corner dented")
    step("inspected", "inspect-co", finding="dent 2 cm, cells unaffected", severity="minor")
    return history, state, cast


def _t(event: Any) -> float:
    return float(event.epoch)


def test_intervals_of_a_journey() -> None:
    history, state, _ = journey_with_lot()
    assert state.items[PK].status == "received"
    iv = custody_intervals(PK, history)
    by_kind = {e.kind + ("" if e.kind != "handed-over" else f">{e.to}"): e for e in history}
    assert [(i.party, i.start_event, i.end_event) for i in iv.owners] == [
        ("maker-a", "maker-a:2", "plant:1"), ("plant", "plant:1", None)]
    assert [(i.party, i.start_event, i.end_event) for i in iv.carriers] == [
        ("road-co", "road-co:1", "road-co:3"), ("air-co", "road-co:3", "air-co:2"),
        ("last-mile", "air-co:2", "last-mile:1")]
    assert [(i.party, i.start_event) for i in iv.holders] == [
        ("maker-a", "maker-a:2"), ("road-co", "road-co:1"), ("air-co", "road-co:3"), ("last-mile", "air-co:2"),
        ("plant", "last-mile:1")]
    handover = by_kind["handed-over>air-co"]
    # at the handover's instant both carriers answer; a minute after, the new one alone, unless the margin covers it
    assert iv.at(_t(handover)).carriers == ("road-co", "air-co")
    assert iv.at(_t(handover) + 30).carriers == ("air-co",)
    assert iv.at(_t(handover) + 30, margin_s=60).carriers == ("road-co", "air-co")
    assert iv.at(_t(handover) + 30).owners == ("plant",)
    # before the pick-up and after the delivery nobody carries it
    assert iv.at(_t(history[0])).carriers == () and iv.at(_t(history[0])).holders == ("maker-a",)
    assert iv.at(_t(history[-1])).carriers == () and iv.at(_t(history[-1])).holders == ("plant",)
    assert iv.at(T0 - 1).owners == ()


def test_intervals_of_a_consumed_lot() -> None:
    cast, state, lot_hash = lots_journey()
    lot_events = [cast.event(CustodyState(), "lot-registered", "cells-co", ("LOT-A",), ts=rfc3339(T0 + 60))]
    history, _, _ = journey_with_lot()
    lot_history = [*lot_events, history[0]]  # registration, then the pack registration that consumes it
    iv = custody_intervals("LOT-A", lot_history)
    assert [(i.party, i.end_event) for i in iv.owners] == [("cells-co", "maker-a:2")]
    assert iv.at(_t(history[0]) + 1).owners == ()


def test_intervals_are_pure_over_the_events() -> None:
    history, _, _ = journey_with_lot()
    assert custody_intervals(PK, history) == custody_intervals(PK, list(history))
    assert custody_intervals(PK, []).owners == ()


def test_no_refusal_leaves_a_trace(states: dict[str, tuple[Cast, CustodyState]]) -> None:
    cast, state = states["in-transit"]
    before = dataclasses.replace(state)
    out = refused(cast, state, "delivered", "air-co", to="plant")
    assert out.code == "forbidden" and state == before
    assert isinstance(state.items[PK], ItemState)


def test_the_readme_table_names_tests_that_exist() -> None:
    """README.md's "Custody rules" maps each contract function to the tests here: each one named must exist."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Custody rules", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`(test_[a-z0-9_]+)`", section))
    assert len(named) >= 15
    missing = sorted(n for n in named if not callable(globals().get(n)))
    assert not missing, f"README names tests that do not exist: {missing}"
