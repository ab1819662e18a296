"""docker-compose.yml is valid Compose and names only real `packproof` commands and flags.

Docker cannot run on our machines, so the file is checked statically: against the
Compose Specification's JSON Schema from ../shared/schemas, and each service's
command against the CLI's own --help.
"""

from __future__ import annotations

import json

import jsonschema
import pytest
import yaml

from tests.conftest import ROOT, SHARED, cli

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SCHEMA = SHARED / "schemas" / "compose-spec.json"


def test_compose_file_matches_the_compose_schema() -> None:
    if not SCHEMA.exists():
        pytest.skip(f"{SCHEMA} is absent (../shared is not beside this checkout)")
    # The schema says draft-07 under an id jsonschema does not know: name the validator.
    jsonschema.Draft7Validator(json.loads(SCHEMA.read_text())).validate(COMPOSE)


@pytest.mark.parametrize("service", sorted(COMPOSE["services"]))
def test_every_command_and_flag_exists(service: str) -> None:
    spec = COMPOSE["services"][service]
    command = spec["command"]
    assert command[0] == "packproof"
    sub = [a for a in command[1:] if not a.startswith("-")][:1]
    help_text = cli(*sub, "--help")
    assert help_text.returncode == 0, f"{service}: `packproof {sub[0]}` is not a command: {help_text.stderr}"
    for flag in (a for a in command[1:] if a.startswith("--")):
        assert flag in help_text.stdout, f"{service}: `packproof {sub[0]}` has no flag {flag}"
    assert "healthcheck" in spec, f"{service} has no healthcheck"
    assert (ROOT / "Dockerfile").exists()
