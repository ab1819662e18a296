"""A full disk is recognised from every engine's real error, and reported once, not per retry.

SQLITE_FULL comes from the real driver with `PRAGMA max_page_count` (the database may not
grow), ENOSPC from a real write to /dev/full; PostgreSQL's disk_full (SQLSTATE 53100) is
psycopg's own exception class, as the server's error would be raised.
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
from pathlib import Path

import psycopg
import pytest

from packproof.crypto import private_key_from_seed, public_key_bytes
from packproof.diskfull import Backoff, DiskWatch, is_disk_full
from packproof.errors import DiskFullError, StoreError
from packproof.store import Store
from tests.storeutil import driver_of


def sqlite_full(path: Path) -> sqlite3.Error:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE t(x BLOB)")
    db.execute(f"PRAGMA max_page_count={db.execute('PRAGMA page_count').fetchone()[0]}")
    try:
        db.execute("INSERT INTO t VALUES (?)", (os.urandom(50_000),))
    except sqlite3.Error as exc:
        return exc
    finally:
        db.close()
    raise AssertionError("the insert should not fit")


def enospc() -> OSError:
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full here to produce a real ENOSPC")
    fd = os.open("/dev/full", os.O_WRONLY)
    try:
        os.write(fd, b"x")
    except OSError as exc:
        return exc
    finally:
        os.close(fd)
    raise AssertionError("/dev/full accepted a write")


def test_each_engines_disk_full_is_recognised(tmp_path: Path) -> None:
    full = sqlite_full(tmp_path / "full.db")
    assert is_disk_full(full) and full.sqlite_errorcode == 13  # type: ignore[attr-defined]
    assert is_disk_full(enospc())
    assert is_disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    pg = psycopg.errors.DiskFull('could not extend file "base/16384/16385": No space left on device')
    assert pg.sqlstate == "53100" and is_disk_full(pg)
    try:  # wrapped the way the store wraps a driver's error
        try:
            raise full
        except sqlite3.Error as exc:
            raise StoreError("writing an ingest batch failed") from exc
    except StoreError as wrapped:
        assert is_disk_full(wrapped)


def test_other_errors_are_not_disk_full(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "x.db")
    with pytest.raises(sqlite3.Error) as missing:
        db.execute("SELECT * FROM nowhere")
    db.close()
    assert not is_disk_full(missing.value)
    assert not is_disk_full(FileNotFoundError(errno.ENOENT, "No such file or directory"))
    assert not is_disk_full(psycopg.errors.UniqueViolation("duplicate key value"))
    assert not is_disk_full(StoreError("block 3: readings 1..9 are not a dense run"))


def real_key(i: int) -> bytes:
    """A usable Ed25519 public key (the registry refuses random bytes that are not a curve point)."""
    return public_key_bytes(private_key_from_seed(f"dev-{i}".encode()))


async def test_a_store_write_on_a_full_disk_is_a_disk_full_error(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "s.db")
    try:
        pages = (await driver_of(store).fetch("PRAGMA page_count"))[0][0]
        await driver_of(store).execute(f"PRAGMA max_page_count={pages}")
        with pytest.raises(DiskFullError, match="registering devices failed: disk full"):
            await store.register({"SHP-1": "un38.3-cell"},
                                 [(f"dev-{i}", "SHP-1", real_key(i)) for i in range(200)])
        assert await store.devices() == []  # nothing half-written
        await driver_of(store).execute("PRAGMA max_page_count=1073741823")  # space again: the same write works
        assert await store.register({"SHP-1": "un38.3-cell"}, [("dev-1", "SHP-1", real_key(1))]) == 1
    finally:
        await store.close()


def test_the_watch_logs_an_episode_once_and_says_when_it_ends(caplog: pytest.LogCaptureFixture) -> None:
    watch = DiskWatch(remind_every=3600)
    caplog.set_level(logging.WARNING, "packproof.diskfull")
    for _ in range(50):
        watch.failed("ingestor", OSError(errno.ENOSPC, "No space left on device"))
    watch.failed("sealer", OSError(errno.ENOSPC, "No space left on device"))
    assert [d.component for d in watch.current()] == ["ingestor", "sealer"]
    summary = watch.summary()
    assert summary is not None and summary.startswith("DISK FULL since ") and "(ingestor, sealer)" in summary
    assert len([r for r in caplog.records if "cannot write" in r.message]) == 2  # one per writer, not per retry
    watch.cleared("ingestor")
    watch.cleared("ingestor")
    assert [d.component for d in watch.current()] == ["sealer"]
    assert len([r for r in caplog.records if "writes again" in r.message]) == 1


def test_backoff_doubles_up_to_its_cap_and_starts_over() -> None:
    b = Backoff(first=0.25, cap=2.0)
    assert [b.delay() for _ in range(6)] == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]
    b.reset()
    assert b.delay() == 0.25
