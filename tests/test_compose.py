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
ONE_SHOT = {"ingestor-login", "device-logins"}
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
    assert set(SERVICES) == {"ingestor-login", "device-logins", "mosquitto", "postgres", "sealer", "ingest-1",
                             "ingest-2", "api", "simulator"}
    assert SERVICES["mosquitto"]["image"] == "eclipse-mosquitto:2"
    assert SERVICES["postgres"]["image"] == "postgres:16"
    mounts = SERVICES["mosquitto"]["volumes"]
    assert "./broker/mosquitto.conf:/mosquitto/config/mosquitto.conf:ro" in mounts
    assert any(m.startswith("./broker/packproof.acl:") for m in mounts)
    for path in ("broker/mosquitto.conf", "broker/packproof.acl", "Dockerfile"):
        assert (ROOT / path).exists(), path
    assert SERVICES["postgres"]["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    assert "pgdata:/var/lib/postgresql/data" in SERVICES["postgres"]["volumes"]
    for name in ("ingest-1", "ingest-2"):
        assert SERVICES[name]["command"] == ["packproof", "ingest", "--no-seal", "--share-group", "ingest",
                                             "--verify-workers", "1"]
    ids = {SERVICES[n]["environment"]["PACKPROOF_MQTT_CLIENT_ID"] for n in ("ingest-1", "ingest-2")}
    assert len(ids) == 2, "each ingestor needs its own MQTT client id"
    assert SERVICES["sealer"]["command"] == ["packproof", "seal"]
    assert SERVICES["ingestor-login"]["command"][:2] == ["packproof", "passwd"]


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


def test_the_ledger_key_stays_with_the_sealer() -> None:
    assert "ledger:/data" in SERVICES["sealer"]["volumes"]
    assert "ledger:/data:ro" in SERVICES["api"]["volumes"]
    for name in ("ingest-1", "ingest-2", "simulator", "mosquitto"):
        assert not any(m.startswith("ledger:") for m in SERVICES[name].get("volumes", [])), name


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
    for secret in ("test-packproof_db_password", "test-packproof_mqtt_password"):
        assert secret not in r.stdout + r.stderr, f"{service}: a secret is printed"
