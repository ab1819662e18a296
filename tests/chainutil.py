"""A real Ethereum dev node for the anchoring tests: Hardhat's node (EDR engine) from
anchor/chain/node_modules (installed by `make install` with npm ci), on a free port."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

CHAIN = Path(__file__).resolve().parents[1] / "anchor" / "chain"
HARDHAT = CHAIN / "node_modules" / ".bin" / "hardhat"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def hardhat_node() -> Iterator[str]:
    """Start a fresh Hardhat node on a free port; yields its URL (also used by benchmarks/anchor_cost.py)."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "HARDHAT_DISABLE_TELEMETRY_PROMPT": "true"}
    proc = subprocess.Popen(
        [str(HARDHAT), "node", "--hostname", "127.0.0.1", "--port", str(port)],
        cwd=CHAIN, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                body = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
                if httpx.post(url, json=body, timeout=2).json().get("result") == hex(31337):
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"hardhat node did not answer eth_chainId on {url}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def eth_rpc() -> Iterator[str]:
    """URL of a fresh Hardhat node; skips where Node.js or the npm packages are absent."""
    if shutil.which("node") is None:
        pytest.skip("Node.js is absent: the Ethereum dev node (Hardhat) cannot run")
    if not HARDHAT.exists():
        pytest.skip("anchor/chain/node_modules lacks hardhat: run `make install` (npm ci) with Node.js present")
    with hardhat_node() as url:
        yield url
