"""Simulated signals: deterministic, inside the reading bounds, and each scenario does what it says."""

from __future__ import annotations

import pytest

from edge.thresholds import BUILTIN_PROFILES, evaluate
from packproof.reading import Location, Reading, Shock, Vibration
from simulators.fleet import build_fleet
from simulators.scenarios import MIXED_FLEET, SCENARIOS
from simulators.signals import DeviceSignal, Sample

CELL = BUILTIN_PROFILES["un38.3-cell"]
EXCURSION = {"hot-container": "T.2", "rough-road": "T.3", "drop": "T.4", "unpressurised-air": "T.1"}


def as_reading(s: Sample, seq: int) -> Reading:
    return Reading(v=1, device_id="d", shipment_id="s", seq=seq, ts="2026-11-22T08:00:00Z",
                   temperature_c=s.temperature_c, vibration=Vibration(peak_g=s.vib_peak_g, freq_hz=s.vib_freq_hz),
                   shock=Shock(peak_g=s.shock_peak_g, duration_ms=s.shock_duration_ms),
                   pressure_kpa=s.pressure_kpa, location=Location(lat=s.lat, lon=s.lon))


def test_samples_are_deterministic_in_any_order() -> None:
    a = DeviceSignal("nominal-road", 3, "dev")
    forward = [a.sample(k) for k in range(50)]
    b = DeviceSignal("nominal-road", 3, "dev")
    assert [b.sample(k) for k in reversed(range(50))][::-1] == forward
    assert DeviceSignal("nominal-road", 4, "dev").sample(10) != forward[10]


@pytest.mark.parametrize("scenario", sorted(EXCURSION))
def test_each_excursion_scenario_crosses_its_test_early(scenario: str) -> None:
    for device in ("p1", "p2", "p3"):
        sig = DeviceSignal(scenario, 1, device)
        tests = {c.test for k in range(20) for c in evaluate(CELL, as_reading(sig.sample(k), k))
                 if c.severity == "violation"}
        assert tests == {EXCURSION[scenario]}, (device, tests)


@pytest.mark.parametrize("scenario", sorted(s for s in SCENARIOS if s.startswith("nominal")))
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_nominal_scenarios_stay_inside_the_envelope(scenario: str, seed: int) -> None:
    sig = DeviceSignal(scenario, seed, "pack")
    for k in range(500):
        violations = [c for c in evaluate(CELL, as_reading(sig.sample(k), k)) if c.severity == "violation"]
        assert not violations, (k, violations)


def test_gps_moves_along_the_route() -> None:
    sig = DeviceSignal("nominal-road", 1, "pack")
    first, later = sig.sample(0), sig.sample(300)
    assert (first.lat, first.lon) != (later.lat, later.lon)


def test_unknown_scenario_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown scenario 'teleport'; known: drop, hot-container"):
        DeviceSignal("teleport", 1, "d")


def test_mixed_fleet_has_every_excursion_and_nominal_shipments() -> None:
    assert set(EXCURSION) <= set(MIXED_FLEET)
    assert sum(s.startswith("nominal") for s in MIXED_FLEET) >= 4
    fleet = build_fleet(shipments=len(MIXED_FLEET), packs=2, seed=9, unsigned_shipments=1)
    assert [d.scenario for d in fleet[::2]] == MIXED_FLEET
    assert all(d.key is None for d in fleet[-2:]) and all(d.key is not None for d in fleet[:-2])
    # Every generated body is a valid reading that verifies.
    for d in fleet:
        Reading.model_validate_json(d.reading(0.0))
