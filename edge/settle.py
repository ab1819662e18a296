"""Settlement: what a decoded batch changes, given what the store holds. Pure.

Inside the ingestor's write transaction, each checked reading of a batch is settled
against the store's state for its device, read in that same transaction:

* new (in a gap or above the highest stored seq): stored, counted in the device's
  delivery watermark (packproof.watermark), its findings fed to the excursions;
* a repeat of a reading already stored (or earlier in the batch) with the same bytes:
  a duplicate, counted and acknowledged, never stored twice;
* a repeat with *different* bytes: a conflict (a key that signed two readings under
  one seq, or a second version from someone with an unsigned tracker's login),
  quarantined; the first one stands;
* a seq implausibly far above the device's highest: quarantined as a seq jump.

The store, not the ingestor's memory, is the truth (several ingestors can share one
stream), so settlement takes the state as arguments and returns what to write and what
to tell each device; the ingestor reads, calls `settle`, writes, and publishes the acks
after the commit. Without I/O it can be tested on its own (tests/edge/test_settle.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from packproof.edge.decode import PLAUSIBLE, Accepted, Plausibility
from packproof.edge.excursions import ExcursionTracker
from packproof.edge.message import Message, quarantine
from packproof.edge.thresholds import Check
from packproof.errors import InvalidReading
from packproof.reading import TOPIC_PREFIX
from packproof.records import DeliveryState, DeviceBatchStats, Excursion, IngestBatch, ReadingRow
from packproof.watermark import Watermarks


@dataclass(slots=True)
class Checked:
    """A reading that decoded and whose signature verified, with its threshold findings: what `settle` takes."""

    accepted: Accepted
    message: Message
    checks: tuple[Check, ...]


@dataclass(frozen=True, slots=True)
class DeviceAck:
    """The delivery state to publish (retained) on a device's ack topic once the batch commits."""

    topic: str
    payload: str  # packproof.watermark.Delivery.payload()


@dataclass(slots=True)
class Settled:
    """What settling a batch decided: what to write, what to acknowledge, and how many of each kind."""

    batch: IngestBatch
    acks: dict[str, DeviceAck] = field(default_factory=dict)  # device id -> its ack
    accepted: int = 0
    duplicates: int = 0  # repeats of a stored reading, or of one earlier in the batch
    conflicts: int = 0  # second versions quarantined
    implausible: int = 0  # seq jumps quarantined


def ack_topic(shipment_id: str, device_id: str) -> str:
    return f"{TOPIC_PREFIX}/{shipment_id}/{device_id}/ack"


def watermarks(states: Mapping[str, DeliveryState]) -> Watermarks:
    wm = Watermarks()
    for device_id, st in states.items():
        wm.restore(device_id, st.acked_seq, st.highest, [list(g) for g in st.gaps])
    return wm


def to_look_up(readings: Iterable[Checked], states: Mapping[str, DeliveryState]) -> dict[str, set[int]]:
    """The seqs whose stored leaf `settle` needs (`Store.existing`): those the delivery state counts as stored.

    Only such a seq can be a repeat; a resend filling a gap is new without asking.
    """
    wm = watermarks(states)
    out: dict[str, set[int]] = {}
    for c in readings:
        r = c.accepted.reading
        if wm.holds(r.device_id, r.seq):
            out.setdefault(r.device_id, set()).add(r.seq)
    return out


def settle(readings: Sequence[Checked], rejected: IngestBatch, states: Mapping[str, DeliveryState],
           stored: Mapping[str, Mapping[int, bytes]], open_excursions: Iterable[Excursion],
           next_excursion_id: int, limits: Plausibility = PLAUSIBLE) -> Settled:
    """Settle `readings` (in arrival order) against the store's state; nothing passed in is changed.

    `rejected`: what the check stage already quarantined (kept, first, in the batch to write).
    `states`: the delivery state of the batch's devices that have stored readings.
    `stored`: the stored leaf hash of each seq `to_look_up` named (device -> seq -> leaf).
    `open_excursions`, `next_excursion_id`: the batch's devices' open excursions, and the next free id.
    """
    batch = IngestBatch(quarantine=list(rejected.quarantine), counters=dict(rejected.counters))
    out = Settled(batch)
    wm = watermarks(states)
    tracker = ExcursionTracker(next_id=next_excursion_id, open_excursions=[replace(e) for e in open_excursions])
    seen: dict[str, dict[int, bytes]] = {}  # device -> seq -> leaf of the first in this batch
    touched: dict[str, str] = {}  # device -> shipment
    per_device: dict[str, DeviceBatchStats] = {}
    rows = batch.readings
    max_jump = limits.max_seq_jump
    for c in readings:
        a = c.accepted
        r = a.reading
        device_id, seq = r.device_id, r.seq
        touched[device_id] = r.shipment_id
        mine = seen.get(device_id)
        if mine is None:
            mine = seen[device_id] = {}
        first = mine.get(seq)
        if first is None:
            old = stored.get(device_id)
            first = old.get(seq) if old else None
            # The version that stands: the stored one, else this first one in the batch. A repeat
            # is judged against it, so a redelivery after a second version is still a duplicate.
            mine[seq] = a.leaf_hash if first is None else first
        if first is not None:  # a redelivery, a resend, a replay, or a second version
            if repeat(batch, c, first):
                out.duplicates += 1
            else:
                out.conflicts += 1
            continue
        highest = wm.highest(device_id)
        first_seq = a.entry.first_seq
        if seq - (highest if highest >= first_seq else first_seq - 1) > max_jump:
            quarantine(batch, c.message, seq_jump(a, highest, max_jump))
            out.implausible += 1
            continue
        at = c.message.received_at
        rows.append(ReadingRow(device_id, seq, r.shipment_id, r.ts, at, a.body, a.leaf_hash))
        if seq > highest:
            tracker.observe(device_id, r.shipment_id, seq, r.ts, c.checks)
        else:
            tracker.observe_late(device_id, r.shipment_id, seq, r.ts, c.checks)
        wm.add(device_id, seq, first_seq)
        s = per_device.get(device_id)
        if s is None:
            per_device[device_id] = DeviceBatchStats(device_id, r.shipment_id, 1, seq, seq, r.ts, r.ts, at)
        else:
            s.reading_count += 1
            if seq < s.first_seq:
                s.first_seq, s.first_ts = seq, r.ts
            if seq > s.last_seq:
                s.last_seq, s.last_ts = seq, r.ts
            if at > s.last_received_at:
                s.last_received_at = at
    for device_id, s in per_device.items():
        st = wm.state(device_id)
        s.acked_seq, s.missing, s.gaps = st.acked_seq, st.missing, wm.stored_gaps_json(device_id)
        batch.stats.append(s)
    batch.excursions = tracker.drain_changed()
    out.accepted = len(rows)
    if out.accepted:
        batch.count("readings_accepted", out.accepted)
    out.acks = {device_id: DeviceAck(ack_topic(shipment_id, device_id), wm.state(device_id).payload())
                for device_id, shipment_id in touched.items() if wm.known(device_id)}
    return out


def seq_jump(a: Accepted, highest: int, max_jump: int) -> InvalidReading:
    """Why `a`'s seq is too far above its device's highest stored seq (`highest`) to be believed.

    One signed reading at seq 2^53-1 made its device's `missing` ~9e15 and its simulator
    ignore every ack after; a seq is dense, so a jump that large is a fault or an attack.
    """
    r = a.reading
    base = max(highest, a.entry.first_seq - 1)
    return InvalidReading(
        "seq_jump",
        f"reading {r.reading_id} jumps {r.seq - base:,} seqs above the highest stored for device "
        f"{r.device_id} ({base}), more than {max_jump:,}: refused as implausible")


def repeat(batch: IngestBatch, c: Checked, first_leaf: bytes) -> bool:
    """Count a repeat of a stored reading (True), or quarantine a second version of it (False)."""
    a = c.accepted
    if a.leaf_hash == first_leaf:
        batch.count("readings_duplicate")
        return True
    quarantine(batch, c.message, InvalidReading(
        "conflicting_reading",
        f"reading {a.reading.reading_id} was already stored with different content (leaf "
        f"{first_leaf.hex()[:16]}..); a seq is never reused, so this second version is refused"))
    return False
