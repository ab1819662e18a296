"""A shipment's condition from maintained aggregates: pure, no I/O.

docs/design.md: `violated` if any pack has an excursion, `warning` for warning-band events
only, `ok` otherwise; packs silent for longer than `stale_after` are listed as stale
(not knowing is not the same as nothing having happened). Two statuses say the record
itself is not whole: `incomplete`, readings are missing (a gap may hide an excursion, so
it outranks `warning`), and `disputed`, a reading arrived in two different versions (it
outranks `violated`: the violation may be the forged version's, and either way a person
must look). `no-data`: a pack (or a shipment with no pack) that has not one reading stored:
nothing is known of it, which must not read as `ok`; it outranks `warning` (whatever it went
through is unseen) and ranks below `incomplete`, whose gaps are known readings lost after it
was heard from. `ok` therefore means: every reading arrived, once, and all were in the envelope.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from packproof.api.schemas import (
    Condition,
    CustodyChange,
    DisputeOut,
    ExcursionCustody,
    ExcursionOut,
    PackCondition,
    Status,
)
from packproof.custody import CustodyEvent, parse_event
from packproof.edge.custody import CustodyIntervals, custody_intervals
from packproof.records import DeviceStats, Dispute, Disputes, Excursion, TrackedPack
from packproof.timefmt import epoch_of, rfc3339

SEVERITY: tuple[Status, ...] = ("ok", "warning", "no-data", "incomplete", "violated", "disputed")
RECENT_DISPUTES = 100  # disputes listed per shipment, newest first; every one is counted


def worst(statuses: Sequence[Status], default: Status = "ok") -> Status:
    return max(statuses, key=SEVERITY.index, default=default)


def excursion_out(e: Excursion, custody: ExcursionCustody | None = None) -> ExcursionOut:
    return ExcursionOut(id=e.id, device_id=e.device_id, test=e.test, quantity=e.quantity, severity=e.severity,
                        start=e.start, end=e.end, start_seq=e.start_seq, end_seq=e.end_seq, peak=e.peak,
                        limit=e.limit, limit_crossed=e.limit_crossed, readings=e.readings, open=e.open,
                        custody=custody)


def dispute_out(d: Dispute) -> DisputeOut:
    """Where each version is: the stored one by its reading id, the other by its quarantine row."""
    reading_id = f"{d.device_id}:{d.seq}" if d.seq is not None else None
    return DisputeOut(reading_id=reading_id, stored=f"/readings/{reading_id}" if reading_id else None,
                      quarantine_id=d.quarantine_id,
                      quarantined=f"/quarantine?device_id={d.device_id}&reason=conflicting_reading"
                                  f"&before={d.quarantine_id + 1}&limit=1")


# ---- custody: who was responsible when it happened (issue 15) ------------------------------

# A handover is signed at one instant, but a pallet is unloaded, moved and scanned around it: an
# excursion this close to a change of hands happened "during the handover", and both sides are
# named (the forklift at the cargo terminal: the shock is minutes from the signatures). The
# window is in the time base of the readings' and events' `ts`: `api.handover_window_s`
# (app/config.py), which `packproof run` scales to its simulated journey.
DEFAULT_HANDOVER_WINDOW_S = 300.0


def attribute(e: Excursion, custody: CustodyIntervals, window_s: float) -> ExcursionCustody:
    """Who owned and who carried the pack at `e`'s start (both sides within `window_s` of a change of
    hands), and each change of hands until its end: read off the pack's intervals
    (`packproof.edge.custody`, the one home of who held it when). An event counts from its own
    `ts`, when its party signed it happened."""
    start, end = epoch_of(e.start), epoch_of(e.end)
    at = custody.at(start, window_s)
    changes = [CustodyChange(role=role, party=i.party, event_id=i.start_event, ts=i.start)
               for role, spans in (("owner", custody.owners), ("carrier", custody.carriers))
               for i in spans if start < epoch_of(i.start) <= end]
    return ExcursionCustody(pack=custody.serial, owners=list(at.owners), carriers=list(at.carriers),
                            changes=sorted(changes, key=lambda c: (epoch_of(c.ts), c.role)))


def tracked_intervals(tracked: Mapping[str, TrackedPack]) -> dict[str, CustodyIntervals]:
    """Device id -> the custody intervals of the pack it tracks, from `Store.custody_of_trackers`.

    Each accepted event is parsed once however many packs it touches: a pallet's events name
    all its packs."""
    parsed: dict[bytes, CustodyEvent] = {}
    out = {}
    for device_id, pack in tracked.items():
        events = [parsed[b] if b in parsed else parsed.setdefault(b, parse_event(b)) for b in pack.bodies]
        out[device_id] = custody_intervals(pack.serial, events)
    return out


def condition(shipment_id: str, profile: str, devices: Sequence[DeviceStats],
              excursions: Sequence[Excursion], now: float, stale_after: float,
              disputes: Disputes, custody: Mapping[str, CustodyIntervals] | None = None,
              handover_window_s: float = DEFAULT_HANDOVER_WINDOW_S) -> Condition:
    """`devices` as `Store.shipment_devices` returns them; excursions as stored; disputes
    as `Store.shipment_disputes` returns them; `custody`: device id -> the custody intervals of
    the pack it tracks (`tracked_intervals`); `handover_window_s`: see `attribute`."""
    custody = custody or {}
    exc = [excursion_out(r, attribute(r, custody[r.device_id], handover_window_s) if r.device_id in custody
                         else None)
           for r in excursions]
    per_pack: dict[str, list[Status]] = {}
    for e in exc:
        per_pack.setdefault(e.device_id, []).append("violated" if e.severity == "violation" else "warning")
    packs = []
    for d in devices:
        last_rx = d.last_received_at
        stale = last_rx is None or now - last_rx > stale_after
        disputed = disputes.counts.get(d.device_id, 0)
        statuses = per_pack.get(d.device_id, [])
        if not d.readings:
            statuses = [*statuses, "no-data"]
        if d.missing:
            statuses = [*statuses, "incomplete"]
        if disputed:
            statuses = [*statuses, "disputed"]
        packs.append(PackCondition(
            device_id=d.device_id, status=worst(statuses), stale=stale,
            trust="device-signature" if d.signed else "ingestor",
            readings=d.readings or 0, sealed=d.sealed or 0, first_seq=d.first_seq, last_seq=d.last_seq,
            last_reading_ts=d.last_ts, last_seen=rfc3339(last_rx) if last_rx else None,
            acked_seq=d.acked_seq, missing=d.missing or 0, gaps=json.loads(d.gaps_json) if d.gaps_json else [],
            unsealed=(d.readings or 0) - (d.sealed or 0), disputed=disputed,
            disputes=[dispute_out(x) for x in disputes.recent if x.device_id == d.device_id]))
    return Condition(
        shipment_id=shipment_id, profile=profile, status=worst([p.status for p in packs], default="no-data"),
        stale_packs=[p.device_id for p in packs if p.stale],
        readings=sum(p.readings for p in packs), sealed=sum(p.sealed for p in packs),
        missing=sum(p.missing for p in packs), unsealed=sum(p.unsealed for p in packs),
        disputed=sum(p.disputed for p in packs), packs=packs, excursions=exc, as_of=rfc3339(now))
