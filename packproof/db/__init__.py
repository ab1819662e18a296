"""Database drivers behind the store: one small interface, two engines.

The store (packproof/store.py) writes its SQL once, in the subset both engines share,
with `?` placeholders; a driver runs it. What differs lives here: connecting, column
types in the schema, how a write transaction is serialised across processes (SQLite:
`BEGIN IMMEDIATE`; PostgreSQL: a transaction-scoped advisory lock), and which driver
exceptions mean "the store failed". Serialising writes keeps reading ids dense in commit
order on both engines, which is what lets a block seal a contiguous id range.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

from packproof.errors import ConfigError

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


def engine_of(url: str) -> str:
    scheme = url.partition("://")[0] if "://" in url else "sqlite"
    if scheme in ("postgresql", "postgres"):
        return "postgresql"
    if scheme == "sqlite":
        return "sqlite"
    raise ConfigError(f"store URL {redact(url)!r}: unknown scheme {scheme!r}; "
                      "use sqlite:///path or postgresql://host/db")


def redact(url: str) -> str:
    """The URL without its password (in the authority or a libpq `password=` parameter), for logs and errors.

    Robust to a password pasted in raw (not percent-encoded): everything between `user:` and the
    last `@` is masked, even when a `/`, `@` or `:` of the password would make a URL parser put
    part of it in the host, port or path. Masking too much (an `@` later in the URL) is the safe error.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url  # a bare path: SQLite
    userinfo, at, tail = rest.rpartition("@")
    if at and ":" in userinfo:
        rest = f"{userinfo.partition(':')[0]}:***@{tail}"
    return scheme + sep + _PASSWORD_PARAM.sub(r"\1***", rest)


_PASSWORD_PARAM = re.compile(r"(?i)([?&]password=)[^&#]*")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def url_problem(url: str) -> str | None:
    """Why a PostgreSQL URL would not reach the server it names (None: it parses), without echoing it.

    The usual cause is a password put in raw: `postgresql://app:p/w@d@db/app` sends libpq to the
    wrong host, port or database, with part of the password in its error message.
    """
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018  # a port that is not a number raises
    except ValueError:
        return "its port is not a number"
    if "@" in parts.path or "@" in parts.query or "@" in parts.fragment:
        return "an '@' after the host"
    if _BAD_ESCAPE.search(url):
        return "a '%' that is not a percent-encoded byte"
    return None


def with_password(url: str, password: str) -> str:
    """The PostgreSQL URL with `password` as a libpq `password=` parameter, percent-encoded: any
    character reaches libpq as it is, and `redact` masks it. The password is a setting of its own
    (PACKPROOF_STORE_PASSWORD), so nobody has to encode it into the URL by hand."""
    return f"{url}{'&' if '?' in url else '?'}password={quote(password, safe='')}"


def in_schema(url: str, schema: str) -> str:
    """A PostgreSQL URL whose connections use `schema` (libpq `options`): a store of its own in a shared database."""
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"


def query_sync(url: str, sql: str, params: Sequence[Any] = ()) -> list[Row]:
    """One blocking statement (`?` placeholders) on a store of either engine, from a connection of its own,
    committed: for benchmarks and tests that watch (or, to test tampering, alter) a store packproof writes."""
    if engine_of(url) == "postgresql":
        import psycopg

        from packproof.db.postgres import pg_sql
        with psycopg.connect(url) as conn:
            cur = conn.execute(pg_sql(sql), params)  # type: ignore[call-overload]
            return [tuple(r) for r in cur.fetchall()] if cur.description else []
    import sqlite3

    from packproof.db.sqlite import sqlite_path
    with sqlite3.connect(sqlite_path(url), timeout=10) as conn:
        return [tuple(r) for r in conn.execute(sql, params).fetchall()]
