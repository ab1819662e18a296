"""Named scenarios: a route of legs, the climate along it and, for excursions, one injected event.

A scenario is plain data (`simulators.signals.Scenario`): a `Route` of `Leg`s between
`Waypoint`s, a `Climate`, and `anomalies`. Leg durations come from great-circle
distance and a typical speed per mode (a detour factor for roads and rails). Nominal
scenarios stay inside the UN 38.3 envelope and its warning bands: they report `ok`.

Each excursion scenario crosses exactly one UN 38.3 test, early enough for a short demo
(within the first 20 readings at the default 60 s step) and for several readings:

- hot-container (T.2): a container on a quay in the Gulf summer heats to 76-80 °C
  (limit 72 °C), readings ~9-30;
- rough-road (T.3): a damaged road at 9-16 Hz shakes the pack at 1.3-2.5 g (limit 1 g
  there), readings 5-16;
- drop (T.4): a forklift drops the pallet at the Hamburg airport cargo terminal while the
  air carrier hands it to the road carrier, a 180-250 g pulse of 3-5 ms (limit 150 g,
  6 ms), reading 7; the handover is signed at 8 min (simulators/custody_script.py), so
  the condition report names both carriers;
- unpressurised-air (T.1): the hold loses pressure soon after the climb, 9-10 kPa
  (limit 11.6 kPa), readings ~15-31, until the crew descends.
"""

from __future__ import annotations

import math

from packproof.simulators.journey import (
    HOUR,
    Climate,
    Decompression,
    Drop,
    Heat,
    Leg,
    Mode,
    Ramp,
    RoughStretch,
    Route,
    Scenario,
    Waypoint,
)

MIN = 60.0

# Typical door-to-door speeds (km/h) and how much longer the way is than the great circle.
_SPEED_KMH: dict[str, float] = {"road": 70.0, "rail": 65.0, "sea": 35.0, "air": 800.0}
_DETOUR: dict[str, float] = {"road": 1.3, "rail": 1.25, "sea": 1.0, "air": 1.0}

# name, lat, lon, ground elevation (m)
TURIN = Waypoint("Turin", 45.0703, 7.6869, 240)
MILAN = Waypoint("Milan", 45.4642, 9.1900, 120)
VERONA = Waypoint("Verona", 45.4384, 10.9916, 59)
BRENNER = Waypoint("Brenner Pass", 47.0022, 11.5058, 1370)
INNSBRUCK = Waypoint("Innsbruck", 47.2692, 11.4041, 574)
MUNICH = Waypoint("Munich", 48.1351, 11.5820, 519)
MUNICH_RIEM = Waypoint("Munich-Riem terminal", 48.1303, 11.6920, 527)
NUREMBERG = Waypoint("Nuremberg", 49.4521, 11.0767, 309)
LEIPZIG = Waypoint("Leipzig", 51.3397, 12.3731, 113)
LEJ = Waypoint("Leipzig/Halle airport", 51.4239, 12.2364, 141)
HAMBURG = Waypoint("Hamburg", 53.5511, 9.9937, 6)
HAM_CARGO = Waypoint("Hamburg airport cargo terminal", 53.6304, 9.9882, 16)
HANNOVER = Waypoint("Hannover", 52.3759, 9.7320, 55)
KATOWICE = Waypoint("Katowice", 50.2649, 19.0238, 266)
KRAKOW = Waypoint("Krakow", 50.0647, 19.9450, 219)
RZESZOW = Waypoint("Rzeszow", 50.0412, 21.9991, 200)
EWR = Waypoint("Newark airport", 40.6895, -74.1745, 6)
EDISON = Waypoint("Edison NJ", 40.5187, -74.4121, 30)
HKG = Waypoint("Hong Kong airport", 22.3080, 113.9185, 9)
SHANGHAI = Waypoint("Shanghai", 31.2304, 121.4737, 4)
YANGSHAN = Waypoint("Yangshan port", 30.6266, 122.0647, 5)
SINGAPORE = Waypoint("Singapore Strait", 1.2644, 103.8400)
MALACCA = Waypoint("Strait of Malacca", 3.2000, 100.6000)
WE_ISLAND = Waypoint("off Banda Aceh", 6.2000, 95.0000)
DONDRA = Waypoint("off Dondra Head", 5.6000, 80.6000)
BAB_EL_MANDEB = Waypoint("Bab-el-Mandeb", 12.6000, 43.4000)
SUEZ = Waypoint("Suez", 29.9500, 32.5500)
PORT_SAID = Waypoint("Port Said", 31.2700, 32.3000)
CRETE_SOUTH = Waypoint("south of Crete", 33.8000, 25.0000)
CAPE_BON = Waypoint("off Cape Bon", 37.6000, 11.2000)
ALBORAN = Waypoint("Alboran Sea", 36.2000, -2.5000)
GIBRALTAR = Waypoint("Strait of Gibraltar", 35.9500, -5.6000)
ST_VINCENT = Waypoint("off Cape St Vincent", 36.9000, -9.4000)
FINISTERRE = Waypoint("off Cape Finisterre", 43.0000, -9.7000)
USHANT = Waypoint("off Ushant", 48.6000, -5.6000)
DOVER = Waypoint("Dover Strait", 51.0000, 1.5000)
ROTTERDAM = Waypoint("Rotterdam", 51.9500, 4.1400)
JEBEL_ALI = Waypoint("Jebel Ali port", 25.0116, 55.0610, 5)
HORMUZ = Waypoint("Strait of Hormuz", 26.5000, 56.5000)
GULF_OF_OMAN = Waypoint("Gulf of Oman", 24.0000, 59.0000)
NHAVA_SHEVA = Waypoint("Nhava Sheva port", 18.9500, 72.9500, 5)


def great_circle_km(a: Waypoint, b: Waypoint) -> float:
    lat1, lon1, lat2, lon2 = map(math.radians, (a.lat, a.lon, b.lat, b.lon))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(h))


def legs(mode: Mode, *waypoints: Waypoint, **air: float) -> list[Leg]:
    """Legs of one mode through the waypoints, timed by distance and the mode's speed."""
    out = []
    for a, b in zip(waypoints, waypoints[1:], strict=False):
        hours = great_circle_km(a, b) * _DETOUR[mode] / _SPEED_KMH[mode]
        seconds = hours * HOUR
        if mode == "air":  # ground time and the slower climb and descent come on top
            seconds += 2 * air.get("taxi_s", 600.0) + 0.3 * (air.get("climb_s", 1200.0) + air.get("descent_s", 1500.0))
        out.append(Leg(mode, a, b, seconds, **air))
    return out


def dwell(mode: Mode, at: Waypoint, seconds: float) -> Leg:
    """Parked at one place: a quay, a loading dock, an apron."""
    return Leg(mode, at, at, seconds)


def route(*parts: Leg | list[Leg]) -> Route:
    flat: list[Leg] = []
    for p in parts:
        flat.extend(p if isinstance(p, list) else [p])
    return Route(tuple(flat))


_SEA_TO_ROTTERDAM = (YANGSHAN, SINGAPORE, MALACCA, WE_ISLAND, DONDRA, BAB_EL_MANDEB, SUEZ, PORT_SAID, CRETE_SOUTH,
                     CAPE_BON, ALBORAN, GIBRALTAR, ST_VINCENT, FINISTERRE, USHANT, DOVER, ROTTERDAM)

SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario(
        "nominal-road", "truck Turin -> Brenner -> Munich, inside the envelope",
        route(legs("road", TURIN, MILAN, VERONA, BRENNER, INNSBRUCK, MUNICH)),
        Climate(mean_c=16.0, swing_c=7.0, solar_gain_c=6.0, lag_s=1.5 * HOUR, start_c=20.0)),
    Scenario(
        "nominal-rail", "drayage to Munich-Riem, freight train to Hamburg, inside the envelope",
        route(legs("road", MUNICH, MUNICH_RIEM), dwell("rail", MUNICH_RIEM, 45 * MIN),
              legs("rail", MUNICH_RIEM, NUREMBERG, LEIPZIG, HAMBURG)),
        Climate(mean_c=12.0, swing_c=6.0, solar_gain_c=5.0, lag_s=2 * HOUR, start_c=19.0)),
    Scenario(
        "nominal-sea", "container Shanghai -> Yangshan -> Suez -> Rotterdam, inside the envelope",
        route(legs("road", SHANGHAI, YANGSHAN), dwell("sea", YANGSHAN, 6 * HOUR), legs("sea", *_SEA_TO_ROTTERDAM)),
        Climate(mean_c=24.0, swing_c=4.0, solar_gain_c=12.0, lag_s=4 * HOUR, start_c=22.0)),
    Scenario(
        "nominal-air", "truck to Leipzig/Halle, pressurised hold to Newark, truck to Edison NJ",
        route(legs("road", LEIPZIG, LEJ), dwell("air", LEJ, 1 * HOUR), legs("air", LEJ, EWR),
              legs("road", EWR, EDISON)),
        Climate(mean_c=14.0, swing_c=5.0, lag_s=1 * HOUR, start_c=21.0)),
    Scenario(
        "hot-container", "container on a Gulf quay in summer heats to 76-80 °C, beyond T.2 (72 °C)",
        route(dwell("sea", JEBEL_ALI, 3 * HOUR), legs("sea", JEBEL_ALI, HORMUZ, GULF_OF_OMAN, NHAVA_SHEVA)),
        Climate(mean_c=36.0, swing_c=6.0, solar_gain_c=22.0, lag_s=2 * HOUR, start_c=50.0, depart_hour=12.0),
        anomalies=(Heat(Ramp(start_s=3 * MIN, rise_s=9 * MIN, hold_s=15 * MIN, fall_s=12 * MIN), peak_c=(76.0, 80.0)),),
        crosses="T.2"),
    Scenario(
        "rough-road", "damaged road Katowice -> Krakow shakes packs at 1.3-2.5 g, 9-16 Hz, beyond T.3 (1 g)",
        route(legs("road", KATOWICE, KRAKOW, RZESZOW)),
        Climate(mean_c=14.0, swing_c=7.0, solar_gain_c=5.0, lag_s=1.5 * HOUR, start_c=18.0),
        anomalies=(RoughStretch(start_s=5 * MIN, end_s=17 * MIN, peak_g=(1.3, 2.5), freq_hz=(9.0, 16.0)),),
        crosses="T.3"),
    Scenario(
        "drop", "a pallet dropped at the Hamburg airport cargo terminal during the handover from the air "
                "carrier to the road carrier: a 180-250 g, 3-5 ms pulse, beyond T.4 (150 g)",
        # Unloaded from the aircraft (the air carrier's dwell), handed over at 8 min, loaded on the truck.
        route(dwell("air", HAM_CARGO, 8 * MIN), dwell("road", HAM_CARGO, 12 * MIN),
              legs("road", HAM_CARGO, HANNOVER, LEIPZIG)),
        Climate(mean_c=10.0, swing_c=5.0, solar_gain_c=3.0, lag_s=1.5 * HOUR, start_c=17.0),
        anomalies=(Drop(at_s=7.5 * MIN, peak_g=(180.0, 250.0), duration_ms=(3.0, 5.0)),),
        crosses="T.4"),
    Scenario(
        "unpressurised-air", "hold loses pressure after the climb out of Leipzig: 9-10 kPa, beyond T.1 (11.6 kPa)",
        route(legs("air", LEJ, HKG, taxi_s=3 * MIN, climb_s=9 * MIN)),
        Climate(mean_c=15.0, swing_c=5.0, lag_s=1 * HOUR, start_c=20.0),
        anomalies=(Decompression(Ramp(start_s=13 * MIN, rise_s=2 * MIN, hold_s=16 * MIN, fall_s=10 * MIN),
                                 floor_kpa=(9.0, 10.0)),),
        crosses="T.1"),
)}

# The default fleet: one shipment of each excursion kind between nominal ones.
MIXED_FLEET: list[str] = ["nominal-road", "hot-container", "nominal-air", "rough-road", "nominal-sea", "drop",
                          "nominal-rail", "unpressurised-air"]


def scenario_profile(scenario: str) -> str:
    """The UN 38.3 profile the scenario's packs were type-tested for (packs: cell profile)."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; known: {', '.join(sorted(SCENARIOS))}")
    return SCENARIOS[scenario].profile
