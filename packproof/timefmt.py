"""RFC 3339 UTC timestamps with millisecond precision and a Z, as readings carry them."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def rfc3339(epoch: float | None = None) -> str:
    t = time.time() if epoch is None else epoch
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
