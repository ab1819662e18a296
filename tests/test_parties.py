"""Custody parties end to end (issue 15): `packproof parties` against a running ingestor and sealer,
the `/parties` API, and the audit, on SQLite and PostgreSQL.

Every change is sealed in the ledger; the API serves what the registry holds; a key swapped in
the parties table afterwards is named by `packproof audit`; bad input ends with exit 2 and a
message, never a traceback, and leaves no key file behind.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from packproof.crypto import b64, private_key_from_seed, public_key_bytes
from tests.conftest import Db, Pipeline, cli, get_json, wait_for

KEY = b64(public_key_bytes(private_key_from_seed(b"inspector")))


def test_party_lifecycle_is_sealed_served_and_audited(tmp_path: Path, pipeline_services: Pipeline) -> None:
    data, keys = pipeline_services.data, tmp_path / "keys"
    db = Db(pipeline_services.store)
    d = ("--data-dir", str(data))

    r = cli("parties", "add", "Hamburg Air Cargo", "--role", "carrier", "--key-out", str(keys), *d)
    assert r.returncode == 0 and "added party hamburg-air-cargo (Hamburg Air Cargo), roles carrier" in r.stdout, \
        r.stdout + r.stderr
    made = serialization.load_pem_private_key((keys / "hamburg-air-cargo.key").read_bytes(), password=None)
    assert isinstance(made, Ed25519PrivateKey)
    assert (keys / "hamburg-air-cargo.key").stat().st_mode & 0o777 == 0o600
    r = cli("parties", "add", "Plant One", "--id", "plant-1", "--role", "receiver", "--role", "inspector",
            "--public-key", KEY, *d)
    assert r.returncode == 0, r.stdout + r.stderr
    r = cli("parties", "add", "Plant One", "--id", "plant-1", "--role", "receiver", "--role", "inspector",
            "--public-key", KEY, *d)
    assert r.returncode == 0 and "already registered: party plant-1" in r.stdout, r.stdout + r.stderr

    # Bad input: exit 2, a message naming what is wrong, no traceback, no key file left behind.
    for args, said in [
        (("X", "--role", "shipper", "--public-key", KEY), "unknown role(s) shipper"),
        (("X", "--role", "carrier", "--public-key", b64(bytes(32))), "not a usable Ed25519 public key"),
        (("X", "--role", "carrier"), "give either --public-key B64"),
        (("X", "--id", "Not A Slug", "--role", "carrier", "--public-key", KEY), "must be a slug"),
        (("Plant One", "--id", "plant-1", "--role", "receiver", "--key-out", str(tmp_path / "other")),
         "party plant-1 is already registered"),
    ]:
        r = cli("parties", "add", *args, *d)
        assert r.returncode == 2 and said in r.stderr and "Traceback" not in r.stderr, (args, r.stdout + r.stderr)
    assert not (tmp_path / "other").exists()

    r = cli("parties", "rotate", "hamburg-air-cargo", "--key-out", str(keys / "new"), "--from-seq", "1", *d)
    assert r.returncode == 2 and "must start after event seq 1" in r.stderr, r.stdout + r.stderr
    assert not (keys / "new").exists()
    r = cli("parties", "rotate", "hamburg-air-cargo", "--key-out", str(keys / "new"), *d)  # no event yet: seq 2
    assert r.returncode == 0 and "signs its events from seq 2 on" in r.stdout, r.stdout + r.stderr
    r = cli("parties", "rotate", "hamburg-air-cargo", "--key-out", str(keys / "newer"), "--from-seq", "12", *d)
    assert r.returncode == 0 and "signs its events from seq 12 on" in r.stdout, r.stdout + r.stderr
    r = cli("parties", "revoke", "plant-1", "--reason", "key leaked", *d)
    assert r.returncode == 0, r.stdout + r.stderr
    r = cli("parties", "revoke", "plant-1", "--reason", "again", *d)
    assert r.returncode == 2 and "revoked already" in r.stderr
    r = cli("parties", "list", *d)
    assert r.returncode == 0 and "hamburg-air-cargo" in r.stdout and "revoked: key leaked" in r.stdout, r.stdout
    assert "1: " in r.stdout and "2: " in r.stdout and "12: " in r.stdout

    records = [json.loads(b[0]) for b in db.execute(
        "SELECT body FROM readings WHERE device_id='~parties' ORDER BY seq").fetchall()]
    assert [(x["record"], x["party_id"]) for x in records] == [
        ("party-added", "hamburg-air-cargo"), ("party-added", "plant-1"), ("party-key-rotated", "hamburg-air-cargo"),
        ("party-key-rotated", "hamburg-air-cargo"), ("party-revoked", "plant-1")]
    wait_for(lambda: db.execute("SELECT max(last_id) FROM blocks").fetchone()[0]
             == db.execute("SELECT max(id) FROM readings").fetchone()[0], 10, "the party records sealed")

    url = pipeline_services.start_api(tmp_path)
    listed = get_json(f"{url}/parties")["parties"]
    assert [p["party_id"] for p in listed] == ["hamburg-air-cargo", "plant-1"]
    plant = get_json(f"{url}/parties/plant-1")
    assert plant["roles"] == ["inspector", "receiver"] and plant["revoked_reason"] == "key leaked"
    assert plant["keys"] == [{"valid_from_seq": 1, "public_key": KEY, "key_id": plant["keys"][0]["key_id"]}]
    air = get_json(f"{url}/parties/hamburg-air-cargo")
    assert [k["valid_from_seq"] for k in air["keys"]] == [1, 2, 12] and air["revoked_at"] is None
    assert air["next_seq"] == 1  # no custody event signed yet
    assert air["keys"][0]["public_key"] == b64(public_key_bytes(made))
    missing = httpx.get(f"{url}/parties/nobody", timeout=10)
    assert missing.status_code == 404 and missing.json() == {"detail": "party 'nobody' is not registered"}

    r = cli("audit", *d)
    assert r.returncode == 0 and "audit passed" in r.stdout, r.stdout + r.stderr
    # Swap a key in the table the custody rules trust: the audit names the party.
    db.execute("UPDATE party_keys SET public_key=? WHERE party_id='plant-1'",
               (public_key_bytes(private_key_from_seed(b"evil")),))
    db.execute("UPDATE parties SET revoked_at=NULL, revoked_reason=NULL WHERE party_id='plant-1'")
    r = cli("audit", *d)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "parties (table vs sealed records): 2 problem(s)" in r.stdout, r.stdout
    assert "party plant-1: the table holds keys" in r.stdout and "a key swapped in the table" in r.stdout
    assert "party plant-1: the table says not revoked, its sealed records revoked (key leaked)" in r.stdout
