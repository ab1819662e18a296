"""The anchoring loop (issue 17): the log's newest checkpoint on an Ethereum chain every `every` s.

Runs beside the sealer, never in its path (like anchor/witnessing.py): the sealer signs
checkpoints and goes on; this task reads the store's latest one and, when it is larger than the
last anchored size, sends one transaction (PackproofAnchor.anchor, signed with the operator's
key: anchor/anchoring.py). Every earlier checkpoint is covered by it through RFC 6962 consistency
proofs, so after an outage only the newest is sent. At most one anchor waits unmined at a time:
the next is sent once it is mined, and carries the newest checkpoint of that moment.

Each pass (every `poll` s) follows the open anchors through anchor/anchor_state.py: receipt ->
mined; head - block + 1 >= `confirmations` -> confirmed; the block hash at the recorded height
re-read every pass, so a reorganisation that removes it puts the anchor back to pending; a
transaction the node no longer knows (dropped, or lost in a reorg) is resent with the same nonce,
and one that waits unmined longer than `stuck_after` is replaced at that nonce when the node's fees
now outbid its own; either way fees are bumped 12.5 % (EIP-1559 replacement) only over a market
that rose (`Fees.replacement`), never compounded by resends alone; and the newest checkpoint is
sent in its place if a newer one exists (the old row is then `replaced`).

Write-ahead: a signed transaction is recorded before it is sent, so a crash between the two
leaves a pending row whose transaction the node does not know, which the next pass resends; an
anchor is never sent twice with two nonces.

Faults: every JSON-RPC call has a timeout and runs in a worker thread, so the event loop (and
the sealer on it) never waits on the node; a failed pass backs off exponentially (capped at
`backoff_max`); the status written to the store (/health) names the last error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from packproof.anchor import anchoring
from packproof.anchor.anchor_options import AnchoringOptions
from packproof.anchor.anchor_state import AnchorEvent, Observation, observe, step
from packproof.errors import ChainError, ConfigError, PackproofError
from packproof.records import AnchorMined, AnchorRow, AnchorSent, AnchorState, CheckpointRecord
from packproof.store import Store

__all__ = ["Anchoring", "AnchoringOptions", "STATUS_COMPONENT", "chain_of"]

log = logging.getLogger(__name__)
STATUS_COMPONENT = "anchoring"
T = TypeVar("T")


def chain_of(opts: AnchoringOptions) -> anchoring.Chain:
    """The client the options name (the key read now: a bad key file stops the start)."""
    if not (opts.rpc and opts.contract and opts.key_file):
        raise ConfigError("anchoring needs rpc, contract and key_file (--rpc --contract --key-file)")
    if opts.chain_id is None:
        raise ConfigError("anchoring: chain_id is required (--chain-id; --anchor-chain-id on seal/ingest/run): 1 "
                          "mainnet, 11155111 Sepolia, 31337 a Hardhat dev node; anchors are signed for one chain "
                          "(EIP-155) and the node must serve it")
    account = anchoring.load_key(opts.key_file)
    try:
        address = anchoring.Web3.to_checksum_address(opts.contract)
    except ValueError as exc:
        raise ConfigError(f"--contract: {opts.contract!r} is not an address (0x + 40 hex)") from exc
    return anchoring.Chain(anchoring.connect(opts.rpc, opts.timeout), address, account, opts.chain_id)


class Anchoring:
    """The background loop: `await run(stop)` until `stop` is set, then the last checkpoint is anchored."""

    def __init__(self, store: Store, opts: AnchoringOptions, chain: anchoring.Chain | None = None) -> None:
        self.store, self.opts = store, opts
        self.chain = chain or chain_of(opts)
        self.contract = self.chain.address
        self.chain_id = self.chain.chain_id
        self._nonce = 0  # the next nonce of ours, as far as we know (max with the node's pending count)
        self._checked = False
        self.head: int | None = None  # the chain's head at the last pass, and when (GET /anchors counts with it)
        self.head_seen: float | None = None
        self.error: str | None = None
        self.error_since: float | None = None
        self.failures = 0
        self._next_try = 0.0

    # ---- the loop -----------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        log.info("anchoring: checkpoints of %s on chain %d, contract %s, from %s, every %g s, %d confirmations",
                 self.store.label, self.chain_id, self.contract, self.chain.account.address, self.opts.every,
                 self.opts.confirmations)
        while not stop.is_set():
            await self._attempt(final=False)
            await _sleep(stop, max(self.opts.poll, self._next_try - time.monotonic()))
        await self._last()

    async def _last(self) -> None:
        """On stop: anchor the checkpoint after the last block, waiting at most `stop_wait` s for it to be mined."""
        latest = await self._store_call(self.store.latest_checkpoint)
        if latest is None:
            return
        deadline = time.monotonic() + self.opts.stop_wait
        log.info("anchoring: stopping; the last checkpoint is %d (its anchor waited for up to %g s until mined)",
                 latest.size, self.opts.stop_wait)
        while True:
            row = next((a for a in await self._store_call(self.store.anchors, 5) if a.size >= latest.size
                        and a.contract == self.contract and a.chain_id == self.chain_id
                        and a.status in (AnchorState.MINED, AnchorState.CONFIRMED)), None)
            if row is not None:
                log.info("anchoring: checkpoint %d mined in block %s (tx 0x%s); %s", row.size, row.block_number,
                         row.tx_hash.hex(), "confirmed" if row.status is AnchorState.CONFIRMED else
                         f"its {self.opts.confirmations} confirmations are followed by the next run")
                return
            if time.monotonic() >= deadline:
                break
            if time.monotonic() >= self._next_try:
                await self._attempt(final=True)
            await asyncio.sleep(min(1.0, max(0.05, self.opts.poll / 4)))
        log.warning("anchoring: stopped after waiting %g s: checkpoint %d is not mined yet (%s); the next "
                    "`packproof anchor run` (or seal/run with [anchoring]) follows or sends it",
                    self.opts.stop_wait, latest.size, self.error or "pending in the node's pool")

    async def _attempt(self, *, final: bool) -> None:
        try:
            await self.pass_once(final=final)
        except ConfigError as exc:  # the wrong chain, no contract at the address: waits for a person
            self._failed(str(exc), long=True)
        except anchoring.AnchorRefused as exc:
            self._failed(f"{exc}{_refusal_hint(exc.error)}", long=True)
        except (PackproofError, TimeoutError) as exc:
            self._failed(str(exc) or "the node did not answer in time")
        except Exception as exc:  # noqa: BLE001 - a bug here must never reach the sealer beside it
            log.exception("anchoring: unexpected error")
            self._failed(f"internal error: {type(exc).__name__}: {exc}", long=True)
        with contextlib.suppress(PackproofError):
            await self.store.set_status(STATUS_COMPONENT, await self.status())

    async def pass_once(self, *, final: bool = False) -> None:
        """One look at the chain: follow the open anchors, then send the newest checkpoint if due."""
        if not self._checked:
            origin = await self.store.log_origin()  # None before the first seal: checked again next pass
            await self._chain(self.chain.check, origin)
            self._checked = origin is not None
        head = await self._chain(self.chain.head)
        self.head, self.head_seen = head, time.time()
        for row in await self.store.open_anchors(self.chain_id, self.contract):
            await self._follow(row, head)
        await self._send_if_due(final)
        if self.error is not None:
            log.info("anchoring: working again after %d failed attempt(s)", self.failures)
        self.error, self.error_since, self.failures, self._next_try = None, None, 0, 0.0

    # ---- following one anchor -------------------------------------------------------------

    async def _follow(self, row: AnchorRow, head: int) -> None:
        for _ in range(4):  # a reorg then a re-mining (or a mining then confirmations) in one pass
            seen = await self._observe(row, head)
            event = observe(row.status, _block_of(row), seen, self.opts.confirmations,
                            stuck_after=self.opts.stuck_after)
            if event is None:
                return
            step(row.status, event)  # the machine allows it (IllegalTransition otherwise: a bug)
            row = await self._apply(row, event, seen)
            if event in (AnchorEvent.DROPPED, AnchorEvent.STUCK):
                return  # one resend per pass: the node gets a pass's time to take it

    async def _observe(self, row: AnchorRow, head: int) -> Observation:
        waited = time.time() - row.sent_at
        if row.status is AnchorState.PENDING:
            receipt = await self._chain(self.chain.receipt, row.tx_hash)
            if receipt is not None:
                return Observation(head, receipt.block_number, receipt.block_hash, receipt.ok, True, waited=waited)
            return Observation(head, tx_known=await self._chain(self.chain.known, row.tx_hash), waited=waited)
        at = await self._chain(self.chain.block, row.block_number) if row.block_number is not None else None
        return Observation(head, canonical_hash=at[0] if at else None, waited=waited)

    async def _apply(self, row: AnchorRow, event: AnchorEvent, seen: Observation) -> AnchorRow:
        tx = "0x" + row.tx_hash.hex()
        if event in (AnchorEvent.MINED, AnchorEvent.REVERTED):
            assert seen.receipt_block is not None and seen.receipt_block_hash is not None
            receipt = await self._chain(self.chain.receipt, row.tx_hash)
            block = await self._chain(self.chain.block, seen.receipt_block)
            mined = AnchorMined(seen.receipt_block, seen.receipt_block_hash, block[1] if block else 0,
                                receipt.gas_used if receipt else 0)
            if event is AnchorEvent.REVERTED:
                why = (f"transaction {tx} reverted in block {mined.block_number}: the contract refused checkpoint "
                       f"{row.size} (a size not above its latest, or this key is not its anchorer)")
                log.error("anchoring: %s", why)
                return await self.store.record_anchor_final(row.id, AnchorState.FAILED, why, mined)
            log.info("anchoring: checkpoint %d mined in block %d (tx %s, %d gas)", row.size, mined.block_number,
                     tx, mined.gas_used)
            return await self.store.record_anchor_mined(row.id, mined)
        if event is AnchorEvent.CONFIRMED:
            done = await self.store.record_anchor_confirmed(row.id)
            cp = await self.store.checkpoint_at(row.size)
            after = f", {done.updated_at - cp.signed_at:.1f} s after it was signed" if cp else ""
            log.info("anchoring: checkpoint %d confirmed: %d confirmations on block %s (tx %s)%s", row.size,
                     self.opts.confirmations, row.block_number, tx, after)
            return done
        if event is AnchorEvent.REORGED:
            why = f"block {row.block_number} (0x{(row.block_hash or b'').hex()}) is no longer in the canonical chain"
            log.warning("anchoring: checkpoint %d: %s (reorg); back to pending, tx %s", row.size, why, tx)
            return await self.store.record_anchor_reorged(row.id, row.status, why)
        # DROPPED or STUCK: resend at the same nonce, with the newest checkpoint when there is a newer one
        why = ("the node no longer knows it (dropped)" if event is AnchorEvent.DROPPED
               else f"unmined after {seen.waited:.0f} s (fees too low now?)")
        return await self._resend(row, why, stuck=event is AnchorEvent.STUCK)

    async def _resend(self, row: AnchorRow, why: str, *, stuck: bool) -> AnchorRow:
        last = anchoring.Fees(row.max_fee_per_gas, row.max_priority_fee_per_gas)
        fees = last.replacement(await self._chain(self.chain.fees))
        if fees is None and stuck:  # the node holds it and its fees are not below the market's: it waits
            log.debug("anchoring: checkpoint %d: tx 0x%s unmined, its fees still at or above the node's; "
                      "not bumped", row.size, row.tx_hash.hex())
            return row
        fees = fees or last  # dropped, the market no higher: the same fees again (nothing to outbid)
        latest = await self.store.latest_checkpoint()
        cp = latest if latest is not None and latest.size > row.size else await self.store.checkpoint_at(row.size)
        if cp is None:
            raise PackproofError(f"anchor {row.id}: checkpoint {row.size} is not in the store")
        signed = await self._chain(self.chain.sign_anchor, cp, row.nonce, fees)
        sent = self._sent(cp, signed)
        if cp.size == row.size:
            log.warning("anchoring: checkpoint %d: tx 0x%s %s; resending it as 0x%s (nonce %d, max fee %d wei/gas)",
                        row.size, row.tx_hash.hex(), why, signed.tx_hash.hex(), row.nonce, fees.max_fee_per_gas)
            row = await self.store.record_anchor_resent(row.id, row.status, sent, f"resent: tx 0x{row.tx_hash.hex()} "
                                                                                   f"{why}")
        else:
            log.warning("anchoring: checkpoint %d: tx 0x%s %s; sending the newest checkpoint %d in its place "
                        "(same nonce %d) as 0x%s", row.size, row.tx_hash.hex(), why, cp.size, row.nonce,
                        signed.tx_hash.hex())
            await self.store.record_anchor_final(row.id, AnchorState.REPLACED,
                                                 f"tx 0x{row.tx_hash.hex()} {why}; nonce {row.nonce} reused for "
                                                 f"checkpoint {cp.size}")
            row = await self.store.record_anchor_sent(sent)
        await self._send(row, signed)
        return row

    # ---- sending a new anchor -----------------------------------------------------------------

    async def _send_if_due(self, final: bool) -> None:
        latest = await self.store.latest_checkpoint()
        if latest is None or latest.size <= await self.store.anchored_size(self.chain_id, self.contract):
            return
        recent = await self.store.anchors(1)
        waiting = [a for a in await self.store.open_anchors(self.chain_id, self.contract)
                   if a.status is AnchorState.PENDING]
        if waiting:
            return  # one unmined anchor at a time: the next, once it is mined, carries the newest checkpoint
        if not final and recent and time.time() - recent[0].sent_at < self.opts.every:
            return
        self._nonce = max(self._nonce, await self._chain(self.chain.pending_nonce))
        fees = await self._chain(self.chain.fees)
        signed = await self._chain(self.chain.sign_anchor, latest, self._nonce, fees)
        row = await self.store.record_anchor_sent(self._sent(latest, signed))
        self._nonce += 1
        log.info("anchoring: checkpoint %d sent as tx 0x%s (nonce %d, max fee %d wei/gas, tip %d)", latest.size,
                 signed.tx_hash.hex(), signed.nonce, fees.max_fee_per_gas, fees.max_priority_fee_per_gas)
        await self._send(row, signed)

    async def _send(self, row: AnchorRow, signed: anchoring.Signed) -> None:
        """Send a transaction already recorded; a nonce the node says is used ends the row (`replaced`)."""
        try:
            await self._chain(self.chain.send, signed)
        except ChainError as exc:
            if not anchoring.nonce_too_low(exc):
                raise  # recorded: the next pass finds it unknown to the node and resends it
            self._nonce = 0  # ask the node again next time
            await self.store.record_anchor_final(row.id, AnchorState.REPLACED,
                                                 f"nonce {signed.nonce} is used by another transaction of "
                                                 f"{self.chain.account.address} ({exc})")
            raise PackproofError(f"checkpoint {row.size}: nonce {signed.nonce} is already used by another "
                                 f"transaction of {self.chain.account.address} (another anchorer with this key?); "
                                 "sending again with the node's next nonce") from exc

    def _sent(self, cp: CheckpointRecord, signed: anchoring.Signed) -> AnchorSent:
        return AnchorSent(self.chain_id, self.contract, cp.size, cp.root, anchoring.note_hash(cp.note),
                          signed.tx_hash, signed.nonce, signed.fees.max_fee_per_gas,
                          signed.fees.max_priority_fee_per_gas, time.time())

    # ---- calls, failures, status ----------------------------------------------------------

    async def _chain(self, fn: Callable[..., T], *args: Any) -> T:
        """A blocking JSON-RPC call in a worker thread, bounded in time whatever the node does."""
        try:
            return await asyncio.wait_for(asyncio.to_thread(fn, *args), timeout=self.opts.timeout * 3)
        except TimeoutError:
            raise ChainError(f"{self.opts.rpc or 'the node'}: no answer in {self.opts.timeout * 3:g} s "
                                       f"({getattr(fn, '__name__', 'call')})") from None

    async def _store_call(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return await fn(*args)
        except PackproofError as exc:
            log.warning("anchoring: store: %s", exc)
            return None if fn is not self.store.anchors else []

    def _failed(self, why: str, *, long: bool = False) -> None:
        self._checked = False  # after an outage, check the chain id and the contract's code again (a node reset)
        self.failures += 1
        if self.error_since is None:
            self.error_since = time.time()
        self.error = why
        delay = self.opts.backoff_max if long else min(self.opts.backoff_max, 2.0 ** min(self.failures - 1, 16))
        self._next_try = time.monotonic() + delay
        (log.error if long else log.warning)("anchoring: %s (attempt %d; next in %.0f s)", why, self.failures, delay)

    async def status(self) -> dict[str, Any]:
        """What /health shows: the last confirmed anchor, the one waiting and since when, the last error."""
        latest = await self.store.latest_checkpoint()
        confirmed = await self.store.latest_confirmed_anchor(self.chain_id, self.contract)
        open_rows = [a for a in await self.store.open_anchors(self.chain_id, self.contract)
                     if a.status is not AnchorState.CONFIRMED]
        now = time.time()
        covered = confirmed.size if confirmed else 0
        behind = latest is not None and latest.size > covered
        oldest = min((a.sent_at for a in open_rows), default=None)
        late_after = 2 * self.opts.every + 60 * max(1, self.opts.confirmations)  # 60 s: a slow chain's block
        return {
            "component": STATUS_COMPONENT, "state": "failing" if self.error else "anchoring", "written_unix": now,
            "chain_id": self.chain_id, "contract": self.contract, "account": self.chain.account.address,
            "confirmations": self.opts.confirmations, "every_s": self.opts.every,
            "head": self.head, "head_seen_unix": self.head_seen,
            "latest_size": latest.size if latest else None,
            "confirmed": None if confirmed is None else {
                "size": confirmed.size, "block_number": confirmed.block_number, "block_time": confirmed.block_time,
                "tx_hash": "0x" + confirmed.tx_hash.hex()},
            "open": [{"size": a.size, "status": a.status.value, "tx_hash": "0x" + a.tx_hash.hex(),
                      "block_number": a.block_number, "sends": a.sends} for a in open_rows],
            "pending_since": oldest,
            "error": self.error, "error_since": self.error_since, "failures": self.failures,
            "late": bool(behind and latest is not None and now - latest.signed_at > late_after),
        }


def _block_of(row: AnchorRow) -> tuple[int, bytes] | None:
    return (row.block_number, row.block_hash) if row.block_number is not None and row.block_hash is not None else None


def _refusal_hint(error: str) -> str:
    return {
        "NotAnchorer": ": this key is not the contract's anchorer; use the key that deployed it (--key-file), "
                       "or deploy a contract for this key (`packproof anchor deploy`)",
        "SizeBackwards": ": the contract holds a larger checkpoint than the store's latest (a store restored "
                         "from a backup, or another log anchoring there?); anchoring resumes once the log is larger",
    }.get(error, "")


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=max(0.0, seconds))
