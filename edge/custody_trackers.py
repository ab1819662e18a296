"""Which pack a tracker rides on (issue 15): the one rule that lets the condition report name owners
and carriers from a device's excursions without letting a party claim someone else's device.

A `pack-registered` event names the device id of the pack's sensor (`tracker`). The condition
report reads every excursion of that device as the pack's (api/condition.py), so a claim is
accepted only when it cannot move an existing attribution: the device is a registered one, of
the very shipment the event names (a device belongs to one shipment for life: the registry's
`devices` row), and no pack names it yet. Once a pack names a tracker it keeps it: its readings
over the whole journey are that pack's, and a second pack naming it, even after the first was
received, would take over the first one's history. Pure: the caller reads the `TrackerClaim`
inside its accept transaction (`Store.custody_tracker_claim`), so two racing claims are decided
one after the other; the store's unique index on the tracker is the backstop.
"""

from __future__ import annotations

from packproof.edge.custody import Refused
from packproof.records import TrackerClaim


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
