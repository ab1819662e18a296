"""RFC 3339 UTC timestamps with millisecond precision and a Z, as readings carry them: the one home
for writing them (`rfc3339`) and for reading one back as a POSIX epoch (`epoch`)."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def rfc3339(epoch: float | None = None) -> str:
    t = time.time() if epoch is None else epoch
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def epoch(ts: str) -> float:
    """The POSIX time of an RFC 3339 timestamp (RFC 3339 §5.6; a `Z` or a numeric offset).

    Up to microseconds are kept; digits beyond (RFC 3339 allows any number) are cut, not
    rounded, since `datetime` holds no finer. ValueError names the text if it is no instant.
    """
    head, dot, rest = ts.partition(".")
    if dot:  # fractional seconds: keep 6 digits, then whatever offset follows them
        digits = len(rest) - len(rest.lstrip("0123456789"))
        ts = f"{head}.{rest[:min(digits, 6)]}{rest[digits:]}"
    try:
        return datetime.fromisoformat(ts.replace("Z", "+00:00").replace("z", "+00:00")).timestamp()
    except ValueError:
        raise ValueError(f"{ts!r} is not an RFC 3339 instant") from None
