"""Configuration through the real CLI: flag > PACKPROOF_* env > --config file > default.

Each case runs `packproof` as a subprocess with its own environment, the way an operator
or a container does; `packproof config COMMAND` prints every value with its source.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from packproof.net import free_port
from tests.conftest import cli

SECRET = "hunter2-not-for-logs"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No PACKPROOF_* setting of the machine running the tests leaks into these cases."""
    for name in list(os.environ):
        if name.startswith("PACKPROOF_"):
            monkeypatch.delenv(name)


def setting(output: str, key: str) -> tuple[str, str]:
    """(value, source) of one key in `packproof config` output."""
    m = re.search(rf"^\s+{re.escape(key)}\s+= (.*?)   \((.*)\)$", output, re.MULTILINE)
    assert m, f"{key} not in:\n{output}"
    return m.group(1), m.group(2)


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "packproof.toml"
    path.write_text('data_dir = "/srv/packproof"\n\n[mqtt]\nhost = "file-host"\nport = 1001\n\n'
                    "[seal]\ninterval = 2.5\n")
    return path


def test_flag_beats_env_beats_file_beats_default(config_file: Path) -> None:
    env = {"PACKPROOF_CONFIG": str(config_file), "PACKPROOF_MQTT_PORT": "1002"}
    r = cli("config", "ingest", "--mqtt-port", "1003", env=env)
    assert r.returncode == 0, r.stderr
    assert setting(r.stdout, "mqtt.port") == ("1003", "flag --mqtt-port")
    assert setting(r.stdout, "mqtt.host") == ("file-host", f"file {config_file}")
    assert setting(r.stdout, "seal.interval") == ("2.5", f"file {config_file}")
    assert setting(r.stdout, "mqtt.client_id") == ("packproof-ingestor", "default")

    r = cli("config", "ingest", env=env)
    assert setting(r.stdout, "mqtt.port") == ("1002", "env PACKPROOF_MQTT_PORT")
    r = cli("config", "ingest", "--config", str(config_file))
    assert setting(r.stdout, "mqtt.port") == ("1001", f"file {config_file}")
    assert setting(r.stdout, "data_dir") == ("/srv/packproof", f"file {config_file}")
    assert setting(r.stdout, "store") == ("sqlite:////srv/packproof/packproof.db", "default")
    r = cli("config", "ingest")
    assert setting(r.stdout, "mqtt.port") == ("1883", "default")
    assert "no config file" in r.stdout


def test_bool_flags_and_env(config_file: Path) -> None:
    r = cli("config", "ingest", env={"PACKPROOF_INGEST_SEAL": "false"})
    assert setting(r.stdout, "ingest.seal") == ("False", "env PACKPROOF_INGEST_SEAL")
    r = cli("config", "ingest", "--seal", env={"PACKPROOF_INGEST_SEAL": "false"})
    assert setting(r.stdout, "ingest.seal") == ("True", "flag --seal/--no-seal")


def test_a_service_prints_its_configuration_at_start_without_secrets(tmp_path: Path) -> None:
    # The sealer prints its configuration, then fails to reach the store (nothing listens on port 1).
    store = f"postgresql://packproof:{SECRET}@127.0.0.1:1/packproof"
    r = cli("seal", "--data-dir", str(tmp_path), "--store", store, env={"PACKPROOF_SEAL_INTERVAL": "0.5"},
            timeout=60)
    assert r.returncode != 0
    assert "packproof seal (flag > env PACKPROOF_* > no config file > default)" in r.stderr
    assert "postgresql://packproof:***@127.0.0.1:1/packproof[flag]" in r.stderr
    assert "interval=0.5[env]" in r.stderr
    block = r.stderr.split("error:")[0]  # the store's own error message is the store's business (store.py)
    assert SECRET not in r.stdout + block


def test_secrets_are_masked_in_config_output() -> None:
    env = {"PACKPROOF_MQTT_PASSWORD": SECRET, "PACKPROOF_STORE": f"postgresql://u:{SECRET}@db/packproof"}
    r = cli("config", "ingest", env=env)
    assert r.returncode == 0, r.stderr
    assert setting(r.stdout, "mqtt.password") == ("***", "env PACKPROOF_MQTT_PASSWORD")
    assert setting(r.stdout, "store") == ("postgresql://u:***@db/packproof", "env PACKPROOF_STORE")
    assert SECRET not in r.stdout + r.stderr
    r = cli("config", "ingest", "--mqtt-password", SECRET, "--mqtt-port", "0")  # an error does not echo it either
    assert r.returncode == 2 and "mqtt.port = 0 (from flag --mqtt-port)" in r.stderr
    assert SECRET not in r.stdout + r.stderr


def test_unknown_key_in_the_file_is_named_with_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[mqtt]\nhots = "broker"\n')
    r = cli("config", "ingest", "--config", str(path))
    assert r.returncode == 2
    assert f"unknown setting 'mqtt.hots' in file {path} (did you mean 'mqtt.host'?)" in r.stderr
    r = cli("ingest", "--config", str(path))  # a service refuses to start on it too
    assert r.returncode == 2 and "mqtt.hots" in r.stderr


def test_wrong_type_names_the_key_and_its_source(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[api]\nport = "eighty"\n')
    r = cli("config", "api", "--config", str(path))
    assert r.returncode == 2 and f"api.port = 'eighty' (from file {path}): Input should be a valid integer" \
        in r.stderr, r.stderr
    r = cli("config", "api", env={"PACKPROOF_API_STALE_AFTER": "soon"})
    assert r.returncode == 2 and "api.stale_after = 'soon' (from env PACKPROOF_API_STALE_AFTER)" in r.stderr
    r = cli("config", "ingest", env={"PACKPROOF_MQTT_PORTT": "1"})
    assert r.returncode == 2 and "unknown setting 'mqtt.portt' in env PACKPROOF_MQTT_PORTT" in r.stderr


def test_bad_store_url_and_missing_file(tmp_path: Path) -> None:
    r = cli("audit", "--data-dir", str(tmp_path), "--store", "mysql://db/packproof")
    assert r.returncode == 2 and "store (from flag --store)" in r.stderr and "unknown scheme 'mysql'" in r.stderr
    r = cli("config", "seal", "--config", str(tmp_path / "absent.toml"))
    assert r.returncode == 2 and f"config file {tmp_path / 'absent.toml'} (from --config) does not exist" in r.stderr
    (tmp_path / "broken.toml").write_text("[mqtt\n")
    r = cli("config", "seal", env={"PACKPROOF_CONFIG": str(tmp_path / "broken.toml")})
    assert r.returncode == 2 and "is not valid TOML" in r.stderr


def test_help_shows_the_real_defaults_and_env_vars() -> None:
    r = cli("ingest", "--help")
    assert r.returncode == 0
    text = " ".join(r.stdout.split())
    for shown in ("--mqtt-port", "1883", "PACKPROOF_MQTT_PORT", "packproof-ingestor", "PACKPROOF_STORE",
                  "PACKPROOF_CONFIG", "--share-group"):
        assert shown in text, shown
    r = cli("simulate", "--help")
    assert "unsigned-shipments" in r.stdout and "--outage-random" in r.stdout
    line = next(line for line in r.stdout.splitlines() if "--outage-random" in line)
    assert "[default: (off)]" in line, line  # a lone flag showed "(outage-random)", as if it were on


def test_store_flag_reaches_the_store(tmp_path: Path) -> None:
    db = tmp_path / "elsewhere.db"
    r = cli("devices", "register", "dev-z", "--shipment", "SHP-Z", "--unsigned", "--data-dir", str(tmp_path / "d"),
            "--store", f"sqlite:///{db}")
    assert r.returncode == 0, r.stderr
    assert db.exists() and not (tmp_path / "d" / "packproof.db").exists()
    r = cli("devices", "list", env={"PACKPROOF_STORE": f"sqlite:///{db}"})
    assert "dev-z" in r.stdout


def test_a_port_from_the_environment_is_used(tmp_path: Path) -> None:
    """Not only printed: the broker listens where PACKPROOF_BROKER_PORT says (and names it when taken)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = cli("broker", env={"PACKPROOF_BROKER_PORT": str(port)})
    assert r.returncode == 2 and f"port {port} on 127.0.0.1 is already in use" in r.stderr
    assert f"port={port}[env]" in r.stderr
    assert free_port()  # the helper still works beside it


def test_a_share_group_shows_the_mqtt_version_it_speaks() -> None:
    """The ingestor speaks MQTT 5 in a share group; its banner said protocol=3.1.1."""
    r = cli("config", "ingest", "--share-group", "ingest")
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"mqtt\.protocol\s+= 5\b", r.stdout), r.stdout
    r = cli("config", "ingest")
    assert re.search(r"mqtt\.protocol\s+= 3\.1\.1\b", r.stdout), r.stdout
