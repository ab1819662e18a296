"""The custody event contract (docs/design.md, "A custody event"): who did what to which packs.

A custody event is a JSON object signed by the acting party exactly as a reading is signed by
its device: Ed25519 over the RFC 8785 (JCS) canonical bytes of the object without `sig`,
the signature in standard base64 (RFC 4648 §4). The hash that names an event (and that the
next event of each pack it touches carries in `prev`, a per-pack hash chain) is SHA-256 of
the canonical bytes of the whole event including `sig` (and `countersig`).

Validation happens when the value is built, as for `packproof.reading`: strict types, bounded
lengths, unknown fields rejected, ids restricted to characters JSON never escapes. Free text
(names, remarks, findings) is any Unicode except control characters and lone surrogates (which
have no UTF-8 form), so its RFC 8785 form is exact and a person reading it sees all of it.
The cross-field rules that need no state (`event_id` is `{actor}:{seq}`, `packs` sorted and
unique, one `prev` entry per pack, a registration names one serial) are checked here too;
who may do what in which state is `packproof.edge.custody`.

This module is kernel: simulators and the CLI sign with it, the edge checks with it, the
API parses with it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import date
from typing import Annotated, Any, Literal, get_args

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError, field_validator

from packproof.canonical import canonical_json
from packproof.crypto import b64, key_id, signature_holds, unb64
from packproof.errors import InvalidCustodyEvent
from packproof.reading import ID_PATTERN, MAX_SEQ, SIG_PATTERN
from packproof.timefmt import epoch_of

# ---- vocabulary ----

PARTY_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"  # a party id: a slug (docs/design.md, "Parties")
EVENT_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}:[1-9][0-9]{0,15}$"  # {actor}:{seq}, seq from 1, no leading zero
# RFC 3339 in UTC with a Z and exactly milliseconds, as packproof.timefmt.rfc3339 writes it:
# one spelling per instant, so two parties' events order by their text.
TS_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$"
HASH_PATTERN = r"^[0-9a-f]{64}$"  # lowercase hex SHA-256
DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}$"

MAX_EVENT_BYTES = 64 * 1024  # a body larger than this is refused before it is parsed
MAX_PACKS = 1000  # packs one event may touch (a pallet, a container)
MAX_LOTS = 1000  # cell lots one pack registration may consume
MAX_NAME = 200  # a place name, a model, a lab
MAX_TEXT = 2000  # remarks, findings

Kind = Literal[
    "pack-registered",
    "lot-registered",
    "ownership-offered",
    "ownership-accepted",
    "ownership-withdrawn",
    "transporter-assigned",
    "transporter-released",
    "picked-up",
    "handed-over",
    "location",
    "delivered",
    "received",
    "inspected",
]
KINDS: tuple[Kind, ...] = get_args(Kind)

Role = Literal["manufacturer", "carrier", "receiver", "inspector"]
ROLES: tuple[Role, ...] = get_args(Role)

ReceiptResult = Literal["accepted", "accepted-with-remarks", "rejected"]
RECEIPT_RESULTS: tuple[ReceiptResult, ...] = get_args(ReceiptResult)

Severity = Literal["info", "minor", "major", "critical"]
TestResult = Literal["pass", "fail"]

# Why an event was refused: the stable key the API answers with beside the reason text, and the
# HTTP status it maps to (docs/design.md, "Custody"). `packproof.edge.custody.Refused` carries one.
RefusalCode = Literal[
    "forbidden",
    "conflict",
    "wrong-prev",
    "replay",
    "out-of-order",
    "malformed",
    "bad-signature",
    "revoked",
    "unknown-party",
]
REFUSAL_CODES: tuple[RefusalCode, ...] = get_args(RefusalCode)
HTTP_STATUS: dict[RefusalCode, int] = {
    "forbidden": 403,
    "conflict": 409,
    "wrong-prev": 409,
    "replay": 409,
    "out-of-order": 409,
    "malformed": 422,
    "bad-signature": 403,
    "revoked": 403,
    "unknown-party": 403,
}

_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


def _canonical_base64(sig: str) -> str:
    """A signature in the one base64 spelling of its bytes (RFC 4648 §3.5: the pad bits are zero).

    `sig` is outside the signed bytes but inside the hashed ones: a second spelling of the same
    signature bytes would verify and give the event another hash, so another `prev` to chain to.
    """
    if b64(unb64(sig)) != sig:
        raise ValueError("not the canonical base64 of its bytes (the bits before '==' must be zero)")
    return sig


def _checked_text(text: str) -> str:
    """Free text without control characters (a lone surrogate pydantic's str already refuses)."""
    for ch in text:
        o = ord(ch)
        if o < 0x20 or o == 0x7F:
            raise ValueError(f"control character U+{o:04X} is not allowed in text")
    return text


PartyId = Annotated[str, StringConstraints(pattern=PARTY_PATTERN)]
Serial = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
EventId = Annotated[str, StringConstraints(pattern=EVENT_ID_PATTERN)]
Timestamp = Annotated[str, StringConstraints(pattern=TS_PATTERN)]
Signature = Annotated[str, StringConstraints(pattern=SIG_PATTERN)]
HexHash = Annotated[str, StringConstraints(pattern=HASH_PATTERN)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME)]
Text = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT)]


# ---- the event models ----


class Place(BaseModel):
    """Where an event happened: WGS 84 degrees and, optionally, the place's name."""

    model_config = _STRICT
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    name: Name | None = None

    @field_validator("name")
    @classmethod
    def _plain(cls, v: str | None) -> str | None:
        return v if v is None else _checked_text(v)


class Un38_3Results(BaseModel):
    """The outcome of each UN 38.3 test T.1-T.8 (UN Manual of Tests and Criteria, 38.3.4.1-38.3.4.8)."""

    model_config = _STRICT
    T1: TestResult
    T2: TestResult
    T3: TestResult
    T4: TestResult
    T5: TestResult
    T6: TestResult
    T7: TestResult
    T8: TestResult

    def failed(self) -> tuple[str, ...]:
        """The tests that failed, as "T.4" (the Manual's spelling), in order."""
        return tuple(f"T.{name[1:]}" for name, result in self.model_dump().items() if result == "fail")


class Un38_3Summary(BaseModel):
    """The UN 38.3 test summary a pack's type was certified by (UN Manual of Tests and Criteria, 38.3.5)."""

    model_config = _STRICT
    report_id: Name
    lab: Name
    date: Annotated[str, StringConstraints(pattern=DATE_PATTERN)]
    manual_revision: Name
    results: Un38_3Results

    @field_validator("report_id", "lab", "manual_revision")
    @classmethod
    def _plain(cls, v: str) -> str:
        return _checked_text(v)

    @field_validator("date")
    @classmethod
    def _real_date(cls, v: str) -> str:
        try:
            date.fromisoformat(v)
        except ValueError:
            raise ValueError(f"{v!r} is not a real calendar date") from None
        return v


class _Event(BaseModel):
    """The fields every custody event carries (docs/design.md, "A custody event")."""

    model_config = _STRICT
    v: Literal[1]
    event_id: EventId
    actor: PartyId
    ts: Timestamp
    packs: list[Serial] = Field(min_length=1, max_length=MAX_PACKS)
    shipment_id: Serial | None = None  # a claim the rules check: the items' shipment (edge/custody.py)
    location: Place
    prev: dict[Serial, HexHash | None]
    sig: Signature

    @field_validator("v", mode="before")
    @classmethod
    def _not_bool(cls, v: object) -> object:
        if isinstance(v, bool):  # True == 1 in Python, but `true` is not the version 1
            raise ValueError("Input should be 1")
        return v

    @field_validator("sig")
    @classmethod
    def _one_spelling(cls, sig: str) -> str:
        return _canonical_base64(sig)

    @field_validator("ts")
    @classmethod
    def _real_instant(cls, ts: str) -> str:
        try:
            epoch_of(ts)
        except ValueError:
            raise ValueError(f"{ts!r} is not a real instant") from None
        return ts

    def model_post_init(self, __context: Any) -> None:
        # Cross-field rules; raised as InvalidCustodyEvent (not a ValueError) so that pydantic
        # passes it through untouched and the field it names survives.
        actor, _, _ = self.event_id.rpartition(":")
        if actor != self.actor:
            raise InvalidCustodyEvent("event_id",
                                      f"event_id {self.event_id!r} must start with its actor {self.actor!r}")
        if self.packs != sorted(set(self.packs)):
            raise InvalidCustodyEvent("packs", f"packs must be sorted and unique, got {self.packs}")
        if set(self.prev) != set(self.packs):
            missing = sorted(set(self.packs) - set(self.prev))
            extra = sorted(set(self.prev) - set(self.packs))
            raise InvalidCustodyEvent(
                "prev", f"prev must have one entry per pack in packs: missing {missing}, not in packs {extra}"
            )
        self._check()

    def _check(self) -> None:
        """The kind's own cross-field rules (none by default)."""

    @property
    def seq(self) -> int:
        """The actor's sequence number: `event_id` is `{actor}:{seq}`, dense from 1 per party."""
        return int(self.event_id.rpartition(":")[2])

    @property
    def epoch(self) -> float:
        """`ts` as a POSIX time (packproof.timefmt.epoch_of, the one reader of RFC 3339)."""
        return epoch_of(self.ts)


class _Registration(_Event):
    """What registrations share: one new serial, the only one in `packs`."""

    serial: Serial

    def _check(self) -> None:
        if len(self.packs) != 1 or self.serial != self.packs[0]:
            raise InvalidCustodyEvent("serial", f"a registration names one serial, the one in packs: {self.packs}")


class PackRegistered(_Registration):
    """A pack maker (role manufacturer) registers a pack; ownership starts with it (ProductManager.registerProduct)."""

    kind: Literal["pack-registered"]
    model: Name
    chemistry: Name
    rated_wh: float = Field(gt=0, le=1e7)
    mass_kg: float = Field(gt=0, le=1e5)
    tracker: Serial | None = None  # the device_id of its sensor
    un38_3: Un38_3Summary
    profile: Serial  # the UN 38.3 profile its envelope checks use (packproof.edge.thresholds)
    cell_lots: list[HexHash] = Field(default_factory=list, max_length=MAX_LOTS)  # hashes of lot-registered events

    @field_validator("model", "chemistry")
    @classmethod
    def _plain(cls, v: str) -> str:
        return _checked_text(v)

    def _check(self) -> None:
        super()._check()
        if self.cell_lots != sorted(set(self.cell_lots)):
            raise InvalidCustodyEvent("cell_lots", "cell_lots must be sorted and unique")


class LotRegistered(_Registration):
    """A cell supplier (role manufacturer) registers a lot of cells, a resource (ProductManager.registerResource).

    A lot is named by the hash of this event in the `cell_lots` of the pack that consumes it.
    """

    kind: Literal["lot-registered"]
    cell_model: Name
    chemistry: Name
    cells: int = Field(ge=1, le=10_000_000)

    @field_validator("cell_model", "chemistry")
    @classmethod
    def _plain(cls, v: str) -> str:
        return _checked_text(v)


class OwnershipOffered(_Event):
    """The owner offers its packs to another party; nothing moves until that party accepts."""

    kind: Literal["ownership-offered"]
    to: PartyId

    def _check(self) -> None:
        if self.to == self.actor:
            raise InvalidCustodyEvent("to", f"an offer goes to another party, not to its actor {self.actor!r}")


class OwnershipAccepted(_Event):
    """The offered party accepts: ownership moves now, with both signatures on record."""

    kind: Literal["ownership-accepted"]
    offer: EventId


class OwnershipWithdrawn(_Event):
    """The owner withdraws a pending offer (so that it can offer the packs to someone else)."""

    kind: Literal["ownership-withdrawn"]
    offer: EventId


class TransporterAssigned(_Event):
    """The owner names the carrier responsible for the packs (MovementManager.assignTransporter/changeTransporter).

    `consignee`, optional, is the party (role receiver) the owner names as the one the packs may
    be delivered to besides itself: a carrier delivers only to the owner or to the consignee its
    owner named, never to a receiver of its own choosing (review 15, 1.8).
    """

    kind: Literal["transporter-assigned"]
    transporter: PartyId
    consignee: PartyId | None = None


class TransporterReleased(_Event):
    """The owner releases the assigned carrier while nobody carries the packs."""

    kind: Literal["transporter-released"]


class PickedUp(_Event):
    """The assigned carrier takes the packs from the site where they are."""

    kind: Literal["picked-up"]


class HandedOver(_Event):
    """The carrier holding the packs gives them to the next assigned carrier, who countersigns the same bytes."""

    kind: Literal["handed-over"]
    to: PartyId
    countersig: Signature

    @field_validator("countersig")
    @classmethod
    def _one_spelling(cls, sig: str) -> str:
        return _canonical_base64(sig)

    def _check(self) -> None:
        if self.to == self.actor:
            raise InvalidCustodyEvent("to", f"a handover goes to another carrier, not to its actor {self.actor!r}")


class LocationUpdated(_Event):
    """The carrier holding the packs says where they are (MovementManager.updateLocation)."""

    kind: Literal["location"]


class Delivered(_Event):
    """The carrier holding the packs delivers them to a receiver."""

    kind: Literal["delivered"]
    to: PartyId


class Received(_Event):
    """The receiver the packs were delivered to takes them in, with its inspection result."""

    kind: Literal["received"]
    result: ReceiptResult
    remarks: Text | None = None

    @field_validator("remarks")
    @classmethod
    def _plain(cls, v: str | None) -> str | None:
        return v if v is None else _checked_text(v)

    def _check(self) -> None:
        if self.result == "accepted-with-remarks" and self.remarks is None:
            raise InvalidCustodyEvent("remarks", "a receipt accepted-with-remarks needs its remarks")


class Inspected(_Event):
    """An inspector's finding about packs at a place and time."""

    kind: Literal["inspected"]
    finding: Text
    severity: Severity | None = None

    @field_validator("finding")
    @classmethod
    def _plain(cls, v: str) -> str:
        return _checked_text(v)


CustodyEvent = Annotated[
    PackRegistered
    | LotRegistered
    | OwnershipOffered
    | OwnershipAccepted
    | OwnershipWithdrawn
    | TransporterAssigned
    | TransporterReleased
    | PickedUp
    | HandedOver
    | LocationUpdated
    | Delivered
    | Received
    | Inspected,
    Field(discriminator="kind"),
]
"""One custody event of any kind; `event.kind` tells which model it is."""

EVENT_MODELS: dict[Kind, type[_Event]] = {
    "pack-registered": PackRegistered,
    "lot-registered": LotRegistered,
    "ownership-offered": OwnershipOffered,
    "ownership-accepted": OwnershipAccepted,
    "ownership-withdrawn": OwnershipWithdrawn,
    "transporter-assigned": TransporterAssigned,
    "transporter-released": TransporterReleased,
    "picked-up": PickedUp,
    "handed-over": HandedOver,
    "location": LocationUpdated,
    "delivered": Delivered,
    "received": Received,
    "inspected": Inspected,
}
_ADAPTER: TypeAdapter[CustodyEvent] = TypeAdapter(CustodyEvent)
_SIG_FIELDS = ("sig", "countersig")


# ---- parsing ----


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for k, v in pairs:
        if k in obj:
            raise InvalidCustodyEvent(k, f"field {k!r} appears twice: a signed object must have one meaning")
        obj[k] = v
    return obj


def _reject_constant(name: str) -> Any:
    raise InvalidCustodyEvent("", f"{name} is not JSON (RFC 8259 has no such number)")


def parse_event(data: bytes) -> CustodyEvent:
    """A custody event from the bytes of a request body; InvalidCustodyEvent names the field at fault."""
    if len(data) > MAX_EVENT_BYTES:
        raise InvalidCustodyEvent("", f"event is {len(data)} bytes, more than the {MAX_EVENT_BYTES} allowed")
    try:
        obj = json.loads(data, object_pairs_hook=_no_duplicate_keys, parse_constant=_reject_constant)
    except ValueError as exc:  # not UTF-8, not JSON, or an integer beyond Python's 4300 digits
        raise InvalidCustodyEvent("", f"event is not UTF-8 JSON: {str(exc)[:200]}") from None
    except RecursionError:  # the decoder recurses per level: 64 KiB of "[" is deeper than the stack
        raise InvalidCustodyEvent("", "event is nested too deeply to be a custody event") from None
    return event_from_object(obj)


def event_from_object(obj: object) -> CustodyEvent:
    """A custody event from a parsed JSON value (what `parse_event` does after decoding)."""
    if not isinstance(obj, dict):
        raise InvalidCustodyEvent("", f"an event is a JSON object, got {type(obj).__name__}")
    kind = obj.get("kind")
    if not isinstance(kind, str) or kind not in EVENT_MODELS:  # a list or an object is unhashable
        raise InvalidCustodyEvent("kind", f"kind: expected one of {', '.join(KINDS)}, got {kind!r}")
    try:
        return _ADAPTER.validate_python(obj)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        # loc[0] is the union tag (the kind) pydantic inserts before the field path.
        loc = [str(p) for p in err["loc"][1:]]
        field = ".".join(loc)
        if err["type"] == "missing":
            raise InvalidCustodyEvent(field, f"{field}: a {kind} event needs this field") from None
        raise InvalidCustodyEvent(field, f"{field or 'event'}: {err['msg']} (got {_short(err.get('input'))})") from None


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# ---- bytes, hashes, signatures ----


def event_object(event: CustodyEvent) -> dict[str, Any]:
    """The event as the JSON object it was built from: fields given are kept (even a null), none added."""
    return event.model_dump(exclude_unset=True)


def signing_bytes(event: CustodyEvent | Mapping[str, Any]) -> bytes:
    """What the actor (and, for `handed-over`, the next carrier) signs: RFC 8785 bytes without the signatures."""
    obj = event_object(event) if isinstance(event, BaseModel) else dict(event)
    for name in _SIG_FIELDS:
        obj.pop(name, None)
    return canonical_json(obj)


def canonical_event_bytes(event: CustodyEvent) -> bytes:
    """The RFC 8785 bytes of the whole event, signatures included: what is hashed and sealed."""
    return canonical_json(event_object(event))


def event_hash(event: CustodyEvent) -> str:
    """SHA-256 of the canonical bytes of the whole event including `sig`, lowercase hex: what `prev` names."""
    return hashlib.sha256(canonical_event_bytes(event)).hexdigest()


def signature_problem(event: CustodyEvent, actor_key: bytes, countersigner_key: bytes | None = None) -> str | None:
    """Why the event's signatures do not hold, or None. Pure: the caller picks the keys in force.

    `actor_key` is the actor's key at the event's seq; for `handed-over`, `countersigner_key`
    is the receiving carrier's (`to`) key, and its `countersig` must verify over the same bytes.
    """
    for whose, key in (("actor", actor_key), ("countersigner", countersigner_key)):
        if key is not None and len(key) != 32:
            return f"{whose} key of {event.event_id} is {len(key)} bytes, not the 32 of an Ed25519 key"
    message = signing_bytes(event)
    if not signature_holds(actor_key, unb64(event.sig), message):
        return f"sig of {event.event_id} does not verify with {event.actor}'s key {key_id(actor_key)}"
    if isinstance(event, HandedOver):
        if countersigner_key is None:
            return f"countersig of {event.event_id}: no key of {event.to} to check it with"
        if not signature_holds(countersigner_key, unb64(event.countersig), message):
            return f"countersig of {event.event_id} does not verify with {event.to}'s key {key_id(countersigner_key)}"
    return None


_PLACEHOLDER_SIG = b64(bytes(64))


def _signed(body: Mapping[str, Any], key: Ed25519PrivateKey, name: str) -> dict[str, Any]:
    obj = dict(body)
    probe = {f: obj.get(f, _PLACEHOLDER_SIG) for f in _SIG_FIELDS if f == "sig" or obj.get("kind") == "handed-over"}
    event_from_object({**obj, **probe})  # the body must be a valid event before anyone signs it
    obj[name] = b64(key.sign(signing_bytes(obj)))
    return obj


def sign_event(body: Mapping[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """`body` with the actor's `sig` added (a new dict); InvalidCustodyEvent if the body is not a valid event."""
    return _signed(body, key, "sig")


def countersign(body: Mapping[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """`body` (a `handed-over`) with the next carrier's `countersig` added, over the same bytes as `sig`."""
    if body.get("kind") != "handed-over":
        raise InvalidCustodyEvent("kind", f"only a handed-over event is countersigned, not {body.get('kind')!r}")
    return _signed(body, key, "countersig")


_EVENT_ID_RE = re.compile(EVENT_ID_PATTERN)


def parse_event_id(event_id: str) -> tuple[str, int]:
    """Split `{party}:{seq}`; raises ValueError with a message a person can act on."""
    if not _EVENT_ID_RE.match(event_id) or int(event_id.rpartition(":")[2]) > MAX_SEQ:
        raise ValueError(f"event id {event_id!r} is not of the form <party>:<seq> (seq from 1)")
    party, _, seq = event_id.rpartition(":")
    return party, int(seq)
