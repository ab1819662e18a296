"""Driving a `Store` from a test or a benchmark in ways production never does.

Production writes only inside the ingestor's own transaction (`Store.transaction` around
`Store.write_rows`, with its reads of delivery state and stored rows); a test that needs rows
in a store writes a batch it knows to be new in one transaction of its own. Some tests also
reach the store's own connection: a per-connection setting (SQLite's page limit, to fill the
disk) or its session (PostgreSQL's backend pid, to kill it) is on that connection only.
"""

from __future__ import annotations

from packproof.db.driver import Driver
from packproof.records import IngestBatch
from packproof.store import Store


async def write_batch(store: Store, batch: IngestBatch) -> None:
    """One write transaction for a batch whose readings are known to be new: the ingestor's write path."""
    async with store.transaction("writing an ingest batch"):
        await store.write_rows(batch)


def driver_of(store: Store) -> Driver:
    """The store's own connection, for settings and sessions that belong to it alone."""
    return store._db
