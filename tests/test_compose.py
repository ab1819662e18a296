"""docker-compose.yml is valid Compose and names only real `packproof` commands, flags and settings.

Docker cannot run on our machines, so the file is checked statically: against the
Compose Specification's JSON Schema from ../shared/schemas; each packproof service's
command against the CLI's own --help; its PACKPROOF_* environment through
`packproof config COMMAND` (every variable a known setting, every value valid); and the
wiring the deployment relies on (healthchecks, start order, volumes).
"""

from __future__ import annotations

import json
import re

import jsonschema
import pytest
import yaml

from tests.conftest import ROOT, SHARED, cli

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SCHEMA = SHARED / "schemas" / "compose-spec.json"
SERVICES = COMPOSE["services"]
PACKPROOF = sorted(name for name, spec in SERVICES.items() if spec.get("image") == "packproof:latest")
ONE_SHOT = {"ingestor-login", "device-logins", "intake-key"}
SHOWN_BY_CONFIG = {"run", "broker", "ingest", "seal", "api", "simulate"}  # `packproof config` subcommands


def subcommand(command: list[str]) -> str:
    return next(a for a in command[1:] if not a.startswith("-"))


def interpolated(env: dict[str, object]) -> dict[str, str]:
    """The service's environment as Compose would pass it, with a stand-in for each ${VAR...}."""
    return {k: re.sub(r"\$\{(\w+)[^}]*\}", lambda m: f"test-{m.group(1).lower()}", str(v)) for k, v in env.items()}


def test_compose_file_matches_the_compose_schema() -> None:
    if not SCHEMA.exists():
        pytest.skip(f"{SCHEMA} is absent (../shared is not beside this checkout)")
    # The schema says draft-07 under an id jsonschema does not know: name the validator.
    jsonschema.Draft7Validator(json.loads(SCHEMA.read_text())).validate(COMPOSE)


def test_the_services_of_a_scaled_out_deployment() -> None:
    default = {name for name, svc in SERVICES.items() if not svc.get("profiles")}
    assert default == {"ingestor-login", "device-logins", "intake-key", "mosquitto", "postgres", "sealer",
                             "ingest-1", "ingest-2", "api", "simulator"}
    assert SERVICES["mosquitto"]["image"] == "eclipse-mosquitto:2"
    assert SERVICES["postgres"]["image"] == "postgres:16"
    mounts = SERVICES["mosquitto"]["volumes"]
    assert "./broker/mosquitto.conf:/mosquitto/config/mosquitto.conf:ro" in mounts
    assert any(m.startswith("./broker/packproof.acl:") for m in mounts)
    for path in ("broker/mosquitto.conf", "broker/packproof.acl", "Dockerfile"):
        assert (ROOT / path).exists(), path
    assert "pgdata:/var/lib/postgresql/data" in SERVICES["postgres"]["volumes"]
    for name in ("ingest-1", "ingest-2"):
        assert SERVICES[name]["command"] == ["packproof", "ingest", "--no-seal", "--share-group", "ingest",
                                             "--verify-workers", "1"]
    ids = {SERVICES[n]["environment"]["PACKPROOF_MQTT_CLIENT_ID"] for n in ("ingest-1", "ingest-2")}
    assert len(ids) == 2, "each ingestor needs its own MQTT client id"
    assert SERVICES["sealer"]["command"] == ["packproof", "seal"]
    assert SERVICES["ingestor-login"]["command"][:2] == ["packproof", "passwd"]


def test_the_chain_profile_builds_the_pinned_dev_node_from_npm() -> None:
    """Issue 17: the Ethereum dev node is optional (profile `chain`), built from the npm lock."""
    node = SERVICES["eth-node"]
    assert node["profiles"] == ["chain"]
    assert node["build"] == "./anchor/chain"
    assert node["ports"] == ["127.0.0.1:8545:8545"]
    dockerfile = (ROOT / "anchor/chain/Dockerfile").read_text()
    assert "npm ci" in dockerfile and "curl" not in dockerfile and "wget" not in dockerfile
    rules = [ln for ln in (ROOT / "anchor/chain/.dockerignore").read_text().splitlines() if not ln.startswith("#")]
    assert rules == ["*", "!package.json", "!package-lock.json", "!hardhat.config.js"]
    assert "**/node_modules" in (ROOT / ".dockerignore").read_text().split()


def test_start_order_waits_for_health_and_for_the_one_shot_services() -> None:
    declared = set(COMPOSE["volumes"])
    for name, spec in SERVICES.items():
        for dep, cond in spec.get("depends_on", {}).items():
            assert dep in SERVICES, f"{name} depends on unknown {dep}"
            want = "service_completed_successfully" if dep in ONE_SHOT else "service_healthy"
            assert cond == {"condition": want}, f"{name} -> {dep}: {cond}"
            assert dep in ONE_SHOT or "healthcheck" in SERVICES[dep], f"{name} waits on {dep}, which has no healthcheck"
        if name not in ONE_SHOT:
            assert "healthcheck" in spec, f"{name} has no healthcheck"
        for mount in spec.get("volumes", []):
            source = mount.split(":")[0]
            assert source.startswith("./") or source in declared, f"{name}: volume {source} is not declared"
    needs = {"mosquitto": {"ingestor-login", "device-logins"}, "sealer": {"postgres"},
             "ingest-1": {"mosquitto", "postgres", "sealer"}, "api": {"postgres", "sealer"},
             "simulator": {"device-logins", "ingest-1", "ingest-2"}}
    for name, deps in needs.items():
        assert deps <= set(SERVICES[name]["depends_on"]), name


def _mounts(spec: dict) -> dict[str, tuple[str, bool]]:  # type: ignore[type-arg]
    """A service's mounts: container path -> (source, read-only)."""
    out = {}
    for m in spec.get("volumes", []):
        source, target, *mode = m.split(":")
        out[target] = (source, mode == ["ro"])
    return out


def test_the_ledger_key_stays_with_the_sealer() -> None:
    """Only the sealer mounts what holds ledger.key, and it runs as a uid no other service has."""
    sealer = SERVICES["sealer"]
    key_file = sealer["environment"]["PACKPROOF_SEAL_KEY_FILE"]
    data_dir = sealer["environment"]["PACKPROOF_DATA_DIR"]
    mounts = _mounts(sealer)
    key_mount = max((t for t in mounts if key_file.startswith(t.rstrip("/") + "/")), key=len)
    key_volume = mounts[key_mount][0]
    assert not key_file.startswith(data_dir.rstrip("/") + "/"), "the key must not sit in the data dir the API reads"
    assert mounts[data_dir] == ("ledger", False)
    assert _mounts(SERVICES["api"])[SERVICES["api"]["environment"]["PACKPROOF_DATA_DIR"]] == ("ledger", True)
    for name, spec in SERVICES.items():
        if name != "sealer":
            assert key_volume not in {s for s, _ in _mounts(spec).values()}, f"{name} mounts the ledger key"
        if name not in ("sealer", "api"):
            assert "ledger" not in {s for s, _ in _mounts(spec).values()}, name
    users = {name: str(spec.get("user", "1000:1000" if name in PACKPROOF else "image")) for name, spec in
             SERVICES.items()}
    assert users["sealer"].split(":")[0] not in {u.split(":")[0] for n, u in users.items() if n != "sealer"}
    dockerfile = (ROOT / "Dockerfile").read_text()
    uid = users["sealer"].split(":")[0]
    assert f"--uid {uid} sealer" in dockerfile and f"chown sealer /ledger {key_mount}" in dockerfile
    assert f"chmod 0700 {key_mount}" in dockerfile


def test_every_writer_of_the_store_shares_one_intake_key() -> None:
    """Each service that writes the store (every one given it: the API on POST /devices) has a data
    dir and volumes of its own, so each names the same key file, on the `intake-key` volume the
    one-shot made before it started; it alone mounts that volume writable, and no other service
    mounts it at all."""
    maker = SERVICES["intake-key"]
    assert maker["command"][:2] == ["packproof", "intake-key"]
    key_file = maker["command"][2]
    key_dir = max((t for t in _mounts(maker) if key_file.startswith(t.rstrip("/") + "/")), key=len)
    assert _mounts(maker)[key_dir] == ("intake-key", False)
    writers = {name for name, spec in SERVICES.items() if "PACKPROOF_STORE" in spec.get("environment", {})}
    assert writers == {"sealer", "ingest-1", "ingest-2", "api", "simulator"}
    for name, spec in SERVICES.items():
        env, mounts = spec.get("environment", {}), _mounts(spec)
        if name in writers:
            assert env.get("PACKPROOF_INTAKE_KEY_FILE") == key_file, name
            assert mounts.get(key_dir) == ("intake-key", True), f"{name} must mount {key_dir} read-only"
            assert spec["depends_on"]["intake-key"] == {"condition": "service_completed_successfully"}, name
        elif name != "intake-key":
            assert "intake-key" not in {s for s, _ in mounts.values()}, f"{name} mounts the intake key"
            assert "PACKPROOF_INTAKE_KEY_FILE" not in env, name


def test_the_intake_key_is_readable_by_both_service_uids_and_no_other() -> None:
    """The key is packproof's (uid 1000, the one-shot's user), 0640 for a group of the two image
    users only; the sealer (uid 1001) names its user with a group, which drops the others, so it
    joins that group itself."""
    command = SERVICES["intake-key"]["command"]
    group = command[command.index("--group") + 1]
    assert "user" not in SERVICES["intake-key"], "the one-shot runs as the image's packproof user"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(rf"groupadd --gid \d+ {group}\b", dockerfile)
    members = re.findall(rf"useradd [^&]*--groups {group} --uid (\d+) (\w+)", dockerfile)
    assert sorted(members) == [("1000", "packproof"), ("1001", "sealer")], members
    assert f"chown packproof:{group} /intake-key && chmod 0750 /intake-key" in dockerfile
    assert SERVICES["sealer"]["user"] == "1001:1001" and SERVICES["sealer"]["group_add"] == [group]
    for name, spec in SERVICES.items():
        if name != "sealer":
            assert group not in spec.get("group_add", []), name


def test_published_ports_bind_this_host_only_and_the_api_needs_a_read_token() -> None:
    for name, spec in SERVICES.items():
        for port in spec.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port} binds every interface"
    api = SERVICES["api"]
    assert api["environment"]["PACKPROOF_API_READ_TOKEN_FILE"] == "/run/secrets/api_read_token"
    assert "api_read_token" in api["secrets"] and "api_read_token" in COMPOSE["secrets"]
    assert "POSTGRES_USER" not in SERVICES["postgres"]["environment"], "the image's superuser is not packproof's"
    init = "./deploy/postgres-init:/docker-entrypoint-initdb.d:ro"
    assert init in SERVICES["postgres"]["volumes"] and (ROOT / "deploy/postgres-init/10-packproof-role.sh").exists()


def test_the_store_password_stays_out_of_the_url() -> None:
    for name, spec in SERVICES.items():
        store = str(spec.get("environment", {}).get("PACKPROOF_STORE", ""))
        assert "${" not in store, f"{name}: a password pasted into the store URL breaks on / @ : %"
        if store:
            assert spec["environment"]["PACKPROOF_STORE_PASSWORD"].startswith("${PACKPROOF_DB_PASSWORD"), name


def test_every_packproof_healthcheck_is_a_packproof_health_command_of_that_service() -> None:
    checks = {"sealer": ["packproof", "health", "seal"], "ingest-1": ["packproof", "health", "ingest"],
              "ingest-2": ["packproof", "health", "ingest"]}
    for name, want in checks.items():
        assert SERVICES[name]["healthcheck"]["test"] == ["CMD", *want], name
    help_text = cli("health", "ingest", "--help")
    assert help_text.returncode == 0 and "--client-id" in help_text.stdout
    for name in ("ingest-1", "ingest-2"):  # the check finds its own ingestor by the client id in its environment
        assert "PACKPROOF_MQTT_CLIENT_ID" in SERVICES[name]["environment"]
    assert "-V mqttv5 -q 1" in SERVICES["mosquitto"]["healthcheck"]["test"][1]


def test_the_build_context_holds_what_the_image_copies_and_no_secrets() -> None:
    ignore = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    assert ignore[0] == "*", "an allow-list: everything is ignored first"
    allowed = {line[1:] for line in ignore if line.startswith("!")}
    copied = set()
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            copied.update(line.split()[1:-1])
    assert copied <= allowed, copied - allowed
    assert not allowed & {".env", ".git", ".venv", "data", "mqtt", "tests"}
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?$", dockerfile, re.M)
    assert "--require-hashes" in dockerfile and "requirements.lock" in dockerfile
    assert "VOLUME" not in dockerfile


@pytest.mark.parametrize("service", PACKPROOF)
def test_every_command_and_flag_exists(service: str) -> None:
    command = SERVICES[service]["command"]
    assert command[0] == "packproof"
    sub = subcommand(command)
    help_text = cli(sub, "--help")
    assert help_text.returncode == 0, f"{service}: `packproof {sub}` is not a command: {help_text.stderr}"
    for flag in (a for a in command[1:] if a.startswith("--")):
        assert re.search(rf"{re.escape(flag)}\b", help_text.stdout), f"{service}: `packproof {sub}` has no flag {flag}"


@pytest.mark.parametrize("service", [s for s in PACKPROOF if subcommand(SERVICES[s]["command"]) in SHOWN_BY_CONFIG])
def test_every_setting_in_the_environment_is_real_and_valid(service: str) -> None:
    command = SERVICES[service]["command"]
    env = interpolated(SERVICES[service].get("environment", {}))
    args = [a for a in command[1:] if a != "--credentials-only"]  # an action, not a setting
    r = cli("config", *args, env=env)
    assert r.returncode == 0, f"{service}: {r.stderr}"
    for name in (n for n in env if n.startswith("PACKPROOF_")):  # used, and not overridden by a flag
        assert f"(env {name})" in r.stdout, f"{service}: {name} is not a setting `packproof {command[1]}` takes " \
                                            "from the environment"
    if "PACKPROOF_INTAKE_KEY_FILE" in env:  # the key file it writes with is the one the one-shot made
        key_file = SERVICES["intake-key"]["command"][2]
        assert re.search(rf"intake_key_file += {key_file} +\(env PACKPROOF_INTAKE_KEY_FILE\)", r.stdout), r.stdout
    for secret in ("test-packproof_db_password", "test-packproof_mqtt_password"):
        assert secret not in r.stdout + r.stderr, f"{service}: a secret is printed"
