"""The certificate's claims over generated readings (Hypothesis): what must hold whatever the journey.

MKT is cross-checked against the textbook formula computed directly (no log-sum-exp shift), and lies
between the lowest and the highest temperature, at or above their mean; the seqs carried and the
gaps declared add up to those expected; no time is counted twice across the warning band and beyond
the envelope; every violation reading is inside a violation excursion.
"""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from packproof.api.certificate.claims import DH_OVER_R_K, KELVIN, Inputs, claims_of
from packproof.edge.thresholds import BUILTIN_PROFILES, evaluate
from packproof.reading import Location, Reading, Shock, Vibration
from packproof.timefmt import rfc3339

T0 = 1_795_000_000.0


@st.composite
def journeys(draw: st.DrawFn) -> list[Reading]:
    n = draw(st.integers(1, 80))
    seqs = sorted(draw(st.sets(st.integers(0, 120), min_size=n, max_size=n)))
    out = []
    t = T0
    for s in seqs:
        t += draw(st.sampled_from([30.0, 60.0, 60.0, 60.0, 5000.0]))
        out.append(Reading(
            v=1, device_id="D", shipment_id="S", seq=s, ts=rfc3339(t),
            temperature_c=draw(st.floats(-50, 90, allow_nan=False)),
            vibration=Vibration(peak_g=draw(st.floats(0, 12)), freq_hz=draw(st.floats(0, 250))),
            shock=Shock(peak_g=draw(st.sampled_from([0.0, 1.0, 3.0, 60.0, 200.0])),
                        duration_ms=draw(st.sampled_from([0.0, 6.0, 11.0]))),
            pressure_kpa=draw(st.sampled_from([101.0, 75.0, 60.0, 9.0])), location=Location(lat=1.0, lon=2.0)))
    return out


@settings(max_examples=120, deadline=None)
@given(journeys())
def test_claims_hold_together(readings: list[Reading]) -> None:
    p = BUILTIN_PROFILES["un38.3-cell"]
    c = claims_of(Inputs("D", "S", p, readings, 0, (), 300.0, 0))
    temps = [r.temperature_c for r in readings]
    naive = DH_OVER_R_K / -math.log(sum(math.exp(-DH_OVER_R_K / (t + KELVIN)) for t in temps) / len(temps)) - KELVIN
    assert c.mkt_c is not None and math.isclose(c.mkt_c, naive, abs_tol=1e-3)
    assert min(temps) - 1e-3 <= c.mkt_c <= max(temps) + 1e-3
    assert c.mkt_c >= sum(temps) / len(temps) - 1e-3  # Jensen: exp(-1/T) is convex over these T
    k = c.completeness
    assert k.carried + k.missing == k.expected == readings[-1].seq + 1
    span = readings[-1].epoch - readings[0].epoch
    for q in c.quantities:
        assert 0 <= q.time_in_warning_s + q.time_beyond_s <= span + 1e-6
    for r in readings:
        for chk in evaluate(p, r):
            assert any(e.test == chk.test and e.severity == chk.severity and e.start_seq <= r.seq <= e.end_seq
                       for e in c.excursions), (r.seq, chk)
    by_test = {t.test: t for t in c.tests}
    for e in c.excursions:
        assert by_test[e.test].verdict in ("warning", "violation")
    assert (c.overall.verdict == "fit") == (c.overall.reasons == ["all-clear"])
