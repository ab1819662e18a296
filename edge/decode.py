"""Decode and check one telemetry message: bytes in, an accepted reading or a reason out.

Pure apart from the registry it is handed. Every way a payload can be wrong ends in
`InvalidReading(code, message)`: the code is a stable key counted in metrics, the
message says what was wrong in words a person can act on. Checks run cheapest first,
so a bad payload costs as little as possible and the signature is verified last.
"""

from __future__ import annotations

import json
from binascii import a2b_base64, b2a_base64
from dataclasses import dataclass

from pydantic import ValidationError

from packproof.canonical import signed_and_full
from packproof.crypto import DeviceVerifier
from packproof.edge.thresholds import Profile
from packproof.errors import InvalidReading
from packproof.reading import DeviceTopic, Reading
from packproof.rfc6962 import leaf_hash

MAX_PAYLOAD = 4096  # a reading is ~300 bytes; anything far larger is not one


@dataclass(frozen=True, slots=True)
class DeviceEntry:
    """What the ingestor knows of a registered device."""

    shipment_id: str
    verifier: DeviceVerifier | None  # the current key; None: registered as unsigned
    profile: Profile
    older: tuple[tuple[int, DeviceVerifier | None], ...] = ()  # (valid from seq, key) before a rotation
    revoked: bool = False
    current_from: int = 0  # first seq the current key signs

    @property
    def first_seq(self) -> int:
        """Where the device's seqs begin (its first key's start): a missing seq above it is a gap."""
        return self.older[0][0] if self.older else self.current_from

    def verifier_at(self, seq: int) -> DeviceVerifier | None:
        if seq >= self.current_from:
            return self.verifier
        valid = [v for start, v in self.older if start <= seq]
        return valid[-1] if valid else None


@dataclass(frozen=True, slots=True)
class Accepted:
    reading: Reading
    body: bytes  # RFC 8785 canonical bytes including sig: the Merkle leaf content
    leaf_hash: bytes
    entry: DeviceEntry
    check: tuple[bytes, bytes, bytes] | None = None  # (public key, signature, signed bytes) still to verify


def describe(exc: ValidationError) -> InvalidReading:
    """Turn pydantic's errors into one sentence naming each wrong field."""
    errors = exc.errors(include_url=False)
    if any(e["type"] == "json_invalid" for e in errors):
        msg = next(e["msg"] for e in errors if e["type"] == "json_invalid")
        return InvalidReading("malformed_json", f"payload is not valid JSON: {msg}")
    parts = []
    for e in errors[:4]:
        loc = ".".join(str(p) for p in e["loc"]) or "body"
        if e["type"] == "extra_forbidden":
            parts.append(f"unknown field {loc!r}")
        elif e["type"] == "missing":
            parts.append(f"missing field {loc!r}")
        else:
            got = repr(e.get("input"))
            parts.append(f"{loc}: {e['msg'].lower()} (got {got[:40]})")
    more = f" and {len(errors) - 4} more" if len(errors) > 4 else ""
    return InvalidReading("invalid_schema", "invalid reading: " + "; ".join(parts) + more)


@dataclass(frozen=True, slots=True)
class Plausibility:
    """Bounds a signed, well-formed reading must still fall within to be believed.

    A valid signature proves who wrote a reading, not that its seq or time make sense: one
    signed reading at seq 2^53-1 made its device's `missing` ~9e15, and readings dated 1970
    were stored. Each bound refuses to quarantine with its own reason code.
    """

    max_clock_ahead_s: float = 300.0  # a device clock this far ahead of ours is wrong; behind is store-and-forward
    earliest_ts: str = "2020-01-01T00:00:00"  # no pack reported before this (UTC, to the second)
    max_seq_jump: int = 1_000_000  # above the device's highest stored seq: ~11 days of 1 Hz readings lost


    def before_earliest(self, ts: str) -> bool:
        """Whether an RFC 3339 UTC `ts` is before `earliest_ts` (to the second, which compares as text)."""
        return ts[:19] < self.earliest_ts

    def seconds_ahead(self, epoch: float, now: float) -> float | None:
        """How far `epoch` is ahead of `now` when that is beyond `max_clock_ahead_s` (None: plausible).
        The one rule for a reading's `ts` and a custody event's: a clock ahead of ours is wrong;
        behind is store-and-forward (or a party signing what happened a while ago)."""
        ahead = epoch - now
        return ahead if ahead > self.max_clock_ahead_s else None


PLAUSIBLE = Plausibility()


def repeated_key(payload: bytes) -> str | None:
    """What is wrong with `payload`'s keys: a key that appears twice in one of its JSON objects; None if none.

    The exact, slow check (a Python-level parse): run only when the quick count in `decode`
    says the payload holds more quotes than the reading it parsed to. A payload the standard
    library cannot parse (the validating parser did) is refused too: what cannot be checked
    is not believed.
    """
    found: list[str] = []

    def pairs(items: list[tuple[str, object]]) -> dict[str, object]:
        keys = [k for k, _ in items]
        if not found and len(set(keys)) != len(keys):
            found.append(next(k for i, k in enumerate(keys) if k in keys[:i]))
        return dict(items)

    try:
        json.loads(payload, object_pairs_hook=pairs)
    except (ValueError, RecursionError) as exc:
        return f"cannot be checked for repeated keys ({exc})"
    return f"repeats the key {found[0]!r}" if found else None


def quote_count(reading: Reading) -> int:
    """Quote characters the JSON of `reading` holds when no key repeats: two per key and per string.

    Keys: its own fields as sent, plus two in each nested object; strings: the two ids, ts, sig.
    """
    keys = len(reading.model_fields_set) + (6 if reading.location is not None else 4)
    return 2 * (keys + (4 if reading.sig is not None else 3))


def bad_signature(reading: Reading) -> InvalidReading:
    return InvalidReading(
        "bad_signature",
        f"signature of reading {reading.reading_id} does not verify with the key registered "
        f"for device {reading.device_id} at seq {reading.seq}")


def decode(topic: str, payload: bytes, registry: dict[str, DeviceEntry],
           verify_signatures: bool = True, received_at: float | None = None, defer_verify: bool = False,
           limits: Plausibility = PLAUSIBLE) -> Accepted:
    """A valid reading from a registered device, or InvalidReading naming what is wrong.

    `defer_verify`: leave the signature check to the caller, who verifies many at once
    elsewhere (`Accepted.check`); everything else is checked here. The seq bound of `limits`
    needs the store's delivery state and is the ingestor's to apply.
    """
    if len(payload) > MAX_PAYLOAD:
        raise InvalidReading("too_large", f"payload is {len(payload)} bytes, more than {MAX_PAYLOAD}")
    where = DeviceTopic.parse(topic)
    if where.kind != "telemetry":
        raise InvalidReading("bad_topic", f"topic {topic!r} is not a telemetry topic")
    try:
        reading = Reading.model_validate_json(payload)
    except ValidationError as exc:
        raise describe(exc) from None
    # The parser keeps the last of two equal keys, so {"temperature_c": 80, "temperature_c": 20}
    # would be stored as 20 while a reader of the raw bytes sees 80. Once validated, no key or
    # string can hold an escaped quote (fixed names, plain-character values), so each repeated
    # key adds quotes: a count above the reading's sends the payload to the exact check, which
    # names the key.
    if payload.count(b'"') != quote_count(reading) and (problem := repeated_key(payload)) is not None:
        raise InvalidReading("duplicate_key", f"payload {problem}: which value was meant is ambiguous")
    if reading.device_id != where.device_id or reading.shipment_id != where.shipment_id:
        raise InvalidReading(
            "topic_mismatch",
            f"body names device {reading.device_id} / shipment {reading.shipment_id} but was "
            f"published on the topic of device {where.device_id} / shipment {where.shipment_id}")
    entry = registry.get(reading.device_id)
    if entry is None:
        raise InvalidReading("unknown_device", f"device {reading.device_id} is not registered")
    if entry.shipment_id != reading.shipment_id:
        raise InvalidReading(
            "shipment_mismatch",
            f"device {reading.device_id} is registered to shipment {entry.shipment_id}, "
            f"not {reading.shipment_id}")
    if entry.revoked:
        raise InvalidReading("revoked_device", f"device {reading.device_id} is revoked: its readings are refused")
    unsigned, body = signed_and_full(reading)
    verifier = entry.verifier_at(reading.seq)
    check = None
    if verifier is None:
        if reading.sig is not None:
            raise InvalidReading(
                "unexpected_signature",
                f"device {reading.device_id} is registered as unsigned but the reading carries a sig")
    elif reading.sig is None:
        raise InvalidReading("missing_signature", f"reading {reading.reading_id} has no sig")
    elif b2a_base64(sig := a2b_base64(reading.sig), newline=False).decode() != reading.sig:
        # Base64 spare bits: another spelling of the same signature would make another leaf.
        raise InvalidReading("bad_signature", f"sig of reading {reading.reading_id} is not canonical base64")
    elif verify_signatures and defer_verify:
        check = (verifier.public_key, sig, unsigned)
    elif verify_signatures and not verifier.verify(sig, unsigned):
        raise bad_signature(reading)
    if limits.before_earliest(reading.ts):
        raise InvalidReading(
            "ts_too_early",
            f"reading {reading.reading_id} is dated {reading.ts}, before {limits.earliest_ts}Z: the device "
            f"clock is unset or wrong, its time cannot be trusted")
    if received_at is not None and (ahead := limits.seconds_ahead(reading.epoch, received_at)) is not None:
        raise InvalidReading(
            "clock_skew",
            f"reading {reading.reading_id} is dated {reading.ts}, {ahead:,.0f} s ahead of the ingestor's clock "
            f"(more than {limits.max_clock_ahead_s:g} s): the device clock is wrong, its time cannot be trusted")
    return Accepted(reading, body, leaf_hash(body), entry, check)
