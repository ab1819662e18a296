"""A full disk, recognised as such by every writer, and reported where a person looks.

Why one place: a full disk surfaces differently per writer. A file write or fsync (the
ledger) raises OSError ENOSPC (or EDQUOT, a quota); SQLite says SQLITE_FULL, at a
statement or, in WAL mode, only at COMMIT; PostgreSQL says SQLSTATE 53100 ("could not
extend file"); and our store wraps each in a StoreError. Every writer must treat them
alike: keep what it has not committed, acknowledge none of it, retry with backoff until
space returns, and say so once rather than on every retry.

`DISK` is this process's record of which writers are stuck on a full disk and since when:
the writers report to it, `/health` and `packproof run`'s progress line read it. It is
process-wide because those readers share the process with the writers (`packproof run`);
a writer in another process logs the condition itself.
"""

from __future__ import annotations

import errno
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass, field

from packproof.timefmt import rfc3339

log = logging.getLogger(__name__)

_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
_SQLITE_FULL = 13  # primary result code; the extended codes keep it in the low byte
_PG_DISK_FULL = "53100"  # SQLSTATE disk_full: "could not extend file ...: No space left on device"
_PHRASES = ("database or disk is full", "could not extend file", "no space left on device", "disk quota exceeded")


def is_disk_full(exc: BaseException) -> bool:
    """Does `exc`, or an exception it was raised from, say the disk (or a quota) is full?

    Follows `__cause__`/`__context__`, since drivers' errors arrive wrapped in ours.
    """
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if _says_full(e):
            return True
        e = e.__cause__ or e.__context__
    return False


def _says_full(e: BaseException) -> bool:
    if isinstance(e, OSError) and e.errno in _ERRNOS:
        return True
    if isinstance(e, sqlite3.Error) and (getattr(e, "sqlite_errorcode", 0) or 0) & 0xFF == _SQLITE_FULL:
        return True
    if getattr(e, "sqlstate", None) == _PG_DISK_FULL:  # psycopg's errors carry the SQLSTATE
        return True
    text = str(e).lower()
    return any(p in text for p in _PHRASES)


@dataclass(frozen=True, slots=True)
class DiskFull:
    """One writer stuck on a full disk: which, since when (wall clock), and its latest error."""

    component: str
    since: float
    error: str

    @property
    def since_text(self) -> str:
        return rfc3339(self.since)


class DiskWatch:
    """Which writers of this process currently fail for lack of space (thread-safe: the simulator
    reports from its own thread). The first failure of an episode is logged at once, then a
    reminder at most every `remind_every` s, and the recovery with how long intake was paused."""

    def __init__(self, remind_every: float = 60.0) -> None:
        self.remind_every = remind_every
        self._lock = threading.Lock()
        self._full: dict[str, DiskFull] = {}
        self._reminded: dict[str, float] = {}

    def failed(self, component: str, exc: BaseException) -> None:
        now, mono = time.time(), time.monotonic()
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        with self._lock:
            first = self._full.get(component)
            self._full[component] = DiskFull(component, first.since if first else now, text)
            remind = first is None or mono - self._reminded.get(component, 0.0) >= self.remind_every
            if remind:
                self._reminded[component] = mono
        if first is None:
            log.error("disk full: the %s cannot write (%s); holding what it has not written and retrying "
                      "until space is freed", component, text)
        elif remind:
            log.error("disk full: the %s still cannot write, for %.0f s now (%s)", component, now - first.since, text)

    def cleared(self, component: str) -> None:
        """A write of `component` succeeded: if it was stuck, say how long for."""
        if component not in self._full:  # the common path: one dict lookup, no lock
            return
        with self._lock:
            was = self._full.pop(component, None)
            self._reminded.pop(component, None)
        if was is not None:
            log.warning("disk space is back: the %s writes again after %.1f s", component, time.time() - was.since)

    def current(self) -> list[DiskFull]:
        with self._lock:
            return sorted(self._full.values(), key=lambda d: (d.since, d.component))

    def summary(self) -> str | None:
        """One line for a person, e.g. `DISK FULL since ...Z (ingestor, sealer): intake paused`; None when clear."""
        full = self.current()
        if not full:
            return None
        return (f"DISK FULL since {full[0].since_text} ({', '.join(d.component for d in full)}): "
                "intake paused, nothing unwritten is acknowledged; it resumes when space is freed")


DISK = DiskWatch()


@dataclass(slots=True)
class Backoff:
    """Delays between retries of a failing write: `first`, doubling, at most `cap` s.

    A small cap: the retries cost little (a failing write is refused at once), and the
    cap is how late intake resumes after space returns.
    """

    first: float = 0.25
    cap: float = 2.0
    _next: float = field(default=0.0, init=False)

    def delay(self) -> float:
        d = self._next or self.first
        self._next = min(d * 2, self.cap)
        return d

    def reset(self) -> None:
        self._next = 0.0
