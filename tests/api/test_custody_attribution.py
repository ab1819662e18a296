"""Attribution of excursions to custody (api/condition.attribute): pure, known answers.

A pack made by `maker`, picked up by `road` at 10:00, handed to `air` at 12:00, delivered at
14:00; the excursion's start and end decide who is named: the carrier then, both carriers
within the handover window (five minutes here) of the handover, and each change of hands during a long excursion.
"""

from __future__ import annotations

from typing import Any

import pytest

from packproof.api.condition import attribute
from packproof.crypto import private_key_from_seed
from packproof.custody import countersign, event_from_object, event_hash, sign_event
from packproof.edge.custody import custody_intervals
from packproof.records import Excursion

UN = {"report_id": "R", "lab": "L", "date": "2025-01-01", "manual_revision": "8",
      "results": {f"T{i}": "pass" for i in range(1, 9)}}


def at(hh: int, mm: int = 0, ss: int = 0) -> str:
    return f"2026-03-02T{hh:02d}:{mm:02d}:{ss:02d}.000Z"


def journey() -> list[Any]:
    events: list[Any] = []
    head = None
    seqs: dict[str, int] = {}

    def add(actor: str, kind: str, ts: str, counter: str | None = None, **fields: Any) -> None:
        nonlocal head
        seqs[actor] = seqs.get(actor, 0) + 1
        body = {"v": 1, "kind": kind, "event_id": f"{actor}:{seqs[actor]}", "actor": actor, "ts": ts,
                "packs": ["P"], "location": {"lat": 1.5, "lon": 2.5}, "prev": {"P": head}, **fields}
        signed = sign_event(body, private_key_from_seed(actor.encode()))
        if counter:
            signed = countersign(signed, private_key_from_seed(counter.encode()))
        event = event_from_object(signed)
        head = event_hash(event)
        events.append(event)

    add("maker", "pack-registered", at(9), serial="P", model="M", chemistry="NMC", rated_wh=1.5, mass_kg=1.5,
        un38_3=UN, profile="un38.3-cell", cell_lots=[])
    add("maker", "transporter-assigned", at(9, 30), transporter="road")
    add("road", "picked-up", at(10))
    add("maker", "transporter-assigned", at(11), transporter="air")
    add("road", "handed-over", at(12), counter="air", to="air")
    add("air", "delivered", at(14), to="plant")
    return events


def excursion(start: str, end: str) -> Excursion:
    return Excursion(1, "dev", "S", "T.4", "shock.peak_g", "violation", start, end, 0, 0, 80.0, 50.0, "x", 1, False)


@pytest.mark.parametrize(("start", "end", "owners", "carriers", "changes"), [
    (at(9, 45), at(9, 45), ["maker"], [], []),  # at the maker's site: no carrier
    (at(10, 30), at(10, 31), ["maker"], ["road"], []),
    (at(12, 2), at(12, 2), ["maker"], ["road", "air"], []),  # during the handover: both sides
    (at(11, 54), at(11, 56), ["maker"], ["road"], []),  # six minutes before it: outside the window
    (at(11, 57), at(12, 3), ["maker"], ["road", "air"], [("carrier", "air")]),  # across the handover
    (at(12, 5, 1), at(13), ["maker"], ["air"], []),  # just beyond the window
    (at(10, 30), at(13), ["maker"], ["road"], [("carrier", "air")]),  # a long excursion: the change is listed
])
def test_excursions_name_who_held_the_pack(start: str, end: str, owners: list[str], carriers: list[str],
                                           changes: list[tuple[str, str]]) -> None:
    got = attribute(excursion(start, end), custody_intervals("P", journey()), 300.0)
    assert (got.pack, got.owners, got.carriers) == ("P", owners, carriers)
    assert [(c.role, c.party) for c in got.changes] == changes


def test_the_window_is_the_callers() -> None:
    """The same shock five minutes after the handover names both carriers with a five-minute window,
    only the new one with four (`packproof run` scales the window to its simulated journey)."""
    spans = custody_intervals("P", journey())
    assert attribute(excursion(at(12, 5), at(12, 5)), spans, 300.0).carriers == ["road", "air"]
    assert attribute(excursion(at(12, 5), at(12, 5)), spans, 240.0).carriers == ["air"]
    before = excursion(at(11, 55, 30), at(11, 55, 30))  # four and a half minutes before it
    assert attribute(before, spans, 300.0).carriers == ["road", "air"]
    assert attribute(before, spans, 240.0).carriers == ["road"]
