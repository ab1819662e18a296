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
from collections.abc import Sequence

from packproof.api.schemas import Condition, DisputeOut, ExcursionOut, PackCondition, Status
from packproof.records import DeviceStats, Dispute, Disputes, Excursion
from packproof.timefmt import rfc3339

SEVERITY: tuple[Status, ...] = ("ok", "warning", "no-data", "incomplete", "violated", "disputed")
RECENT_DISPUTES = 100  # disputes listed per shipment, newest first; every one is counted


def worst(statuses: Sequence[Status], default: Status = "ok") -> Status:
    return max(statuses, key=SEVERITY.index, default=default)


def excursion_out(e: Excursion) -> ExcursionOut:
    return ExcursionOut(id=e.id, device_id=e.device_id, test=e.test, quantity=e.quantity, severity=e.severity,
                        start=e.start, end=e.end, start_seq=e.start_seq, end_seq=e.end_seq, peak=e.peak,
                        limit=e.limit, limit_crossed=e.limit_crossed, readings=e.readings, open=e.open)


def dispute_out(d: Dispute) -> DisputeOut:
    """Where each version is: the stored one by its reading id, the other by its quarantine row."""
    reading_id = f"{d.device_id}:{d.seq}" if d.seq is not None else None
    return DisputeOut(reading_id=reading_id, stored=f"/readings/{reading_id}" if reading_id else None,
                      quarantine_id=d.quarantine_id,
                      quarantined=f"/quarantine?device_id={d.device_id}&reason=conflicting_reading"
                                  f"&before={d.quarantine_id + 1}&limit=1")


def condition(shipment_id: str, profile: str, devices: Sequence[DeviceStats],
              excursions: Sequence[Excursion], now: float, stale_after: float,
              disputes: Disputes) -> Condition:
    """`devices` as `Store.shipment_devices` returns them; excursions as stored; disputes
    as `Store.shipment_disputes` returns them."""
    exc = [excursion_out(r) for r in excursions]
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
