"""The custody intake's own checks (edge/custody_intake.py): pure, known answers."""

from __future__ import annotations

import pytest

from packproof.edge.custody_intake import tracker_refusal
from packproof.records import TrackerClaim


@pytest.mark.parametrize(("claim", "shipment", "refused"), [
    (TrackerClaim("dev-1", "S1", ()), "S1", None),  # a registered device of the event's shipment, unclaimed
    (TrackerClaim("dev-1", "S1", ("P-1",)), "S1", "already the tracker of pack P-1"),  # someone else's
    (TrackerClaim("dev-1", "S1", ("P-9",)), "S1", "a device tracks one pack"),  # even once P-9 was received
    (TrackerClaim("dev-1", None, ()), "S1", "not a registered device"),
    (TrackerClaim("dev-1", "S2", ()), "S1", "registered to shipment S2, the event names shipment S1"),
    (TrackerClaim("dev-1", "S2", ()), None, "registered to shipment S2, the event names no shipment"),
])
def test_a_tracker_is_a_registered_unclaimed_device_of_the_events_shipment(
        claim: TrackerClaim, shipment: str | None, refused: str | None) -> None:
    got = tracker_refusal("P-2", shipment, claim)
    if refused is None:
        assert got is None
    else:
        assert got is not None and got.code == "conflict" and refused in got.reason, got
