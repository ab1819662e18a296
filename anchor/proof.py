"""Proof bundles: one JSON document holding everything an offline check of a reading needs.

    {"format": "packproof-proof/2",
     "reading":  SEALED,   the reading's canonical text (incl. sig) as a sealed leaf
     "registry": SEALED}   the registry record giving the device's key at the reading's seq

    SEALED = {"leaf": TEXT, "leaf_index", "tree_size", "audit_path": [hex, ...],
              "block": {"header", "hash", "signature"}, "ledger_public_key": base64}

and, for a reading sealed since the transparency log exists (issue 16),

     "log": {"index", "size", "path": [base64, ...], "checkpoint": NOTE}

the reading's RFC 6962 inclusion proof in the log at a signed C2SP checkpoint (the one signed with
the reading's block, or a later one).

In a v2 block (one that records the log, `log_size` and `log_root`) SEALED proves the leaf in the
log as the block left it: `leaf_index` is its log index, `tree_size` the block's `log_size` and the
path leads to the header's `log_root`; the log's interior hashes are stored, so no proof rebuilds a
tree. In a v1 block (sealed before the log) it proves the leaf in the block's own tree
(`merkle_root`, `leaf_count`), as before.

The verifier states nothing on the bundle's word. The reading id is `device_id:seq` of the
proven reading body; the device's key and trust level come from the proven registry record
(a leaf the store appended when the device was registered or its key rotated, see
`packproof.store`), and that record must be for the reading's device, valid from a seq at or
below the reading's, and sealed *before* the reading: at a lower (height, leaf index). Store
ids are dense and leaves are sealed in store order, so that position is the order in which
the registry change and the reading were stored: a record sealed after the reading was not
what the ingestor checked the reading against, so it proves nothing about it. A record with
`"public_key": null` is what makes a device an unsigned tracker (trust "ingestor").

What one bundle cannot show is absence: that no later record (a retroactive key rotation, a
revocation) superseded the one given. The API picks the record the registry holds in force
at the reading's seq, and `packproof audit` checks the registry as a whole.

Parsing is strict and typed (`ProofBundle`): wrong types, lengths or unknown fields are bad
input naming the field (exit 2), never an invalid proof. `verify_bundle` is pure: it checks
each link in order and reports every result, so the command line can print which link broke.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from packproof.anchor.ledger import Block, block_hash, key_in_force, verify_chain
from packproof.anchor.logproof import check_consistent, describe, open_log_checkpoint, root_from_log_path
from packproof.anchor.merkle import root_from_inclusion_proof
from packproof.anchor.note import VerifierKey
from packproof.anchor.tlog_checkpoint import Checkpoint
from packproof.canonical import canonical_bytes, canonical_json, signing_bytes
from packproof.crypto import key_id, signature_holds, unb64
from packproof.errors import ConfigError, LedgerIntegrityError, NoteError, ProofError
from packproof.reading import MAX_SEQ, TS_PATTERN, Reading
from packproof.rfc6962 import HASH_LEN, leaf_hash

FORMAT = "packproof-proof/2"
TRUST_DEVICE = "device-signature"
TRUST_INGESTOR = "ingestor"  # a tracker that cannot sign: trust begins at our ingestor
TRUST_UNPROVEN = "unproven"  # the proof does not hold, so nothing is claimed of the device
MAX_BUNDLE_BYTES = 1 << 20  # an honest bundle is a few kB; more is refused before parsing
MAX_LEAF_CHARS = 1 << 16
KEY_RECORDS = ("device-registered", "device-key-rotated")


# ---- the typed bundle -------------------------------------------------------------------


def _hex_hash(text: str) -> str:
    if len(text) != 2 * HASH_LEN or text.strip("0123456789abcdef"):
        raise ValueError(f"must be {2 * HASH_LEN} lowercase hex digits (a SHA-256 hash), got {len(text)} characters")
    return text


def _base64_of(size: int, what: str) -> AfterValidator:
    def check(text: str) -> str:
        try:
            raw = unb64(text)
        except ValueError:
            raise ValueError(f"must be base64 ({what})") from None
        if len(raw) != size:
            raise ValueError(f"must be base64 of {size} bytes ({what}), got {len(raw)} bytes")
        return text

    return AfterValidator(check)


def _utf8(text: str) -> str:
    """JSON can carry lone surrogates that no bytes encode; a leaf's text must be bytes."""
    try:
        text.encode()
    except UnicodeEncodeError:
        raise ValueError("is not encodable as UTF-8 (holds a lone surrogate)") from None
    return text


HexHash = Annotated[str, AfterValidator(_hex_hash)]
PublicKey = Annotated[str, _base64_of(32, "an Ed25519 public key")]
Signature = Annotated[str, _base64_of(64, "an Ed25519 signature")]
LeafText = Annotated[str, Field(min_length=1, max_length=MAX_LEAF_CHARS), AfterValidator(_utf8)]
Count = Annotated[int, Field(ge=0, le=MAX_SEQ)]

_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)


class HeaderDoc(BaseModel):
    """A block header (anchor.ledger) with every field typed, so hashing it cannot fail."""

    model_config = _STRICT
    v: Annotated[int, Field(ge=1, le=2)]  # not Literal[1, 2]: that would take `true` and hash 1
    height: Count
    prev_hash: HexHash
    merkle_root: HexHash
    leaf_count: Annotated[int, Field(ge=1, le=MAX_SEQ)]
    sealed_at: Annotated[str, Field(pattern=TS_PATTERN)]
    key_id: Annotated[str, Field(pattern=r"^[0-9a-f]{16}$")]
    next_key: PublicKey | None = None
    # v2: the transparency log after the block; validated even when absent, so the error names the field
    log_size: Annotated[int, Field(ge=1, le=MAX_SEQ)] | None = Field(None, validate_default=True)
    log_root: HexHash | None = Field(None, validate_default=True)

    @field_validator("log_size", "log_root")
    @classmethod
    def _log_fields_are_v2(cls, value: object, info: ValidationInfo) -> object:
        version = info.data.get("v")
        if version == 2 and value is None:
            raise ValueError("a v2 header records the log: log_size and log_root are required")
        if version == 1 and value is not None:
            raise ValueError("a v1 header predates the log: it has no log_size or log_root")
        return value

    @model_serializer(mode="wrap")
    def _canonical_order(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """The keys in RFC 8785 order (sorted: they are ASCII), the order of the header's signed text."""
        return dict(sorted(handler(self).items()))


class BlockDoc(BaseModel):
    model_config = _STRICT
    header: HeaderDoc
    hash: HexHash
    signature: Signature

    def block(self) -> Block:
        """The ledger's Block: the header exactly as given (a field left out stays out of the hash)."""
        return Block(self.header.model_dump(exclude_unset=True), bytes.fromhex(self.hash), unb64(self.signature))


def typed_block(obj: Any, where: str) -> Block:
    """A ledger block from the API or a ledger file, typed as strictly as a bundle's, so checking
    the chain cannot stumble on a field of the wrong type; LedgerIntegrityError names the field."""
    try:
        return BlockDoc.model_validate(obj).block()
    except ValidationError as exc:
        e = exc.errors()[0]
        raise LedgerIntegrityError(f"{where}: field {_where(e['loc'])}: {e['msg']}") from None


class SealedLeaf(BaseModel):
    """One ledger leaf and what shows it is in a signed block: its Merkle path and the block."""

    model_config = _STRICT
    leaf: LeafText
    leaf_index: Count
    tree_size: Annotated[int, Field(ge=1, le=MAX_SEQ)]
    audit_path: Annotated[list[HexHash], Field(max_length=64)]
    block: BlockDoc
    ledger_public_key: PublicKey

    @property
    def height(self) -> int:
        return self.block.header.height

    @property
    def position(self) -> tuple[int, int]:
        """Where the leaf sits in the whole ledger: the order in which the store wrote it."""
        return self.block.header.height, self.leaf_index


B64Hash = Annotated[str, _base64_of(HASH_LEN, "a SHA-256 hash")]


class LogProof(BaseModel):
    """A leaf's inclusion in the transparency log at a signed C2SP checkpoint."""

    model_config = _STRICT
    index: Count
    size: Annotated[int, Field(ge=1, le=MAX_SEQ)]
    path: Annotated[list[B64Hash], Field(max_length=64)]
    checkpoint: Annotated[str, Field(min_length=1, max_length=MAX_LEAF_CHARS), AfterValidator(_utf8)]


class ProofBundle(BaseModel):
    """The bundle as the verifier parses it and as packproof.anchor.bundle builds it."""

    model_config = _STRICT
    format: Literal["packproof-proof/2"]
    reading: SealedLeaf
    registry: SealedLeaf
    log: LogProof | None = None  # absent in bundles made before the log existed

    def document(self) -> dict[str, Any]:
        """The JSON document: the fields as given (a header's absent next_key stays absent), each
        block header in its canonical key order, as the ledger and the store hold it."""
        return self.model_dump(mode="json", exclude_unset=True)


class KeyRecord(BaseModel):
    """What a sealed registry record says of a device's key; other fields (`at`, ...) ride along."""

    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)
    record: Literal["device-registered", "device-key-rotated"]
    device_id: str
    public_key: PublicKey | None
    valid_from_seq: Count = 0

    @model_validator(mode="after")
    def _rotation_names_its_key(self) -> KeyRecord:
        if self.record == "device-key-rotated" and (self.public_key is None
                                                     or "valid_from_seq" not in self.model_fields_set):
            raise ValueError("a key rotation names its public_key and valid_from_seq")
        return self

    @property
    def key(self) -> bytes | None:
        return unb64(self.public_key) if self.public_key is not None else None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"key {next(k for k in keys if keys.count(k) > 1)!r} appears twice in one object")
    return dict(pairs)


@dataclass(frozen=True, slots=True)
class NotANumber:
    """Where a document said NaN or Infinity (not JSON): kept so the typed parse names the field."""

    literal: str

    def __str__(self) -> str:
        return self.literal


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def strict_json(text: str | bytes, *, name_constants: bool = False) -> Any:
    """json.loads that refuses what JSON does not define or makes ambiguous: duplicate keys,
    nesting deeper than the interpreter can follow, NaN and Infinity; ValueError says which.

    `name_constants`: NaN and Infinity become NotANumber values instead, which no typed field
    accepts, so the error names the field that held one.
    """
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates,
                          parse_constant=NotANumber if name_constants else _no_constant)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _where(loc: Sequence[int | str]) -> str:
    out = ""
    for p in loc:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def parse_bundle(text: str | bytes) -> ProofBundle:
    """The bundle as a typed value; anything malformed is ConfigError (exit 2) naming the field."""
    if len(text) > MAX_BUNDLE_BYTES:
        raise ConfigError(f"proof bundle is {len(text):,} bytes or more, above the {MAX_BUNDLE_BYTES:,} a bundle "
                          "can be")
    try:
        doc = strict_json(text, name_constants=True)
    except ValueError as exc:
        raise ConfigError(f"proof bundle is not JSON: {exc}") from None
    return bundle_of(doc)


def bundle_of(doc: Any) -> ProofBundle:
    """A decoded JSON document as a typed bundle; ConfigError (exit 2) naming the field otherwise."""
    if not isinstance(doc, dict):
        raise ConfigError(f"proof bundle must be a JSON object, got {type(doc).__name__}")
    if doc.get("format") != FORMAT:
        got = repr(str(doc["format"])[:40]) if "format" in doc else "nothing"
        raise ConfigError(f"proof bundle: field format: expected {FORMAT!r}, got {got}"
                          + ("; a /1 bundle carries no sealed registry record, so its device claims cannot be "
                             "proven: fetch it again from the API" if doc.get("format") == "packproof-proof/1"
                             else ""))
    try:
        return ProofBundle.model_validate(doc)
    except ValidationError as exc:
        e = exc.errors()[0]
        raise ConfigError(f"proof bundle: field {_where(e['loc'])}: {e['msg']}"
                          + (f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else "")) from None


def key_record_in_force(records: Sequence[bytes], device_id: str, seq: int) -> int | None:
    """Which of the registry's record leaves (in store order) gives `device_id` its key at `seq`.

    The latest key record of the device valid from a seq at or below `seq`: what
    `DeviceRecord.key_at` answers from the registry tables, here from the sealed leaves.
    """
    found: tuple[int, int] | None = None  # (valid from seq, index)
    for i, text in enumerate(records):
        record = parse_key_record(text)
        if record is not None and record.device_id == device_id and record.valid_from_seq <= seq \
                and (found is None or record.valid_from_seq >= found[0]):
            found = (record.valid_from_seq, i)
    return None if found is None else found[1]


def parse_key_record(text: str | bytes) -> KeyRecord | None:
    """A key record if the leaf is one in canonical form (as the store writes it), else None."""
    try:
        obj = strict_json(text)
        record = KeyRecord.model_validate(obj)
        ok = canonical_json(obj) == (text if isinstance(text, bytes) else text.encode())
    except (ValueError, TypeError):
        return None
    return record if ok else None


# ---- verifying --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool | None  # None: not checked (said why in detail)
    detail: str


@dataclass(frozen=True, slots=True)
class LedgerView:
    """What the verifier knows of the ledger besides the bundle.

    `trusted_keys`: height -> the ledger key the user trusts there (pinned, and followed through
    announced rotations when a chain from genesis is known); a height not in it is checked with
    the key the bundle names, and said so. `chain`: consecutive blocks from the lowest height
    the bundle names up to the head (from the API or a ledger file); None when there is none.
    """

    trusted_keys: Mapping[int, bytes] = field(default_factory=dict)
    chain: Sequence[Block] | None = None
    log: LogView | None = None


@dataclass(frozen=True, slots=True)
class LogView:
    """What the verifier knows of the transparency log besides the bundle.

    `keys`: verifier keys of the log (`--log-key`); the ledger keys the bundle is checked with open
    its checkpoint too. `later`: a later checkpoint the user trusts (`--checkpoint FILE`) and
    `proof`, the consistency proof from the bundle's checkpoint to it (None: not fetched).
    """

    keys: Sequence[VerifierKey] = ()
    later: str | None = None
    proof: Sequence[bytes] | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    reading_id: str | None  # from the proven reading body; None when the body is not a reading
    trust: str  # from the proven registry record; TRUST_UNPROVEN unless everything holds
    checks: list[Check]

    @property
    def holds(self) -> bool:
        return all(c.ok is not False for c in self.checks)


def _reading_checks(text: str, asked_id: str | None) -> tuple[Reading | None, list[Check]]:
    body = text.encode()
    try:
        reading = Reading.model_validate_json(body)
    except ValidationError as exc:
        e = exc.errors()[0]
        return None, [Check("reading", False, f"the reading in the bundle is not a valid reading: "
                                              f"{_where(e['loc'])} {e['msg']}".replace(" :", ":"))]
    checks = [Check("reading", canonical_bytes(reading) == body,
                    f"{reading.reading_id} in RFC 8785 canonical form" if canonical_bytes(reading) == body
                    else "the reading text is not in RFC 8785 canonical form")]
    if asked_id is not None:
        same = reading.reading_id == asked_id
        checks.append(Check("reading id", same, f"the proven reading is {reading.reading_id}"
                            + ("" if same else f", not {asked_id} which was asked for")))
    return reading, checks


def _record_check(bundle: ProofBundle, reading: Reading | None) -> tuple[KeyRecord | None, Check]:
    """The registry record, its device and seq range, and that it was sealed before the reading."""
    reg = bundle.registry
    record = parse_key_record(reg.leaf)
    if record is None:
        return None, Check("registry record", False, "the registry leaf is not a device key record "
                           f"({' or '.join(KEY_RECORDS)}) in canonical form")
    if reading is None:
        return None, Check("registry record", None, "not checked: there is no valid reading to match it with")
    where = f"{record.record} at leaf {reg.leaf_index} of block {reg.height}"
    problems = []
    if record.device_id != reading.device_id:
        problems.append(f"is for device {record.device_id}, the reading is from {reading.device_id}")
    if record.valid_from_seq > reading.seq:
        problems.append(f"is valid from seq {record.valid_from_seq}, after the reading's seq {reading.seq}")
    if reg.position >= bundle.reading.position:
        problems.append(f"was sealed at or after the reading (leaf {bundle.reading.leaf_index} of block "
                        f"{bundle.reading.height}), so the reading was not stored under it")
    if problems:
        return None, Check("registry record", False, f"{where} " + "; ".join(problems))
    key = f"key {key_id(record.key)}" if record.key else "no key (an unsigned tracker)"
    return record, Check("registry record", True, f"{where}: device {record.device_id} has {key} from seq "
                         f"{record.valid_from_seq}, sealed before the reading")


def _signature_check(reading: Reading | None, record: KeyRecord | None) -> Check:
    if reading is None or record is None:
        return Check("device signature", None, "not checked: no proven reading and device key")
    key = record.key
    if key is None:
        return Check("device signature", None, f"device {reading.device_id} is registered as unsigned: trust for "
                                               "this reading begins at the ingestor")
    if reading.sig is None:
        return Check("device signature", False, f"device {reading.device_id} has a key, but the reading carries "
                                                "no signature")
    ok = signature_holds(key, unb64(reading.sig), signing_bytes(reading))
    return Check("device signature", ok, f"Ed25519 by device {reading.device_id} key {key_id(key)}"
                 + ("" if ok else ": signature does not verify"))


def _path_check(name: str, sealed: SealedLeaf) -> Check:
    """The leaf's Merkle path (RFC 9162 §2.1.3.2) to the root the block it names signs: the log's
    root after the block for a v2 block, the block's own tree root for a v1 block."""
    header = sealed.block.header
    leaf = leaf_hash(sealed.leaf.encode())
    if header.log_size is not None and header.log_root is not None:
        size, root, what = header.log_size, header.log_root, "log root"
        first = size - header.leaf_count
        if not first <= sealed.leaf_index < size:
            return Check(name, False, f"log index {sealed.leaf_index} is not one of block {header.height}'s leaves "
                                      f"({first}..{size - 1})")
    else:
        size, root, what = header.leaf_count, header.merkle_root, "root"
    if sealed.tree_size != size:
        return Check(name, False, f"tree size {sealed.tree_size} differs from block {header.height}'s "
                                  f"{'log_size' if what == 'log root' else 'leaf_count'} {size}")
    try:
        got = root_from_inclusion_proof(sealed.leaf_index, sealed.tree_size, leaf,
                                        [bytes.fromhex(h) for h in sealed.audit_path])
    except ProofError as exc:
        return Check(name, False, str(exc))
    ok = got.hex() == root
    return Check(name, ok, f"leaf hash {leaf.hex()[:16]}..., leaf {sealed.leaf_index} of {sealed.tree_size} -> "
                           f"{what} {got.hex()}" + ("" if ok else f", block {header.height}'s {what} is {root}"))


def _block_checks(prefix: str, block: Block, bundle_key: bytes, trusted: bytes | None) -> list[Check]:
    """The block's hash, and its signature with the key the user trusts at its height."""
    computed = block_hash(block.header)
    ok = computed == block.hash
    checks = [Check(f"{prefix}block hash", ok, f"block {block.height} header hashes to {computed.hex()}"
                    + ("" if ok else f", the bundle says {block.hash.hex()}"))]
    name = f"{prefix}block signature"
    if trusted is not None and trusted != bundle_key:
        return [*checks, Check(name, False, f"the bundle names ledger key {key_id(bundle_key)} for block "
                                            f"{block.height}, you trust {key_id(trusted)}")]
    key = trusted or bundle_key
    try:
        Ed25519PublicKey.from_public_bytes(key).verify(block.signature, block.hash)
    except InvalidSignature:
        return [*checks, Check(name, False, f"does not verify with ledger key {key_id(key)}")]
    ok = block.header["key_id"] == key_id(key)
    note = "" if trusted else " (key taken from the bundle; pin it with --ledger-key)"
    return [*checks, Check(name, ok, f"Ed25519 by ledger key {key_id(key)}{note}"
                           + ("" if ok else f", but the header names key {block.header['key_id']}"))]


def _chain_check(blocks: Mapping[int, tuple[Block, bytes]], chain: Sequence[Block] | None) -> Check:
    """Each of the bundle's blocks is the ledger's block at its height, and the chain links them to the head."""
    if chain is None:
        return Check("block in chain", None, "no chain given (use --api or --ledger to check)")
    low = min(blocks)
    for height, (block, _) in sorted(blocks.items()):
        theirs = chain[height - low] if height - low < len(chain) else None
        if theirs != block:
            held = f"block {theirs.hash.hex()}" if theirs else "no block"
            return Check("block in chain", False, f"the ledger holds {held} at height {height}, which differs "
                                                  f"from this bundle's block {block.hash.hex()}")
    first, key = blocks[low]
    try:
        verify_chain(chain[1:], key_in_force(key, (first.header,), first.height + 1), start_prev=first)
    except LedgerIntegrityError as exc:
        return Check("block in chain", False, str(exc))
    names = f"block {low} links" if len(blocks) == 1 else f"blocks {' and '.join(map(str, sorted(blocks)))} link"
    return Check("block in chain", True, f"{names} to head {chain[-1].height} through {len(chain) - 1} later "
                                         "signed blocks")


def verify_bundle(bundle: ProofBundle, view: LedgerView | None = None, asked_id: str | None = None) -> Verdict:
    """Every check, in order; the proof holds only if none is False.

    `asked_id`: the reading id the user asked the API for; the proven body must be that reading.
    """
    view = view or LedgerView()
    reading, checks = _reading_checks(bundle.reading.leaf, asked_id)
    record, record_check = _record_check(bundle, reading)
    checks += [record_check, _signature_check(reading, record),
               _path_check("merkle path", bundle.reading), _path_check("registry merkle path", bundle.registry)]

    blocks: dict[int, tuple[Block, bytes]] = {}
    for prefix, sealed in (("", bundle.reading), ("registry ", bundle.registry)):
        block, bundle_key = sealed.block.block(), unb64(sealed.ledger_public_key)
        if sealed.height in blocks:
            if blocks[sealed.height][0] != block:
                checks.append(Check(f"{prefix}block", False, f"the bundle gives two different blocks at height "
                                                             f"{sealed.height}"))
            continue
        blocks[sealed.height] = (block, view.trusted_keys.get(sealed.height) or bundle_key)
        checks += _block_checks(prefix, block, bundle_key, view.trusted_keys.get(sealed.height))
    checks.append(_chain_check(blocks, view.chain))
    checks += log_checks(bundle.log, bundle.reading, [key for _, key in blocks.values()], view.log)

    holds = all(c.ok is not False for c in checks)
    trust = TRUST_UNPROVEN
    if holds and record is not None:
        trust = TRUST_DEVICE if record.key else TRUST_INGESTOR
    return Verdict(reading.reading_id if reading else None, trust, checks)


def log_checks(log: LogProof | None, sealed: SealedLeaf, ledger_keys: Sequence[bytes],
               view: LogView | None) -> list[Check]:
    """The reading in the transparency log: the checkpoint signed by the log (a ledger key under the
    log's origin, or a --log-key), the inclusion path to its root and, given a later checkpoint the
    user trusts, consistency from the bundle's checkpoint to it."""
    view = view or LogView()
    if log is None:
        if sealed.block.header.log_size is not None:
            return [Check("log inclusion", False, f"the reading's block {sealed.height} records the log, but the "
                                                  "bundle carries no log proof (removed?)")]
        return [Check("log inclusion", None, "the bundle carries no log proof (its block predates the log)")]
    try:
        cp = open_log_checkpoint(log.checkpoint, ledger_keys, view.keys)
    except NoteError as exc:
        return [Check("log checkpoint", False, f"the bundle's checkpoint does not open with the log's keys: {exc}")]
    checks = [Check("log checkpoint", True, f"{cp.origin} {describe(cp)}, signed by the log")]
    header = sealed.block.header
    expected = sealed.leaf_index if header.log_size is not None else None  # in a v2 block it is the log index
    leaf = leaf_hash(sealed.leaf.encode())
    if log.size != cp.size:
        checks.append(Check("log inclusion", False, f"the path is for size {log.size}, the checkpoint's is {cp.size}"))
    elif expected is not None and log.index != expected:
        checks.append(Check("log inclusion", False, f"log index {log.index} is not the reading's, {expected}"))
    else:
        try:
            got = root_from_log_path(log.index, log.size, leaf, log.path)
            ok = got == cp.root
            checks.append(Check("log inclusion", ok, f"leaf {log.index} of {log.size} -> root {got.hex()}"
                                + ("" if ok else f", the checkpoint's root is {cp.root.hex()}")))
        except ProofError as exc:
            checks.append(Check("log inclusion", False, str(exc)))
    if view.later is not None:
        checks.append(_later_check(cp, view, ledger_keys))
    return checks


def _later_check(cp: Checkpoint, view: LogView, ledger_keys: Sequence[bytes]) -> Check:
    name = "log consistency"
    assert view.later is not None
    try:
        later = open_log_checkpoint(view.later, ledger_keys, view.keys)
    except NoteError as exc:
        return Check(name, False, f"the trusted checkpoint does not open with the log's keys: {exc}")
    if view.proof is None and later.size != cp.size:
        return Check(name, None, f"not checked: the consistency proof from size {cp.size} to {later.size} needs --api")
    try:
        check_consistent(cp, later, view.proof or [])
    except ProofError as exc:
        return Check(name, False, str(exc))
    return Check(name, True, f"the bundle's checkpoint (size {cp.size}) is a prefix of the trusted one "
                             f"({describe(later)})")
