"""The simulated fleet's custody (issue 15): who owns and who carries each shipment's packs, as a script.

A shipment's scenario (simulators/scenarios.py) is a route of legs; its custody script is the
ordered list of custody events the parties would sign along it, each at a journey time
(seconds from departure, the clock `simulators/signals.py` samples the route on), unsigned:

- the pack maker registers two cell lots per pack and then each pack (model, chemistry,
  rated energy, mass, its tracker, the UN 38.3 test summary, the profile, the lots' hashes);
- it offers the packs to the receiving plant, which accepts (ownership moves on both
  signatures) and, as owner, assigns the first carrier, which picks them up;
- the carrier of each leg follows from its mode (road, rail, sea, air; the final road leg
  after another is the last-mile carrier's): where it changes, the plant assigns the next
  carrier and the one holding the packs hands them over, countersigned by the next; where it
  does not, the carrier posts the packs' location at the end of the leg;
- at the destination the last carrier delivers to the plant, which receives them with its
  inspection result (accepted, or with remarks or rejected after an excursion), and an
  inspector records its finding after an excursion; a drop is inspected where it happened.

The drop scenario's route splits its dwell at the cargo terminal between the air carrier and
the road carrier, so its shock falls during the handover and the condition report names both.

Pure: no clock, no keys, no I/O. Values an event can only know once an earlier one is
signed (the offer's event id, the lots' hashes) are `Ref`s; `materialise` fills them in, with
the actor's seq and each pack's `prev`, when the event is about to be signed
(simulators/custody_poster.py does that as the journey's time passes).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from packproof.crypto import private_key_from_seed
from packproof.custody import countersign, event_from_object, event_hash, sign_event
from packproof.simulators.journey import Drop, Leg, Scenario, Waypoint

MIN = 60.0
GAP_S = 1.0  # journey seconds between two events scripted for the same moment: their ts stay distinct and ordered


@dataclass(frozen=True, slots=True)
class SimParty:
    """A simulated organisation: registered as a custody party at the start of `packproof run`."""

    party_id: str
    name: str
    roles: tuple[str, ...]


MAKER = SimParty("sim-pack-maker", "Simulated Pack Maker (Turin)", ("manufacturer",))
ROAD = SimParty("sim-road-carrier", "Simulated Road Carrier", ("carrier",))
RAIL = SimParty("sim-rail-carrier", "Simulated Rail Carrier", ("carrier",))
SEA = SimParty("sim-sea-carrier", "Simulated Ocean Carrier", ("carrier",))
AIR = SimParty("sim-air-carrier", "Simulated Air Cargo Carrier", ("carrier",))
LAST_MILE = SimParty("sim-last-mile", "Simulated Last-Mile Carrier", ("carrier",))
PLANT = SimParty("sim-plant", "Simulated Receiving Plant", ("receiver",))
INSPECTOR = SimParty("sim-inspector", "Simulated Battery Inspector", ("inspector",))
SIM_PARTIES: tuple[SimParty, ...] = (MAKER, ROAD, RAIL, SEA, AIR, LAST_MILE, PLANT, INSPECTOR)
CARRIER_OF_MODE: dict[str, SimParty] = {"road": ROAD, "rail": RAIL, "sea": SEA, "air": AIR}


def party_key(seed: int, party_id: str) -> Ed25519PrivateKey:
    """A simulated party's signing key, from the fleet's seed (as each device's key is)."""
    return private_key_from_seed(f"packproof-sim/{seed}/party/{party_id}".encode())


def pack_serial(tracker: str) -> str:
    """The serial of the pack a simulated tracker rides on."""
    return f"PK-{tracker}"


def lot_serial(tracker: str, k: int) -> str:
    return f"LOT-{tracker}-{'ABCDEFGH'[k]}"


LOTS_PER_PACK = 2


@dataclass(frozen=True, slots=True)
class Ref:
    """A value of an earlier step of the same script, known once that step is signed."""

    step: int
    what: Literal["event_id", "hash"]


@dataclass(frozen=True, slots=True)
class ScriptStep:
    """One custody event to sign: who, what, which packs, where and when (journey seconds), unsigned.

    `fields` are the kind's own fields; a `Ref` (or a list of them) stands for a value of an
    earlier step. `countersigner` is the party that countersigns a `handed-over`.
    """

    at_s: float
    actor: str
    kind: str
    packs: tuple[str, ...]
    where: Waypoint
    fields: Mapping[str, Any] = field(default_factory=dict)
    countersigner: str | None = None


@dataclass(frozen=True, slots=True)
class Signed:
    """What a signed step left for the later ones: its event id and hash."""

    event_id: str
    hash: str


def carriers_of(legs: Sequence[Leg]) -> list[SimParty]:
    """The carrier of each leg: by mode, and the last-mile carrier for a final road leg after another leg."""
    out = [CARRIER_OF_MODE[leg.mode] for leg in legs]
    if len(legs) > 1 and legs[-1].mode == "road" and not legs[-1].dwell:
        out[-1] = LAST_MILE
    return out


def custody_script(scenario: Scenario, shipment_id: str, trackers: Sequence[str]) -> tuple[ScriptStep, ...]:
    """The custody events of one shipment travelling `scenario`, its packs carrying `trackers`, in order."""
    legs = scenario.route.legs
    packs = tuple(sorted(pack_serial(t) for t in trackers))
    steps: list[ScriptStep] = []

    def add(at_s: float, actor: SimParty, kind: str, where: Waypoint, *, on: tuple[str, ...] = packs,
            countersigner: str | None = None, **fields: Any) -> int:
        at = max(at_s, steps[-1].at_s + GAP_S) if steps else at_s  # one after the other, never at the same ts
        steps.append(ScriptStep(at, actor.party_id, kind, on, where, fields, countersigner))
        return len(steps) - 1

    origin = legs[0].start
    for tracker in sorted(trackers):
        lots = [add(0.0, MAKER, "lot-registered", origin, on=(lot_serial(tracker, k),), serial=lot_serial(tracker, k),
                    cell_model="INR21700-50E", chemistry="NMC 811", cells=96) for k in range(LOTS_PER_PACK)]
        serial = pack_serial(tracker)
        add(0.0, MAKER, "pack-registered", origin, on=(serial,), serial=serial, model="PP-48V-5kWh",
            chemistry="NMC 811", rated_wh=5040.0, mass_kg=31.5, tracker=tracker, profile=scenario.profile,
            un38_3={"report_id": "UN38.3-PP48-2026-017", "lab": "Simulated Battery Test Laboratory",
                    "date": "2026-03-14", "manual_revision": "Rev.8 Amend.1",
                    "results": {f"T{i}": "pass" for i in range(1, 9)}},
            cell_lots=[Ref(i, "hash") for i in lots])
    offer = add(0.0, MAKER, "ownership-offered", origin, to=PLANT.party_id)
    add(0.0, PLANT, "ownership-accepted", origin, offer=Ref(offer, "event_id"))
    carriers = carriers_of(legs)
    add(0.0, PLANT, "transporter-assigned", origin, transporter=carriers[0].party_id)
    add(0.0, carriers[0], "picked-up", origin)

    drops = sorted((a for a in scenario.anomalies if isinstance(a, Drop)), key=lambda a: a.at_s)
    inspections: list[tuple[float, Waypoint]] = []  # a drop is inspected where it happened, once set down
    t = 0.0
    for i, leg in enumerate(legs):
        start, t = t, t + leg.duration_s
        inspections += [(d.at_s + 3 * MIN, leg.start) for d in drops if start <= d.at_s < t and leg.dwell]
        while inspections and (inspections[0][0] < t or i == len(legs) - 1):
            at, where = inspections.pop(0)
            add(at, INSPECTOR, "inspected", where, severity="major",
                finding=f"pallet dropped during handling at {where.name}: shock logged beyond UN 38.3 T.4; "
                        "packs to be quarantined and checked before use")
        if i == len(legs) - 1:
            break
        here, current, following = leg.end, carriers[i], carriers[i + 1]
        if following != current:
            add(t - 2 * GAP_S, PLANT, "transporter-assigned", here, transporter=following.party_id)
            add(t, current, "handed-over", here, to=following.party_id, countersigner=following.party_id)
        elif not leg.dwell:
            add(t, current, "location", here)
    end = legs[-1].end
    add(t, carriers[-1], "delivered", end, to=PLANT.party_id)
    if scenario.crosses is None:
        add(t + 10 * MIN, PLANT, "received", end, result="accepted")
        return tuple(steps)
    if any(isinstance(a, Drop) for a in scenario.anomalies):
        add(t + 10 * MIN, PLANT, "received", end, result="rejected",
            remarks=f"shock beyond UN 38.3 {scenario.crosses} recorded in transit: packs refused pending inspection")
    else:
        add(t + 10 * MIN, PLANT, "received", end, result="accepted-with-remarks",
            remarks=f"excursion beyond UN 38.3 {scenario.crosses} recorded in transit: packs held for inspection")
    add(t + 30 * MIN, INSPECTOR, "inspected", end, severity="major",
        finding=f"transport record shows an excursion beyond UN 38.3 {scenario.crosses}; packs isolated, "
                "capacity and insulation tests ordered")
    return tuple(steps)


def _resolve(value: Any, done: Mapping[int, Signed]) -> Any:
    if isinstance(value, Ref):
        signed = done[value.step]
        return signed.event_id if value.what == "event_id" else signed.hash
    if isinstance(value, list):
        resolved = [_resolve(v, done) for v in value]
        return sorted(resolved) if value and all(isinstance(v, Ref) for v in value) else resolved
    return value


def materialise(step: ScriptStep, *, shipment_id: str, seq: int, ts: str, heads: Mapping[str, str | None],
                done: Mapping[int, Signed]) -> dict[str, Any]:
    """The unsigned event of `step`: the actor's `seq`, its `ts`, each pack's `prev` from `heads`
    (serial -> hash of its last accepted event, None for none) and the Refs filled from `done`."""
    where = {"lat": step.where.lat, "lon": step.where.lon, "name": step.where.name}
    body: dict[str, Any] = {"v": 1, "kind": step.kind, "event_id": f"{step.actor}:{seq}", "actor": step.actor,
                            "ts": ts, "packs": list(step.packs), "shipment_id": shipment_id, "location": where,
                            "prev": {p: heads.get(p) for p in step.packs}}
    body.update({k: _resolve(v, done) for k, v in step.fields.items()})
    return body


def sign_step(body: Mapping[str, Any], step: ScriptStep, keys: Mapping[str, Ed25519PrivateKey]) -> dict[str, Any]:
    """`body` signed by its actor (and countersigned by the next carrier for a handover)."""
    signed = sign_event(body, keys[step.actor])
    if step.countersigner is not None:
        signed = countersign(signed, keys[step.countersigner])
    return signed


@dataclass(slots=True)
class ScriptRun:
    """One shipment's script being played: which step is next, what the signed ones left, each pack's head.

    Party seqs are shared by every shipment's run (`seqs`, party id -> last accepted seq): a
    carrier numbers its events across all the shipments it carries.
    """

    shipment_id: str
    steps: tuple[ScriptStep, ...]
    next: int = 0
    done: dict[int, Signed] = field(default_factory=dict)
    heads: dict[str, str | None] = field(default_factory=dict)
    stopped: str | None = None  # why this script stopped early (an event refused)

    @property
    def finished(self) -> bool:
        return self.stopped is not None or self.next >= len(self.steps)

    def event(self, seqs: Mapping[str, int], ts: str, keys: Mapping[str, Ed25519PrivateKey]) -> dict[str, Any]:
        """The next step as a signed event, numbered after its actor's last accepted seq."""
        step = self.steps[self.next]
        body = materialise(step, shipment_id=self.shipment_id, seq=seqs.get(step.actor, 0) + 1, ts=ts,
                           heads=self.heads, done=self.done)
        return sign_step(body, step, keys)

    def accepted(self, event: Mapping[str, Any], seqs: dict[str, int]) -> str:
        """Record that the API accepted `event` (the next step): advance; returns its hash."""
        digest = event_hash(event_from_object(dict(event)))
        step = self.steps[self.next]
        self.done[self.next] = Signed(str(event["event_id"]), digest)
        for serial in step.packs:
            self.heads[serial] = digest
        seqs[step.actor] = int(str(event["event_id"]).rpartition(":")[2])
        self.next += 1
        return digest


def play_offline(runs: Sequence[ScriptRun], keys: Mapping[str, Ed25519PrivateKey], ts_of: Callable[[float], str],
                 accept: Callable[[dict[str, Any]], str | None], seqs: dict[str, int] | None = None) -> dict[str, int]:
    """Play every script to its end in journey-time order, `accept(event)` deciding each event
    (None: accepted; else the reason it was refused, which stops that shipment's script).

    What the poster does against the API, without the clock: for tests and for checking a
    script against the rules. Returns the parties' last seqs.
    """
    seqs = {} if seqs is None else seqs
    while pending := [r for r in runs if not r.finished]:
        run = min(pending, key=lambda r: (r.steps[r.next].at_s, r.shipment_id))
        event = run.event(seqs, ts_of(run.steps[run.next].at_s), keys)
        refused = accept(event)
        if refused is None:
            run.accepted(event, seqs)
        else:
            run.stopped = refused
    return seqs
