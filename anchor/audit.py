"""Audit: recompute everything the ledger vouches for from the off-chain store, and what it implies.

For each block, in height order, the rows it covers (a dense id range) are read from the
store one block at a time (memory bounded by the largest block); each leaf hash is
recomputed from the stored bytes and the block's RFC 6962 root compared with the signed
ledger's; then the ledger's chain is checked link by link. Every problem is reported, not
only the first.

A sealed root proves bytes, but a reader takes more from a row: that its `device_id`,
`seq`, `shipment_id` and `ts` columns are the reading's, that its device signed it, that
the registry names the key the device really had, and that what was refused is still on
record. So, beyond the roots:

- each row's columns are checked against its body (a record leaf's against its kind; with
  `signatures=False`, a reading's by their place in its canonical text, without parsing);
- by default each reading's device signature is checked, with the key the *sealed*
  registry records give at its seq (`signatures=False` skips only this, the slow part:
  ~60 µs a reading, spread over a process per core on large stores);
- the registry table is compared with the sealed registry records: a swapped key is named;
- the quarantine table is compared with the sealed quarantine decisions: a deleted or
  edited quarantine row is named.
- the custody parties' tables are compared with their sealed `~parties` records (issue 15).
- the custody tables are compared with the sealed custody events (issue 15): each accepted
  event must be a sealed `~custody` leaf, byte for byte, and replaying the sealed events through
  the rules (packproof/edge/custody.py), interleaved with the sealed `~parties` records in the
  order both were sealed (anchor/custody_audit.py), must give each pack the state, head and
  history the tables hold: an edited, added or deleted event, an event sealed after its party's
  revocation or under a key not in force, or a pack's state changed by hand, is named.

- the transparency log (issue 16) is rebuilt from the recomputed leaf hashes, block after
  block: a v2 header's log_size and log_root, each block's place in the stored log, each
  checkpoint (its signature by the key that signed the block, under the log's origin, and its
  root) and, at the end, the root the stored tiles give are compared with it. The first block
  whose log_root is wrong is named; a checkpoint signing another root at a size (a split view), a
  rolled back or truncated log, a rewritten tile, are each reported.

A row's `received_at` is the ingestor's clock and nothing seals it; it is not checked.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from binascii import a2b_base64
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from packproof import tiles
from packproof.anchor.custody_audit import check_custody
from packproof.anchor.ledger import Block, LedgerFile, log_of, walk_chain
from packproof.anchor.logproof import open_log_checkpoint
from packproof.anchor.merkle import root_from_leaf_hashes
from packproof.anchor.note import VerifierKey
from packproof.canonical import canonical_bytes, signing_bytes
from packproof.crypto import signature_holds, unb64
from packproof.errors import LedgerIntegrityError, NoteError, ProofError, StoreError
from packproof.parties import KINDS as PARTY_KINDS
from packproof.parties import PARTIES, PartyReplay, party_problems
from packproof.reading import Reading
from packproof.records import DeviceKey, DeviceRecord, QuarantineRow, StoredRow, keys_text
from packproof.rfc6962 import EMPTY_ROOT, HASH_LEN, leaf_hash
from packproof.store import CUSTODY, QUARANTINE, REGISTRY, Store, quarantine_record

POOL_FROM = 50_000  # rows: below this, checking in this process beats starting verifier processes


@dataclass(slots=True)
class AuditReport:
    blocks: int = 0
    readings: int = 0
    unsealed: int = 0
    signatures: bool = True  # whether device signatures were checked
    quarantine_rows: int = 0
    chain: list[str] = field(default_factory=list)  # ledger problems, by height
    blocks_bad: list[tuple[int, str]] = field(default_factory=list)
    readings_bad: list[tuple[str, str]] = field(default_factory=list)
    uncovered: list[int] = field(default_factory=list)  # store ids no block covers
    covered_twice: list[int] = field(default_factory=list)
    registry: list[str] = field(default_factory=list)  # registry table vs sealed registry records
    quarantine: list[str] = field(default_factory=list)  # quarantine table vs sealed quarantine decisions
    parties: list[str] = field(default_factory=list)  # custody parties' tables vs their sealed records
    custody: list[str] = field(default_factory=list)  # custody tables vs the sealed custody events
    log: list[str] = field(default_factory=list)  # the stored transparency log vs the one the leaves give

    @property
    def ok(self) -> bool:
        return not (self.chain or self.blocks_bad or self.readings_bad or self.uncovered or self.covered_twice
                    or self.registry or self.quarantine or self.parties or self.custody or self.log)


@dataclass(frozen=True, slots=True)
class SealedDevice:
    """A device as the registry's record leaves describe it: the registry an auditor can trust."""

    device_id: str
    shipment_id: str
    keys: tuple[DeviceKey, ...]  # oldest first
    revoked: bool = False

    def key_at(self, seq: int) -> bytes | None:
        valid = [k.public_key for k in self.keys if k.valid_from_seq <= seq]
        return valid[-1] if valid else None


def sealed_registry(records: Iterable[StoredRow]) -> dict[str, SealedDevice]:
    """Replay the registry's record leaves, in store order, into each device's key history."""
    devices: dict[str, SealedDevice] = {}
    for row in records:
        rec = json.loads(row.body)
        kind, device_id = rec.get("record"), rec.get("device_id")
        key = unb64(rec["public_key"]) if rec.get("public_key") else None
        if kind == "device-registered":
            devices[device_id] = SealedDevice(device_id, rec["shipment_id"], (DeviceKey(0, key),))
        elif kind == "device-key-rotated" and device_id in devices:
            d = devices[device_id]
            rotated = DeviceKey(rec["valid_from_seq"], key)
            devices[device_id] = SealedDevice(d.device_id, d.shipment_id, (*d.keys, rotated), d.revoked)
        elif kind == "device-revoked" and device_id in devices:
            d = devices[device_id]
            devices[device_id] = SealedDevice(d.device_id, d.shipment_id, d.keys, True)
    return devices


def registry_problems(table: list[DeviceRecord], sealed: dict[str, SealedDevice]) -> list[str]:
    """Where the registry table (what the ingestor and the API trust) differs from its sealed records."""
    out = []
    for d in table:
        s = sealed.get(d.device_id)
        if s is None:
            out.append(f"device {d.device_id} is in the registry table but no sealed record registered it")
            continue
        keys = d.keys or (DeviceKey(0, d.public_key),)
        if tuple(keys) != s.keys:
            out.append(f"device {d.device_id}: the registry table holds keys [{keys_text(keys)}], its sealed "
                       f"records [{keys_text(s.keys)}] (a key swapped in the table)")
        elif d.public_key != s.keys[-1].public_key:
            out.append(f"device {d.device_id}: its current key in the registry table is not the last sealed one")
        if d.shipment_id != s.shipment_id:
            out.append(f"device {d.device_id}: the registry table puts it in shipment {d.shipment_id}, its sealed "
                       f"record in {s.shipment_id}")
        if d.revoked != s.revoked:
            out.append(f"device {d.device_id}: the registry table says {'revoked' if d.revoked else 'not revoked'}, "
                       f"its sealed records {'revoked' if s.revoked else 'not revoked'}")
    listed = {d.device_id for d in table}
    out += [f"device {i} was registered by a sealed record but is gone from the registry table"
            for i in sorted(set(sealed) - listed)]
    return out


def row_problem(row: StoredRow, devices: dict[str, SealedDevice], signatures: bool) -> str | None:
    """What a row's columns or signature contradict in its own bytes, or None.

    Record leaves (device ids starting with "~") are checked against their kind; readings
    are parsed, must be in canonical form, must name the row's columns, and (with
    `signatures`) must carry a signature by the key the sealed registry gives at their seq.
    """
    if row.device_id.startswith("~"):
        return _record_problem(row)
    try:
        r = Reading.model_validate_json(row.body)
    except ValueError as exc:
        return f"stored bytes are not a valid reading: {str(exc).splitlines()[0]}"
    if canonical_bytes(r) != row.body:
        return "stored bytes are not the reading's canonical form (altered after it was stored)"
    columns = {"device_id": row.device_id, "seq": row.seq, "shipment_id": row.shipment_id, "ts": row.ts}
    body = {"device_id": r.device_id, "seq": r.seq, "shipment_id": r.shipment_id, "ts": r.ts}
    wrong = [f"{k} column {columns[k]!r} but the sealed body says {body[k]!r}"
             for k in columns if columns[k] != body[k]]
    if wrong:
        return "; ".join(wrong)
    if not signatures:
        return None
    device = devices.get(r.device_id)
    if device is None:
        return f"device {r.device_id} has no sealed registration: nothing says which key it signs with"
    if device.shipment_id != r.shipment_id:
        return f"device {r.device_id} was registered to shipment {device.shipment_id}, not {r.shipment_id}"
    key = device.key_at(r.seq)
    if key is None:
        return None  # an unsigned tracker: trust begins at the ingestor, and every view says so
    if r.sig is None:
        return "reading carries no signature but its device signs"
    if not signature_holds(key, a2b_base64(r.sig), signing_bytes(r)):
        return f"device signature does not verify with the sealed key valid at seq {r.seq}"
    return None


def columns_in_canonical_body(row: StoredRow) -> bool:
    """Whether a reading's canonical bytes spell its columns: a text match, no parsing.

    RFC 8785 fixes the key order (`...,"seq":N,"shipment_id":"S",...,"ts":"T",...`) and our
    strings never need escaping, so each column has exactly one place in the bytes. Used
    when signatures are not checked; a row that does not match is parsed by `row_problem`
    to say what differs.
    """
    body = row.body
    return (body.startswith(f'{{"device_id":"{row.device_id}",'.encode())
            and f',"seq":{row.seq},"shipment_id":"{row.shipment_id}",'.encode() in body
            and f',"ts":"{row.ts}",'.encode() in body)


def _record_problem(row: StoredRow) -> str | None:
    try:
        rec = json.loads(row.body)
    except ValueError:
        return f"a {row.device_id} row whose bytes are not JSON"
    if not isinstance(rec, dict) or "record" not in rec:
        return f"its device_id column says {row.device_id!r} (a record leaf) but the body is not a record"
    want = "quarantine" if row.device_id == QUARANTINE else None
    if row.device_id == CUSTODY or rec["record"] == "custody-event":
        if row.device_id != CUSTODY or rec["record"] != "custody-event":
            return f"its device_id column {row.device_id!r} does not match its record kind {rec['record']!r}"
    elif (row.device_id == PARTIES) != (rec["record"] in PARTY_KINDS) or (
            row.device_id != PARTIES
            and (row.device_id not in (REGISTRY, QUARANTINE) or (want is not None) != (rec["record"] == "quarantine"))):
        return f"its device_id column {row.device_id!r} does not match its record kind {rec['record']!r}"
    if row.shipment_id != row.device_id or row.ts != rec.get("at"):
        return (f"its columns (shipment_id {row.shipment_id!r}, ts {row.ts!r}) differ from the record's "
                f"({row.device_id!r}, {rec.get('at')!r})")
    if row.device_id == QUARANTINE and rec.get("quarantine_id") != row.seq:
        return f"its seq column {row.seq} is not the record's quarantine_id {rec.get('quarantine_id')}"
    return None


_DEVICES: dict[str, SealedDevice] = {}


def _start_checker(devices: dict[str, SealedDevice]) -> None:
    global _DEVICES
    _DEVICES = devices


RowFields = tuple[int, str, int, str, str, bytes, bytes]  # StoredRow's fields, in order


def check_fields(rows: list[RowFields], signatures: bool) -> list[tuple[str, str]]:
    """`check_rows` in a checker process. Rows travel as plain tuples: pickle handles those in C,
    while slots dataclasses took longer to pickle and unpickle than the checks themselves
    (measured: the pool was no faster than one process)."""
    return check_rows([StoredRow(*fields) for fields in rows], signatures)


def check_rows(rows: list[StoredRow], signatures: bool) -> list[tuple[str, str]]:
    """(reading id, problem) for each row that fails `row_problem`, with the sealed registry set by `_start_checker`."""
    out = []
    for row in rows:
        if not signatures and not row.device_id.startswith("~") and columns_in_canonical_body(row):
            continue
        if (problem := row_problem(row, _DEVICES, signatures)) is not None:
            out.append((f"{row.device_id}:{row.seq}", problem))
    return out


class _Checker:
    """Row checks in this process, or, for signatures on a large store, spread over a process per core.

    Without signatures the checks cost about a microsecond a row: handing rows to another
    process would cost more than checking them here.
    """

    def __init__(self, devices: dict[str, SealedDevice], signatures: bool, rows: int) -> None:
        self.signatures = signatures
        self.workers = (os.cpu_count() or 1) if signatures and rows >= POOL_FROM else 0
        self.pool: ProcessPoolExecutor | None = None
        if self.workers:
            self.pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_start_checker, initargs=(devices,))
        else:
            _start_checker(devices)
        self.pending: list[Future[list[tuple[str, str]]]] = []
        self.found: list[tuple[str, str]] = []

    def submit(self, rows: list[StoredRow]) -> None:
        if self.pool is None:
            self.found += check_rows(rows, self.signatures)
            return
        fields = [(r.id, r.device_id, r.seq, r.shipment_id, r.ts, r.body, r.leaf_hash) for r in rows]
        self.pending.append(self.pool.submit(check_fields, fields, self.signatures))
        while len(self.pending) > 2 * self.workers:  # bound what waits in memory
            self.found += self.pending.pop(0).result()

    def finish(self) -> list[tuple[str, str]]:
        for f in self.pending:
            self.found += f.result()
        self.pending = []
        if self.pool is not None:
            self.pool.shutdown()
        return self.found


def quarantine_row_problems(rows: Iterable[QuarantineRow], records: dict[int, StoredRow],
                            legacy_below: int) -> list[str]:
    """Quarantine rows that differ from their record leaves, or have none; matched records leave `records`.

    Each row must match its record field by field (its payload by SHA-256); a row without a
    record was added by hand. Rows below `legacy_below` predate sealed decisions (schema 4).
    """
    out = []
    for q in rows:
        if q.id < legacy_below:
            continue
        rec = records.pop(q.id, None)
        if rec is None:
            out.append(f"quarantine row {q.id} ({q.reason_code}, topic {q.topic}) has no record leaf: added "
                       "to the table by hand")
            continue
        said = {k: v for k, v in json.loads(rec.body).items() if k != "at"}
        now = quarantine_record(q)
        changed = [f"{k} is {_short(now.get(k))}, the record says {_short(said.get(k))}"
                   for k in sorted(set(said) | set(now)) if said.get(k) != now.get(k)]
        if changed:
            out.append(f"quarantine row {q.id} was edited: " + "; ".join(changed))
    return out


def deleted_quarantine(records: dict[int, StoredRow], sealed: set[int]) -> list[str]:
    """Record leaves whose quarantine row is gone: the evidence of a refusal was deleted."""
    out = []
    for qid, rec in sorted(records.items()):
        said = json.loads(rec.body)
        out.append(f"quarantine row {qid} is gone (deleted): its {'sealed ' if rec.id in sealed else ''}record says "
                   f"{said.get('reason_code')} from {said.get('device_id') or said.get('topic')} received "
                   f"{said.get('received_at')}, payload sha256 {str(said.get('payload_sha256'))[:16]}..")
    return out


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


async def audit(store: Store, ledger: LedgerFile, public_key: bytes, *, signatures: bool = True,
                progress: Callable[[int], None] | None = None) -> AuditReport:
    report = AuditReport(signatures=signatures)
    ledger_blocks = _read_tolerant(ledger, report)
    keys: dict[int, bytes] = {}  # the ledger key each block is checked with: its checkpoint's key too
    for block, used, problem in walk_chain(ledger_blocks, public_key):
        keys[block.height] = used
        if problem is not None:
            report.chain.append(str(problem))
    by_height = {b.height: b for b in ledger_blocks}
    registry = sealed_registry(await store.records(REGISTRY))
    report.registry = registry_problems(await store.devices(), registry)
    checker = _Checker(registry, signatures, await store.max_id())
    sealed_ids: set[int] = set()
    log = LogAudit(store, keys, await store.log_origin())
    try:
        expected_first = await _walk_blocks(store, by_height, report, checker, sealed_ids, progress, log)
    finally:
        report.readings_bad += checker.finish()
    report.log += await log.finish()
    known = report.blocks
    for b in ledger_blocks[known:]:
        report.blocks_bad.append((b.height, "in the ledger but not recorded in the store (restart the sealer "
                                            "to complete it)"))
    head_last = expected_first - 1 if expected_first is not None else 0
    report.unsealed = await store.count_after(head_last)
    report.quarantine = await _check_quarantine(store, sealed_ids, report)
    party_rows = await store.records(PARTIES)  # read once: the parties' check and the custody replay use them
    report.parties = await _check_parties(store, party_rows)
    report.custody = await check_custody(store, party_rows)
    return report


async def _check_parties(store: Store, party_rows: list[StoredRow]) -> list[str]:
    """The custody parties' tables against their sealed `~parties` records (issue 15): a key swapped,
    a party added or un-revoked by hand is named. The records' own bytes are checked with every leaf."""
    replayed = PartyReplay()
    for row in party_rows:
        try:
            body: object = json.loads(row.body)
        except ValueError:
            body = None
        replayed.add(body, f"leaf {row.id}")
    return [f"{PARTIES} {p}" for p in replayed.problems] + party_problems(await store.parties(), replayed.parties)


async def _walk_blocks(store: Store, by_height: dict[int, Block], report: AuditReport, checker: _Checker,
                       sealed_ids: set[int], progress: Callable[[int], None] | None, log: LogAudit) -> int | None:
    """Every block the store records: coverage, leaves, root; rows go to `checker`. Returns the next id."""
    expected_first = None
    start = 0
    while batch := await store.blocks(start, 256):
        for rec in batch:
            report.blocks += 1
            if expected_first is not None and rec.first_id < expected_first:
                report.covered_twice.extend(range(rec.first_id, expected_first))
            elif expected_first is not None and rec.first_id > expected_first:
                report.uncovered.extend(await store.ids_between(expected_first, rec.first_id - 1))
            expected_first = rec.last_id + 1
            rows = await store.readings_between(rec.first_id, rec.last_id)
            leaves = []
            intact = []
            for row in rows:
                computed = leaf_hash(row.body)
                leaves.append(computed)
                if computed != row.leaf_hash:
                    report.readings_bad.append(
                        (f"{row.device_id}:{row.seq}", f"stored bytes hash to {computed.hex()}, the stored leaf hash "
                                                       f"is {row.leaf_hash.hex()} (reading changed after it was "
                                                       "stored)"))
                else:
                    intact.append(row)
                if row.device_id == QUARANTINE:
                    sealed_ids.add(row.id)
            checker.submit(intact)
            report.readings += sum(1 for r in rows if not r.device_id.startswith("~"))
            if len(rows) != rec.leaf_count:
                present = {r.id for r in rows}
                missing = [i for i in range(rec.first_id, rec.last_id + 1) if i not in present]
                report.blocks_bad.append((rec.height, f"covers {rec.leaf_count} readings (ids {rec.first_id}.."
                                                      f"{rec.last_id}) but the store holds {len(rows)}; missing "
                                                      f"ids {missing[:10]}"))
            root = root_from_leaf_hashes(leaves)
            sealed = by_height.get(rec.height)
            if sealed is None:
                report.blocks_bad.append((rec.height, "recorded in the store but absent from the ledger"))
            elif sealed.hash != rec.hash:
                report.blocks_bad.append((rec.height, f"the ledger's block hash {sealed.hash.hex()} differs from "
                                                      f"the store's {rec.hash.hex()}"))
            elif root.hex() != json.loads(rec.header)["merkle_root"] or root.hex() != sealed.header["merkle_root"]:
                report.blocks_bad.append((rec.height, f"readings now hash to root {root.hex()}, the ledger sealed "
                                                      f"{sealed.header['merkle_root']}"))
            if (problem := await log.block(rec.height, json.loads(rec.header), leaves)) is not None:
                report.blocks_bad.append((rec.height, problem))
            if progress is not None:
                progress(len(rows))
        start = batch[-1].height + 1
    return expected_first


class LogAudit:
    """The transparency log rebuilt from the audit's recomputed leaf hashes, compared block by block
    with the headers, the store's log places and checkpoints, and finally the stored tiles."""

    def __init__(self, store: Store, keys: Mapping[int, bytes], origin: str | None) -> None:
        self.store, self.keys, self.origin = store, keys, origin
        self.size, self.root = 0, EMPTY_ROOT
        self.edge: dict[tuple[int, int], bytes] = {}
        self.problems: list[str] = []
        self.first_wrong: int | None = None  # the first block whose log_root the leaves contradict
        self.unplaced = False  # a block the store's log does not place was met

    async def block(self, height: int, header: Mapping[str, Any], leaves: list[bytes]) -> str | None:
        """Append the block's leaves; what its header, place or checkpoint contradicts, or None."""
        appended = tiles.append_leaves(self.size, self.edge, leaves)
        merged = {**self.edge, **appended.tiles}
        self.size, self.root = appended.size, appended.root
        self.edge = {(a.level, a.index): merged[(a.level, a.index)] for a in tiles.tiles_at(self.size)}
        # a tile this block filled is final: the stored one must be it, byte for byte
        await self._compare({k: v for k, v in appended.tiles.items() if len(v) == tiles.WIDTH * HASH_LEN})
        place = (await self.store.log_places([height])).get(height)
        if place is None:
            if not self.unplaced:  # every later block lacks one too: said once
                self.problems.append(f"block {height} and later ones have no place in the store's log (the log is "
                                     "truncated, or was never built: a sealer start builds it)")
            self.unplaced = True
        elif place.end != self.size:
            self.problems.append(f"block {height}: the store's log places it to end at size {place.end}, its "
                                 f"leaves end at {self.size}")
        await self._checkpoint(height)
        claimed = log_of(header)
        if claimed is None or claimed == (self.size, self.root):
            return None
        if self.first_wrong is None:
            self.first_wrong = height
        return (f"its header says log size {claimed[0]} root {claimed[1].hex()}, the leaves give size {self.size} "
                f"root {self.root.hex()}" + (" (the first block whose log_root is wrong)"
                                             if self.first_wrong == height else ""))

    async def _compare(self, computed: Mapping[tuple[int, int], bytes]) -> None:
        stored = await self.store.log_tiles(computed.keys())
        for (level, index), data in sorted(computed.items()):
            have = stored.get((level, index))
            if have is None or have[:len(data)] != data:
                what = "missing" if have is None else "not the one the leaves give (a rewritten tile)"
                self.problems.append(f"the store's tile {tiles.tile_path(level, index)} is {what}")

    async def _checkpoint(self, height: int) -> None:
        cp = await self.store.checkpoint_at(self.size)
        if cp is None:
            return  # a block of a store sealed before the log has none
        what = f"the checkpoint at size {self.size}"
        if cp.root != self.root:
            self.problems.append(f"{what} signs root {cp.root.hex()}, the leaves give {self.root.hex()} (a split "
                                 "view or a rewritten log)")
            return
        key = self.keys.get(height)
        vkeys = [VerifierKey(self.origin, key)] if key is not None and self.origin is not None else []
        try:
            opened = open_log_checkpoint(cp.note, [], vkeys)
        except NoteError as exc:
            self.problems.append(f"{what} does not open with block {height}'s ledger key under origin "
                                 f"{self.origin}: {exc}")
            return
        if (opened.size, opened.root) != (self.size, self.root):
            self.problems.append(f"{what}: its note says size {opened.size} root {opened.root.hex()}")

    async def finish(self) -> list[str]:
        """The stored tiles must give the same root at the log's size; the latest checkpoint is not beyond it."""
        latest = await self.store.latest_checkpoint()
        if latest is not None and latest.size > self.size:
            self.problems.append(f"the latest checkpoint is at size {latest.size}, beyond the {self.size} leaves "
                                 "the blocks hold (a truncated store or a rolled back log)")
        head = await self.store.log_head()
        if head is not None and head.end == self.size:
            await self._compare(self.edge)
            try:
                stored = await self.store.log_root(self.size)
            except (StoreError, ProofError) as exc:
                self.problems.append(f"the stored tiles cannot give the log's root at size {self.size}: {exc}")
            else:
                if stored != self.root:
                    self.problems.append(f"the stored tiles give root {stored.hex()} at size {self.size}, the leaves "
                                         f"give {self.root.hex()} (a rewritten tile)")
        return self.problems


async def _check_quarantine(store: Store, sealed_ids: set[int], report: AuditReport) -> list[str]:
    """The quarantine table against its record leaves, a page at a time (payloads can be large)."""
    records = {r.seq: r for r in await store.records(QUARANTINE)}
    legacy_below = await store.quarantine_sealed_from()
    out: list[str] = []
    after = 0
    while page := await store.quarantine_page(after, 64):  # payloads may be megabytes until intake bounds them
        out += quarantine_row_problems(page, records, legacy_below)
        report.quarantine_rows += len(page)
        after = page[-1].id
    return out + deleted_quarantine(records, sealed_ids)


def _read_tolerant(ledger: LedgerFile, report: AuditReport) -> list[Block]:
    """Every parseable line; an unparseable one is reported and skipped, so later ones still count."""
    blocks: list[Block] = []
    if not ledger.path.exists():
        report.chain.append(f"no ledger at {ledger.path}")
        return blocks
    with ledger.path.open("rb") as f:
        for lineno, line in enumerate(f, start=1):
            try:
                blocks.append(Block.from_json(json.loads(line), f"{ledger.path}:{lineno}"))
            except (ValueError, LedgerIntegrityError) as exc:
                report.chain.append(f"{ledger.path}:{lineno}: unreadable block line: {exc}")
    return blocks
