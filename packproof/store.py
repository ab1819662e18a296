"""The off-chain store: SQLite through aiosqlite, in WAL mode.

A block seals a contiguous run of readings in store order (ids `first_id..last_id`; ids
are dense because rows are only ever appended), so a reading's block height and leaf
index are recorded by that range: leaf index = id - first_id. Sealing then writes one
row per block, not one update per reading.

One writer connection per process (the ingestor and the sealer share it, serialised by a
lock so their transactions never interleave on the connection) and any number of
readers (the API). Every query path the API uses is served by an index or a maintained
aggregate (`device_stats`, `excursions`, `counters`); none scans all readings.

Commits are `synchronous=FULL`: a reading is acknowledged to the broker only after the
batch holding it is durably committed, so a crash loses nothing that was acknowledged.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiosqlite

from anchor.merkle import leaf_hash
from packproof.canonical import canonical_json
from packproof.crypto import b64
from packproof.errors import ConfigError, PackproofError, StoreError
from packproof.timefmt import rfc3339

SCHEMA_VERSION = 2
# Steps from each older version to the next, run in one transaction when a store is opened.
MIGRATIONS: dict[int, str] = {
    1: "ALTER TABLE device_stats ADD COLUMN gaps TEXT NOT NULL DEFAULT '[]';",  # seq ranges not received
}

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS shipments(
    shipment_id TEXT PRIMARY KEY, profile TEXT NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS devices(
    device_id TEXT PRIMARY KEY, shipment_id TEXT NOT NULL REFERENCES shipments(shipment_id),
    public_key BLOB, registered_at REAL NOT NULL, revoked_at REAL, revoked_reason TEXT);
CREATE TABLE IF NOT EXISTS device_keys(
    device_id TEXT NOT NULL REFERENCES devices(device_id), valid_from_seq INTEGER NOT NULL,
    public_key BLOB, added_at REAL NOT NULL, PRIMARY KEY(device_id, valid_from_seq));
CREATE INDEX IF NOT EXISTS devices_shipment ON devices(shipment_id);
CREATE TABLE IF NOT EXISTS readings(
    id INTEGER PRIMARY KEY, device_id TEXT NOT NULL, seq INTEGER NOT NULL,
    shipment_id TEXT NOT NULL, ts TEXT NOT NULL, received_at REAL NOT NULL,
    body BLOB NOT NULL, leaf_hash BLOB NOT NULL,
    UNIQUE(device_id, seq));
CREATE INDEX IF NOT EXISTS readings_shipment ON readings(shipment_id, id);
CREATE TABLE IF NOT EXISTS quarantine(
    id INTEGER PRIMARY KEY, received_at REAL NOT NULL, topic TEXT NOT NULL,
    payload BLOB NOT NULL, reason_code TEXT NOT NULL, reason TEXT NOT NULL,
    device_id TEXT, shipment_id TEXT);
CREATE INDEX IF NOT EXISTS quarantine_device ON quarantine(device_id, id);
CREATE INDEX IF NOT EXISTS quarantine_reason ON quarantine(reason_code, id);
CREATE TABLE IF NOT EXISTS device_stats(
    device_id TEXT PRIMARY KEY, shipment_id TEXT NOT NULL,
    reading_count INTEGER NOT NULL, sealed_count INTEGER NOT NULL DEFAULT 0,
    first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL,
    first_ts TEXT NOT NULL, last_ts TEXT NOT NULL, last_received_at REAL NOT NULL,
    acked_seq INTEGER NOT NULL, missing INTEGER NOT NULL, gaps TEXT NOT NULL DEFAULT '[]');
CREATE INDEX IF NOT EXISTS device_stats_shipment ON device_stats(shipment_id);
CREATE TABLE IF NOT EXISTS excursions(
    id INTEGER PRIMARY KEY, device_id TEXT NOT NULL, shipment_id TEXT NOT NULL,
    test TEXT NOT NULL, quantity TEXT NOT NULL, severity TEXT NOT NULL,
    start_ts TEXT NOT NULL, end_ts TEXT NOT NULL, start_seq INTEGER NOT NULL,
    end_seq INTEGER NOT NULL, peak REAL NOT NULL, limit_value REAL NOT NULL,
    limit_desc TEXT NOT NULL, reading_count INTEGER NOT NULL, open INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS excursions_shipment ON excursions(shipment_id, id);
CREATE INDEX IF NOT EXISTS excursions_open ON excursions(open) WHERE open = 1;
CREATE TABLE IF NOT EXISTS blocks(
    height INTEGER PRIMARY KEY, hash BLOB NOT NULL, first_id INTEGER NOT NULL,
    last_id INTEGER NOT NULL UNIQUE, leaf_count INTEGER NOT NULL, header TEXT NOT NULL,
    signature TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counters(name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

REGISTRY = "~registry"  # device id of the registry's record leaves; no real device id can start with "~"

EXCURSION_COLUMNS = (
    "id, device_id, shipment_id, test, quantity, severity, start_ts, end_ts, start_seq, "
    "end_seq, peak, limit_value, limit_desc, reading_count, open"
)


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    device_id: str
    shipment_id: str
    public_key: bytes | None  # the current key; None: a tracker that cannot sign (trust begins at the ingestor)
    profile: str
    keys: tuple[tuple[int, bytes | None], ...] = ()  # (valid from seq, key), oldest first
    revoked: bool = False

    def key_at(self, seq: int) -> bytes | None:
        """The key valid for reading `seq`: readings from before a rotation keep their old key."""
        valid = [k for start, k in self.keys if start <= seq]
        return valid[-1] if valid else self.public_key


@dataclass(frozen=True, slots=True)
class BlockRecord:
    height: int
    hash: bytes
    first_id: int
    last_id: int
    leaf_count: int
    header: str  # canonical JSON text of the header, exactly as hashed
    signature: str


@dataclass(slots=True)
class IngestBatch:
    """Everything one ingest transaction writes; built by the ingestor, written at once."""

    readings: list[tuple[Any, ...]] = field(default_factory=list)
    quarantine: list[tuple[Any, ...]] = field(default_factory=list)
    stats: list[tuple[Any, ...]] = field(default_factory=list)
    excursions: list[tuple[Any, ...]] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n


async def _migrate(db: aiosqlite.Connection, path: Path) -> None:
    """Create the schema, or bring an older store up to SCHEMA_VERSION keeping its data."""
    rows = list(await db.execute_fetchall(
        "SELECT value FROM meta WHERE key='schema_version'" if await _has_meta(db) else "SELECT NULL WHERE 0"))
    version = int(rows[0][0]) if rows else None
    if version is not None and version > SCHEMA_VERSION:
        raise StoreError(f"{path}: schema version {version} is newer than this packproof ({SCHEMA_VERSION}); "
                         "upgrade packproof")
    if version is not None:
        for v in range(version, SCHEMA_VERSION):
            await db.executescript(f"BEGIN; {MIGRATIONS[v]} UPDATE meta SET value='{v + 1}' "
                                   "WHERE key='schema_version'; COMMIT;")
    await db.executescript(SCHEMA)
    await db.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
    await db.commit()


async def _has_meta(db: aiosqlite.Connection) -> bool:
    rows = list(await db.execute_fetchall("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'"))
    return bool(rows)


def sqlite_path(target: str | Path) -> Path:
    """The file of a `sqlite:///path` URL (a bare path is accepted too); other schemes are refused."""
    if isinstance(target, Path):
        return target
    scheme, sep, rest = target.partition("://")
    if not sep:
        return Path(target)
    if scheme != "sqlite":
        raise ConfigError(f"store URL {target!r}: unknown scheme {scheme!r}; use sqlite:///path or postgresql://...")
    return Path(rest[1:] if rest.startswith("/") else rest)


class Store:
    """Async access to the off-chain store; translate driver errors into StoreError."""

    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        self._db = db
        self.path = path
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, target: str | Path, *, readonly: bool = False) -> Store:
        """Open the store a URL names (`sqlite:///path`, or a bare path: SQLite)."""
        path = sqlite_path(target)
        if readonly and not path.exists():
            raise StoreError(f"no store at {path} (has the ingestor run?)")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = await aiosqlite.connect(path, timeout=30)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open store {path}: {exc}") from exc
        store = cls(db, path)
        try:
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA synchronous=FULL")
            await db.execute("PRAGMA foreign_keys=ON")
            if readonly:
                await db.execute("PRAGMA query_only=ON")
                await store._check_schema()
            else:
                await _migrate(db, path)
        except sqlite3.Error as exc:
            await db.close()
            raise StoreError(f"cannot open store {path}: {exc}") from exc
        except BaseException:
            await db.close()  # its thread would otherwise keep the process alive
            raise
        return store

    async def _check_schema(self) -> None:
        try:
            rows = await self._fetch("SELECT value FROM meta WHERE key='schema_version'")
        except StoreError as exc:
            raise StoreError(f"{self.path} holds no packproof store (has the ingestor run?)") from exc
        if not rows or int(rows[0][0]) != SCHEMA_VERSION:
            raise StoreError(f"{self.path}: schema version {rows[0][0] if rows else None}, expected {SCHEMA_VERSION}")

    async def close(self) -> None:
        await self._db.close()

    async def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        try:
            return list(await self._db.execute_fetchall(sql, params))
        except sqlite3.Error as exc:
            raise StoreError(f"store query failed: {exc}") from exc

    # ---- registry -------------------------------------------------------------------
    # Every change to the registry is also appended as a record leaf (device id REGISTRY,
    # canonical JSON with a `record` field naming its kind), so the sealer seals it like a
    # reading and a key cannot be swapped afterwards without breaking the ledger.

    async def _append_record(self, record: dict[str, Any], now: float) -> None:
        body = canonical_json({**record, "at": rfc3339(now)})
        rows = list(await self._db.execute_fetchall(
            "SELECT coalesce(max(seq), -1) + 1 FROM readings WHERE device_id=?", (REGISTRY,)))
        await self._db.execute(
            "INSERT INTO readings(device_id, seq, shipment_id, ts, received_at, body, leaf_hash) "
            "VALUES (?,?,?,?,?,?,?)", (REGISTRY, rows[0][0], REGISTRY, rfc3339(now), now, body, leaf_hash(body)))
        await self._db.execute(
            "INSERT INTO counters(name, value) VALUES ('registry_changes', 1) "
            "ON CONFLICT(name) DO UPDATE SET value = value + 1")

    async def _registry_tx(self, what: str, work: Any) -> None:
        async with self._lock:
            try:
                await work(time.time())
                await self._db.commit()
            except sqlite3.Error as exc:
                await self._db.rollback()
                raise StoreError(f"{what} failed: {exc}") from exc
            except PackproofError:
                await self._db.rollback()
                raise

    async def register(self, shipments: dict[str, str], devices: Iterable[tuple[str, str, bytes | None]]) -> int:
        """Add shipments (id -> profile) and devices (id, shipment, public key or None).

        Returns how many devices were new. A device already registered with another key or
        shipment is refused: a key changes only by `rotate_key`, on the record.
        """
        new = 0

        async def work(now: float) -> None:
            nonlocal new
            for sid, profile in shipments.items():
                await self._db.execute(
                    "INSERT INTO shipments(shipment_id, profile, created_at) VALUES (?,?,?) "
                    "ON CONFLICT(shipment_id) DO UPDATE SET profile=excluded.profile", (sid, profile, now))
            for device_id, sid, key in devices:
                rows = list(await self._db.execute_fetchall(
                    "SELECT shipment_id, public_key FROM devices WHERE device_id=?", (device_id,)))
                if rows:
                    if rows[0][0] != sid or rows[0][1] != key:
                        raise ConfigError(
                            f"device {device_id} is already registered with a different shipment or key "
                            f"(shipment {rows[0][0]}); a key changes only with `packproof devices rotate`")
                    continue
                await self._db.execute(
                    "INSERT INTO devices(device_id, shipment_id, public_key, registered_at) VALUES (?,?,?,?)",
                    (device_id, sid, key, now))
                await self._db.execute(
                    "INSERT INTO device_keys(device_id, valid_from_seq, public_key, added_at) VALUES (?,?,?,?)",
                    (device_id, 0, key, now))
                await self._append_record({"record": "device-registered", "device_id": device_id,
                                           "shipment_id": sid, "public_key": b64(key) if key else None}, now)
                new += 1

        await self._registry_tx("registering devices", work)
        return new

    async def rotate_key(self, device_id: str, public_key: bytes, from_seq: int) -> None:
        """A new key for readings from `from_seq` on; older readings keep verifying with the old one."""
        async def work(now: float) -> None:
            d = await self.device(device_id)
            if d is None:
                raise ConfigError(f"device {device_id} is not registered")
            if d.keys and from_seq <= d.keys[-1][0]:
                raise ConfigError(f"device {device_id}: the new key must start after seq {d.keys[-1][0]}, "
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
            cur = await self._db.execute("UPDATE devices SET revoked_at=?, revoked_reason=? WHERE device_id=? "
                                         "AND revoked_at IS NULL", (now, reason, device_id))
            if cur.rowcount == 0:
                raise ConfigError(f"device {device_id} is not registered, or is revoked already")
            await self._append_record({"record": "device-revoked", "device_id": device_id, "reason": reason}, now)

        await self._registry_tx(f"revoking {device_id}", work)

    async def registry_changes(self) -> int:
        rows = await self._fetch("SELECT value FROM counters WHERE name='registry_changes'")
        return int(rows[0][0]) if rows else 0

    async def devices(self, device_id: str | None = None) -> list[DeviceRecord]:
        where = "WHERE d.device_id=?" if device_id else ""
        rows = await self._fetch(
            "SELECT d.device_id, d.shipment_id, d.public_key, s.profile, d.revoked_at, "
            "(SELECT json_group_array(json_array(k.valid_from_seq, hex(k.public_key))) FROM "
            " (SELECT * FROM device_keys k WHERE k.device_id = d.device_id ORDER BY valid_from_seq) k) "
            f"FROM devices d JOIN shipments s USING(shipment_id) {where} ORDER BY d.device_id",
            (device_id,) if device_id else ())
        out = []
        for r in rows:
            keys = tuple((int(f), bytes.fromhex(h) if h else None) for f, h in json.loads(r[5]))
            out.append(DeviceRecord(r[0], r[1], r[2], r[3], keys, r[4] is not None))
        return out

    async def device(self, device_id: str) -> DeviceRecord | None:
        found = await self.devices(device_id)
        return found[0] if found else None

    # ---- ingest ---------------------------------------------------------------------

    async def watermarks(self) -> list[tuple[str, int, list[int]]]:
        """(device, watermark, seqs stored above it): the ingestor's delivery state after a restart."""
        out = []
        for device_id, acked in await self._fetch("SELECT device_id, acked_seq FROM device_stats"):
            rows = await self._fetch("SELECT seq FROM readings WHERE device_id=? AND seq > ? ORDER BY seq",
                                     (device_id, acked + 1))
            out.append((device_id, acked, [r[0] for r in rows]))
        return out

    async def last_seqs(self) -> dict[str, int]:
        rows = await self._fetch("SELECT device_id, last_seq FROM device_stats")
        return {r[0]: r[1] for r in rows}

    async def open_excursions(self) -> list[tuple[Any, ...]]:
        return await self._fetch(f"SELECT {EXCURSION_COLUMNS} FROM excursions WHERE open = 1")

    async def max_excursion_id(self) -> int:
        rows = await self._fetch("SELECT coalesce(max(id), 0) FROM excursions")
        return int(rows[0][0])

    async def existing(self, keys: Sequence[tuple[str, int]]) -> dict[tuple[str, int], bytes]:
        """Which of these (device, seq) are already stored, with their leaf hashes: the rare path."""
        found: dict[tuple[str, int], bytes] = {}
        for device_id, seq in keys:
            rows = await self._fetch(
                "SELECT leaf_hash FROM readings WHERE device_id=? AND seq=?", (device_id, seq))
            if rows:
                found[(device_id, seq)] = rows[0][0]
        return found

    async def write_batch(self, b: IngestBatch) -> None:
        """One transaction for a whole ingest batch: readings, quarantine, aggregates."""
        async with self._lock:
            db = self._db
            try:
                if b.readings:
                    await db.executemany(
                        "INSERT OR IGNORE INTO readings(device_id, seq, shipment_id, ts, received_at, "
                        "body, leaf_hash) VALUES (?,?,?,?,?,?,?)", b.readings)
                if b.quarantine:
                    await db.executemany(
                        "INSERT INTO quarantine(received_at, topic, payload, reason_code, reason, "
                        "device_id, shipment_id) VALUES (?,?,?,?,?,?,?)", b.quarantine)
                if b.stats:
                    await db.executemany(
                        "INSERT INTO device_stats(device_id, shipment_id, reading_count, first_seq, "
                        "last_seq, first_ts, last_ts, last_received_at, acked_seq, missing, gaps) "
                        "VALUES (?,?,?,?,?,?,?,?,?,?,?) "
                        "ON CONFLICT(device_id) DO UPDATE SET "
                        "reading_count = reading_count + excluded.reading_count, "
                        "first_ts = CASE WHEN excluded.first_seq < first_seq THEN excluded.first_ts ELSE first_ts END, "
                        "first_seq = min(first_seq, excluded.first_seq), "
                        "last_ts = CASE WHEN excluded.last_seq > last_seq THEN excluded.last_ts ELSE last_ts END, "
                        "last_seq = max(last_seq, excluded.last_seq), "
                        "last_received_at = max(last_received_at, excluded.last_received_at), "
                        "acked_seq = excluded.acked_seq, missing = excluded.missing, gaps = excluded.gaps",
                        b.stats)
                if b.excursions:
                    await db.executemany(
                        f"INSERT OR REPLACE INTO excursions({EXCURSION_COLUMNS}) "
                        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", b.excursions)
                if b.counters:
                    await db.executemany(
                        "INSERT INTO counters(name, value) VALUES (?,?) "
                        "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                        list(b.counters.items()))
                await db.commit()
            except sqlite3.Error as exc:
                await db.rollback()
                raise StoreError(f"writing an ingest batch failed: {exc}") from exc

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

    async def unsealed(self, after_id: int, limit: int) -> list[tuple[int, str, bytes]]:
        """The next readings to seal, in store order: (id, device_id, leaf_hash).

        Store order is deterministic, so a block whose ledger line was written before a
        crash can be matched to the same readings again on restart.
        """
        async with self._lock:
            return await self._fetch(
                "SELECT id, device_id, leaf_hash FROM readings WHERE id > ? ORDER BY id LIMIT ?",
                (after_id, limit))

    async def record_block(self, block: BlockRecord, rows: Sequence[tuple[int, str, bytes]]) -> None:
        if rows[-1][0] - rows[0][0] + 1 != len(rows) or block.first_id != rows[0][0]:
            raise StoreError(f"block {block.height}: readings {rows[0][0]}..{rows[-1][0]} are not a dense run "
                             f"of {len(rows)} ids; rows were deleted from the store")
        per_device: dict[str, int] = {}
        for _, device_id, _ in rows:
            per_device[device_id] = per_device.get(device_id, 0) + 1
        async with self._lock:
            db = self._db
            try:
                await db.execute(
                    "INSERT INTO blocks(height, hash, first_id, last_id, leaf_count, header, signature) "
                    "VALUES (?,?,?,?,?,?,?)",
                    (block.height, block.hash, block.first_id, block.last_id, block.leaf_count,
                     block.header, block.signature))
                await db.executemany(
                    "UPDATE device_stats SET sealed_count = sealed_count + ? WHERE device_id=?",
                    [(n, d) for d, n in per_device.items()])
                await db.commit()
            except sqlite3.Error as exc:
                await db.rollback()
                raise StoreError(f"recording block {block.height} failed: {exc}") from exc

    async def rotation_headers(self) -> list[dict[str, Any]]:
        """Headers of the blocks that announce a ledger key rotation (rare: a scan of block rows)."""
        rows = await self._fetch("SELECT header FROM blocks WHERE header LIKE '%\"next_key\"%' ORDER BY height")
        return [json.loads(r[0]) for r in rows]

    async def block_leaf_hashes(self, block: BlockRecord) -> list[bytes]:
        rows = await self._fetch(
            "SELECT leaf_hash FROM readings WHERE id BETWEEN ? AND ? ORDER BY id", (block.first_id, block.last_id))
        return [r[0] for r in rows]

    async def readings_between(self, first_id: int, last_id: int) -> list[tuple[Any, ...]]:
        """(id, device_id, seq, body, leaf_hash) for ids first..last, in id order: a block's readings."""
        return await self._fetch(
            "SELECT id, device_id, seq, body, leaf_hash FROM readings WHERE id BETWEEN ? AND ? ORDER BY id",
            (first_id, last_id))

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

    async def locate(self, ids: Sequence[int]) -> dict[int, tuple[int, int]]:
        """Reading id -> (block height, leaf index), for the ids already sealed."""
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
                    out[i] = (height, i - first)
                    break
        return out

    # ---- queries for the API and the CLI ----------------------------------------------

    async def shipments(self, limit: int, offset: int) -> list[tuple[Any, ...]]:
        return await self._fetch(
            "SELECT s.shipment_id, s.profile, s.created_at, count(d.device_id) FROM shipments s "
            "LEFT JOIN devices d USING(shipment_id) GROUP BY s.shipment_id "
            "ORDER BY s.shipment_id LIMIT ? OFFSET ?", (limit, offset))

    async def shipment(self, shipment_id: str) -> tuple[Any, ...] | None:
        rows = await self._fetch(
            "SELECT shipment_id, profile, created_at FROM shipments WHERE shipment_id=?",
            (shipment_id,))
        return rows[0] if rows else None

    async def shipment_devices(self, shipment_id: str) -> list[tuple[Any, ...]]:
        """Registered devices with their maintained stats (NULLs before the first reading)."""
        return await self._fetch(
            "SELECT d.device_id, d.public_key IS NOT NULL, s.reading_count, s.sealed_count, "
            "s.first_seq, s.last_seq, s.first_ts, s.last_ts, s.last_received_at, s.acked_seq, s.missing, s.gaps "
            "FROM devices d LEFT JOIN device_stats s USING(device_id) "
            "WHERE d.shipment_id=? ORDER BY d.device_id", (shipment_id,))

    async def shipment_excursions(self, shipment_id: str) -> list[tuple[Any, ...]]:
        return await self._fetch(
            f"SELECT {EXCURSION_COLUMNS} FROM excursions WHERE shipment_id=? ORDER BY id",
            (shipment_id,))

    async def shipment_readings(self, shipment_id: str, after_id: int, limit: int) -> list[tuple[Any, ...]]:
        """(id, body, received_at, block height or None, leaf index or None) in store order."""
        rows = await self._fetch(
            "SELECT id, body, received_at FROM readings WHERE shipment_id=? AND id > ? ORDER BY id LIMIT ?",
            (shipment_id, after_id, limit))
        where = await self.locate([r[0] for r in rows])
        return [(*r, *where.get(r[0], (None, None))) for r in rows]

    async def reading(self, device_id: str, seq: int) -> tuple[Any, ...] | None:
        """(id, body, received_at, block height or None, leaf index or None)."""
        rows = await self._fetch(
            "SELECT id, body, received_at FROM readings WHERE device_id=? AND seq=?", (device_id, seq))
        if not rows:
            return None
        where = await self.locate([rows[0][0]])
        return (*rows[0], *where.get(rows[0][0], (None, None)))

    async def counters(self) -> dict[str, int]:
        return {r[0]: r[1] for r in await self._fetch("SELECT name, value FROM counters")}

    async def quarantined(self, *, device_id: str | None, reason_code: str | None, before_id: int | None,
                          limit: int) -> list[tuple[Any, ...]]:
        """Newest first, optionally for one device and/or reason; `before_id` is the page cursor."""
        where: list[str] = ["id < ?"]
        params: list[Any] = [before_id if before_id is not None else 2**63 - 1]
        if device_id is not None:
            where.append("device_id = ?")
            params.append(device_id)
        if reason_code is not None:
            where.append("reason_code = ?")
            params.append(reason_code)
        return await self._fetch(
            "SELECT id, received_at, topic, payload, reason_code, reason, device_id, shipment_id FROM quarantine "
            f"WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?", (*params, limit))
