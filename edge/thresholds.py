"""The UN 38.3 transport envelope as pure functions (UN Manual of Tests and Criteria §38.3.4).

A pack that saw conditions beyond what its type tests covered is outside its certified
envelope and must be inspected before use. Per test:

- T.1 altitude (§38.3.4.1): stored at 11.6 kPa or more. Below it: violation.
- T.2 thermal (§38.3.4.2): cycled between -40 °C and +72 °C (Rev. 5 Amendment 1 on;
  older editions +75 °C, so the upper bound is a profile parameter with its edition).
- T.3 vibration (§38.3.4.3): sine sweep 7-200 Hz; 1 g_n from 7 to 18 Hz, then a 0.8 mm
  amplitude, a = (2πf)²·0.8 mm, up to the cap (8 g_n for cells and small batteries,
  2 g_n for large batteries), then the cap up to 200 Hz. Outside the tested band we hold
  the nearest tested limit: below 7 Hz the 7 Hz limit, above 200 Hz the 200 Hz limit.
- T.4 shock (§38.3.4.4): half-sine, 150 g_n for 6 ms (cells, small batteries) or 50 g_n
  for 11 ms (large). The current edition lowers the peak for heavy batteries:
  min(cap, sqrt(K / mass_kg)) with K = 100850 (small) or 30000 (large). A pulse is beyond
  the envelope if its peak exceeds the limit or if its velocity change
  Δv = (2/π)·a·T exceeds the test pulse's: a longer pulse than tested carries more energy.

A value equal to a limit is inside the envelope ("up to"). Warning bands mark events worth
a look that are still inside (a hot container above 60 °C, a handling bump over 2 g_n).
A finding is data, never an exception.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from packproof.errors import ConfigError
from packproof.reading import G_N

Severity = Literal["violation", "warning"]


class Profile(BaseModel):
    """A UN 38.3 envelope plus warning bands; users may write their own (JSON)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    edition: str = "Rev.8"
    t1_min_kpa: float = Field(11.6, ge=0)
    t2_min_c: float = -40.0
    t2_max_c: float = 72.0
    t3_low_band_g: float = Field(1.0, gt=0)
    t3_low_band_max_hz: float = Field(18.0, gt=0)
    t3_min_hz: float = Field(7.0, ge=0)
    t3_amplitude_mm: float = Field(0.8, gt=0)
    t3_cap_g: float = Field(8.0, gt=0)
    t3_max_hz: float = Field(200.0, gt=0)
    t4_peak_g: float = Field(150.0, gt=0)
    t4_duration_ms: float = Field(6.0, gt=0)
    t4_mass_constant: float = Field(100850.0, gt=0)
    mass_kg: float | None = Field(None, gt=0)
    warn_temp_high_c: float = 60.0
    warn_temp_low_c: float = -20.0
    warn_pressure_kpa: float = 70.0  # a pressurised hold cruises near 75 kPa (8,000 ft)
    warn_shock_g: float = Field(2.0, ge=0)
    warn_vibration_fraction: float = Field(0.8, gt=0, le=1)

    @model_validator(mode="after")
    def _consistent(self) -> Profile:
        if not self.t2_min_c < self.t2_max_c:
            raise ValueError(f"t2_min_c {self.t2_min_c} must be below t2_max_c {self.t2_max_c}")
        if not self.t2_min_c <= self.warn_temp_low_c < self.warn_temp_high_c <= self.t2_max_c:
            raise ValueError("warning band must lie inside the T.2 range: "
                             f"{self.t2_min_c} <= {self.warn_temp_low_c} < {self.warn_temp_high_c} <= {self.t2_max_c}")
        if not self.t3_min_hz < self.t3_low_band_max_hz < self.t3_max_hz:
            raise ValueError("T.3 bands must satisfy t3_min_hz < t3_low_band_max_hz < t3_max_hz")
        if self.warn_pressure_kpa < self.t1_min_kpa:
            raise ValueError(f"warn_pressure_kpa {self.warn_pressure_kpa} is below t1_min_kpa {self.t1_min_kpa}")
        return self


BUILTIN_PROFILES: dict[str, Profile] = {
    p.name: p for p in (
        Profile(name="un38.3-cell"),
        Profile(name="un38.3-large", t3_cap_g=2.0, t4_peak_g=50.0, t4_duration_ms=11.0, t4_mass_constant=30000.0),
        Profile(name="un38.3-cell-rev4", edition="Rev.4", t2_max_c=75.0),
    )
}


def profile_problem(name: str, known: Collection[str]) -> str | None:
    """Why a shipment cannot be given profile `name`, or None: a name no ingestor can evaluate
    would fall back to the default envelope, silently judging the packs by another test."""
    if name in known:
        return None
    shown = name if len(name) <= 64 else name[:64] + "..."
    return f"unknown profile {shown!r}: known profiles are {', '.join(sorted(known))}"


def load_profiles(path: Path) -> dict[str, Profile]:
    """Builtin profiles, overridden or extended by a JSON list of profile objects."""
    try:
        doc = json.loads(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read profiles file {path}: {exc}") from exc
    except ValueError as exc:
        raise ConfigError(f"profiles file {path} is not JSON: {exc}") from exc
    if not isinstance(doc, list):
        raise ConfigError(f"profiles file {path}: expected a JSON list of profiles")
    out = dict(BUILTIN_PROFILES)
    for i, item in enumerate(doc):
        try:
            p = Profile.model_validate(item)
        except ValidationError as exc:
            e = exc.errors()[0]
            where = ".".join(str(x) for x in e["loc"]) or "profile"
            raise ConfigError(f"profiles file {path}, profile {i}: {where}: {e['msg']}") from exc
        out[p.name] = p
    return out


def t3_limit_g(p: Profile, freq_hz: float) -> float:
    f = min(max(freq_hz, p.t3_min_hz), p.t3_max_hz)
    if f <= p.t3_low_band_max_hz:
        return p.t3_low_band_g
    return min(p.t3_cap_g, (2 * math.pi * f) ** 2 * p.t3_amplitude_mm / 1000 / G_N)


def t4_peak_limit_g(p: Profile) -> float:
    if p.mass_kg is None:
        return p.t4_peak_g
    return min(p.t4_peak_g, math.sqrt(p.t4_mass_constant / p.mass_kg))


def half_sine_dv(peak_g: float, duration_ms: float) -> float:
    """Velocity change of a half-sine pulse, m/s: (2/π)·a·T."""
    return 2 / math.pi * peak_g * G_N * duration_ms / 1000


@dataclass(frozen=True, slots=True)
class Check:
    """One finding: which test, which quantity, how bad, against which limit."""

    test: str
    quantity: str
    severity: Severity
    value: float
    limit: float
    limit_crossed: str


class _Vib(Protocol):
    peak_g: float
    freq_hz: float


class _Shock(Protocol):
    peak_g: float
    duration_ms: float


class ReadingLike(Protocol):
    temperature_c: float
    pressure_kpa: float

    @property
    def vibration(self) -> _Vib: ...

    @property
    def shock(self) -> _Shock: ...


NOMINAL: tuple[Check, ...] = ()


def evaluate(p: Profile, r: ReadingLike | Any) -> tuple[Check, ...]:
    """At most one finding per test (the violation if any, else the warning)."""
    out: list[Check] | None = None
    kpa = r.pressure_kpa
    if kpa < p.warn_pressure_kpa:
        if kpa < p.t1_min_kpa:
            c = Check("T.1", "pressure_kpa", "violation", kpa, p.t1_min_kpa,
                      f"pressure_kpa {kpa:g} < {p.t1_min_kpa:g} kPa (T.1 altitude, {p.edition})")
        else:
            c = Check("T.1", "pressure_kpa", "warning", kpa, p.warn_pressure_kpa,
                      f"pressure_kpa {kpa:g} < {p.warn_pressure_kpa:g} kPa (warning band)")
        out = [c]
    t = r.temperature_c
    if t > p.warn_temp_high_c or t < p.warn_temp_low_c:
        if t > p.t2_max_c:
            c = Check("T.2", "temperature_c", "violation", t, p.t2_max_c,
                      f"temperature_c {t:g} > {p.t2_max_c:g} °C (T.2 upper, {p.edition})")
        elif t < p.t2_min_c:
            c = Check("T.2", "temperature_c", "violation", t, p.t2_min_c,
                      f"temperature_c {t:g} < {p.t2_min_c:g} °C (T.2 lower, {p.edition})")
        elif t > p.warn_temp_high_c:
            c = Check("T.2", "temperature_c", "warning", t, p.warn_temp_high_c,
                      f"temperature_c {t:g} > {p.warn_temp_high_c:g} °C (warning band)")
        else:
            c = Check("T.2", "temperature_c", "warning", t, p.warn_temp_low_c,
                      f"temperature_c {t:g} < {p.warn_temp_low_c:g} °C (warning band)")
        out = [c] if out is None else [*out, c]
    v = r.vibration
    if v.peak_g > min(p.t3_low_band_g, p.t3_cap_g) * p.warn_vibration_fraction:  # the lowest limit first
        limit = t3_limit_g(p, v.freq_hz)
        if v.peak_g > limit:
            c = Check("T.3", "vibration.peak_g", "violation", v.peak_g, limit,
                      f"vibration.peak_g {v.peak_g:g} g > {limit:.3g} g limit at {v.freq_hz:g} Hz (T.3, {p.edition})")
            out = [c] if out is None else [*out, c]
        elif v.peak_g > limit * p.warn_vibration_fraction:
            c = Check("T.3", "vibration.peak_g", "warning", v.peak_g, limit * p.warn_vibration_fraction,
                      f"vibration.peak_g {v.peak_g:g} g > {p.warn_vibration_fraction:.0%} of the "
                      f"{limit:.3g} g limit at {v.freq_hz:g} Hz (warning band)")
            out = [c] if out is None else [*out, c]
    s = r.shock
    if s.peak_g > p.warn_shock_g:
        peak_limit = t4_peak_limit_g(p)
        if s.peak_g > peak_limit:
            c = Check("T.4", "shock.peak_g", "violation", s.peak_g, peak_limit,
                      f"shock.peak_g {s.peak_g:g} g > {peak_limit:.4g} g (T.4 half-sine, {p.edition})")
        elif half_sine_dv(s.peak_g, s.duration_ms) > half_sine_dv(peak_limit, p.t4_duration_ms):
            c = Check("T.4", "shock.peak_g", "violation", s.peak_g, peak_limit,
                      f"shock {s.peak_g:g} g for {s.duration_ms:g} ms: velocity change "
                      f"{half_sine_dv(s.peak_g, s.duration_ms):.2f} m/s > the T.4 pulse's "
                      f"{half_sine_dv(peak_limit, p.t4_duration_ms):.2f} m/s ({peak_limit:.4g} g, "
                      f"{p.t4_duration_ms:g} ms)")
        else:
            c = Check("T.4", "shock.peak_g", "warning", s.peak_g, p.warn_shock_g,
                      f"shock.peak_g {s.peak_g:g} g > {p.warn_shock_g:g} g (handling event)")
        out = [c] if out is None else [*out, c]
    return NOMINAL if out is None else tuple(out)
