"""A certificate assembled from the store: the one place a certificate is built (CLI and API call it).

It binds to the largest checkpoint witnesses cosigned (else the latest the log signed): every
reading of the pack inside that checkpoint is carried and proven by one multi-leaf inclusion proof,
with the device's key records and the pack's custody event records; readings stored after it are
counted as `unsealed`. The claims are `claims.claims_of` over exactly the carried readings. The
confirmed on-chain anchor covering that checkpoint (issue 17), when the store has one, is carried with
the RFC 6962 consistency proof that links them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from packproof.anchor.custody_proof import parse_party_key_record
from packproof.anchor.proof import parse_key_record
from packproof.api.certificate.claims import VERDICTS, Claims, Inputs, claims_of
from packproof.api.certificate.document import (
    FORMAT,
    CertificateAnchor,
    Evidence,
    LogEvidence,
    PackCertificate,
    ShipmentCertificate,
    Subject,
    pack_hashes,
    pack_readings,
    runs_of,
)
from packproof.api.condition import DEFAULT_HANDOVER_WINDOW_S
from packproof.crypto import b64
from packproof.custody import HandedOver, parse_event
from packproof.edge.thresholds import BUILTIN_PROFILES, Profile
from packproof.errors import PackproofError
from packproof.parties import PARTIES
from packproof.reading import Reading
from packproof.records import CheckpointRecord
from packproof.store import Store
from packproof.timefmt import rfc3339


class NoCertificate(PackproofError):
    """Nothing to certify yet: unknown pack or shipment (HTTP 404), or no signed checkpoint (HTTP 409)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


async def pack_certificate(store: Store, device_id: str, ledger_key: bytes, now: float,
                           profiles: Mapping[str, Profile] | None = None,
                           handover_window_s: float = DEFAULT_HANDOVER_WINDOW_S) -> PackCertificate:
    """The certificate of the pack tracked by `device_id` (or of the pack with that serial: its tracker's);
    `ledger_key`: the public key the log's checkpoints are signed with (named in the certificate so the
    verifier can open it; pin it there)."""
    profiles = profiles or BUILTIN_PROFILES
    device = await store.device(device_id)
    if device is None and (tracker := await store.tracker_of(device_id)) is not None:
        device_id, device = tracker, await store.device(tracker)
    if device is None:
        raise NoCertificate(f"pack {device_id!r}: no device with that id is registered, and no pack with that "
                            "serial names a tracker", 404)
    shipment = await store.shipment(device.shipment_id)
    assert shipment is not None  # a device's shipment is registered first (foreign key)
    profile = profiles.get(shipment.profile)
    if profile is None:
        raise NoCertificate(f"pack {device_id!r}: its shipment's profile {shipment.profile!r} is not one this "
                            f"server knows ({', '.join(sorted(profiles))})", 409)
    checkpoint = await store.latest_cosigned_checkpoint() or await store.latest_checkpoint()
    if checkpoint is None:
        raise NoCertificate("the log has signed no checkpoint yet; try again when the sealer has sealed a block", 409)
    size = checkpoint.size

    rows = await store.device_readings(device_id)
    registry = [r for r in await store.registry_records(device_id) if parse_key_record(r.body) is not None]
    tracked = (await store.custody_of_trackers([device_id])).get(device_id)
    custody_records = (await store.pack_custody(tracked.serial)).events if tracked else ()
    custody_ids = [e.leaf_id for e in custody_records]
    where = await store.log_indices([r.id for r in rows] + [r.id for r in registry] + custody_ids)
    inside = [r for r in rows if where.get(r.id, size) < size]
    registry = [r for r in registry if where.get(r.id, size) < size]
    custody_ids = [i for i in custody_ids if where.get(i, size) < size]
    if not registry:
        raise NoCertificate(f"pack {device_id!r}: its registration is not sealed into the log yet; try again when "
                            "the sealer has sealed a block", 409)
    custody_leaves = await store.leaf_bodies(custody_ids)
    events = [parse_event(e.body) for e in custody_records if e.leaf_id in custody_leaves]
    signers = {e.actor for e in events} | {e.to for e in events if isinstance(e, HandedOver)}
    party_rows = [r for r in await store.records(PARTIES)
                  if (pk := parse_party_key_record(r.body)) is not None and pk.party_id in signers]
    where |= await store.log_indices([r.id for r in party_rows])
    party_rows = [r for r in party_rows if where.get(r.id, size) < size]

    reading_idx = [where[r.id] for r in inside]
    all_idx = sorted([*reading_idx, *(where[r.id] for r in registry), *(where[i] for i in custody_ids),
                      *(where[r.id] for r in party_rows)])
    proof = await store.log_multi_inclusion(all_idx, size) if all_idx else []

    first_registered = min((k.valid_from_seq for r in registry if (k := parse_key_record(r.body))), default=0)

    def compute() -> Claims:  # CPU-bound (seconds at 100,000 readings): off the event loop
        readings = [Reading.model_validate_json(r.body) for r in inside]
        return claims_of(Inputs(device_id=device_id, shipment_id=device.shipment_id, profile=profile,
                                readings=readings, first_registered_seq=first_registered, custody=events,
                                handover_window_s=handover_window_s, unsealed=len(rows) - len(inside)))

    claims = await asyncio.to_thread(compute)
    evidence = Evidence(
        profile=profile, readings=pack_readings([r.body for r in inside]),
        registry=[r.body.decode() for r in registry], custody=[custody_leaves[i].decode() for i in custody_ids],
        parties=[r.body.decode() for r in party_rows],
        handover_window_s=handover_window_s, unsealed=len(rows) - len(inside),
        log=LogEvidence(checkpoint=await store.cosigned_note(checkpoint), ledger_public_key=b64(ledger_key),
                        reading_runs=runs_of(reading_idx), registry_indices=[where[r.id] for r in registry],
                        custody_indices=[where[i] for i in custody_ids],
                        party_indices=[where[r.id] for r in party_rows], proof=pack_hashes(proof)))
    return PackCertificate(format=FORMAT, kind="pack", issued_at=rfc3339(now),
                           subject=Subject(device_id=device_id, shipment_id=device.shipment_id,
                                           serial=claims.custody.serial),
                           claims=claims, evidence=evidence, anchor=await anchor_of(store, checkpoint))


async def anchor_of(store: Store, checkpoint: CheckpointRecord) -> CertificateAnchor | None:
    """The confirmed anchor covering `checkpoint` (the same size, or the smallest later one with the
    consistency proof from the checkpoint to it, made from the stored tiles as GET /log/consistency
    makes it); None while none is confirmed."""
    row = await store.confirmed_anchor_covering(checkpoint.size)
    if row is None or row.block_number is None or row.block_time is None:
        return None
    proof = await store.consistency_proof(checkpoint.size, row.size) if row.size > checkpoint.size else []
    return CertificateAnchor(chain_id=row.chain_id, contract=row.contract, size=row.size, root=row.root.hex(),
                             note_hash=row.note_hash.hex(), tx_hash="0x" + row.tx_hash.hex(),
                             block_number=row.block_number, block_time=rfc3339(row.block_time),
                             consistency=[b64(h) for h in proof])


async def shipment_certificate(store: Store, shipment_id: str, ledger_key: bytes, now: float,
                               profiles: Mapping[str, Profile] | None = None,
                               handover_window_s: float = DEFAULT_HANDOVER_WINDOW_S) -> ShipmentCertificate:
    shipment = await store.shipment(shipment_id)
    if shipment is None:
        raise NoCertificate(f"shipment {shipment_id!r} is not registered", 404)
    packs = [await pack_certificate(store, d.device_id, ledger_key, now, profiles, handover_window_s)
             for d in await store.shipment_devices(shipment.shipment_id)]
    return ShipmentCertificate(format=FORMAT, kind="shipment", issued_at=rfc3339(now),
                               shipment_id=shipment.shipment_id,
                               verdict=max((p.claims.overall.verdict for p in packs), key=VERDICTS.index,
                                           default="inspect before use"),
                               packs=packs)
