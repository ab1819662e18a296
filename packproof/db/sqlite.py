"""SQLite through aiosqlite: the embedded default, one file, WAL mode.

The connection runs in autocommit mode and the store opens its transactions explicitly
with `BEGIN IMMEDIATE`, which takes SQLite's write lock at the start: two processes on
one file (an ingestor and `packproof seal`) then wait for each other (busy timeout)
instead of failing on a read lock that cannot be upgraded.

Commits are `synchronous=FULL`: a reading is acknowledged only after the batch holding
it is durably committed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from packproof.db.driver import Row
from packproof.errors import ConfigError, StoreError


def sqlite_path(target: str | Path) -> Path:
    """The file of a `sqlite:///path` URL (a bare path is accepted too)."""
    if isinstance(target, Path):
        return target
    scheme, sep, rest = target.partition("://")
    if not sep:
        return Path(target)
    if scheme != "sqlite":
        raise ConfigError(f"store URL {target!r} is not a sqlite:/// URL")
    return Path(rest[1:] if rest.startswith("/") else rest)


class SqliteDriver:
    engine = "sqlite"
    errors: tuple[type[BaseException], ...] = (sqlite3.Error,)
    types = {"BLOB": "BLOB", "REAL": "REAL", "INT": "INTEGER", "ID": "INTEGER PRIMARY KEY",
             "AUTO_ID": "INTEGER PRIMARY KEY"}

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    @classmethod
    async def connect(cls, target: str | Path, *, readonly: bool) -> SqliteDriver:
        path = sqlite_path(target)
        if readonly and not path.exists():
            raise StoreError(f"no store at {path} (has the ingestor run?)")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = await aiosqlite.connect(path, timeout=30, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open store {path}: {exc}") from exc
        try:
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA synchronous=FULL")
            await db.execute("PRAGMA foreign_keys=ON")
            if readonly:
                await db.execute("PRAGMA query_only=ON")
        except BaseException as exc:
            await db.close()  # its thread would otherwise keep the process alive
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"cannot open store {path}: {exc}") from exc
            raise
        return cls(db)

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return [tuple(r) for r in await self._db.execute_fetchall(sql, params)]

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        cur = await self._db.execute(sql, params)
        return cur.rowcount

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self._db.executemany(sql, rows)

    async def insert_rows(self, table: str, columns: Sequence[tuple[str, str]], rows: Sequence[Sequence[Any]]) -> None:
        names = ", ".join(c for c, _ in columns)
        await self._db.executemany(f"INSERT INTO {table}({names}) VALUES ({','.join('?' * len(columns))})", rows)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        try:
            await self._db.execute("BEGIN IMMEDIATE")
            yield
            await self._db.execute("COMMIT")
        except BaseException:
            # A failed COMMIT (a full disk shows there, in WAL mode) or a cancellation leaves the
            # transaction open: end it, or every later BEGIN fails and the write lock stays held.
            if self._db.in_transaction:
                await self._db.execute("ROLLBACK")
            raise

    async def table_exists(self, name: str) -> bool:
        return bool(await self.fetch("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)))

    async def close(self) -> None:
        await self._db.close()
