"""Ledger key rotation: a block signed by the old key names the new one; everything still
verifies from the genesis key an auditor pinned."""

from __future__ import annotations

import json
from pathlib import Path

from packproof.anchor.ledger import LedgerFile
from packproof.crypto import key_id, load_or_create_ledger_key, public_key_bytes, read_public_key
from tests.conftest import Db, Pipeline, cli, wait_for


def test_rotation_is_announced_in_the_chain_and_followed_by_verifiers(tmp_path: Path,
                                                                    pipeline_services: Pipeline) -> None:
    data, mqtt = pipeline_services.data, pipeline_services.mqtt
    db = Db(pipeline_services.store)

    def simulate_and_seal(count: int) -> None:
        r = cli("simulate", "--mqtt-port", str(mqtt), "--data-dir", str(data), "--shipments", "2", "--packs",
                "1", "--count", str(count), "--rate", "50")
        assert r.returncode == 0, r.stdout + r.stderr
        wait_for(lambda: db.execute("SELECT max(last_id) FROM blocks").fetchone()[0]
                 == db.execute("SELECT max(id) FROM readings").fetchone()[0], 15, "everything sealed")

    simulate_and_seal(10)
    genesis = read_public_key(str(data / "ledger.pub"))
    r = cli("ledger", "rotate-key", "--data-dir", str(data))
    assert r.returncode == 0 and "waits in" in r.stdout, r.stdout + r.stderr
    new_public = public_key_bytes(load_or_create_ledger_key(data / "ledger.key.next"))
    simulate_and_seal(10)
    wait_for(lambda: not (data / "ledger.key.next").exists(), 10, "rotation applied")
    simulate_and_seal(5)  # blocks after the announcing one, signed by the new key

    blocks = list(LedgerFile(data / "ledger.jsonl").read())
    announcing = [b for b in blocks if "next_key" in b.header]
    assert len(announcing) == 1 and announcing[0].header["key_id"] == key_id(genesis)
    after = [b for b in blocks if b.height > announcing[0].height]
    assert after and all(b.header["key_id"] == key_id(new_public) for b in after)
    retired = data / f"ledger.key.{key_id(genesis)}.retired"
    assert retired.exists() and retired.stat().st_mode & 0o777 == 0o600
    assert read_public_key(str(data / "ledger.pub")) == genesis  # auditors keep the genesis key

    r = cli("ledger", "verify", "--data-dir", str(data))
    assert r.returncode == 0 and f"now signed by key {key_id(new_public)}" in r.stdout, r.stdout + r.stderr
    assert cli("audit", "--data-dir", str(data)).returncode == 0

    url = pipeline_services.start_api(tmp_path)
    device = db.execute("SELECT device_id FROM readings WHERE device_id NOT LIKE '~%' LIMIT 1").fetchone()[0]
    for seq in (0, 24):  # sealed before and after the rotation
        r = cli("verify", f"{device}:{seq}", "--api", url, "--ledger-key", str(data / "ledger.pub"))
        assert r.returncode == 0, r.stdout + r.stderr
        r = cli("verify", f"{device}:{seq}", "--api", url, "--ledger-key", str(data / "ledger.pub"),
                "--save", str(tmp_path / "b.json"))
        r = cli("verify", "--bundle", str(tmp_path / "b.json"), "--ledger", str(data / "ledger.jsonl"),
                "--ledger-key", str(data / "ledger.pub"))
        assert r.returncode == 0, r.stdout + r.stderr
    bundle = json.loads((tmp_path / "b.json").read_text())
    assert bundle["reading"]["block"]["header"]["key_id"] == key_id(new_public)
    assert bundle["registry"]["block"]["header"]["key_id"] == key_id(genesis)  # registered before the rotation
