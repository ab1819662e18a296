"""A shipment's profile is set once; changing it is its own sealed act (issue 12, item 8).

Through the CLI an operator uses, on a SQLite data directory: registering a device never
changes its shipment's profile, an unknown profile or a weak key is refused naming what
is wrong, and every device record and profile change is a sealed leaf naming the profile.
"""

from __future__ import annotations

import json
from pathlib import Path

from packproof.crypto import b64, private_key_from_seed, public_key_bytes
from tests.conftest import Db, cli

KEY = b64(public_key_bytes(private_key_from_seed(b"registry")))


def records(data: Path) -> list[dict[str, object]]:
    rows = Db(f"sqlite:///{data / 'packproof.db'}").execute(
        "SELECT body FROM readings WHERE device_id='~registry' ORDER BY seq").fetchall()
    return [json.loads(r[0]) for r in rows]


def test_a_profile_changes_only_by_its_own_sealed_act(tmp_path: Path) -> None:
    data = tmp_path / "data"
    register = ("devices", "register", "--data-dir", str(data), "--shipment", "SHP-R")
    r = cli(*register, "dev-1", "--public-key", KEY, "--profile", "un38.3-large")
    assert r.returncode == 0, r.stdout + r.stderr
    r = cli(*register, "dev-2", "--public-key", KEY, "--profile", "un38.3-cell")
    assert r.returncode == 2 and "shipment SHP-R already has profile 'un38.3-large', not 'un38.3-cell'" in r.stderr
    r = cli(*register, "dev-3", "--unsigned", "--profile", "un38.3-bogus")
    assert r.returncode == 2 and "unknown profile 'un38.3-bogus'" in r.stderr, r.stderr
    r = cli(*register, "dev-4", "--public-key", b64(bytes(32)))
    assert r.returncode == 2 and "not a usable Ed25519 public key" in r.stderr, r.stderr
    r = cli(*register, "dev-5", "--unsigned")  # no profile: joins the shipment as it is
    assert r.returncode == 0, r.stdout + r.stderr

    r = cli("shipments", "set-profile", "SHP-R", "un38.3-cell-rev4", "--reason", "packs re-certified to Rev.4",
            "--data-dir", str(data))
    assert r.returncode == 0 and "profile un38.3-large -> un38.3-cell-rev4" in r.stdout, r.stdout + r.stderr
    r = cli("devices", "list", "--data-dir", str(data))
    assert r.stdout.count("un38.3-cell-rev4") == 2, r.stdout
    assert [(x["record"], x.get("device_id"), x["profile"]) for x in records(data)] == [
        ("device-registered", "dev-1", "un38.3-large"), ("device-registered", "dev-5", "un38.3-large"),
        ("shipment-profile-changed", None, "un38.3-cell-rev4")]
    assert records(data)[-1] | {"at": ""} == {
        "record": "shipment-profile-changed", "shipment_id": "SHP-R", "profile": "un38.3-cell-rev4",
        "previous": "un38.3-large", "reason": "packs re-certified to Rev.4", "at": ""}
