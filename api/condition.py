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
from datetime import datetime

from packproof.api.schemas import (
    Condition,
    CustodyChange,
    DisputeOut,
    ExcursionCustody,
    ExcursionOut,
    HandoverOut,
    PackCondition,
    Status,
)
from packproof.records import CustodyStep, DeviceStats, Dispute, Disputes, Excursion
from packproof.timefmt import rfc3339

SEVERITY: tuple[Status, ...] = ("ok", "warning", "no-data", "incomplete", "violated", "disputed")
RECENT_DISPUTES = 100  # disputes listed per shipment, newest first; every one is counted


def worst(statuses: Sequence[Status], default: Status = "ok") -> Status:
    return max(statuses, key=SEVERITY.index, default=default)


def excursion_out(e: Excursion, custody: ExcursionCustody | None = None) -> ExcursionOut:
    return ExcursionOut(id=e.id, device_id=e.device_id, test=e.test, quantity=e.quantity, severity=e.severity,
                        start=e.start, end=e.end, start_seq=e.start_seq, end_seq=e.end_seq, peak=e.peak,
                        limit=e.limit, limit_crossed=e.limit_crossed, readings=e.readings, open=e.open,
                        custody=custody)


# ---- custody: who was responsible when it happened (issue 15) ------------------------------

# A handover is signed at one instant, but the pallet is unloaded, moved and scanned around it: an
# excursion this close to a `handed-over` event happened "during the handover", and both sides
# are named (the forklift at the cargo terminal: the shock is minutes from the signature).
HANDOVER_WINDOW = 300.0  # seconds


def _epoch(ts: str) -> float:
    """An RFC 3339 UTC time (a reading's or an event's `ts`) as seconds; fractions beyond µs are cut."""
    head, dot, frac = ts.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{head}{dot}{frac[:6]}+00:00").timestamp()


def attribute(e: Excursion, serial: str, steps: Sequence[CustodyStep]) -> ExcursionCustody:
    """Who owned and who carried pack `serial` at `e`'s start, each custody change until its end,
    and the handovers around it: a pure function of the pack's accepted events, oldest first.

    An event counts from its own `ts` (when the party signed that it happened), not from when
    the API accepted it: a handover posted late still covers the minutes it was signed for.
    """
    start, end = _epoch(e.start), _epoch(e.end)
    owner = transporter = None
    changes: list[CustodyChange] = []
    handovers: list[HandoverOut] = []
    for s in steps:
        at = _epoch(s.ts)
        if at <= start:
            owner, transporter = s.owner, s.transporter
        elif at <= end and (s.owner, s.transporter) != ((changes[-1].owner, changes[-1].transporter) if changes
                                                          else (owner, transporter)):
            changes.append(CustodyChange(event_id=s.event_id, kind=s.kind, ts=s.ts, owner=s.owner,
                                         transporter=s.transporter))
        if s.kind == "handed-over" and start - HANDOVER_WINDOW <= at <= end + HANDOVER_WINDOW:
            handovers.append(HandoverOut(event_id=s.event_id, ts=s.ts, from_transporter=s.actor,
                                         to_transporter=s.counterpart or ""))
    return ExcursionCustody(pack=serial, owner=owner, transporter=transporter, changes=changes,
                            handovers=handovers)


def dispute_out(d: Dispute) -> DisputeOut:
    """Where each version is: the stored one by its reading id, the other by its quarantine row."""
    reading_id = f"{d.device_id}:{d.seq}" if d.seq is not None else None
    return DisputeOut(reading_id=reading_id, stored=f"/readings/{reading_id}" if reading_id else None,
                      quarantine_id=d.quarantine_id,
                      quarantined=f"/quarantine?device_id={d.device_id}&reason=conflicting_reading"
                                  f"&before={d.quarantine_id + 1}&limit=1")


def condition(shipment_id: str, profile: str, devices: Sequence[DeviceStats],
              excursions: Sequence[Excursion], now: float, stale_after: float,
              disputes: Disputes, custody: Mapping[str, tuple[str, Sequence[CustodyStep]]] | None = None,
              ) -> Condition:
    """`devices` as `Store.shipment_devices` returns them; excursions as stored; disputes
    as `Store.shipment_disputes` returns them; `custody`: device id -> (the pack it tracks, that
    pack's custody steps), as `Store.custody_of_trackers` returns them."""
    custody = custody or {}
    exc = [excursion_out(r, attribute(r, *custody[r.device_id]) if r.device_id in custody else None)
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
