"""A sealed store holding one tracked pack, quickly: its readings written as the ingestor writes them,
its custody journey accepted as POST /custody/events accepts it, every leaf sealed into the log.
For the certificate tests and benchmarks/certificate.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packproof.anchor.ledger import LedgerFile
from packproof.anchor.sealer import Sealer
from packproof.crypto import private_key_from_seed, public_key_bytes
from packproof.custody import countersign, sign_event
from packproof.intake import IntakeKey
from packproof.reading import Reading
from packproof.records import IngestBatch, ReadingRow
from packproof.rfc6962 import leaf_hash
from packproof.simulators.fleet import SimDevice, build_fleet, shipments_of
from packproof.store import Store
from packproof.timefmt import rfc3339
from tests.storeutil import write_batch

LEDGER_KEY = private_key_from_seed(b"certificate ledger")
LEDGER_PUBLIC = public_key_bytes(LEDGER_KEY)
INTAKE = IntakeKey(b"c" * 32)
T0 = 1_795_000_000.0
UN = {"report_id": "TR-2026-0815", "lab": "Battery Test Lab Torino", "date": "2026-03-02",
      "manual_revision": "Rev. 8", "results": {f"T{i}": "pass" for i in range(1, 9)}}
PARTIES = {"maker": "manufacturer", "road": "carrier", "plant": "receiver"}


@dataclass
class SealedPack:
    store: Store
    device: SimDevice
    serial: str
    sealer: Sealer


def key(party: str) -> Any:
    return private_key_from_seed(f"cert {party}".encode())


async def custody_journey(store: Store, device: SimDevice, serial: str, start: float, end: float,
                          un38_3: dict[str, Any] | None = None) -> None:
    from packproof.api.routes.custody import accept_event

    for party, role in PARTIES.items():
        await store.add_party(party, party.title(), [role], public_key_bytes(key(party)))
    head: str | None = None
    seqs: dict[str, int] = {}
    place = {"lat": 45.07, "lon": 7.68, "name": "Torino plant"}

    async def event(actor: str, kind: str, ts: float, counter: str | None = None, **fields: Any) -> None:
        nonlocal head
        seqs[actor] = seqs.get(actor, 0) + 1
        body = {"v": 1, "kind": kind, "event_id": f"{actor}:{seqs[actor]}", "actor": actor, "ts": rfc3339(ts),
                "packs": [serial], "location": place, "prev": {serial: head}, **fields}
        signed = sign_event(body, key(actor))
        if counter:
            signed = countersign(signed, key(counter))
        decision = await accept_event(store, json.dumps(signed).encode(), now=ts + 1)
        assert decision.event is not None, decision.reason
        head = decision.event.hash.hex() if isinstance(decision.event.hash, bytes) else decision.event.hash

    await event("maker", "pack-registered", start - 120, serial=serial, model="PX-80", chemistry="NMC811",
                rated_wh=80000.5, mass_kg=512.25, un38_3=un38_3 or UN, profile="un38.3-cell", cell_lots=[],
                tracker=device.device_id, shipment_id=device.shipment_id)
    await event("maker", "transporter-assigned", start - 60, transporter="road", consignee="plant",
                shipment_id=device.shipment_id)
    await event("road", "picked-up", start - 30, shipment_id=device.shipment_id)
    await event("road", "delivered", end + 30, to="plant", shipment_id=device.shipment_id)


async def sealed_pack(url: str, tmp: Path, n: int, scenario: str = "nominal-road", *, custody: bool = True,
                      edit: Callable[[int, Reading], Reading | None] | None = None, seed: int = 3,
                      step_s: float = 60.0, max_leaves: int = 4096, others: int = 0) -> SealedPack:
    """A pack with readings seq 0..n-1 (`edit` may change one or drop it: None), sealed; with `others`
    packs of another shipment whose readings arrive interleaved with its own (a fleet's log)."""
    store = await Store.open(url, intake_key=INTAKE)
    d = build_fleet(shipments=1, packs=1, scenario=scenario, seed=seed, step_s=step_s)[0]
    await store.register(shipments_of([d]), [(d.device_id, d.shipment_id, d.public_key)])
    serial = f"PK-{d.device_id}"
    if custody:
        await custody_journey(store, d, serial, T0, T0 + n * step_s)
    fleet = build_fleet(shipments=1, packs=others, scenario="nominal-road", seed=seed + 100) if others else []
    if fleet:
        await store.register(shipments_of(fleet), [(o.device_id, o.shipment_id, o.public_key) for o in fleet])
    batch = IngestBatch()
    for i in range(n):
        for o in fleet:
            other = o.reading(T0 + i * step_s)
            batch.readings.append(ReadingRow(o.device_id, i, o.shipment_id, rfc3339(T0 + i * step_s),
                                             T0 + i * step_s, other, leaf_hash(other)))
        body = d.reading(T0 + i * step_s)
        if edit is not None:
            r = edit(i, Reading.model_validate_json(body))
            if r is None:
                continue
            from packproof.canonical import canonical_bytes, signing_bytes
            from packproof.crypto import b64

            assert d.key is not None
            r = r.model_copy(update={"sig": b64(d.key.sign(signing_bytes(r)))})
            body = canonical_bytes(r)
        batch.readings.append(ReadingRow(d.device_id, i, d.shipment_id, rfc3339(T0 + i * step_s), T0 + i * step_s,
                                         body, leaf_hash(body)))
        if len(batch.readings) >= 5000:
            await write_batch(store, batch)
            batch = IngestBatch()
    if batch.readings:
        await write_batch(store, batch)
    sealer = Sealer(store, LedgerFile(tmp / "ledger.jsonl"), LEDGER_KEY, max_leaves=max_leaves)
    await sealer.recover()
    while await sealer.seal_once() is not None:
        pass
    return SealedPack(store, d, serial, sealer)
