"""`packproof api` start-up errors: one line and an exit code, before it claims to serve anything."""

from __future__ import annotations

from pathlib import Path

from packproof.crypto import load_or_create_ledger_key
from packproof.net import free_port
from tests.conftest import cli


def test_a_missing_ledger_key_is_one_line_before_any_api_at(tmp_path: Path) -> None:
    """It printed "API at ..." and then uvicorn's ~50-line lifespan traceback."""
    r = cli("api", "--data-dir", str(tmp_path / "empty"), "--port", str(free_port()), timeout=30)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "no ledger public key" in r.stderr and "start the sealer first" in r.stderr
    assert "Traceback" not in r.stdout + r.stderr and "API at" not in r.stdout


def test_an_unreachable_store_is_one_error_before_any_api_at(tmp_path: Path) -> None:
    data = tmp_path / "d"
    data.mkdir()
    load_or_create_ledger_key(data / "ledger.key")  # the key the sealer makes on its first start
    assert (data / "ledger.pub").exists()
    r = cli("api", "--data-dir", str(data), "--port", str(free_port()),
            "--store", f"postgresql://nobody@127.0.0.1:{free_port()}/x", timeout=30)
    assert r.returncode == 4, r.stdout + r.stderr
    assert "cannot connect to the store" in r.stderr
    assert "Traceback" not in r.stdout + r.stderr and "API at" not in r.stdout
