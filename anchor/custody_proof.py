"""Proof bundles for custody events: everything an offline check of one accepted event needs.

    {"format": "packproof-custody-proof/1",
     "event":   SEALED,       the event's `~custody` record leaf: {"record": "custody-event", "event": {...}, "at"}
     "keys":    [SEALED, ...]} the sealed `~parties` records giving the actor its key at the event's seq
                              (and, for `handed-over`, the next carrier the key its countersig is by)

    SEALED as in packproof.anchor.proof (a leaf, its RFC 6962 audit path, its signed block).

As for a reading (packproof/anchor/proof.py), the verifier states nothing on the bundle's word:
the event id comes from the proven event, the party's key from a proven `party-added` or
`party-key-rotated` record (packproof/parties.py) for that party, valid from a seq at or below
the event's, and sealed before the event's leaf (a record sealed after it is not what the
event was accepted under). The signatures are checked as the custody contract defines them
(packproof.custody.signature_problem: RFC 8785 bytes without `sig`/`countersig`, Ed25519).
What one bundle cannot show is absence: that the party was not revoked before the event.
`packproof audit` replays the sealed records as a whole.

Kept apart from the reading bundle (packproof/anchor/proof.py, bundle.py): it reuses their
sealed-leaf type and link checks, and changes neither.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, Field, ValidationError

from packproof.anchor.bundle import LeafAt, LedgerKeys, sealed_leaves
from packproof.anchor.ledger import Block
from packproof.anchor.proof import (
    STRICT,
    Check,
    LedgerView,
    SealedLeaf,
    block_checks,
    chain_check,
    field_path,
    path_check,
    strict_json,
)
from packproof.canonical import canonical_json
from packproof.crypto import key_id, unb64
from packproof.custody import CustodyEvent, HandedOver, event_from_object, signature_problem
from packproof.errors import ConfigError, InvalidCustodyEvent, PackproofError
from packproof.parties import ADDED, KEY_ROTATED, PARTIES
from packproof.records import CustodyEventRecord, key_index_at
from packproof.store import Store

FORMAT = "packproof-custody-proof/1"
MAX_BUNDLE_BYTES = 1 << 20


class NotSealed(PackproofError):
    """The event is accepted, but part of its proof is not sealed (or not found) yet (HTTP 409)."""


class CustodyProofBundle(BaseModel):
    model_config = STRICT
    format: Literal["packproof-custody-proof/1"]
    event: SealedLeaf
    keys: Annotated[list[SealedLeaf], Field(min_length=1, max_length=2)]

    def document(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_unset=True)


# ---- key records ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PartyKeyRecord:
    """A sealed party record that gives a key: `party-added` (from seq 1) or `party-key-rotated`."""

    party_id: str
    public_key: bytes
    valid_from_seq: int


def parse_party_key_record(text: str | bytes) -> PartyKeyRecord | None:
    """The key a `~parties` leaf gives, if it is a key record in canonical form (as the store writes it)."""
    try:
        obj = strict_json(text)
        raw = text if isinstance(text, bytes) else text.encode()
        if not isinstance(obj, dict) or obj.get("record") not in (ADDED, KEY_ROTATED) or canonical_json(obj) != raw:
            return None
        party, key, start = obj["party_id"], unb64(obj["public_key"]), obj["valid_from_seq"]
    except (ValueError, TypeError, KeyError):
        return None
    if not isinstance(party, str) or len(key) != 32 or type(start) is not int:
        return None
    return PartyKeyRecord(party, key, start)


def key_record_in_force(records: Sequence[bytes], party_id: str, seq: int) -> int | None:
    """Which of the parties' record leaves (store order) gives `party_id` its key at event `seq`: the
    rule of `packproof.records.key_index_at` (its one home) over that party's key records."""
    mine = [(i, r) for i, text in enumerate(records)
            if (r := parse_party_key_record(text)) is not None and r.party_id == party_id]
    k = key_index_at([r for _, r in mine], seq)
    return None if k is None else mine[k][0]


# ---- assembling (from the store) --------------------------------------------------------------


async def custody_proof_bundle(store: Store, keys: LedgerKeys, e: CustodyEventRecord) -> CustodyProofBundle:
    """The proof of accepted event `e`: its sealed leaf and the sealed key records it was checked with."""
    if e.place is None:
        raise NotSealed(f"custody event {e.event_id} is accepted but not sealed yet; blocks close at least every "
                        "second, try again shortly")
    leaf = next(iter(await store.readings_between(e.leaf_id, e.leaf_id)), None)
    if leaf is None:
        raise NotSealed(f"custody event {e.event_id}: its record leaf (store id {e.leaf_id}) is missing")
    event = event_from_object(orjson.loads(e.body))
    # the parties as the event was accepted under them: records written after its leaf do not count
    records = [r for r in await store.records(PARTIES) if r.id < e.leaf_id]
    bodies = [r.body for r in records]
    i = key_record_in_force(bodies, event.actor, event.seq)
    if i is None:
        raise NotSealed(f"custody event {e.event_id}: no sealed key record of party {event.actor} at seq {event.seq}")
    chosen = [records[i]]
    if isinstance(event, HandedOver):
        # The rules take the countersig by the next carrier's key in force at its next own seq (its last
        # accepted one before this event + 1; edge/custody.py, _countersigner_key), and no other.
        last = await store.custody_seq_before(event.to, e.leaf_id)
        j = key_record_in_force(bodies, event.to, last + 1)
        if j is None:
            raise NotSealed(f"custody event {e.event_id}: no sealed key record of {event.to} at seq {last + 1}")
        chosen.append(records[j])
    where = await store.locate([r.id for r in chosen])
    if any(r.id not in where for r in chosen):
        raise NotSealed(f"custody event {e.event_id}: a key record of its parties is not sealed yet")
    sealed = await sealed_leaves(store, keys, [LeafAt(leaf.body, e.place.height, e.place.index),
                                         *(LeafAt(r.body, where[r.id].height, where[r.id].index) for r in chosen)])
    return CustodyProofBundle(format=FORMAT, event=sealed[0], keys=sealed[1:])


# ---- parsing and verifying (pure) ---------------------------------------------------------------


def parse_custody_bundle(doc: Any) -> CustodyProofBundle:
    """A decoded JSON document as a typed bundle; ConfigError (exit 2) naming the field otherwise."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ConfigError(f"custody proof bundle: field format: expected {FORMAT!r}")
    try:
        return CustodyProofBundle.model_validate(doc)
    except ValidationError as exc:
        e = exc.errors()[0]
        raise ConfigError(f"custody proof bundle: field {field_path(e['loc'])}: {e['msg']}") from None


@dataclass(frozen=True, slots=True)
class CustodyVerdict:
    event_id: str | None  # from the proven event; None when the leaf holds no valid event
    checks: list[Check]

    @property
    def holds(self) -> bool:
        return all(c.ok is not False for c in self.checks)


def _event_check(text: str, asked: str | None) -> tuple[CustodyEvent | None, list[Check]]:
    try:
        obj = strict_json(text)
        if not isinstance(obj, dict) or obj.get("record") != "custody-event":
            return None, [Check("custody event", False, "the leaf is not a custody-event record")]
        event = event_from_object(obj.get("event"))
    except (ValueError, InvalidCustodyEvent) as exc:
        return None, [Check("custody event", False, f"the leaf holds no valid custody event: {exc}")]
    canonical = canonical_json(obj) == text.encode()
    checks = [Check("custody event", canonical, f"{event.kind} {event.event_id} by {event.actor} at {event.ts}, "
                    "in RFC 8785 canonical form" if canonical else "the record is not in RFC 8785 canonical form")]
    if asked is not None:
        checks.append(Check("event id", event.event_id == asked, f"the proven event is {event.event_id}"
                            + ("" if event.event_id == asked else f", not {asked} which was asked for")))
    return event, checks


def _key_checks(bundle: CustodyProofBundle, event: CustodyEvent | None) -> tuple[list[bytes | None], list[Check]]:
    """The key records: each for the right party, valid at the right seq, sealed before the event."""
    if event is None:
        return [], [Check("party key record", None, "not checked: no proven event")]
    wanted: list[tuple[str, int | None, str]] = [(event.actor, event.seq, "actor")]
    if isinstance(event, HandedOver):  # the next carrier's seq then is not in the bundle: any key of
        wanted.append((event.to, None, "next carrier"))  # its sealed before the event; the audit replays the rule
    if len(bundle.keys) != len(wanted):
        return [], [Check("party key record", False, f"the bundle gives {len(bundle.keys)} key record(s), the "
                          f"{event.kind} needs {len(wanted)}")]
    keys: list[bytes | None] = []
    checks = []
    for (party, seq, role), sealed in zip(wanted, bundle.keys, strict=True):
        r = parse_party_key_record(sealed.leaf)
        name = f"{role} key record"
        problems = []
        if r is None:
            checks.append(Check(name, False, "the leaf is not a party-added or party-key-rotated record in "
                                             "canonical form"))
            keys.append(None)
            continue
        if r.party_id != party:
            problems.append(f"is for party {r.party_id}, not {party}")
        if seq is not None and r.valid_from_seq > seq:
            problems.append(f"is valid from seq {r.valid_from_seq}, after the event's seq {seq}")
        if sealed.position >= bundle.event.position:
            problems.append("was sealed at or after the event, so the event was not accepted under it")
        where = f"leaf {sealed.leaf_index} of block {sealed.height}"
        checks.append(Check(name, not problems, f"{where} " + "; ".join(problems) if problems else
                            f"{where}: party {r.party_id} has key {key_id(r.public_key)} from seq {r.valid_from_seq}, "
                            "sealed before the event"))
        keys.append(None if problems else r.public_key)
    return keys, checks


def verify_custody_bundle(bundle: CustodyProofBundle, view: LedgerView | None = None,
                          asked_id: str | None = None) -> CustodyVerdict:
    """Every check, in order; the proof holds only if none is False."""
    view = view or LedgerView()
    event, checks = _event_check(bundle.event.leaf, asked_id)
    keys, key_checks = _key_checks(bundle, event)
    checks += key_checks
    if event is None or not keys or any(k is None for k in keys):
        checks.append(Check("party signature", None, "not checked: no proven event and party key"))
    else:
        problem = signature_problem(event, keys[0] or b"", keys[1] if len(keys) > 1 else None)
        checks.append(Check("party signature", problem is None, problem or (
            f"Ed25519 by {event.actor}" + (f", countersigned by {event.to}" if isinstance(event, HandedOver) else ""))))
    checks.append(path_check("merkle path", bundle.event))
    for n, sealed in enumerate(bundle.keys):
        checks.append(path_check(f"key record {n + 1} merkle path", sealed))
    blocks: dict[int, tuple[Block, bytes]] = {}
    for prefix, sealed in (("", bundle.event), *((f"key record {n + 1} ", s) for n, s in enumerate(bundle.keys))):
        block, bundle_key = sealed.block.block(), unb64(sealed.ledger_public_key)
        if sealed.height in blocks:
            if blocks[sealed.height][0] != block:
                checks.append(Check(f"{prefix}block", False, f"two different blocks at height {sealed.height}"))
            continue
        blocks[sealed.height] = (block, view.trusted_keys.get(sealed.height) or bundle_key)
        checks += block_checks(prefix, block, bundle_key, view.trusted_keys.get(sealed.height))
    checks.append(chain_check(blocks, view.chain))
    return CustodyVerdict(event.event_id if event else None, checks)


def heights(bundle: CustodyProofBundle) -> list[int]:
    return sorted({bundle.event.height, *(k.height for k in bundle.keys)})
