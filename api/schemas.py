"""Response models: one per use, so the OpenAPI document at /docs says what comes back."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

# Worst last: a pack's status is the worst that applies (api.condition.worst).
Status = Literal["ok", "warning", "no-data", "incomplete", "violated", "disputed"]


class ShipmentSummary(BaseModel):
    shipment_id: str
    profile: str
    devices: int


class ShipmentList(BaseModel):
    shipments: list[ShipmentSummary]
    next_offset: int | None


class CustodyChange(BaseModel):
    """Custody of a pack changing hands: a new owner or a new carrier, from this event on."""

    role: Literal["owner", "carrier"]
    party: str
    event_id: str
    ts: str


class ExcursionCustody(BaseModel):
    """Who was responsible for the pack when an excursion happened, from its accepted custody events.

    A carrier is the party physically carrying the pack (from its pick-up or the handover to it);
    an excursion within the handover window (`api.handover_window_s`) of a change of hands names
    both sides, earlier first.
    """

    pack: str  # the serial whose `pack-registered` names the excursion's device as its tracker
    owners: list[str]  # at its start
    carriers: list[str]  # at its start; empty: at a site, no carrier had it
    changes: list[CustodyChange]  # changes of hands after its start, up to its end


class ExcursionOut(BaseModel):
    id: int
    device_id: str
    test: str
    quantity: str
    severity: Literal["violation", "warning"]
    start: str
    end: str
    start_seq: int
    end_seq: int
    peak: float
    limit: float
    limit_crossed: str
    readings: int
    open: bool
    custody: ExcursionCustody | None = None  # None: no registered pack names this device as its tracker


class DisputeOut(BaseModel):
    """Two versions of one reading: the stored one and the one kept in quarantine."""

    reading_id: str | None  # None when the quarantined body names no seq
    stored: str | None  # path of the stored version: GET it for the reading (and /proof for its proof)
    quarantine_id: int
    quarantined: str  # path of a /quarantine page holding just the other version


class PackCondition(BaseModel):
    device_id: str
    status: Status
    stale: bool
    trust: Literal["device-signature", "ingestor"]
    readings: int
    sealed: int
    first_seq: int | None
    last_seq: int | None
    last_reading_ts: str | None
    last_seen: str | None
    acked_seq: int | None  # every seq from the device's first (normally 0) up to here is stored
    missing: int  # seqs between acked_seq and last_seq not received: a gap, not silence
    gaps: list[tuple[int, int]]  # the lowest 16 missing ranges (inclusive), as on the device's ack topic
    unsealed: int  # stored but not in a block yet
    disputed: int  # readings that arrived in two different versions (conflicting_reading)
    disputes: list[DisputeOut]  # the newest of them


class Condition(BaseModel):
    shipment_id: str
    profile: str
    status: Status
    stale_packs: list[str]
    readings: int
    sealed: int
    missing: int
    unsealed: int
    disputed: int
    packs: list[PackCondition]
    excursions: list[ExcursionOut]
    as_of: str


class ShipmentDetail(BaseModel):
    shipment_id: str
    profile: str
    devices: list[str]


class ReadingOut(BaseModel):
    reading_id: str
    reading: dict[str, Any]
    received_at: str
    block_height: int | None
    leaf_index: int | None


class ReadingPage(BaseModel):
    readings: list[ReadingOut]
    next_after: int | None


class BlockOut(BaseModel):
    header: dict[str, Any]
    hash: str
    signature: str


class LedgerHead(BaseModel):
    height: int | None
    hash: str | None
    ledger_public_key: str
    key_id: str


class BlockPage(BaseModel):
    blocks: list[BlockOut]
    next_start: int | None


class DiskFullOut(BaseModel):
    component: str  # the writer that cannot write: ingestor, sealer, simulator buffer
    since: str  # RFC 3339, its first failed write of this episode
    error: str  # its latest error, as the driver or the OS said it


class Health(BaseModel):
    """`ok`; `ledger-broken` when the ledger file does not continue the chain the store records
    (sealing stopped; `problem` says how); `disk full` while a writer of this process waits for
    space (intake paused, reads work, it resumes by itself); `degraded` when a component reports
    it cannot do its job (packproof.health). `problems` says which and why, in sentences."""
    status: Literal["ok", "degraded", "disk full", "ledger-broken"]
    readings: int
    blocks: int
    problem: str | None = None  # the ledger's break, when the status is "ledger-broken"
    problems: list[str] = Field(default_factory=list)
    components: dict[str, dict[str, Any]] = Field(default_factory=dict)
    disk_full: list[DiskFullOut] = Field(default_factory=list)


class QuarantinedOut(BaseModel):
    id: int
    received_at: str
    topic: str
    device_id: str | None
    shipment_id: str | None
    reason_code: str
    reason: str
    payload_text: str | None  # the payload as kept, when it is UTF-8 (a cut may end mid-character: then None)
    payload_b64: str
    payload_size: int  # bytes stored for this row
    payload_truncated: bool  # only the first 4 KiB of the stored bytes are shown


class QuarantinePage(BaseModel):
    items: list[QuarantinedOut]
    next_before: int | None


class AnchorOut(BaseModel):
    """One anchor of a checkpoint on an Ethereum chain (issue 17), as the anchoring loop last saw it."""

    id: int
    size: int  # the checkpoint's log size
    root: str  # its RFC 6962 root, hex
    note_hash: str  # SHA-256 of its signed note, hex
    status: Literal["pending", "mined", "confirmed", "failed", "replaced"]
    confirmations: int | None  # head - block + 1 at the loop's last look (`head`); None while not mined
    chain_id: int
    contract: str
    tx_hash: str
    nonce: int
    sends: int
    sent_at: str
    block_number: int | None
    block_hash: str | None
    block_time: str | None
    gas_used: int | None
    max_fee_per_gas: int
    max_priority_fee_per_gas: int
    error: str | None
    updated_at: str


class AnchorPage(BaseModel):
    items: list[AnchorOut]
    head: int | None  # the chain's head block at the anchoring loop's last look (None: it never looked)
    head_seen_at: str | None
    next_before: int | None
class BandOut(BaseModel):
    label: str
    value: float
    severity: Literal["violation", "warning"]
    side: Literal["above", "below"]  # where a value is beyond the line


class SeriesOut(BaseModel):
    """One quantity of one pack, downsampled with LTTB (packproof/lttb.py) to at most `points`."""

    shipment_id: str
    device_id: str
    pack: str | None  # the serial of the pack this device tracks (custody), None when none is registered
    profile: str
    quantity: str
    unit: str
    total: int  # readings stored for the device
    points: int  # points in this answer: min(asked, total)
    seq: list[int]
    t: list[float]  # device time, seconds since the epoch
    y: list[float]
    limit: list[float] | None  # vibration only: the T.3 limit at each point's frequency
    bands: list[BandOut]


class TrackOut(BaseModel):
    """A pack's route: its located readings, thinned evenly to at most `points` (the ends kept)."""

    shipment_id: str
    device_id: str
    total: int
    points: int
    seq: list[int]
    t: list[float]
    lat: list[float]
    lon: list[float]
