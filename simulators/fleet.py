"""A simulated fleet: N shipments x M packs, one sensor per pack, each with its own key.

Everything is derived from `--seed`: shipment and device ids, scenarios, and each
device's Ed25519 key (from a hash of seed and device id), so the same command makes
the same fleet and the same signals. Only where each device left off (its next seq, and
what it has not delivered yet) is kept between runs, in the store-and-forward buffer
(`simulators/buffer.py`), so a seq is never reused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from packproof.canonical import canonical_bytes, signing_bytes
from packproof.crypto import b64, private_key_from_seed, public_key_bytes
from packproof.errors import ConfigError
from packproof.reading import DeviceTopic, Location, Reading, Shock, Vibration
from packproof.timefmt import rfc3339
from simulators.scenarios import MIXED_FLEET, SCENARIOS, scenario_profile
from simulators.signals import DeviceSignal

MIXED = "mixed"


@dataclass(slots=True)
class SimDevice:
    device_id: str
    shipment_id: str
    scenario: str
    key: Ed25519PrivateKey | None  # None: a tracker that cannot sign
    signal: DeviceSignal
    next_seq: int = 0

    @property
    def topic(self) -> str:
        return str(DeviceTopic(self.shipment_id, self.device_id))

    @property
    def status_topic(self) -> str:
        return str(DeviceTopic(self.shipment_id, self.device_id, "status"))

    @property
    def public_key(self) -> bytes | None:
        return public_key_bytes(self.key) if self.key else None

    def reading(self, now: float) -> bytes:
        """The next reading's JSON body (canonical, signed), advancing seq."""
        seq = self.next_seq
        self.next_seq += 1
        s = self.signal.sample(seq)
        r = Reading.model_construct(
            v=1, device_id=self.device_id, shipment_id=self.shipment_id, seq=seq, ts=rfc3339(now),
            temperature_c=s.temperature_c,
            vibration=Vibration.model_construct(peak_g=s.vib_peak_g, freq_hz=s.vib_freq_hz),
            shock=Shock.model_construct(peak_g=s.shock_peak_g, duration_ms=s.shock_duration_ms),
            pressure_kpa=s.pressure_kpa, location=Location.model_construct(lat=s.lat, lon=s.lon),
            sig=None)
        if self.key is not None:
            r = r.model_copy(update={"sig": b64(self.key.sign(signing_bytes(r)))})
        return canonical_bytes(r)


def build_fleet(*, shipments: int, packs: int, scenario: str = MIXED, seed: int = 1,
                unsigned_shipments: int = 0, step_s: float = 60.0) -> list[SimDevice]:
    if shipments < 1 or packs < 1:
        raise ConfigError(f"a fleet needs at least 1 shipment and 1 pack, got {shipments} x {packs}")
    if scenario != MIXED and scenario not in SCENARIOS:
        raise ConfigError(f"unknown scenario {scenario!r}; choose {MIXED} or one of: {', '.join(sorted(SCENARIOS))}")
    fleet = []
    for i in range(shipments):
        name = MIXED_FLEET[i % len(MIXED_FLEET)] if scenario == MIXED else scenario
        shipment_id = f"SHP-{seed:03d}-{i + 1:04d}"
        signed = i < shipments - unsigned_shipments
        for j in range(packs):
            device_id = f"{shipment_id}-P{j + 1:02d}"
            key = private_key_from_seed(f"packproof-sim/{seed}/{device_id}".encode()) if signed else None
            fleet.append(SimDevice(device_id, shipment_id, name, key,
                                   DeviceSignal(name, seed, device_id, step_s)))
    return fleet


def shipments_of(fleet: list[SimDevice]) -> dict[str, str]:
    """shipment id -> UN 38.3 profile name, for registration."""
    return {d.shipment_id: scenario_profile(d.scenario) for d in fleet}


def provision_credentials(fleet: list[SimDevice], password_file: Path, secrets_file: Path) -> dict[str, str]:
    """MQTT passwords for the simulated devices: reused from `secrets_file` (0600), or made.

    The broker's password file gets only hashes; the simulator, standing in for the devices,
    keeps the plain passwords in its own owner-only file, as each real tracker would keep its own.
    """
    import os
    import secrets

    from broker.auth import PasswordFile

    known: dict[str, str] = json.loads(secrets_file.read_text()) if secrets_file.exists() else {}
    registered = PasswordFile(password_file).users() if password_file.exists() else {}
    pf = PasswordFile(password_file)
    for d in fleet:
        if d.device_id not in known or d.device_id not in registered:
            known[d.device_id] = secrets.token_urlsafe(18)
            pf.set(d.device_id, known[d.device_id])
    secrets_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(secrets_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(known, f, indent=1)
    return {d.device_id: known[d.device_id] for d in fleet}
