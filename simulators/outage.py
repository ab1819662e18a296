"""When each simulated tracker loses its link. Pure: a function of the seed, the device and time.

Why a schedule and not random calls in the publishing loop: the same seed gives the same
outages, so a run that lost data can be repeated, and the schedule is tested without a
broker or a clock.

- Which devices: `fraction` of the fleet (at least one when fraction > 0), picked with
  the fleet seed.
- Periodic (default): every chosen device is cut at every, 2*every, ... seconds for
  `duration` seconds, together (a truck entering a tunnel takes its packs with it).
- Random: each chosen device's outages start independently, the time from the end of
  one to the start of the next exponential with mean `every`.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(slots=True)
class OutageSchedule:
    device_ids: Sequence[str]
    every: float
    duration: float = 10.0
    fraction: float = 0.25
    seed: int = 1
    randomly: bool = False
    affected: frozenset[str] = field(init=False)
    _starts: dict[str, list[float]] = field(init=False, default_factory=dict)
    _rngs: dict[str, random.Random] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        if self.every <= 0 or self.duration <= 0:
            raise ValueError(f"outages need every > 0 and duration > 0 s, got {self.every} and {self.duration}")
        if not 0 <= self.fraction <= 1:
            raise ValueError(f"the fraction of devices with outages must be in [0, 1], got {self.fraction}")
        ids = sorted(self.device_ids)
        k = min(len(ids), max(1, round(self.fraction * len(ids)))) if self.fraction > 0 else 0
        self.affected = frozenset(random.Random(f"outage-devices/{self.seed}").sample(ids, k))

    def down(self, device_id: str, t: float) -> bool:
        """Is the device's link cut `t` seconds after the fleet started?"""
        if device_id not in self.affected or t < 0:
            return False
        if not self.randomly:
            return t >= self.every and t % self.every < self.duration
        starts = self.starts_until(device_id, t)
        i = bisect.bisect_right(starts, t) - 1
        return i >= 0 and t < starts[i] + self.duration

    def starts_until(self, device_id: str, t: float) -> list[float]:
        """Random mode: the device's outage starts, drawn up to the first one after `t`."""
        starts = self._starts.setdefault(device_id, [])
        rng = self._rngs.get(device_id)
        if rng is None:
            rng = self._rngs[device_id] = random.Random(f"outage/{self.seed}/{device_id}")
        while not starts or starts[-1] <= t:
            after = starts[-1] + self.duration if starts else 0.0
            starts.append(after + rng.expovariate(1.0 / self.every))
        return starts
