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
from tests.chainutil import TcpProxy, eth_rpc, rpc  # noqa: F401 (fixture)

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
    with pytest.raises(ConfigError, match="--chain-id: required with --rpc"):
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
    assert again.tx_hash != sent.tx_hash and again.error is not None and "dropped" in again.error
    assert again.max_fee_per_gas >= sent.max_fee_per_gas * 9 // 8
    assert again.max_priority_fee_per_gas >= sent.max_priority_fee_per_gas * 9 // 8
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
