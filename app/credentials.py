"""MQTT logins for the simulated devices: the one place the simulator and the broker meet.

The simulator stands in for the devices and the broker keeps their password hashes; writing
both sides is wiring, so it lives here in the composition root, not in either stage.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from packproof.broker.auth import PasswordFile, verify_password
from packproof.simulators.fleet import SimDevice


def provision_credentials(fleet: list[SimDevice], password_file: Path, secrets_file: Path) -> dict[str, str]:
    """MQTT passwords for the simulated devices: reused from `secrets_file` (0600), or made.

    The broker's password file gets only hashes; the simulator, standing in for the devices,
    keeps the plain passwords in its own owner-only file, as each real tracker would keep its own.
    A device whose stored hash does not match its known password gets a new password in both
    files: one data directory can serve two brokers' password files (the embedded broker's
    `data/mqtt.passwd` under `run`, Mosquitto's under `simulate --password-file`), and a
    hash left from the other one would refuse every device. Checking costs one PBKDF2 per
    device (~10 ms), once per start.
    """
    known: dict[str, str] = json.loads(secrets_file.read_text()) if secrets_file.exists() else {}
    registered = PasswordFile(password_file).users() if password_file.exists() else {}
    pf = PasswordFile(password_file)
    for d in fleet:
        password, stored = known.get(d.device_id), registered.get(d.device_id)
        if password is None or stored is None or not verify_password(password, stored):
            known[d.device_id] = secrets.token_urlsafe(18)
            pf.set(d.device_id, known[d.device_id])
    secrets_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(secrets_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(known, f, indent=1)
    return {d.device_id: known[d.device_id] for d in fleet}
