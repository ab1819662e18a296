"""The anchoring loop against a real Hardhat node (JSON-RPC over HTTP) and a real sealer's
checkpoints in a real store (SQLite and PostgreSQL): key file, deploy with a local key, send,
receipt, confirmations, the wrong chain refused, the link cut mid-run (a real TCP proxy), a
dropped transaction resent, a reorg (evm_snapshot/evm_revert) put back to pending and re-anchored."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from packproof.anchor import anchoring
from packproof.anchor.anchorer import Anchoring, AnchoringOptions, chain_of
from packproof.anchor.ledger import LedgerFile
from packproof.anchor.sealer import Sealer
from packproof.errors import ConfigError
from packproof.health import problems
from packproof.records import AnchorState
from packproof.store import Store
from tests.anchor.test_log import KEY, _add, _store
from tests.chainutil import HardhatNode, TcpProxy, eth_rpc, hardhat_node, rpc  # noqa: F401 (fixture)

ORIGIN = "packproof.example/anchored"


@dataclass
class Rig:
    store: Store
    sealer: Sealer
    opts: AnchoringOptions
    url: str
    leaves: int = 0

    async def seal(self, n: int) -> int:
        """`n` more readings sealed; the log's size after."""
        await _add(self.store, "d", self.leaves, n)
        self.leaves += n
        while await self.sealer.seal_once():
            pass
        latest = await self.store.latest_checkpoint()
        assert latest is not None
        return latest.size

    def anchoring(self, **kw: object) -> Anchoring:
        return Anchoring(self.store, replace(self.opts, **kw))  # type: ignore[arg-type]

    async def chain_latest(self) -> anchoring.Anchor | None:
        assert self.opts.contract is not None
        return anchoring.latest(anchoring.connect(self.url), self.opts.contract)


def funded_key(url: str, path: Path) -> str:
    address = anchoring.new_key_file(path)
    rpc(url, "hardhat_setBalance", address, hex(10**20))
    return address


@pytest.fixture
async def rig(eth_rpc: str, tmp_path: Path, store_url: str) -> AsyncIterator[Rig]:  # noqa: F811
    key = tmp_path / "anchor.key"
    funded_key(eth_rpc, key)
    contract = anchoring.deploy_signed(anchoring.connect(eth_rpc), ORIGIN, anchoring.load_key(key), 31337)
    store = await _store(store_url)
    sealer = Sealer(store, LedgerFile(tmp_path / "ledger.jsonl"), KEY, max_leaves=50, origin=ORIGIN)
    await sealer.recover()
    opts = AnchoringOptions(rpc=eth_rpc, contract=contract, key_file=key, chain_id=31337, every=0.0,
                            confirmations=2, poll=0.05, timeout=2.0, backoff_max=0.3, stop_wait=10.0)
    try:
        yield Rig(store, sealer, opts, eth_rpc)
    finally:
        rpc(eth_rpc, "evm_setAutomine", True)
        await store.close()


@pytest.fixture
def proxy(eth_rpc: str) -> Iterator[TcpProxy]:  # noqa: F811
    p = TcpProxy(int(eth_rpc.rsplit(":", 1)[1])).restore()
    yield p
    p.cut()


def test_a_key_file_is_fresh_private_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "k"
    address = anchoring.new_key_file(path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert anchoring.load_key(path).address == address and address.startswith("0x") and len(address) == 42
    assert anchoring.new_key_file(tmp_path / "k2") != address
    with pytest.raises(ConfigError, match="exists; a key file is never overwritten"):
        anchoring.new_key_file(path)
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match=r"readable by others \(mode 644\); chmod 600"):
        anchoring.load_key(path)
    bad = tmp_path / "bad"
    bad.write_text("not a key\n")
    os.chmod(bad, 0o600)
    with pytest.raises(ConfigError, match="does not hold a secp256k1 private key as 64 hex digits"):
        anchoring.load_key(bad)


async def test_the_loop_sends_nothing_to_a_contract_deployed_for_another_log(rig: Rig) -> None:
    """The same key's contract for another origin: the loop refuses it by name (a settings fault, the
    long backoff) before signing anything, rather than anchoring heads no verifier would accept."""
    other = anchoring.deploy_signed(anchoring.connect(rig.url), "another.example/log",
                                    anchoring.load_key(rig.opts.key_file), 31337)  # type: ignore[arg-type]
    a = Anchoring(rig.store, replace(rig.opts, contract=other))
    size = await rig.seal(5)
    with pytest.raises(anchoring.NotTheContract, match=f"anchors another log: .* the log '{ORIGIN}' hashes to"):
        await a.pass_once()
    assert await rig.store.anchors(5) == [] and anchoring.latest(anchoring.connect(rig.url), other) is None
    await a._attempt(final=False)
    assert a.error is not None and "anchors another log" in a.error and a.failures == 1
    good = rig.anchoring()
    await good.pass_once()
    assert [r.size for r in await rig.store.anchors(5)] == [size]


async def test_a_key_that_is_not_the_contracts_anchorer_is_named_before_anything_is_signed(rig: Rig,
                                                                                    tmp_path: Path) -> None:
    funded_key(rig.url, tmp_path / "other.key")
    await rig.seal(5)
    a = Anchoring(rig.store, replace(rig.opts, key_file=tmp_path / "other.key"))
    with pytest.raises(anchoring.NotTheContract, match=r"--key-file: the contract at 0x\w+ takes anchors only "
                                                       r"from 0x\w+, this key is 0x\w+; use the key that deployed"):
        await a.pass_once()
    assert await rig.store.anchors(5) == []


async def test_the_loop_anchors_the_sealers_checkpoints_and_counts_confirmations(rig: Rig) -> None:
    size = await rig.seal(30)
    a = rig.anchoring()
    await a.pass_once()  # sends, and (automine) follows it to mined in the next pass
    rows = await rig.store.anchors(10)
    assert [(r.size, r.status) for r in rows] == [(size, AnchorState.PENDING)]
    await a.pass_once()
    row, = await rig.store.anchors(10)
    assert row.status is AnchorState.MINED and row.block_number is not None  # depth 1 < 2 confirmations
    assert row.gas_used is not None and 50_000 < row.gas_used < 150_000 and row.block_time is not None
    rpc(rig.url, "hardhat_mine", "0x1")
    await a.pass_once()
    row, = await rig.store.anchors(10)
    assert row.status is AnchorState.CONFIRMED and await rig.store.latest_confirmed_anchor() == row
    cp = await rig.store.checkpoint_at(size)
    on_chain = await rig.chain_latest()
    assert cp is not None and on_chain is not None
    assert (on_chain.size, on_chain.root, on_chain.note_hash) == (size, cp.root, anchoring.note_hash(cp.note))
    assert on_chain.block_time == row.block_time
    assert row.tx_hash == bytes(anchoring.connect(rig.url).eth.get_transaction_receipt(row.tx_hash)["transactionHash"])
    # nothing new: no transaction
    await a.pass_once()
    assert len(await rig.store.anchors(10)) == 1
    # the loop as a task beside sealing: every checkpoint since is covered by the newest; on stop, the last
    stop = asyncio.Event()
    task = asyncio.create_task(rig.anchoring(every=3600.0).run(stop))
    sizes = [await rig.seal(20), await rig.seal(20)]
    stop.set()
    await asyncio.wait_for(task, 30)
    rows = await rig.store.anchors(10)
    assert [r.size for r in rows] == [sizes[-1], size]  # `every` not due: only the stop anchored, the newest
    assert rows[0].status is AnchorState.MINED
    status = (await rig.store.statuses())["anchoring"]
    assert status["confirmed"]["size"] == size and status["error"] is None and problems({"anchoring": status},
                                                                                          time.time()) == []


async def test_a_node_of_another_chain_is_refused(rig: Rig) -> None:
    await rig.seal(5)
    a = rig.anchoring(chain_id=1)
    with pytest.raises(anchoring.WrongChain, match=r"wrong network: --chain-id 1, but the node at http://127.0.0.1:\d+ "
                                                   "serves chain 31337"):
        await a.pass_once()
    await a._attempt(final=False)  # the loop reports it and backs off to the maximum
    status = await a.status()
    assert status["state"] == "failing" and "wrong network" in status["error"]
    assert any("wrong network" in p for p in problems({"anchoring": status}, time.time()))
    assert await rig.store.anchors(10) == []
    with pytest.raises(ConfigError, match="anchoring: chain_id is required"):
        chain_of(AnchoringOptions(rpc=rig.url, contract=rig.opts.contract, key_file=rig.opts.key_file))


async def test_link_cut_mid_run_sealing_goes_on_and_only_the_newest_is_anchored(rig: Rig, proxy: TcpProxy) -> None:
    first = await rig.seal(10)
    stop = asyncio.Event()
    a = rig.anchoring(rpc=proxy.url, confirmations=1, timeout=0.5)
    task = asyncio.create_task(a.run(stop))
    try:
        await _until(lambda: _confirmed_size(rig, first))
        proxy.cut()
        during = []
        for _ in range(3):  # the sealer seals on while the node is out of reach
            t0 = time.monotonic()
            during.append(await rig.seal(10))
            assert time.monotonic() - t0 < 2.0
            await asyncio.sleep(0.3)
        assert during == sorted(during) and during[0] > first
        await _until(lambda: _status_error(rig))
        status = (await rig.store.statuses())["anchoring"]
        assert status["failures"] >= 2 and status["confirmed"]["size"] == first
        assert any("anchoring" in p for p in problems({"anchoring": status}, time.time()))
        proxy.restore()
        await _until(lambda: _confirmed_size(rig, during[-1]))
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    assert sorted(r.size for r in await rig.store.anchors(10)) == [first, during[-1]]  # none of the sizes between
    assert (await rig.store.statuses())["anchoring"]["error"] is None


async def test_a_dropped_transaction_is_resent_with_the_same_nonce_and_higher_fees(rig: Rig) -> None:
    size = await rig.seal(10)
    rpc(rig.url, "evm_setAutomine", False)
    a = rig.anchoring(confirmations=1)
    await a.pass_once()
    sent, = await rig.store.anchors(10)
    assert sent.status is AnchorState.PENDING
    assert rpc(rig.url, "hardhat_dropTransaction", "0x" + sent.tx_hash.hex()) is True
    await a.pass_once()
    again, = await rig.store.anchors(10)
    assert (again.id, again.status, again.nonce, again.sends) == (sent.id, AnchorState.PENDING, sent.nonce, 2)
    assert again.error is not None and "dropped" in again.error
    # the node's fees have not risen: sent again as it was (same fees, so the very same transaction)
    assert (again.max_fee_per_gas, again.max_priority_fee_per_gas, again.tx_hash) == (
        sent.max_fee_per_gas, sent.max_priority_fee_per_gas, sent.tx_hash)
    rpc(rig.url, "evm_mine")
    await a.pass_once()
    done, = await rig.store.anchors(10)
    assert done.status is AnchorState.CONFIRMED and done.tx_hash == again.tx_hash
    on_chain = await rig.chain_latest()
    assert on_chain is not None and on_chain.size == size


async def test_a_reorg_puts_a_confirmed_anchor_back_to_pending_and_it_is_anchored_again(rig: Rig) -> None:
    size = await rig.seal(10)
    snapshot = rpc(rig.url, "evm_snapshot")
    a = rig.anchoring(confirmations=2)
    await a.pass_once()
    await a.pass_once()
    rpc(rig.url, "hardhat_mine", "0x1")
    await a.pass_once()
    before, = await rig.store.anchors(10)
    assert before.status is AnchorState.CONFIRMED
    assert rpc(rig.url, "evm_revert", snapshot) is True  # the chain without the anchor's block
    rpc(rig.url, "evm_setAutomine", False)
    rpc(rig.url, "hardhat_mine", "0x3")  # another history, longer than the one reverted
    await a.pass_once()  # reorged -> pending; its transaction is gone -> resent, same nonce
    after, = await rig.store.anchors(10)
    assert (after.id, after.status, after.sends, after.nonce) == (before.id, AnchorState.PENDING, 2, before.nonce)
    assert after.block_number is None and await rig.store.latest_confirmed_anchor() is None
    assert await rig.chain_latest() is None
    rpc(rig.url, "hardhat_mine", "0x2")
    await a.pass_once()
    again, = await rig.store.anchors(10)
    assert again.status is AnchorState.CONFIRMED and again.block_hash != before.block_hash
    on_chain = await rig.chain_latest()
    assert on_chain is not None and on_chain.size == size


async def _confirmed_size(rig: Rig, size: int) -> bool:
    c = await rig.store.latest_confirmed_anchor()
    return c is not None and c.size == size


async def _status_error(rig: Rig) -> bool:
    st = (await rig.store.statuses()).get("anchoring")
    return bool(st and st.get("error") and st.get("failures", 0) >= 2)


async def _until(cond: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not await cond():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached in {timeout} s: {cond}")
        await asyncio.sleep(0.05)


async def test_a_dropped_transaction_gives_its_nonce_to_the_newest_checkpoint(rig: Rig) -> None:
    first = await rig.seal(10)
    rpc(rig.url, "evm_setAutomine", False)
    a = rig.anchoring(confirmations=1)
    await a.pass_once()
    sent, = await rig.store.anchors(10)
    newest = await rig.seal(10)  # sealed while the first anchor waits: one unmined at a time, nothing more sent
    await a.pass_once()
    assert [r.id for r in await rig.store.anchors(10)] == [sent.id]
    rpc(rig.url, "hardhat_dropTransaction", "0x" + sent.tx_hash.hex())
    await a.pass_once()
    now, old = await rig.store.anchors(10)
    assert (old.id, old.status, old.size) == (sent.id, AnchorState.REPLACED, first)
    assert old.error is not None and f"nonce {sent.nonce} reused for checkpoint {newest}" in old.error
    assert (now.status, now.size, now.nonce) == (AnchorState.PENDING, newest, sent.nonce)
    rpc(rig.url, "evm_mine")
    await a.pass_once()
    assert (await rig.store.anchors(1))[0].status is AnchorState.CONFIRMED
    on_chain = await rig.chain_latest()
    assert on_chain is not None and on_chain.size == newest


async def test_a_transaction_unmined_too_long_is_replaced_with_higher_fees(rig: Rig) -> None:
    await rig.seal(10)
    rpc(rig.url, "evm_setAutomine", False)
    a = rig.anchoring(confirmations=1, stuck_after=0.3)
    await a.pass_once()
    sent, = await rig.store.anchors(10)
    await a.pass_once()
    assert (await rig.store.anchors(1))[0].sends == 1  # not yet
    await asyncio.sleep(0.4)
    await a.pass_once()
    # unmined past stuck_after, but its fees are still the node's: not bumped (a nonce gap or an
    # account without funds would otherwise compound +12.5 % every stuck_after, tip included)
    assert (await rig.store.anchors(1))[0].sends == 1
    # the market rises above it: a block whose base fee exceeds its max fee, which it cannot enter
    rpc(rig.url, "hardhat_setNextBlockBaseFeePerGas", hex(sent.max_fee_per_gas + 1))
    rpc(rig.url, "evm_mine")
    assert (await rig.store.anchors(1))[0].block_number is None
    await a.pass_once()
    again, = await rig.store.anchors(10)
    assert (again.sends, again.nonce, again.status) == (2, sent.nonce, AnchorState.PENDING)
    assert again.error is not None and "unmined after" in again.error
    assert again.max_priority_fee_per_gas >= sent.max_priority_fee_per_gas * 9 // 8
    assert again.max_fee_per_gas > 2 * sent.max_fee_per_gas  # the market's: 2 x the new base fee + tip
    rpc(rig.url, "evm_mine")  # the node kept only the replacement (same nonce, higher fees)
    await a.pass_once()
    done, = await rig.store.anchors(10)
    assert done.status is AnchorState.CONFIRMED and done.tx_hash == again.tx_hash


def test_a_resend_bumps_fees_only_over_a_market_that_rose() -> None:
    last = anchoring.Fees(max_fee_per_gas=3_000, max_priority_fee_per_gas=1_000)
    assert last.replacement(last) is None and last.replacement(anchoring.Fees(2_000, 500)) is None
    assert last.replacement(anchoring.Fees(3_001, 1_000)) == anchoring.Fees(3_375, 1_125)  # +12.5 % at least
    assert last.replacement(anchoring.Fees(9_000, 1_000)) == anchoring.Fees(9_000, 1_125)  # the market's
    assert last.replacement(anchoring.Fees(2_000, 2_000)) == anchoring.Fees(3_375, 2_000)
    # a hundred resends with the market flat leave the fees where they were: nothing compounds
    fees = last
    for _ in range(100):
        fees = fees.replacement(last) or fees
    assert fees == last


def test_anchoring_settings_are_all_or_nothing_and_checked(tmp_path: Path) -> None:
    from packproof.app.config import load
    from packproof.app.services import anchoring_options

    assert not anchoring_options(load({})).enabled
    with pytest.raises(ConfigError, match="anchoring: rpc and contract given, but it needs rpc, contract and key_file"):
        anchoring_options(load({"anchoring.rpc": "http://127.0.0.1:8545",
                                "anchoring.contract": "0x" + "ab" * 20}))
    on = anchoring_options(load({"anchoring.rpc": "http://127.0.0.1:8545", "anchoring.contract": "0x" + "ab" * 20,
                                 "anchoring.key_file": str(tmp_path / "k"), "anchoring.chain_id": 5,
                                 "anchoring.every": 60}))
    assert (on.enabled, on.chain_id, on.every, on.poll, on.confirmations) == (True, 5, 60.0, 12.0, 12)
    with pytest.raises(ConfigError, match="expected a contract address"):
        load({"anchoring.contract": "0x12"})
    with pytest.raises(ConfigError, match="expected an http"):
        load({"anchoring.rpc": "ws://x"})


async def test_node_killed_mid_run_sealing_goes_on_and_a_reset_chain_is_named(tmp_path: Path,
                                                                               hardhat_node: HardhatNode) -> None:  # noqa: F811
    """kill -9 of the node: anchoring backs off, sealing goes on. A dev node started again is a new, empty
    chain: the loop checks the contract again after the outage and says it is gone, instead of sending an
    anchor to an address without code."""
    url = hardhat_node.url
    key = tmp_path / "anchor.key"
    funded_key(url, key)
    contract = anchoring.deploy_signed(anchoring.connect(url), ORIGIN, anchoring.load_key(key), 31337)
    store = await _store(f"sqlite:///{tmp_path / 'store.db'}")
    sealer = Sealer(store, LedgerFile(tmp_path / "ledger.jsonl"), KEY, max_leaves=50, origin=ORIGIN)
    await sealer.recover()
    rig = Rig(store, sealer, AnchoringOptions(rpc=url, contract=contract, key_file=key, chain_id=31337, every=0.0,
                                              confirmations=1, poll=0.05, timeout=0.5, backoff_max=0.3,
                                              stop_wait=0.0), url)
    stop = asyncio.Event()
    task = asyncio.create_task(rig.anchoring().run(stop))
    try:
        first = await rig.seal(10)
        await _until(lambda: _confirmed_size(rig, first))
        hardhat_node.kill()
        later = await rig.seal(10)
        assert later > first
        await _until(lambda: _status_error(rig))
        hardhat_node.start()  # same port, a new chain without the contract
        rpc(url, "hardhat_setBalance", anchoring.load_key(key).address, hex(10**20))

        async def contract_gone() -> bool:
            st = (await store.statuses()).get("anchoring") or {}
            return f"no contract at {contract}" in str(st.get("error"))

        await _until(contract_gone)
        assert [r.size for r in await store.anchors(10)] == [first]  # nothing sent to the empty address
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await store.close()


async def test_seal_anchors_beside_its_sealer_and_its_last_checkpoint_on_stop(eth_rpc: str,  # noqa: F811
                                                                               tmp_path: Path) -> None:
    """`packproof seal`'s service (seal_until) with [anchoring] set: the loop runs beside the sealer and,
    once the sealer has sealed its last block on stop, anchors that block's checkpoint."""
    from packproof.app.services import seal_until
    from packproof.paths import DataDir

    key = tmp_path / "anchor.key"
    funded_key(eth_rpc, key)
    contract = anchoring.deploy_signed(anchoring.connect(eth_rpc), ORIGIN, anchoring.load_key(key), 31337)
    dirs = DataDir(tmp_path / "data", log_origin=ORIGIN)
    store = await dirs.open_writer()
    await store.register({"S": "un38.3-cell"}, [("d", "S", None)])
    await _add(store, "d", 0, 30)
    await store.close()
    opts = AnchoringOptions(rpc=eth_rpc, contract=contract, key_file=key, chain_id=31337, every=3600.0,
                            confirmations=1, poll=0.05, timeout=2.0, backoff_max=0.3, stop_wait=10.0)
    stop = asyncio.Event()
    started = asyncio.Event()
    task = asyncio.create_task(seal_until(dirs, stop, 0.05, on_start=started.set, anchoring=opts))
    await asyncio.wait_for(started.wait(), 20)
    await asyncio.sleep(0.5)
    store = await Store.open(dirs.store)
    try:
        await _add(store, "d", 30, 5)  # sealed by the sealer's last block, after `stop`
    finally:
        await store.close()
    stop.set()
    sealer = await asyncio.wait_for(task, 30)
    assert sealer is not None
    store = await Store.open(dirs.store)
    try:
        latest = await store.latest_checkpoint()
        rows = await store.anchors(10)
        assert latest is not None and latest.size == 31 + 5  # a registry leaf and 35 readings
        assert rows[0].size == latest.size and rows[0].status in (AnchorState.MINED, AnchorState.CONFIRMED)
        assert [r.size for r in rows][-1] < latest.size  # the first anchor at start, the last one on stop
    finally:
        await store.close()


def test_a_key_outside_the_curve_order_is_refused(tmp_path: Path) -> None:
    zero = tmp_path / "zero"
    zero.write_text("0x" + "00" * 32 + "\n")
    os.chmod(zero, 0o600)
    with pytest.raises(ConfigError, match="holds no valid secp256k1 private key"):
        anchoring.load_key(zero)
