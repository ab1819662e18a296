"""What a broker refused, counted and logged without letting a flood fill the log.

A failed login, a publish on another device's topic or a subscription the rules deny is
the first trace of a misconfigured device or of someone probing the broker: it must reach
a log line and a counter (`packproof_broker_refused_total{kind=...}` on /metrics when the
broker runs inside `packproof run`). A client retrying a wrong password in a loop must not
fill the disk, so each kind logs at most one line per `every` seconds and that line says
how many were refused since the last one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from packproof.errors import StoreError
from packproof.store import Store

log = logging.getLogger("packproof.broker")

KINDS = ("login", "publish", "subscribe")


@dataclass
class Refusals:
    """Counts of refusals by kind; `refuse` is called on the broker's event loop, `snapshot` from anywhere."""

    every: float = 10.0
    counts: Counter[str] = field(default_factory=Counter)
    _unlogged: Counter[str] = field(default_factory=Counter)
    _logged_at: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def refuse(self, kind: str, detail: str, now: float | None = None) -> bool:
        """Count one refusal; log it unless this kind was logged less than `every` s ago. True if logged."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self.counts[kind] += 1
            last = self._logged_at.get(kind)
            if last is not None and now - last < self.every:
                self._unlogged[kind] += 1
                return False
            since, self._unlogged[kind] = self._unlogged[kind], 0
            self._logged_at[kind] = now
        more = f" ({since} more {kind} refusals in the last {now - last:.0f} s)" if since and last is not None else ""
        log.warning("broker refused %s: %s%s", kind, detail, more)
        return True

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {k: self.counts[k] for k in KINDS}


async def forward_refusals(refusals: Refusals, store: Store, stop: asyncio.Event, every: float = 5.0) -> None:
    """Add what the broker refused to the store's counters every `every` s (and once more at `stop`),
    so /metrics, served by the API from the store, shows it (`packproof_broker_refused_total`)."""
    flushed: Counter[str] = Counter()
    while True:
        now = refusals.snapshot()
        try:
            await store.add_to_counters({f"broker_refused:{k}": n - flushed[k] for k, n in now.items()})
            flushed = Counter(now)
        except StoreError as exc:
            log.warning("could not record the broker's refusals (%s); will retry", exc)
        if stop.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
