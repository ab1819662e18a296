"""Device identity lifecycle through the CLI, against a running broker, ingestor and API.

Provision, rotate, revoke, register an unsigned tracker; readings signed before a rotation
keep verifying with the key valid at their seq; a revoked device's readings are refused;
every registry change is sealed in the ledger and the audit holds.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from packproof.canonical import canonical_bytes, signing_bytes
from packproof.crypto import b64
from packproof.reading import Reading
from tests.conftest import Db, Pipeline, cli, get_json, packproof_cmd, publish_all, wait_for

TOPIC = "packproof/v1/SHP-A/{}/telemetry"


def load_key(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    assert path.stat().st_mode & 0o777 == 0o600
    return key


def body(device: str, seq: int, key: Ed25519PrivateKey | None) -> bytes:
    r = Reading.model_validate({
        "v": 1, "device_id": device, "shipment_id": "SHP-A", "seq": seq,
        "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "temperature_c": 21.5,
        "vibration": {"peak_g": 0.3, "freq_hz": 20.0}, "shock": {"peak_g": 0.0, "duration_ms": 0.0},
        "pressure_kpa": 101.0})
    if key is not None:
        r = r.model_copy(update={"sig": b64(key.sign(signing_bytes(r)))})
    return canonical_bytes(r)


def test_device_lifecycle(tmp_path: Path, pipeline_services: Pipeline) -> None:
    data, keys, mqtt = pipeline_services.data, tmp_path / "keys", pipeline_services.mqtt
    db = Db(pipeline_services.store)

    def stored(device: str) -> int:
        return db.execute("SELECT count(*) FROM readings WHERE device_id=?", (device,)).fetchone()[0]

    def quarantined(code: str) -> int:
        return db.execute("SELECT count(*) FROM quarantine WHERE reason_code=?", (code,)).fetchone()[0]

    r = cli("devices", "provision", "dev-a", "--shipment", "SHP-A", "--data-dir", str(data),
            "--key-out", str(keys), "--password-file", str(tmp_path / "mqtt.passwd"))
    assert r.returncode == 0 and "MQTT login: user dev-a, password" in r.stdout, r.stdout + r.stderr
    old = load_key(keys / "dev-a.key")
    publish_all(mqtt, [(TOPIC.format("dev-a"), body("dev-a", i, old)) for i in range(5)])
    wait_for(lambda: stored("dev-a") == 5, 10, "5 readings")

    r = cli("devices", "rotate", "dev-a", "--data-dir", str(data), "--key-out", str(keys / "new"))
    assert r.returncode == 0 and "signs from seq 5 on" in r.stdout, r.stdout + r.stderr
    new = load_key(keys / "new" / "dev-a.key")
    time.sleep(1.2)  # the ingestor picks registry changes up within a second
    publish_all(mqtt, [(TOPIC.format("dev-a"), body("dev-a", i, new)) for i in range(5, 8)]
                + [(TOPIC.format("dev-a"), body("dev-a", 8, old))])
    wait_for(lambda: stored("dev-a") == 8 and quarantined("bad_signature") == 1, 10, "rotation applied")

    r = cli("devices", "revoke", "dev-a", "--reason", "tracker reported stolen", "--data-dir", str(data))
    assert r.returncode == 0, r.stdout + r.stderr
    r = cli("devices", "register", "dev-b", "--shipment", "SHP-A", "--unsigned", "--data-dir", str(data))
    assert r.returncode == 0 and "unsigned" in r.stdout, r.stdout + r.stderr
    time.sleep(1.2)
    publish_all(mqtt, [(TOPIC.format("dev-a"), body("dev-a", 9, new)),
                       (TOPIC.format("dev-b"), body("dev-b", 0, None))])
    wait_for(lambda: quarantined("revoked_device") == 1 and stored("dev-b") == 1, 10, "revocation applied")
    reason = db.execute("SELECT reason FROM quarantine WHERE reason_code='revoked_device'").fetchone()[0]
    assert reason == "device dev-a is revoked: its readings are refused"

    # Every registry change is a sealed leaf.
    records = db.execute("SELECT body FROM readings WHERE device_id='~registry' ORDER BY seq").fetchall()
    kinds = [b'"record":"device-registered"', b'"record":"device-key-rotated"', b'"record":"device-revoked"',
             b'"record":"device-registered"']
    assert [k in r[0] for k, r in zip(kinds, records, strict=True)] == [True] * 4
    wait_for(lambda: db.execute("SELECT max(last_id) FROM blocks").fetchone()[0]
             == db.execute("SELECT max(id) FROM readings").fetchone()[0], 10, "all sealed")

    url = pipeline_services.start_api(tmp_path)
    for seq in (2, 6):  # before and after the rotation
        r = cli("verify", f"dev-a:{seq}", "--api", url, "--ledger-key", str(data / "ledger.pub"))
        assert r.returncode == 0, r.stdout + r.stderr
    # Each bundle carries the sealed record that gave the key in force at its seq.
    given = [json.loads(get_json(f"{url}/readings/dev-a:{seq}/proof")["registry"]["leaf"]) for seq in (2, 6)]
    assert [g["record"] for g in given] == ["device-registered", "device-key-rotated"]
    assert given[0]["public_key"] != given[1]["public_key"]
    r = cli("verify", "dev-b:0", "--api", url, "--ledger-key", str(data / "ledger.pub"))
    assert r.returncode == 0 and "reading dev-b:0 (device trust: ingestor)" in r.stdout, r.stdout + r.stderr

    r = cli("audit", "--data-dir", str(data), "--signatures")
    assert r.returncode == 0 and "audit passed" in r.stdout, r.stdout + r.stderr
    r = cli("devices", "list", "--data-dir", str(data))
    assert "revoked" in r.stdout and "5:" in r.stdout and "unsigned" in r.stdout, r.stdout
    r = cli("devices", "register", "dev-a", "--shipment", "SHP-B", "--unsigned", "--data-dir", str(data))
    assert r.returncode == 2 and "already registered with a different shipment or key" in r.stderr


def test_rotate_right_after_provision_as_the_readme_prints_it(tmp_path: Path) -> None:
    """docs/trust.md's device commands in order: `provision`, then `rotate` with its defaults. Rotating a
    device with no reading stored asked for --from-seq 0, refused it (its key starts at 0), and still
    wrote a private key, into device-keys/ beside the keys/ of provision."""
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(packproof_cmd(*args), capture_output=True, text=True, timeout=60, cwd=tmp_path,
                              env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"})

    r = run("devices", "provision", "pack-0042", "--shipment", "SHP-7", "--data-dir", "data",
            "--password-file", "data/mqtt.passwd")
    assert r.returncode == 0, r.stdout + r.stderr
    first = (tmp_path / "device-keys" / "pack-0042.key").read_bytes()
    r = run("devices", "rotate", "pack-0042", "--data-dir", "data")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "signs from seq 1 on" in r.stdout
    assert (tmp_path / "device-keys" / "pack-0042.key").read_bytes() != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "device-keys"]

    # A refused rotation or registration writes no key at all, and leaves no directory made for one.
    r = run("devices", "rotate", "pack-0042", "--data-dir", "data", "--from-seq", "1", "--key-out", "other")
    assert r.returncode == 2 and "must start after seq 1" in r.stderr, r.stdout + r.stderr
    r = run("devices", "provision", "pack-0042", "--shipment", "SHP-8", "--data-dir", "data", "--key-out", "other")
    assert r.returncode == 2 and "already registered" in r.stderr, r.stdout + r.stderr
    assert not (tmp_path / "other").exists()
    assert [p.name for p in (tmp_path / "device-keys").iterdir()] == ["pack-0042.key"]
