"""The certificate format, `packproof-certificate/1` (docs/design.md, "Certificates").

    {"format": "packproof-certificate/1", "kind": "pack", "issued_at", "subject": {device_id, shipment_id, serial},
     "claims":   {...}                       what it states (claims.py), recomputed by the verifier
     "evidence": {"profile": {...},           the UN 38.3 envelope the readings are judged by
                  "readings": {"encoding": "jsonl+gzip+base64", "count", "sha256", "data"},
                  "registry": [LEAF, ...],     the device's sealed key records
                  "custody":  [LEAF, ...],     the pack's sealed custody event records, chain order
                  "parties":  [LEAF, ...],     the sealed key records of the parties who signed them
                  "handover_window_s", "unsealed",
                  "log": {"checkpoint": NOTE,  C2SP signed note, witness cosignature lines included
                          "ledger_public_key",
                          "reading_runs": [[first index, count], ...],  log index of each reading, by seq
                          "registry_indices", "custody_indices", "party_indices",
                          "proof": base64}}    one multi-leaf proof: the subtree roots, 32 bytes each
     "anchor": null | {"chain_id", "contract", "size", "root", "note_hash", "tx_hash", "block_number",
                       "block_time", "consistency": [base64, ...]}}
                                             the confirmed on-chain anchor (issue 17) covering the checkpoint:
                                             at its size, or the smallest later one with the RFC 6962
                                             consistency proof from the checkpoint's size to the anchor's;
                                             null while none is confirmed ("not anchored yet")

The readings are their canonical RFC 8785 bytes (exactly the log's leaves, so the verifier hashes
them as they are), one per line in rising seq order, gzip-compressed (RFC 1952, mtime 0) and
base64-encoded: a device signature is 64 random bytes, so bytes per reading stay near a hundred.
A shipment's certificate (`kind: "shipment"`) is its packs' certificates in one document.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
from typing import Annotated, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from packproof.api.certificate.claims import Claims, Verdict
from packproof.edge.thresholds import Profile
from packproof.reading import Reading

FORMAT = "packproof-certificate/1"
ENCODING = "jsonl+gzip+base64"
MAX_CERTIFICATE_BYTES = 1 << 30

_STRICT = ConfigDict(extra="forbid", frozen=True)


class Subject(BaseModel):
    model_config = _STRICT
    device_id: str
    shipment_id: str
    serial: str | None


class PackedReadings(BaseModel):
    model_config = _STRICT
    encoding: Literal["jsonl+gzip+base64"]
    count: Annotated[int, Field(ge=0)]
    sha256: str  # of the uncompressed lines
    data: str


class LogEvidence(BaseModel):
    model_config = _STRICT
    checkpoint: str
    ledger_public_key: str
    reading_runs: list[tuple[int, int]]
    registry_indices: list[int]
    custody_indices: list[int]
    party_indices: list[int]
    proof: str


class Evidence(BaseModel):
    model_config = _STRICT
    profile: Profile
    readings: PackedReadings
    registry: list[str]
    custody: list[str]
    parties: list[str]  # the sealed key records of the parties that signed the custody events
    handover_window_s: float
    unsealed: Annotated[int, Field(ge=0)]
    log: LogEvidence


class CertificateAnchor(BaseModel):
    """The anchor as the store recorded it once confirmed; `root`, `note_hash`, `tx_hash` in hex, the
    `consistency` hashes in base64 (empty at the same size). Offline the root is checked against the
    checkpoint through the proof; `verify --eth-rpc` checks size and root against the contract."""

    model_config = _STRICT
    chain_id: int
    contract: str
    size: Annotated[int, Field(ge=1)]
    root: str
    note_hash: str
    tx_hash: str
    block_number: Annotated[int, Field(ge=0)]
    block_time: str  # RFC 3339, the anchor block's timestamp
    consistency: list[str]


class PackCertificate(BaseModel):
    model_config = _STRICT
    format: Literal["packproof-certificate/1"]
    kind: Literal["pack"]
    issued_at: str
    subject: Subject
    claims: Claims
    evidence: Evidence
    anchor: CertificateAnchor | None


class ShipmentCertificate(BaseModel):
    model_config = _STRICT
    format: Literal["packproof-certificate/1"]
    kind: Literal["shipment"]
    issued_at: str
    shipment_id: str
    verdict: Verdict  # the worst of its packs'
    packs: list[PackCertificate]


Certificate = PackCertificate | ShipmentCertificate


def pack_readings(bodies: list[bytes]) -> PackedReadings:
    raw = b"\n".join(bodies)
    return PackedReadings(encoding=ENCODING, count=len(bodies), sha256=hashlib.sha256(raw).hexdigest(),
                          data=base64.b64encode(gzip.compress(raw, 6, mtime=0)).decode())


def unpack_readings(packed: PackedReadings, limit: int = MAX_CERTIFICATE_BYTES) -> list[bytes]:
    """The reading bodies; ValueError naming what is wrong (not base64, not gzip, digest, count)."""
    try:
        raw = gzip.decompress(base64.b64decode(packed.data, validate=True))
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"evidence.readings.data is not base64 of gzip: {exc}") from None
    if len(raw) > limit:
        raise ValueError(f"evidence.readings unpack to more than {limit} bytes")
    digest = hashlib.sha256(raw).hexdigest()
    if digest != packed.sha256:
        raise ValueError(f"evidence.readings: the lines hash to {digest}, the certificate says {packed.sha256}")
    bodies = raw.split(b"\n") if raw else []
    if len(bodies) != packed.count:
        raise ValueError(f"evidence.readings: {len(bodies)} lines, the certificate says {packed.count}")
    return bodies


def runs_of(indices: list[int]) -> list[tuple[int, int]]:
    """[[first, count], ...]: consecutive rising indices as one run (a pack's readings sealed together)."""
    runs: list[tuple[int, int]] = []
    for i in indices:
        if runs and runs[-1][0] + runs[-1][1] == i:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((i, 1))
    return runs


def indices_of(runs: list[tuple[int, int]]) -> list[int]:
    return [first + k for first, count in runs for k in range(count)]


def pack_hashes(hashes: list[bytes]) -> str:
    return base64.b64encode(b"".join(hashes)).decode()


def unpack_hashes(text: str) -> list[bytes]:
    data = base64.b64decode(text, validate=True)
    if len(data) % 32:
        raise ValueError(f"evidence.log.proof holds {len(data)} bytes, not a whole number of 32-byte hashes")
    return [data[k:k + 32] for k in range(0, len(data), 32)]


def readings_of(cert: PackCertificate) -> list[Reading]:
    """The carried readings as values (for drawing; `verify.py` checks them one by one)."""
    return [Reading.model_validate_json(b) for b in unpack_readings(cert.evidence.readings)]


def anchor_summary(cert: PackCertificate) -> str:
    """The anchor as the HTML and the PDF print it beside the checkpoint."""
    a = cert.anchor
    if a is None:
        return "Chain anchor: not anchored yet (no confirmed on-chain anchor covered this checkpoint when issued)"
    how = "at the checkpoint's size" if not a.consistency else f"at size {a.size}, a consistency proof of " \
          f"{len(a.consistency)} hash(es) from the checkpoint"
    return (f"Chain anchor: chain id {a.chain_id}, contract {a.contract}, block {a.block_number} ({a.block_time}), "
            f"tx {a.tx_hash}, {how}; root {a.root}")


def parse_certificate(raw: bytes) -> Certificate:
    """A certificate file's bytes as a typed document; ValueError naming the field otherwise."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"the certificate is not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        got = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise ValueError(f"field format: expected {FORMAT!r}, got {str(got)[:40]!r}")
    model: type[PackCertificate] | type[ShipmentCertificate] = (
        ShipmentCertificate if doc.get("kind") == "shipment" else PackCertificate)
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        e = exc.errors()[0]
        where = ".".join(str(x) for x in e["loc"])
        raise ValueError(f"field {where}: {e['msg']}") from None
