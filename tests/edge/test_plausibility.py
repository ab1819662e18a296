"""Signed, well-formed readings that still cannot be believed, and payloads too large to keep whole.

Issue 12, items 7 and 9: a signed reading at seq 2^53-1 made its device's `missing` ~9e15,
readings dated 1970 and readings with a repeated JSON key were stored, and a 16 MB payload
was kept whole in quarantine. Each is now quarantined with its own reason, over a real
broker and store, without stopping the honest readings around it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json

import pytest

from packproof.canonical import canonical_bytes, signing_bytes
from packproof.crypto import DeviceVerifier, b64, public_key_bytes
from packproof.edge.decode import DeviceEntry, Plausibility, decode, repeated_key
from packproof.edge.thresholds import BUILTIN_PROFILES
from packproof.errors import InvalidReading
from packproof.reading import MAX_SEQ, Reading
from packproof.store import QUARANTINE_KEEP, Store
from tests.conftest import BrokerThread, Db, publish_all
from tests.edge.test_ingestor import KEY, reading, start_ingestor, store, topic

__all__ = ["store"]  # the fixture, shared with the ingestor's tests


def signed_with_repeat(seq: int) -> bytes:
    """A validly signed reading whose JSON then says temperature_c twice: 80 first, the signed 24.3 last."""
    body = canonical_bytes(reading(seq))
    return body.replace(b'"temperature_c":', b'"temperature_c":80.0,"temperature_c":', 1)


def spaced(seq: int) -> bytes:
    """An honest reading with whitespace before each colon: more `"` than keys is not the sign, repeats are."""
    return json.dumps(json.loads(canonical_bytes(reading(seq))), separators=(",", " : ")).encode()


def test_the_exact_check_names_the_repeated_key_at_any_depth() -> None:
    assert repeated_key(b'{"a":1,"b":{"c":1,"c":2}}') == "repeats the key 'c'"
    assert repeated_key(b'{"a":1,"\\u0061":2}') == "repeats the key 'a'"
    assert repeated_key(canonical_bytes(reading(1))) is None
    assert (repeated_key(b'{"a":NaN,') or "").startswith("cannot be checked for repeated keys")


def test_the_time_bounds_are_the_operators_to_set() -> None:
    registry = {"dev-1": DeviceEntry("SHP-1", DeviceVerifier(public_key_bytes(KEY)), BUILTIN_PROFILES["un38.3-cell"])}
    body = canonical_bytes(reading(1))  # dated 2026-11-22T08:15:30.250Z
    assert decode(topic(), body, registry).reading.seq == 1
    with pytest.raises(InvalidReading) as refused:
        decode(topic(), body, registry, limits=Plausibility(earliest_ts="2026-11-22T08:15:31"))
    assert refused.value.code == "ts_too_early"
    assert decode(topic(), body, registry, limits=Plausibility(earliest_ts="2026-11-22T08:15:30")).reading.seq == 1
    with pytest.raises(InvalidReading) as refused:
        decode(topic(), body, registry, received_at=reading(1).epoch - 61, limits=Plausibility(max_clock_ahead_s=60))
    assert refused.value.code == "clock_skew"


async def test_implausible_seqs_times_repeated_keys_and_oversized_payloads_are_quarantined(
        store: Store, mqtt_broker: BrokerThread) -> None:
    oversized = b"x" * 6000
    r = Reading.model_validate({**json.loads(canonical_bytes(reading(7, key=None))), "ts": "1970-01-01T00:00:05Z"})
    dated_1970 = canonical_bytes(r.model_copy(update={"sig": b64(KEY.sign(signing_bytes(r)))}))
    messages = [(topic(), canonical_bytes(reading(i))) for i in range(3)] + [
        (topic(), canonical_bytes(reading(MAX_SEQ))),  # signed, and 9e15 above the highest seq
        (topic(), canonical_bytes(reading(1_000_003))),  # one more than the largest jump allowed above 2
        (topic(), dated_1970),
        (topic(), signed_with_repeat(5)),
        (topic(), spaced(3)),
        (topic(), oversized),
    ]
    _, task = await start_ingestor(store, mqtt_broker.port, "ing-plausible",
                                   lambda i: i.stats.processed >= len(messages))
    await asyncio.to_thread(publish_all, mqtt_broker.port, messages)
    ing = await task
    assert (ing.stats.accepted, ing.stats.quarantined) == (4, 5)
    db = Db(store.url)
    rows = {code: (reason, bytes(payload)) for code, reason, payload in db.execute(
        "SELECT reason_code, reason, payload FROM quarantine ORDER BY id").fetchall()}
    assert sorted(rows) == ["duplicate_key", "seq_jump", "too_large", "ts_too_early"]
    assert db.execute("SELECT count(*) FROM quarantine WHERE reason_code='seq_jump'").fetchone() == (2,)
    assert "repeats the key 'temperature_c'" in rows["duplicate_key"][0]
    assert "dated 1970-01-01T00:00:05Z, before 2020-01-01T00:00:00Z" in rows["ts_too_early"][0]
    reason, kept = rows["too_large"]
    assert kept == oversized[:QUARANTINE_KEEP]
    assert f"kept the first 4,096 of 6,000 bytes, whole payload SHA-256 {hashlib.sha256(oversized).hexdigest()}" \
        in reason
    # The device's delivery state is its honest readings', and /metrics counts each reason.
    assert db.execute("SELECT last_seq, acked_seq, missing FROM device_stats WHERE device_id='dev-1'"
                      ).fetchone() == (3, 3, 0)
    counters = dict(db.execute("SELECT name, value FROM counters WHERE name LIKE 'quarantined:%'").fetchall())
    assert counters == {"quarantined:seq_jump": 2, "quarantined:ts_too_early": 1,
                        "quarantined:duplicate_key": 1, "quarantined:too_large": 1}
