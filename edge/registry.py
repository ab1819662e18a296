"""The ingestor's copy of the device registry: who may send, with which keys, judged by which profile.

Every reading is checked against its device's registration, so the registry is read from
the store once and kept; it is the only thing the ingestor caches (delivery state and open
excursions are read in each batch's transaction). Rotations and revocations made by
`packproof devices` reach it within a second (`refresh`), and a device registered after the
start is asked for when its first reading arrives (`look_up`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping

from packproof.crypto import DeviceVerifier
from packproof.edge.decode import DeviceEntry
from packproof.edge.thresholds import Profile
from packproof.reading import DEFAULT_PROFILE
from packproof.records import DeviceRecord
from packproof.store import Store

log = logging.getLogger(__name__)

MISSING_MAX = 10000  # unknown ids remembered; a flood of made-up ids must not grow memory


class RegistryCache:
    """Registered devices as `decode` needs them (`entries`), kept in step with the store."""

    def __init__(self, store: Store, profiles: Mapping[str, Profile]) -> None:
        self.store = store
        self.profiles = profiles
        self.entries: dict[str, DeviceEntry] = {}
        self._checked = 0.0  # monotonic time of the last look at the store's change counter
        self._version = -1
        self._missing: dict[str, float] = {}  # unknown device id -> when we last asked the store

    async def reload(self) -> None:
        self.entries = {d.device_id: self.entry(d) for d in await self.store.devices()}

    def entry(self, d: DeviceRecord) -> DeviceEntry:
        profile = self.profiles.get(d.profile)
        if profile is None:
            log.error("shipment %s names unknown profile %r; using %s", d.shipment_id, d.profile, DEFAULT_PROFILE)
            profile = self.profiles[DEFAULT_PROFILE]
        verifiers = [(start, DeviceVerifier(k) if k is not None else None) for start, k in d.keys]
        if not verifiers:
            verifiers = [(0, DeviceVerifier(d.public_key) if d.public_key is not None else None)]
        current_from, current = verifiers[-1]
        return DeviceEntry(d.shipment_id, current, profile, tuple(verifiers[:-1]), d.revoked, current_from)

    async def refresh(self) -> None:
        """Rotations and revocations made by `packproof devices` apply within a second."""
        now = time.monotonic()
        if now - self._checked < 1.0:
            return
        self._checked = now
        changes = await self.store.registry_changes()
        if changes != self._version:
            self._version = changes
            await self.reload()

    async def look_up(self, device_ids: Iterable[str]) -> None:
        """Devices registered since we started: ask the store, each id at most once a second."""
        now = time.monotonic()
        for device_id in set(device_ids):
            if device_id in self.entries or now - self._missing.get(device_id, -2.0) < 1.0:
                continue
            d = await self.store.device(device_id)
            if d is None:
                self._missing[device_id] = now
                if len(self._missing) > MISSING_MAX:
                    self._missing.clear()
                continue
            self._missing.pop(device_id, None)
            self.entries[device_id] = self.entry(d)
