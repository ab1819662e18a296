"""Audit: recompute everything the ledger vouches for from the off-chain store.

For each block, in height order, the readings it covers (a dense id range) are read
from the store one block at a time (memory bounded by the largest block), each leaf
hash is recomputed from the stored bytes, the block's RFC 6962 root is recomputed from
those and compared with the root in the signed ledger; then the ledger's chain is
checked link by link. Every problem is reported, not only the first: a tampered reading
by its id, a tampered or missing block by its height, readings no block covers or that
two blocks cover.

A reading whose stored bytes *and* stored leaf hash were both rewritten still changes
its block's root: the block is named; `--signatures` also checks each device signature,
which names the reading itself.
"""

from __future__ import annotations

import json
from binascii import a2b_base64
from collections.abc import Callable
from dataclasses import dataclass, field

from anchor.ledger import Block, LedgerFile, walk_chain
from anchor.merkle import leaf_hash, root_from_leaf_hashes
from packproof.canonical import canonical_bytes, signing_bytes
from packproof.crypto import DeviceVerifier
from packproof.errors import LedgerIntegrityError
from packproof.reading import Reading
from packproof.store import DeviceRecord, Store


@dataclass(slots=True)
class AuditReport:
    blocks: int = 0
    readings: int = 0
    unsealed: int = 0
    chain: list[str] = field(default_factory=list)  # ledger problems, by height
    blocks_bad: list[tuple[int, str]] = field(default_factory=list)
    readings_bad: list[tuple[str, str]] = field(default_factory=list)
    uncovered: list[int] = field(default_factory=list)  # store ids no block covers
    covered_twice: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.chain or self.blocks_bad or self.readings_bad or self.uncovered or self.covered_twice)


def _check_reading(body: bytes, devices: dict[str, DeviceRecord]) -> str | None:
    if b'"record":' in body:  # a registry record: sealed like a reading, but no device signs it
        return None
    try:
        r = Reading.model_validate_json(body)
    except ValueError as exc:
        return f"stored bytes are not a valid reading: {str(exc).splitlines()[0]}"
    if canonical_bytes(r) != body:
        return "stored bytes are not the reading's canonical form (altered after it was stored)"
    device = devices.get(r.device_id)
    if device is None:
        return f"device {r.device_id} is not in the registry"
    key = device.key_at(r.seq)
    if key is None:
        return None  # an unsigned tracker: nothing to check
    if r.sig is None:
        return "reading carries no signature but its device signs"
    ok = DeviceVerifier(key).verify(a2b_base64(r.sig), signing_bytes(r))
    return None if ok else f"device signature does not verify with the key valid at seq {r.seq}"


async def audit(store: Store, ledger: LedgerFile, public_key: bytes, *, signatures: bool = False,
                progress: Callable[[int], None] | None = None) -> AuditReport:
    report = AuditReport()
    ledger_blocks = _read_tolerant(ledger, report)
    for _, _, problem in walk_chain(ledger_blocks, public_key):
        if problem is not None:
            report.chain.append(str(problem))
    by_height = {b.height: b for b in ledger_blocks}
    devices = {d.device_id: d for d in await store.devices()} if signatures else {}

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
            for _id, device_id, seq, body, stored_leaf in rows:
                computed = leaf_hash(body)
                leaves.append(computed)
                if computed != stored_leaf:
                    report.readings_bad.append(
                        (f"{device_id}:{seq}", f"stored bytes hash to {computed.hex()}, the stored leaf hash is "
                                               f"{stored_leaf.hex()} (reading changed after it was stored)"))
                elif signatures and (why := _check_reading(body, devices)):
                    report.readings_bad.append((f"{device_id}:{seq}", why))
            report.readings += len(rows)
            if len(rows) != rec.leaf_count:
                present = {r[0] for r in rows}
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
            if progress is not None:
                progress(len(rows))
        start = batch[-1].height + 1
    known = report.blocks
    for b in ledger_blocks[known:]:
        report.blocks_bad.append((b.height, "in the ledger but not recorded in the store (restart the sealer "
                                            "to complete it)"))
    head_last = expected_first - 1 if expected_first is not None else 0
    report.unsealed = await store.count_after(head_last)
    return report


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
