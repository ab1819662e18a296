"""`packproof health SERVICE`: container healthchecks that prove their own service is at work.

A healthcheck that tests a service's neighbours instead (a socket to the broker and the
store, a file left on a volume by an earlier run) passes with the service itself stopped.
Each check here asks for evidence only the running service produces:

- ingest: the ingestor's own status in the store (`ingestor:<client id>`, written by
  edge.ingestor on every change and every HEARTBEAT seconds) says it is connected to the
  broker, and was written within `max_age` seconds. A stopped ingestor wrote `stopped`; a
  killed one stops writing.
- seal: a sealer holds the sealer lock (an advisory lock of the store's schema on
  PostgreSQL, an flock of DATA_DIR/sealer.lock on SQLite: both end with the holder's
  process), and its status (`sealer`) says it is sealing and was written within `max_age`.
  `ledger.pub`, which outlives every run, proves nothing.

Each returns None (healthy) or one sentence saying what is wrong; they read, never write.
"""

from __future__ import annotations

import fcntl
import os
import time
from typing import Any

from packproof.db.urls import engine_of
from packproof.health import SEALER_STATUS, stale_or_idle
from packproof.paths import DataDir


def ingest_problem(statuses: dict[str, dict[str, Any]], client_id: str, max_age: float, now: float) -> str | None:
    st = statuses.get(f"ingestor:{client_id}")
    if st is None:
        return f"no ingestor with client id {client_id!r} has reported to this store"
    return stale_or_idle(f"ingestor {client_id!r}", st, "connected", max_age, now)


def seal_status_problem(statuses: dict[str, dict[str, Any]], max_age: float, now: float) -> str | None:
    return stale_or_idle("the sealer", statuses.get(SEALER_STATUS), "sealing", max_age, now)


def file_lock_held(dirs: DataDir) -> bool:
    """Whether a sealer holds DATA_DIR/sealer.lock. Taken and released at once when free: a sealer
    starting that instant finds it busy for microseconds and tries again (it polls)."""
    try:
        fd = os.open(dirs.root / "sealer.lock", os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # releases it, if we took it
    return False


async def pg_lock_held(url: str) -> bool:
    """Whether some session holds the sealer's advisory lock of this schema (it ends with its session)."""
    from packproof.db.postgres import SEALER_LOCK, PostgresDriver  # psycopg only for a PostgreSQL store

    conn = await PostgresDriver.connect(url, readonly=True)
    try:
        rows = await conn.fetch("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                                "AND classid = hashtext(current_schema())::oid AND objid = ?::oid", (SEALER_LOCK,))
        return bool(rows and rows[0][0])
    finally:
        await conn.close()


async def check(service: str, dirs: DataDir, client_id: str, max_age: float) -> str | None:
    from packproof.store import Store  # not at start-up: db drivers (every CLI run imports this module)

    if service == "seal":
        held = await pg_lock_held(dirs.store) if engine_of(dirs.store) == "postgresql" else file_lock_held(dirs)
        if not held:
            return "no sealer holds the sealer lock: none is running"
    store = await Store.open(dirs.store, readonly=True)
    try:
        statuses = await store.statuses()
    finally:
        await store.close()
    now = time.time()
    return ingest_problem(statuses, client_id, max_age, now) if service == "ingest" \
        else seal_status_problem(statuses, max_age, now)
