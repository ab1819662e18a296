"""Long-running services wired from their parts: ingest+seal, API. Used by the CLI and `run`."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import gc
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from packproof.anchor.anchor_options import AnchoringOptions
from packproof.anchor.ledger import LedgerFile
from packproof.anchor.sealer import Sealer
from packproof.anchor.witnessing import Witnessing, WitnessingOptions, endpoints
from packproof.api.deps import ApiSettings
from packproof.api.main import create_app, end_streams
from packproof.api.notify import MqttTarget
from packproof.app.config import DEFAULT, Settings
from packproof.crypto import load_or_create_ledger_key
from packproof.db.urls import engine_of, redact
from packproof.edge.decode import Plausibility
from packproof.edge.ingestor import Ingestor
from packproof.edge.options import IngestorOptions, MqttOptions
from packproof.edge.thresholds import BUILTIN_PROFILES, Profile, load_profiles
from packproof.errors import ConfigError, NoteError, StoreError
from packproof.net import require_free
from packproof.paths import DataDir
from packproof.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class IngestOptions:
    """The ingest service: where its store and ledger are, whether it also seals, and its ingestor's
    two option records (packproof.edge.options), passed to the ingestor whole."""

    data_dir: Path
    mqtt: MqttOptions = MqttOptions()
    ingestor: IngestorOptions = IngestorOptions()
    seal: bool = True
    seal_interval: float = 1.0
    max_block: int = 8192
    store_url: str | None = None  # None: SQLite in data_dir
    intake_key_file: Path | None = None  # None: DATA_DIR/intake.key, made on first use
    tiles_dir: Path | None = None  # None: DATA_DIR/tiles
    log_origin: str | None = None  # None: packproof.example/<ledger key id>
    witnessing: WitnessingOptions = WitnessingOptions()  # the witnesses asked to cosign, beside the sealer
    anchoring: AnchoringOptions = AnchoringOptions()  # the chain its checkpoints are anchored on, beside the sealer

    @classmethod
    def from_settings(cls, cfg: Settings) -> IngestOptions:
        """`packproof ingest`'s options: the one place its settings become the ingestor's records."""
        m, i = cfg.mqtt, cfg.ingest
        password = None if m.password is None else m.password.get_secret_value()
        mqtt = MqttOptions(m.host, m.port, m.client_id, username=m.username, password=password, tls_ca=m.ca,
                           share_group=m.share_group, protocol=m.protocol, session_expiry=m.session_expiry)
        ingestor = IngestorOptions(i.verify_signatures, i.verify_workers, profiles_from(i.profiles),
                                   plausibility_of(cfg))
        return cls(cfg.data_dir, mqtt, ingestor, i.seal, cfg.seal.interval, store_url=cfg.store_url,
                   intake_key_file=cfg.intake_key_file, tiles_dir=cfg.seal.tiles_dir, log_origin=cfg.seal.log_origin,
                   witnessing=witnessing_options(cfg), anchoring=anchoring_options(cfg))


def anchoring_options(cfg: Settings) -> AnchoringOptions:
    """The [anchoring] settings as the loop's options (off unless rpc, contract and key file are all set)."""
    a = cfg.anchoring
    given = [n for n, v in (("rpc", a.rpc), ("contract", a.contract), ("key_file", a.key_file)) if v]
    if given and len(given) < 3:
        raise ConfigError(f"anchoring: {' and '.join(given)} given, but it needs rpc, contract and key_file all set "
                          "(`packproof anchor run` --rpc --contract --key-file; seal/ingest/run --anchor-rpc "
                          "--anchor-contract --anchor-key-file; or the anchoring section of the --config file)")
    return AnchoringOptions(a.rpc, a.contract, a.key_file, a.chain_id, every=a.every, confirmations=a.confirmations,
                            poll=min(12.0, max(0.2, a.every / 4)), timeout=a.timeout, stop_wait=a.stop_wait,
                            stuck_after=max(600.0, a.every))


async def anchor_beside(store: Store, opts: AnchoringOptions,
                        stop: asyncio.Event) -> asyncio.Task[None] | None:
    """The anchoring loop as its own task beside the sealer (never in its path), until `stop`; then it
    anchors the last checkpoint (set `stop` after the sealer's last block). The key and the settings
    are read now: a bad one stops the start, a node down does not."""
    if not opts.enabled:
        return None
    from packproof.anchor.anchorer import Anchoring  # not at start-up: web3, only when anchoring is on

    return asyncio.create_task(Anchoring(store, opts).run(stop))


def witnessing_options(cfg: Settings) -> WitnessingOptions:
    """The [witnessing] settings as the loop's options; a witness entry that is not 'URL VKEY' stops the start."""
    w = cfg.witnessing
    try:
        return WitnessingOptions(endpoints(w.witnesses), timeout=w.timeout, late_after=w.late_after)
    except NoteError as exc:
        raise ConfigError(f"--witness: {exc}") from exc


async def witness_beside(store: Store, opts: WitnessingOptions, stop: asyncio.Event) -> asyncio.Task[None] | None:
    """The witnessing loop as its own task beside the sealer (never in its path), until `stop`."""
    if not opts.witnesses:
        return None
    return asyncio.create_task(Witnessing(store, opts).run(stop))


def settle_heap() -> None:
    """Keep the cyclic garbage collector off the long-lived startup heap once it is built.

    The ingest process imports FastAPI, pydantic schemas, amqtt and more: ~70k tracked
    objects that every full collection walked again while readings were allocated at
    thousands a second. Measured with the ingest command's imports over 20,000 readings
    (benchmarks/hotpath.py's inputs, gc callbacks timing each collection): 20-21 us of
    collection per reading by default, 8-9 after freezing the startup heap, 3.7 when the
    youngest generation is also collected every 5,000 allocations instead of 700 (a
    batch of 2,000 readings allocates far more than 700 objects, all alive until commit).
    Readings hold no reference cycles, so nothing waits longer to be freed.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(5000, 20, 100)


def profiles_from(path: Path | None) -> dict[str, Profile]:
    return load_profiles(path) if path else dict(BUILTIN_PROFILES)


class IngestService:
    """The ingestor and (by default) the sealer, sharing one store connection."""

    def __init__(self, opts: IngestOptions) -> None:
        self.opts = opts
        self.dirs = DataDir(opts.data_dir, store_url=opts.store_url, intake_key_file=opts.intake_key_file,
                            tiles_dir=opts.tiles_dir, log_origin=opts.log_origin)
        self.store: Store | None = None
        self.ingestor: Ingestor | None = None
        self.sealer: Sealer | None = None
        self._lock: SealerLock | None = None

    @property
    def store_label(self) -> str:
        """Where readings go, for a person: the store's URL without its password."""
        return redact(self.dirs.store)

    async def start(self) -> None:
        o = self.opts
        self.store = await self.dirs.open_writer()
        if o.seal:
            self._lock = await SealerLock.acquire(self.dirs)
            assert self._lock is not None  # no stop event: waits until it holds the lock
            self.sealer = await start_sealer(self.store, self.dirs, o.seal_interval, o.max_block, self._lock)
        self.ingestor = Ingestor(self.store, o.mqtt, o.ingestor)
        await self.ingestor.reload_registry()
        await self.ingestor.connect()
        settle_heap()

    async def run(self, ingest_stop: asyncio.Event, seal_stop: asyncio.Event) -> None:
        """Run until both events are set; ingestion stops (and drains) before the last seal."""
        assert self.ingestor is not None and self.store is not None
        anchor_stop = asyncio.Event()
        anchoring = await anchor_beside(self.store, self.opts.anchoring, anchor_stop) if self.sealer else None
        sealing = asyncio.create_task(self.sealer.run(seal_stop)) if self.sealer else None
        if sealing:
            sealing.add_done_callback(self._sealer_ended)
        witnessing = await witness_beside(self.store, self.opts.witnessing, seal_stop) if self.sealer else None
        try:
            await self.ingestor.run(ingest_stop)
        finally:
            seal_stop.set()
            if sealing:
                with contextlib.suppress(Exception):  # a sealer that failed was reported when it did
                    await sealing
            anchor_stop.set()  # after the last block: the anchoring loop anchors its checkpoint
            if witnessing:
                await witnessing
            if anchoring:
                await anchoring
            await self.store.close()
            if self._lock is not None:
                await self._lock.release()

    def _sealer_ended(self, task: asyncio.Task[None]) -> None:
        """A sealer task that ends with an error while intake goes on: say so at once (log, `halted` on the
        progress line and in /health) rather than when the process stops. Readings are still stored; a
        restarted sealer seals them."""
        if task.cancelled() or task.exception() is None or self.sealer is None:
            return
        exc = task.exception()
        self.sealer.halted = f"the sealer failed: {exc!r}; readings are still stored, restart to seal them"
        log.error("SEALING STOPPED: %s", self.sealer.halted, exc_info=exc)


class SealerLock:
    """One sealer per ledger at any moment, wherever sealers run.

    Two sealers appending to one ledger would fork it. On SQLite the lock is an flock on
    `sealer.lock` beside the ledger; on PostgreSQL a session advisory lock in the store's
    database, so sealers on several hosts exclude each other. Either is released when its
    holder dies, even by kill -9 (the kernel closes the file or the socket; on PostgreSQL
    the server's TCP keepalives notice a host that vanished within ~15 s), and a waiting
    sealer takes over. A PostgreSQL lock can also be lost while its holder lives (the lock's
    connection cut by a restart or an administrator), so the sealer asks `held()` before
    every ledger append. Sealers on several hosts must share the data directory (ledger and
    key): the ledger file is written before the store records a block, and a takeover
    completes that block.
    """

    def __init__(self, calls: LockCalls) -> None:
        self._take, self.held, self._release = calls

    @classmethod
    async def acquire(cls, dirs: DataDir, poll: float = 0.2, stop: asyncio.Event | None = None) -> SealerLock | None:
        """The lock, once this sealer holds it; None if `stop` is set while waiting."""
        pg = engine_of(dirs.store) == "postgresql"
        holder = f"the store {redact(dirs.store)}" if pg else str(dirs.root / "sealer.lock")
        lock = cls(await (_pg_lock(dirs.store) if pg else _file_lock(dirs)))
        waiting = False
        try:
            while not await lock._take():
                if not waiting:
                    waiting = True
                    log.warning("another sealer holds %s; waiting to take over", holder)
                if stop is not None and stop.is_set():
                    await lock.release()
                    return None
                await asyncio.sleep(poll)
        except BaseException:
            await lock.release()
            raise
        if waiting:
            log.warning("took over sealing of %s", dirs.ledger)
        return lock

    async def release(self) -> None:
        await self._release()


LockCalls = tuple[Callable[[], Awaitable[bool]], Callable[[], Awaitable[bool]], Callable[[], Awaitable[None]]]


async def _file_lock(dirs: DataDir) -> LockCalls:
    dirs.root.mkdir(parents=True, exist_ok=True)
    fd = os.open(dirs.root / "sealer.lock", os.O_RDWR | os.O_CREAT, 0o600)

    async def take() -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    async def held() -> bool:
        return True  # an flock lasts as long as its descriptor

    async def release() -> None:
        os.close(fd)  # closing the descriptor releases the lock

    return take, held, release


async def _pg_lock(url: str) -> LockCalls:
    from packproof.db.postgres import SEALER_LOCK, PostgresDriver  # psycopg only for a PostgreSQL store
    conn = await PostgresDriver.connect(url, readonly=False)  # held for as long as this sealer seals

    async def take() -> bool:
        try:
            return await conn.try_session_lock(SEALER_LOCK)
        except conn.errors as exc:
            raise StoreError(f"taking the sealer lock in {redact(url)} failed: {exc}") from exc

    async def held() -> bool:
        try:
            return await conn.holds_session_lock(SEALER_LOCK)
        except conn.errors:
            return False

    return take, held, conn.close


async def start_sealer(store: Store, dirs: DataDir, interval: float, max_block: int,
                       lock: SealerLock | None = None) -> Sealer:
    """A sealer whose ledger and store agree: a block cut short or not recorded is repaired first."""
    key = load_or_create_ledger_key(dirs.ledger_key)
    sealer = Sealer(store, LedgerFile(dirs.ledger), key, interval=interval, max_leaves=max_block,
                    key_path=dirs.ledger_key, lock_held=lock.held if lock else None, tiles_dir=dirs.tiles,
                    origin=dirs.log_origin)
    done = await sealer.recover()
    if done:
        log.warning("recovered %d block(s) written to the ledger but not recorded", done)
    return sealer


async def seal_until(dirs: DataDir, stop: asyncio.Event, interval: float = 1.0, max_block: int = 8192,
                     on_start: Callable[[], None] | None = None,
                     witnessing: WitnessingOptions | None = None,
                     anchoring: AnchoringOptions | None = None) -> Sealer | None:
    """The sealer alone (beside `ingest --no-seal`), until `stop`; seals what is left, then returns.

    None: stopped while another sealer held the lock.
    """
    lock = await SealerLock.acquire(dirs, stop=stop)
    if lock is None:
        return None
    try:
        store = await dirs.open_writer()
        try:
            sealer = await start_sealer(store, dirs, interval, max_block, lock)
            if on_start is not None:
                on_start()
            asking = await witness_beside(store, witnessing, stop) if witnessing else None
            anchor_stop = asyncio.Event()
            anchored = await anchor_beside(store, anchoring, anchor_stop) if anchoring else None
            try:
                await sealer.run(stop)
            finally:
                anchor_stop.set()  # after the last block: the anchoring loop anchors its checkpoint
                if anchored:
                    await anchored
            if asking:
                await asking
            return sealer
        finally:
            await store.close()
    finally:
        await lock.release()


def read_token(path: Path | None, flag: str) -> str | None:
    """A bearer token kept in a file (never on the command line, where `ps` would show it)."""
    if path is None:
        return None
    try:
        token = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"{flag}: cannot read {path}: {exc}") from exc
    if len(token) < 16:
        raise ConfigError(f"{flag}: the token in {path} is shorter than 16 characters")
    return token


def handover_window_of(cfg: Settings, dirs: DataDir) -> float:
    """`api.handover_window_s` when the settings give it (flag, env, file); else what `packproof run`
    wrote into the data directory for its simulated journey (`DataDir.handover_window`); else the
    default, five minutes of real time."""
    if cfg.source_of("api.handover_window_s") != DEFAULT:
        return cfg.api.handover_window_s
    try:
        written = float(dirs.handover_window.read_text().strip())
    except FileNotFoundError:
        return cfg.api.handover_window_s
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{dirs.handover_window}: expected the handover window in seconds ({exc}); "
                          "delete it, or set api.handover_window_s") from exc
    if not written >= 0:
        raise ConfigError(f"{dirs.handover_window}: a handover window is >= 0 seconds, got {written}")
    return written


def plausibility_of(cfg: Settings) -> Plausibility:
    """The bounds on a reading's seq and time, from the ingest settings: the ingestor's, and the API's for
    a custody event's time (one setting for both)."""
    i = cfg.ingest
    return Plausibility(i.max_clock_ahead, i.earliest_ts, i.max_seq_jump)


def api_server(dirs: DataDir, host: str, port: int, stale_after: float = 120.0,
               admin_token_file: Path | None = None, read_token_file: Path | None = None,
               profiles_file: Path | None = None, notify: MqttTarget | None = None,
               handover_window_s: float = 300.0, plausibility: Plausibility | None = None) -> uvicorn.Server:
    """`profiles_file`: the ingestor's extra profiles, so a registration may name them.

    With writes on (an admin token), the intake key POST /devices MACs its records with is
    read now: a missing one stops the API at start, not at its first registration.
    """
    require_free(host, port, "--api-port", "another web server?")
    if admin_token_file is not None:
        dirs.writer_key()
    app = create_app(ApiSettings(dirs, stale_after,
                                 admin_token=read_token(admin_token_file, "--admin-token-file"),
                                 read_token=read_token(read_token_file, "--read-token-file"),
                                 profiles=frozenset(profiles_from(profiles_file)), notify=notify,
                                 handover_window_s=handover_window_s,
                                 plausibility=plausibility or Plausibility()))
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
    return ApiServer(config, app)


class ApiServer(uvicorn.Server):
    """uvicorn's server, which ends the dashboard's event streams (api/live.py) first when it stops:
    uvicorn waits for every open response to finish before the app's lifespan ends, and a stream
    never finishes by itself, so a browser left open would hold the API (and `packproof run`) forever."""

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self.app = app

    async def shutdown(self, sockets: Any = None) -> None:
        await end_streams(self.app)
        await super().shutdown(sockets)
