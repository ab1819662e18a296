"""A pack's journey, as scenarios are written: waypoints, legs and routes, the climate on the
way and the anomalies a scenario injects (Heat, Decompression, RoughStretch, Drop). Pure data.

scenarios.py writes the named journeys in these types; signals.py turns a journey into sensor
readings. Both import this module and neither imports the other's direction back, so the
scenarios can name their types without a circle through the signal code.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, get_args

Mode = Literal["road", "rail", "sea", "air"]
MODES: tuple[Mode, ...] = get_args(Mode)

HOUR = 3600.0
DAY = 86400.0
SEA_LEVEL_KPA = 101.325

class Waypoint(NamedTuple):
    name: str
    lat: float
    lon: float
    elevation_m: float = 0.0


@dataclass(frozen=True, slots=True)
class Leg:
    """One leg of a route. A leg whose start and end are the same place is a dwell."""

    mode: Mode
    start: Waypoint
    end: Waypoint
    duration_s: float
    # Air legs only: ground time at each end, cabin climb and descent, cabin pressure at
    # cruise. Scaled down together when they would leave less than 10% of the leg to cruise.
    taxi_s: float = 600.0
    climb_s: float = 1200.0
    descent_s: float = 1500.0
    cruise_kpa: float = 75.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown transport mode {self.mode!r}; known: {', '.join(MODES)}")
        if not (math.isfinite(self.duration_s) and self.duration_s > 0):
            raise ValueError(f"leg {self.start.name} -> {self.end.name}: duration_s must be > 0, got {self.duration_s}")
        for name in ("taxi_s", "climb_s", "descent_s", "cruise_kpa"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"leg {self.start.name} -> {self.end.name}: {name} must be >= 0, got {value}")
        for w in (self.start, self.end):
            if not (-90 <= w.lat <= 90 and -180 <= w.lon <= 180):
                raise ValueError(f"waypoint {w.name}: ({w.lat}, {w.lon}) is not a latitude/longitude")

    @property
    def dwell(self) -> bool:
        return (self.start.lat, self.start.lon) == (self.end.lat, self.end.lon)

    def air_phases(self) -> tuple[float, float, float]:
        """(taxi, climb, descent) seconds as flown on this leg."""
        overhead = 2 * self.taxi_s + self.climb_s + self.descent_s
        scale = min(1.0, 0.9 * self.duration_s / overhead) if overhead > 0 else 1.0
        return self.taxi_s * scale, self.climb_s * scale, self.descent_s * scale


@dataclass(frozen=True, slots=True)
class Route:
    """Legs travelled one after the other; each starts where the previous one ended."""

    legs: tuple[Leg, ...]
    _starts: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        legs = tuple(self.legs)
        if not legs:
            raise ValueError("a route needs at least one leg")
        for a, b in zip(legs, legs[1:], strict=False):
            if a.end != b.start:
                raise ValueError(f"route is not continuous: a leg ends at {a.end.name}, "
                                 f"the next starts at {b.start.name}")
        starts, t = [], 0.0
        for leg in legs:
            starts.append(t)
            t += leg.duration_s
        object.__setattr__(self, "legs", legs)
        object.__setattr__(self, "_starts", (*starts, t))

    @property
    def duration_s(self) -> float:
        return self._starts[-1]

    @property
    def waypoints(self) -> tuple[Waypoint, ...]:
        return (self.legs[0].start, *(leg.end for leg in self.legs))

    def leg_at(self, t: float) -> tuple[int, float]:
        """(index of the leg under way at time t, seconds into it); index -1 once arrived."""
        if t >= self._starts[-1]:
            return -1, t - self._starts[-1]
        i = bisect.bisect_right(self._starts, t) - 1
        return i, t - self._starts[i]


@dataclass(frozen=True, slots=True)
class Climate:
    """Ambient conditions of a shipment and the thermal behaviour of what carries it."""

    mean_c: float = 18.0  # daily mean ambient
    swing_c: float = 6.0  # half the day-night range
    solar_gain_c: float = 0.0  # extra heating at noon of a container in the sun; 0 for a shaded hold
    lag_s: float = 2 * HOUR  # first-order time constant of container and pack
    start_c: float | None = None  # pack temperature at departure; None: already settled
    depart_hour: float | None = None  # local solar time at departure; None: drawn per (seed, scenario)


@dataclass(frozen=True, slots=True)
class Ramp:
    """An envelope 0 -> 1 -> 0: starts at start_s, rises over rise_s, holds, falls over fall_s."""

    start_s: float
    rise_s: float
    hold_s: float
    fall_s: float

    def __post_init__(self) -> None:
        if min(self.start_s, self.rise_s, self.hold_s, self.fall_s) < 0:
            raise ValueError(f"ramp times must be >= 0: {self}")

    @property
    def end_s(self) -> float:
        return self.start_s + self.rise_s + self.hold_s + self.fall_s

    def weight(self, t: float) -> float:
        x = t - self.start_s
        if x < 0:
            return 0.0
        if x < self.rise_s:
            return smoothstep(x / self.rise_s)
        x -= self.rise_s + self.hold_s
        if x <= 0:
            return 1.0
        if x < self.fall_s:
            return smoothstep(1.0 - x / self.fall_s)
        return 0.0


@dataclass(frozen=True, slots=True)
class Heat:
    """Temperature pulled toward a peak (each pack draws its own from the range)."""

    when: Ramp
    peak_c: tuple[float, float]


@dataclass(frozen=True, slots=True)
class Decompression:
    """Pressure pulled down toward a floor (each pack draws its own from the range)."""

    when: Ramp
    floor_kpa: tuple[float, float]


@dataclass(frozen=True, slots=True)
class RoughStretch:
    """Vibration in these ranges for every window overlapping [start_s, end_s)."""

    start_s: float
    end_s: float
    peak_g: tuple[float, float]
    freq_hz: tuple[float, float]


@dataclass(frozen=True, slots=True)
class Drop:
    """One half-sine shock pulse at at_s, in the window that contains that instant."""

    at_s: float
    peak_g: tuple[float, float]
    duration_ms: tuple[float, float]


Anomaly = Heat | Decompression | RoughStretch | Drop


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str
    route: Route
    climate: Climate = Climate()
    anomalies: tuple[Anomaly, ...] = ()
    crosses: str | None = None  # the UN 38.3 test an excursion scenario is built to cross
    profile: str = "un38.3-cell"


def smoothstep(x: float) -> float:
    """3x^2 - 2x^3 on [0, 1]: a ramp that starts and ends flat (climbs, descents, heat waves)."""
    return x * x * (3.0 - 2.0 * x)
