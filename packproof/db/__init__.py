"""Database drivers behind the store: one small interface, two engines.

The store (packproof/store.py) writes its SQL once, in the subset both engines share,
with `?` placeholders; a driver runs it. What differs lives here: connecting, column
types in the schema, how a write transaction is serialised across processes (SQLite:
`BEGIN IMMEDIATE`; PostgreSQL: a transaction-scoped advisory lock), and which driver
exceptions mean "the store failed". Serialising writes keeps reading ids dense in commit
order on both engines, which is what lets a block seal a contiguous id range.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from packproof.errors import ConfigError

Row = tuple[Any, ...]


class Driver(Protocol):
    engine: str  # "sqlite" or "postgresql"
    errors: tuple[type[BaseException], ...]  # what the driver raises when a statement or the connection fails
    types: dict[str, str]  # schema column types by placeholder name: BLOB, REAL, INT, ID, AUTO_ID

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...
    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int: ...  # rows changed
    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...
    async def script(self, sql: str) -> None: ...  # several statements, no parameters
    def transaction(self) -> AbstractAsyncContextManager[None]: ...  # one writer at a time, across processes
    async def table_exists(self, name: str) -> bool: ...
    async def close(self) -> None: ...


def engine_of(url: str) -> str:
    scheme = url.partition("://")[0] if "://" in url else "sqlite"
    if scheme in ("postgresql", "postgres"):
        return "postgresql"
    if scheme == "sqlite":
        return "sqlite"
    raise ConfigError(f"store URL {url!r}: unknown scheme {scheme!r}; use sqlite:///path or postgresql://host/db")


def redact(url: str) -> str:
    """The URL without its password, for logs and error messages."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest.split("/", 1)[0]:
        return url
    creds, _, host = rest.partition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else url
