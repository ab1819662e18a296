"""Custody events made the way parties make them: a cast of parties with keys, and a writer of their events.

The keys come from fixed seeds (`private_key_from_seed`), so every run signs the same bytes.
`Cast.event` writes an event as its actor would after reading the current state: the actor's
next seq and, for each pack, the hash of its last accepted event as `prev`; each of these can be
overridden to write the stale, replayed or forged events the rules must refuse. Handovers are
countersigned by the carrier they go to.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from packproof.crypto import private_key_from_seed, public_key_bytes
from packproof.custody import CustodyEvent, countersign, event_from_object, sign_event
from packproof.edge.custody import CustodyState, PartyView
from packproof.records import PartyKey
from packproof.timefmt import rfc3339

T0 = 1_795_000_000.0  # 2026-11-18, the instant a cast's first event carries

# The parties of the field study's journey: a cell supplier, the pack maker, three carriers,
# the receiving plant, an inspector; one of each role that can be revoked, and none unknown.
ROLES: dict[str, frozenset[str]] = {
    "cells-co": frozenset({"manufacturer"}),
    "maker-a": frozenset({"manufacturer"}),
    "maker-b": frozenset({"manufacturer"}),
    "road-co": frozenset({"carrier"}),
    "air-co": frozenset({"carrier"}),
    "last-mile": frozenset({"carrier"}),
    "plant": frozenset({"receiver"}),
    "depot": frozenset({"receiver", "carrier"}),
    "inspect-co": frozenset({"inspector"}),
    "gone": frozenset({"manufacturer", "carrier", "receiver", "inspector"}),
}
REVOKED = frozenset({"gone"})

UN38_3_PASS: dict[str, Any] = {
    "report_id": "TR-2026-0815", "lab": "Battery Test Lab Torino", "date": "2026-03-02",
    "manual_revision": "Rev. 8", "results": {f"T{i}": "pass" for i in range(1, 9)},
}
PLACE: dict[str, Any] = {"lat": 45.07, "lon": 7.68, "name": "Torino plant"}


def key_of(party: str) -> Ed25519PrivateKey:
    return private_key_from_seed(f"custody-test {party}".encode())


@dataclass
class Cast:
    """The parties and their keys, and a clock that moves a minute an event."""

    roles: Mapping[str, frozenset[str]] = field(default_factory=lambda: dict(ROLES))
    revoked: frozenset[str] = REVOKED
    clock: float = T0

    @property
    def parties(self) -> dict[str, PartyView]:
        return {p: PartyView(p, r, (PartyKey(1, public_key_bytes(key_of(p))),), p in self.revoked)
                for p, r in self.roles.items()}

    def body(self, state: CustodyState, kind: str, actor: str, packs: Iterable[str], *,
             seq: int | None = None, prev: Mapping[str, str | None] | None = None, ts: str | None = None,
             **fields: Any) -> dict[str, Any]:
        """The unsigned body of `actor`'s next event of `kind` on `packs`, written against `state`."""
        packs = sorted(packs)
        if seq is None:
            seq = state.last_seq(actor) + 1
        if prev is None:
            prev = {p: (state.items[p].last_event if p in state.items else None) for p in packs}
        if ts is None:
            self.clock += 60
            ts = rfc3339(self.clock)
        body: dict[str, Any] = {
            "v": 1, "kind": kind, "event_id": f"{actor}:{seq}", "actor": actor, "ts": ts,
            "packs": packs, "location": dict(PLACE), "prev": dict(prev),
        }
        body.update(_defaults(kind, packs))
        body.update(fields)
        return body

    def event(self, state: CustodyState, kind: str, actor: str, packs: Iterable[str], *,
              signer: str | None = None, countersigner: str | None = None, **kw: Any) -> CustodyEvent:
        """`body(...)` signed by its actor (or `signer`), a handover countersigned by its `to`."""
        obj = self.body(state, kind, actor, packs, **kw)
        obj = sign_event(obj, key_of(signer or actor))
        if kind == "handed-over":
            obj = countersign(obj, key_of(countersigner or obj["to"]))
        return event_from_object(obj)


def _defaults(kind: str, packs: list[str]) -> dict[str, Any]:
    """The kind's own fields with plausible values; a caller's keyword arguments override them."""
    if kind == "pack-registered":
        return {"serial": packs[0], "model": "EVB-75", "chemistry": "NMC811", "rated_wh": 75000.0,
                "mass_kg": 450.0, "tracker": f"trk-{packs[0]}", "un38_3": UN38_3_PASS,
                "profile": "un38.3-large", "cell_lots": []}
    if kind == "lot-registered":
        return {"serial": packs[0], "cell_model": "NMC 21700", "chemistry": "NMC811", "cells": 4416}
    if kind in ("ownership-offered", "delivered"):
        return {"to": "plant"}
    if kind in ("ownership-accepted", "ownership-withdrawn"):
        return {"offer": "maker-a:1"}
    if kind == "transporter-assigned":
        return {"transporter": "road-co"}
    if kind == "handed-over":
        return {"to": "air-co"}
    if kind == "received":
        return {"result": "accepted"}
    if kind == "inspected":
        return {"finding": "casing intact, no electrolyte odour", "severity": "info"}
    return {}
