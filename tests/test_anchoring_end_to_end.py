"""Anchoring end to end with real processes and a real Hardhat node (issue 17): `packproof anchor
key` and `deploy`, the settings lines it prints put in a --config file, `packproof ingest` anchoring
beside its sealer, the simulated fleet's readings sealed and their newest checkpoint anchored and
confirmed, shown by GET /anchors, GET /checkpoint (header, JSON) and /health; the last checkpoint
anchored on stop; `packproof anchor run` alone; a node of another chain refused."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from packproof.crypto import load_or_create_ledger_key
from packproof.net import free_port
from tests.chainutil import eth_rpc, rpc  # noqa: F401 (fixture)
from tests.conftest import Service, cli, get_json, wait_for

pytestmark = pytest.mark.e2e


def _confirmed(url: str) -> dict[str, object] | None:
    items = get_json(f"{url}/anchors")["items"]
    return next((a for a in items if a["status"] == "confirmed"), None)


def test_anchoring_beside_the_sealer_end_to_end(tmp_path: Path, eth_rpc: str) -> None:  # noqa: F811
    data = tmp_path / "data"
    data.mkdir()
    load_or_create_ledger_key(data / "ledger.key")  # the log's origin follows from it (no store yet)
    key = tmp_path / "anchor.key"
    made = cli("anchor", "key", "--out", str(key))
    assert made.returncode == 0, made.stderr
    address = made.stdout.split()[0]
    assert (key.stat().st_mode & 0o777) == 0o600 and address.startswith("0x")
    again = cli("anchor", "key", "--out", str(key))
    assert again.returncode == 2 and "never overwritten" in again.stderr
    rpc(eth_rpc, "hardhat_setBalance", address, hex(10**20))

    wrong = cli("anchor", "deploy", "--data-dir", str(data), "--rpc", eth_rpc, "--key-file", str(key),
                "--chain-id", "1")
    assert wrong.returncode == 2 and "wrong network: --chain-id 1, but the node" in wrong.stderr, wrong.stderr
    deployed = cli("anchor", "deploy", "--data-dir", str(data), "--rpc", eth_rpc, "--key-file", str(key),
                   "--chain-id", "31337")
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    settings = deployed.stdout[deployed.stdout.index("[anchoring]"):]
    contract = next(line.split('"')[1] for line in settings.splitlines() if line.startswith("contract ="))
    config = tmp_path / "packproof.toml"
    config.write_text(settings.replace("every = 600", "every = 1").replace("confirmations = 12", "confirmations = 2")
                      + "\nstop_wait = 20\n")

    services: list[Service] = []
    try:
        mqtt, api = free_port(), free_port()
        broker = Service("broker", "--port", str(mqtt), log=tmp_path / "broker.log")
        services.append(broker)
        broker.wait_port(mqtt)
        ingest = Service("ingest", "--config", str(config), "--data-dir", str(data), "--mqtt-port", str(mqtt),
                         "--seal-interval", "0.3", log=tmp_path / "ingest.log")
        services.append(ingest)
        ingest.wait_output("ingesting from")
        sim = cli("simulate", "--mqtt-port", str(mqtt), "--data-dir", str(data), "--shipments", "1", "--packs", "2",
                  "--count", "10", "--rate", "40", "--seed", "3", "--unsigned-shipments", "0")
        assert sim.returncode == 0, sim.stdout + sim.stderr
        server = Service("api", "--data-dir", str(data), "--port", str(api), log=tmp_path / "api.log")
        services.append(server)
        server.wait_port(api)
        url = f"http://127.0.0.1:{api}"

        def newest_confirmed() -> bool:
            rpc(eth_rpc, "hardhat_mine", "0x1")  # the dev node mines only on transactions: blocks on top
            c = _confirmed(url)
            size = int(httpx.get(f"{url}/checkpoint", timeout=5).text.splitlines()[1])
            return c is not None and c["size"] == size

        wait_for(newest_confirmed, 40, "the newest checkpoint anchored and confirmed")
        page = get_json(f"{url}/anchors")
        anchor = _confirmed(url)
        assert anchor is not None and anchor["contract"] == contract and anchor["chain_id"] == 31337
        assert isinstance(anchor["confirmations"], int) and anchor["confirmations"] >= 2
        assert isinstance(anchor["gas_used"], int) and 50_000 < anchor["gas_used"] < 150_000
        assert page["head"] is not None and anchor["block_time"] and str(anchor["tx_hash"]).startswith("0x")

        plain = httpx.get(f"{url}/checkpoint", timeout=5)
        assert plain.headers["content-type"].startswith("text/plain")
        header = plain.headers["packproof-anchor"]
        assert f"size={anchor['size']}; chain-id=31337; contract={contract}; tx={anchor['tx_hash']}" in header
        as_json = httpx.get(f"{url}/checkpoint", headers={"Accept": "application/json"}, timeout=5).json()
        assert as_json["note"] == plain.text and as_json["anchor"]["tx_hash"] == anchor["tx_hash"]
        health = get_json(f"{url}/health")
        assert not [p for p in health["problems"] if "anchoring" in p], health["problems"]
        assert health["components"]["anchoring"]["confirmed"]["size"] == anchor["size"]

        assert ingest.stop() == 0
        assert "anchoring: stopping; anchoring checkpoint" in ingest.output()

        run = Service("anchor", "run", "--config", str(config), "--data-dir", str(data), log=tmp_path / "anchor.log")
        services.append(run)
        run.wait_output("anchoring sqlite:///")
        time.sleep(1.0)
        assert run.stop() == 0, run.output()
        bad = cli("anchor", "run", "--config", str(config), "--data-dir", str(data), "--chain-id", "5")
        assert bad.returncode == 2 and "wrong network: --chain-id 5" in bad.stderr, bad.stderr
    finally:
        for s in reversed(services):
            s.stop()
