"""The log side of tlog-witness against real `packproof witness` processes over HTTP, with the
cosignatures kept in a real store (SQLite and PostgreSQL).

Until the log tree lands in the store (issue 16 items 1-2, another branch), the checkpoints and
consistency proofs come from a `GrowingLog` beside the real Store: the store methods the log
branch adds (`latest_checkpoint`, `consistency_proof`) with the contract's signatures, over an
in-memory list of leaves. Everything else is the real thing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from packproof.anchor.consistency import consistency_proof
from packproof.anchor.cosignature import tally
from packproof.anchor.merkle import root_from_leaf_hashes
from packproof.anchor.tlog_checkpoint import Checkpoint, sign_checkpoint
from packproof.anchor.witness import request_body
from packproof.anchor.witnessing import WitnessEndpoint, Witnessing, WitnessingOptions, parse_endpoint
from packproof.errors import NoteError
from packproof.health import problems
from packproof.net import free_port
from packproof.store import Store
from tests.test_witness import FORK, LEAVES, LOG, ORIGIN, RunningWitness


@dataclass(frozen=True)
class Row:
    size: int
    root: bytes
    note: str
    signed_at: float


class GrowingLog:
    """The real store for cosignatures and statuses; checkpoints of LEAVES[:size] signed by LOG."""

    def __init__(self, store: Store, leaves: list[bytes] = LEAVES) -> None:
        self.store, self.leaves, self.size, self.signed_at = store, leaves, 0, 0.0

    def grow(self, size: int, signed_at: float | None = None) -> None:
        self.size, self.signed_at = size, time.time() if signed_at is None else signed_at

    async def latest_checkpoint(self) -> Row | None:
        if not self.size:
            return None
        cp = Checkpoint(ORIGIN, self.size, root_from_leaf_hashes(self.leaves[: self.size]))
        return Row(cp.size, cp.root, sign_checkpoint(cp, [LOG]).decode(), self.signed_at)

    async def consistency_proof(self, m: int, n: int) -> list[bytes]:
        return consistency_proof(m, self.leaves[:n])

    async def save_cosignatures(self, size: int, lines: Mapping[str, str]) -> None:
        await self.store.save_cosignatures(size, lines)

    async def cosigned_sizes(self) -> dict[str, int]:
        return await self.store.cosigned_sizes()

    async def set_status(self, component: str, status: dict[str, Any]) -> None:
        await self.store.set_status(component, status)


@pytest.fixture
def witnesses(tmp_path: Path) -> Iterator[list[RunningWitness]]:
    ws = [RunningWitness(tmp_path, f"witness.example/w{i}").start() for i in (1, 2)]
    yield ws
    for w in ws:
        if w.service is not None and w.service.proc.poll() is None:
            w.service.stop()


def _opts(*eps: WitnessEndpoint, **kw: Any) -> WitnessingOptions:
    return WitnessingOptions(tuple(eps), **{"timeout": 2.0, "poll": 0.05, "backoff_max": 0.5, **kw})


async def _until(predicate: Any, timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


def test_two_witnesses_cosign_each_new_checkpoint(witnesses: list[RunningWitness], store_url: str) -> None:
    eps = [WitnessEndpoint(w.url, w.vkey) for w in witnesses]

    async def go() -> None:
        store = await Store.open(store_url)
        log = GrowingLog(store)
        loop = Witnessing(log, _opts(*eps))
        stop = asyncio.Event()
        task = asyncio.create_task(loop.run(stop))
        try:
            for size in (10, 25, 40, 40, 1000):
                log.grow(size)

                async def both(size: int = size) -> bool:
                    return len(await store.cosignatures(size)) == 2

                await _until(both)
                lines = await store.cosignatures(size)
                note = (await log.latest_checkpoint()).note  # type: ignore[union-attr]
                t = tally((note + "".join(lines.values())).encode(), [e.key for e in eps])
                assert t.valid == tuple(str(e.key) for e in eps), t
            assert await store.cosigned_sizes() == {e.key.name: 1000 for e in eps}
            status = await loop.status()
            assert not status["late"] and all(w["cosigned_size"] == 1000 for w in status["witnesses"])
        finally:
            stop.set()
            await task
            await store.close()

    asyncio.run(go())


def test_a_witness_down_does_not_hold_back_the_other(witnesses: list[RunningWitness], tmp_path: Path) -> None:
    up = WitnessEndpoint(witnesses[0].url, witnesses[0].vkey)
    down = WitnessEndpoint(f"http://127.0.0.1:{free_port()}", witnesses[1].vkey)  # nothing listens there

    async def go() -> None:
        store = await Store.open(tmp_path / "s.db")
        log = GrowingLog(store)
        loop = Witnessing(log, _opts(up, down, late_after=0.2))
        stop = asyncio.Event()
        task = asyncio.create_task(loop.run(stop))
        try:
            log.grow(10)

            async def cosigned_by_up() -> bool:
                return list(await store.cosignatures(10)) == [up.key.name]

            await _until(cosigned_by_up)
            await asyncio.sleep(0.3)
            status = await loop.status()
            by_url = {w["url"]: w for w in status["witnesses"]}
            assert status["late"] and by_url[down.url]["late"] and not by_url[up.url]["late"]
            assert "ConnectError" in by_url[down.url]["error"]

            async def reported() -> bool:
                return bool((await store.statuses()).get("witnessing", {}).get("late"))

            await _until(reported)
            said = problems(await store.statuses(), time.time())
            assert any(f"checkpoint 10 not cosigned by witness {down.key}" in p for p in said), said
            assert not any(str(up.key) in p for p in said)
        finally:
            stop.set()
            await asyncio.wait_for(task, 5)  # stops promptly even while one witness is unreachable
            await store.close()

    asyncio.run(go())


def test_the_log_learns_the_witness_size_from_409(witnesses: list[RunningWitness], tmp_path: Path) -> None:
    """The witness already cosigned size 25 (our store lost its cosignatures): 409 says 25, the
    loop asks again with old 25 and its consistency proof."""
    w = witnesses[0]
    assert w.post(request_body(0, [], sign_checkpoint(Checkpoint(ORIGIN, 25, root_from_leaf_hashes(LEAVES[:25])),
                                                      [LOG]))).status_code == 200

    async def go() -> None:
        store = await Store.open(tmp_path / "s.db")
        log = GrowingLog(store)
        log.grow(60)
        loop = Witnessing(log, _opts(WitnessEndpoint(w.url, w.vkey)))
        stop = asyncio.Event()
        task = asyncio.create_task(loop.run(stop))
        try:
            async def cosigned() -> bool:
                return bool(await store.cosignatures(60))

            await _until(cosigned)
        finally:
            stop.set()
            await task
            await store.close()

    asyncio.run(go())


def test_a_split_view_is_flagged_not_retried_fast(witnesses: list[RunningWitness], tmp_path: Path) -> None:
    """The witness cosigned another history at size 20 (the operator showed it FORK): the log's
    own size-20 checkpoint is refused with 409 naming the same size, and the loop says so."""
    w = witnesses[0]
    fork = sign_checkpoint(Checkpoint(ORIGIN, 20, root_from_leaf_hashes(FORK[:20])), [LOG])
    assert w.post(request_body(0, [], fork)).status_code == 200

    async def go() -> None:
        store = await Store.open(tmp_path / "s.db")
        log = GrowingLog(store)
        log.grow(20)
        loop = Witnessing(log, _opts(WitnessEndpoint(w.url, w.vkey), backoff_max=30))
        stop = asyncio.Event()
        task = asyncio.create_task(loop.run(stop))
        try:
            async def flagged() -> bool:
                return bool((await loop.status())["split_view"])

            await _until(flagged)
            assert not await store.cosignatures(20)
            assert "different history" in loop.progress[0].error  # type: ignore[operator]
        finally:
            stop.set()
            await asyncio.wait_for(task, 5)
            await store.close()

    asyncio.run(go())


@pytest.mark.parametrize("text", ["http://x", "ftp://x w+00000000+AA==", "http://x not-a-vkey", str(LOG.verifier)])
def test_bad_witness_entries_are_refused(text: str) -> None:
    with pytest.raises(NoteError):
        parse_endpoint(text)
