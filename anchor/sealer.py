"""The sealer: closes a batch of stored readings into a signed ledger block.

Order of a seal, chosen so a crash at any point is repaired deterministically:
1. take the next readings in store order after the last sealed one;
2. build the RFC 6962 tree and the signed block;
3. append the block to the ledger file and fsync it;
4. record the block and each reading's (height, leaf index) in one store transaction.

A crash after 3 and before 4 leaves a ledger line the store does not know; `recover`
finds it on start, re-selects the same readings (store order is stable), checks the
Merkle root matches and records it. A crash inside 3 leaves an incomplete line, which
is cut (it was never relied on).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from anchor.ledger import GENESIS_PREV, Block, LedgerFile, make_block, next_key_of
from anchor.merkle import root_from_leaf_hashes
from packproof import failpoints
from packproof.crypto import key_id, load_or_create_ledger_key, public_key_bytes
from packproof.errors import LedgerIntegrityError, StoreError
from packproof.store import REGISTRY, BlockRecord, Store
from packproof.timefmt import rfc3339

log = logging.getLogger(__name__)
HEARTBEAT = 5.0  # s between status writes when nothing changed (packproof.healthcheck)
STATUS_KEY = "sealer"


def _record(block: Block, first_id: int, last_id: int) -> BlockRecord:
    return BlockRecord(block.height, block.hash, first_id, last_id, block.header["leaf_count"],
                       block.header_text, block.to_json()["signature"])


class Sealer:
    """Seals at least every `interval` seconds, or at once when `max_leaves` are waiting."""

    def __init__(self, store: Store, ledger: LedgerFile, key: Ed25519PrivateKey,
                 interval: float = 1.0, max_leaves: int = 8192, key_path: Path | None = None,
                 lock_held: Callable[[], Awaitable[bool]] | None = None) -> None:
        """`key_path`: where `key` lives; a key waiting at `<key_path>.next` is rotated to (see rotate_to).
        `lock_held`: asked before every ledger append; a sealer that lost its lock must not append."""
        self.lock_held = lock_held
        self.store = store
        self.ledger = ledger
        self.key = key
        self.key_path = key_path
        self.public_key = public_key_bytes(key)
        self.interval = interval
        self.max_leaves = max_leaves
        self._head: BlockRecord | None = None
        self.sealed_blocks = 0
        self.sealed_leaves = 0  # readings and registry records
        self.sealed_readings = 0
        self._reported: str | None = None  # the state last written to the store (report)
        self._since = 0.0
        self._next_beat = 0.0

    async def recover(self) -> int:
        """Bring store and ledger into agreement; returns how many blocks were completed."""
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
        completed = 0
        after = head.last_id if head else 0
        for block in blocks[store_height + 1:]:
            rows = await self.store.unsealed(after, block.header["leaf_count"])
            root = root_from_leaf_hashes([r[2] for r in rows])
            if len(rows) != block.header["leaf_count"] or root.hex() != block.header["merkle_root"]:
                raise LedgerIntegrityError(
                    f"block {block.height} is in the ledger but not in the store, and the next "
                    f"{len(rows)} stored readings hash to root {root.hex()}, not "
                    f"{block.header['merkle_root']}", block.height)
            await self.store.record_block(_record(block, rows[0][0], rows[-1][0]), rows)
            after = rows[-1][0]
            completed += 1
            log.warning("completed block %d found in the ledger but not in the store", block.height)
        self._head = await self.store.head_block()
        return completed

    async def seal_once(self) -> BlockRecord | None:
        after = self._head.last_id if self._head else 0
        rows = await self.store.unsealed(after, self.max_leaves)
        if not rows:
            return None
        root = await asyncio.to_thread(root_from_leaf_hashes, [r[2] for r in rows])
        next_public = self._next_public()
        block = make_block(
            height=self._head.height + 1 if self._head else 0,
            prev_hash=self._head.hash if self._head else GENESIS_PREV,
            merkle_root=root, leaf_count=len(rows), sealed_at=rfc3339(), key=self.key, next_key=next_public)
        if self.lock_held is not None and not await self.lock_held():
            raise LedgerIntegrityError(f"this sealer lost its lock before sealing block {block.height}: another "
                                       "sealer may hold it now, so it stops without appending", block.height)
        await asyncio.to_thread(self.ledger.append, block)
        failpoints.hit("seal.after-ledger")
        record = _record(block, rows[0][0], rows[-1][0])
        await self.store.record_block(record, rows)
        self._head = record
        if next_public is not None:
            self._complete_rotation()
        self.sealed_blocks += 1
        self.sealed_leaves += len(rows)
        self.sealed_readings += sum(1 for r in rows if r[1] != REGISTRY)
        return record

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
            await self.store.set_status(STATUS_KEY, {"component": "sealer", "state": state, "height": head,
                                                     "since": rfc3339(self._since), "written_unix": now})
        except StoreError as exc:  # the seal itself reports a store that is away; try again next pass
            log.warning("could not record the sealer's status (%s); will retry", exc)
            return
        self._reported, self._next_beat = state, time.monotonic() + HEARTBEAT

    async def run(self, stop: asyncio.Event) -> None:
        """Seal until `stop` is set, then seal what is left once more and return."""
        if self._head is None:
            await self.recover()
        try:
            await self._run(stop)
        finally:
            with contextlib.suppress(Exception):  # already failing, or stopped: best effort
                await self.report("stopped")

    async def _run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.report("sealing")
            started = time.monotonic()
            record = await self.seal_once()
            if record is not None and record.leaf_count >= self.max_leaves:
                continue  # a backlog: keep sealing without waiting
            delay = max(0.0, self.interval - (time.monotonic() - started))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
        while await self.seal_once() is not None:
            pass
