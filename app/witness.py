"""`packproof witness`: a C2SP tlog-witness service (c2sp.org/tlog-witness) around the pure decision.

The decision (which status, which new state) is packproof.anchor.witness.decide; the signature is
packproof.anchor.cosignature. This module adds the two things the spec asks of the service:

* the state (size and root last cosigned per origin) lives in a SQLite file, WAL journal with
  synchronous=FULL, so a cosignature is only sent after its state is on disk and a kill -9 (or a
  power cut) never loses a state the witness already vouched for;
* the check-then-update is atomic ("checking the old size against the latest checkpoint and
  persisting the new checkpoint must be performed atomically"): the decision is made on a state
  read, then applied as a compare-and-swap (UPDATE ... WHERE size = ? AND root = ?, or an INSERT
  that fails if another request inserted first) inside BEGIN IMMEDIATE; a lost race decides
  again on the fresh state, so two requests can never roll the witness back.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response

from packproof.anchor.cosignature import CosignerKey
from packproof.anchor.note import VerifierKey
from packproof.anchor.witness import MAX_BODY_BYTES, Accepted, LogState, Refused, decide, parse_add_checkpoint
from packproof.errors import ConfigError, NoteError, StoreError

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS logs (
    origin TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    root BLOB NOT NULL,
    updated_at REAL NOT NULL
)
"""
_CAS_ATTEMPTS = 8


class WitnessState:
    """The witness's durable state: per origin, the size and root it last cosigned (SQLite file)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(_SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(f"witness state {path}: {exc}") from exc
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    def get(self, origin: str) -> LogState | None:
        with self._lock:
            row = self._db.execute("SELECT size, root FROM logs WHERE origin = ?", (origin,)).fetchone()
        return None if row is None else LogState(int(row[0]), bytes(row[1]))

    def all(self) -> dict[str, LogState]:
        with self._lock:
            rows = self._db.execute("SELECT origin, size, root FROM logs ORDER BY origin").fetchall()
        return {r[0]: LogState(int(r[1]), bytes(r[2])) for r in rows}

    def swap(self, origin: str, old: LogState | None, new: LogState) -> bool:
        """Store `new` for `origin` if the state is still `old` (None: no row); durable once True."""
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                if old is None:
                    cur = db.execute("INSERT INTO logs(origin, size, root, updated_at) VALUES (?, ?, ?, ?) "
                                     "ON CONFLICT(origin) DO NOTHING", (origin, new.size, new.root, time.time()))
                else:
                    cur = db.execute("UPDATE logs SET size = ?, root = ?, updated_at = ? "
                                     "WHERE origin = ? AND size = ? AND root = ?",
                                     (new.size, new.root, time.time(), origin, old.size, old.root))
                swapped = cur.rowcount == 1
                db.execute("COMMIT" if swapped else "ROLLBACK")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return swapped


@dataclass(frozen=True)
class WitnessAnswer:
    status: int
    body: str
    content_type: str


class Witness:
    """The add-checkpoint handler: parse, decide on the stored state, swap it in, cosign."""

    def __init__(self, key: CosignerKey, logs: Sequence[VerifierKey], state: WitnessState) -> None:
        self.key = key
        self.state = state
        by_origin: dict[str, list[VerifierKey]] = {}
        for k in logs:
            by_origin.setdefault(k.name, []).append(k)
        self.logs: Mapping[str, Sequence[VerifierKey]] = by_origin

    def add_checkpoint(self, body: bytes, now: float | None = None) -> WitnessAnswer:
        req = parse_add_checkpoint(body)
        if isinstance(req, Refused):
            return _refusal(req)
        origin = req.checkpoint.origin
        for _ in range(_CAS_ATTEMPTS):
            decision = decide(req, self.logs.get(origin, ()), self.state.get(origin))
            if isinstance(decision, Refused):
                if decision.status == 422 or "split view" in decision.reason:  # evidence a log misbehaves
                    log.warning("witness: %s refused (%d): %s", origin, decision.status, decision.reason)
                return _refusal(decision)
            if self._apply(origin, decision):
                line = self.key.cosign(decision.checkpoint.body(), int(time.time() if now is None else now)).line()
                return WitnessAnswer(200, line, "text/plain; charset=utf-8")
        return WitnessAnswer(503, f"state of {origin} changed {_CAS_ATTEMPTS} times while deciding; try again\n",
                             "text/plain; charset=utf-8")

    def _apply(self, origin: str, decision: Accepted) -> bool:
        if decision.old == decision.new:
            return True  # the same checkpoint again: nothing to store
        return self.state.swap(origin, decision.old, decision.new)


def _refusal(r: Refused) -> WitnessAnswer:
    return WitnessAnswer(r.status, r.body, r.content_type)


def create_witness_app(witness: Witness) -> FastAPI:
    """POST /add-checkpoint (tlog-witness); the state's writes run off the event loop."""
    app = FastAPI(title="packproof witness", openapi_url=None, docs_url=None, redoc_url=None)

    @app.post("/add-checkpoint")
    async def add_checkpoint(request: Request) -> Response:
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                return PlainTextResponse(f"request body longer than {MAX_BODY_BYTES} bytes\n", status_code=400)
        answer = await asyncio.to_thread(witness.add_checkpoint, bytes(body))
        # the content type exactly as given: Starlette would append "; charset=utf-8" to a text/* media_type,
        # and tlog-witness says the 409 body's type MUST be text/x.tlog.size
        return Response(answer.body.encode(), status_code=answer.status, headers={"content-type": answer.content_type})

    return app


def load_or_create_key(path: Path, name: str | None, create: bool) -> CosignerKey:
    """The witness's signing key from `path`; with `create`, a new one named `name` if the file is absent."""
    if not path.exists():
        if not create:
            raise ConfigError(f"witness key {path} does not exist: make one with `packproof witness keygen "
                              f"--key {path} --name NAME` or start with --init --name NAME")
        if not name:
            raise ConfigError("a new witness key needs its name: --name (a schema-less URL such as witness.example/w1)")
        try:
            key = CosignerKey.generate(name)
        except NoteError as exc:
            raise ConfigError(f"--name: {exc}") from exc
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise ConfigError(f"cannot create witness key {path}: {exc.strerror or exc}") from exc
        with os.fdopen(fd, "w") as f:
            f.write(key.text() + "\n")
            f.flush()
            os.fsync(f.fileno())
        return key
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read witness key {path}: {exc}") from exc
    try:
        key = CosignerKey.parse(text)
    except NoteError as exc:
        raise ConfigError(f"witness key {path}: {exc}") from exc
    if name and name != key.name:
        raise ConfigError(f"witness key {path} is named {key.name}, not {name}")
    return key
