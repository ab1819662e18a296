"""Sensor signals of a pack in transit. Pure and deterministic.

Sample k describes the window at simulated time k·step_s from departure. Each sample
draws its noise from a generator seeded by a hash of (seed, device_id, seq), so
`sample(seq)` is reproducible in any order, and a device restarted mid-journey carries
on exactly where it was. What each quantity follows:

- temperature: ambient with a day cycle, plus solar gain for a steel container in the
  sun, seen through the container's thermal lag (a first-order filter, computed in
  closed form for the sinusoid so no history is needed);
- vibration: a dominant frequency and peak g typical of the transport mode (road
  8-40 Hz, rail 5-60 Hz, sea 1-15 Hz, air 60-180 Hz in flight);
- shock: most windows have none; rare handling bumps of 0.5-2.5 g for 5-20 ms;
- pressure: ~101 kPa on the ground with weather drift; air legs climb to a cabin
  altitude (~75 kPa in a pressurised hold) and descend;
- position: linear interpolation between the waypoints of each leg.

Anomalies (scenario events) override one quantity over a window of samples.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

MODES = ("road", "rail", "sea", "air")

# mode -> (freq range Hz, peak g range)
_VIBRATION = {
    "road": ((8.0, 40.0), (0.2, 0.75)),
    "rail": ((5.0, 60.0), (0.1, 0.6)),
    "sea": ((1.0, 15.0), (0.05, 0.3)),
    "air": ((60.0, 180.0), (0.3, 1.5)),
}


@dataclass(frozen=True, slots=True)
class Leg:
    mode: str
    start: tuple[float, float]  # lat, lon
    end: tuple[float, float]
    duration_s: float
    cruise_kpa: float = 75.0  # air legs: cabin pressure at cruise


@dataclass(frozen=True, slots=True)
class Sample:
    temperature_c: float
    vib_peak_g: float
    vib_freq_hz: float
    shock_peak_g: float
    shock_duration_ms: float
    pressure_kpa: float
    lat: float
    lon: float


Override = Callable[[Sample, float, random.Random], Sample]


@dataclass(frozen=True, slots=True)
class Anomaly:
    """Replace part of the signal for samples first..last (inclusive)."""

    first: int
    last: int
    apply: Override


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    legs: tuple[Leg, ...]
    ambient_c: float = 18.0  # daily mean
    day_swing_c: float = 6.0
    solar_gain_c: float = 0.0  # extra daytime heating of a container in the sun
    anomalies: tuple[Anomaly, ...] = field(default=())


def _rng(seed: int, device_id: str, seq: int) -> random.Random:
    h = hashlib.blake2b(f"{seed}/{device_id}/{seq}".encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(h, "big"))


def _leg_at(legs: tuple[Leg, ...], t: float) -> tuple[Leg, float]:
    """The leg at time t and the fraction of it done (the last leg holds at its end)."""
    for leg in legs:
        if t < leg.duration_s:
            return leg, t / leg.duration_s
        t -= leg.duration_s
    return legs[-1], 1.0


def _air_pressure(leg: Leg, frac: float) -> float:
    """Ground -> cabin altitude over the first 15% of the leg, back over the last 15%."""
    ground = 101.3
    if frac < 0.15:
        return ground + (leg.cruise_kpa - ground) * frac / 0.15
    if frac > 0.85:
        return leg.cruise_kpa + (ground - leg.cruise_kpa) * (frac - 0.85) / 0.15
    return leg.cruise_kpa


class DeviceSignal:
    def __init__(self, scenario: str, seed: int, device_id: str, step_s: float = 60.0) -> None:
        from simulators.scenarios import SCENARIOS

        if scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}; known: {', '.join(sorted(SCENARIOS))}")
        self.scenario = SCENARIOS[scenario]
        self.seed, self.device_id, self.step_s = seed, device_id, step_s
        base = _rng(seed, device_id, -1)
        self._phase = base.uniform(0, 2 * math.pi)  # local time of day at departure
        self._offset_c = base.uniform(-1.0, 1.0)  # this pack's position in the container
        self._weather = base.uniform(-1.5, 1.5)

    def sample(self, seq: int) -> Sample:
        sc = self.scenario
        rng = _rng(self.seed, self.device_id, seq)
        t = seq * self.step_s
        leg, frac = _leg_at(sc.legs, t)
        # Temperature: daily sinusoid seen through a first-order lag of tau = 2 h.
        w = 2 * math.pi / 86400
        tau = 7200.0
        gain = 1 / math.sqrt(1 + (w * tau) ** 2)
        lag = math.atan(w * tau)
        day = math.sin(w * t + self._phase - lag)
        sun = max(0.0, day) * sc.solar_gain_c
        temperature = sc.ambient_c + self._offset_c + gain * sc.day_swing_c * day + sun + rng.gauss(0, 0.15)
        (f_lo, f_hi), (g_lo, g_hi) = _VIBRATION[leg.mode]
        if leg.mode == "air" and not 0.15 <= frac <= 0.85:
            f_lo, f_hi, g_hi = 20.0, 60.0, 0.6  # taxi, climb and descent: rougher, lower
        freq = rng.uniform(f_lo, f_hi)
        peak = rng.uniform(g_lo, g_hi)
        shock_g = shock_ms = 0.0
        if rng.random() < 0.01:
            shock_g, shock_ms = rng.uniform(0.5, 2.5), rng.uniform(5.0, 20.0)
        pressure = _air_pressure(leg, frac) if leg.mode == "air" else 101.3 + self._weather
        pressure += rng.gauss(0, 0.05)
        lat = leg.start[0] + (leg.end[0] - leg.start[0]) * frac
        lon = leg.start[1] + (leg.end[1] - leg.start[1]) * frac
        s = Sample(temperature, peak, freq, shock_g, shock_ms, pressure, lat, lon)
        for a in sc.anomalies:
            if a.first <= seq <= a.last:
                s = a.apply(s, (seq - a.first) / max(1, a.last - a.first), rng)
        return Sample(round(s.temperature_c, 2), round(s.vib_peak_g, 3), round(s.vib_freq_hz, 1),
                      round(s.shock_peak_g, 2), round(s.shock_duration_ms, 2), round(max(0.0, s.pressure_kpa), 2),
                      round(s.lat, 5), round(s.lon, 5))
