"""Named scenarios: a route of legs and, for the excursion ones, an injected event.

Excursions start early (by the 6th reading) and last several readings so a short demo
shows them. Each excursion scenario crosses exactly one UN 38.3 test:

- hot-container (T.2): a sea container on a sunny quay heats past 72 °C;
- rough-road (T.3): a damaged road at 9-16 Hz shakes the pack at 1.3-2.5 g (limit 1 g);
- drop (T.4): one handling drop, a ~200 g pulse of ~4 ms (limit 150 g);
- unpressurised-air (T.1): the hold loses pressure at cruise, ~9-10 kPa (limit 11.6 kPa).
"""

from __future__ import annotations

import dataclasses
import random

from simulators.signals import Anomaly, Leg, Sample, Scenario

TURIN, HAMBURG, ROTTERDAM, NEWARK, SHANGHAI, MUNICH, LEIPZIG = (
    (45.07, 7.68), (53.55, 9.99), (51.92, 4.48), (40.73, -74.17), (31.23, 121.47), (48.14, 11.58), (51.34, 12.37))

H = 3600.0


def _hot(s: Sample, frac: float, rng: random.Random) -> Sample:
    return dataclasses.replace(s, temperature_c=74.0 + 4.0 * (1 - abs(2 * frac - 1)) + rng.uniform(0, 1.5))


def _rough(s: Sample, _frac: float, rng: random.Random) -> Sample:
    return dataclasses.replace(s, vib_freq_hz=rng.uniform(9.0, 16.0), vib_peak_g=rng.uniform(1.3, 2.5))


def _drop(s: Sample, _frac: float, rng: random.Random) -> Sample:
    return dataclasses.replace(s, shock_peak_g=rng.uniform(180.0, 250.0), shock_duration_ms=rng.uniform(3.0, 5.0))


def _depressurised(s: Sample, _frac: float, rng: random.Random) -> Sample:
    return dataclasses.replace(s, pressure_kpa=rng.uniform(9.0, 10.5))


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("nominal-road", "truck Turin -> Munich, inside the envelope",
             (Leg("road", TURIN, MUNICH, 10 * H),)),
    Scenario("nominal-rail", "rail Munich -> Hamburg, inside the envelope",
             (Leg("road", MUNICH, MUNICH, 1 * H), Leg("rail", MUNICH, HAMBURG, 9 * H))),
    Scenario("nominal-sea", "container ship Shanghai -> Rotterdam, inside the envelope",
             (Leg("sea", SHANGHAI, ROTTERDAM, 30 * 24 * H),), ambient_c=22.0, solar_gain_c=8.0),
    Scenario("nominal-air", "air freight Leipzig -> Newark in a pressurised hold",
             (Leg("road", LEIPZIG, LEIPZIG, 0.5 * H), Leg("air", LEIPZIG, NEWARK, 9 * H))),
    Scenario("hot-container", "sea container on a sunny quay heats past 72 °C (T.2)",
             (Leg("sea", SHANGHAI, ROTTERDAM, 30 * 24 * H),), ambient_c=28.0, solar_gain_c=12.0,
             anomalies=(Anomaly(5, 14, _hot),)),
    Scenario("rough-road", "damaged road shakes packs beyond the T.3 vibration envelope",
             (Leg("road", TURIN, HAMBURG, 14 * H),), anomalies=(Anomaly(4, 12, _rough),)),
    Scenario("drop", "a forklift drop beyond the T.4 shock pulse",
             (Leg("road", HAMBURG, HAMBURG, 1 * H), Leg("road", HAMBURG, LEIPZIG, 5 * H)),
             anomalies=(Anomaly(6, 6, _drop),)),
    Scenario("unpressurised-air", "air leg whose hold loses pressure below 11.6 kPa (T.1)",
             (Leg("air", LEIPZIG, NEWARK, 0.2 * H, cruise_kpa=75.0), Leg("air", LEIPZIG, NEWARK, 9 * H)),
             anomalies=(Anomaly(5, 13, _depressurised),)),
)}

# The default fleet: one shipment of each excursion kind between nominal ones.
MIXED_FLEET: list[str] = ["nominal-road", "hot-container", "nominal-air", "rough-road", "nominal-sea", "drop",
                          "nominal-rail", "unpressurised-air"]


def scenario_profile(scenario: str) -> str:
    """The UN 38.3 profile the scenario's packs were type-tested for."""
    return "un38.3-cell"
