"""Excursions, maintained incrementally from each reading's findings. Pure.

An excursion is a run of consecutive readings of one device for one test whose finding
has the same severity (docs/design.md): start, end, peak (the value farthest beyond the
limit) and the limit crossed. A reading with no finding for that test ends the run; a
change of severity ends it and starts another. The ingestor feeds readings in, drains
the excursions that changed once per batch, and writes them in the batch's transaction.
"""

from __future__ import annotations

from collections.abc import Iterable

from packproof.edge.thresholds import Check
from packproof.records import Excursion


class ExcursionTracker:
    """Open excursions per device and test; O(findings + open excursions) per reading."""

    def __init__(self, next_id: int = 1, open_excursions: Iterable[Excursion] = ()) -> None:
        self._next_id = next_id
        self._open: dict[str, dict[str, Excursion]] = {}
        for e in open_excursions:
            self._open.setdefault(e.device_id, {})[e.test] = e
            self._next_id = max(self._next_id, e.id + 1)
        self._changed: dict[int, Excursion] = {}

    def observe(self, device_id: str, shipment_id: str, seq: int, ts: str, checks: tuple[Check, ...]) -> None:
        opened = self._open.get(device_id)
        if not checks and not opened:
            return  # the common case: nominal reading, nothing open
        if opened is None:
            opened = self._open[device_id] = {}
        seen = set()
        for c in checks:
            seen.add(c.test)
            e = opened.get(c.test)
            if e is not None and e.severity == c.severity:
                e.end, e.end_seq = ts, seq
                e.readings += 1
                if e.worse(c.value):
                    e.peak, e.limit, e.limit_crossed = c.value, c.limit, c.limit_crossed
                self._changed[e.id] = e
                continue
            if e is not None:
                self._close(opened, e)
            e = Excursion(self._next_id, device_id, shipment_id, c.test, c.quantity, c.severity, ts, ts,
                          seq, seq, c.value, c.limit, c.limit_crossed, 1, True)
            self._next_id += 1
            opened[c.test] = e
            self._changed[e.id] = e
        for test in [t for t in opened if t not in seen]:
            self._close(opened, opened[test])
        if not opened:
            del self._open[device_id]

    def observe_late(self, device_id: str, shipment_id: str, seq: int, ts: str, checks: tuple[Check, ...]) -> None:
        """A reading older than one already observed (a resend filling a gap after an outage).

        It must not end or extend the runs that later readings built, and its findings must
        not be lost: inside an open run of the same severity it counts there (the gap was
        part of the run); otherwise each finding is an excursion of its own, already closed.
        A late nominal reading changes nothing.
        """
        opened = self._open.get(device_id, {})
        for c in checks:
            e = opened.get(c.test)
            if e is not None and e.severity == c.severity and e.start_seq <= seq <= e.end_seq:
                e.readings += 1
                if e.worse(c.value):
                    e.peak, e.limit, e.limit_crossed = c.value, c.limit, c.limit_crossed
                self._changed[e.id] = e
                continue
            e = Excursion(self._next_id, device_id, shipment_id, c.test, c.quantity, c.severity, ts, ts,
                          seq, seq, c.value, c.limit, c.limit_crossed, 1, False)
            self._next_id += 1
            self._changed[e.id] = e

    def _close(self, opened: dict[str, Excursion], e: Excursion) -> None:
        e.open = False
        del opened[e.test]
        self._changed[e.id] = e

    def drain_changed(self) -> list[Excursion]:
        out = list(self._changed.values())
        self._changed.clear()
        return out
