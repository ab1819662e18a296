"""UN 38.3 thresholds at each boundary of each test and profile.

Limits computed here from the Manual's own numbers (§38.3.4.1-4), not read back from the
module: T.3's amplitude rule a = (2πf)²·0.8 mm, T.4's mass formula sqrt(K/m).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest

from packproof.edge.thresholds import BUILTIN_PROFILES, Profile, evaluate, load_profiles, t3_limit_g, t4_peak_limit_g
from packproof.errors import ConfigError

G_N = 9.80665
CELL, LARGE, REV4 = (BUILTIN_PROFILES[n] for n in ("un38.3-cell", "un38.3-large", "un38.3-cell-rev4"))
EPS = 1e-6


def reading(t: float = 20.0, kpa: float = 101.3, vib: float = 0.2, hz: float = 30.0, shock: float = 0.0,
            ms: float = 0.0) -> SimpleNamespace:
    return SimpleNamespace(temperature_c=t, pressure_kpa=kpa, vibration=SimpleNamespace(peak_g=vib, freq_hz=hz),
                           shock=SimpleNamespace(peak_g=shock, duration_ms=ms))


def findings(p: Profile, **kw: float) -> dict[str, str]:
    return {c.test: c.severity for c in evaluate(p, reading(**kw))}


def amplitude_g(f: float) -> float:
    return (2 * math.pi * f) ** 2 * 0.8e-3 / G_N


def test_nominal_reading_has_no_findings() -> None:
    assert evaluate(CELL, reading()) == ()


@pytest.mark.parametrize("p", [CELL, LARGE, REV4], ids=lambda p: p.name)
@pytest.mark.parametrize(("kpa", "expected"), [
    (11.6, {"T.1": "warning"}), (11.6 - EPS, {"T.1": "violation"}), (70.0, {}), (70.0 - EPS, {"T.1": "warning"}),
    (0.0, {"T.1": "violation"}), (101.3, {}),
])
def test_t1_altitude(p: Profile, kpa: float, expected: dict[str, str]) -> None:
    assert findings(p, kpa=kpa) == expected


@pytest.mark.parametrize(("p", "upper"), [(CELL, 72.0), (LARGE, 72.0), (REV4, 75.0)], ids=["cell", "large", "rev4"])
def test_t2_thermal_upper_bound_follows_the_edition(p: Profile, upper: float) -> None:
    assert findings(p, t=upper) == {"T.2": "warning"}
    assert findings(p, t=upper + EPS) == {"T.2": "violation"}
    assert findings(p, t=60.0) == {}
    assert findings(p, t=60.0 + EPS) == {"T.2": "warning"}


@pytest.mark.parametrize("p", [CELL, LARGE, REV4], ids=lambda p: p.name)
def test_t2_thermal_lower_bound(p: Profile) -> None:
    assert findings(p, t=-40.0) == {"T.2": "warning"}
    assert findings(p, t=-40.0 - EPS) == {"T.2": "violation"}
    assert findings(p, t=-20.0) == {}
    assert findings(p, t=-20.0 - EPS) == {"T.2": "warning"}


@pytest.mark.parametrize(("p", "cap"), [(CELL, 8.0), (LARGE, 2.0)], ids=["cell", "large"])
@pytest.mark.parametrize("hz", [7.0, 12.0, 18.0, 18.5, 25.0, 40.0, 49.0, 51.0, 100.0, 200.0])
def test_t3_limit_follows_the_sweep(p: Profile, cap: float, hz: float) -> None:
    expected = 1.0 if hz <= 18 else min(cap, amplitude_g(hz))
    assert t3_limit_g(p, hz) == pytest.approx(expected)
    assert findings(p, vib=expected, hz=hz).get("T.3") == "warning"
    assert findings(p, vib=expected + EPS, hz=hz) == {"T.3": "violation"}
    assert findings(p, vib=0.8 * expected, hz=hz) == {}


def test_t3_cap_is_reached_where_the_amplitude_rule_meets_it() -> None:
    f_cell = math.sqrt(8.0 * G_N / 0.8e-3) / (2 * math.pi)   # ~49.8 Hz
    f_large = math.sqrt(2.0 * G_N / 0.8e-3) / (2 * math.pi)  # ~24.9 Hz
    assert 49 < f_cell < 51 and 24 < f_large < 26
    assert t3_limit_g(CELL, f_cell) == pytest.approx(8.0)
    assert t3_limit_g(CELL, f_cell - 1) < 8.0
    assert t3_limit_g(LARGE, f_large) == pytest.approx(2.0)


@pytest.mark.parametrize(("hz", "held_at"), [(0.5, 7.0), (3.0, 7.0), (250.0, 200.0), (5000.0, 200.0)])
def test_t3_outside_the_tested_band_holds_the_nearest_limit(hz: float, held_at: float) -> None:
    assert t3_limit_g(CELL, hz) == t3_limit_g(CELL, held_at)


@pytest.mark.parametrize(("p", "peak", "ms"), [(CELL, 150.0, 6.0), (LARGE, 50.0, 11.0)], ids=["cell", "large"])
def test_t4_shock_peak_and_pulse_energy(p: Profile, peak: float, ms: float) -> None:
    assert findings(p, shock=peak, ms=ms) == {"T.4": "warning"}  # the test pulse itself is inside
    assert findings(p, shock=peak + EPS, ms=1.0) == {"T.4": "violation"}
    assert findings(p, shock=2.0, ms=5.0) == {}
    assert findings(p, shock=2.0 + EPS, ms=5.0) == {"T.4": "warning"}
    # Below the peak but longer: more velocity change than the test pulse gave.
    assert findings(p, shock=peak * 0.9, ms=ms * 1.2) == {"T.4": "violation"}
    assert findings(p, shock=peak * 0.9, ms=ms * 1.1) == {"T.4": "warning"}


def test_t4_mass_formula_lowers_the_peak_for_heavy_batteries() -> None:
    heavy = CELL.model_copy(update={"mass_kg": 10.0})
    assert t4_peak_limit_g(heavy) == pytest.approx(math.sqrt(100850 / 10.0))  # ~100.4 g
    assert findings(heavy, shock=100.0, ms=1.0) == {"T.4": "warning"}
    assert findings(heavy, shock=101.0, ms=1.0) == {"T.4": "violation"}
    light = CELL.model_copy(update={"mass_kg": 1.0})
    assert t4_peak_limit_g(light) == 150.0  # capped
    big = LARGE.model_copy(update={"mass_kg": 100.0})
    assert t4_peak_limit_g(big) == pytest.approx(math.sqrt(300.0))


def test_findings_say_what_was_crossed() -> None:
    (c,) = evaluate(CELL, reading(t=80.0))
    assert (c.test, c.quantity, c.value, c.limit) == ("T.2", "temperature_c", 80.0, 72.0)
    assert "72" in c.limit_crossed and "T.2" in c.limit_crossed


def test_user_profiles_load_and_bad_ones_are_named(tmp_path: Path) -> None:
    f = tmp_path / "p.json"
    f.write_text(json.dumps([{"name": "carrier-0-45", "t2_min_c": 0, "t2_max_c": 45, "warn_temp_low_c": 5,
                              "warn_temp_high_c": 40}]))
    profiles = load_profiles(f)
    assert set(BUILTIN_PROFILES) < set(profiles)
    assert findings(profiles["carrier-0-45"], t=46.0) == {"T.2": "violation"}
    f.write_text(json.dumps([{"name": "x", "t2_max_c": "hot"}]))
    with pytest.raises(ConfigError, match=r"p.json, profile 0: t2_max_c: Input should be a valid number"):
        load_profiles(f)
    f.write_text(json.dumps([{"name": "x", "t2_min_c": 50, "t2_max_c": 45}]))
    with pytest.raises(ConfigError, match=r"t2_min_c 50.0 must be below t2_max_c 45.0"):
        load_profiles(f)
    f.write_text("{")
    with pytest.raises(ConfigError, match=r"is not JSON"):
        load_profiles(f)
