"""The custody event contract (packproof/custody.py): shape, bytes, hash and signatures.

- A known answer: one handover worked through by hand, its RFC 8785 bytes, hash and both
  signatures from the RFC 8032 §7.1 test keys; the bytes cross-checked with the `rfc8785`
  package, the signatures verified with PyNaCl (libsodium) while `cryptography` signed them.
- Random valid events of every kind: our canonical bytes are the `rfc8785` package's.
- Every malformed body is refused naming the field at fault.
- Every field changed after signing breaks the signature.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from typing import Any

import nacl.signing
import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from packproof.crypto import public_key_bytes
from packproof.custody import (
    EVENT_MODELS,
    HTTP_STATUS,
    KINDS,
    MAX_EVENT_BYTES,
    REFUSAL_CODES,
    HandedOver,
    canonical_event_bytes,
    countersign,
    event_from_object,
    event_hash,
    event_object,
    parse_event,
    parse_event_id,
    sign_event,
    signature_problem,
    signing_bytes,
)
from packproof.edge.custody import CustodyState  # the writer of test events reads a state, as parties do
from packproof.errors import InvalidCustodyEvent, PackproofError
from tests.custodyutil import Cast, key_of

# RFC 8032 §7.1, TEST 1 and TEST 2: published Ed25519 secret keys (and their public keys).
RFC8032_1 = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
RFC8032_1_PUB = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
RFC8032_2 = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb"
RFC8032_2_PUB = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c"

KAT_BODY: dict[str, Any] = {
    "v": 1, "kind": "handed-over", "event_id": "road-co:7", "actor": "road-co", "ts": "2026-11-22T08:15:30.250Z",
    "packs": ["PK-0001", "PK-0002"], "shipment_id": "SHP-2026-0042",
    "location": {"lat": 45.6306, "lon": 8.7281, "name": "MXP Cargo City, Terminal 2"},
    "prev": {"PK-0001": "a" * 64, "PK-0002": None}, "to": "air-co",
}
# Written out by hand from RFC 8785 §3.2: keys sorted by UTF-16 code units, no whitespace,
# numbers as ECMAScript prints them, null kept; `sig` and `countersig` left out.
KAT_SIGNING = (
    '{"actor":"road-co","event_id":"road-co:7","kind":"handed-over",'
    '"location":{"lat":45.6306,"lon":8.7281,"name":"MXP Cargo City, Terminal 2"},'
    '"packs":["PK-0001","PK-0002"],'
    '"prev":{"PK-0001":"' + "a" * 64 + '","PK-0002":null},'
    '"shipment_id":"SHP-2026-0042","to":"air-co","ts":"2026-11-22T08:15:30.250Z","v":1}'
)
# Computed once with this module (Ed25519 is deterministic, RFC 8032 §5.1.6), then checked
# below against PyNaCl and the rfc8785 package; pinned so that any change to the bytes shows.
KAT_SIG = "QNZdiUJPaTYd4aeOPc9kETjmzqq3CkeyNiK2GJhmVYKUxDAIC0xfa9dcSuPZsIk7NxrnzetvjVpX5pDSCrTIBw=="
KAT_COUNTERSIG = "D01Eko4xs7ztf34GTo17Wr+4BeLmearw/jSMUYKOX9PqgadmC9Hwy5xSw+DLc4HKUKRmSn9IKEsS/G0JJS47BQ=="
KAT_HASH = "0e02bc5442b4e14cc06a6b8dae85d7992e8ccc40f66b0043a05f7a6b3a195218"


def rfc_key(hex_secret: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(hex_secret))


def kat_event() -> dict[str, Any]:
    return countersign(sign_event(KAT_BODY, rfc_key(RFC8032_1)), rfc_key(RFC8032_2))


def test_known_answer_handover() -> None:
    obj = kat_event()
    event = parse_event(json.dumps(obj).encode())
    assert isinstance(event, HandedOver)
    assert signing_bytes(event).decode() == KAT_SIGNING
    assert (obj["sig"], obj["countersig"]) == (KAT_SIG, KAT_COUNTERSIG)
    assert event_hash(event) == KAT_HASH
    # The public keys are RFC 8032's: the secret keys were read as the RFC means them.
    assert public_key_bytes(rfc_key(RFC8032_1)).hex() == RFC8032_1_PUB
    assert public_key_bytes(rfc_key(RFC8032_2)).hex() == RFC8032_2_PUB


def test_known_answer_cross_checked_independently() -> None:
    """The bytes by the rfc8785 package, the hash by hashlib over them, the signatures by libsodium."""
    signed = {**KAT_BODY, "sig": KAT_SIG, "countersig": KAT_COUNTERSIG}
    unsigned = dict(KAT_BODY)
    assert rfc8785.dumps(unsigned) == KAT_SIGNING.encode()
    assert hashlib.sha256(rfc8785.dumps(signed)).hexdigest() == KAT_HASH
    for pub, sig in ((RFC8032_1_PUB, KAT_SIG), (RFC8032_2_PUB, KAT_COUNTERSIG)):
        nacl.signing.VerifyKey(bytes.fromhex(pub)).verify(KAT_SIGNING.encode(), base64.b64decode(sig))
    # libsodium signing the hand-written bytes gives the signatures `cryptography` gave (RFC 8032 is deterministic)
    for secret, sig in ((RFC8032_1, KAT_SIG), (RFC8032_2, KAT_COUNTERSIG)):
        by_sodium = nacl.signing.SigningKey(bytes.fromhex(secret)).sign(KAT_SIGNING.encode()).signature
        assert base64.b64encode(by_sodium).decode() == sig
    event = event_from_object(signed)
    assert canonical_event_bytes(event) == rfc8785.dumps(signed)
    assert signature_problem(event, bytes.fromhex(RFC8032_1_PUB), bytes.fromhex(RFC8032_2_PUB)) is None


def test_signatures_each_checked_against_its_own_key() -> None:
    event = event_from_object(kat_event())
    k1, k2 = bytes.fromhex(RFC8032_1_PUB), bytes.fromhex(RFC8032_2_PUB)
    assert signature_problem(event, k2, k2) == f"sig of road-co:7 does not verify with road-co's key {_kid(k2)}"
    assert signature_problem(event, k1, k1) == f"countersig of road-co:7 does not verify with air-co's key {_kid(k1)}"
    assert signature_problem(event, k1, None) == "countersig of road-co:7: no key of air-co to check it with"


def test_a_key_of_the_wrong_length_is_a_problem_not_a_crash() -> None:
    event = event_from_object(kat_event())
    assert signature_problem(event, b"k" * 31) == "actor key of road-co:7 is 31 bytes, not the 32 of an Ed25519 key"


def _kid(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:16]


def test_vocabulary() -> None:
    assert set(KINDS) == set(EVENT_MODELS)
    assert set(HTTP_STATUS) == set(REFUSAL_CODES)
    assert {HTTP_STATUS[c] for c in ("conflict", "wrong-prev", "replay", "out-of-order")} == {409}
    assert {HTTP_STATUS[c] for c in ("forbidden", "bad-signature", "revoked", "unknown-party")} == {403}
    assert HTTP_STATUS["malformed"] == 422
    assert issubclass(InvalidCustodyEvent, PackproofError) and InvalidCustodyEvent.code == "malformed"


# ---- every kind, random values: our bytes are RFC 8785's ----

text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40)
serials = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,12}\Z")
coords = st.tuples(st.floats(-90, 90), st.floats(-180, 180))


@st.composite
def valid_bodies(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(KINDS))
    n = 1 if kind in ("pack-registered", "lot-registered") else draw(st.integers(1, 4))
    packs = sorted(set(draw(st.lists(serials, min_size=n, max_size=n))))
    lat, lon = draw(coords)
    place: dict[str, Any] = {"lat": lat, "lon": lon}
    if draw(st.booleans()):
        place["name"] = draw(text)
    overrides: dict[str, Any] = {"location": place}
    if kind == "pack-registered":
        overrides.update(model=draw(text), rated_wh=draw(st.floats(1e-3, 1e7)), mass_kg=draw(st.floats(1e-3, 1e5)),
                         cell_lots=sorted(set(draw(st.lists(st.binary(min_size=32, max_size=32).map(
                             lambda b: hashlib.sha256(b).hexdigest()), max_size=3)))))
    elif kind == "inspected":
        overrides["finding"] = draw(text)
    elif kind == "received":
        overrides.update(result="accepted-with-remarks", remarks=draw(text))
    if draw(st.booleans()):
        overrides["shipment_id"] = draw(serials)
    prev = {p: draw(st.none() | st.binary(min_size=1, max_size=8).map(lambda b: hashlib.sha256(b).hexdigest()))
            for p in packs}
    if kind in ("pack-registered", "lot-registered"):
        prev = {p: None for p in packs}
    return Cast().body(CustodyState(), kind, draw(st.sampled_from(["maker-a", "road-co", "depot"])), packs,
                       seq=draw(st.integers(1, 2**53 - 1)), prev=prev, **overrides)


@settings(max_examples=300, deadline=None)
@given(valid_bodies())
def test_bytes_are_rfc8785_for_every_kind(body: dict[str, Any]) -> None:
    signed = sign_event(body, key_of(body["actor"]))
    if body["kind"] == "handed-over":
        signed = countersign(signed, key_of(body["to"]))
    event = parse_event(json.dumps(signed).encode())
    assert event_object(event) == signed
    assert signing_bytes(event) == rfc8785.dumps(body)
    assert canonical_event_bytes(event) == rfc8785.dumps(signed)
    assert event_hash(event) == hashlib.sha256(rfc8785.dumps(signed)).hexdigest()
    assert signature_problem(event, public_key_bytes(key_of(body["actor"])),
                             public_key_bytes(key_of(body.get("to", "air-co")))) is None
    assert parse_event_id(event.event_id) == (event.actor, event.seq)


def test_a_null_given_stays_in_the_signed_bytes() -> None:
    """An optional field sent as null was signed as null: dropping it would break the signature."""
    body = Cast().body(_empty(), "location", "road-co", ["PK-1"], shipment_id=None)
    event = event_from_object(sign_event(body, key_of("road-co")))
    assert b'"shipment_id":null' in signing_bytes(event)
    assert signature_problem(event, public_key_bytes(key_of("road-co"))) is None


def _empty() -> CustodyState:
    return CustodyState()


# ---- malformed bodies, each naming its field ----


def good(kind: str = "pack-registered", **fields: Any) -> dict[str, Any]:
    packs = ["PK-1"] if kind in ("pack-registered", "lot-registered") else ["PK-1", "PK-2"]
    body = Cast().body(_empty(), kind, "maker-a", packs, **fields)
    signed = sign_event(body, key_of("maker-a"))
    return countersign(signed, key_of("air-co")) if kind == "handed-over" else signed


def _set(obj: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    obj = copy.deepcopy(obj)
    *parents, last = path.split(".")
    target = obj
    for p in parents:
        target = target[p]
    if value is _DELETE:
        del target[last]
    else:
        target[last] = value
    return obj


_DELETE = object()

MALFORMED: list[tuple[str, str, Any, str, str]] = [
    # (kind, path, value, field named, words in the message)
    ("pack-registered", "v", 2, "v", "Input should be 1"),
    ("pack-registered", "v", True, "v", "Input should be 1"),
    ("pack-registered", "kind", "pack-stolen", "kind", "expected one of pack-registered"),
    ("pack-registered", "colour", "red", "colour", "Extra inputs are not permitted"),
    ("pack-registered", "location.altitude", 3.0, "location.altitude", "Extra inputs"),
    ("pack-registered", "ts", _DELETE, "ts", "a pack-registered event needs this field"),
    ("pack-registered", "location", _DELETE, "location", "needs this field"),
    ("pack-registered", "sig", _DELETE, "sig", "needs this field"),
    ("pack-registered", "ts", "2026-02-30T10:00:00.000Z", "ts", "not a real instant"),
    ("pack-registered", "ts", "2026-11-22T08:15:30Z", "ts", "should match pattern"),
    ("pack-registered", "ts", "2026-11-22T08:15:30.250+01:00", "ts", "should match pattern"),
    ("pack-registered", "event_id", "maker-b:1", "event_id", "must start with its actor 'maker-a'"),
    ("pack-registered", "event_id", "maker-a:0", "event_id", "should match pattern"),
    ("pack-registered", "event_id", "maker-a:01", "event_id", "should match pattern"),
    ("pack-registered", "actor", "Maker-A", "actor", "should match pattern"),
    ("pack-registered", "packs", [], "packs", "at least 1 item"),
    ("pack-registered", "serial", "PK-2", "serial", "one serial, the one in packs"),
    ("pack-registered", "prev", {}, "prev", "missing ['PK-1']"),
    ("pack-registered", "prev.PK-1", "A" * 64, "prev.PK-1", "should match pattern"),
    ("pack-registered", "prev.PK-1", "a" * 63, "prev.PK-1", "should match pattern"),
    ("pack-registered", "location.lat", 90.5, "location.lat", "less than or equal to 90"),
    ("pack-registered", "location.lon", "7.5", "location.lon", "valid number"),
    ("pack-registered", "location.name", "Torino\nplant", "location.name", "control character U+000A"),
    ("pack-registered", "location.name", "\ud800", "location.name", "valid string"),
    ("pack-registered", "location.name", "x" * 201, "location.name", "at most 200 characters"),
    ("pack-registered", "location.name", "", "location.name", "at least 1 character"),
    ("pack-registered", "rated_wh", 0.0, "rated_wh", "greater than 0"),
    ("pack-registered", "rated_wh", True, "rated_wh", "valid number"),
    ("pack-registered", "mass_kg", None, "mass_kg", "valid number"),
    ("pack-registered", "un38_3.date", "2026-13-01", "un38_3.date", "not a real calendar date"),
    ("pack-registered", "un38_3.results.T4", "maybe", "un38_3.results.T4", "'pass' or 'fail'"),
    ("pack-registered", "un38_3.results.T8", _DELETE, "un38_3.results.T8", "needs this field"),
    ("pack-registered", "cell_lots", ["b" * 64, "a" * 64], "cell_lots", "sorted and unique"),
    ("pack-registered", "sig", "c2ln", "sig", "should match pattern"),
    ("pack-registered", "sig", "A" * 85 + "B==", "sig", "not the canonical base64"),
    ("handed-over", "countersig", "A" * 85 + "B==", "countersig", "not the canonical base64"),
    ("handed-over", "packs", ["PK-2", "PK-1"], "packs", "sorted and unique"),
    ("handed-over", "packs", ["PK-1", "PK-1"], "packs", "sorted and unique"),
    ("handed-over", "prev.PK-3", None, "prev", "not in packs ['PK-3']"),
    ("handed-over", "to", "maker-a", "to", "not to its actor"),
    ("handed-over", "countersig", _DELETE, "countersig", "needs this field"),
    ("ownership-offered", "to", "maker-a", "to", "not to its actor"),
    ("ownership-accepted", "offer", "maker-a", "offer", "should match pattern"),
    ("received", "result", "accepted-with-remarks", "remarks", "needs its remarks"),
    ("received", "result", "maybe", "result", "'accepted', 'accepted-with-remarks' or 'rejected'"),
    ("inspected", "severity", "grave", "severity", "'info', 'minor', 'major' or 'critical'"),
    ("inspected", "finding", "y" * 2001, "finding", "at most 2000 characters"),
    ("delivered", "to", None, "to", "valid string"),
]


@pytest.mark.parametrize(("kind", "path", "value", "field", "words"), MALFORMED,
                         ids=[f"{k}:{p}={str(v)[:12]}" for k, p, v, _, _ in MALFORMED])
def test_malformed_is_refused_naming_its_field(kind: str, path: str, value: Any, field: str, words: str) -> None:
    obj = _set(good(kind), path, value)
    with pytest.raises(InvalidCustodyEvent, match=None) as exc:
        event_from_object(obj)
    assert exc.value.field == field
    assert words in str(exc.value)
    assert exc.value.code == "malformed"


@pytest.mark.parametrize(("data", "words"), [
    (b"\xff{}", "not UTF-8 JSON"),
    (b"{", "not UTF-8 JSON"),
    (b"[]", "a JSON object, got list"),
    (b'{"v": NaN}', "NaN is not JSON"),
    (b'{"kind": "location", "kind": "location"}', "field 'kind' appears twice"),
    (b" " * (MAX_EVENT_BYTES + 1), f"more than the {MAX_EVENT_BYTES} allowed"),
    (b"[" * 60_000, "nested too deeply"),
    (b'{"v": 1' + b"0" * 5000 + b"}", "Exceeds the limit"),
    (b'{"kind": "location", "packs": ' + b'{"a": ' * 10_000, "nested too deeply"),
])
def test_malformed_bytes(data: bytes, words: str) -> None:
    with pytest.raises(InvalidCustodyEvent, match=words):
        parse_event(data)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(KINDS), st.data())
def test_any_json_in_any_field_is_malformed_or_an_event(kind: str, data: st.DataObject) -> None:
    """A good event with any JSON value put at any of its paths, or in place of the whole: never another exception."""
    obj = good(kind)
    paths = _leaves(obj) + ["", "location", "prev", "packs"] + [f"new{i}" for i in range(2)]
    path = data.draw(st.sampled_from(paths))
    value = data.draw(json_values)
    body = value if path == "" else _put(obj, path, value) if not path.startswith("new") else {**obj, path: value}
    try:
        parse_event(json.dumps(body).encode())
    except InvalidCustodyEvent as exc:
        assert exc.code == "malformed" and str(exc)


def test_a_good_body_parses_from_its_bytes() -> None:
    for kind in KINDS:
        obj = good(kind)
        assert event_object(parse_event(json.dumps(obj).encode())) == obj


def test_sign_event_refuses_an_invalid_body_and_leaves_the_body_alone() -> None:
    body = Cast().body(_empty(), "location", "road-co", ["PK-1"])
    before = copy.deepcopy(body)
    signed = sign_event(body, key_of("road-co"))
    assert body == before and "sig" not in body and set(signed) == set(body) | {"sig"}
    with pytest.raises(InvalidCustodyEvent, match="location.lat"):
        sign_event({**body, "location": {"lat": 100.0, "lon": 0.0}}, key_of("road-co"))
    with pytest.raises(InvalidCustodyEvent, match="only a handed-over event is countersigned"):
        countersign(signed, key_of("air-co"))


def test_countersign_and_sign_in_either_order() -> None:
    body = Cast().body(_empty(), "handed-over", "road-co", ["PK-1"])
    a = countersign(sign_event(body, key_of("road-co")), key_of("air-co"))
    b = sign_event(countersign(body, key_of("air-co")), key_of("road-co"))
    assert a == b


@pytest.mark.parametrize(("text", "ok"), [
    ("maker-a:1", ("maker-a", 1)), ("maker-a:9007199254740991", ("maker-a", 2**53 - 1)),
    ("maker-a:9007199254740992", None), ("maker-a:0", None), ("maker-a", None), ("Maker:1", None), (":1", None),
])
def test_parse_event_id(text: str, ok: tuple[str, int] | None) -> None:
    if ok is None:
        with pytest.raises(ValueError, match="is not of the form <party>:<seq>"):
            parse_event_id(text)
    else:
        assert parse_event_id(text) == ok


# ---- tampering: every field changed after signing breaks the signature ----


def _leaves(obj: Any, prefix: str = "") -> list[str]:
    if isinstance(obj, dict):
        return [p for k, v in obj.items() for p in _leaves(v, f"{prefix}{k}.")]
    if isinstance(obj, list):
        return [p for i, v in enumerate(obj) for p in _leaves(v, f"{prefix}{i}.")]
    return [prefix[:-1]]


def _get(obj: Any, path: str) -> Any:
    for p in path.split("."):
        obj = obj[int(p)] if isinstance(obj, list) else obj[p]
    return obj


def _put(obj: Any, path: str, value: Any) -> Any:
    obj = copy.deepcopy(obj)
    *parents, last = path.split(".")
    target = obj
    for p in parents:
        target = target[int(p)] if isinstance(target, list) else target[p]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return obj


def _candidates(value: Any) -> list[Any]:
    """Values of the same type near `value`: one of them keeps the event valid."""
    if isinstance(value, bool) or value is None:
        return ["a" * 64]
    if isinstance(value, int):
        return [value + 1, value - 1]
    if isinstance(value, float):
        return [value + 0.5, value - 0.5, value * 0.9]
    assert isinstance(value, str)
    swapped = value[:-1] + ("0" if value[-1] != "0" else "1")
    flipped = value[:-1] + ("b" if value[-1] != "b" else "c")
    digits = [i for i, c in enumerate(value) if c.isdigit()]
    bumped = [value[:i] + str((int(value[i]) + 1) % 10) + value[i + 1:] for i in digits[-1:]]
    return [swapped, *bumped, flipped, value + "x", "fail", "pass", "accepted", "major"]


SIGNED_KINDS = ["pack-registered", "handed-over", "received", "inspected", "ownership-offered"]


@pytest.mark.parametrize("kind", SIGNED_KINDS)
def test_every_field_changed_breaks_the_signature(kind: str) -> None:
    obj = good(kind, shipment_id="SHP-1", **({"cell_lots": ["c" * 64]} if kind == "pack-registered" else {}),
               **({"result": "accepted-with-remarks", "remarks": "dented corner"} if kind == "received" else {}))
    actor, to = public_key_bytes(key_of("maker-a")), public_key_bytes(key_of("air-co"))
    assert signature_problem(event_from_object(obj), actor, to) is None
    unchangeable = {"v": "only 1 is valid", "kind": "another kind is another body"}
    if kind in ("pack-registered", "lot-registered"):
        unchangeable["serial"] = "it must equal packs.0 (changed with it below)"
    # Fields tied to another by the contract change together, as a forger would have to.
    joint: dict[str, Any] = {
        "actor": lambda o: {**o, "actor": "maker-b", "event_id": "maker-b:1"},
        "packs.0": lambda o: _rename(o, o["packs"][0], "PK-0"),
    }
    if "packs.1" in _leaves(obj):
        joint["packs.1"] = lambda o: _rename(o, o["packs"][1], "PK-3")
    for path, change in joint.items():
        problem = signature_problem(event_from_object(change(obj)), actor, to)
        assert problem is not None and problem.startswith("sig of"), path
    tried = []
    for path in _leaves(obj):
        if path in unchangeable or path in joint:
            continue
        original = _get(obj, path)
        for value in _candidates(original):
            if value == original:
                continue
            try:
                event = event_from_object(_put(obj, path, value))
            except InvalidCustodyEvent:
                continue
            problem = signature_problem(event, actor, to)
            assert problem is not None, f"{path}: {original!r} -> {value!r} still verifies"
            which = "countersig" if path == "countersig" else "sig"
            assert problem.startswith(f"{which} of {event.event_id} does not verify"), problem
            tried.append(path)
            break
        else:
            pytest.fail(f"no valid change found for {path} = {original!r}")
    assert set(tried) | set(unchangeable) | set(joint) == set(_leaves(obj))


def _rename(obj: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    out["packs"] = sorted(new if p == old else p for p in obj["packs"])
    out["prev"] = {new if p == old else p: h for p, h in obj["prev"].items()}
    if out.get("serial") == old:
        out["serial"] = new
    return out


def test_a_flipped_bit_in_either_signature_is_found() -> None:
    obj = kat_event()
    k1, k2 = bytes.fromhex(RFC8032_1_PUB), bytes.fromhex(RFC8032_2_PUB)
    for name in ("sig", "countersig"):
        raw = bytearray(base64.b64decode(obj[name]))
        for bit in (0, 200, 511):
            flipped = bytearray(raw)
            flipped[bit // 8] ^= 1 << (bit % 8)
            event = event_from_object({**obj, name: base64.b64encode(bytes(flipped)).decode()})
            problem = signature_problem(event, k1, k2)
            assert problem is not None and problem.startswith(f"{name} of road-co:7 does not verify")
