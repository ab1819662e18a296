"""Checking a certificate offline: every claim recomputed from the evidence it carries. Pure.

In order (each a named `Check`, so the command line prints which link broke):

1. the readings unpack (base64, gzip, digest, count), each is a valid reading of the subject device in
   RFC 8785 canonical form, seqs strictly rising;
2. the registry records are the device's key records; each reading's device signature verifies with
   the key in force at its seq (`packproof.records.key_index_at`, the rule's one home), and that key
   record sits before the reading in the log;
3. the custody records are `custody-event` records of the pack, whose events parse;
4. the profile: a builtin profile's name with the builtin's parameters (a custom one is named so);
5. the checkpoint opens with the ledger key (the one given with --ledger-key, else the one the
   certificate names, said so) or a --log-key, and the one multi-leaf inclusion proof of every
   carried leaf (readings, key records, custody records) leads to its root
   (`packproof.anchor.merkle.root_from_multi_proof`);
6. the claims: `claims.claims_of` over the carried readings and events must give exactly the claims
   the document states; every differing field is a failed check named by its path (`claims.tests[1]
   .verdict`). Completeness follows: a gap is computed from the carried seqs, so a reading left out
   shows as a gap, and a gap the document does not declare fails `claims.completeness.gaps`;
7. the anchor (issue 17), when carried: at the checkpoint's size its root and note hash must be the
   checkpoint's; at a later size the carried RFC 6962 consistency proof (RFC 6962 2.1.2) must lead from
   the checkpoint's root to the anchored root (`anchor_check.judge_anchor`, the rule's one home). That
   the chain holds it is checked by `packproof verify --certificate FILE --eth-rpc URL --contract ADDR`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import orjson
from pydantic import ValidationError

from packproof.anchor.anchor_check import Anchor, LogHead, judge_anchor, log_signed_note, note_hash
from packproof.anchor.custody_proof import key_record_in_force, parse_party_key_record
from packproof.anchor.logproof import describe, open_log_checkpoint
from packproof.anchor.merkle import root_from_multi_proof
from packproof.anchor.note import VerifierKey
from packproof.anchor.proof import Check, KeyRecord, parse_key_record
from packproof.api.certificate.claims import VERDICTS, Inputs, claims_of, differences
from packproof.api.certificate.document import (
    PackCertificate,
    ShipmentCertificate,
    indices_of,
    unpack_hashes,
    unpack_readings,
)
from packproof.canonical import signed_and_full
from packproof.crypto import key_id, unb64, verify_many
from packproof.custody import CustodyEvent, HandedOver, event_from_object, signature_problem
from packproof.edge.thresholds import BUILTIN_PROFILES
from packproof.errors import InvalidCustodyEvent, NoteError, ProofError
from packproof.reading import Reading
from packproof.records import key_index_at
from packproof.rfc6962 import leaf_hash

SignatureChecker = Callable[[list[tuple[bytes, bytes, bytes]]], list[bool]]
MAX_NAMED = 5  # failing readings named per check; the rest counted


@dataclass(frozen=True, slots=True)
class PackVerdict:
    device_id: str
    checks: list[Check]

    @property
    def holds(self) -> bool:
        return all(c.ok is not False for c in self.checks)


def _named(items: Sequence[str]) -> str:
    more = len(items) - MAX_NAMED
    return ", ".join(items[:MAX_NAMED]) + (f" and {more} more" if more > 0 else "")


def verify_pack(cert: PackCertificate, ledger_key: bytes | None = None, log_keys: Sequence[VerifierKey] = (),
                check_signatures: SignatureChecker = verify_many) -> PackVerdict:
    """Every check of one pack's certificate, in order. `check_signatures` maps (public key, signature,
    message) triples to verdicts: `packproof.crypto.verify_many` here, a pool of processes on the
    command line (a pack of 100,000 readings is 100,000 Ed25519 verifications)."""
    ev = cert.evidence
    device = cert.subject.device_id
    checks: list[Check] = []

    # 1. readings
    readings: list[Reading] = []
    signing: list[bytes] = []  # each reading's signed bytes (RFC 8785 without `sig`)
    bodies: list[bytes] = []
    try:
        bodies = unpack_readings(ev.readings)
        bad: list[str] = []
        for k, body in enumerate(bodies):
            try:
                r = Reading.model_validate_json(body)
            except ValidationError as exc:
                bad.append(f"line {k}: not a reading ({exc.errors()[0]['msg']})")
                continue
            signed, full = signed_and_full(r)
            signing.append(signed)
            if full != body:
                bad.append(f"{r.reading_id}: not in RFC 8785 canonical form")
            elif r.device_id != device:
                bad.append(f"{r.reading_id}: not from device {device}")
            elif readings and r.seq <= readings[-1].seq:
                bad.append(f"{r.reading_id}: seq not above the one before ({readings[-1].seq})")
            readings.append(r)
        checks.append(Check("readings", not bad, _named(bad) if bad else
                            f"{len(readings):,} readings of {device}, canonical, seqs rising"))
    except ValueError as exc:
        checks.append(Check("readings", False, str(exc)))

    # 2. key records and device signatures
    records: list[KeyRecord] = []
    bad = []
    for k, text in enumerate(ev.registry):
        rec = parse_key_record(text)
        if rec is None or rec.device_id != device:
            bad.append(f"record {k} is not a key record of {device}")
        else:
            records.append(rec)
    checks.append(Check("key records", not bad and bool(records), _named(bad) if bad else
                        f"{len(records)} key record(s) of {device}" if records else "no key record of the device"))
    reading_idx = indices_of(ev.log.reading_runs)
    unsigned, failed, early = [], [], []
    to_check: list[tuple[bytes, bytes, bytes]] = []
    checked: list[str] = []
    for k, r in enumerate(readings):
        at = key_index_at(records, r.seq)
        if at is None:
            failed.append(f"{r.reading_id} (no key record valid at its seq)")
            continue
        key = records[at].key
        if k < len(reading_idx) and at < len(ev.log.registry_indices) and ev.log.registry_indices[at] >= reading_idx[k]:
            early.append(r.reading_id)
        if key is None:
            unsigned.append(r.reading_id)
        elif r.sig is None:
            failed.append(r.reading_id)
        else:
            to_check.append((key, unb64(r.sig), signing[k]))
            checked.append(r.reading_id)
    failed += [rid for rid, ok in zip(checked, check_signatures(to_check), strict=True) if not ok]
    if failed or early:
        detail = (f"signature does not verify: {_named(failed)}" if failed else "") + (
            f"; key record sealed after the reading: {_named(early)}" if early else "")
        checks.append(Check("device signatures", False, detail.lstrip("; ")))
    elif unsigned and len(unsigned) == len(readings):
        checks.append(Check("device signatures", None, f"device {device} is an unsigned tracker: trust begins at the "
                                                       "ingestor"))
    else:
        keys = sorted({key_id(r.key) for r in records if r.key})
        checks.append(Check("device signatures", True, f"{len(readings) - len(unsigned):,} Ed25519 signatures by "
                                                       f"key(s) {', '.join(keys)}"))

    # 3. custody records
    events: list[CustodyEvent] = []
    bad = []
    for k, text in enumerate(ev.custody):
        try:
            obj = orjson.loads(text)
            if not isinstance(obj, dict) or obj.get("record") != "custody-event":
                raise ValueError("not a custody-event record")
            events.append(event_from_object(obj.get("event")))
        except (ValueError, InvalidCustodyEvent) as exc:
            bad.append(f"record {k}: {exc}")
    checks.append(Check("custody records", not bad, _named(bad) if bad else f"{len(events)} custody event(s)"))
    if events:
        checks.append(_party_signatures(cert, events))

    # 4. profile
    builtin = BUILTIN_PROFILES.get(ev.profile.name)
    if builtin is not None:
        same = builtin == ev.profile
        checks.append(Check("profile", same, f"builtin {builtin.name} ({builtin.edition})" if same else
                            f"named {builtin.name} but its parameters differ from the builtin's"))
    else:
        checks.append(Check("profile", None, f"custom profile {ev.profile.name}: its parameters are as the "
                                             "certificate carries them"))

    # 5. checkpoint and inclusion
    trusted = ledger_key
    named_key = unb64(ev.log.ledger_public_key)
    if trusted is not None and trusted != named_key and not log_keys:
        checks.append(Check("checkpoint", False, f"the certificate names ledger key {key_id(named_key)}, you trust "
                                                 f"{key_id(trusted)}"))
    else:
        try:
            cp = open_log_checkpoint(ev.log.checkpoint, [trusted or named_key], log_keys)
            note = "" if trusted or log_keys else " (key taken from the certificate; pin it with --ledger-key)"
            checks.append(Check("checkpoint", True, f"{cp.origin} {describe(cp)}, signed by the log{note}"))
            checks.append(_inclusion(cert, bodies, reading_idx, cp.size, cp.root))
            checks.append(anchor_check(cert, LogHead(cp.size, cp.root, None)))
        except NoteError as exc:
            checks.append(Check("checkpoint", False, f"does not open with the log's keys: {exc}"))

    # 6. claims
    if readings or not bodies:
        first = min((r.valid_from_seq for r in records), default=0)
        found = claims_of(Inputs(device_id=device, shipment_id=cert.subject.shipment_id, profile=ev.profile,
                                 readings=readings, first_registered_seq=first, custody=events,
                                 handover_window_s=ev.handover_window_s, unsealed=ev.unsealed))
        diffs = differences(cert.claims.model_dump(mode="json"), found.model_dump(mode="json"))
        for path, said, got in diffs:
            checks.append(Check(path, False, f"the certificate says {_short(said)}, its readings give {_short(got)}"))
        if cert.subject.serial != found.custody.serial:
            checks.append(Check("subject.serial", False, f"the certificate says {cert.subject.serial}, its custody "
                                                         f"records give {found.custody.serial}"))
        if not diffs:
            checks.append(Check("claims", True, f"every claim recomputed from the {len(readings):,} readings: "
                                                f"{found.overall.verdict} ({found.overall.rule})"))
    return PackVerdict(device, checks)


def _party_signatures(cert: PackCertificate, events: Sequence[CustodyEvent]) -> Check:
    """Each custody event signed by its actor with the key in force at its seq (`key_record_in_force`, the
    rule custody proof bundles use), from a carried party key record sealed before the event; a handover
    countersigned by a key of the next carrier sealed before it (the audit replays the exact rule)."""
    ev = cert.evidence
    records = [(i, t.encode()) for i, t in zip(ev.log.party_indices, ev.parties, strict=False)]
    bad = []
    for e, at in zip(events, ev.log.custody_indices, strict=False):
        before = [(i, body) for i, body in records if i < at]
        k = key_record_in_force([b for _, b in before], e.actor, e.seq)
        actor = parse_party_key_record(before[k][1]) if k is not None else None
        if actor is None:
            bad.append(f"{e.event_id} (no key record of {e.actor} sealed before it)")
            continue
        counter: list[bytes | None] = [None]
        if isinstance(e, HandedOver):
            counter = [r.public_key for _, b in before if (r := parse_party_key_record(b)) and r.party_id == e.to]
        if not any(signature_problem(e, actor.public_key, c) is None for c in counter or [b""]):
            bad.append(e.event_id)
    return Check("party signatures", not bad, f"signature does not verify: {_named(bad)}" if bad else
                 f"{len(events)} custody event(s) signed by their parties' sealed keys")


def _short(value: object) -> str:
    text = orjson.dumps(value).decode()
    return text if len(text) <= 160 else text[:157] + "..."


def _inclusion(cert: PackCertificate, bodies: list[bytes], reading_idx: list[int], size: int, root: bytes) -> Check:
    ev = cert.evidence
    leaves: dict[int, bytes] = {}
    if len(reading_idx) != len(bodies):
        return Check("log inclusion", False, f"{len(reading_idx)} log indices for {len(bodies)} readings")
    if (len(ev.log.registry_indices) != len(ev.registry) or len(ev.log.custody_indices) != len(ev.custody)
            or len(ev.log.party_indices) != len(ev.parties)):
        return Check("log inclusion", False, "the record indices do not match the records carried")
    for i, text in [*zip(reading_idx, bodies, strict=True),
                    *zip(ev.log.registry_indices, (t.encode() for t in ev.registry), strict=True),
                    *zip(ev.log.custody_indices, (t.encode() for t in ev.custody), strict=True),
                    *zip(ev.log.party_indices, (t.encode() for t in ev.parties), strict=True)]:
        if i in leaves:
            return Check("log inclusion", False, f"two leaves claim log index {i}")
        leaves[i] = leaf_hash(text)
    if not leaves:
        return Check("log inclusion", None, "no leaf to prove")
    try:
        got = root_from_multi_proof(size, sorted(leaves.items()), unpack_hashes(ev.log.proof))
    except (ProofError, ValueError) as exc:
        return Check("log inclusion", False, str(exc))
    ok = got == root
    return Check("log inclusion", ok, f"{len(leaves):,} leaves, one multi-leaf proof of "
                                      f"{len(ev.log.proof) * 3 // 4 // 32:,} hashes -> root {got.hex()}"
                 + ("" if ok else f", the checkpoint's root is {root.hex()}"))


def anchor_check(cert: PackCertificate, checkpoint: LogHead) -> Check:
    """The carried anchor against the certificate's (opened) checkpoint, offline: same size and root and
    note hash, or a later anchored root that the carried consistency proof shows extends it."""
    a = cert.anchor
    if a is None:
        return Check("anchor", None, "not anchored yet: no confirmed on-chain anchor covered the checkpoint when "
                                     "the certificate was issued")
    try:
        anchored = Anchor(a.size, bytes.fromhex(a.root), bytes.fromhex(a.note_hash),
                          bytes.fromhex(a.tx_hash.removeprefix("0x")), a.block_number, 0, None)
        proof = [unb64(h) for h in a.consistency]
        mine = note_hash(log_signed_note(cert.evidence.log.checkpoint))
    except (ValueError, NoteError) as exc:
        return Check("anchor", False, f"not a readable anchor: {exc}")
    if len(anchored.root) != 32 or len(anchored.note_hash) != 32 or any(len(h) != 32 for h in proof):
        return Check("anchor", False, "root, note hash and consistency hashes are 32 bytes each (SHA-256)")
    if a.size < checkpoint.size:
        return Check("anchor", False, f"the anchor (size {a.size}) is older than the checkpoint (size "
                                      f"{checkpoint.size}): it does not cover it")
    if a.size == checkpoint.size and proof:
        return Check("anchor", False, f"an anchor at the checkpoint's own size ({a.size}) needs no consistency "
                                      f"proof; this one carries {len(proof)} hash(es)")
    verdict = judge_anchor(LogHead(checkpoint.size, checkpoint.root, mine), anchored,
                           proof if a.size > checkpoint.size else None)
    where = f"chain {a.chain_id} contract {a.contract} block {a.block_number} ({a.block_time}) tx {a.tx_hash}"
    ok = verdict.outcome.holds and not verdict.warnings  # the store recorded this very note's hash
    return Check("anchor", ok, "; ".join([verdict.detail, *verdict.warnings, where]))


def verify_certificate(cert: PackCertificate | ShipmentCertificate, ledger_key: bytes | None = None,
                       log_keys: Sequence[VerifierKey] = (),
                       check_signatures: SignatureChecker = verify_many) -> list[PackVerdict]:
    if isinstance(cert, PackCertificate):
        return [verify_pack(cert, ledger_key, log_keys, check_signatures)]
    verdicts = [verify_pack(p, ledger_key, log_keys, check_signatures) for p in cert.packs]
    worst = max((p.claims.overall.verdict for p in cert.packs), key=VERDICTS.index, default="inspect before use")
    if cert.verdict != worst:
        verdicts.append(PackVerdict(cert.shipment_id, [Check("verdict", False, f"the shipment certificate says "
                                                                               f"{cert.verdict!r}, its packs give "
                                                                               f"{worst!r}")]))
    return verdicts

