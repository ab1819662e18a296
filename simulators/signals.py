"""Sensor signals of a battery pack in transit: pure, deterministic, cheap.

`DeviceSignal(scenario, seed, device_id, step_s).sample(seq)` is the reading window
that starts at simulated time `seq * step_s` after departure. No I/O, no wall clock,
no shared state:

- Constants of a device (its place in the container, sensor offsets, the level an
  injected excursion reaches on it) come from `random.Random` seeded by a hash of
  (seed, device_id). Constants shared by every pack of a shipment (departure time of
  day, weather, road roughness) come from a hash of (seed, scenario name).
- The noise of one window comes from a BLAKE2b hash of (seed, scenario, device_id, seq),
  read as sixteen 32-bit uniforms. `sample(seq)` is therefore the same whatever was
  sampled before, in any order, in any process, on any Python version (no reliance on
  the `random` module's unversioned distribution algorithms), and a device restarted
  mid-journey carries on exactly where it was.

What each quantity follows:

- temperature: ambient with a day cycle (warmest at 15:00) plus, for a container in the
  sun, solar gain (strongest at noon), seen through the container's thermal lag: the
  exact periodic solution of a first-order filter for the sinusoid and the first
  harmonics of the half-wave solar input, plus the decay of the pack's temperature at
  departure toward it. Closed form, so no history is needed.
- vibration: the dominant frequency and peak of the transport mode (road 8-40 Hz
  0.2-0.75 g, rail 5-60 Hz 0.1-0.6 g, sea 1-15 Hz 0.02-0.25 g, air 60-180 Hz 0.3-1.5 g in
  flight, 10-40 Hz on the taxiway), the peak scaled by a slowly varying roughness of
  the way, so high peaks are rare; near-still while parked.
- shock: most windows have none; handling bumps of 0.5-1.9 g (mostly small) lasting
  5-20 ms arrive at a per-hour rate by mode, higher within 10 minutes of the start or
  end of a leg (loading, unloading, taxiing), lower while parked.

Routine transport stays inside the builtin profiles' warning bands too (T.3 at 0.8 of the
limit, 0.8 g below 18 Hz; T.4 at 2 g): one bump or one rough minute above them made three of
the four nominal shipments of `packproof run` report `warning`, so a user could not tell a
nominal trip from one where something happened. A warning is a scenario's own event.
- pressure: barometric pressure at the ground elevation along the way (waypoints carry
  elevations) with weather drift; an air leg taxis at ground pressure, climbs linearly
  to its cabin pressure (~75 kPa in a pressurised hold), cruises, descends, taxis.
- position: linear interpolation of lat/lon between the two waypoints of the current
  leg (the shorter way across the antimeridian); an air leg moves only while airborne.
  A leg whose start and end are the same place is a dwell (a quay, a loading dock).
  After the last leg the pack is parked at its destination.

Scenario anomalies then push one quantity beyond the envelope: `Heat` (temperature),
`Decompression` (pressure), `RoughStretch` (vibration) and `Drop` (shock). Level
quantities (temperature, pressure) are instantaneous values at the window's start;
peak quantities (vibration, shock) are the largest over the window
[seq * step_s, (seq + 1) * step_s), so an event shorter than a window still shows.
"""

from __future__ import annotations

import hashlib
import math
import random
import struct
from dataclasses import dataclass

from packproof.simulators.journey import (
    DAY,
    HOUR,
    SEA_LEVEL_KPA,
    Decompression,
    Drop,
    Heat,
    RoughStretch,
    Scenario,
)
from packproof.simulators.scenarios import SCENARIOS

# Vibration per mode: (dominant frequency range Hz, peak g range).
_VIBRATION: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "road": ((8.0, 40.0), (0.2, 0.75)),
    "rail": ((5.0, 60.0), (0.1, 0.6)),
    "sea": ((1.0, 15.0), (0.02, 0.25)),
    "air": ((60.0, 180.0), (0.3, 1.5)),  # airborne
    "taxi": ((10.0, 40.0), (0.1, 0.5)),
    "parked": ((5.0, 120.0), (0.002, 0.03)),
}
# Handling bumps per hour: by mode while moving, "handling" within _HANDLING_S of a leg's
# start or end (loading, unloading, taxiing), "parked" in between on a dwell or after arrival.
_BUMPS_PER_HOUR = {"road": 0.6, "rail": 0.4, "sea": 0.3, "air": 0.4, "handling": 3.0, "parked": 0.2}
_HANDLING_S = 600.0  # loading/unloading time at each end of a leg


@dataclass(frozen=True, slots=True)
class Sample:
    """One window of a pack's sensor, at sensor resolution."""

    temperature_c: float  # 0.01 °C
    vib_peak_g: float  # 0.001 g
    vib_freq_hz: float  # 0.1 Hz
    shock_peak_g: float  # 0.001 g (0 when no pulse)
    shock_duration_ms: float  # 0.1 ms
    pressure_kpa: float  # 0.01 kPa
    lat: float  # 1e-5 degree
    lon: float


def ground_kpa(elevation_m: float) -> float:
    """Standard-atmosphere pressure at an elevation (troposphere)."""
    return SEA_LEVEL_KPA * (1.0 - 2.25577e-5 * elevation_m) ** 5.25588


def _seeded(seed: int, *parts: str) -> random.Random:
    digest = hashlib.blake2b("\x1f".join((str(seed), *parts)).encode(), digest_size=16).digest()
    return random.Random(int.from_bytes(digest, "big"))


_U32 = 1.0 / 2**32
_UNPACK = struct.Struct("<16I").unpack
_OMEGA = 2 * math.pi / DAY


def _lag(n: int, tau: float) -> tuple[float, float]:
    """Gain and phase lag of a first-order filter for the n-th harmonic of the day."""
    wt = n * _OMEGA * tau
    return 1.0 / math.sqrt(1.0 + wt * wt), math.atan(wt)


def _resolve(scenario: str | Scenario) -> Scenario:
    if isinstance(scenario, Scenario):
        return scenario
    try:
        return SCENARIOS[scenario]
    except (KeyError, TypeError):
        raise ValueError(f"unknown scenario {scenario!r}; known: {', '.join(sorted(SCENARIOS))}") from None


class DeviceSignal:
    """The signal of one pack's sensor on one scenario; `sample(seq)` is a pure function of
    (scenario, seed, device_id, step_s, seq)."""

    __slots__ = ("scenario", "seed", "device_id", "step_s", "_legs", "_route", "_hasher", "_temp", "_t_settle",
                 "_temp0", "_offset_c", "_weather", "_rough", "_kpa_offset", "_bump_p", "_heats", "_decomp",
                 "_rough_stretches", "_drops")

    def __init__(self, scenario: str | Scenario, seed: int, device_id: str, step_s: float = 60.0) -> None:
        sc = _resolve(scenario)
        if not (isinstance(step_s, int | float) and math.isfinite(step_s) and step_s > 0):
            raise ValueError(f"step_s must be a positive number of simulated seconds, got {step_s!r}")
        self.scenario, self.seed, self.device_id, self.step_s = sc, seed, device_id, float(step_s)
        self._route = sc.route
        shared = _seeded(seed, "shipment", sc.name)  # the same for every pack of this shipment
        dev = _seeded(seed, "device", device_id)
        key = hashlib.blake2b("\x1f".join((str(seed), sc.name, device_id)).encode(), digest_size=32).digest()
        self._hasher = hashlib.blake2b(key=key)

        # Temperature: Tss(t) = c0 + sum of a_k sin(omega_k t + phi_k); T(t) = Tss(t) + (T0 - Tss(0)) e^(-t/tau).
        cl = sc.climate
        hour = cl.depart_hour if cl.depart_hour is not None else shared.uniform(0.0, 24.0)
        x0 = _OMEGA * hour * HOUR  # phase of the day at departure
        tau = max(cl.lag_s, 1.0)
        (g1, l1), (g2, l2), (g4, l4) = _lag(1, tau), _lag(2, tau), _lag(4, tau)
        amb0, sun0 = x0 - _OMEGA * 9 * HOUR, x0 - _OMEGA * 6 * HOUR  # ambient peaks at 15:00, sun at 12:00
        s = cl.solar_gain_c
        half_pi = math.pi / 2
        # max(0, sin y) = 1/pi + sin(y)/2 - 2/(3 pi) cos 2y - 2/(15 pi) cos 4y - ...
        self._temp = (
            cl.mean_c + s / math.pi,
            ((_OMEGA, amb0 - l1, cl.swing_c * g1), (_OMEGA, sun0 - l1, s * g1 / 2),
             (2 * _OMEGA, 2 * sun0 - l2 + half_pi, -2 * s * g2 / (3 * math.pi)),
             (4 * _OMEGA, 4 * sun0 - l4 + half_pi, -2 * s * g4 / (15 * math.pi))),
        )
        settled0 = self._settled(0.0)
        self._t_settle = tau
        self._temp0 = 0.0 if cl.start_c is None else cl.start_c - settled0
        self._offset_c = dev.uniform(-0.8, 0.8)  # where the pack sits in the load

        # Weather and roughness of the way: slow sinusoids with shipment phases.
        self._weather = ((2 * math.pi / (3.7 * DAY), shared.uniform(0, 2 * math.pi), shared.uniform(0.6, 1.4)),
                         (2 * math.pi / (1.3 * DAY), shared.uniform(0, 2 * math.pi), shared.uniform(0.2, 0.6)))
        self._rough = ((2 * math.pi / (2.3 * HOUR), shared.uniform(0, 2 * math.pi)),
                       (2 * math.pi / (0.4 * HOUR), shared.uniform(0, 2 * math.pi)))
        self._kpa_offset = dev.uniform(-0.1, 0.1)

        # Per-leg constants: (mode, start, end, duration, dwell, ground kPa at ends, air phases, cruise kPa).
        self._legs = [
            (leg.mode, leg.start, leg.end, leg.duration_s, leg.dwell,
             ground_kpa(leg.start.elevation_m), ground_kpa(leg.end.elevation_m), leg.air_phases(), leg.cruise_kpa)
            for leg in sc.route.legs
        ]
        self._bump_p = {k: 1.0 - math.exp(-rate * self.step_s / HOUR) for k, rate in _BUMPS_PER_HOUR.items()}

        self._heats = [(a.when, dev.uniform(*a.peak_c)) for a in sc.anomalies if isinstance(a, Heat)]
        self._decomp = [(a.when, dev.uniform(*a.floor_kpa)) for a in sc.anomalies if isinstance(a, Decompression)]
        self._rough_stretches = [a for a in sc.anomalies if isinstance(a, RoughStretch)]
        self._drops = [(a.at_s, dev.uniform(*a.peak_g), dev.uniform(*a.duration_ms))
                       for a in sc.anomalies if isinstance(a, Drop)]

    def _settled(self, t: float) -> float:
        c0, terms = self._temp
        return c0 + sum(a * math.sin(w * t + p) for w, p, a in terms)

    def sample(self, seq: int) -> Sample:
        if not 0 <= seq < 2**64:
            raise ValueError(f"seq must be in 0..2**64-1, got {seq}")
        h = self._hasher.copy()
        h.update(seq.to_bytes(8, "little"))
        u = _UNPACK(h.digest())
        step = self.step_s
        t = seq * step

        # Where on the route, and what the pack is doing there.
        i, into = self._route.leg_at(t)
        if i < 0:  # arrived: parked at the destination
            _, _, end, _, _, _, g_end, _, _ = self._legs[-1]
            activity, bumps, lat, lon = "parked", "parked", end.lat, end.lon
            pressure, on_ground = g_end, 1.0
        else:
            mode, a, b, dur, dwell, g_a, g_b, (taxi, climb, descent), cruise = self._legs[i]
            if mode == "air" and not dwell:
                airborne = dur - 2 * taxi
                x = into - taxi
                frac = min(max(x / airborne, 0.0), 1.0) if airborne > 0 else 1.0
                if x < 0 or x > airborne:
                    activity, on_ground = "taxi", 1.0
                elif x < climb:
                    activity, on_ground = "air", 1.0 - x / climb
                elif airborne - x < descent:
                    activity, on_ground = "air", 1.0 - (airborne - x) / descent
                else:
                    activity, on_ground = "air", 0.0
                pressure = cruise + ((g_a if x < airborne / 2 else g_b) - cruise) * on_ground
                bumps = "handling" if x < 0 or x > airborne else "air"
            else:
                frac = into / dur
                activity = "parked" if dwell else mode
                near_ends = into < _HANDLING_S or dur - into < _HANDLING_S
                bumps = "handling" if near_ends else "parked" if dwell else mode
                pressure, on_ground = g_a + (g_b - g_a) * frac, 1.0
            lat = a.lat + (b.lat - a.lat) * frac
            dlon = (b.lon - a.lon + 180.0) % 360.0 - 180.0
            lon = a.lon + dlon * frac
            if lon < -180.0:
                lon += 360.0
            elif lon > 180.0:
                lon -= 360.0

        # Temperature: the settled daily cycle, the decay from the departure temperature, noise.
        temperature = self._settled(t) + self._offset_c + 0.05 * ((u[0] + u[1] + u[2]) * _U32 - 1.5) * 2
        if self._temp0:
            temperature += self._temp0 * math.exp(-t / self._t_settle)

        # Vibration: a mode's range, the peak scaled by the roughness of the way.
        (f_lo, f_hi), (g_lo, g_hi) = _VIBRATION[activity]
        (w1, p1), (w2, p2) = self._rough
        rough = 0.5 + 0.3 * math.sin(w1 * t + p1) + 0.2 * math.sin(w2 * t + p2)
        q = 0.65 * rough + 0.35 * u[3] * _U32
        vib_g = g_lo + (g_hi - g_lo) * q * q
        vib_hz = f_lo + (f_hi - f_lo) * u[4] * _U32

        # Shock: the largest handling bump in the window, if any.
        shock_g = shock_ms = 0.0
        if u[5] * _U32 < self._bump_p[bumps]:
            shock_g = 0.5 + 1.4 * (u[6] * _U32) ** 4
            shock_ms = 5.0 + 15.0 * u[7] * _U32

        # Pressure: ground or cabin, plus weather on the ground, sensor offset and noise.
        if on_ground:
            (wa, pa, aa), (wb, pb, ab) = self._weather
            pressure += on_ground * (aa * math.sin(wa * t + pa) + ab * math.sin(wb * t + pb))
        pressure += self._kpa_offset + 0.03 * ((u[8] + u[9]) * _U32 - 1.0)

        # Injected anomalies.
        for ramp, peak in self._heats:
            w = ramp.weight(t)
            if w > 0.0:
                temperature += w * (peak - temperature + 0.6 * (u[10] * _U32 - 0.5))
        for ramp, floor in self._decomp:
            w = ramp.weight(t)
            if w > 0.0:
                pressure += w * (floor - pressure + 0.3 * (u[11] * _U32 - 0.5))
        for r in self._rough_stretches:
            if t < r.end_s and t + step > r.start_s:
                vib_g = r.peak_g[0] + (r.peak_g[1] - r.peak_g[0]) * u[12] * _U32
                vib_hz = r.freq_hz[0] + (r.freq_hz[1] - r.freq_hz[0]) * u[13] * _U32
        for at, peak_g, dur_ms in self._drops:
            if t <= at < t + step and peak_g > shock_g:
                shock_g, shock_ms = peak_g, dur_ms

        # Sensor resolution, inside what a reading may carry (+ 0.0 turns -0.0 into 0.0).
        return Sample(
            round(min(max(temperature, -100.0), 200.0), 2) + 0.0,
            round(min(max(vib_g, 0.0), 1000.0), 3) + 0.0,
            round(min(max(vib_hz, 0.0), 10000.0), 1) + 0.0,
            round(min(max(shock_g, 0.0), 10000.0), 3) + 0.0,
            round(min(max(shock_ms, 0.0), 10000.0), 1) + 0.0,
            round(min(max(pressure, 0.0), 500.0), 2) + 0.0,
            round(min(max(lat, -90.0), 90.0), 5) + 0.0,
            round(min(max(lon, -180.0), 180.0), 5) + 0.0,
        )
