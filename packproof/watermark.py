"""Per-device delivery watermarks: up to which seq everything is stored, and what is missing. Pure.

A device's seqs are dense from its first seq (the seq its first registered key is valid
from, normally 0). The watermark is the highest seq such that every seq from the first up
to it is stored; seqs stored above it are kept as runs (`[lo, hi]`, sorted, disjoint) until
the gaps below them fill. Runs, not a set of seqs: a gap that never fills (a tracker whose
buffer overflowed) must not grow memory with every reading stored above it.

The ingestor publishes the state (retained, on the device's ack topic) after the batch
holding it commits, so a device can drop exactly what is durably stored and resend exactly
what is missing, and a gap is visible as `missing` > 0 instead of as silence.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field

MAX_GAPS = 16  # ranges listed in an acknowledgement; the rest show once these fill


def gaps_json(gaps: Iterable[tuple[int, int]]) -> str:
    """Seq ranges as compact JSON, as the store keeps them and the ack carries them."""
    return "[" + ",".join(f"[{a},{b}]" for a, b in gaps) + "]"


@dataclass(frozen=True, slots=True)
class Delivery:
    """What a device is told: stored up to `acked_seq`; `gaps` (inclusive ranges) are missing below `highest`."""

    acked_seq: int
    missing: int
    highest: int
    gaps: tuple[tuple[int, int], ...]

    def payload(self) -> str:
        return (f'{{"acked_seq":{self.acked_seq},"missing":{self.missing},'
                f'"highest":{self.highest},"gaps":{gaps_json(self.gaps)}}}')


@dataclass(slots=True)
class _Device:
    acked: int  # every seq from the first one up to this is stored
    runs: list[list[int]] = field(default_factory=list)  # stored [lo, hi] above acked + 1, sorted, disjoint
    stored_above: int = 0  # seqs in runs

    @property
    def highest(self) -> int:
        return self.runs[-1][1] if self.runs else self.acked

    def add(self, seq: int) -> None:
        if seq <= self.acked:
            return  # already counted (or older than the device's first seq)
        runs = self.runs
        if seq == self.acked + 1:
            self.acked = seq
            if runs and runs[0][0] == seq + 1:
                self.acked = runs[0][1]
                self.stored_above -= runs[0][1] - runs[0][0] + 1
                del runs[0]
            return
        i = bisect_left(runs, [seq])
        if i < len(runs) and runs[i][0] == seq:
            return
        if i > 0 and runs[i - 1][1] >= seq:
            return
        joins_left = i > 0 and runs[i - 1][1] == seq - 1
        joins_right = i < len(runs) and runs[i][0] == seq + 1
        if joins_left and joins_right:
            runs[i - 1][1] = runs[i][1]
            del runs[i]
        elif joins_left:
            runs[i - 1][1] = seq
        elif joins_right:
            runs[i][0] = seq
        else:
            runs.insert(i, [seq, seq])
        self.stored_above += 1

    def holds(self, seq: int) -> bool:
        """Is `seq` counted as stored (or below the device's first seq)? Exact: runs and gaps are complete."""
        if seq <= self.acked:
            return True
        i = bisect_right(self.runs, seq, key=lambda run: run[0]) - 1
        return i >= 0 and self.runs[i][1] >= seq

    def gaps(self) -> list[tuple[int, int]]:
        out, below = [], self.acked
        for lo, hi in self.runs:
            out.append((below + 1, lo - 1))
            below = hi
        return out

    def delivery(self) -> Delivery:
        return Delivery(self.acked, self.highest - self.acked - self.stored_above, self.highest,
                        tuple(self.gaps()[:MAX_GAPS]))


class Watermarks:
    def __init__(self) -> None:
        self._devices: dict[str, _Device] = {}

    def restore(self, device_id: str, acked: int, highest: int, gaps: list[list[int]]) -> None:
        """State as the store keeps it: the watermark, the highest stored seq and every gap between."""
        d = _Device(acked)
        below = acked
        for lo, hi in gaps:
            if lo > below + 1:
                d.runs.append([below + 1, lo - 1])
            below = hi
        if highest > below:
            d.runs.append([below + 1, highest])
        d.stored_above = sum(hi - lo + 1 for lo, hi in d.runs)
        self._devices[device_id] = d

    def add(self, device_id: str, seq: int, first_seq: int = 0) -> None:
        """Count `seq` as stored; `first_seq`: where the device's seqs begin (known from its registration)."""
        d = self._devices.get(device_id)
        if d is None:
            d = self._devices[device_id] = _Device(min(first_seq, seq) - 1)
        d.add(seq)

    def holds(self, device_id: str, seq: int) -> bool:
        d = self._devices.get(device_id)
        return d is not None and d.holds(seq)

    def highest(self, device_id: str) -> int:
        """The highest seq counted as stored; -1 for a device with none."""
        d = self._devices.get(device_id)
        return d.highest if d is not None else -1

    def known(self, device_id: str) -> bool:
        return device_id in self._devices

    def state(self, device_id: str) -> Delivery:
        return self._devices[device_id].delivery()

    def stored_gaps_json(self, device_id: str) -> str:
        """Every gap (the ack lists at most MAX_GAPS): what the store keeps, so the state can be restored."""
        return gaps_json(self._devices[device_id].gaps())
