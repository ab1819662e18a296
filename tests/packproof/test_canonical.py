"""Our fast RFC 8785 encoder against the reference `rfc8785` package, on many readings."""

from __future__ import annotations

import json
import math
import struct
from datetime import datetime

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from packproof.canonical import canonical_bytes, canonical_json, es_number, signing_bytes
from packproof.reading import Location, Reading, Shock, Vibration

ids = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,20}\Z")
ts = st.builds(lambda d, frac: d.strftime("%Y-%m-%dT%H:%M:%S") + frac + "Z",
               st.datetimes(datetime(2000, 1, 1), datetime(2099, 12, 31)), st.from_regex(r"\A(\.[0-9]{1,9})?\Z"))


def fl(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.one_of(st.floats(lo, hi, allow_nan=False), st.integers(int(lo), int(hi)).map(float),
                     st.sampled_from([lo, hi, 0.0, -0.0 if lo < 0 else 0.0, 1e-7 if hi > 0 else 0.0]))


readings = st.builds(
    Reading,
    v=st.just(1), device_id=ids, shipment_id=ids, seq=st.integers(0, 2**53 - 1), ts=ts,
    temperature_c=fl(-100, 200),
    vibration=st.builds(Vibration, peak_g=fl(0, 1000), freq_hz=fl(0, 10000)),
    shock=st.builds(Shock, peak_g=fl(0, 10000), duration_ms=fl(0, 10000)),
    pressure_kpa=fl(0, 500),
    location=st.none() | st.builds(Location, lat=fl(-90, 90), lon=fl(-180, 180)),
    sig=st.none() | st.binary(min_size=64, max_size=64).map(lambda b: __import__("base64").b64encode(b).decode()),
)


@settings(max_examples=1000, deadline=None)
@given(readings)
def test_reading_bytes_identical_to_reference(r: Reading) -> None:
    doc = r.model_dump(exclude_none=True)
    assert canonical_bytes(r) == rfc8785.dumps(doc)
    doc.pop("sig", None)
    assert signing_bytes(r) == rfc8785.dumps(doc)


@settings(max_examples=2000, deadline=None)
@given(st.integers(0, 2**64 - 1))
def test_any_double_formats_like_ecmascript(bits: int) -> None:
    x = struct.unpack("<d", bits.to_bytes(8, "little"))[0]
    if math.isfinite(x):
        assert es_number(x) == rfc8785.dumps(x).decode()


def test_number_edge_cases() -> None:
    cases = {0.0: "0", 24.0: "24", 1e21: "1e+21", 1e20: "100000000000000000000",
             1e-7: "1e-7", 1e-6: "0.000001", 5e-324: "5e-324", 0.1: "0.1", -1.5e-05: "-0.000015"}
    assert es_number(-0.0) == "0"
    for x, text in cases.items():
        assert es_number(x) == text
        assert es_number(-x) == ("0" if x == 0 else text[1:] if x < 0 else "-" + text)
    assert es_number(7) == "7"
    for bad in (math.inf, -math.inf, math.nan):  # the fast path must not let these through
        with pytest.raises(ValueError):
            es_number(bad)


def test_canonical_json_of_records_matches_reference() -> None:
    doc = {"height": 3, "prev_hash": "00" * 32, "z": [1.5, None, True, "é\n"], "a": {"b": 1e30}}
    assert canonical_json(doc) == rfc8785.dumps(doc)
    assert json.loads(canonical_json(doc)) == doc
