"""The end-to-end acknowledgement a device reads, and what it may resend because of it. Pure.

The ingestor publishes, retained on `packproof/v1/{shipment}/{device}/ack`:

    {"acked_seq": N, "missing": M, "highest": H, "gaps": [[a, b], ...]}

every seq from the device's first one up to N is durably stored (N = -1: nothing yet); H
is the highest stored seq; `gaps` lists up to 16 inclusive ranges of missing seqs between
N+1 and H, lowest first; M counts every missing seq between N and H. Older ingestors send
only `acked_seq` and `missing`: then H = N and there are no gaps, so everything above N is
a candidate for resending.

A payload that breaks the contract is refused whole (ValueError): acting on half of it
could drop a reading that was never stored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

MAX_GAPS = 16


@dataclass(frozen=True, slots=True)
class Ack:
    acked_seq: int
    missing: int
    highest: int
    gaps: tuple[tuple[int, int], ...] = ()


def _int(doc: dict[str, object], name: str, minimum: int) -> int:
    value = doc[name]
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def parse_ack(payload: bytes) -> Ack:
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise ValueError(f"not a JSON object: {payload[:80]!r}")
    for name in ("acked_seq", "missing"):
        if name not in doc:
            raise ValueError(f"no {name}")
    acked = _int(doc, "acked_seq", -1)
    missing = _int(doc, "missing", 0)
    highest = _int(doc, "highest", acked) if "highest" in doc else acked
    raw_gaps = doc.get("gaps", [])
    if not isinstance(raw_gaps, list) or len(raw_gaps) > MAX_GAPS:
        raise ValueError(f"gaps must be a list of at most {MAX_GAPS} [first, last] ranges, got {raw_gaps!r}")
    gaps: list[tuple[int, int]] = []
    floor = acked
    for g in raw_gaps:
        if (not isinstance(g, list) or len(g) != 2
                or not all(isinstance(x, int) and not isinstance(x, bool) for x in g)):
            raise ValueError(f"a gap must be [first, last] integers, got {g!r}")
        a, b = g
        if not floor < a <= b < highest:
            raise ValueError(f"gap {g} is not above acked_seq/the previous gap and below highest ({acked}, {highest})")
        gaps.append((a, b))
        floor = b
    return Ack(acked, missing, highest, tuple(gaps))


def resend_ranges(ack: Ack, below: int, *, stalled: bool = True) -> list[tuple[int, int]]:
    """Inclusive seq ranges worth resending: the listed gaps, and everything above the highest
    stored seq, up to `below` (exclusive: the first seq not yet sent at all).

    Above the highest stored seq, readings may simply be on their way: they are resent only
    when the ingestor is `stalled` (its highest has not moved for a resend period). Resending
    them while it is merely slow fed a resend storm in the soak benchmark (more duplicates
    than readings, buffers growing), the way TCP without congestion control collapses.
    """
    ranges = [(a, min(b, below - 1)) for a, b in ack.gaps if a < below]
    if stalled and ack.highest + 1 < below:
        ranges.append((ack.highest + 1, below - 1))
    return ranges
