"""`/custody/...`, `/packs/{serial}/custody`, `/shipments/{id}/custody`: custody events in and out (issue 15).

`POST /custody/events` takes a signed custody event (packproof/custody.py). The signed body is
the authentication: no bearer token; who may do what is the state machine's
(packproof/edge/custody.py). Accepting is one write transaction: the state of the items the
event touches and of the parties it names is read, `apply` decides, and the new state, the
event, a per-item step and the event's record leaf (device id `~custody`, sealed like a
reading) are written; writers take turns (packproof/db), so of two racing events for one pack
exactly one is accepted and the other is refused against the state the first left. A refused
event is kept with its reason (`GET /custody/refused`). Answers: 201 `{"event_id", "hash"}`;
403/409/422 `{"detail", "code"}` (codes and statuses: `packproof.custody.HTTP_STATUS`).

After the commit, one MQTT notification per accepted event (api/notify.py); a broker that is
down never fails the request.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import json
import time
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from packproof.anchor.custody_proof import NotSealed as ProofNotSealed
from packproof.anchor.custody_proof import custody_proof_bundle
from packproof.api.deps import MAX_ROW, StoreDep
from packproof.api.notify import CustodyNotifier
from packproof.custody import (
    HTTP_STATUS,
    MAX_EVENT_BYTES,
    CustodyEvent,
    PackRegistered,
    RefusalCode,
    canonical_event_bytes,
    event_object,
    parse_event,
    parse_event_id,
)
from packproof.edge.custody import (
    Accepted,
    CustodyState,
    PartyView,
    Refused,
    apply,
    custody_intervals,
    state_keys,
)
from packproof.edge.custody_codec import item_json, item_of
from packproof.edge.custody_intake import implausible_ts, tracker_refusal
from packproof.edge.decode import PLAUSIBLE, Plausibility
from packproof.errors import InvalidCustodyEvent
from packproof.records import CustodyEventRecord, CustodyStep
from packproof.store import QUARANTINE_KEEP, Store
from packproof.timefmt import rfc3339

router = APIRouter(tags=["custody"])  # reads: the reader token, if the API has one
intake = APIRouter(tags=["custody"])  # POST /custody/events: no token, the signature is the authentication

PAGE_MAX = 500


# ---- accepting an event ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Decision:
    """What became of a posted body: the accepted event, or the refusal with its code."""

    event: CustodyEventRecord | None
    code: RefusalCode | None = None
    reason: str = ""
    parsed: CustodyEvent | None = None


def _claimed(body: bytes) -> tuple[str | None, str | None]:
    """The actor and event id a body that did not parse claims, for the refusal's row (never trusted)."""
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError):
        return None, None
    if not isinstance(obj, dict):
        return None, None
    actor, event_id = obj.get("actor"), obj.get("event_id")
    return (actor[:64] if isinstance(actor, str) else None, event_id[:80] if isinstance(event_id, str) else None)


async def accept_event(store: Store, body: bytes, now: float | None = None,
                       limits: Plausibility = PLAUSIBLE) -> Decision:
    """Parse, decide and record one posted body (the whole of POST /custody/events but the HTTP).

    Besides the rules (`apply`), the intake's own checks (edge/custody_intake.py): the tracker a
    registration claims, and the event's `ts` within `limits` (the ingest settings
    `max_clock_ahead` and `earliest_ts`, as for readings)."""
    now = time.time() if now is None else now
    try:
        event = parse_event(body)
    except InvalidCustodyEvent as exc:
        actor, event_id = _claimed(body)
        await store.refuse_custody(now, body, "malformed", str(exc), actor, event_id)
        return Decision(None, "malformed", str(exc))
    async with store.transaction(f"accepting custody event {event.event_id}"):
        outcome = apply(await _state(store, event), event, await _parties(store, event))
        if isinstance(outcome, Accepted) and isinstance(event, PackRegistered) and event.tracker is not None:
            outcome = tracker_refusal(event.serial, event.shipment_id,
                                      await store.custody_tracker_claim(event.tracker)) or outcome
        if isinstance(outcome, Accepted):
            outcome = implausible_ts(event, now, limits) or outcome
        if isinstance(outcome, Refused):
            await store.refuse_custody(now, body, outcome.code, outcome.reason, event.actor, event.event_id)
            return Decision(None, outcome.code, outcome.reason, event)
        record = await _record(store, event, outcome, now)
    return Decision(record, parsed=event)


async def _parties(store: Store, event: CustodyEvent) -> dict[str, PartyView]:
    out = {}
    for party_id in sorted(state_keys(event).parties):
        record = await store.party(party_id)
        if record is not None:
            out[party_id] = PartyView.of(record)
    return out


async def _state(store: Store, event: CustodyEvent) -> CustodyState:
    """The part of the custody state `event` reads (`state_keys`): its items, its lots, its parties' seqs."""
    keys = state_keys(event)
    lots = {h.hex(): serial for h, serial in
            (await store.custody_lots([bytes.fromhex(h) for h in sorted(keys.lot_hashes)])).items()}
    items = await store.custody_items(sorted(keys.items | set(lots.values())))
    return CustodyState({serial: item_of(text) for serial, text in items.items()},
                        await store.custody_seqs(sorted(keys.parties)), lots)


async def _record(store: Store, event: CustodyEvent, outcome: Accepted, now: float) -> CustodyEventRecord:
    canonical = canonical_event_bytes(event)
    digest = bytes.fromhex(outcome.event_hash)
    positions = await store.custody_positions([i.serial for i in outcome.items])
    steps = [CustodyStep(i.serial, positions.get(i.serial, 0) + 1, event.event_id, event.kind, event.ts, event.actor,
                         i.owner, i.transporter, i.holder) for i in outcome.items]
    new = {i.serial: bytes.fromhex(i.registration) for i in outcome.items if i.serial not in positions}
    trackers = {event.serial: event.tracker} if isinstance(event, PackRegistered) else {}
    return await store.record_custody_event(
        CustodyEventRecord(event.event_id, event.actor, event.seq, event.kind, event.ts, digest, canonical, 0,
                           event.shipment_id),
        steps, {i.serial: item_json(i) for i in outcome.items}, new, trackers,
        {"record": "custody-event", "event": event_object(event)}, now)


# ---- HTTP -----------------------------------------------------------------------------------


class EventAccepted(BaseModel):
    event_id: str
    hash: str


def _problem(status: int, detail: str, code: str) -> JSONResponse:
    return JSONResponse({"detail": detail, "code": code}, status_code=status)


async def _body(request: Request) -> bytes | None:
    """The request body, read no further than an event can be long (None: longer)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_EVENT_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def _writer(request: Request) -> Store:
    """The API's one writer connection, opened at the first event (the API otherwise only reads)."""
    state = request.app.state
    async with state.custody_open_lock:
        if state.custody_store is None:
            state.custody_store = await state.settings.data_dir.open_writer()  # its rows carry the intake MAC
    store: Store = state.custody_store
    return store


@intake.post("/custody/events", status_code=201, response_model=EventAccepted,
             responses={403: {"description": "a rule broken"}, 409: {"description": "conflict, wrong prev, replay"},
                        422: {"description": "malformed"}},
             openapi_extra={"requestBody": {"required": True, "description": "the signed custody event "
                                            "(docs/design.md, \"A custody event\")",
                                            "content": {"application/json": {"schema": {"type": "object"}}}}})
async def post_event(request: Request) -> Any:
    """Accept a signed custody event; the body is the event itself (packproof/custody.py)."""
    body = await _body(request)
    store = await _writer(request)
    if body is None:
        reason = f"event is more than the {MAX_EVENT_BYTES} bytes an event can be"
        await store.refuse_custody(time.time(), b"", "malformed", reason, None, None)
        return _problem(422, reason, "malformed")
    decision = await accept_event(store, body, limits=request.app.state.settings.plausibility)
    if decision.event is None:
        code = decision.code or "malformed"
        return _problem(HTTP_STATUS[code], decision.reason, code)
    e = decision.event
    notifier: CustodyNotifier | None = request.app.state.custody_notifier
    if notifier is not None and decision.parsed is not None:
        notifier.notify(e.shipment_id, e.event_id, e.hash.hex(), event_object(decision.parsed))
    return JSONResponse({"event_id": e.event_id, "hash": e.hash.hex()}, status_code=201)


def _event_doc(e: CustodyEventRecord) -> dict[str, Any]:
    return {"event_id": e.event_id, "kind": e.kind, "actor": e.actor, "ts": e.ts,
            "received_at": rfc3339(e.received_at) if e.received_at is not None else None, "hash": e.hash.hex(),
            "shipment_id": e.shipment_id, "block_height": e.place.height if e.place else None,
            "leaf_index": e.place.index if e.place else None, "event": orjson.loads(e.body)}


async def _accepted(store: Store, event_id: str) -> CustodyEventRecord:
    """The accepted event `event_id` names: 422 for an id that is not `party:seq`, 404 if none."""
    try:
        parse_event_id(event_id)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    e = await store.custody_event(event_id)
    if e is None:
        raise HTTPException(404, f"custody event {event_id!r} is not accepted here")
    return e


@router.get("/custody/events/{event_id}")
async def get_event(store: StoreDep, event_id: str) -> dict[str, Any]:
    """One accepted event, and where it is sealed (`/proof` for its proof bundle)."""
    e = await _accepted(store, event_id)
    return _event_doc(e)


@router.get("/custody/events/{event_id}/proof")
async def get_event_proof(request: Request, store: StoreDep, event_id: str) -> dict[str, Any]:
    """The proof bundle of an accepted event: `packproof verify EVENT_ID --custody` (or `--bundle FILE`) checks it."""
    e = await _accepted(store, event_id)
    try:
        bundle = await custody_proof_bundle(store, request.app.state.ledger_keys, e)
    except ProofNotSealed as exc:
        raise HTTPException(409, str(exc)) from None
    return bundle.document()


@router.get("/packs/{serial}/custody")
async def get_pack_custody(store: StoreDep, serial: str) -> dict[str, Any]:
    """A pack's custody: its accepted events (chain order, the state after each), who owned it and who
    carried it over time, and `head`: the hash its next event's `prev` must name."""
    history = await store.pack_custody(serial)
    steps, events = history.steps, history.events
    if not steps:
        raise HTTPException(404, f"pack {serial!r} has no accepted custody event (register it first)")
    spans = custody_intervals(serial, [parse_event(e.body) for e in events])
    last = steps[-1]
    return {
        "serial": serial, "owner": last.owner, "transporter": last.transporter, "holder": last.holder,
        "head": events[-1].hash.hex(),
        "events": [{**_event_doc(e), "owner": s.owner, "transporter": s.transporter, "holder": s.holder}
                   for s, e in zip(steps, events, strict=True)],
        "owners": [_interval(i) for i in spans.owners], "carriers": [_interval(i) for i in spans.carriers]}


def _interval(i: Any) -> dict[str, Any]:
    return {"party": i.party, "from": i.start, "from_event": i.start_event, "to": i.end, "to_event": i.end_event}


@router.get("/shipments/{shipment_id}/custody")
async def get_shipment_custody(
    store: StoreDep, shipment_id: str,
    after: Annotated[int, Query(ge=0, le=MAX_ROW, description="cursor: next_after of the last page")] = 0,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 100,
) -> dict[str, Any]:
    """The custody events of the shipment's packs, in the order they were accepted: the packs an event named
    with this shipment and those tracked by its devices (`Store.shipment_custody`)."""
    events = await store.shipment_custody(shipment_id, after, limit)
    return {"shipment_id": shipment_id, "events": [_event_doc(e) for e in events],
            "next_after": events[-1].leaf_id if len(events) == limit else None}


@router.get("/custody/refused")
async def get_refused(
    store: StoreDep,
    actor: Annotated[str | None, Query(description="Only events claiming this actor.")] = None,
    before: Annotated[int | None, Query(ge=1, le=MAX_ROW, description="Cursor: next_before of the last page.")]
    = None,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 100,
) -> dict[str, Any]:
    """Refused events, newest first, with the rule each broke; the body as posted (its first 4 KiB)."""
    rows = await store.custody_refused(actor=actor, before_id=before, limit=limit, body_max=QUARANTINE_KEEP)
    items = []
    for r in rows:
        try:
            text: str | None = r.body.decode()
        except UnicodeDecodeError:
            text = None
        items.append({"id": r.id, "received_at": rfc3339(r.received_at), "code": r.code, "reason": r.reason,
                      "actor": r.actor, "event_id": r.event_id, "body_text": text,
                      "body_b64": base64.b64encode(r.body).decode(), "body_sha256": hashlib.sha256(r.body).hexdigest()})
    return {"items": items, "next_before": rows[-1].id if len(rows) == limit else None}


async def close_writer(state: Any) -> None:
    """At the API's shutdown: the writer connection, if an event opened it."""
    if state.custody_store is not None:
        await state.custody_store.close()
        state.custody_store = None


def init_state(state: Any, notifier: CustodyNotifier | None) -> None:
    state.custody_store = None
    state.custody_open_lock = asyncio.Lock()
    state.custody_notifier = notifier
