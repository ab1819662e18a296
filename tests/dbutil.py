"""Watching a store from outside, as an operator with a database client would: for tests and benchmarks.

Production code never reads the store this way (it goes through packproof.store.Store); these
helpers open a connection of their own, so a test sees what is committed, and can alter it to
test tampering.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import psycopg

from packproof.db.driver import Row
from packproof.db.postgres import pg_sql
from packproof.db.sqlite import sqlite_path
from packproof.db.urls import engine_of


def in_schema(url: str, schema: str) -> str:
    """A PostgreSQL URL whose connections use `schema` (libpq `options`): a store of its own in a shared database."""
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"


def query_sync(url: str, sql: str, params: Sequence[Any] = ()) -> list[Row]:
    """One blocking statement (`?` placeholders) on a store of either engine, from a connection of its own,
    committed: for benchmarks and tests that watch (or, to test tampering, alter) a store packproof writes."""
    if engine_of(url) == "postgresql":
        with psycopg.connect(url) as conn:
            cur = conn.execute(pg_sql(sql), params)  # type: ignore[call-overload]
            return [tuple(r) for r in cur.fetchall()] if cur.description else []
    with sqlite3.connect(sqlite_path(url), timeout=10) as conn:
        return [tuple(r) for r in conn.execute(sql, params).fetchall()]
