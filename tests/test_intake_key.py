"""Writers with data directories of their own share one intake key, as docker-compose.yml runs them.

`packproof intake-key FILE` makes the key once; every writer names it (--intake-key-file,
PACKPROOF_INTAKE_KEY_FILE) and none makes one of its own. Registry commands from two data
directories write one store and a sealer from a third seals their records instead of
quarantining them (`not_from_intake`); a writer with another key, or naming a key file that
is not there, is refused in one line, exit 2.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
from pathlib import Path

from packproof.intake import IntakeKey
from packproof.net import free_port
from tests.conftest import Db, Service, cli

Result = subprocess.CompletedProcess[str]


def _one_line_error(r: Result) -> str:
    """The refusal: exit 2, one error line, no traceback (a service announces its settings first)."""
    assert r.returncode == 2, r.stdout + r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and r.stderr.rstrip().endswith(errors[0]) and "Traceback" not in r.stderr, r.stderr
    return errors[0]


def _register(device: str, store: str, data: Path, *key: str, env: dict[str, str] | None = None) -> Result:
    return cli("devices", "register", device, "--shipment", "SHP-1", "--unsigned", "--store", store,
               "--data-dir", str(data), *key, env=env)


def test_writers_with_their_own_data_dirs_share_one_key_file(store_url: str, tmp_path: Path) -> None:
    key = tmp_path / "intake-key" / "intake.key"
    r = cli("intake-key", str(key), "--group", str(os.getgid()))
    assert r.returncode == 0, r.stdout + r.stderr
    key_id = re.search(r"intake key ([0-9a-f]{16}) made", r.stdout).group(1)  # type: ignore[union-attr]
    assert key.stat().st_mode & 0o777 == 0o640 and key.stat().st_gid == os.getgid()
    made = key.read_bytes()
    again = cli("intake-key", str(key), "--group", str(os.getgid()))  # the one-shot on a second `up`
    assert again.returncode == 0 and f"intake key {key_id} already in {key}: kept" in again.stdout, again.stdout
    assert key.read_bytes() == made

    shared = ("--intake-key-file", str(key))
    r = _register("dev-a", store_url, tmp_path / "reg-a", *shared)
    assert r.returncode == 0, r.stdout + r.stderr
    r = _register("dev-b", store_url, tmp_path / "reg-b", env={"PACKPROOF_INTAKE_KEY_FILE": str(key)})
    assert r.returncode == 0, r.stdout + r.stderr
    assert not list(tmp_path.glob("reg-*/intake.key")), "a writer given the key file made its own"

    ledger = tmp_path / "ledger"
    sealer = Service("seal", "--store", store_url, "--data-dir", str(ledger), *shared, "--seal-interval", "0.2",
                     log=tmp_path / "seal.log")
    sealer.wait_output("sealing")
    assert sealer.stop() == 0, sealer.output()
    db = Db(store_url)
    assert db.execute("SELECT count(*) FROM quarantine WHERE reason_code='not_from_intake'").fetchone() == (0,)
    audit = cli("audit", "--store", store_url, "--data-dir", str(ledger))
    assert audit.returncode == 0, audit.stdout + audit.stderr

    err = _one_line_error(_register("dev-c", store_url, tmp_path / "other"))  # DATA_DIR/intake.key: another key
    other = IntakeKey(base64.b64decode((tmp_path / "other" / "intake.key").read_text())).key_id
    assert f"intake key {key_id}, but this service holds key {other} from " in err, err
    assert "--intake-key-file" in err, err
    err = _one_line_error(cli("seal", "--store", store_url, "--data-dir", str(tmp_path / "other")))
    assert key_id in err and other in err, err


def test_a_named_key_file_that_is_missing_is_refused_not_made(tmp_path: Path) -> None:
    absent = tmp_path / "intake-key" / "intake.key"
    store = f"sqlite:///{tmp_path / 'packproof.db'}"
    err = _one_line_error(_register("dev-a", store, tmp_path / "data", "--intake-key-file", str(absent)))
    assert f"intake key file {absent} does not exist: make it once with `packproof intake-key {absent}`" in err, err
    assert not absent.exists() and not (tmp_path / "data" / "intake.key").exists()

    token = tmp_path / "admin.token"
    token.write_text("a" * 32)
    r = cli("api", "--data-dir", str(tmp_path / "data"), "--port", str(free_port()), "--admin-token-file", str(token),
            env={"PACKPROOF_INTAKE_KEY_FILE": str(absent)})  # POST /devices would write: refused at start
    assert str(absent) in _one_line_error(r)


def test_the_key_command_refuses_an_unknown_group_and_makes_nothing(tmp_path: Path) -> None:
    key = tmp_path / "intake.key"
    assert "--group no-such-group: no such group" in _one_line_error(
        cli("intake-key", str(key), "--group", "no-such-group"))
    assert not key.exists()
    r = cli("intake-key", str(key))
    assert r.returncode == 0 and key.stat().st_mode & 0o777 == 0o600, r.stdout + r.stderr
