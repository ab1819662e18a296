"""The store-and-forward buffer: durable, a seq never reused, bounded, emptied only by acks and the cap."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from packproof.diskfull import DISK
from packproof.errors import ConfigError
from packproof.simulators.buffer import SimBuffer
from packproof.simulators.fleet import build_fleet
from packproof.simulators.publisher import FleetPublisher, leftover_note


def tick(device: str, seqs: range) -> dict:  # type: ignore[type-arg]
    return {"readings": [(device, s, f"r{s}".encode()) for s in seqs], "next_seqs": {device: seqs[-1] + 1}}


def test_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "sim-buffer.db"
    with SimBuffer(path) as b:
        b.commit(**tick("a", range(0, 5)))
        b.commit(**tick("b", range(0, 2)), sent=[("a", 0, 123.5)])
    with SimBuffer(path) as b:
        assert b.next_seqs() == {"a": 5, "b": 2}
        assert len(b) == 7 and b.count("a") == 5 and b.first_seq("a") == 0 and b.first_seq("zz") is None
        entries = b.entries("a", from_seq=0, limit=10)
        assert [(e.seq, e.payload) for e in entries] == [(s, f"r{s}".encode()) for s in range(5)]
        assert entries[0].last_sent_at == 123.5 and entries[1].last_sent_at is None


def test_a_seq_is_never_reused_after_kill_9(tmp_path: Path) -> None:
    """The process dies (SIGKILL) right after a tick's commit, without closing: the seqs stay taken."""
    path = tmp_path / "sim-buffer.db"
    code = (f"import os, signal\nfrom simulators.buffer import SimBuffer\nb = SimBuffer({str(path)!r})\n"
            "b.commit(readings=[('dev', s, b'x') for s in range(7)], next_seqs={'dev': 7})\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == -9
    with SimBuffer(path) as b:
        assert b.next_seqs() == {"dev": 7} and b.count("dev") == 7
    # A publisher on the reopened buffer continues after the last seq made.
    fleet = build_fleet(shipments=1, packs=1, seed=3)
    device = fleet[0].device_id
    with SimBuffer(path) as b:
        b.commit(readings=[(device, s, b"x") for s in range(42)], next_seqs={device: 42})
    with SimBuffer(path) as b:
        FleetPublisher(fleet, b)
        assert fleet[0].next_seq == 42


def test_next_seq_only_grows(tmp_path: Path) -> None:
    with SimBuffer(tmp_path / "b.db") as b:
        b.commit(next_seqs={"a": 10})
        b.commit(next_seqs={"a": 4})
        assert b.next_seqs() == {"a": 10}


def test_cap_drops_the_oldest_and_counts_it(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    with SimBuffer(path, max_per_device=3) as b:
        r = b.commit(**tick("a", range(0, 5)))
        assert r.dropped == {"a": 2}
        r = b.commit(**tick("a", range(5, 6)))
        assert r.dropped == {"a": 1}
        assert [e.seq for e in b.entries("a", from_seq=0, limit=10)] == [3, 4, 5] and b.count("a") == 3
    with SimBuffer(path, max_per_device=3) as b:
        assert b.dropped() == {"a": 3} and b.next_seqs() == {"a": 6}
    with pytest.raises(ConfigError):
        SimBuffer(path, max_per_device=0)


def test_acks_drop_up_to_the_mark_and_nothing_else(tmp_path: Path) -> None:
    with SimBuffer(tmp_path / "b.db") as b:
        b.commit(**tick("a", range(0, 10)))
        b.commit(**tick("b", range(0, 10)))
        r = b.commit(acked={"a": 4})
        assert r.acked == {"a": 5} and not r.dropped
        assert [e.seq for e in b.entries("a", from_seq=0, limit=20)] == [5, 6, 7, 8, 9]
        assert b.count("b") == 10 and len(b) == 15
        assert b.commit(acked={"a": 4}).acked == {}  # again: nothing more to drop
        assert b.commit(acked={"a": -1}).acked == {}


def test_due_for_resend_picks_ranges_sent_long_enough_ago(tmp_path: Path) -> None:
    with SimBuffer(tmp_path / "b.db") as b:
        b.commit(**tick("a", range(0, 10)), sent=[("a", s, 100.0 if s % 2 else 200.0) for s in range(8)])
        due = b.due_for_resend("a", ranges=[(1, 3), (6, 9)], sent_before=150.0, limit=10)
        assert [e.seq for e in due] == [1, 3, 7]  # 8 and 9 were never sent: not a resend
        assert [e.seq for e in b.due_for_resend("a", ranges=[(0, 9)], sent_before=250.0, limit=2)] == [0, 1]
        assert b.due_for_resend("a", ranges=[], sent_before=250.0, limit=2) == []


def test_migrates_the_progress_file_taking_the_max(tmp_path: Path) -> None:
    legacy = tmp_path / "simulator.json"
    legacy.write_text(json.dumps({"a": 5, "b": 20}))
    with SimBuffer(tmp_path / "b.db") as b:
        b.commit(next_seqs={"a": 9, "b": 3})
        assert b.migrate_progress_file(legacy)
        assert b.next_seqs() == {"a": 9, "b": 20}
        assert not legacy.exists() and (tmp_path / "simulator.json.migrated").exists()
        assert not b.migrate_progress_file(legacy)
    legacy.write_text("{nope")
    with SimBuffer(tmp_path / "b.db") as b, pytest.raises(ConfigError, match="delete it"):
        b.migrate_progress_file(legacy)


# ---- a full disk ----------------------------------------------------------------------
# `PRAGMA max_page_count` on the buffer's own connection (the limit is per connection): the
# database may not grow, and SQLite answers SQLITE_FULL exactly as on a full file system.

def fill_up(b: SimBuffer) -> None:
    b._db.execute(f"PRAGMA max_page_count={b._db.execute('PRAGMA page_count').fetchone()[0]}")


def space_again(b: SimBuffer) -> None:
    b._db.execute("PRAGMA max_page_count=1073741823")


def test_a_full_disk_fails_the_commit_cleanly_and_the_same_commit_works_later(tmp_path: Path) -> None:
    """SQLite rolls back by itself on SQLITE_FULL: the buffer must raise that, not 'cannot rollback'."""
    with SimBuffer(tmp_path / "b.db") as b:
        b.commit(**tick("a", range(0, 2)))
        fill_up(b)
        big: dict = {"readings": [("a", s, bytes(20_000)) for s in range(2, 6)], "next_seqs": {"a": 6}}  # type: ignore[type-arg]
        with pytest.raises(sqlite3.OperationalError) as failed:
            b.commit(**big, acked={"a": 0})
        assert failed.value.sqlite_errorcode == 13, failed.value  # type: ignore[attr-defined]  # SQLITE_FULL itself
        assert b.count("a") == 2 and b.next_seqs() == {"a": 2}  # nothing of the failed tick, counts right
        space_again(b)
        r = b.commit(**big, acked={"a": 0})
        assert r.acked == {"a": 1} and b.count("a") == 5 and b.next_seqs() == {"a": 6}


def test_the_publisher_keeps_measuring_through_a_full_disk_and_loses_nothing(tmp_path: Path) -> None:
    fleet = build_fleet(shipments=2, packs=2, seed=5)
    with SimBuffer(tmp_path / "b.db") as b:
        p = FleetPublisher(fleet, b, rate=200, backlog_rate=400)
        fill_up(b)
        stats = p.run(stop=threading.Event(), count=40)  # not connected: measuring and committing only
        assert "simulator buffer" in [d.component for d in DISK.current()]
        assert stats.buffered == 40 * len(fleet)  # the readings a full disk holds back count as buffered
        assert stats.measured < 40 * len(fleet)
        space_again(b)
        p.close()  # commits what waited
        assert not DISK.current() and p.stats.unkept == 0 and p.stats.measured == 40 * len(fleet)
        for d in fleet:
            assert [e.seq for e in b.entries(d.device_id, from_seq=0, limit=100)] == list(range(40))
        assert b.next_seqs() == {d.device_id: 40 for d in fleet}


def test_readings_still_unwritten_at_the_end_are_counted_as_not_kept(tmp_path: Path) -> None:
    fleet = build_fleet(shipments=1, packs=2, seed=5)
    with SimBuffer(tmp_path / "b.db") as b:
        p = FleetPublisher(fleet, b, rate=200, backlog_rate=400)
        fill_up(b)
        p.run(stop=threading.Event(), count=60)
        p.close()
        space_again(b)
        DISK.cleared("simulator buffer")  # this test's episode; the process-wide watch outlives it
        kept = sum(b.count(d.device_id) for d in fleet)
        assert p.stats.unkept == 60 * len(fleet) - kept > 0 and p.stats.buffered == kept
        assert "could not be kept" in leftover_note(p.stats, b.path)
