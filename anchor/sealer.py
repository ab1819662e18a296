"""The sealer: closes a batch of stored readings into a signed ledger block.

Order of a seal, chosen so a crash at any point is repaired deterministically:
1. take the next readings in store order after the last sealed one;
2. build the RFC 6962 tree of the block, append its leaves to the transparency log (only the
   changed tiles, computed, not yet written) and make the signed v2 block (log size and root);
3. append the block to the ledger file and fsync it;
4. record the block, its rows, its log tiles and place, and the checkpoint (signed by the key
   that signed the block) in one store transaction;
5. publish the changed static tiles and the checkpoint (best effort: a failure is logged, and
   the next seal, or the next start, writes everything the directory lacks).

A crash after 3 and before 4 leaves a ledger line the store does not know; `recover`
finds it on start, re-selects the same readings (store order is stable), checks the
Merkle root (and a v2 block's log size and root) matches and records it with its tiles and
checkpoint. A crash inside 3 leaves an incomplete line, which is cut (it was never relied on).

A store sealed before the log existed gets its log on the first start (`recover` builds it
over the sealed blocks, which stay v1), with a checkpoint at its size.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from packproof import failpoints
from packproof.anchor.ledger import GENESIS_PREV, Block, LedgerFile, log_of, make_block, next_key_of
from packproof.anchor.merkle import root_from_leaf_hashes
from packproof.anchor.tlog import append_block, check_origin, default_origin, publish, sign_log_checkpoint
from packproof.crypto import key_id, load_or_create_ledger_key, public_key_bytes
from packproof.diskfull import DISK, Backoff, is_disk_full
from packproof.errors import ConfigError, LedgerIntegrityError, PackproofError, StoreError
from packproof.health import HEARTBEAT, SEALER_STATUS
from packproof.intake import IntakeKey
from packproof.records import BlockRecord, CheckpointRecord, LogBlock, LogUpdate, SealRow
from packproof.store import Store
from packproof.timefmt import rfc3339

log = logging.getLogger(__name__)
SEALER_COMPONENT = "sealer"  # as /health and the progress line name it when its disk is full


def ledger_break(ledger: LedgerFile, head: BlockRecord | None, *, in_flight_ok: bool = False) -> str | None:
    """Why the ledger file does not continue the chain the store records, or None if it does.

    The store records each block after its ledger line is durable, so the file's last block
    must be the store's head (or, seen from outside a sealer, `in_flight_ok`, the next block
    whose line is written but not recorded yet). Anything else (a deleted, truncated or
    replaced file) means an append would start a chain no verifier could link: a sealer
    must refuse, and /health must say so.
    """
    try:
        tail = ledger.tail()
    except (OSError, LedgerIntegrityError) as exc:
        return f"the ledger {ledger.path} cannot be read: {exc}"
    if head is None:
        if tail is None or (in_flight_ok and tail.height == 0):
            return None
        return (f"the store records no block, but the ledger {ledger.path} ends at block {tail.height}: "
                "this ledger belongs to another store")
    if tail is None:
        return (f"the store records block {head.height} ({head.hash.hex()[:16]}..) but the ledger "
                f"{ledger.path} is missing or empty: it was deleted or replaced")
    if tail.height == head.height and tail.hash == head.hash:
        return None
    if in_flight_ok and tail.height == head.height + 1 and tail.header.get("prev_hash") == head.hash.hex():
        return None
    return (f"the store records block {head.height} ({head.hash.hex()[:16]}..) but the ledger {ledger.path} "
            f"ends at block {tail.height} ({tail.hash.hex()[:16]}..): it was truncated, replaced or written by "
            "another sealer")


def intake_problem(row: SealRow, key: IntakeKey, legacy_below: int) -> str | None:
    """Why `row` did not come from packproof's checked write path as it stands, or None if it did.

    The intake MAC over its id and leaf hash must hold, else a writer without the intake
    key put it there (a row inserted by hand, or moved, or its leaf hash rewritten). Rows
    stored before MACs existed (ids below `legacy_below`) carry none and are sealed as before.
    """
    if row.intake_mac is None:
        return None if row.id < legacy_below else "it carries no intake MAC: not written by packproof's intake"
    if not key.holds(row.id, row.leaf_hash, row.intake_mac):
        return "its intake MAC does not hold: not written by packproof's intake as it stands (inserted or moved)"
    return None


def first_problem(rows: list[SealRow], key: IntakeKey, legacy_below: int) -> tuple[int, str | None]:
    """The index of the first row the sealer must refuse, and why; (len(rows), None) if none.

    The common case (a dense run of rows, every MAC holding) is checked in one pass over
    the batch's leaves and MACs; only a row that fails it is examined for its reason.
    """
    if not rows:
        return 0, None
    expected = key.macs(rows[0].id, [r.leaf_hash for r in rows])
    for i, (row, mac) in enumerate(zip(rows, expected, strict=True)):
        if mac != row.intake_mac or row.id != rows[0].id + i:
            problem = intake_problem(row, key, legacy_below)
            if problem is not None:
                return i, problem
    return len(rows), None


def _record(block: Block, first_id: int, last_id: int) -> BlockRecord:
    return BlockRecord(block.height, block.hash, first_id, last_id, block.header["leaf_count"],
                       block.header_text, block.to_json()["signature"])


class Sealer:
    """Seals at least every `interval` seconds, or at once when `max_leaves` are waiting."""

    def __init__(self, store: Store, ledger: LedgerFile, key: Ed25519PrivateKey,
                 interval: float = 1.0, max_leaves: int = 8192, key_path: Path | None = None,
                 lock_held: Callable[[], Awaitable[bool]] | None = None, tiles_dir: Path | None = None,
                 origin: str | None = None) -> None:
        """`key_path`: where `key` lives; a key waiting at `<key_path>.next` is rotated to (see rotate_to).
        `lock_held`: asked before every ledger append; a sealer that lost its lock must not append.
        `tiles_dir`: where the static tiles and checkpoint are published (None: not published).
        `origin`: the log's origin if none is kept in the store yet (None: packproof.example/<key id>).
        The store must hold the intake key: the sealer seals only rows whose intake MAC holds."""
        if store.intake_key is None:
            raise ConfigError(f"the sealer of {store.label} needs the intake key (DATA_DIR/intake.key) to tell "
                              "rows packproof's intake wrote from rows put in the database by hand")
        self.intake_key: IntakeKey = store.intake_key
        self._legacy_below = 0
        self.refused = 0  # rows moved to the quarantine instead of being sealed
        self.lock_held = lock_held
        self.store = store
        self.ledger = ledger
        self.key = key
        self.key_path = key_path
        self.public_key = public_key_bytes(key)
        self.interval = interval
        self.max_leaves = max_leaves
        self._head: BlockRecord | None = None
        self.halted: str | None = None  # why this sealer stopped sealing; None while it seals
        self.paused: str | None = None  # the store or file error sealing waits out; None while it seals
        self.sealed_blocks = 0
        self.sealed_leaves = 0  # readings and registry records
        self.sealed_readings = 0
        self._unsettled = False  # a full disk interrupted a seal: `recover` before the next
        self._reported: str | None = None  # the state last written to the store (report)
        self._since = 0.0
        self._next_beat = 0.0
        self.tiles_dir = tiles_dir
        self._configured_origin = check_origin(origin) if origin is not None else None
        self.origin: str | None = None  # chosen in `recover`
        self.log_size = 0  # the log's size after the last recorded block

    async def recover(self, *, count: bool = False) -> int:
        """Bring store and ledger into agreement; returns how many blocks were completed.

        `count`: the completed blocks are this sealer's own (a seal a full disk interrupted), so
        they count in `sealed_*`; at start they are a previous process's and do not."""
        cut = self.ledger.repair_tail()
        if cut:
            log.warning("ledger %s: cut an incomplete last line (%d bytes)", self.ledger.path, cut)
        blocks = list(self.ledger.read())
        head = await self.store.head_block()
        store_height = head.height if head else -1
        if store_height >= len(blocks):
            raise LedgerIntegrityError(
                f"the store records block {store_height} but the ledger {self.ledger.path} "
                f"ends at block {len(blocks) - 1}: the ledger file was truncated or replaced",
                store_height)
        if head is not None and blocks[store_height].hash != head.hash:
            raise LedgerIntegrityError(
                f"block {store_height}: ledger hash {blocks[store_height].hash.hex()} differs from "
                f"the store's {head.hash.hex()}", store_height)
        if blocks and (announced := next_key_of(blocks[-1])) and self._next_public() == announced:
            self._complete_rotation()  # the announcing block was sealed; the swap of key files was not
        await self._open_log(blocks[0] if blocks else None)
        completed = 0
        after = head.last_id if head else 0
        for block in blocks[store_height + 1:]:
            rows = await self.store.sealable(after, block.header["leaf_count"])
            root = root_from_leaf_hashes([r.leaf_hash for r in rows])
            if len(rows) != block.header["leaf_count"] or root.hex() != block.header["merkle_root"]:
                raise LedgerIntegrityError(
                    f"block {block.height} is in the ledger but not in the store, and the next "
                    f"{len(rows)} stored readings hash to root {root.hex()}, not "
                    f"{block.header['merkle_root']}", block.height)
            update = await self._completed_log(block, [r.leaf_hash for r in rows])
            await self.store.record_block(_record(block, rows[0].id, rows[-1].id), rows, update)
            if update is not None:
                self.log_size = update.blocks[-1].end
            if count:
                self._count(rows)
            after = rows[-1].id
            completed += 1
            log.warning("completed block %d found in the ledger but not in the store", block.height)
        self._head = await self.store.head_block()
        self._legacy_below = await self.store.intake_mac_from()
        await self._build_log()
        await self._publish()
        return completed

    # ---- the transparency log ----------------------------------------------------------------

    async def _open_log(self, genesis: Block | None) -> None:
        """Choose the origin once (kept in the store), and read the log's size."""
        origin = await self.store.log_origin()
        if origin is None:
            first = genesis.header["key_id"] if genesis is not None else key_id(self.public_key)
            origin = await self.store.set_log_origin(self._configured_origin or default_origin(first))
        elif self._configured_origin is not None and self._configured_origin != origin:
            log.warning("the log's origin stays %s as first chosen (configured now: %s): an origin names one "
                        "log for good", origin, self._configured_origin)
        self.origin = origin
        head = await self.store.log_head()
        self.log_size = head.end if head else 0

    def _checkpoint(self, size: int, root: bytes, key: Ed25519PrivateKey) -> CheckpointRecord:
        assert self.origin is not None
        return sign_log_checkpoint(self.origin, size, root, key)

    async def _completed_log(self, block: Block, leaves: list[bytes]) -> LogUpdate | None:
        """For a v2 block `recover` completes: its log tiles, place and checkpoint, checked against its
        header (the log cannot be built past blocks it lacks, so `_build_log` first catches it up)."""
        claimed = log_of(block.header)
        if claimed is None:
            return None  # a v1 block: `_build_log` places it with the others
        await self._build_log()
        appended = await append_block(self.store, self.log_size, leaves)
        if (appended.size, appended.root) != claimed:
            raise LedgerIntegrityError(
                f"block {block.height} is in the ledger but not in the store, and its leaves take the log to size "
                f"{appended.size} root {appended.root.hex()}, not the header's {claimed[0]} {claimed[1].hex()}",
                block.height)
        cp = self._checkpoint(appended.size, appended.root, self._key_of(block))
        return LogUpdate((LogBlock(block.height, appended.size),), appended.tiles, cp)

    def _key_of(self, block: Block) -> Ed25519PrivateKey:
        """The private key that signed `block`: the current one, or the one a rotation since retired."""
        if block.header["key_id"] == key_id(self.public_key) or self.key_path is None:
            return self.key
        retired = self.key_path.with_name(f"{self.key_path.name}.{block.header['key_id']}.retired")
        if not retired.exists():
            raise LedgerIntegrityError(f"block {block.height} is signed by key {block.header['key_id']}, whose "
                                       f"private key is not at {retired}: its checkpoint cannot be signed",
                                       block.height)
        return load_or_create_ledger_key(retired)

    async def _build_log(self) -> None:
        """Place every recorded block the log lacks (a store sealed before the log existed), then sign
        a checkpoint at the new size with the current key. Long for a large store: progress is logged."""
        head = await self.store.head_block()
        placed = await self.store.log_head()
        start = placed.height + 1 if placed else 0
        if head is None or start > head.height:
            return
        log.warning("building the transparency log over blocks %d..%d sealed before it existed", start, head.height)
        size, root, began = self.log_size, b"", time.monotonic()
        tiles_pending: dict[tuple[int, int], bytes] = {}
        places: list[LogBlock] = []
        height = start
        while height <= head.height:
            for record in await self.store.blocks(height, 256):
                leaves = await self.store.block_leaf_hashes(record)
                appended = await append_block(self.store, size, leaves, tiles_pending)
                tiles_pending.update(appended.tiles)
                size, root = appended.size, appended.root
                places.append(LogBlock(record.height, size))
                height = record.height + 1
                claimed = log_of(orjson.loads(record.header))
                if claimed is not None and claimed != (size, root):
                    raise LedgerIntegrityError(
                        f"block {record.height}: its header says log size {claimed[0]} root {claimed[1].hex()}, the "
                        f"leaves give size {size} root {root.hex()}", record.height)
            await self.store.extend_log(LogUpdate(tuple(places), tiles_pending))
            places, tiles_pending = [], {}
            log.warning("transparency log: %d leaves placed, through block %d of %d (%.0f s)", size, height - 1,
                        head.height, time.monotonic() - began)
        self.log_size = size
        if await self.store.checkpoint_at(size) is None:
            await self.store.extend_log(LogUpdate((), {}, self._checkpoint(size, root, self.key)))

    async def _publish(self) -> None:
        """Bring the static directory up to the latest checkpoint; a failure is logged, never fatal."""
        if self.tiles_dir is None:
            return
        cp = await self.store.latest_checkpoint()
        if cp is None:
            return
        try:
            await publish(self.store, self.tiles_dir, cp)
        except (OSError, PackproofError) as exc:
            log.error("could not publish the log's tiles to %s: %s; the next seal tries again", self.tiles_dir, exc)

    async def _next_rows(self) -> list[SealRow]:
        """The next run of rows to seal, every one checked; a row that fails is quarantined first.

        The run stops before the first failing row; when that row is first, it is moved to the
        quarantine (logged, counted, its decision sealed) and the next run is read.
        """
        after = self._head.last_id if self._head else 0
        while rows := await self.store.sealable(after, self.max_leaves):
            good, problem = await asyncio.to_thread(first_problem, rows, self.intake_key, self._legacy_below)
            if good or problem is None:
                return rows[:good]
            bad = rows[0]
            log.error("refusing to seal store row %d (device %s): %s; moved to the quarantine", bad.id, bad.device_id,
                      problem)
            await self.store.refuse_unsealed(bad, problem)
            self.refused += 1
        return []

    async def seal_once(self) -> BlockRecord | None:
        failpoints.bug("seal.bug")
        rows = await self._next_rows()
        if not rows:
            return None
        leaves = [r.leaf_hash for r in rows]
        root = await asyncio.to_thread(root_from_leaf_hashes, leaves)
        appended = await append_block(self.store, self.log_size, leaves)
        next_public = self._next_public()
        block = make_block(
            height=self._head.height + 1 if self._head else 0,
            prev_hash=self._head.hash if self._head else GENESIS_PREV,
            merkle_root=root, leaf_count=len(rows), sealed_at=rfc3339(), key=self.key, next_key=next_public,
            log=(appended.size, appended.root))
        if self.lock_held is not None and not await self.lock_held():
            raise LedgerIntegrityError(f"this sealer lost its lock before sealing block {block.height}: another "
                                       "sealer may hold it now, so it stops without appending", block.height)
        await self._check_continues(block.height)
        await asyncio.to_thread(self.ledger.append, block)
        failpoints.hit("seal.after-ledger")
        record = _record(block, rows[0].id, rows[-1].id)
        checkpoint = self._checkpoint(appended.size, appended.root, self.key)  # the key that signed the block
        await self.store.record_block(record, rows, LogUpdate((LogBlock(block.height, appended.size),),
                                                              appended.tiles, checkpoint))
        self._head = record
        self.log_size = appended.size
        if next_public is not None:
            self._complete_rotation()
        self._count(rows)
        await self._publish()
        return record

    def _count(self, rows: list[SealRow]) -> None:
        """A block this sealer recorded: sealed, or completed after a full disk interrupted its seal."""
        self.sealed_blocks += 1
        self.sealed_leaves += len(rows)
        self.sealed_readings += sum(1 for r in rows if not r.device_id.startswith("~"))  # not record leaves

    async def _check_continues(self, height: int) -> None:
        """Before an append: the store's head is the block this sealer sealed last, and the ledger ends with it.

        `LedgerFile.append` would otherwise create a missing file afresh, and block `height`
        would start a chain that links to nothing.
        """
        head = await self.store.head_block()
        mine = self._head
        if (head is None) != (mine is None) or (head and mine and (head.height, head.hash) != (mine.height, mine.hash)):
            raise LedgerIntegrityError(
                f"refusing to seal block {height}: the store's last block is "
                f"{head.height if head else 'none'}, not {mine.height if mine else 'none'} as this sealer "
                "sealed it (another sealer, or the blocks table changed)", height)
        if problem := ledger_break(self.ledger, head):
            raise LedgerIntegrityError(f"refusing to seal block {height}: {problem}", height)

    # ---- key rotation: a block signed by the old key names the new one -------------------

    def _next_path(self) -> Path | None:
        return self.key_path.with_name(self.key_path.name + ".next") if self.key_path else None

    def _next_public(self) -> bytes | None:
        path = self._next_path()
        return public_key_bytes(load_or_create_ledger_key(path)) if path and path.exists() else None

    def _complete_rotation(self) -> None:
        """After the announcing block is durable: retire the old key file, make the new one current."""
        assert self.key_path is not None
        nxt = self._next_path()
        assert nxt is not None
        retired = self.key_path.with_name(f"{self.key_path.name}.{key_id(self.public_key)}.retired")
        self.key_path.replace(retired)
        nxt.replace(self.key_path)
        self.key = load_or_create_ledger_key(self.key_path)
        self.public_key = public_key_bytes(self.key)
        log.warning("ledger key rotated: blocks are now signed by key %s", key_id(self.public_key))

    async def report(self, state: str) -> None:
        """The sealer's status in the store, for `packproof health seal` in another process: written
        when the state changes and every HEARTBEAT seconds, so a silent one is a dead one."""
        now = time.time()
        if state != self._reported:
            self._since = now
        elif time.monotonic() < self._next_beat:
            return
        head = self._head.height if self._head else -1
        try:
            await self.store.set_status(SEALER_STATUS, {"component": "sealer", "state": state, "height": head,
                                                     "since": rfc3339(self._since), "written_unix": now,
                                                     **({"error": self.paused} if self.paused else {})})
        except StoreError as exc:  # the seal itself reports a store that is away; try again next pass
            if not is_disk_full(exc):  # a full disk is reported once, by packproof.diskfull
                log.warning("could not record the sealer's status (%s); will retry", exc)
            return
        self._reported, self._next_beat = state, time.monotonic() + HEARTBEAT

    async def run(self, stop: asyncio.Event) -> None:
        """Seal until `stop` is set, then seal what is left once more and return.

        A full disk (the ledger append or the store's record of a block) pauses sealing, retried
        with backoff; it never stops the sealer, nor holds up a stop: what is left unsealed then
        is sealed by the next start. A ledger that no longer continues the store's chain (or a
        lost lock) halts sealing: `halted` says why, it is logged, and this returns at once; the
        ingestor sharing the process keeps storing readings, which a repaired sealer seals later.
        """
        if self._head is None:
            await self.recover()
        try:
            await self._run(stop)
        except LedgerIntegrityError as exc:
            self.halted = str(exc)
            log.error("SEALING STOPPED: %s. Readings are still stored; restore the ledger file (or "
                      "investigate), then restart the sealer", exc)
        finally:
            with contextlib.suppress(Exception):  # already failing, or stopped: best effort
                await self.report("halted" if self.halted else "stopped")

    async def _run(self, stop: asyncio.Event) -> None:
        backoff = Backoff()
        while not stop.is_set():
            await self.report("paused" if self.paused else "sealing")
            started = time.monotonic()
            record, full = await self._seal_or_disk_full()
            if full:
                delay = backoff.delay()
            elif record is not None and record.leaf_count >= self.max_leaves:
                continue  # a backlog: keep sealing without waiting
            else:
                backoff.reset()
                delay = max(0.0, self.interval - (time.monotonic() - started))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
        while True:
            record, full = await self._seal_or_disk_full()
            if full:
                log.warning("stopping with readings unsealed (%s); the next start seals them",
                            self.paused or "the disk is full")
            if record is None:
                return

    async def _seal_or_disk_full(self) -> tuple[BlockRecord | None, bool]:
        """One seal; (None, True) if the seal failed and must be retried after a pause.

        A full disk (the ledger append or the store's record) is reported through
        packproof.diskfull. Any other store or file error (the database restarted or dropped our
        connection, a network file system away for a moment) pauses sealing the same way, logged
        with its cause, instead of ending the sealer: readings keep arriving and must be sealed
        once the store answers again. A block may then be in the ledger and not in the store, or
        half a line in the ledger: `recover` completes or cuts it before the next seal, as after
        a crash. (A ledger that does not continue the store's chain is LedgerIntegrityError:
        that halts, by design.)
        """
        try:
            if self._unsettled:
                await self.recover(count=True)
                self._unsettled = False
            record = await self.seal_once()
        except (OSError, StoreError) as exc:
            self._unsettled = True
            if is_disk_full(exc):
                DISK.failed(SEALER_COMPONENT, exc)
            else:
                self.paused = str(exc)
                log.warning("sealing paused: %s; retrying (what is stored stays stored and is sealed "
                            "once this clears)", exc)
            return None, True
        DISK.cleared(SEALER_COMPONENT)
        if self.paused is not None:
            log.warning("sealing resumed after: %s", self.paused)
            self.paused = None
        return record, False
