"""The simulated fleet's custody scripts (issue 15) against the pure custody rules (edge/custody.py).

Every scenario's script, signed by the simulated parties' keys, is accepted event by event by
the state machine, alone and with the whole mixed fleet interleaved (one seq per party across
shipments); each ends with its packs received by the plant. The drop scenario's shock falls in
the handover at the cargo terminal, so custody at that instant names both carriers.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

import pytest

from packproof.crypto import public_key_bytes
from packproof.custody import event_from_object
from packproof.edge.custody import Accepted, CustodyState, PartyView, apply, custody_intervals
from packproof.records import PartyKey
from packproof.simulators.custody_script import (
    AIR,
    PLANT,
    ROAD,
    SIM_PARTIES,
    ScriptRun,
    custody_script,
    pack_serial,
    party_key,
    play_offline,
)
from packproof.simulators.fleet import build_fleet
from packproof.simulators.journey import Drop
from packproof.simulators.scenarios import MIXED_FLEET, SCENARIOS
from packproof.timefmt import rfc3339

T0 = 1_800_000_000.0
STEP_S, RATE = 60.0, 1.0  # `packproof run`'s defaults: 60 journey seconds a reading, a reading a second
KEYS = {p.party_id: party_key(1, p.party_id) for p in SIM_PARTIES}
VIEWS = {p.party_id: PartyView(p.party_id, frozenset(p.roles), (PartyKey(1, public_key_bytes(KEYS[p.party_id])),))
         for p in SIM_PARTIES}


def ts_of(at_s: float) -> str:
    return rfc3339(T0 + at_s / STEP_S / RATE)


class Rules:
    """The state machine as the API applies it: one state, every event in arrival order."""

    def __init__(self) -> None:
        self.state = CustodyState()
        self.events: list[Any] = []

    def accept(self, event: dict[str, Any]) -> str | None:
        parsed = event_from_object(event)
        outcome = apply(self.state, parsed, VIEWS)
        if not isinstance(outcome, Accepted):
            return f"{event['event_id']} ({event['kind']}) refused: {outcome.code}: {outcome.reason}"
        self.state = outcome.state
        self.events.append(parsed)
        return None


def runs_for(shipments: int, scenario: str = "mixed") -> list[ScriptRun]:
    fleet = build_fleet(shipments=shipments, packs=3, scenario=scenario, seed=1)
    by_shipment: dict[str, list[str]] = {}
    for d in fleet:
        by_shipment.setdefault(d.shipment_id, []).append(d.device_id)
    return [ScriptRun(sid, custody_script(SCENARIOS[next(d.scenario for d in fleet if d.shipment_id == sid)],
                                          sid, trackers)) for sid, trackers in by_shipment.items()]


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_each_scenarios_script_is_accepted_to_the_end(scenario: str) -> None:
    rules = Rules()
    (run,) = runs_for(1, scenario)
    seqs = play_offline([run], KEYS, ts_of, rules.accept)
    assert run.stopped is None and run.next == len(run.steps)
    for serial in (pack_serial(f"SHP-001-0001-P0{j}") for j in (1, 2, 3)):
        item = rules.state.items[serial]
        assert (item.owner, item.status, item.transporter) == (PLANT.party_id, "received", None)
        assert item.receipt == ("accepted" if SCENARIOS[scenario].crosses is None else
                                "rejected" if scenario == "drop" else "accepted-with-remarks")
    # each party numbered its events densely from 1
    assert seqs == dict(Counter(e.actor for e in rules.events))
    times = [e.ts for e in rules.events]
    assert times == sorted(times) and len(set(times)) == len(times)


def test_the_mixed_fleet_interleaved_is_accepted_and_uses_every_kind() -> None:
    rules = Rules()
    runs = runs_for(len(MIXED_FLEET))
    play_offline(runs, KEYS, ts_of, rules.accept)
    assert [r.stopped for r in runs] == [None] * len(runs)
    kinds = Counter(e.kind for e in rules.events)
    assert set(kinds) == {"lot-registered", "pack-registered", "ownership-offered", "ownership-accepted",
                          "transporter-assigned", "picked-up", "handed-over", "location", "delivered", "received",
                          "inspected"}
    assert kinds["pack-registered"] == 3 * len(MIXED_FLEET) and kinds["handed-over"] >= len(MIXED_FLEET)
    handovers = [e for e in rules.events if e.kind == "handed-over"]
    assert all(e.countersig and e.to != e.actor for e in handovers)


def test_a_script_replayed_is_refused_and_stops() -> None:
    """The rules, not the script, decide: the same events posted again are replays."""
    rules = Rules()
    (run,) = runs_for(1, "nominal-road")
    seqs = play_offline([run], KEYS, ts_of, rules.accept)
    (again,) = runs_for(1, "nominal-road")
    play_offline([again], KEYS, ts_of, rules.accept, {p: 0 for p in seqs})
    assert again.next == 0 and again.stopped is not None and "replay" in again.stopped


def test_the_drop_happens_during_the_handover_at_the_cargo_terminal() -> None:
    scenario = SCENARIOS["drop"]
    (drop,) = [a for a in scenario.anomalies if isinstance(a, Drop)]
    rules = Rules()
    (run,) = runs_for(1, "drop")
    play_offline([run], KEYS, ts_of, rules.accept)
    handover = next(e for e in rules.events if e.kind == "handed-over")
    assert (handover.actor, handover.to) == (AIR.party_id, ROAD.party_id)
    assert handover.location.name == "Hamburg airport cargo terminal"
    # The shock is in reading 7 (journey 7-8 min); the handover is signed as that reading window ends.
    reading = int(drop.at_s // STEP_S)
    at_handover = datetime.fromisoformat(handover.ts).timestamp()
    assert T0 + reading / RATE < at_handover <= T0 + (reading + 1) / RATE
    serial = pack_serial("SHP-001-0001-P01")
    intervals = custody_intervals(serial, [e for e in rules.events if serial in e.packs])
    shock = T0 + drop.at_s / STEP_S / RATE
    assert intervals.at(shock).carriers == (AIR.party_id,)
    assert intervals.at(shock, margin_s=1.0).carriers == (AIR.party_id, ROAD.party_id)
    assert intervals.at(shock).owners == (PLANT.party_id,)
    inspected = [e for e in rules.events if e.kind == "inspected"]
    assert inspected[0].location.name == "Hamburg airport cargo terminal" and "T.4" in inspected[0].finding
