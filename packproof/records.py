"""The typed records that cross the store boundary: what `packproof.store.Store` returns and takes.

Named fields, never positions (`row.leaf_hash`, not `r[2]`): a reader of the sealer, the
ingestor or an API route sees what each value is, and a column added to a query cannot shift
another one's meaning. Records are frozen where nothing changes them after they are read.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple, Protocol


class _ValidFrom(Protocol):
    @property
    def valid_from_seq(self) -> int: ...


def key_index_at(keys: Sequence[_ValidFrom], seq: int) -> int | None:
    """Which of `keys` (a device's or a party's key history, in the order it was written) signs `seq`.

    The one home of the rule: the key valid from the highest seq at or below `seq` (of two valid
    from the same seq, the later written). Older events keep the key they were signed with.
    None: no key was valid yet.
    """
    found: int | None = None
    for i, k in enumerate(keys):
        if k.valid_from_seq <= seq and (found is None or k.valid_from_seq >= keys[found].valid_from_seq):
            found = i
    return found


class DeviceKey(NamedTuple):
    """One step of a device's key history: the key its readings from `valid_from_seq` on are signed with.

    Read by name; a NamedTuple rather than a dataclass so that a history still unpacks as
    `(start, key)` pairs where the ingestor builds its verifiers, and compares equal to them.
    """

    valid_from_seq: int
    public_key: bytes | None  # None: the device signs nothing from this seq on


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    device_id: str
    shipment_id: str
    public_key: bytes | None  # the current key; None: a tracker that cannot sign (trust begins at the ingestor)
    profile: str
    keys: tuple[DeviceKey, ...] = ()  # oldest first
    revoked: bool = False

    def key_at(self, seq: int) -> bytes | None:
        """The key valid for reading `seq`: readings from before a rotation keep their old key."""
        i = key_index_at(self.keys, seq)
        return self.keys[i].public_key if i is not None else self.public_key


@dataclass(frozen=True, slots=True)
class PartyKey:
    """One step of a party's key history: the key its custody events from `valid_from_seq` on are signed with.

    A party's events are numbered per party, densely from 1 (`{party}:{seq}`, packproof/custody.py),
    so a rotation names the first event seq the new key signs and older events keep their key.
    """

    valid_from_seq: int
    public_key: bytes  # raw Ed25519, 32 bytes; a party always signs


def keys_text(keys: Iterable[DeviceKey | PartyKey]) -> str:
    """A key history as the audit names it when a table and its sealed records disagree."""
    return ", ".join(f"from seq {k.valid_from_seq}: "
                     + (k.public_key.hex()[:16] + ".." if k.public_key else "unsigned") for k in keys)



@dataclass(frozen=True, slots=True)
class PartyRecord:
    """A custody party (issue 15): an organisation with roles and an Ed25519 key history.

    The registry's `parties` and `party_keys` rows as the store returns them, and (replayed from
    the sealed `~parties` leaves by `packproof.parties.sealed_parties`) as an auditor rebuilds them.
    """

    party_id: str
    name: str
    roles: frozenset[str]
    keys: tuple[PartyKey, ...]  # oldest first
    added_at: float
    revoked_at: float | None = None
    revoked_reason: str | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def key_at(self, seq: int) -> bytes | None:
        """The key valid for the party's event `seq`: the latest one valid from a seq at or below it."""
        i = key_index_at(self.keys, seq)
        return self.keys[i].public_key if i is not None else None


@dataclass(frozen=True, slots=True)
class Dispute:
    """A second, different version of a stored reading, kept in quarantine as `conflicting_reading`.

    Which version is true the store cannot say (for an unsigned tracker, anyone with its MQTT
    login could have sent the first): both stay reachable, the stored one by its reading id,
    the other by its quarantine row.
    """

    quarantine_id: int
    device_id: str
    seq: int | None  # read from the quarantined body; None if it cannot be


@dataclass(frozen=True, slots=True)
class Disputes:
    """A shipment's disputes: how many per device, and the newest of them."""

    counts: dict[str, int]
    recent: list[Dispute]


@dataclass(frozen=True, slots=True)
class SealRow:
    """A stored row as the sealer checks it before sealing: its leaf hash and its intake MAC.

    Not its bytes: the block seals the leaf the intake MACed; bytes edited since no longer
    hash to it, which the audit names.
    """

    id: int
    device_id: str
    leaf_hash: bytes
    intake_mac: bytes | None


@dataclass(frozen=True, slots=True)
class StoredRow:
    """A stored row with every column the body vouches for, as the audit compares them."""

    id: int
    device_id: str
    seq: int
    shipment_id: str
    ts: str
    body: bytes
    leaf_hash: bytes


@dataclass(frozen=True, slots=True)
class SeriesRow:
    """A device's reading as a chart reads it: its seq and body (Store.device_series)."""

    seq: int
    body: bytes


@dataclass(frozen=True, slots=True)
class QuarantineRow:
    id: int
    received_at: float
    topic: str
    payload: bytes
    reason_code: str
    reason: str
    device_id: str | None
    shipment_id: str | None


@dataclass(frozen=True, slots=True)
class BlockRecord:
    height: int
    hash: bytes
    first_id: int
    last_id: int
    leaf_count: int
    header: str  # canonical JSON text of the header, exactly as hashed
    signature: str


@dataclass(frozen=True, slots=True)
class LeafPlace:
    """Where a sealed leaf is: its block's height and its index in that block's tree (id - first_id).

    What a proof needs to find the leaf's audit path; `Store.locate` answers it per store id.
    """

    height: int
    index: int


@dataclass(frozen=True, slots=True)
class RegistryLeaf:
    """A registry record leaf as stored: its store id (to locate its block) and its canonical JSON.

    A proof bundle carries the one that gives a device its key at a reading's seq, so it is read
    by the bytes that were sealed, not rebuilt from the registry tables.
    """

    id: int
    body: bytes


@dataclass(frozen=True, slots=True)
class ShipmentRecord:
    """A registered shipment: the profile its packs are judged by (UN 38.3 envelope), since when."""

    shipment_id: str
    profile: str
    created_at: float


@dataclass(frozen=True, slots=True)
class ShipmentListing:
    """A shipment as `/shipments` lists it: the registry's row and how many devices travel with it."""

    shipment_id: str
    profile: str
    created_at: float
    device_count: int


@dataclass(frozen=True, slots=True)
class DeviceStats:
    """A registered device of a shipment with its delivery aggregates (`device_stats`), as a condition reads them.

    Every aggregate is None until the device's first reading is stored: "nothing heard" must
    stay distinguishable from "heard, all fine" (the `no-data` status).
    """

    device_id: str
    signed: bool  # registered with a public key: its readings are device-signed, not trusted from the ingestor
    readings: int | None
    sealed: int | None
    first_seq: int | None
    last_seq: int | None
    first_ts: str | None
    last_ts: str | None
    last_received_at: float | None
    acked_seq: int | None  # every seq up to it is stored
    missing: int | None
    gaps_json: str | None  # the seq ranges not received above acked_seq, JSON [[from, to], ...] as stored


@dataclass(frozen=True, slots=True)
class ReadingRecord:
    """A stored reading as the API serves it: the body as received, when, and where it is sealed."""

    id: int
    body: bytes
    received_at: float
    place: LeafPlace | None  # None until a block seals it


@dataclass(frozen=True, slots=True)
class QuarantinePreview:
    """A quarantine row as a page of `/quarantine` shows it: the payload cut to the page's bound.

    Rows written before payloads were bounded can be megabytes; only the prefix is read, and
    `payload_size` says how long the whole one is.
    """

    id: int
    received_at: float
    topic: str
    payload: bytes  # the payload's first `payload_max` bytes
    reason_code: str
    reason: str
    device_id: str | None
    shipment_id: str | None
    payload_size: int

    @property
    def truncated(self) -> bool:
        return self.payload_size > len(self.payload)


@dataclass(slots=True)
class ReadingRow:
    """A checked reading to store: the `readings` row without the id and MAC the store gives it.

    Not frozen: one is built for every reading on the ingest hot path, and a frozen dataclass's
    __init__ costs about twice as much (object.__setattr__ per field).
    """

    device_id: str
    seq: int
    shipment_id: str
    ts: str
    received_at: float
    body: bytes  # the canonical bytes: the Merkle leaf's content
    leaf_hash: bytes


@dataclass(frozen=True, slots=True)
class Refusal:
    """A payload to quarantine: the `quarantine` row before the store numbers it (`QuarantineRow` after)."""

    received_at: float
    topic: str
    payload: bytes  # all of it, or what `packproof.store.kept_evidence` keeps of a large one
    reason_code: str
    reason: str
    device_id: str | None  # from the topic; None if the topic names none
    shipment_id: str | None


@dataclass(slots=True)
class DeviceBatchStats:
    """One device's share of an ingest batch, merged into its `device_stats` row by the store.

    Counts and seq/ts bounds are the batch's own (the store keeps the wider of old and new);
    `acked_seq`, `missing` and `gaps` are the delivery state after the batch and replace the
    stored ones. Mutable: the ingestor widens it reading by reading.
    """

    device_id: str
    shipment_id: str
    reading_count: int
    first_seq: int
    last_seq: int
    first_ts: str
    last_ts: str
    last_received_at: float
    acked_seq: int = -1
    missing: int = 0
    gaps: str = "[]"  # every missing [lo, hi] below last_seq, as JSON (packproof.watermark.gaps_json)


@dataclass(frozen=True, slots=True)
class DeliveryState:
    """A device's delivery state as stored: every seq up to `acked_seq` is stored, none above `highest`;
    `gaps` lists every missing inclusive range between (packproof.watermark restores from it)."""

    acked_seq: int
    highest: int
    gaps: tuple[tuple[int, int], ...] = ()


@dataclass(slots=True)
class IngestBatch:
    """Everything one ingest transaction writes; built by the ingestor, written at once."""

    readings: list[ReadingRow] = field(default_factory=list)
    quarantine: list[Refusal] = field(default_factory=list)
    stats: list[DeviceBatchStats] = field(default_factory=list)
    excursions: list[Excursion] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n


@dataclass(slots=True)
class Excursion:
    """A run of consecutive readings of one device for one test with the same finding (docs/design.md).

    One vocabulary from the tracker (edge/excursions.py) through the store to the API and the CLI:
    `start`/`end` are the first and last readings' timestamps, `limit_crossed` names the limit in
    words, `readings` counts the run. The store's columns keep their older names (start_ts,
    limit_desc, ...); `Store` translates, in one place.
    """

    id: int
    device_id: str
    shipment_id: str
    test: str
    quantity: str
    severity: str
    start: str
    end: str
    start_seq: int
    end_seq: int
    peak: float
    limit: float
    limit_crossed: str
    readings: int
    open: bool

    def worse(self, value: float) -> bool:
        """Farther beyond the limit than the peak so far? Below-limit findings grow downwards."""
        return value < self.peak if self.peak < self.limit else value > self.peak


# ---- custody ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CustodyStep:
    """One accepted custody event as it changed one pack: who owned and who carried the pack after it.

    A row of `custody_event_packs` joined to its event: the per-pack history the condition
    report attributes excursions from, without parsing event bodies.
    """

    serial: str
    position: int  # 1, 2, ... in the pack's hash chain
    event_id: str
    kind: str
    ts: str  # the event's own `ts` (RFC 3339 UTC)
    actor: str
    owner: str | None  # after the event
    transporter: str | None  # the carrier the owner assigned, after the event
    holder: str | None  # who physically has it after the event (a site's party, a carrier, the receiver)


@dataclass(frozen=True, slots=True)
class CustodyEventRecord:
    """An accepted custody event as stored: its canonical bytes, hash, and where its record leaf is."""

    event_id: str
    actor: str
    seq: int
    kind: str
    ts: str
    hash: bytes
    body: bytes  # the signed event, canonical JSON
    leaf_id: int  # the store id of its `~custody` record leaf
    shipment_id: str | None
    place: LeafPlace | None = None  # where the leaf is sealed; None until a block seals it
    received_at: float | None = None  # when this store accepted it (epoch s): beside `ts`, what its party claims


@dataclass(frozen=True, slots=True)
class PackCustody:
    """A pack's custody history: its steps (who owned and carried it after each event) and the events, oldest first."""

    steps: tuple[CustodyStep, ...]
    events: tuple[CustodyEventRecord, ...]


@dataclass(frozen=True, slots=True)
class TrackedPack:
    """The pack a tracker (device) rides on, and that pack's accepted events' bodies in chain order."""

    serial: str
    bodies: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class TrackerClaim:
    """What the store knows of a device named as a pack's `tracker`: the shipment it is registered to
    (None: no such device) and the packs already naming it."""

    device_id: str
    shipment_id: str | None
    packs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CustodyHead:
    """One item's row of `custody_packs` as the audit compares it: its count of events, head hash, state."""

    position: int
    head: bytes
    state: str


@dataclass(frozen=True, slots=True)
class CustodyRefusedRow:
    """A refused custody event, kept with its reason like a quarantined reading."""

    id: int
    received_at: float
    body: bytes  # what was posted (at most packproof.store.QUARANTINE_KEEP bytes of it)
    code: str
    reason: str
    actor: str | None
    event_id: str | None

# ---- the transparency log (issue 16) --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CheckpointRecord:
    """A signed C2SP checkpoint of the log as stored: its size, root, the signed note's text, when."""

    size: int
    root: bytes
    note: str
    signed_at: float


@dataclass(frozen=True, slots=True)
class LogBlock:
    """Where a block's leaves sit in the log: log indices `end - leaf_count .. end - 1`."""

    height: int
    end: int  # the log's size after this block


@dataclass(frozen=True, slots=True)
class LogUpdate:
    """What one store transaction adds to the log: the blocks it places, the tiles that changed
    (newest version, keyed by (level, index)), and the checkpoint signed over the new size, if any."""

    blocks: tuple[LogBlock, ...]
    tiles: dict[tuple[int, int], bytes]
    checkpoint: CheckpointRecord | None = None


# ---- anchors on an Ethereum chain (issue 17) ------------------------------------------------


class AnchorState(StrEnum):
    """An anchor's states; which event leads where is packproof.anchor.anchor_state (a pure machine)."""

    PENDING = "pending"
    MINED = "mined"
    CONFIRMED = "confirmed"
    FAILED = "failed"
    REPLACED = "replaced"


@dataclass(frozen=True, slots=True)
class AnchorSent:
    """An anchor transaction just sent: what it anchors, and the transaction (EIP-1559 fees in wei)."""

    chain_id: int
    contract: str  # 0x + 40 hex, checksummed
    size: int
    root: bytes
    note_hash: bytes
    tx_hash: bytes
    nonce: int
    max_fee_per_gas: int
    max_priority_fee_per_gas: int
    sent_at: float


@dataclass(frozen=True, slots=True)
class AnchorMined:
    """Where an anchor transaction's receipt puts it."""

    block_number: int
    block_hash: bytes
    block_time: int
    gas_used: int


@dataclass(frozen=True, slots=True)
class AnchorRow:
    """One anchor as the store keeps it (table `anchors`). The block fields are None while pending
    (and again after a reorg took its block away)."""

    id: int
    chain_id: int
    contract: str
    size: int
    root: bytes
    note_hash: bytes
    tx_hash: bytes
    nonce: int
    max_fee_per_gas: int
    max_priority_fee_per_gas: int
    sent_at: float
    sends: int  # 1 + how many times it was resent (dropped, or its block reorganised away)
    block_number: int | None
    block_hash: bytes | None
    block_time: int | None
    gas_used: int | None
    status: AnchorState
    error: str | None  # why it failed or was replaced; the last resend's reason while pending
    updated_at: float

    @property
    def mined(self) -> AnchorMined | None:
        if self.block_number is None or self.block_hash is None or self.block_time is None or self.gas_used is None:
            return None
        return AnchorMined(self.block_number, self.block_hash, self.block_time, self.gas_used)
