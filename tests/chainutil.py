"""A real Ethereum dev node for the anchoring tests: Hardhat's node (EDR engine) from
anchor/chain/node_modules (installed by `make install` with npm ci), on a free port."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.ports import restartable_port

CHAIN = Path(__file__).resolve().parents[1] / "anchor" / "chain"
HARDHAT = CHAIN / "node_modules" / ".bin" / "hardhat"


class HardhatNode:
    """A Hardhat node process on a fixed free port, which a test can kill and start again (a restarted
    dev node starts a new chain: its state is in memory only)."""

    def __init__(self) -> None:
        if shutil.which("node") is None:
            pytest.skip("Node.js is absent: the Ethereum dev node (Hardhat) cannot run")
        if not HARDHAT.exists():
            pytest.skip("anchor/chain/node_modules lacks hardhat: run `make install` (npm ci) with Node.js present")
        self.port = restartable_port()  # killed and started again on it
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> HardhatNode:
        env = {**os.environ, "HARDHAT_DISABLE_TELEMETRY_PROMPT": "true"}
        self.proc = subprocess.Popen(
            [str(HARDHAT), "node", "--hostname", "127.0.0.1", "--port", str(self.port)],
            cwd=CHAIN, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                body = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
                if httpx.post(self.url, json=body, timeout=2).json().get("result") == hex(31337):
                    return self
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"hardhat node did not answer eth_chainId on {self.url}")
            time.sleep(0.2)

    def kill(self) -> None:
        """kill -9, as a crashed host would."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture(scope="module")
def eth_rpc() -> Iterator[str]:
    """URL of a fresh Hardhat node; skips where Node.js or the npm packages are absent."""
    node = HardhatNode().start()
    try:
        yield node.url
    finally:
        node.stop()


@pytest.fixture
def hardhat_node() -> Iterator[HardhatNode]:
    """A Hardhat node of this test's own, to kill and start again."""
    node = HardhatNode().start()
    try:
        yield node
    finally:
        node.stop()


@contextlib.contextmanager
def running_node() -> Iterator[str]:
    """A fresh Hardhat node for a script (benchmarks/anchor_cost.py); yields its URL."""
    node = HardhatNode().start()
    try:
        yield node.url
    finally:
        node.stop()


def rpc(url: str, method: str, *params: object) -> object:
    """One JSON-RPC call (Hardhat's own methods too: hardhat_mine, evm_snapshot ...); its result."""
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
    answer = httpx.post(url, json=body, timeout=10).json()
    if "error" in answer:
        raise RuntimeError(f"{method}: {answer['error']}")
    return answer.get("result")


class TcpProxy:
    """A real TCP proxy in front of a node, on a free port, whose link can be cut and restored:
    `cut()` closes the listening socket and every connection (a client then meets a refused or
    reset connection, as when a node's host goes away), `restore()` listens again on the same port."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.port = restartable_port()  # killed and started again on it
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def restore(self) -> TcpProxy:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(64)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()
        return self

    def cut(self) -> None:
        with self._lock:
            server, self._server = self._server, None
            conns, self._conns = self._conns, []
        if server is not None:
            server.close()
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            c.close()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return  # cut
            try:
                up = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._server is not server:
                    client.close()
                    up.close()
                    return
                self._conns += [client, up]
            for a, b in ((client, up), (up, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)
