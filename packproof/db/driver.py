"""The interface a database engine implements for the store (packproof/db/__init__.py says why two)."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

Row = tuple[Any, ...]


class Driver(Protocol):
    engine: str  # "sqlite" or "postgresql"
    errors: tuple[type[BaseException], ...]  # what the driver raises when a statement or the connection fails
    types: dict[str, str]  # schema column types by placeholder name: BLOB, REAL, INT, ID, AUTO_ID

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...
    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int: ...  # rows changed
    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...
    async def insert_rows(self, table: str, columns: Sequence[tuple[str, str]], rows: Sequence[Sequence[Any]]) -> None:
        """Append rows (columns as (name, type from `types`)): the bulk path of an ingest batch."""
    def transaction(self) -> AbstractAsyncContextManager[None]: ...  # one writer at a time, across processes
    async def table_exists(self, name: str) -> bool: ...
    async def close(self) -> None: ...
