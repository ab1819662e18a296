"""Property tests over the payload decoder: no input crashes it.

Whatever bytes arrive on whatever topic, `decode` returns an accepted reading or raises
InvalidReading with a reason code and a message; nothing else escapes to the ingestor.
"""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from packproof.canonical import canonical_bytes, signing_bytes
from packproof.crypto import DeviceVerifier, b64, private_key_from_seed, public_key_bytes
from packproof.edge.decode import Accepted, DeviceEntry, decode
from packproof.edge.thresholds import BUILTIN_PROFILES
from packproof.errors import InvalidReading
from packproof.reading import Reading

KEY = private_key_from_seed(b"prop")
REGISTRY = {"dev-1": DeviceEntry("SHP-1", DeviceVerifier(public_key_bytes(KEY)), BUILTIN_PROFILES["un38.3-cell"]),
            "dev-u": DeviceEntry("SHP-1", None, BUILTIN_PROFILES["un38.3-cell"])}
TOPIC = "packproof/v1/SHP-1/dev-1/telemetry"
GOOD = {"v": 1, "device_id": "dev-1", "shipment_id": "SHP-1", "seq": 1, "ts": "2026-11-22T08:15:30.250Z",
        "temperature_c": 24.3, "vibration": {"peak_g": 0.4, "freq_hz": 22.0},
        "shock": {"peak_g": 0.0, "duration_ms": 0.0}, "pressure_kpa": 101.3}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12)


def outcome(topic: str, payload: bytes) -> str:
    try:
        result = decode(topic, payload, REGISTRY)
    except InvalidReading as exc:
        assert exc.code and exc.message
        return exc.code
    assert isinstance(result, Accepted)
    return "accepted"


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=600), st.sampled_from([TOPIC, "packproof/v1/SHP-1/dev-u/telemetry", "x/y", "a/b/c/d/e"]))
def test_arbitrary_bytes_end_stored_or_quarantined(payload: bytes, topic: str) -> None:
    outcome(topic, payload)


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(st.sampled_from([*GOOD, "sig", "extra"]), json_values, max_size=12))
def test_arbitrary_json_objects_end_stored_or_quarantined(doc: dict) -> None:  # type: ignore[type-arg]
    outcome(TOPIC, json.dumps(doc).encode())


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(GOOD)), json_values)
def test_one_field_mutated_from_a_good_reading(field: str, value: object) -> None:
    outcome(TOPIC, json.dumps({**GOOD, field: value}).encode())


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10**6), st.floats(-100, 200), st.binary(min_size=1, max_size=3), st.integers(0, 300))
def test_a_flipped_byte_never_changes_what_is_stored(seq: int, temp: float, mask: bytes,
                                                        where: int) -> None:
    r = Reading.model_validate({**GOOD, "seq": seq, "temperature_c": temp})
    body = canonical_bytes(r.model_copy(update={"sig": b64(KEY.sign(signing_bytes(r)))}))
    assert outcome(TOPIC, body) == "accepted"
    i = where % len(body)
    flipped = body[:i] + bytes([body[i] ^ (mask[0] or 1)]) + body[i + 1:]
    try:
        again = decode(TOPIC, flipped, REGISTRY)
    except InvalidReading:
        return
    # Accepted only if the flip spelled the same reading (e.g. a 17th digit that rounds to the
    # same double): what is stored and sealed is then the original canonical bytes.
    assert again.body == body
