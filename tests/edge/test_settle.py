"""Settlement (edge/settle.py) on its own: no broker, no database.

`Held` below is what the store would hold, kept in memory and changed only as the store
applies a settled batch (readings, device stats, excursions); each batch is settled against
it the way the ingestor's transaction does. Readings, watermarks, excursions and thresholds
are the real ones.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from packproof.canonical import canonical_bytes
from packproof.edge.decode import Accepted, DeviceEntry, Plausibility
from packproof.edge.message import Message
from packproof.edge.settle import Checked, Settled, settle, to_look_up
from packproof.edge.thresholds import BUILTIN_PROFILES, evaluate
from packproof.reading import DEFAULT_PROFILE
from packproof.records import DeliveryState, Excursion, IngestBatch
from packproof.rfc6962 import leaf_hash
from packproof.watermark import MAX_GAPS
from tests.edge.test_ingestor import reading, topic

PROFILE = BUILTIN_PROFILES[DEFAULT_PROFILE]
ENTRY = DeviceEntry("SHP-1", None, PROFILE)  # an unsigned tracker: nothing left to verify
NOMINAL, WARM, HOT = 24.3, 65.0, 80.0  # °C: no finding, a T.2 warning, a T.2 violation


def checked(seq: int, device: str = "dev-1", temperature: float = NOMINAL, pressure: float = 101.3,
            at: float = 1.0e9) -> Checked:
    r = reading(seq, device, key=None, temperature_c=temperature, pressure_kpa=pressure)
    body = canonical_bytes(r)
    return Checked(Accepted(r, body, leaf_hash(body), ENTRY), Message(topic(device), body, seq + 1, 1, at),
                   evaluate(PROFILE, r))


@dataclass
class Held:
    """What the store holds, as the ingestor's transaction reads it and the store's write path changes it."""

    leaves: dict[str, dict[int, bytes]] = field(default_factory=dict)
    states: dict[str, DeliveryState] = field(default_factory=dict)
    excursions: dict[int, Excursion] = field(default_factory=dict)
    limits: Plausibility = Plausibility()

    def settle(self, batch: list[Checked]) -> Settled:
        devices = {c.accepted.reading.device_id for c in batch}
        states = {d: s for d, s in self.states.items() if d in devices}
        wanted = to_look_up(batch, states)
        stored = {d: {s: self.leaves[d][s] for s in seqs if s in self.leaves.get(d, {})} for d, seqs in wanted.items()}
        opened = [dataclasses.replace(e) for e in self.excursions.values() if e.open and e.device_id in devices]
        next_id = max(self.excursions, default=0) + 1
        done = settle(batch, IngestBatch(), states, stored, opened, next_id, self.limits)
        self.apply(done.batch)
        return done

    def apply(self, b: IngestBatch) -> None:
        for row in b.readings:
            mine = self.leaves.setdefault(row.device_id, {})
            assert row.seq not in mine, f"{row.device_id}:{row.seq} stored twice"
            mine[row.seq] = row.leaf_hash
        for s in b.stats:
            before = self.states.get(s.device_id)
            highest = s.last_seq if before is None else max(before.highest, s.last_seq)
            self.states[s.device_id] = DeliveryState(s.acked_seq, highest,
                                                     tuple((lo, hi) for lo, hi in json.loads(s.gaps)))
        for e in b.excursions:
            self.excursions[e.id] = dataclasses.replace(e)


def ack(done: Settled, device: str = "dev-1") -> dict[str, object]:
    return json.loads(done.acks[device].payload)  # type: ignore[no-any-return]


# ---- examples -----------------------------------------------------------------------


def test_new_readings_are_stored_counted_and_acknowledged() -> None:
    held = Held()
    done = held.settle([checked(0), checked(1), checked(2, at=1.0e9 + 5)])
    assert [r.seq for r in done.batch.readings] == [0, 1, 2]
    assert (done.accepted, done.duplicates, done.conflicts, done.implausible) == (3, 0, 0, 0)
    assert done.batch.counters == {"readings_accepted": 3}
    s, = done.batch.stats
    assert (s.reading_count, s.first_seq, s.last_seq, s.last_received_at, s.acked_seq, s.missing, s.gaps) == \
        (3, 0, 2, 1.0e9 + 5, 2, 0, "[]")
    assert done.acks["dev-1"].topic == "packproof/v1/SHP-1/dev-1/ack"
    assert ack(done) == {"acked_seq": 2, "missing": 0, "highest": 2, "gaps": []}


def test_a_repeat_of_a_stored_reading_is_a_duplicate_acknowledged_again() -> None:
    held = Held()
    held.settle([checked(0), checked(1)])
    done = held.settle([checked(1)])
    assert (done.accepted, done.duplicates, done.batch.readings, done.batch.stats) == (0, 1, [], [])
    assert done.batch.counters == {"readings_duplicate": 1}
    assert ack(done)["acked_seq"] == 1  # a device whose ack was lost stops resending


def test_a_second_version_of_a_stored_reading_is_quarantined_and_the_first_stands() -> None:
    held = Held()
    first = checked(0)
    held.settle([first])
    done = held.settle([checked(0, temperature=HOT)])
    assert (done.accepted, done.conflicts) == (0, 1)
    q, = done.batch.quarantine
    assert (q.reason_code, q.device_id, q.shipment_id) == ("conflicting_reading", "dev-1", "SHP-1")
    assert "already stored with different content" in q.reason
    assert done.batch.counters == {"quarantined:conflicting_reading": 1}
    assert held.leaves["dev-1"] == {0: first.accepted.leaf_hash}


def test_repeats_within_one_batch_are_stored_once() -> None:
    done = Held().settle([checked(0), checked(0), checked(0, temperature=HOT), checked(1)])
    assert [r.seq for r in done.batch.readings] == [0, 1]
    assert (done.accepted, done.duplicates, done.conflicts) == (2, 1, 1)
    assert [q.reason_code for q in done.batch.quarantine] == ["conflicting_reading"]


def test_a_redelivery_after_a_second_version_in_the_same_batch_is_still_a_duplicate() -> None:
    """Judged against the version that stands (the stored one), not against the batch's first copy."""
    held = Held()
    held.settle([checked(0)])
    done = held.settle([checked(0, temperature=HOT), checked(0)])
    assert (done.accepted, done.duplicates, done.conflicts) == (0, 1, 1)
    assert [q.reason_code for q in done.batch.quarantine] == ["conflicting_reading"]


def test_a_gap_holds_the_watermark_until_it_fills() -> None:
    held = Held()
    done = held.settle([checked(0), checked(1), checked(4), checked(5)])
    assert ack(done) == {"acked_seq": 1, "missing": 2, "highest": 5, "gaps": [[2, 3]]}
    assert done.batch.stats[0].gaps == "[[2,3]]"
    done = held.settle([checked(3)])
    assert ack(done) == {"acked_seq": 1, "missing": 1, "highest": 5, "gaps": [[2, 2]]}
    done = held.settle([checked(2)])
    assert ack(done) == {"acked_seq": 5, "missing": 0, "highest": 5, "gaps": []}
    s, = done.batch.stats
    assert (s.first_seq, s.last_seq, s.acked_seq) == (2, 2, 5)  # the batch's own bounds; the state after it


def test_an_implausible_seq_jump_is_quarantined_and_moves_nothing() -> None:
    held = Held(limits=Plausibility(max_seq_jump=100))
    held.settle([checked(0)])
    done = held.settle([checked(100), checked(202)])  # 100 above the highest stored; then 102 above 100
    assert (done.accepted, done.implausible) == (1, 1)
    assert [r.seq for r in done.batch.readings] == [100]
    q, = done.batch.quarantine
    assert q.reason_code == "seq_jump" and "jumps 102 seqs" in q.reason
    assert ack(done)["highest"] == 100


def test_what_the_decode_stage_quarantined_is_kept_and_nothing_passed_in_changes() -> None:
    held = Held()
    held.settle([checked(0, temperature=HOT)])
    rejected = IngestBatch(counters={"quarantined:malformed_json": 1})
    rejected.quarantine.append(dataclasses.replace(held.settle([checked(0, temperature=WARM)]).batch.quarantine[0]))
    opened = [dataclasses.replace(e) for e in held.excursions.values()]
    before = (list(rejected.quarantine), dict(rejected.counters), [dataclasses.replace(e) for e in opened])
    batch = [checked(1, temperature=HOT)]
    states = dict(held.states)
    a = settle(batch, rejected, states, {}, opened, 10)
    assert (list(rejected.quarantine), dict(rejected.counters), opened) == before
    assert a.batch.quarantine == rejected.quarantine
    assert a.batch.counters == {"quarantined:malformed_json": 1, "readings_accepted": 1}
    b = settle(batch, rejected, states, {}, [dataclasses.replace(e) for e in opened], 10)
    assert a == b  # a commit retried after a failed write settles the batch the same way


def test_a_late_nominal_reading_does_not_end_a_later_excursion() -> None:
    held = Held()
    held.settle([checked(0), checked(3, temperature=HOT), checked(4, temperature=HOT)])
    done = held.settle([checked(1), checked(2)])  # resends filling the gap, after the outage
    assert done.batch.excursions == []
    e, = held.excursions.values()
    assert (e.open, e.start_seq, e.end_seq, e.readings, e.severity) == (True, 3, 4, 2, "violation")


def test_a_late_finding_inside_a_run_joins_it_and_outside_is_its_own_closed_excursion() -> None:
    held = Held()
    held.settle([checked(0), checked(3, temperature=HOT), checked(5, temperature=HOT)])
    held.settle([checked(4, temperature=HOT), checked(1, temperature=WARM)])
    run = next(e for e in held.excursions.values() if e.open)
    assert (run.start_seq, run.end_seq, run.readings) == (3, 5, 3)
    late, = (e for e in held.excursions.values() if not e.open)
    assert (late.start_seq, late.end_seq, late.severity, late.readings) == (1, 1, "warning", 1)


def test_excursions_continue_across_batches_and_close_on_a_nominal_reading() -> None:
    held = Held()
    held.settle([checked(0, temperature=WARM), checked(1, temperature=WARM)])
    held.settle([checked(2, temperature=WARM), checked(3)])
    e, = held.excursions.values()
    assert (e.open, e.start_seq, e.end_seq, e.readings, e.peak) == (False, 0, 2, 3, WARM)


def test_two_devices_are_settled_apart() -> None:
    done = Held().settle([checked(0, "dev-1"), checked(5, "dev-2"), checked(1, "dev-1")])
    assert {s.device_id: (s.reading_count, s.acked_seq) for s in done.batch.stats} == {"dev-1": (2, 1),
                                                                                        "dev-2": (1, -1)}
    assert set(done.acks) == {"dev-1", "dev-2"}


# ---- properties ---------------------------------------------------------------------

TEMPERATURES = st.sampled_from([NOMINAL, NOMINAL, WARM, HOT])
PRESSURES = st.sampled_from([101.3, 101.3, 60.0, 10.0])  # none, a T.1 warning, a T.1 violation
# arrivals: (device, seq, version); the version picks the body, so two versions of one seq conflict
ARRIVALS = st.lists(st.tuples(st.sampled_from(["dev-1", "dev-2"]), st.integers(0, 20), st.integers(0, 1)),
                    min_size=1, max_size=80)


def batches_of(items: list[Checked], cuts: list[int]) -> list[list[Checked]]:
    bounds = sorted({0, len(items), *(c % (len(items) + 1) for c in cuts)})
    return [items[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


@settings(max_examples=150, deadline=None)
@given(ARRIVALS, st.lists(st.integers(0, 1000), max_size=6))
def test_every_seq_is_stored_once_and_a_second_version_is_quarantined(
        arrivals: list[tuple[str, int, int]], cuts: list[int]) -> None:
    items = [checked(seq, device, temperature=(NOMINAL, HOT)[version]) for device, seq, version in arrivals]
    held, counts, refused = Held(), {"accepted": 0, "duplicates": 0, "conflicts": 0}, 0
    for batch in batches_of(items, cuts):
        done = held.settle(batch)  # Held.apply fails on a seq stored twice
        counts["accepted"] += done.accepted
        counts["duplicates"] += done.duplicates
        counts["conflicts"] += done.conflicts
        refused += sum(q.reason_code == "conflicting_reading" for q in done.batch.quarantine)
    first: dict[tuple[str, int], bytes] = {}
    duplicates = conflicts = 0
    for c in items:
        key = (c.accepted.reading.device_id, c.accepted.reading.seq)
        if key not in first:
            first[key] = c.accepted.leaf_hash
        elif first[key] == c.accepted.leaf_hash:
            duplicates += 1
        else:
            conflicts += 1
    assert {(d, s): leaf for d, seqs in held.leaves.items() for s, leaf in seqs.items()} == first
    assert counts == {"accepted": len(first), "duplicates": duplicates, "conflicts": conflicts}
    assert refused == conflicts


@settings(max_examples=150, deadline=None)
@given(ARRIVALS, st.lists(st.integers(0, 1000), max_size=6))
def test_the_acknowledged_seq_never_passes_a_gap(arrivals: list[tuple[str, int, int]], cuts: list[int]) -> None:
    held = Held()
    for batch in batches_of([checked(seq, device) for device, seq, _ in arrivals], cuts):
        done = held.settle(batch)
        for device, a in done.acks.items():
            state = json.loads(a.payload)
            have = held.leaves[device]
            acked, highest = state["acked_seq"], state["highest"]
            assert all(s in have for s in range(acked + 1)), f"{device} acked {acked} over a gap: {sorted(have)}"
            assert acked + 1 not in have  # and it is as high as it may be
            assert highest == max(have)
            missing = [s for s in range(highest + 1) if s not in have]
            assert state["missing"] == len(missing)
            listed = [s for lo, hi in state["gaps"] for s in range(lo, hi + 1)]
            assert listed == missing[:len(listed)]  # the first MAX_GAPS ranges of what is missing
            assert len(state["gaps"]) == MAX_GAPS or listed == missing


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(TEMPERATURES, PRESSURES), min_size=1, max_size=30), st.randoms(use_true_random=False),
       st.lists(st.integers(0, 1000), max_size=5))
def test_late_readings_never_end_the_excursions_later_readings_built(
        findings: list[tuple[float, float]], rnd: object, cuts: list[int]) -> None:
    items = [checked(seq, temperature=t, pressure=p) for seq, (t, p) in enumerate(findings)]
    arrival = list(items)
    rnd.shuffle(arrival)  # type: ignore[attr-defined]
    held = Held()
    for batch in batches_of(arrival, cuts):
        held.settle(batch)
    # What is open is what the highest seq found, ending there, whatever arrived late.
    last = items[-1]
    opened = {e.test: e for e in held.excursions.values() if e.open}
    assert {t: e.severity for t, e in opened.items()} == {c.test: c.severity for c in last.checks}
    assert all(e.end_seq == len(items) - 1 for e in opened.values())
    # Every finding is counted in exactly one excursion of its test and severity, none invented.
    for test in ("T.1", "T.2"):
        for severity in ("warning", "violation"):
            found = sum(1 for c in items for k in c.checks if (k.test, k.severity) == (test, severity))
            counted = sum(e.readings for e in held.excursions.values() if (e.test, e.severity) == (test, severity))
            assert counted == found, (test, severity)
