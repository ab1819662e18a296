"""RFC 8785 (JSON Canonicalization Scheme) bytes of a reading, fast.

The general-purpose `rfc8785` package costs ~25 us a reading, most of an unsigned
pipeline (docs/benchmarks.md, field notes). Our schema is fixed, so the key order is known in
advance and every string is pattern-restricted to characters that JSON never escapes
(see `packproof.reading`); only numbers need RFC 8785 §3.2.2.3 care (ECMAScript
Number.prototype.toString). `tests/packproof/test_canonical.py` proves the output
byte-identical to the `rfc8785` package on many random readings.

Sorted key order (RFC 8785 §3.2.3, UTF-16 code units; all ASCII here):
device_id, location, pressure_kpa, seq, shipment_id, shock, sig, temperature_c, ts, v,
vibration.
"""

from __future__ import annotations

import json
from typing import Any

from packproof.reading import Reading


def es_number(x: float | int) -> str:
    """Serialize a number as ECMAScript's Number.prototype.toString does (RFC 8785 §3.2.2.3)."""
    if x.__class__ is float:
        # The common case first, with no other test (a reading has eight floats: this was
        # ~1.1 us a float, most of the canonical encoding). Python writes 1e-4 <= |x| < 1e16
        # in plain notation, inside ECMAScript's plain range (1e-6 <= |x| < 1e21), with
        # the same shortest round-trip digits; only a trailing ".0" differs. "inf" and
        # "nan" contain an "n", exponents an "e": both take the general path below.
        r = repr(x)
        if "e" not in r and "n" not in r:
            if r[-2:] == ".0":
                r = r[:-2]
                return "0" if r == "-0" else r
            return r
    return _es_number(x)


def _es_number(x: float | int) -> str:
    if isinstance(x, int):
        return str(x)
    if x != x or x in (float("inf"), float("-inf")):
        raise ValueError("NaN and Infinity have no JSON form")
    if x == 0:
        return "0"  # also -0.0
    r = repr(x)  # shortest round-trip digits, as ECMAScript requires
    if "e" not in r:
        return r[:-2] if r.endswith(".0") else r
    sign = ""
    if r[0] == "-":
        sign, r = "-", r[1:]
    mant, _, exp_s = r.partition("e")
    exp = int(exp_s) if exp_s else 0
    int_part, _, frac_part = mant.partition(".")
    if frac_part == "0":
        frac_part = ""
    digits = (int_part + frac_part).lstrip("0")
    # n: position of the decimal point relative to the first significant digit.
    n = len(int_part.lstrip("0")) + exp if int_part.strip("0") else exp - (len(frac_part) - len(frac_part.lstrip("0")))
    digits = digits.rstrip("0") or "0"
    k = len(digits)
    if k <= n <= 21:
        out = digits + "0" * (n - k)
    elif 0 < n <= 21:
        out = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        out = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        es = f"e+{e}" if e >= 0 else f"e-{-e}"
        out = (digits if k == 1 else digits[0] + "." + digits[1:]) + es
    return sign + out


def canonical_parts(r: Reading) -> tuple[str, str]:
    """The canonical text before and after the `sig` member (which sorts between them)."""
    n = es_number
    loc = r.location
    shock = r.shock
    vib = r.vibration
    head = (
        f'{{"device_id":"{r.device_id}",'
        + (f'"location":{{"lat":{n(loc.lat)},"lon":{n(loc.lon)}}},' if loc is not None else "")
        + f'"pressure_kpa":{n(r.pressure_kpa)},"seq":{r.seq},"shipment_id":"{r.shipment_id}",'
        f'"shock":{{"duration_ms":{n(shock.duration_ms)},"peak_g":{n(shock.peak_g)}}}'
    )
    tail = (
        f',"temperature_c":{n(r.temperature_c)},"ts":"{r.ts}","v":{r.v},'
        f'"vibration":{{"freq_hz":{n(vib.freq_hz)},"peak_g":{n(vib.peak_g)}}}}}'
    )
    return head, tail


def signing_bytes(r: Reading) -> bytes:
    """What a device signs: the canonical reading without `sig`."""
    head, tail = canonical_parts(r)
    return (head + tail).encode()


def canonical_bytes(r: Reading) -> bytes:
    """The canonical reading including `sig` when present: the Merkle leaf content."""
    head, tail = canonical_parts(r)
    if r.sig is None:
        return (head + tail).encode()
    return f'{head},"sig":"{r.sig}"{tail}'.encode()


def signed_and_full(r: Reading) -> tuple[bytes, bytes]:
    """Both forms from one pass: (signing bytes, canonical bytes). The ingestor needs both."""
    head, tail = canonical_parts(r)
    unsigned = (head + tail).encode()
    if r.sig is None:
        return unsigned, unsigned
    return unsigned, f'{head},"sig":"{r.sig}"{tail}'.encode()


def canonical_json(obj: Any) -> bytes:
    """RFC 8785 bytes of any JSON value: for block headers and other small records.

    Not on the per-reading hot path, so it favours plain correctness: sorted keys,
    ECMAScript numbers, minimal string escapes.
    """

    def enc(v: Any) -> str:
        if v is None or isinstance(v, bool):
            return json.dumps(v)
        if isinstance(v, int | float):
            return es_number(v)
        if isinstance(v, str):
            return json.dumps(v, ensure_ascii=False)
        if isinstance(v, list | tuple):
            return "[" + ",".join(enc(i) for i in v) + "]"
        if isinstance(v, dict):
            items = sorted(v.items(), key=lambda kv: kv[0].encode("utf-16-be"))
            return "{" + ",".join(f"{json.dumps(k, ensure_ascii=False)}:{enc(x)}" for k, x in items) + "}"
        raise TypeError(f"cannot canonicalize {type(v).__name__}")

    return enc(obj).encode()
