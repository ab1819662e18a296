"""RFC 3339 UTC timestamps with millisecond precision and a Z, as readings carry them."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def rfc3339(epoch: float | None = None) -> str:
    t = time.time() if epoch is None else epoch
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def epoch_of(text: str) -> float:
    """An RFC 3339 UTC time (a reading's or a custody event's `ts`, already checked by its contract) as
    epoch seconds; fractions beyond microseconds are cut (datetime holds no finer)."""
    head, dot, frac = text.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{head}{dot}{frac[:6]}+00:00").timestamp()
