"""A simulated fleet: N shipments x M packs, one sensor per pack, each with its own key.

Everything is derived from `--seed`: shipment and device ids, scenarios, and each
device's Ed25519 key (from a hash of seed and device id), so the same command makes
the same fleet and the same signals. Only where each device left off (its next seq, and
what it has not delivered yet) is kept between runs, in the store-and-forward buffer
(`simulators/buffer.py`), so a seq is never reused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from packproof.canonical import canonical_bytes, signing_bytes
from packproof.crypto import b64, private_key_from_seed, public_key_bytes
from packproof.errors import ConfigError, RegistryConflict
from packproof.reading import DeviceTopic, Location, Reading, Shock, Vibration
from packproof.simulators.scenarios import MIXED_FLEET, SCENARIOS, scenario_profile
from packproof.simulators.signals import DeviceSignal
from packproof.timefmt import rfc3339

if TYPE_CHECKING:
    from packproof.store import Store

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
    """The fleet; its last `unsigned_shipments` shipments (never all of them: one always signs) have
    trackers that cannot sign."""
    if shipments < 1 or packs < 1:
        raise ConfigError(f"a fleet needs at least 1 shipment and 1 pack, got {shipments} x {packs}")
    if scenario != MIXED and scenario not in SCENARIOS:
        raise ConfigError(f"unknown scenario {scenario!r}; choose {MIXED} or one of: {', '.join(sorted(SCENARIOS))}")
    fleet = []
    for i in range(shipments):
        name = MIXED_FLEET[i % len(MIXED_FLEET)] if scenario == MIXED else scenario
        shipment_id = f"SHP-{seed:03d}-{i + 1:04d}"
        signed = i < shipments - min(unsigned_shipments, shipments - 1)
        for j in range(packs):
            device_id = f"{shipment_id}-P{j + 1:02d}"
            key = private_key_from_seed(f"packproof-sim/{seed}/{device_id}".encode()) if signed else None
            fleet.append(SimDevice(device_id, shipment_id, name, key,
                                   DeviceSignal(name, seed, device_id, step_s)))
    return fleet


def shipments_of(fleet: list[SimDevice]) -> dict[str, str]:
    """shipment id -> UN 38.3 profile name, for registration."""
    return {d.shipment_id: scenario_profile(d.scenario) for d in fleet}


async def register_fleet(store: Store, fleet: list[SimDevice], *, seed: int, unsigned_shipments: int) -> None:
    """Register the fleet's shipments and device keys (what is registered already stays as it is).

    Each key follows from the seed and whether the shipment signs, so a fleet made with another
    `--seed` or `--unsigned-shipments` than the one that first registered the same device ids
    contradicts the registry. The store's own message points to `devices rotate`, which is the
    answer for a real device, not for a simulated fleet: say what to change instead.
    """
    try:
        await store.register(shipments_of(fleet), [(d.device_id, d.shipment_id, d.public_key) for d in fleet])
    except RegistryConflict as exc:
        raise RegistryConflict(
            f"{exc}. This fleet (--seed {seed}, --unsigned-shipments {unsigned_shipments}) is not the one "
            "registered in this store: `run` and `simulate` on one data directory need the same --seed, "
            "--unsigned-shipments and --shipments as the command that registered it first (both default to "
            "--unsigned-shipments 1), or start with another --data-dir") from exc
