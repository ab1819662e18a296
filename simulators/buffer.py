"""The simulated trackers' durable store-and-forward buffer: one SQLite file for the fleet.

Why: a 5G tracker loses its link for minutes or hours and must neither lose what it
measured meanwhile nor reuse a seq after a crash. Each reading is committed here, with
its device's next seq, *before* it is published, and it leaves only when the ingestor
acknowledges it end to end, or, when a device's buffer is full, as its oldest entry,
counted (a real tracker's ring buffer): nothing leaves silently.

One transaction per publishing tick covers every device (new readings, next seqs, the
cap, acknowledged entries, send times), so the cost is per tick, not per reading. WAL
with synchronous=NORMAL: a commit survives the process being killed (-9), not a power
cut, which is what a simulator needs.

The connection may be used from a thread other than the one that opened it (the
publishing loop runs in a worker thread under `packproof run`), but by one thread at a
time; paho's network threads never touch it.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packproof.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_MAX_PER_DEVICE = 100_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS buffered(
  device_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  payload BLOB NOT NULL,          -- the signed reading, byte for byte what is (re)sent
  last_sent_at REAL,              -- wall clock of the last publish; NULL: never sent
  PRIMARY KEY(device_id, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS devices(
  device_id TEXT PRIMARY KEY,
  next_seq INTEGER NOT NULL,      -- never reused, even after kill -9
  dropped INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;  -- lost to the cap, ever
"""


@dataclass(frozen=True, slots=True)
class Entry:
    seq: int
    payload: bytes
    last_sent_at: float | None


@dataclass(slots=True)
class TickResult:
    """What one commit removed, per device: by the cap (lost) and by acknowledgements (stored)."""

    dropped: dict[str, int] = field(default_factory=dict)
    acked: dict[str, int] = field(default_factory=dict)


class SimBuffer:
    def __init__(self, path: Path | str, *, max_per_device: int = DEFAULT_MAX_PER_DEVICE) -> None:
        if max_per_device < 1:
            raise ConfigError(f"the buffer must hold at least 1 reading per device, got {max_per_device}")
        self.path = path
        self.max_per_device = max_per_device
        if isinstance(path, Path):
            path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._count: dict[str, int] = dict(
            self._db.execute("SELECT device_id, COUNT(*) FROM buffered GROUP BY device_id").fetchall())

    # ---- reading the state ------------------------------------------------------------

    def next_seqs(self) -> dict[str, int]:
        return dict(self._db.execute("SELECT device_id, next_seq FROM devices").fetchall())

    def dropped(self) -> dict[str, int]:
        """Readings each device lost to the cap, over the buffer's whole life."""
        return dict(self._db.execute("SELECT device_id, dropped FROM devices WHERE dropped > 0").fetchall())

    def __len__(self) -> int:
        return sum(self._count.values())

    def count(self, device_id: str) -> int:
        return self._count.get(device_id, 0)

    def first_seq(self, device_id: str) -> int | None:
        row = self._db.execute("SELECT MIN(seq) FROM buffered WHERE device_id=?", (device_id,)).fetchone()
        return None if row[0] is None else int(row[0])

    def entries(self, device_id: str, *, from_seq: int, limit: int) -> list[Entry]:
        """Up to `limit` entries from `from_seq` on, oldest first."""
        rows = self._db.execute(
            "SELECT seq, payload, last_sent_at FROM buffered WHERE device_id=? AND seq>=? ORDER BY seq LIMIT ?",
            (device_id, from_seq, limit)).fetchall()
        return [Entry(*r) for r in rows]

    def due_for_resend(self, device_id: str, *, ranges: Sequence[tuple[int, int]], sent_before: float,
                       limit: int) -> list[Entry]:
        """Entries with a seq in one of the inclusive `ranges`, last sent before `sent_before`, oldest first."""
        if not ranges or limit <= 0:
            return []
        where = " OR ".join("seq BETWEEN ? AND ?" for _ in ranges)
        params: list[object] = [device_id, sent_before, *(x for r in ranges for x in r), limit]
        rows = self._db.execute(
            f"SELECT seq, payload, last_sent_at FROM buffered WHERE device_id=? AND last_sent_at<? "
            f"AND ({where}) ORDER BY seq LIMIT ?", params).fetchall()
        return [Entry(*r) for r in rows]

    # ---- the one write per tick ---------------------------------------------------------

    def commit(self, *, readings: Sequence[tuple[str, int, bytes]] = (), next_seqs: Mapping[str, int] | None = None,
               acked: Mapping[str, int] | None = None, sent: Iterable[tuple[str, int, float]] = ()) -> TickResult:
        """One transaction: new readings (and their devices' next seqs), the cap, acknowledged
        entries (every seq <= the device's acked seq) and the send times of what was published.

        All or nothing: on an error (a full disk: packproof.diskfull) nothing of it is kept,
        the buffer stays usable, and the same commit can be made again."""
        result = TickResult()
        db = self._db
        db.execute("BEGIN")
        try:
            if readings:
                db.executemany("INSERT OR IGNORE INTO buffered(device_id, seq, payload) VALUES (?, ?, ?)", readings)
                for device_id, _seq, _p in readings:
                    self._count[device_id] = self._count.get(device_id, 0) + 1
            if next_seqs:
                db.executemany("INSERT INTO devices(device_id, next_seq) VALUES (?, ?) ON CONFLICT(device_id) "
                               "DO UPDATE SET next_seq=max(next_seq, excluded.next_seq)", next_seqs.items())
            for device_id, acked_seq in (acked or {}).items():
                n = db.execute("DELETE FROM buffered WHERE device_id=? AND seq<=?", (device_id, acked_seq)).rowcount
                if n:
                    result.acked[device_id] = n
                    self._count[device_id] -= n
            for device_id in {r[0] for r in readings}:
                over = self._count[device_id] - self.max_per_device
                if over > 0:
                    self._drop_oldest(device_id, over)
                    result.dropped[device_id] = over
            db.executemany("UPDATE buffered SET last_sent_at=? WHERE device_id=? AND seq=?",
                           ((t, d, s) for d, s, t in sent))
            db.execute("COMMIT")
        except BaseException:
            # SQLite ends the transaction itself on some errors (SQLITE_FULL, often at COMMIT in
            # WAL mode): a ROLLBACK then fails with "no transaction is active" and would hide the
            # real error (a full disk), which the caller must see to keep the tick and retry.
            if db.in_transaction:
                db.execute("ROLLBACK")
            self._count = dict(db.execute("SELECT device_id, COUNT(*) FROM buffered GROUP BY device_id").fetchall())
            raise
        return result

    def _drop_oldest(self, device_id: str, n: int) -> None:
        self._db.execute(
            "DELETE FROM buffered WHERE device_id=? AND seq IN "
            "(SELECT seq FROM buffered WHERE device_id=? ORDER BY seq LIMIT ?)", (device_id, device_id, n))
        self._db.execute("INSERT INTO devices(device_id, next_seq, dropped) VALUES (?, 0, ?) "
                         "ON CONFLICT(device_id) DO UPDATE SET dropped=dropped+excluded.dropped", (device_id, n))
        self._count[device_id] -= n

    def migrate_progress_file(self, path: Path) -> bool:
        """Take over `simulator.json` (next seq per device, the state before this buffer):
        each device continues from the larger of both; the file is then renamed `*.migrated`,
        so it is read once and never written again."""
        if not path.exists():
            return False
        try:
            state = json.loads(path.read_text())
            seqs = {str(k): int(v) for k, v in state.items()}
        except (ValueError, TypeError, AttributeError) as exc:
            raise ConfigError(f"{path} is not a JSON object of device -> next seq ({exc}); "
                              "delete it to start the fleet afresh") from exc
        self.commit(next_seqs=seqs)
        path.replace(path.with_name(path.name + ".migrated"))
        log.info("took over the simulator's seqs from %s (renamed *.migrated); %s holds them now", path, self.path)
        return True

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> SimBuffer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
