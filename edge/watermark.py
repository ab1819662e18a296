"""Per-device delivery watermarks: up to which seq everything is stored, and what is missing. Pure.

A device's seqs are dense from the first one we stored. The watermark is the highest seq
such that every seq from the first up to it is stored; seqs stored above it wait in a
set until the gap below them fills. The ingestor publishes the watermark (retained, on the
device's ack topic) after the batch holding it commits, so a device can drop exactly what
is durably stored, and a gap is visible as `missing` > 0 instead of as silence.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class _Device:
    acked: int  # every seq from the first stored one up to this is stored
    above: set[int] = field(default_factory=set)  # stored seqs above acked + 1
    highest: int = -1


class Watermarks:
    def __init__(self) -> None:
        self._devices: dict[str, _Device] = {}

    def load(self, device_id: str, acked: int, stored_above: list[int]) -> None:
        """State from the store after a restart."""
        self._devices[device_id] = _Device(acked, set(stored_above), max([acked, *stored_above]))

    def add(self, device_id: str, seq: int) -> None:
        d = self._devices.get(device_id)
        if d is None:
            self._devices[device_id] = _Device(seq, highest=seq)
            return
        d.highest = max(d.highest, seq)
        if seq == d.acked + 1:
            d.acked = seq
            above = d.above
            while d.acked + 1 in above:
                d.acked += 1
                above.discard(d.acked)
        elif seq > d.acked + 1:
            d.above.add(seq)
        # seq <= acked: a reading from before the first one we stored, or already counted

    def state(self, device_id: str) -> tuple[int, int]:
        """(watermark, how many seqs between it and the highest stored are missing)."""
        d = self._devices[device_id]
        return d.acked, d.highest - d.acked - len(d.above)
