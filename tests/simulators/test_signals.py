"""Simulated signals: deterministic, inside the reading bounds, and each scenario does what it says.

The UN 38.3 limits are computed here from the numbers of the Manual of Tests and
Criteria (docs/design.md), independently of `edge.thresholds`.
"""

from __future__ import annotations

import dataclasses
import math
import random

import pytest

from packproof.reading import Location, Reading, Shock, Vibration
from packproof.simulators.fleet import build_fleet
from packproof.simulators.journey import MODES, Leg, Route, Waypoint
from packproof.simulators.scenarios import MIXED_FLEET, SCENARIOS, scenario_profile
from packproof.simulators.signals import DeviceSignal, Sample

G_N = 9.80665
T1_MIN_KPA = 11.6  # T.1 altitude
T2_MIN_C, T2_MAX_C = -40.0, 72.0  # T.2 thermal (Rev. 5 Amendment 1 on)
T4_PEAK_G, T4_MS = 150.0, 6.0  # T.4 shock, cells: half-sine


def t3_limit_g(freq_hz: float) -> float:
    """T.3: 1 g_n 7-18 Hz, then a 0.8 mm amplitude up to 8 g_n, 8 g_n to 200 Hz (nearest limit outside)."""
    f = min(max(freq_hz, 7.0), 200.0)
    if f <= 18.0:
        return 1.0
    return min(8.0, (2 * math.pi * f) ** 2 * 0.8e-3 / G_N)


def half_sine_dv(peak_g: float, duration_ms: float) -> float:
    return 2 / math.pi * peak_g * G_N * duration_ms / 1000


def crossed(s: Sample) -> set[str]:
    """The UN 38.3 tests whose envelope this sample lies beyond."""
    out = set()
    if s.pressure_kpa < T1_MIN_KPA:
        out.add("T.1")
    if not T2_MIN_C <= s.temperature_c <= T2_MAX_C:
        out.add("T.2")
    if s.vib_peak_g > t3_limit_g(s.vib_freq_hz):
        out.add("T.3")
    if s.shock_peak_g > T4_PEAK_G or half_sine_dv(s.shock_peak_g, s.shock_duration_ms) > half_sine_dv(T4_PEAK_G, T4_MS):
        out.add("T.4")
    return out


EXCURSION = {"hot-container": "T.2", "rough-road": "T.3", "drop": "T.4", "unpressurised-air": "T.1"}
NOMINAL = sorted(s for s in SCENARIOS if s.startswith("nominal"))
DEVICES = ("SHP-001-0001-P01", "SHP-001-0001-P02", "pack-7")


def as_reading(s: Sample, seq: int) -> Reading:
    """Validated by the Reading model: strict types and every bound."""
    return Reading(v=1, device_id="d", shipment_id="s", seq=seq, ts="2026-11-22T08:00:00Z",
                   temperature_c=s.temperature_c, vibration=Vibration(peak_g=s.vib_peak_g, freq_hz=s.vib_freq_hz),
                   shock=Shock(peak_g=s.shock_peak_g, duration_ms=s.shock_duration_ms),
                   pressure_kpa=s.pressure_kpa, location=Location(lat=s.lat, lon=s.lon))


def test_the_required_scenarios_exist() -> None:
    assert set(SCENARIOS) == {"nominal-road", "nominal-rail", "nominal-sea", "nominal-air", *EXCURSION}
    assert {name: sc.crosses for name, sc in SCENARIOS.items() if sc.crosses} == EXCURSION
    assert all(sc.name == name and sc.description for name, sc in SCENARIOS.items())
    assert {leg.mode for sc in SCENARIOS.values() for leg in sc.route.legs} == set(MODES)


def test_samples_are_deterministic_in_any_order() -> None:
    for scenario in SCENARIOS:
        forward = [DeviceSignal(scenario, 3, "dev").sample(k) for k in range(60)]
        sig = DeviceSignal(scenario, 3, "dev")
        order = list(range(60))
        random.Random(5).shuffle(order)
        shuffled = {k: sig.sample(k) for k in order}
        assert [shuffled[k] for k in range(60)] == forward
        assert [sig.sample(k) for k in reversed(range(60))][::-1] == forward
    a = [DeviceSignal("nominal-road", 3, "dev").sample(k) for k in range(20)]
    assert a != [DeviceSignal("nominal-road", 4, "dev").sample(k) for k in range(20)]  # another seed
    assert a != [DeviceSignal("nominal-road", 3, "dev2").sample(k) for k in range(20)]  # another device


def test_sample_k_is_simulated_time_k_times_step() -> None:
    coarse, fine = DeviceSignal("nominal-air", 1, "d", step_s=60.0), DeviceSignal("nominal-air", 1, "d", step_s=15.0)
    for k in range(0, 700, 7):
        c, f = coarse.sample(k), fine.sample(4 * k)
        assert (c.lat, c.lon) == (f.lat, f.lon)
        assert c.pressure_kpa == pytest.approx(f.pressure_kpa, abs=0.1)  # only sensor noise differs
        assert c.temperature_c == pytest.approx(f.temperature_c, abs=0.5)


@pytest.mark.parametrize("scenario", sorted(EXCURSION))
def test_each_excursion_scenario_crosses_its_test_early(scenario: str) -> None:
    test = EXCURSION[scenario]
    for seed in (1, 2, 3):
        for device in DEVICES:
            samples = [DeviceSignal(scenario, seed, device).sample(k) for k in range(60)]
            first20 = set().union(*(crossed(s) for s in samples[:20]))
            assert first20 == {test}, (seed, device, first20)  # its own test, and only that one
            assert set().union(*(crossed(s) for s in samples)) == {test}
            beyond = [k for k, s in enumerate(samples) if test in crossed(s)]
            if test == "T.4":  # one drop: one pulse
                assert len(beyond) == 1
            else:  # an excursion lasting several consecutive readings
                assert len(beyond) >= 5 and beyond == list(range(beyond[0], beyond[-1] + 1)), beyond


def test_excursions_reach_the_levels_they_describe() -> None:
    hot = [DeviceSignal("hot-container", 1, d).sample(k) for d in DEVICES for k in range(60)]
    assert 75.5 <= max(s.temperature_c for s in hot) <= 80.5
    rough = [s for d in DEVICES for s in (DeviceSignal("rough-road", 1, d).sample(k) for k in range(60))
             if "T.3" in crossed(s)]
    assert all(1.3 <= s.vib_peak_g <= 2.5 and 9.0 <= s.vib_freq_hz <= 16.0 for s in rough)
    drops = [s for d in DEVICES for s in (DeviceSignal("drop", 1, d).sample(k) for k in range(60))
             if s.shock_peak_g > T4_PEAK_G]
    assert len(drops) == len(DEVICES)
    assert all(180.0 <= s.shock_peak_g <= 250.0 and 3.0 <= s.shock_duration_ms <= 5.0 for s in drops)
    air = [DeviceSignal("unpressurised-air", 1, d).sample(k) for d in DEVICES for k in range(60)]
    assert 8.8 <= min(s.pressure_kpa for s in air) <= 10.2


@pytest.mark.parametrize("scenario", NOMINAL)
@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_nominal_scenarios_stay_inside_the_envelope(scenario: str, seed: int) -> None:
    for device in DEVICES[:2]:
        samples = [DeviceSignal(scenario, seed, device).sample(k) for k in range(500)]
        assert [(k, crossed(s)) for k, s in enumerate(samples) if crossed(s)] == []
        # ... and inside the warning bands: a nominal shipment reports `ok`, not `warning` (issue 13).
        assert max(s.temperature_c for s in samples) < 60.0
        assert min(s.temperature_c for s in samples) > -20.0
        assert min(s.pressure_kpa for s in samples) > 70.0
        assert [s.shock_peak_g for s in samples if s.shock_peak_g > 2.0] == []
        assert [s.vib_peak_g for s in samples if s.vib_peak_g > 0.8 * t3_limit_g(s.vib_freq_hz)] == []


def test_transport_modes_vibrate_as_they_should() -> None:
    ranges = {"road": ((8, 40), (0.2, 0.9)), "rail": ((5, 60), (0.1, 0.6)), "sea": ((1, 15), (0.0, 0.3))}
    seen = set()
    for scenario in ("nominal-road", "nominal-rail", "nominal-sea"):
        sig = DeviceSignal(scenario, 1, "d")
        route = SCENARIOS[scenario].route
        for k in range(0, 3000, 3):
            i, _ = route.leg_at(k * 60.0)
            leg = route.legs[i]
            if i < 0 or leg.dwell:
                continue
            (f_lo, f_hi), (g_lo, g_hi) = ranges[leg.mode]
            s = sig.sample(k)
            assert f_lo <= s.vib_freq_hz <= f_hi and g_lo <= s.vib_peak_g <= g_hi, (scenario, k, leg.mode, s)
            seen.add(leg.mode)
    assert seen == set(ranges)
    air = DeviceSignal("nominal-air", 1, "d")
    pressures = [air.sample(k).pressure_kpa for k in range(500)]
    assert 73.0 <= min(pressures) <= 77.0  # a pressurised hold at cruise
    in_flight = [air.sample(k) for k in range(500) if air.sample(k).pressure_kpa < 80.0]
    assert in_flight and all(60 <= s.vib_freq_hz <= 180 and 0.3 <= s.vib_peak_g <= 1.5 for s in in_flight)


def test_shocks_are_rare_handling_bumps() -> None:
    samples = [DeviceSignal(sc, seed, "d").sample(k) for sc in NOMINAL for seed in (1, 2) for k in range(2000)]
    bumps = [s for s in samples if s.shock_peak_g > 0]
    assert 0 < len(bumps) < 0.03 * len(samples)
    assert all(0.5 <= s.shock_peak_g <= 1.9 and 5.0 <= s.shock_duration_ms <= 20.0 for s in bumps)
    assert all(s.shock_duration_ms == 0.0 for s in samples if s.shock_peak_g == 0.0)


@pytest.mark.parametrize("step_s", [1.0, 60.0, 3600.0])
def test_values_lie_within_reading_bounds_at_sensor_resolution(step_s: float) -> None:
    for scenario in SCENARIOS:
        sig = DeviceSignal(scenario, 7, "pack-1", step_s=step_s)
        for k in [*range(300), 10**6, 2**40]:
            s = sig.sample(k)
            as_reading(s, k)
            assert all(type(v) is float and math.isfinite(v) for v in vars_of(s))
            assert s.temperature_c == round(s.temperature_c, 2) and s.pressure_kpa == round(s.pressure_kpa, 2)
            assert s.vib_peak_g == round(s.vib_peak_g, 3) and s.shock_peak_g == round(s.shock_peak_g, 3)
            assert s.vib_freq_hz == round(s.vib_freq_hz, 1)
            assert s.lat == round(s.lat, 5) and s.lon == round(s.lon, 5)


def vars_of(s: Sample) -> list[float]:
    return [getattr(s, f.name) for f in dataclasses.fields(s)]


def _expected_position(route: Route, t: float) -> tuple[float, float]:
    """Linear interpolation between the waypoints of the leg under way (no air legs)."""
    for leg in route.legs:
        if t < leg.duration_s:
            frac = t / leg.duration_s
            return (leg.start.lat + (leg.end.lat - leg.start.lat) * frac,
                    leg.start.lon + (leg.end.lon - leg.start.lon) * frac)
        t -= leg.duration_s
    return route.legs[-1].end.lat, route.legs[-1].end.lon


@pytest.mark.parametrize("scenario", ["nominal-road", "nominal-rail", "rough-road", "drop"])
def test_gps_moves_along_the_route(scenario: str) -> None:
    route = SCENARIOS[scenario].route
    sig = DeviceSignal(scenario, 1, "pack")
    last = int(route.duration_s // 60) + 30
    for k in [*range(0, last, 5), last]:
        s = sig.sample(k)
        lat, lon = _expected_position(route, k * 60.0)
        assert s.lat == pytest.approx(lat, abs=1e-5) and s.lon == pytest.approx(lon, abs=1e-5), k
    start, end = route.waypoints[0], route.waypoints[-1]
    assert (sig.sample(0).lat, sig.sample(0).lon) == (start.lat, start.lon)
    assert (sig.sample(last).lat, sig.sample(last).lon) == (end.lat, end.lon)  # arrived, parked
    assert len({(sig.sample(k).lat, sig.sample(k).lon) for k in range(0, last, 30)}) > 5


def test_an_air_leg_moves_only_while_airborne() -> None:
    sc = SCENARIOS["unpressurised-air"]
    leg = sc.route.legs[0]
    sig = DeviceSignal(sc.name, 1, "pack")
    taxi, _, _ = leg.air_phases()
    on_apron = [sig.sample(k) for k in range(int(taxi // 60))]
    assert all((s.lat, s.lon) == (leg.start.lat, leg.start.lon) for s in on_apron)
    assert all(s.pressure_kpa > 95 for s in on_apron)
    later = sig.sample(120)
    assert leg.end.lat < later.lat < leg.start.lat and leg.start.lon < later.lon < leg.end.lon


def test_longitude_takes_the_short_way_across_the_antimeridian() -> None:
    from packproof.simulators.journey import Scenario

    a, b = Waypoint("Tokyo", 35.5, 139.8), Waypoint("Anchorage", 61.2, -150.0)
    sc = Scenario("pacific", "test", Route((Leg("air", a, b, 8 * 3600.0),)))
    sig = DeviceSignal(sc, 1, "d")
    lons = [sig.sample(k).lon for k in range(0, 480, 10)]
    assert all(lon >= 139.8 or lon <= -150.0 for lon in lons)
    assert any(lon < 0 for lon in lons) and any(lon > 170 for lon in lons)


def test_routes_and_legs_refuse_nonsense() -> None:
    a, b, c = Waypoint("A", 1, 1), Waypoint("B", 2, 2), Waypoint("C", 3, 3)
    with pytest.raises(ValueError, match="not continuous"):
        Route((Leg("road", a, b, 60), Leg("road", c, a, 60)))
    with pytest.raises(ValueError, match="at least one leg"):
        Route(())
    with pytest.raises(ValueError, match="unknown transport mode 'boat'; known: road, rail, sea, air"):
        Leg("boat", a, b, 60)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="duration_s must be > 0"):
        Leg("road", a, b, 0)
    with pytest.raises(ValueError, match="step_s"):
        DeviceSignal("nominal-road", 1, "d", step_s=0)
    for seq in (-1, 2**64):
        with pytest.raises(ValueError, match="seq"):
            DeviceSignal("nominal-road", 1, "d").sample(seq)


def test_unknown_scenario_names_the_known_ones() -> None:
    known = ", ".join(sorted(SCENARIOS))
    with pytest.raises(ValueError, match=f"^unknown scenario 'teleport'; known: {known}$"):
        DeviceSignal("teleport", 1, "d")
    with pytest.raises(ValueError, match="unknown scenario 'teleport'"):
        scenario_profile("teleport")


def test_every_scenario_uses_the_cell_profile() -> None:
    assert {scenario_profile(s) for s in SCENARIOS} == {"un38.3-cell"}


def test_mixed_fleet_has_every_excursion_and_nominal_shipments() -> None:
    assert set(EXCURSION) <= set(MIXED_FLEET) <= set(SCENARIOS)
    assert sum(s.startswith("nominal") for s in MIXED_FLEET) >= 4
    fleet = build_fleet(shipments=len(MIXED_FLEET), packs=2, seed=9, unsigned_shipments=1)
    assert [d.scenario for d in fleet[::2]] == MIXED_FLEET
    assert all(d.key is None for d in fleet[-2:]) and all(d.key is not None for d in fleet[:-2])
    for d in fleet:  # every generated body is a valid reading
        Reading.model_validate_json(d.reading(0.0))
