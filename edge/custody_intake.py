"""What the custody intake checks beside the pure machine (edge/custody.py), from what the machine
does not hold: the registry's devices and the clock. Pure: the caller reads the inputs inside
its accept transaction (api/routes/custody.py `accept_event`).

Which pack a tracker rides on (issue 15) is the rule that lets the condition report name owners
and carriers from a device's excursions without letting a party claim someone else's device.
A `pack-registered` event names the device id of the pack's sensor (`tracker`). The condition
report reads every excursion of that device as the pack's (api/condition.py), so a claim is
accepted only when it cannot move an existing attribution: the device is a registered one, of
the very shipment the event names (a device belongs to one shipment for life: the registry's
`devices` row), and no pack names it yet. Once a pack names a tracker it keeps it: its readings
over the whole journey are that pack's, and a second pack naming it, even after the first was
received, would take over the first one's history. The caller reads the `TrackerClaim` inside
its accept transaction (`Store.custody_tracker_claim`), so two racing claims are decided one
after the other; the store's unique index on the tracker is the backstop.

An event's `ts` is what its party claims, and attribution reads it: it must be plausible by the
readings' own bounds (`Plausibility`, edge/decode.py: one rule for both).
"""

from __future__ import annotations

from packproof.custody import CustodyEvent
from packproof.edge.custody import Refused
from packproof.edge.decode import Plausibility
from packproof.records import TrackerClaim
from packproof.timefmt import epoch_of


def tracker_refusal(serial: str, shipment_id: str | None, claim: TrackerClaim) -> Refused | None:
    """None when pack `serial`, registered in `shipment_id`, may name `claim.device_id` as its tracker;
    else a `conflict` naming what stands in the way."""
    device = claim.device_id
    if claim.packs:
        return Refused("conflict", f"tracker {device} is already the tracker of pack {', '.join(claim.packs)}; "
                                   "a device tracks one pack")
    if claim.shipment_id is None:
        return Refused("conflict", f"tracker {device} is not a registered device: register it "
                                   "(`packproof devices add`) before a pack names it")
    if claim.shipment_id != shipment_id:
        named = f"shipment {shipment_id}" if shipment_id else "no shipment"
        return Refused("conflict", f"tracker {device} is registered to shipment {claim.shipment_id}, the event "
                                   f"names {named}: a pack's tracker must ride in the pack's shipment")
    return None


def implausible_ts(event: CustodyEvent, now: float, limits: Plausibility) -> Refused | None:
    """`out-of-order` for an event dated before `limits.earliest_ts` or more than `limits.max_clock_ahead_s`
    after `now`: a party cannot date an event into the future, where the condition report would
    read it. Checked once the signature holds, so the refusal is that party's (kept whole)."""
    if limits.before_earliest(event.ts):
        return Refused("out-of-order", f"event {event.event_id} is dated {event.ts}, before "
                                       f"{limits.earliest_ts}Z: its party's clock is unset or wrong")
    if (ahead := limits.seconds_ahead(epoch_of(event.ts), now)) is not None:
        return Refused("out-of-order", f"event {event.event_id} is dated {event.ts}, {ahead:,.0f} s ahead of "
                                       f"the API's clock (more than {limits.max_clock_ahead_s:g} s): its party's "
                                       "clock is wrong, or it is dated ahead of what happened")
    return None
