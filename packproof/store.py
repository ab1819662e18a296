"""The off-chain store: SQLite (default) or PostgreSQL, chosen by URL, behind one class.

A block seals a contiguous run of readings in store order (ids `first_id..last_id`; ids
are dense because rows are only ever appended, one write transaction at a time: see
packproof/db), so a reading's block height and leaf index are recorded by that range:
leaf index = id - first_id. Sealing then writes one row per block, not one update per
reading.

One writer connection per process (the ingestor and the sealer share it, serialised by a
lock so a query never runs inside another task's transaction on the connection), and any
number of readers (the API). Every query path the API uses is served by an index or a maintained
aggregate (`device_stats`, `excursions`, `counters`); none scans all readings.

A reading is acknowledged to the broker only after the batch holding it is durably
committed, so a crash loses nothing that was acknowledged.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from bisect import bisect_right
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from packproof import tiles
from packproof.canonical import canonical_json
from packproof.crypto import b64, weak_key_problem
from packproof.db.driver import Driver
from packproof.db.urls import engine_of, redact
from packproof.diskfull import is_disk_full
from packproof.errors import ConfigError, DiskFullError, ProofError, RegistryConflict, StoreError
from packproof.intake import IntakeKey
from packproof.parties import PARTIES, added_record, key_problem, key_rotated_record, party_problem, revoked_record
from packproof.reading import DEFAULT_PROFILE
from packproof.records import (
    AnchorMined,
    AnchorRow,
    AnchorSent,
    AnchorState,
    BlockRecord,
    CheckpointRecord,
    CustodyEventRecord,
    CustodyHead,
    CustodyRefusedRow,
    CustodyStep,
    DeliveryState,
    DeviceBatchStats,
    DeviceKey,
    DeviceRecord,
    DeviceStats,
    Dispute,
    Disputes,
    Excursion,
    IngestBatch,
    LeafPlace,
    LogBlock,
    LogUpdate,
    PackCustody,
    PartyKey,
    PartyRecord,
    QuarantinePreview,
    QuarantineRow,
    ReadingRecord,
    ReadingRow,
    Refusal,
    RegistryLeaf,
    SealRow,
    SeriesRow,
    ShipmentListing,
    ShipmentRecord,
    StoredRow,
    TrackedPack,
    TrackerClaim,
)
from packproof.rfc6962 import leaf_hash
from packproof.timefmt import rfc3339
from packproof.watermark import Watermarks

SCHEMA_VERSION = 7
# Steps from each older version to the next, run in one transaction when a store is opened
# (column types in braces as in SCHEMA).
MIGRATIONS: dict[int, str] = {
    1: "ALTER TABLE device_stats ADD COLUMN gaps TEXT NOT NULL DEFAULT '[]';",  # seq ranges not received
    2: "DROP INDEX IF EXISTS excursions_open;",  # now by device, for a batch's devices; gaps: all ranges
    # Each row's intake MAC (packproof/intake.py). Rows stored before have none: the sealer
    # seals those below `intake_mac_from` as before, and demands a MAC from every later one.
    3: "ALTER TABLE readings ADD COLUMN intake_mac {BLOB};"
       "INSERT INTO meta(key, value) SELECT 'intake_mac_from', CAST(coalesce(max(id), 0) + 1 AS TEXT) FROM readings;"
       # quarantine rows from before have no sealed record; the audit checks those from this id on
       "INSERT INTO meta(key, value) SELECT 'quarantine_sealed_from', CAST(coalesce(max(id), 0) + 1 AS TEXT) "
       "FROM quarantine;",
    # The transparency log (issue 16): its tables are new (SCHEMA creates them); the log over the
    # blocks sealed before is built by the sealer's first start (Sealer.recover), not here, since
    # it needs every leaf hash and may take a while on a large store.
    4: "",
    # `registry_leaves` (SCHEMA creates it) indexes the registry record leaves by the device
    # they name; the leaves stored before are indexed by `_index_registry_leaves` after the steps.
    5: "",
    # `anchors` (ANCHORS_SCHEMA, part of SCHEMA, creates it): the log's checkpoints anchored on an
    # Ethereum chain (issue 17); new, so nothing to carry over.
    6: "",
}

# Column types in braces are the engine's (packproof/db: BLOB, REAL, INT, ID, AUTO_ID).
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS shipments(
    shipment_id TEXT PRIMARY KEY, profile TEXT NOT NULL, created_at {REAL} NOT NULL);
CREATE TABLE IF NOT EXISTS devices(
    device_id TEXT PRIMARY KEY, shipment_id TEXT NOT NULL REFERENCES shipments(shipment_id),
    public_key {BLOB}, registered_at {REAL} NOT NULL, revoked_at {REAL}, revoked_reason TEXT);
CREATE TABLE IF NOT EXISTS device_keys(
    device_id TEXT NOT NULL REFERENCES devices(device_id), valid_from_seq {INT} NOT NULL,
    public_key {BLOB}, added_at {REAL} NOT NULL, PRIMARY KEY(device_id, valid_from_seq));
CREATE INDEX IF NOT EXISTS devices_shipment ON devices(shipment_id);
CREATE TABLE IF NOT EXISTS readings(
    id {ID}, device_id TEXT NOT NULL, seq {INT} NOT NULL,
    shipment_id TEXT NOT NULL, ts TEXT NOT NULL, received_at {REAL} NOT NULL,
    body {BLOB} NOT NULL, leaf_hash {BLOB} NOT NULL, intake_mac {BLOB},
    UNIQUE(device_id, seq));
CREATE INDEX IF NOT EXISTS readings_shipment ON readings(shipment_id, id);
CREATE TABLE IF NOT EXISTS quarantine(
    id {AUTO_ID}, received_at {REAL} NOT NULL, topic TEXT NOT NULL,
    payload {BLOB} NOT NULL, reason_code TEXT NOT NULL, reason TEXT NOT NULL,
    device_id TEXT, shipment_id TEXT);
CREATE INDEX IF NOT EXISTS quarantine_device ON quarantine(device_id, id);
CREATE INDEX IF NOT EXISTS quarantine_reason ON quarantine(reason_code, id);
CREATE TABLE IF NOT EXISTS device_stats(
    device_id TEXT PRIMARY KEY, shipment_id TEXT NOT NULL,
    reading_count {INT} NOT NULL, sealed_count {INT} NOT NULL DEFAULT 0,
    first_seq {INT} NOT NULL, last_seq {INT} NOT NULL,
    first_ts TEXT NOT NULL, last_ts TEXT NOT NULL, last_received_at {REAL} NOT NULL,
    acked_seq {INT} NOT NULL, missing {INT} NOT NULL, gaps TEXT NOT NULL DEFAULT '[]');
CREATE INDEX IF NOT EXISTS device_stats_shipment ON device_stats(shipment_id);
CREATE TABLE IF NOT EXISTS excursions(
    id {ID}, device_id TEXT NOT NULL, shipment_id TEXT NOT NULL,
    test TEXT NOT NULL, quantity TEXT NOT NULL, severity TEXT NOT NULL,
    start_ts TEXT NOT NULL, end_ts TEXT NOT NULL, start_seq {INT} NOT NULL,
    end_seq {INT} NOT NULL, peak {REAL} NOT NULL, limit_value {REAL} NOT NULL,
    limit_desc TEXT NOT NULL, reading_count {INT} NOT NULL, open {INT} NOT NULL);
CREATE INDEX IF NOT EXISTS excursions_shipment ON excursions(shipment_id, id);
CREATE INDEX IF NOT EXISTS excursions_open ON excursions(device_id) WHERE open = 1;
CREATE TABLE IF NOT EXISTS cosignatures(
    size {INT} NOT NULL, witness TEXT NOT NULL, line TEXT NOT NULL, received_at {REAL} NOT NULL,
    PRIMARY KEY(size, witness));
CREATE TABLE IF NOT EXISTS blocks(
    height {INT} PRIMARY KEY, hash {BLOB} NOT NULL, first_id {INT} NOT NULL,
    last_id {INT} NOT NULL UNIQUE, leaf_count {INT} NOT NULL, header TEXT NOT NULL,
    signature TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS registry_leaves(
    device_id TEXT NOT NULL, leaf_id {INT} NOT NULL, PRIMARY KEY(device_id, leaf_id));
CREATE TABLE IF NOT EXISTS counters(name TEXT PRIMARY KEY, value {INT} NOT NULL);
CREATE TABLE IF NOT EXISTS parties(
    party_id TEXT PRIMARY KEY, name TEXT NOT NULL, roles TEXT NOT NULL, added_at {REAL} NOT NULL,
    revoked_at {REAL}, revoked_reason TEXT);
CREATE TABLE IF NOT EXISTS party_keys(
    party_id TEXT NOT NULL REFERENCES parties(party_id), valid_from_seq {INT} NOT NULL,
    public_key {BLOB} NOT NULL, added_at {REAL} NOT NULL, PRIMARY KEY(party_id, valid_from_seq));
CREATE TABLE IF NOT EXISTS custody_events(
    event_id TEXT PRIMARY KEY, actor TEXT NOT NULL, seq {INT} NOT NULL, kind TEXT NOT NULL, ts TEXT NOT NULL,
    hash {BLOB} NOT NULL UNIQUE, body {BLOB} NOT NULL, leaf_id {INT} NOT NULL UNIQUE, shipment_id TEXT,
    received_at {REAL} NOT NULL, UNIQUE(actor, seq));
CREATE INDEX IF NOT EXISTS custody_events_shipment ON custody_events(shipment_id, leaf_id);
CREATE TABLE IF NOT EXISTS custody_event_packs(
    serial TEXT NOT NULL, position {INT} NOT NULL, event_id TEXT NOT NULL, kind TEXT NOT NULL, ts TEXT NOT NULL,
    actor TEXT NOT NULL, owner TEXT, transporter TEXT, holder TEXT, PRIMARY KEY(serial, position));
CREATE INDEX IF NOT EXISTS custody_event_packs_event ON custody_event_packs(event_id);
CREATE TABLE IF NOT EXISTS custody_packs(
    serial TEXT PRIMARY KEY, tracker TEXT, registration {BLOB} NOT NULL, position {INT} NOT NULL,
    head {BLOB} NOT NULL, owner TEXT, transporter TEXT, holder TEXT, state TEXT NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS custody_packs_one_per_tracker ON custody_packs(tracker) WHERE tracker IS NOT NULL;
CREATE INDEX IF NOT EXISTS custody_packs_registration ON custody_packs(registration);
CREATE TABLE IF NOT EXISTS custody_refused(
    id {AUTO_ID}, received_at {REAL} NOT NULL, body {BLOB} NOT NULL, code TEXT NOT NULL, reason TEXT NOT NULL,
    actor TEXT, event_id TEXT);
CREATE INDEX IF NOT EXISTS custody_refused_actor ON custody_refused(actor, id);
CREATE INDEX IF NOT EXISTS custody_refused_anonymous ON custody_refused(id)
    WHERE code IN ('malformed', 'unknown-party', 'bad-signature');

CREATE TABLE IF NOT EXISTS log_tiles(
    level {INT} NOT NULL, idx {INT} NOT NULL, hashes {BLOB} NOT NULL, PRIMARY KEY(level, idx));
CREATE TABLE IF NOT EXISTS log_blocks(height {INT} PRIMARY KEY, log_end {INT} NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS checkpoints(
    size {INT} PRIMARY KEY, root {BLOB} NOT NULL, note TEXT NOT NULL, signed_at {REAL} NOT NULL);
"""

# One row per anchor transaction (schema 7, issue 17): what it anchors, the transaction as last sent
# (a resend keeps the nonce and replaces hash and fees), where it was mined, and its state
# (packproof.anchor.anchor_state). Fees in wei per gas (EIP-1559).
ANCHORS_SCHEMA = """
CREATE TABLE IF NOT EXISTS anchors(
    id {AUTO_ID}, chain_id {INT} NOT NULL, contract TEXT NOT NULL, size {INT} NOT NULL, root {BLOB} NOT NULL,
    note_hash {BLOB} NOT NULL, tx_hash {BLOB} NOT NULL, nonce {INT} NOT NULL, max_fee_per_gas {INT} NOT NULL,
    max_priority_fee_per_gas {INT} NOT NULL, sent_at {REAL} NOT NULL, sends {INT} NOT NULL DEFAULT 1,
    block_number {INT}, block_hash {BLOB}, block_time {INT}, gas_used {INT}, status TEXT NOT NULL, error TEXT,
    updated_at {REAL} NOT NULL);
CREATE INDEX IF NOT EXISTS anchors_status ON anchors(status, id);
CREATE INDEX IF NOT EXISTS anchors_contract ON anchors(chain_id, contract, size);
"""
SCHEMA += ANCHORS_SCHEMA
ANCHOR_COLUMNS = ("id, chain_id, contract, size, root, note_hash, tx_hash, nonce, max_fee_per_gas, "
                  "max_priority_fee_per_gas, sent_at, sends, block_number, block_hash, block_time, gas_used, "
                  "status, error, updated_at")

READING_COLUMNS = (("id", "INT"), ("device_id", "TEXT"), ("seq", "INT"), ("shipment_id", "TEXT"), ("ts", "TEXT"),
                   ("received_at", "REAL"), ("body", "BLOB"), ("leaf_hash", "BLOB"), ("intake_mac", "BLOB"))
STATUS_PREFIX = "status:"  # meta keys holding a component's own account of itself (Store.set_status)


def _named_device(record: Any) -> str | None:
    """The device a registry record names (`device-registered`, `device-key-rotated`,
    `device-revoked`); None for one naming none (`shipment-profile-changed`)."""
    device_id = record.get("device_id") if isinstance(record, dict) else None
    return device_id if isinstance(device_id, str) else None


def _status_of(text: str) -> dict[str, Any]:
    """A status row as a dict; one that is not a JSON object (edited by hand, cut short) says so
    instead of breaking every reader (/health, /metrics, the healthchecks)."""
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    return value if isinstance(value, dict) else {"state": "unreadable", "text": text[:200]}
REGISTRY = "~registry"  # device id of the registry's record leaves; no real device id can start with "~"
QUARANTINE = "~quarantine"  # device id of the quarantine decisions' record leaves (seq: the quarantine row's id)
CUSTODY = "~custody"  # device id of accepted custody events' record leaves (seq: the global accept order, from 0)

EXCURSION_COLUMNS = (
    "id, device_id, shipment_id, test, quantity, severity, start_ts, end_ts, start_seq, "
    "end_seq, peak, limit_value, limit_desc, reading_count, open"
)


def _anchor_of(r: Sequence[Any]) -> AnchorRow:
    return AnchorRow(int(r[0]), int(r[1]), r[2], int(r[3]), bytes(r[4]), bytes(r[5]), bytes(r[6]), int(r[7]),
                     int(r[8]), int(r[9]), float(r[10]), int(r[11]), None if r[12] is None else int(r[12]),
                     None if r[13] is None else bytes(r[13]), None if r[14] is None else int(r[14]),
                     None if r[15] is None else int(r[15]), AnchorState(r[16]), r[17], float(r[18]))


def _excursion_of(r: Sequence[Any]) -> Excursion:
    """An `excursions` row (EXCURSION_COLUMNS) as the record: the one place column names meet field names."""
    return Excursion(id=r[0], device_id=r[1], shipment_id=r[2], test=r[3], quantity=r[4], severity=r[5],
                     start=r[6], end=r[7], start_seq=r[8], end_seq=r[9], peak=r[10], limit=r[11],
                     limit_crossed=r[12], readings=r[13], open=bool(r[14]))


def _reading_columns(row_id: int, r: ReadingRow, mac: bytes | None) -> tuple[Any, ...]:
    """A reading's `readings` row in READING_COLUMNS order: the one place the write path names them."""
    return (row_id, r.device_id, r.seq, r.shipment_id, r.ts, r.received_at, r.body, r.leaf_hash, mac)


def _stats_columns(s: DeviceBatchStats) -> tuple[Any, ...]:
    """A device's batch stats in the order `Store.write_rows` inserts them into device_stats."""
    return (s.device_id, s.shipment_id, s.reading_count, s.first_seq, s.last_seq, s.first_ts, s.last_ts,
            s.last_received_at, s.acked_seq, s.missing, s.gaps)


def _excursion_columns(e: Excursion) -> tuple[Any, ...]:
    return (e.id, e.device_id, e.shipment_id, e.test, e.quantity, e.severity, e.start, e.end, e.start_seq,
            e.end_seq, e.peak, e.limit, e.limit_crossed, e.readings, 1 if e.open else 0)








def quarantine_record(q: QuarantineRow) -> dict[str, Any]:
    """The sealed record of a quarantine decision: enough to tell its row deleted or edited, not the payload."""
    return {"record": "quarantine", "quarantine_id": q.id, "received_at": rfc3339(q.received_at), "topic": q.topic,
            "device_id": q.device_id, "shipment_id": q.shipment_id, "reason_code": q.reason_code, "reason": q.reason,
            "payload_sha256": hashlib.sha256(q.payload).hexdigest(), "payload_size": len(q.payload)}




QUARANTINE_KEEP = 4096  # bytes of a payload kept as evidence; beyond it, its size and SHA-256
# Custody refusals nobody can be held to (review 1.7): a body that is no event, an unknown actor, a
# signature that does not verify. POST /custody/events needs no token, so anyone can send these
# at will: each is counted (`custody_refused:<code>`), and only the latest REFUSED_RING of them
# are kept. The index `custody_refused_anonymous` has the same predicate (the trim uses it).
ANONYMOUS_REFUSALS = ("malformed", "unknown-party", "bad-signature")
REFUSED_RING = 10_000
_ANONYMOUS_SQL = ", ".join(f"'{c}'" for c in ANONYMOUS_REFUSALS)


def kept_evidence(payload: bytes, reason: str) -> tuple[bytes, str]:
    """What a quarantine row keeps of `payload`: all of it, or a prefix with the whole's size and digest.

    A 16 MB message once became a 17.8 MB row and one page of /quarantine 157 MB; the prefix
    shows what was sent, the digest lets whoever holds the original prove it was this one.
    """
    if len(payload) <= QUARANTINE_KEEP:
        return payload, reason
    return payload[:QUARANTINE_KEEP], (
        f"{reason}; kept the first {QUARANTINE_KEEP:,} of {len(payload):,} bytes, "
        f"whole payload SHA-256 {hashlib.sha256(payload).hexdigest()}")


def _seq_of(body: bytes) -> int | None:
    """The `seq` of a reading's JSON body, or None when the body is not a reading."""
    try:
        seq = json.loads(body).get("seq")
    except (ValueError, AttributeError):
        return None
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else None


def _blob(value: Any) -> bytes:
    """A BLOB column's value; SQLite hands back TEXT where a row was edited with a text function
    (`replace(body, ...)`), which the audit must still read to name the edit."""
    return value.encode() if isinstance(value, str) else bytes(value)


def _ddl(driver: Driver) -> str:
    return SCHEMA.format(**driver.types)


def _in(values: Sequence[Any]) -> str:
    return ",".join("?" * len(values))


CHUNK = 400  # values per IN list: under SQLite's oldest limit of 999 parameters, two per key


def _chunks(values: Sequence[Any]) -> list[Sequence[Any]]:
    return [values[i:i + CHUNK] for i in range(0, len(values), CHUNK)]


def store_error(what: str, exc: BaseException) -> StoreError:
    """The error to raise for a driver's: a DiskFullError saying "disk full" when it is one, so every
    writer (ingestor, sealer, registry changes) and every message treats a full disk alike."""
    if is_disk_full(exc):
        return DiskFullError(f"{what}: disk full ({str(exc).strip()})")
    return StoreError(f"{what}: {exc}")


class Store:
    """Async access to the off-chain store; driver errors become StoreError."""

    def __init__(self, db: Driver, url: str, intake_key: IntakeKey | None = None) -> None:
        """`intake_key`: MACs every row this store writes (packproof/intake.py). Without it rows are
        written with none, and the sealer quarantines them instead of sealing them."""
        self._db = db
        self.intake_key = intake_key
        self.custody_refused_ring = REFUSED_RING  # anonymous custody refusals kept (`refuse_custody`)
        self.url = url
        self.label = redact(url)  # for messages: never the password
        self.engine = db.engine
        self._lock = asyncio.Lock()
        self._tx_owner: asyncio.Task[Any] | None = None

    @property
    def path(self) -> Path:
        """The SQLite file, for tools that open it directly; a PostgreSQL store has none."""
        from packproof.db.sqlite import sqlite_path  # only the engine in use: aiosqlite for SQLite
        if self.engine != "sqlite":
            raise StoreError(f"{self.label} is not a SQLite store")
        return sqlite_path(self.url)

    @classmethod
    async def open(cls, target: str | Path, *, readonly: bool = False, intake_key: IntakeKey | None = None) -> Store:
        """Open the store a URL names: `sqlite:///path` (or a bare path), `postgresql://...`.

        A writer given `intake_key` checks it is the key the store's other writers use."""
        url = str(target)
        db: Driver
        if engine_of(url) == "postgresql":
            from packproof.db.postgres import PostgresDriver  # only the engine in use: psycopg for PostgreSQL
            db = await PostgresDriver.connect(url, readonly=readonly)
        else:
            from packproof.db.sqlite import SqliteDriver  # only the engine in use: aiosqlite for SQLite
            db = await SqliteDriver.connect(target, readonly=readonly)
        store = cls(db, url, intake_key)
        try:
            if readonly:
                await store._check_schema()
            else:
                await store._migrate()
                if intake_key is not None:
                    await store._bind_intake_key(intake_key)
        except BaseException as exc:
            await db.close()  # a driver thread or socket would otherwise keep the process alive
            if isinstance(exc, db.errors):
                raise store_error(f"cannot open store {store.label}", exc) from exc
            raise
        return store

    async def _version(self) -> int | None:
        if not await self._db.table_exists("meta"):
            return None
        rows = await self._db.fetch("SELECT value FROM meta WHERE key='schema_version'")
        return int(rows[0][0]) if rows else None

    async def _migrate(self) -> None:
        """Create the schema, or bring an older store up to SCHEMA_VERSION keeping its data."""
        async with self._db.transaction():  # one migrator at a time, however many processes start
            version = await self._version()
            if version is not None and version > SCHEMA_VERSION:
                raise StoreError(f"{self.label}: schema version {version} is newer than this packproof "
                                 f"({SCHEMA_VERSION}); upgrade packproof")
            for v in range(version or SCHEMA_VERSION, SCHEMA_VERSION):
                for statement in MIGRATIONS[v].format(**self._db.types).split(";"):
                    if statement.strip():
                        await self._db.execute(statement)
                await self._db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(v + 1),))
            for statement in _ddl(self._db).split(";"):
                if statement.strip():
                    await self._db.execute(statement)
            await self._db.execute("INSERT INTO meta(key, value) VALUES ('schema_version', ?) "
                                   "ON CONFLICT(key) DO NOTHING", (str(SCHEMA_VERSION),))
            if version is not None and version < 3:
                await self._rebuild_gaps()
            if version is not None and version < 6:
                await self._index_registry_leaves()

    async def _bind_intake_key(self, key: IntakeKey) -> None:
        """The first keyed writer records its key's id; one holding another key is refused, before it writes.

        Otherwise a service given the wrong key file would write rows the sealer quarantines,
        or (a sealer) quarantine every row the ingestors write.
        """
        async with self._db.transaction():
            await self._db.execute("INSERT INTO meta(key, value) VALUES ('intake_key_id', ?) "
                                   "ON CONFLICT(key) DO NOTHING", (key.key_id,))
            rows = await self._db.fetch("SELECT value FROM meta WHERE key='intake_key_id'")
        if rows[0][0] != key.key_id:
            held = f"key {key.key_id}" + (f" from {key.source}" if key.source else "")
            raise ConfigError(f"{self.label}: its rows are MACed with intake key {rows[0][0]}, but this service holds "
                              f"{held}; give every ingestor, sealer and registry command the same intake key file "
                              "(--intake-key-file, PACKPROOF_INTAKE_KEY_FILE; made by `packproof intake-key`)")

    async def intake_mac_from(self) -> int:
        """Rows with an id below this were stored before intake MACs existed (schema 4) and carry none."""
        rows = await self._fetch("SELECT value FROM meta WHERE key='intake_mac_from'")
        return int(rows[0][0]) if rows else 0

    async def quarantine_sealed_from(self) -> int:
        """Quarantine rows with an id below this were written before their decisions were sealed (schema 4)."""
        rows = await self._fetch("SELECT value FROM meta WHERE key='quarantine_sealed_from'")
        return int(rows[0][0]) if rows else 0

    async def records(self, device_id: str) -> list[StoredRow]:
        """Every record leaf of one kind (REGISTRY, QUARANTINE), sealed or not, in store order."""
        rows = await self._fetch(
            "SELECT id, device_id, seq, shipment_id, ts, body, leaf_hash FROM readings WHERE device_id=? ORDER BY seq",
            (device_id,))
        return sorted((StoredRow(r[0], r[1], r[2], r[3], r[4], bytes(r[5]), bytes(r[6])) for r in rows),
                      key=lambda r: r.id)

    def _mac(self, row_id: int, leaf: bytes) -> bytes | None:
        return self.intake_key.mac(row_id, leaf) if self.intake_key is not None else None

    async def _rebuild_gaps(self) -> None:
        """Before version 3 `gaps` listed only the first 16 ranges; it must now hold them all."""
        for device_id, acked in await self._db.fetch("SELECT device_id, acked_seq FROM device_stats WHERE missing > 0"):
            rows = await self._db.fetch("SELECT seq FROM readings WHERE device_id=? AND seq > ? ORDER BY seq",
                                        (device_id, acked))
            wm = Watermarks()
            wm.restore(device_id, acked, acked, [])
            for (seq,) in rows:
                wm.add(device_id, seq)
            await self._db.execute("UPDATE device_stats SET gaps=? WHERE device_id=?",
                                   (wm.stored_gaps_json(device_id), device_id))

    async def _index_registry_leaves(self) -> None:
        """Before version 6 `registry_records` searched every registry leaf's bytes; index those
        stored before by the `device_id` their canonical JSON names, as `_append_record` now does.
        In Python, not in each engine's JSON dialect: a few rows per device, once."""
        for leaf_id, body in await self._db.fetch("SELECT id, body FROM readings WHERE device_id=? ORDER BY seq",
                                                  (REGISTRY,)):
            device_id = _named_device(json.loads(bytes(body)))
            if device_id is not None:
                await self._db.execute("INSERT INTO registry_leaves(device_id, leaf_id) VALUES (?,?) "
                                       "ON CONFLICT DO NOTHING", (device_id, leaf_id))

    async def _check_schema(self) -> None:
        try:
            version = await self._version()
        except self._db.errors as exc:
            raise StoreError(f"{self.label}: cannot read the schema version: {exc}") from exc
        if version is None:
            raise StoreError(f"{self.label} holds no packproof store (has the ingestor run?)")
        if version != SCHEMA_VERSION:
            raise StoreError(f"{self.label}: schema version {version}, expected {SCHEMA_VERSION}")

    async def close(self) -> None:
        await self._db.close()

    async def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """A read: inside this task's own transaction, or between transactions, never inside another's."""
        try:
            if self._tx_owner is not None and self._tx_owner is asyncio.current_task():
                return await self._db.fetch(sql, params)
            async with self._lock:
                return await self._db.fetch(sql, params)
        except self._db.errors as exc:
            raise StoreError(f"store query failed: {exc}") from exc

    @asynccontextmanager
    async def transaction(self, what: str) -> AsyncIterator[None]:
        """One write transaction, serialised with every other writer of this store, in any process."""
        async with self._lock:
            self._tx_owner = asyncio.current_task()
            try:
                async with self._db.transaction():
                    yield
            except self._db.errors as exc:
                raise store_error(f"{what} failed", exc) from exc
            finally:
                self._tx_owner = None

    # ---- registry -------------------------------------------------------------------
    # Every change to the registry is also appended as a record leaf (device id REGISTRY,
    # canonical JSON with a `record` field naming its kind), so the sealer seals it like a
    # reading and a key cannot be swapped afterwards without breaking the ledger.

    async def _append_record(self, record: dict[str, Any], now: float) -> None:
        """Inside a write transaction: the registry record leaf, indexed by the device it names
        (`registry_leaves`, read by `registry_records`)."""
        rows = await self._db.fetch("SELECT coalesce(max(seq), -1) + 1 FROM readings WHERE device_id=?", (REGISTRY,))
        leaf_id = await self._append_leaf(REGISTRY, rows[0][0], record, now)
        if (device_id := _named_device(record)) is not None:
            await self._db.execute("INSERT INTO registry_leaves(device_id, leaf_id) VALUES (?,?)", (device_id, leaf_id))
        await self._db.execute(
            "INSERT INTO counters(name, value) VALUES ('registry_changes', 1) "
            "ON CONFLICT(name) DO UPDATE SET value = counters.value + 1")

    async def _append_leaf(self, device_id: str, seq: int, record: dict[str, Any], now: float) -> int:
        """Inside a write transaction: a record leaf (registry change, quarantine decision), MACed like a
        reading; returns its id."""
        body = canonical_json({**record, "at": rfc3339(now)})
        next_id = await self._next_reading_id()
        leaf = leaf_hash(body)
        await self._db.execute(
            "INSERT INTO readings(id, device_id, seq, shipment_id, ts, received_at, body, leaf_hash, intake_mac) "
            "VALUES (?,?,?,?,?,?,?,?,?)",
            (next_id, device_id, seq, device_id, rfc3339(now), now, body, leaf, self._mac(next_id, leaf)))
        return next_id

    async def _quarantine(self, refusals: Sequence[Refusal], now: float) -> None:
        """Inside a write transaction: quarantine rows, each with its decision sealed as a record leaf,
        so a deleted or edited quarantine row is found by the audit. The rare path: one statement a row."""
        for r in refusals:
            inserted = await self._db.fetch(
                "INSERT INTO quarantine(received_at, topic, payload, reason_code, reason, device_id, shipment_id) "
                "VALUES (?,?,?,?,?,?,?) RETURNING id",
                (r.received_at, r.topic, r.payload, r.reason_code, r.reason, r.device_id, r.shipment_id))
            qid = int(inserted[0][0])
            row = QuarantineRow(qid, r.received_at, r.topic, r.payload, r.reason_code, r.reason, r.device_id,
                                r.shipment_id)
            await self._append_leaf(QUARANTINE, qid, quarantine_record(row), now)

    async def _next_reading_id(self) -> int:
        """Inside a write transaction: ids are dense because writers take turns (packproof/db)."""
        rows = await self._db.fetch("SELECT coalesce(max(id), 0) + 1 FROM readings")
        return int(rows[0][0])

    async def _registry_tx(self, what: str, work: Any) -> None:
        async with self.transaction(what):
            await work(time.time())

    async def register(self, shipments: Mapping[str, str | None],
                       devices: Iterable[tuple[str, str, bytes | None]]) -> int:
        """Add shipments (id -> profile; None: as registered, or the default for a new one) and
        devices (id, shipment, public key or None).

        Returns how many devices were new. What the registry already holds is never changed
        here: a device registered with another key or shipment, or a shipment with another
        profile, is a RegistryConflict (a key changes only by `rotate_key`, a profile only by
        `set_profile`, each on the record). A weak key is refused (`weak_key_problem`). Each new
        device's sealed record names its shipment's profile, the envelope its readings are judged by.
        """
        new = 0
        devices = list(devices)  # checked here, then written in the transaction
        for device_id, _, key in devices:
            if key is not None and (problem := weak_key_problem(key)):
                raise ConfigError(f"device {device_id}: public key {b64(key)} is {problem}")

        async def work(now: float) -> None:
            nonlocal new
            profiles: dict[str, str] = {}
            for sid, profile in shipments.items():
                held = await self._shipment_profile(sid)
                if held is None:
                    held = profile or DEFAULT_PROFILE
                    await self._db.execute("INSERT INTO shipments(shipment_id, profile, created_at) VALUES (?,?,?)",
                                           (sid, held, now))
                elif profile is not None and profile != held:
                    raise RegistryConflict(
                        f"shipment {sid} already has profile {held!r}, not {profile!r}; a profile changes "
                        f"only with `packproof shipments set-profile`, on the record")
                profiles[sid] = held
            for device_id, sid, key in devices:
                rows = await self._db.fetch("SELECT shipment_id, public_key FROM devices WHERE device_id=?",
                                            (device_id,))
                if rows:
                    if rows[0][0] != sid or (bytes(rows[0][1]) if rows[0][1] is not None else None) != key:
                        raise RegistryConflict(
                            f"device {device_id} is already registered with a different shipment or key "
                            f"(shipment {rows[0][0]}); a key changes only with `packproof devices rotate`")
                    continue
                profile = profiles.get(sid) or await self._shipment_profile(sid)
                if profile is None:
                    raise ConfigError(f"device {device_id}: shipment {sid} is not registered")
                await self._db.execute(
                    "INSERT INTO devices(device_id, shipment_id, public_key, registered_at) VALUES (?,?,?,?)",
                    (device_id, sid, key, now))
                await self._db.execute(
                    "INSERT INTO device_keys(device_id, valid_from_seq, public_key, added_at) VALUES (?,?,?,?)",
                    (device_id, 0, key, now))
                await self._append_record({"record": "device-registered", "device_id": device_id,
                                           "shipment_id": sid, "profile": profile,
                                           "public_key": b64(key) if key else None}, now)
                new += 1

        await self._registry_tx("registering devices", work)
        return new

    async def _shipment_profile(self, shipment_id: str) -> str | None:
        rows = await self._db.fetch("SELECT profile FROM shipments WHERE shipment_id=?", (shipment_id,))
        return str(rows[0][0]) if rows else None

    async def set_profile(self, shipment_id: str, profile: str, reason: str) -> str:
        """Judge a shipment's packs by another UN 38.3 profile from now on; returns the previous one.

        Its own act, sealed with the previous profile and the reason: the envelope decides
        which readings are excursions, so it must not change as a side effect of a registration.
        Excursions already recorded stay as they were found.
        """
        previous = ""

        async def work(now: float) -> None:
            nonlocal previous
            held = await self._shipment_profile(shipment_id)
            if held is None:
                raise ConfigError(f"shipment {shipment_id} is not registered")
            if held == profile:
                raise ConfigError(f"shipment {shipment_id} already has profile {profile!r}")
            previous = held
            await self._db.execute("UPDATE shipments SET profile=? WHERE shipment_id=?", (profile, shipment_id))
            await self._append_record({"record": "shipment-profile-changed", "shipment_id": shipment_id,
                                       "profile": profile, "previous": held, "reason": reason}, now)

        await self._registry_tx(f"changing the profile of shipment {shipment_id}", work)
        return previous

    async def rotate_key(self, device_id: str, public_key: bytes, from_seq: int) -> None:
        """A new key for readings from `from_seq` on; older readings keep verifying with the old one."""
        if problem := weak_key_problem(public_key):
            raise ConfigError(f"device {device_id}: public key {b64(public_key)} is {problem}")

        async def work(now: float) -> None:
            d = await self.device(device_id)
            if d is None:
                raise ConfigError(f"device {device_id} is not registered")
            if d.keys and from_seq <= d.keys[-1].valid_from_seq:
                raise ConfigError(f"device {device_id}: the new key must start after seq {d.keys[-1].valid_from_seq}, "
                                  f"where its current key starts; got --from-seq {from_seq}")
            await self._db.execute(
                "INSERT INTO device_keys(device_id, valid_from_seq, public_key, added_at) VALUES (?,?,?,?)",
                (device_id, from_seq, public_key, now))
            await self._db.execute("UPDATE devices SET public_key=? WHERE device_id=?", (public_key, device_id))
            await self._append_record({"record": "device-key-rotated", "device_id": device_id,
                                       "public_key": b64(public_key), "valid_from_seq": from_seq}, now)

        await self._registry_tx(f"rotating the key of {device_id}", work)

    async def revoke(self, device_id: str, reason: str) -> None:
        """From now on the device's readings are quarantined; what was stored stays provable."""
        async def work(now: float) -> None:
            changed = await self._db.execute("UPDATE devices SET revoked_at=?, revoked_reason=? WHERE device_id=? "
                                             "AND revoked_at IS NULL", (now, reason, device_id))
            if changed == 0:
                raise ConfigError(f"device {device_id} is not registered, or is revoked already")
            await self._append_record({"record": "device-revoked", "device_id": device_id, "reason": reason}, now)

        await self._registry_tx(f"revoking {device_id}", work)

    # ---- parties ----------------------------------------------------------------------
    # The custody parties (issue 15; contract in packproof/parties.py): `parties` and
    # `party_keys` are what the custody rules trust, and every change is also a record leaf
    # (device id PARTIES: `party-added`, `party-key-rotated`, `party-revoked`) sealed like a
    # device registration, each naming everything a verifier needs to rebuild the party, so a
    # key swapped in the table afterwards is found by `packproof audit`.

    async def _append_party_record(self, record: dict[str, Any], now: float) -> None:
        rows = await self._db.fetch("SELECT coalesce(max(seq), -1) + 1 FROM readings WHERE device_id=?", (PARTIES,))
        await self._append_leaf(PARTIES, rows[0][0], record, now)
        await self._db.execute(
            "INSERT INTO counters(name, value) VALUES ('party_changes', 1) "
            "ON CONFLICT(name) DO UPDATE SET value = counters.value + 1")

    async def add_party(self, party_id: str, name: str, roles: Iterable[str], public_key: bytes) -> bool:
        """Add a party whose first key signs its events from seq 1 on; returns whether it was new.

        Adding a party exactly as the registry holds it (same name, roles and current key) changes
        nothing and returns False, so a start-up that registers its parties can run again. Anything
        else about an existing party is a RegistryConflict: a key changes only by
        `rotate_party_key`, and a party is never renamed or given other roles silently. A bad id,
        an unknown role or a weak key is a ConfigError (`packproof.parties.party_problem`).
        """
        roles = frozenset(roles)
        if problem := party_problem(party_id, name, roles, public_key):
            raise ConfigError(problem)
        created = False

        async def work(now: float) -> None:
            nonlocal created
            held = await self._party(party_id)
            if held is not None:
                if (held.name, held.roles, held.keys[-1].public_key) != (name, roles, public_key):
                    raise RegistryConflict(
                        f"party {party_id} is already registered as {held.name!r} with roles "
                        f"{','.join(sorted(held.roles))} and key {b64(held.keys[-1].public_key)}; a key changes "
                        "only with `packproof parties rotate`, and a party keeps its name and roles")
                return
            record = added_record(party_id, name, roles, public_key)
            await self._db.execute("INSERT INTO parties(party_id, name, roles, added_at) VALUES (?,?,?,?)",
                                   (party_id, name, ",".join(record["roles"]), now))
            await self._db.execute(
                "INSERT INTO party_keys(party_id, valid_from_seq, public_key, added_at) VALUES (?,?,?,?)",
                (party_id, record["valid_from_seq"], public_key, now))
            await self._append_party_record(record, now)
            created = True

        await self._registry_tx(f"adding party {party_id}", work)
        return created

    async def rotate_party_key(self, party_id: str, public_key: bytes, from_seq: int | None = None) -> int:
        """A new key for the party's events from `from_seq` on; earlier events keep verifying with theirs.
        Returns the seq it starts at.

        `from_seq` must lie beyond every event the party already has accepted: a rotation reaching
        back over accepted events would make them verify with a key that never signed them, and the
        audit would find them broken for good. The check and the default (None: its next event,
        and after the seq its current key starts at) read the party's last seq inside this
        transaction, so an event accepted meanwhile cannot slip under the new key.
        """
        if problem := key_problem(public_key):
            raise ConfigError(f"party {party_id}: {problem}")
        start = 0

        async def work(now: float) -> None:
            nonlocal start
            held = await self._party(party_id)
            if held is None:
                raise ConfigError(f"party {party_id} is not registered")
            if held.revoked:
                raise ConfigError(f"party {party_id} is revoked ({held.revoked_reason}); a revoked party "
                                  "gets no new key")
            rows = await self._db.fetch("SELECT max(seq) FROM custody_events WHERE actor=?", (party_id,))
            last = int(rows[0][0]) if rows and rows[0][0] is not None else 0
            start = from_seq if from_seq is not None else max(last + 1, held.keys[-1].valid_from_seq + 1)
            if start <= held.keys[-1].valid_from_seq:
                raise ConfigError(f"party {party_id}: the new key must start after event seq "
                                  f"{held.keys[-1].valid_from_seq}, where its current key starts; got {start}")
            if start <= last:
                raise ConfigError(f"party {party_id}: the new key must start after event seq {last}, its last "
                                  f"accepted event (signed with the current key); got {start}")
            if any(k.public_key == public_key for k in held.keys):
                raise RegistryConflict(f"party {party_id} has held key {b64(public_key)} before; "
                                       "a rotation needs a new key")
            await self._db.execute(
                "INSERT INTO party_keys(party_id, valid_from_seq, public_key, added_at) VALUES (?,?,?,?)",
                (party_id, start, public_key, now))
            await self._append_party_record(key_rotated_record(party_id, public_key, start), now)

        await self._registry_tx(f"rotating the key of party {party_id}", work)
        return start

    async def revoke_party(self, party_id: str, reason: str) -> None:
        """From now on the party's events are refused; what it signed before stays provable."""
        async def work(now: float) -> None:
            changed = await self._db.execute(
                "UPDATE parties SET revoked_at=?, revoked_reason=? WHERE party_id=? AND revoked_at IS NULL",
                (now, reason, party_id))
            if changed == 0:
                raise ConfigError(f"party {party_id} is not registered, or is revoked already")
            await self._append_party_record(revoked_record(party_id, reason), now)

        await self._registry_tx(f"revoking party {party_id}", work)

    async def parties(self, party_id: str | None = None) -> list[PartyRecord]:
        """Every party (or the one named), by id, with its key history oldest first."""
        return await self._parties_via(self._fetch, party_id)

    async def party(self, party_id: str) -> PartyRecord | None:
        found = await self.parties(party_id)
        return found[0] if found else None

    async def _party(self, party_id: str) -> PartyRecord | None:
        """Inside a write transaction: the party as this transaction sees it."""
        found = await self._parties_via(self._db.fetch, party_id)
        return found[0] if found else None

    @staticmethod
    async def _parties_via(fetch: Callable[..., Awaitable[list[Any]]], party_id: str | None) -> list[PartyRecord]:
        """The parties' rows as records, read by `fetch` (between transactions, or inside the caller's)."""
        where = "WHERE party_id=?" if party_id is not None else ""
        params = (party_id,) if party_id is not None else ()
        rows = await fetch("SELECT party_id, name, roles, added_at, revoked_at, revoked_reason FROM parties "
                           f"{where} ORDER BY party_id", params)
        keys: dict[str, list[PartyKey]] = {}
        for pid, start, key in await fetch(f"SELECT party_id, valid_from_seq, public_key FROM party_keys {where} "
                                           "ORDER BY party_id, valid_from_seq", params):
            keys.setdefault(pid, []).append(PartyKey(int(start), bytes(key)))
        return [PartyRecord(r[0], r[1], frozenset(r[2].split(",")), tuple(keys.get(r[0], ())), r[3], r[4], r[5])
                for r in rows]

    async def party_next_seq(self, party_id: str) -> int:
        """The seq the party's next custody event must carry: one above its last accepted (`custody_seqs`)."""
        return (await self.custody_seqs([party_id])).get(party_id, 0) + 1

    async def registry_records(self, device_id: str) -> list[RegistryLeaf]:
        """The registry record leaves naming `device_id` (their `device_id` field), in store order.

        Found through `registry_leaves`, written with each leaf (`_append_record`), so a proof
        bundle reads a few rows however many devices the registry holds (issue 16: a byte
        search over every registry leaf grew with the fleet); the caller still parses each record.
        """
        rows = await self._fetch("SELECT readings.id, readings.body FROM registry_leaves "
                                 "JOIN readings ON readings.id = registry_leaves.leaf_id "
                                 "WHERE registry_leaves.device_id=? ORDER BY readings.seq", (device_id,))
        return [RegistryLeaf(r[0], bytes(r[1])) for r in rows]

    async def registry_changes(self) -> int:
        rows = await self._fetch("SELECT value FROM counters WHERE name='registry_changes'")
        return int(rows[0][0]) if rows else 0

    # ---- custody ----------------------------------------------------------------------
    # Custody events (issue 15, docs/design.md "Custody"): who owned and who carried each pack.
    # The rules are a pure state machine above the store (edge/custody.py); a caller accepts an
    # event in one write transaction: `custody_items`, `custody_lots`, `custody_seqs` (inside it),
    # the machine, then `record_custody_event` or `refuse_custody`. Writers take turns
    # (packproof/db), so of two racing events for one pack the second sees the first's state.
    # Each accepted event is also a record leaf (device id CUSTODY) sealed like a reading.

    async def custody_items(self, serials: Sequence[str]) -> dict[str, str]:
        """Each known item's (pack's, cell lot's) current state, as the machine's state serialised."""
        out: dict[str, str] = {}
        for chunk in _chunks(list(serials)):
            for serial, state in await self._fetch(
                    f"SELECT serial, state FROM custody_packs WHERE serial IN ({_in(chunk)})", chunk):
                out[serial] = state
        return out

    async def custody_lots(self, registrations: Sequence[bytes]) -> dict[bytes, str]:
        """Registration hash -> serial, for the items registered by these events (a pack names its lots so)."""
        out: dict[bytes, str] = {}
        for chunk in _chunks(list(registrations)):
            for digest, serial in await self._fetch(
                    f"SELECT registration, serial FROM custody_packs WHERE registration IN ({_in(chunk)})", chunk):
                out[bytes(digest)] = serial
        return out

    async def custody_seqs(self, parties: Sequence[str]) -> dict[str, int]:
        """The highest seq accepted from each party that has one (seqs are dense from 1)."""
        out: dict[str, int] = {}
        for party in parties:
            rows = await self._fetch("SELECT max(seq) FROM custody_events WHERE actor=?", (party,))
            if rows and rows[0][0] is not None:
                out[party] = int(rows[0][0])
        return out

    async def custody_seq_before(self, party: str, leaf_id: int) -> int:
        """The highest seq accepted from `party` before the event whose leaf is `leaf_id` (0: none)."""
        rows = await self._fetch("SELECT max(seq) FROM custody_events WHERE actor=? AND leaf_id < ?", (party, leaf_id))
        return int(rows[0][0]) if rows and rows[0][0] is not None else 0

    async def record_custody_event(self, event: CustodyEventRecord, steps: Sequence[CustodyStep],
                                   states: Mapping[str, str], registrations: Mapping[str, bytes],
                                   trackers: Mapping[str, str | None], record: dict[str, Any],
                                   now: float) -> CustodyEventRecord:
        """Inside a write transaction: an accepted event, a step per item it changed (`states`: each
        item's new state; `registrations`/`trackers`: the registration hash and sensor of items new
        with this event), and its record leaf. Returns the event with the store id of its leaf."""
        seq = (await self._db.fetch("SELECT coalesce(max(seq), -1) + 1 FROM readings WHERE device_id=?",
                                    (CUSTODY,)))[0][0]
        leaf_id = await self._next_reading_id()
        await self._append_leaf(CUSTODY, int(seq), record, now)
        await self._db.execute(
            "INSERT INTO custody_events(event_id, actor, seq, kind, ts, hash, body, leaf_id, shipment_id, "
            "received_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (event.event_id, event.actor, event.seq, event.kind, event.ts, event.hash, event.body, leaf_id,
             event.shipment_id, now))
        await self._db.executemany(
            "INSERT INTO custody_event_packs(serial, position, event_id, kind, ts, actor, owner, transporter, holder) "
            "VALUES (?,?,?,?,?,?,?,?,?)",
            [(s.serial, s.position, s.event_id, s.kind, s.ts, s.actor, s.owner, s.transporter, s.holder)
             for s in steps])
        for s in steps:
            if s.serial in registrations:
                await self._db.execute(
                    "INSERT INTO custody_packs(serial, tracker, registration, position, head, owner, transporter, "
                    "holder, state) VALUES (?,?,?,?,?,?,?,?,?)",
                    (s.serial, trackers.get(s.serial), registrations[s.serial], s.position, event.hash, s.owner,
                     s.transporter, s.holder, states[s.serial]))
            else:
                await self._db.execute(
                    "UPDATE custody_packs SET position=?, head=?, owner=?, transporter=?, holder=?, state=? "
                    "WHERE serial=?", (s.position, event.hash, s.owner, s.transporter, s.holder, states[s.serial],
                                       s.serial))
        await self._db.execute("INSERT INTO counters(name, value) VALUES ('custody_events', 1) "
                               "ON CONFLICT(name) DO UPDATE SET value = counters.value + 1")
        return CustodyEventRecord(event.event_id, event.actor, event.seq, event.kind, event.ts, event.hash,
                                  event.body, leaf_id, event.shipment_id, received_at=now)

    async def custody_positions(self, serials: Sequence[str]) -> dict[str, int]:
        """Each known item's count of accepted events: the next step's position is one more."""
        out: dict[str, int] = {}
        for chunk in _chunks(list(serials)):
            for serial, position in await self._fetch(
                    f"SELECT serial, position FROM custody_packs WHERE serial IN ({_in(chunk)})", chunk):
                out[serial] = int(position)
        return out

    async def refuse_custody(self, received_at: float, body: bytes, code: str, reason: str,
                             actor: str | None, event_id: str | None) -> int:
        """Keep a refused event with its reason (its own transaction, or the caller's); returns its row id.

        A refusal of an event signed by a known party (forbidden, conflict, wrong prev, ...) is that
        party's doing and kept whole, like the events it accepts. One of `ANONYMOUS_REFUSALS` is
        counted and kept in a ring: its first `QUARANTINE_KEEP` bytes, and only the latest
        `custody_refused_ring` of them; the insert and the trim are one write, so the table never
        holds more.
        """
        anonymous = code in ANONYMOUS_REFUSALS
        kept, why = kept_evidence(body, reason) if anonymous else (body, reason)

        async def write() -> int:
            rows = await self._db.fetch(
                "INSERT INTO custody_refused(received_at, body, code, reason, actor, event_id) "
                "VALUES (?,?,?,?,?,?) RETURNING id", (received_at, kept, code, why, actor, event_id))
            row_id = int(rows[0][0])
            if anonymous:
                await self._db.execute(  # the codes as literals: the planner matches them to the partial index
                    f"DELETE FROM custody_refused WHERE code IN ({_ANONYMOUS_SQL}) AND id <= ?",
                    (row_id - self.custody_refused_ring,))
            await self._db.execute("INSERT INTO counters(name, value) VALUES (?, 1) "
                                   "ON CONFLICT(name) DO UPDATE SET value = counters.value + 1",
                                   (f"custody_refused:{code}",))
            return row_id

        if self._tx_owner is not None and self._tx_owner is asyncio.current_task():
            return await write()
        async with self.transaction("keeping a refused custody event"):
            return await write()

    async def custody_refused(self, *, actor: str | None, before_id: int | None, limit: int,
                              body_max: int) -> list[CustodyRefusedRow]:
        """Refused events newest first, optionally of one party; `before_id` is the page cursor."""
        where = "id < ?"
        params: list[Any] = [before_id if before_id is not None else 2**63 - 1]
        if actor is not None:
            where += " AND actor = ?"
            params.append(actor)
        rows = await self._fetch(
            "SELECT id, received_at, substr(body, 1, ?), code, reason, actor, event_id FROM custody_refused "
            f"WHERE {where} ORDER BY id DESC LIMIT ?", (body_max, *params, limit))
        return [CustodyRefusedRow(r[0], r[1], bytes(r[2]), r[3], r[4], r[5], r[6]) for r in rows]

    async def custody_event(self, event_id: str) -> CustodyEventRecord | None:
        """One accepted event by its id (`party:seq`), with where its leaf is sealed."""
        found = await self._custody_events("event_id = ?", (event_id,))
        return found[0] if found else None

    async def _custody_events(self, where: str, params: Sequence[Any], tail: str = "") -> list[CustodyEventRecord]:
        rows = await self._fetch(
            "SELECT event_id, actor, seq, kind, ts, hash, body, leaf_id, shipment_id, received_at FROM custody_events "
            f"WHERE {where} {tail}", params)
        places = await self.locate([r[7] for r in rows])
        return [CustodyEventRecord(r[0], r[1], int(r[2]), r[3], r[4], _blob(r[5]), _blob(r[6]), int(r[7]), r[8],
                                   places.get(r[7]), float(r[9])) for r in rows]

    async def pack_custody(self, serial: str) -> PackCustody:
        """A pack's history: its steps (owner and transporter after each event) and the events, oldest first."""
        steps = (await self.custody_steps([serial])).get(serial, [])
        ids = [s.event_id for s in steps]
        events: dict[str, CustodyEventRecord] = {}
        for chunk in _chunks(ids):
            events.update((e.event_id, e) for e in await self._custody_events(f"event_id IN ({_in(chunk)})", chunk))
        return PackCustody(tuple(steps), tuple(events[i] for i in ids))

    async def custody_steps(self, serials: Sequence[str]) -> dict[str, list[CustodyStep]]:
        """Each pack's custody steps in chain order, from the per-pack index."""
        out: dict[str, list[CustodyStep]] = {}
        for serial in serials:
            rows = await self._fetch(
                "SELECT serial, position, event_id, kind, ts, actor, owner, transporter, holder "
                "FROM custody_event_packs WHERE serial = ? ORDER BY position", (serial,))
            if rows:
                out[serial] = [CustodyStep(r[0], int(r[1]), r[2], r[3], r[4], r[5], r[6], r[7], r[8]) for r in rows]
        return out

    async def custody_tracker_claim(self, device_id: str) -> TrackerClaim:
        """Inside the accept transaction: the shipment `device_id` is registered to and the packs already
        naming it as their tracker (`packproof.edge.custody_intake` decides from it)."""
        shipment = await self._fetch("SELECT shipment_id FROM devices WHERE device_id=?", (device_id,))
        packs = await self._fetch("SELECT serial FROM custody_packs WHERE tracker=? ORDER BY serial", (device_id,))
        return TrackerClaim(device_id, shipment[0][0] if shipment else None, tuple(r[0] for r in packs))

    async def custody_of_trackers(self, device_ids: Sequence[str]) -> dict[str, TrackedPack]:
        """Device id -> the pack whose registration names it as tracker, with that pack's accepted events'
        bodies in chain order: what the condition report attributes excursions from.

        One pack a tracker (the unique index, and the intake refuses a second claim); were there two
        (a store from before that rule), the latest registration by leaf id wins, never the
        arbitrary order of an unordered read."""
        serials: dict[str, str] = {}
        for chunk in _chunks(list(device_ids)):
            for serial, tracker in await self._fetch(
                    "SELECT p.serial, p.tracker FROM custody_packs p JOIN custody_events e ON e.hash = p.registration "
                    f"WHERE p.tracker IN ({_in(chunk)}) ORDER BY e.leaf_id", chunk):
                serials[tracker] = serial
        out: dict[str, TrackedPack] = {}
        for device_id, serial in serials.items():
            rows = await self._fetch(
                "SELECT e.body FROM custody_event_packs p JOIN custody_events e ON e.event_id = p.event_id "
                "WHERE p.serial = ? ORDER BY p.position", (serial,))
            out[device_id] = TrackedPack(serial, tuple(bytes(r[0]) for r in rows))
        return out

    async def tracker_of(self, serial: str) -> str | None:
        """The device id of the tracker a pack's registration names (None: no such pack, or no tracker)."""
        rows = await self._fetch("SELECT tracker FROM custody_packs WHERE serial=?", (serial,))
        return str(rows[0][0]) if rows and rows[0][0] is not None else None

    async def shipment_custody(self, shipment_id: str, after_leaf: int, limit: int) -> list[CustodyEventRecord]:
        """A page of the custody events of the shipment's packs, in accept order (`after_leaf`: the cursor).

        The shipment's packs: those an accepted event named with this shipment, and those whose
        tracker is a device registered to it; every event of each of them is listed, whether or
        not it names the shipment itself (a registration before it shipped, an inspection after)."""
        packs = ("SELECT p.serial FROM custody_event_packs p JOIN custody_events s ON s.event_id = p.event_id "
                 "WHERE s.shipment_id = ? "
                 "UNION SELECT c.serial FROM custody_packs c JOIN devices d ON d.device_id = c.tracker "
                 "WHERE d.shipment_id = ?")
        return await self._custody_events(
            f"event_id IN (SELECT q.event_id FROM custody_event_packs q WHERE q.serial IN ({packs})) AND leaf_id > ?",
            (shipment_id, shipment_id, after_leaf), "ORDER BY leaf_id LIMIT " + str(int(limit)))

    async def custody_packs_table(self) -> dict[str, CustodyHead]:
        """Every item's current row: for the audit, which replays the sealed events and compares."""
        rows = await self._fetch("SELECT serial, position, head, state FROM custody_packs")
        return {r[0]: CustodyHead(int(r[1]), bytes(r[2]), r[3]) for r in rows}

    async def custody_events_table(self) -> list[CustodyEventRecord]:
        """Every accepted event in accept order: for the audit, which replays them against their leaves."""
        return await self._custody_events("1 = 1", (), "ORDER BY leaf_id")

    async def devices(self, device_id: str | None = None) -> list[DeviceRecord]:
        where = "WHERE d.device_id=?" if device_id else ""
        params = (device_id,) if device_id else ()
        rows = await self._fetch(
            "SELECT d.device_id, d.shipment_id, d.public_key, s.profile, d.revoked_at "
            f"FROM devices d JOIN shipments s USING(shipment_id) {where} ORDER BY d.device_id", params)
        keys: dict[str, list[DeviceKey]] = {}
        for d, start, key in await self._fetch(
                f"SELECT device_id, valid_from_seq, public_key FROM device_keys d {where} "
                "ORDER BY device_id, valid_from_seq", params):
            keys.setdefault(d, []).append(DeviceKey(int(start), bytes(key) if key is not None else None))
        return [DeviceRecord(r[0], r[1], bytes(r[2]) if r[2] is not None else None, r[3],
                             tuple(keys.get(r[0], ())), r[4] is not None) for r in rows]

    async def device(self, device_id: str) -> DeviceRecord | None:
        found = await self.devices(device_id)
        return found[0] if found else None

    # ---- ingest ---------------------------------------------------------------------
    # The ingestor's write transaction reads the delivery state and open excursions of the
    # devices in its batch, settles the batch against them and writes it: the store, not
    # one ingestor's memory, is the truth, so several ingestors can share a stream.

    async def delivery_states(self, device_ids: Sequence[str]) -> dict[str, DeliveryState]:
        """Each device's delivery state, for the devices with stored readings."""
        out = {}
        for chunk in _chunks(device_ids):
            for r in await self._db.fetch(
                    f"SELECT device_id, acked_seq, last_seq, gaps FROM device_stats WHERE device_id IN ({_in(chunk)})",
                    chunk):
                out[r[0]] = DeliveryState(int(r[1]), int(r[2]), tuple((lo, hi) for lo, hi in json.loads(r[3])))
        return out

    async def open_excursions(self, device_ids: Sequence[str]) -> list[Excursion]:
        out = []
        for chunk in _chunks(device_ids):
            out += [_excursion_of(r) for r in await self._db.fetch(
                f"SELECT {EXCURSION_COLUMNS} FROM excursions WHERE open = 1 AND device_id IN ({_in(chunk)})", chunk)]
        return out

    async def next_excursion_id(self) -> int:
        rows = await self._db.fetch("SELECT coalesce(max(id), 0) + 1 FROM excursions")
        return int(rows[0][0])

    async def last_seq(self, device_id: str) -> int:
        rows = await self._fetch("SELECT last_seq FROM device_stats WHERE device_id=?", (device_id,))
        return int(rows[0][0]) if rows else -1

    async def existing(self, seqs: Mapping[str, Iterable[int]]) -> dict[str, dict[int, bytes]]:
        """Which of these seqs (per device) are already stored: device -> seq -> leaf hash. The rare path."""
        pairs = [(device_id, seq) for device_id, some in seqs.items() for seq in some]
        found: dict[str, dict[int, bytes]] = {}
        for chunk in _chunks(pairs):
            rows = await self._db.fetch(
                "SELECT device_id, seq, leaf_hash FROM readings WHERE (device_id, seq) IN "
                f"(VALUES {','.join(['(?,?)'] * len(chunk))})", [x for k in chunk for x in k])
            for r in rows:
                found.setdefault(r[0], {})[int(r[1])] = bytes(r[2])
        return found

    async def write_rows(self, b: IngestBatch) -> None:
        """Inside a write transaction: readings (given the next dense ids), quarantine, aggregates."""
        db = self._db
        if b.readings:
            first = await self._next_reading_id()
            key = self.intake_key
            macs = key.macs(first, [r.leaf_hash for r in b.readings]) if key is not None else [None] * len(b.readings)
            await db.insert_rows("readings", READING_COLUMNS, [_reading_columns(first + i, r, mac) for i, (r, mac)
                                                               in enumerate(zip(b.readings, macs, strict=True))])
        if b.quarantine:
            await self._quarantine(b.quarantine, time.time())
        if b.stats:
            await db.executemany(
                "INSERT INTO device_stats AS s(device_id, shipment_id, reading_count, first_seq, "
                "last_seq, first_ts, last_ts, last_received_at, acked_seq, missing, gaps) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT(device_id) DO UPDATE SET "
                "reading_count = s.reading_count + excluded.reading_count, "
                "first_ts = CASE WHEN excluded.first_seq < s.first_seq THEN excluded.first_ts ELSE s.first_ts END, "
                "first_seq = CASE WHEN excluded.first_seq < s.first_seq THEN excluded.first_seq ELSE s.first_seq END, "
                "last_ts = CASE WHEN excluded.last_seq > s.last_seq THEN excluded.last_ts ELSE s.last_ts END, "
                "last_seq = CASE WHEN excluded.last_seq > s.last_seq THEN excluded.last_seq ELSE s.last_seq END, "
                "last_received_at = CASE WHEN excluded.last_received_at > s.last_received_at "
                "THEN excluded.last_received_at ELSE s.last_received_at END, "
                "acked_seq = excluded.acked_seq, missing = excluded.missing, gaps = excluded.gaps",
                [_stats_columns(s) for s in b.stats])
        if b.excursions:
            cols = EXCURSION_COLUMNS.split(", ")
            await db.executemany(
                f"INSERT INTO excursions({EXCURSION_COLUMNS}) VALUES ({_in(cols)}) ON CONFLICT(id) DO UPDATE SET "
                + ", ".join(f"{c} = excluded.{c}" for c in cols[1:]), [_excursion_columns(e) for e in b.excursions])
        if b.counters:
            await db.executemany(
                "INSERT INTO counters(name, value) VALUES (?,?) "
                "ON CONFLICT(name) DO UPDATE SET value = counters.value + excluded.value",
                list(b.counters.items()))

    # ---- sealing --------------------------------------------------------------------

    async def head_block(self) -> BlockRecord | None:
        rows = await self._fetch(
            "SELECT height, hash, first_id, last_id, leaf_count, header, signature FROM blocks "
            "ORDER BY height DESC LIMIT 1")
        return BlockRecord(*rows[0]) if rows else None

    async def block(self, height: int) -> BlockRecord | None:
        rows = await self._fetch(
            "SELECT height, hash, first_id, last_id, leaf_count, header, signature FROM blocks "
            "WHERE height=?", (height,))
        return BlockRecord(*rows[0]) if rows else None

    async def blocks(self, start: int, limit: int) -> list[BlockRecord]:
        rows = await self._fetch(
            "SELECT height, hash, first_id, last_id, leaf_count, header, signature FROM blocks "
            "WHERE height >= ? ORDER BY height LIMIT ?", (start, limit))
        return [BlockRecord(*r) for r in rows]

    async def sealable(self, after_id: int, limit: int) -> list[SealRow]:
        """The next rows to seal, in store order, with what the sealer checks before sealing them.

        Store order is deterministic, so a block whose ledger line was written before a
        crash can be matched to the same rows again on restart.
        """
        rows = await self._fetch(
            "SELECT id, device_id, leaf_hash, intake_mac FROM readings WHERE id > ? ORDER BY id LIMIT ?",
            (after_id, limit))
        return [SealRow(r[0], r[1], bytes(r[2]), bytes(r[3]) if r[3] is not None else None) for r in rows]

    async def refuse_unsealed(self, row: SealRow, reason: str) -> None:
        """Move a row the sealer will not seal into the quarantine, its decision sealed as a record leaf.

        The row leaves `readings` (a block seals a dense id range; its id stays a hole no block
        covers), its bytes are kept in the quarantine with the reason, and the counters say so.
        """
        now = time.time()
        async with self.transaction(f"quarantining store row {row.id}"):
            found = await self._db.fetch("SELECT shipment_id, body FROM readings WHERE id=?", (row.id,))
            if not found:
                raise StoreError(f"store row {row.id} vanished before the sealer could quarantine it")
            await self._db.execute("DELETE FROM readings WHERE id=?", (row.id,))
            await self._quarantine([Refusal(now, f"store:readings/{row.id}", bytes(found[0][1]), "not_from_intake",
                                            reason, row.device_id, found[0][0])], now)
            await self._db.execute(
                "INSERT INTO counters(name, value) VALUES ('quarantined:not_from_intake', 1) "
                "ON CONFLICT(name) DO UPDATE SET value = counters.value + 1")

    async def record_block(self, block: BlockRecord, rows: Sequence[SealRow], log: LogUpdate | None = None) -> None:
        """Record a sealed block, and count its rows as sealed per device; `log`: what the block
        adds to the transparency log (tiles, its place, its checkpoint), in the same transaction."""
        first, last = rows[0].id, rows[-1].id
        if last - first + 1 != len(rows) or block.first_id != first:
            raise StoreError(f"block {block.height}: readings {first}..{last} are not a dense run "
                             f"of {len(rows)} ids; rows were deleted from the store")
        per_device: dict[str, int] = {}
        for row in rows:
            per_device[row.device_id] = per_device.get(row.device_id, 0) + 1
        async with self.transaction(f"recording block {block.height}"):
            await self._db.execute(
                "INSERT INTO blocks(height, hash, first_id, last_id, leaf_count, header, signature) "
                "VALUES (?,?,?,?,?,?,?)",
                (block.height, block.hash, block.first_id, block.last_id, block.leaf_count,
                 block.header, block.signature))
            await self._db.executemany(
                "UPDATE device_stats SET sealed_count = sealed_count + ? WHERE device_id=?",
                [(n, d) for d, n in per_device.items()])
            if log is not None:
                await self._write_log(log)

    async def rotation_headers(self) -> list[dict[str, Any]]:
        """Headers of the blocks that announce a ledger key rotation (rare: a scan of block rows)."""
        rows = await self._fetch("SELECT header FROM blocks WHERE header LIKE '%\"next_key\"%' ORDER BY height")
        return [json.loads(r[0]) for r in rows]

    async def block_leaf_hashes(self, block: BlockRecord) -> list[bytes]:
        rows = await self._fetch(
            "SELECT leaf_hash FROM readings WHERE id BETWEEN ? AND ? ORDER BY id", (block.first_id, block.last_id))
        return [r[0] for r in rows]

    async def readings_between(self, first_id: int, last_id: int) -> list[StoredRow]:
        """A block's rows (ids first..last, in id order) with the columns their bodies vouch for."""
        rows = await self._fetch(
            "SELECT id, device_id, seq, shipment_id, ts, body, leaf_hash FROM readings "
            "WHERE id BETWEEN ? AND ? ORDER BY id", (first_id, last_id))
        return [StoredRow(r[0], r[1], r[2], r[3], r[4], bytes(r[5]), bytes(r[6])) for r in rows]

    async def quarantine_page(self, after_id: int, limit: int) -> list[QuarantineRow]:
        """Quarantine rows in id order after `after_id`: the audit reads them all, a page at a time."""
        rows = await self._fetch(
            "SELECT id, received_at, topic, payload, reason_code, reason, device_id, shipment_id FROM quarantine "
            "WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit))
        return [QuarantineRow(r[0], r[1], r[2], bytes(r[3]), r[4], r[5], r[6], r[7]) for r in rows]

    async def shipment_profiles(self) -> dict[str, str]:
        return {r[0]: r[1] for r in await self._fetch("SELECT shipment_id, profile FROM shipments")}

    async def ids_between(self, first_id: int, last_id: int) -> list[int]:
        rows = await self._fetch("SELECT id FROM readings WHERE id BETWEEN ? AND ? ORDER BY id", (first_id, last_id))
        return [r[0] for r in rows]

    async def count_after(self, after_id: int) -> int:
        rows = await self._fetch("SELECT count(*) FROM readings WHERE id > ?", (after_id,))
        return int(rows[0][0])

    async def max_id(self) -> int:
        """The highest store id: with dense ids, how many leaves (readings and records) there are."""
        rows = await self._fetch("SELECT coalesce(max(id), 0) FROM readings")
        return int(rows[0][0])

    async def locate(self, ids: Sequence[int]) -> dict[int, LeafPlace]:
        """Store id -> where it is sealed, for the ids already sealed."""
        if not ids:
            return {}
        # At most len(ids) blocks can hold these ids: an index range scan with a limit.
        rows = await self._fetch(
            "SELECT height, first_id, last_id FROM blocks WHERE last_id >= ? ORDER BY last_id LIMIT ?",
            (min(ids), len(ids)))
        out = {}
        for i in ids:
            for height, first, last in rows:
                if first <= i <= last:
                    out[i] = LeafPlace(height, i - first)
                    break
        return out

    # ---- log ------------------------------------------------------------------------
    # The transparency log (issue 16, anchor/tiles.py): one RFC 6962 tree over every sealed leaf
    # in sealing order, kept as C2SP tlog-tiles (the newest version of each tile: a partial tile
    # is a prefix of its later self, so one row per tile answers every older size), each block's
    # place in it (`log_blocks`: the log size after the block), and the signed checkpoints.
    # Every read here is by primary key or the unique log_end index.

    async def _write_log(self, update: LogUpdate) -> None:
        """Inside a write transaction: the changed tiles, the blocks' places, the checkpoint."""
        if update.tiles:
            await self._db.executemany(
                "INSERT INTO log_tiles(level, idx, hashes) VALUES (?,?,?) "
                "ON CONFLICT(level, idx) DO UPDATE SET hashes = excluded.hashes",
                [(level, idx, hashes) for (level, idx), hashes in sorted(update.tiles.items())])
        if update.blocks:
            await self._db.executemany("INSERT INTO log_blocks(height, log_end) VALUES (?,?)",
                                       [(b.height, b.end) for b in update.blocks])
        cp = update.checkpoint
        if cp is not None:
            await self._db.execute(
                "INSERT INTO checkpoints(size, root, note, signed_at) VALUES (?,?,?,?) ON CONFLICT(size) DO NOTHING",
                (cp.size, cp.root, cp.note, cp.signed_at))

    async def extend_log(self, update: LogUpdate) -> None:
        """Add to the log for blocks already recorded (building it over a store sealed before it existed)."""
        async with self.transaction("extending the transparency log"):
            await self._write_log(update)

    async def log_head(self) -> LogBlock | None:
        """The last block placed in the log and the log's size after it; None while the log is empty."""
        rows = await self._fetch("SELECT height, log_end FROM log_blocks ORDER BY height DESC LIMIT 1")
        return LogBlock(int(rows[0][0]), int(rows[0][1])) if rows else None

    async def log_places(self, heights: Sequence[int]) -> dict[int, LogBlock]:
        """Height -> the block's place in the log, for those of `heights` the log holds."""
        if not heights:
            return {}
        rows = await self._fetch(f"SELECT height, log_end FROM log_blocks WHERE height IN ({_in(heights)})",
                                 list(heights))
        return {int(r[0]): LogBlock(int(r[0]), int(r[1])) for r in rows}

    async def log_tiles(self, keys: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """The stored tiles named (level, index); a tile not written yet is absent."""
        by_level: dict[int, list[int]] = {}
        for level, idx in keys:
            by_level.setdefault(level, []).append(idx)
        out: dict[tuple[int, int], bytes] = {}
        for level, idxs in sorted(by_level.items()):
            rows = await self._fetch(f"SELECT idx, hashes FROM log_tiles WHERE level=? AND idx IN ({_in(idxs)})",
                                     [level, *idxs])
            out.update({(level, int(r[0])): bytes(r[1]) for r in rows})
        return out

    async def log_entries(self, start: int, end: int) -> list[bytes]:
        """The leaves' bytes at log indices start..end-1, in log order (for entry bundles)."""
        if end <= start:
            return []
        blocks = await self._fetch(
            "SELECT l.log_end, b.first_id, b.leaf_count FROM log_blocks l JOIN blocks b ON b.height = l.height "
            "WHERE l.log_end > ? ORDER BY l.log_end LIMIT ?", (start, end - start))
        out: list[bytes] = []
        for log_end, first_id, leaf_count in blocks:
            block_start = log_end - leaf_count
            lo, hi = max(start, block_start), min(end, log_end)
            if lo >= hi:
                break
            rows = await self._fetch("SELECT body FROM readings WHERE id BETWEEN ? AND ? ORDER BY id",
                                     (first_id + lo - block_start, first_id + hi - 1 - block_start))
            out.extend(bytes(r[0]) for r in rows)
        if len(out) != end - start:
            raise StoreError(f"log entries {start}..{end - 1}: the store holds {len(out)} of them")
        return out

    async def log_origin(self) -> str | None:
        rows = await self._fetch("SELECT value FROM meta WHERE key='log_origin'")
        return str(rows[0][0]) if rows else None

    async def set_log_origin(self, origin: str) -> str:
        """Keep `origin` as the log's origin unless one is kept already; returns the one kept."""
        async with self.transaction("choosing the log origin"):
            await self._db.execute("INSERT INTO meta(key, value) VALUES ('log_origin', ?) ON CONFLICT(key) DO NOTHING",
                                   (origin,))
            rows = await self._db.fetch("SELECT value FROM meta WHERE key='log_origin'")
        return str(rows[0][0])

    async def latest_checkpoint(self) -> CheckpointRecord | None:
        rows = await self._fetch("SELECT size, root, note, signed_at FROM checkpoints ORDER BY size DESC LIMIT 1")
        return CheckpointRecord(int(rows[0][0]), bytes(rows[0][1]), rows[0][2], float(rows[0][3])) if rows else None

    async def checkpoint_at(self, size: int) -> CheckpointRecord | None:
        rows = await self._fetch("SELECT size, root, note, signed_at FROM checkpoints WHERE size=?", (size,))
        return CheckpointRecord(int(rows[0][0]), bytes(rows[0][1]), rows[0][2], float(rows[0][3])) if rows else None

    async def _tiles_for(self, needed: set[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        found = await self.log_tiles(needed)
        missing = sorted(needed - found.keys())
        if missing:
            raise StoreError(f"the log's tile (level, index) {missing[0]} is missing from the store")
        return found

    async def _log_size(self) -> int:
        head = await self.log_head()
        return head.end if head else 0

    async def consistency_proof(self, m: int, n: int) -> list[bytes]:
        """RFC 6962 PROOF(m, D[n]) from the stored tiles; ProofError unless 0 <= m <= n <= the log's size."""
        size = await self._log_size()
        if not 0 <= m <= n <= size:
            raise ProofError(f"a consistency proof needs 0 <= from <= to <= {size} (the log's size); "
                             f"got from {m}, to {n}")
        return tiles.consistency_proof(m, n, await self._tiles_for(tiles.needed_for_consistency(m, n)))

    async def log_inclusion(self, index: int, size: int) -> list[bytes]:
        """RFC 6962 PATH(index, D[size]) from the stored tiles; ProofError for an index or size out of range."""
        return (await self.log_inclusions([(index, size)]))[0]

    async def log_inclusions(self, wanted: Sequence[tuple[int, int]]) -> list[list[bytes]]:
        """PATH(index, D[size]) for each (index, size), their tiles read in one query (a bundle's leaves
        often share them)."""
        log_size = await self._log_size()
        needed: set[tuple[int, int]] = set()
        for index, size in wanted:
            if not 0 <= index < size <= log_size:
                raise ProofError(f"leaf {index} in a log of size {size}: not a leaf of the log the store holds "
                                 f"(size {log_size})")
            needed |= tiles.needed_for_inclusion(index, size)
        found = await self._tiles_for(needed)
        return [tiles.inclusion_proof(index, size, found) for index, size in wanted]

    async def log_multi_inclusion(self, indices: Sequence[int], size: int) -> list[bytes]:
        """One multi-leaf proof of the leaves at `indices` (rising) in the log at `size` (issue 18,
        `packproof.tiles.multi_inclusion_proof`): each shared node once, read from the stored tiles."""
        log_size = await self._log_size()
        if not 0 < size <= log_size:
            raise ProofError(f"log size {size} is beyond the log the store holds (size {log_size})")
        return tiles.multi_inclusion_proof(
            indices, size, await self._tiles_for(tiles.needed_for_multi_inclusion(indices, size)))

    async def log_indices(self, ids: Sequence[int]) -> dict[int, int]:
        """Store id -> its index in the log, for the ids the log holds (a block placed in it): the
        block's log end less its leaf count, plus the id's place in the block."""
        if not ids:
            return {}
        rows = await self._fetch(
            "SELECT b.first_id, b.last_id, l.log_end, b.leaf_count FROM blocks b JOIN log_blocks l "
            "ON l.height = b.height WHERE b.last_id >= ? AND b.first_id <= ? ORDER BY b.first_id",
            (min(ids), max(ids)))
        firsts = [int(r[0]) for r in rows]
        out = {}
        for i in ids:
            k = bisect_right(firsts, i) - 1
            if k >= 0 and i <= int(rows[k][1]):
                out[i] = int(rows[k][2]) - int(rows[k][3]) + i - firsts[k]
        return out

    async def leaf_bodies(self, ids: Sequence[int]) -> dict[int, bytes]:
        """Store id -> the leaf's bytes (a reading's body, a record's canonical JSON)."""
        out: dict[int, bytes] = {}
        for chunk in _chunks(list(ids)):
            for r in await self._fetch(f"SELECT id, body FROM readings WHERE id IN ({_in(chunk)})", chunk):
                out[int(r[0])] = _blob(r[1])
        return out

    async def log_root(self, size: int) -> bytes:
        """The log's root at `size` (<= the log's size), from the stored tiles."""
        if not 0 <= size <= await self._log_size():
            raise ProofError(f"log size {size} is beyond the log the store holds")
        return tiles.root_at(size, await self._tiles_for(tiles.needed_for_root(size)))

    # ---- witnesses -------------------------------------------------------------------
    # Cosignature lines (c2sp.org/tlog-cosignature) that witnesses returned for the log's
    # checkpoints, by checkpoint size and witness key name; written by anchor/witnessing.py,
    # appended to the checkpoint note GET /checkpoint serves. A later line from one witness for
    # one size replaces the earlier (both are valid: the newer has the later time).

    async def save_cosignatures(self, size: int, lines: Mapping[str, str], now: float | None = None) -> None:
        if not lines:
            return
        at = time.time() if now is None else now
        async with self.transaction(f"saving cosignatures of checkpoint {size}"):
            for witness, line in sorted(lines.items()):
                await self._db.execute(
                    "INSERT INTO cosignatures(size, witness, line, received_at) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT(size, witness) DO UPDATE SET line = excluded.line, received_at = excluded.received_at",
                    (size, witness, line, at))

    async def cosignatures(self, size: int) -> dict[str, str]:
        """Witness key name -> its signature line (with its newline) on the checkpoint of `size`."""
        rows = await self._fetch("SELECT witness, line FROM cosignatures WHERE size = ? ORDER BY witness", (size,))
        return {r[0]: r[1] for r in rows}

    async def cosigned_note(self, checkpoint: CheckpointRecord) -> str:
        """The checkpoint's note with the cosignature lines kept for its size appended, ordered by
        witness name (a note may carry several signature lines: c2sp.org/signed-note): what
        GET /checkpoint serves and proof bundles carry."""
        lines = await self.cosignatures(checkpoint.size)
        return checkpoint.note + "".join(lines[name] for name in sorted(lines))

    async def latest_cosigned_checkpoint(self) -> CheckpointRecord | None:
        """The largest checkpoint any witness cosigned (None: none yet); proof bundles prefer it, so
        `verify --witness` finds cosignatures even when the block's own checkpoint was passed over."""
        rows = await self._fetch("SELECT MAX(size) FROM cosignatures")
        return None if not rows or rows[0][0] is None else await self.checkpoint_at(int(rows[0][0]))

    async def cosigned_sizes(self) -> dict[str, int]:
        """Per witness key name, the largest checkpoint size it cosigned: the `old` size to send it next."""
        rows = await self._fetch("SELECT witness, MAX(size) FROM cosignatures GROUP BY witness")
        return {r[0]: int(r[1]) for r in rows}

    # ---- anchors ----------------------------------------------------------------------
    # The log's checkpoints anchored on an Ethereum chain (issue 17), written by the anchoring loop
    # (anchor/anchorer.py) as the pure machine in anchor/anchor_state.py decides. Each change after
    # the send is a compare-and-set on the state the loop saw: a row changed under it (a second
    # loop on the same store) is refused with a StoreError instead of being overwritten.

    async def record_anchor_sent(self, sent: AnchorSent) -> AnchorRow:
        """A new anchor transaction, pending."""
        async with self.transaction(f"recording the anchor of checkpoint {sent.size}"):
            await self._db.execute(
                "INSERT INTO anchors(chain_id, contract, size, root, note_hash, tx_hash, nonce, max_fee_per_gas, "
                "max_priority_fee_per_gas, sent_at, status, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (sent.chain_id, sent.contract, sent.size, sent.root, sent.note_hash, sent.tx_hash, sent.nonce,
                 sent.max_fee_per_gas, sent.max_priority_fee_per_gas, sent.sent_at, AnchorState.PENDING.value,
                 sent.sent_at))
            rows = await self._db.fetch(f"SELECT {ANCHOR_COLUMNS} FROM anchors WHERE tx_hash=? ORDER BY id DESC "
                                        "LIMIT 1", (sent.tx_hash,))
        return _anchor_of(rows[0])

    async def record_anchor_resent(self, anchor_id: int, seen: AnchorState, sent: AnchorSent, why: str) -> AnchorRow:
        """The anchor's transaction sent again (same nonce, new hash and fees): pending, no block."""
        return await self._anchor_change(
            anchor_id, seen, AnchorState.PENDING,
            "tx_hash=?, max_fee_per_gas=?, max_priority_fee_per_gas=?, sent_at=?, sends=sends+1, block_number=NULL, "
            "block_hash=NULL, block_time=NULL, gas_used=NULL, error=?",
            (sent.tx_hash, sent.max_fee_per_gas, sent.max_priority_fee_per_gas, sent.sent_at, why))

    async def record_anchor_mined(self, anchor_id: int, mined: AnchorMined) -> AnchorRow:
        """A receipt with status 1: pending -> mined in `mined.block_number`."""
        return await self._anchor_change(
            anchor_id, AnchorState.PENDING, AnchorState.MINED,
            "block_number=?, block_hash=?, block_time=?, gas_used=?, error=NULL",
            (mined.block_number, mined.block_hash, mined.block_time, mined.gas_used))

    async def record_anchor_confirmed(self, anchor_id: int) -> AnchorRow:
        """N confirmations: mined -> confirmed."""
        return await self._anchor_change(anchor_id, AnchorState.MINED, AnchorState.CONFIRMED, "", ())

    async def record_anchor_reorged(self, anchor_id: int, seen: AnchorState, why: str) -> AnchorRow:
        """Its block is no longer canonical: back to pending, the block forgotten."""
        return await self._anchor_change(
            anchor_id, seen, AnchorState.PENDING,
            "block_number=NULL, block_hash=NULL, block_time=NULL, gas_used=NULL, error=?", (why,))

    async def record_anchor_final(self, anchor_id: int, status: AnchorState, why: str,
                                  mined: AnchorMined | None = None) -> AnchorRow:
        """pending -> failed (reverted in `mined`) or replaced (its nonce used by another transaction)."""
        if status not in (AnchorState.FAILED, AnchorState.REPLACED):
            raise StoreError(f"an anchor ends failed or replaced, not {status.value}")
        sets, params = "error=?", (why,)  # type: tuple[str, tuple[Any, ...]]
        if mined is not None:
            sets += ", block_number=?, block_hash=?, block_time=?, gas_used=?"
            params += (mined.block_number, mined.block_hash, mined.block_time, mined.gas_used)
        return await self._anchor_change(anchor_id, AnchorState.PENDING, status, sets, params)

    async def _anchor_change(self, anchor_id: int, seen: AnchorState, status: AnchorState, sets: str,
                             params: tuple[Any, ...]) -> AnchorRow:
        now = time.time()
        async with self.transaction(f"recording anchor {anchor_id} as {status.value}"):
            rows = await self._db.fetch("SELECT status FROM anchors WHERE id=?", (anchor_id,))
            if not rows:
                raise StoreError(f"anchor {anchor_id} is not in the store")
            if rows[0][0] != seen.value:
                raise StoreError(f"anchor {anchor_id} is {rows[0][0]}, not {seen.value} as its loop saw it: "
                                 "is a second anchoring loop running on this store?")
            await self._db.execute(f"UPDATE anchors SET {sets + ', ' if sets else ''}status=?, updated_at=? WHERE id=?",
                                   (*params, status.value, now, anchor_id))
            changed = await self._db.fetch(f"SELECT {ANCHOR_COLUMNS} FROM anchors WHERE id=?", (anchor_id,))
        return _anchor_of(changed[0])

    async def anchors(self, limit: int, before_id: int | None = None) -> list[AnchorRow]:
        """Newest first; `before_id` is the page cursor (the last id of the previous page)."""
        rows = await self._fetch(f"SELECT {ANCHOR_COLUMNS} FROM anchors WHERE id < ? ORDER BY id DESC LIMIT ?",
                                 (before_id if before_id is not None else 2**63 - 1, limit))
        return [_anchor_of(r) for r in rows]

    async def anchor(self, anchor_id: int) -> AnchorRow | None:
        rows = await self._fetch(f"SELECT {ANCHOR_COLUMNS} FROM anchors WHERE id=?", (anchor_id,))
        return _anchor_of(rows[0]) if rows else None

    async def open_anchors(self, chain_id: int, contract: str) -> list[AnchorRow]:
        """What the loop follows on this contract, oldest first: every pending or mined anchor, and the
        newest confirmed one (a reorg deeper than the confirmations can still take it back)."""
        rows = await self._fetch(
            f"SELECT {ANCHOR_COLUMNS} FROM anchors WHERE chain_id=? AND contract=? AND status IN (?, ?) ORDER BY id",
            (chain_id, contract, AnchorState.PENDING.value, AnchorState.MINED.value))
        newest = await self.latest_confirmed_anchor(chain_id, contract)
        out = [_anchor_of(r) for r in rows]
        return sorted([*out, newest], key=lambda a: a.id) if newest is not None else out

    async def latest_confirmed_anchor(self, chain_id: int | None = None,
                                      contract: str | None = None) -> AnchorRow | None:
        """The confirmed anchor of the largest checkpoint (on one contract, or on any)."""
        where, params = "status=?", [AnchorState.CONFIRMED.value]  # type: tuple[str, list[Any]]
        if chain_id is not None and contract is not None:
            where += " AND chain_id=? AND contract=?"
            params += [chain_id, contract]
        rows = await self._fetch(f"SELECT {ANCHOR_COLUMNS} FROM anchors WHERE {where} ORDER BY size DESC, id DESC "
                                 "LIMIT 1", params)
        return _anchor_of(rows[0]) if rows else None

    async def confirmed_anchor_covering(self, size: int) -> AnchorRow | None:
        """The confirmed anchor of the smallest checkpoint at or after `size` (on any contract): the one
        that covers every leaf below `size` soonest (a certificate carries it; None: not anchored yet)."""
        rows = await self._fetch(f"SELECT {ANCHOR_COLUMNS} FROM anchors WHERE status=? AND size>=? "
                                 "ORDER BY size, id DESC LIMIT 1", (AnchorState.CONFIRMED.value, size))
        return _anchor_of(rows[0]) if rows else None

    async def anchored_size(self, chain_id: int, contract: str) -> int:
        """The largest checkpoint size sent to this contract and not failed or replaced (0: none)."""
        rows = await self._fetch("SELECT MAX(size) FROM anchors WHERE chain_id=? AND contract=? "
                                 "AND status NOT IN (?, ?)",
                                 (chain_id, contract, AnchorState.FAILED.value, AnchorState.REPLACED.value))
        return int(rows[0][0]) if rows and rows[0][0] is not None else 0

    # ---- queries for the API and the CLI ----------------------------------------------

    async def shipments(self, limit: int, offset: int) -> list[ShipmentListing]:
        rows = await self._fetch(
            "SELECT s.shipment_id, s.profile, s.created_at, count(d.device_id) FROM shipments s "
            "LEFT JOIN devices d USING(shipment_id) GROUP BY s.shipment_id "
            "ORDER BY s.shipment_id LIMIT ? OFFSET ?", (limit, offset))
        return [ShipmentListing(r[0], r[1], r[2], int(r[3])) for r in rows]

    async def shipment(self, shipment_id: str) -> ShipmentRecord | None:
        rows = await self._fetch(
            "SELECT shipment_id, profile, created_at FROM shipments WHERE shipment_id=?",
            (shipment_id,))
        return ShipmentRecord(*rows[0]) if rows else None

    async def shipment_devices(self, shipment_id: str) -> list[DeviceStats]:
        """Registered devices with their maintained stats (None before the first reading)."""
        rows = await self._fetch(
            "SELECT d.device_id, d.public_key IS NOT NULL, s.reading_count, s.sealed_count, "
            "s.first_seq, s.last_seq, s.first_ts, s.last_ts, s.last_received_at, s.acked_seq, s.missing, s.gaps "
            "FROM devices d LEFT JOIN device_stats s USING(device_id) "
            "WHERE d.shipment_id=? ORDER BY d.device_id", (shipment_id,))
        return [DeviceStats(r[0], bool(r[1]), *r[2:]) for r in rows]

    async def shipment_excursions(self, shipment_id: str) -> list[Excursion]:
        return [_excursion_of(r) for r in await self._fetch(
            f"SELECT {EXCURSION_COLUMNS} FROM excursions WHERE shipment_id=? ORDER BY id", (shipment_id,))]

    async def shipment_readings(self, shipment_id: str, after_id: int, limit: int) -> list[ReadingRecord]:
        """A page of the shipment's readings in store order, each with where it is sealed."""
        rows = await self._fetch(
            "SELECT id, body, received_at FROM readings WHERE shipment_id=? AND id > ? ORDER BY id LIMIT ?",
            (shipment_id, after_id, limit))
        where = await self.locate([r[0] for r in rows])
        return [ReadingRecord(r[0], bytes(r[1]), r[2], where.get(r[0])) for r in rows]

    async def device_readings(self, device_id: str) -> list[StoredRow]:
        """Every stored reading of a device in rising seq order (the UNIQUE(device_id, seq) index): a
        certificate's evidence (issue 18)."""
        rows = await self._fetch(
            "SELECT id, device_id, seq, shipment_id, ts, body, leaf_hash FROM readings WHERE device_id=? ORDER BY seq",
            (device_id,))
        return [StoredRow(r[0], r[1], r[2], r[3], r[4], bytes(r[5]), bytes(r[6])) for r in rows]

    async def reading(self, device_id: str, seq: int) -> ReadingRecord | None:
        rows = await self._fetch(
            "SELECT id, body, received_at FROM readings WHERE device_id=? AND seq=?", (device_id, seq))
        if not rows:
            return None
        row_id = rows[0][0]
        return ReadingRecord(row_id, bytes(rows[0][1]), rows[0][2], (await self.locate([row_id])).get(row_id))

    async def shipment_disputes(self, shipment_id: str, limit: int) -> Disputes:
        """Conflicting versions of the shipment's readings, from the quarantine's reason index.

        Derived, not stored: a conflict is already kept with its reason, so no schema change is
        needed. A scan of the conflicts only, which are rare (each is an incident to look into).
        """
        where = "reason_code='conflicting_reading' AND shipment_id=?"
        counts = {r[0]: int(r[1]) for r in await self._fetch(
            f"SELECT device_id, count(*) FROM quarantine WHERE {where} GROUP BY device_id", (shipment_id,))}
        rows = await self._fetch(f"SELECT id, device_id, substr(payload, 1, ?) FROM quarantine WHERE {where} "
                                 "ORDER BY id DESC LIMIT ?", (QUARANTINE_KEEP, shipment_id, limit))
        return Disputes(counts, [Dispute(r[0], r[1], _seq_of(bytes(r[2]))) for r in rows])

    async def counters(self) -> dict[str, int]:
        return {r[0]: r[1] for r in await self._fetch("SELECT name, value FROM counters")}

    async def add_to_counters(self, deltas: dict[str, int]) -> None:
        """Counts kept outside the ingest transaction (what the embedded broker refused, ...)."""
        deltas = {name: n for name, n in deltas.items() if n}
        if not deltas:
            return
        async with self.transaction("updating counters"):
            for name, n in sorted(deltas.items()):
                await self._db.execute("INSERT INTO counters(name, value) VALUES (?, ?) "
                                       "ON CONFLICT(name) DO UPDATE SET value = counters.value + excluded.value",
                                       (name, n))

    # ---- the dashboard (issue 18): a pack's series, and what is new since a watermark ------------
    # Each by an index: a device's readings by UNIQUE(device_id, seq), the rest by primary key.

    async def device_series(self, device_id: str, after_seq: int, limit: int) -> list[SeriesRow]:
        """A device's readings with a seq above `after_seq`, in seq order (a chart's series, read on)."""
        rows = await self._fetch("SELECT seq, body FROM readings WHERE device_id=? AND seq > ? ORDER BY seq LIMIT ?",
                                 (device_id, after_seq, limit))
        return [SeriesRow(r[0], bytes(r[1])) for r in rows]

    async def readings_after(self, after_id: int, limit: int) -> list[StoredRow]:
        """Rows stored after `after_id`, in store order: readings and record leaves (device ids
        starting with "~"), which the caller tells apart."""
        rows = await self._fetch(
            "SELECT id, device_id, seq, shipment_id, ts, body, leaf_hash FROM readings "
            "WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit))
        return [StoredRow(r[0], r[1], r[2], r[3], r[4], bytes(r[5]), bytes(r[6])) for r in rows]

    async def excursions_after(self, after_id: int, limit: int) -> list[Excursion]:
        """Excursions opened after `after_id`, in id order."""
        return [_excursion_of(r) for r in await self._fetch(
            f"SELECT {EXCURSION_COLUMNS} FROM excursions WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit))]

    # ---- what long-running components say of themselves ------------------------------
    # The API runs apart from the ingestor and the sealer (another process, another host),
    # yet /health must say when one of them cannot do its job. Each writes its own account
    # to `meta` under `status:<component>`; the API reads them all.

    async def set_status(self, component: str, status: dict[str, Any]) -> None:
        async with self.transaction(f"recording the status of {component}"):
            await self._db.execute("INSERT INTO meta(key, value) VALUES (?, ?) "
                                   "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                                   (STATUS_PREFIX + component, json.dumps(status, sort_keys=True)))

    async def statuses(self) -> dict[str, dict[str, Any]]:
        rows = await self._fetch("SELECT key, value FROM meta WHERE key >= ? AND key < ? ORDER BY key",
                                 (STATUS_PREFIX, STATUS_PREFIX[:-1] + ";"))  # ';' follows ':'
        return {key[len(STATUS_PREFIX):]: _status_of(value) for key, value in rows}

    async def quarantined(self, *, device_id: str | None, reason_code: str | None, before_id: int | None,
                          limit: int, payload_max: int) -> list[QuarantinePreview]:
        """Newest first, optionally for one device and/or reason; `before_id` is the page cursor.

        Each payload is read only up to `payload_max` bytes: rows written before payloads were
        bounded can be megabytes.
        """
        where: list[str] = ["id < ?"]
        params: list[Any] = [before_id if before_id is not None else 2**63 - 1]
        if device_id is not None:
            where.append("device_id = ?")
            params.append(device_id)
        if reason_code is not None:
            where.append("reason_code = ?")
            params.append(reason_code)
        rows = await self._fetch(
            "SELECT id, received_at, topic, substr(payload, 1, ?), reason_code, reason, device_id, shipment_id, "
            f"length(payload) FROM quarantine WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?",
            (payload_max, *params, limit))
        return [QuarantinePreview(r[0], r[1], r[2], bytes(r[3]), r[4], r[5], r[6], r[7], int(r[8])) for r in rows]
