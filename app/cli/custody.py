"""`packproof custody`: sign a custody event with a party's key and submit it to the API; show a pack's custody.

Every command builds the event from its flags, reads what the event must name from the API
(`prev`: the hash of each pack's latest accepted event, from GET /packs/{serial}/custody; the
party's next seq, from GET /parties/{id}), signs it (packproof.custody, RFC 8785 bytes,
Ed25519) and POSTs it to /custody/events. The signed body is the authentication: posting needs
no token. An API started with a read token (`api --read-token-file`) wants it for the reads the
commands make: `packproof custody --token TOKEN ...` or PACKPROOF_TOKEN, sent as a bearer token.

A handover needs two signatures: `handover` signs as the carrier handing over and writes the
event to a file (`--out`); the next carrier checks it and submits it with `countersign FILE`.
Exit codes are packproof's (app/cli/common.py): a refused event is 1 (the rule it broke is
printed), bad input 2, an API that cannot be reached 3.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from packproof.app.cli.common import Exit, fail, out
from packproof.errors import InvalidCustodyEvent

if TYPE_CHECKING:  # imported where used: `packproof --help` stays quick
    import httpx
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

custody_app = typer.Typer(no_args_is_help=True, help="Custody events: sign with a party's key, submit, show.")


@dataclass(slots=True)
class _Session:
    """What the command group's options set for the one command a `packproof` process runs."""

    token: str | None = None


_SESSION = _Session()


@custody_app.callback()
def _session(token: Annotated[str | None, typer.Option(
        envvar="PACKPROOF_TOKEN", help="Bearer token for an API that requires one for reads (`api --read-token-file`)."
        )] = None) -> None:
    """Custody events: sign with a party's key, submit, show."""
    _SESSION.token = token


def _client() -> httpx.Client:
    """An HTTP client for the API, with the bearer token of `--token` / PACKPROOF_TOKEN when one is given."""
    import httpx  # not at start-up: httpx

    token = _SESSION.token
    return httpx.Client(timeout=30, headers={"authorization": f"Bearer {token}"} if token else {})


Packs = Annotated[list[str], typer.Argument(help="The pack serials the event concerns.")]
PartyOpt = Annotated[str, typer.Option("--party", help="The acting party's id (the event's actor).")]
KeyOpt = Annotated[Path, typer.Option("--party-key", help="The acting party's Ed25519 private key (PEM).")]
ApiOpt = Annotated[str, typer.Option("--api", envvar="PACKPROOF_API", help="Base URL of the packproof API.")]
AtOpt = Annotated[str, typer.Option("--at", help="Where it happens: LAT,LON or LAT,LON,PLACE NAME.")]
ShipmentOpt = Annotated[str | None, typer.Option("--shipment", help="The shipment the packs travel in.")]
TsOpt = Annotated[str | None, typer.Option("--ts", help="When it happened (RFC 3339 UTC, ms); default: now.")]


def _place(at: str) -> dict[str, Any]:
    lat, _, rest = at.partition(",")
    lon, _, name = rest.partition(",")
    try:
        place: dict[str, Any] = {"lat": float(lat), "lon": float(lon)}
    except ValueError:
        fail(Exit.BAD_INPUT, f"--at {at!r}: expected LAT,LON or LAT,LON,NAME (degrees)")
    if name.strip():
        place["name"] = name.strip()
    return place


def _load_key(path: Path) -> Ed25519PrivateKey:
    from cryptography.hazmat.primitives import serialization  # not at start-up: cryptography
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # not at start-up: cryptography

    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        fail(Exit.BAD_INPUT, f"cannot read party key {path}: {exc.strerror or exc}")
    except (ValueError, TypeError) as exc:
        fail(Exit.BAD_INPUT, f"party key {path} is not an unencrypted PEM private key: {exc}")
    if not isinstance(key, Ed25519PrivateKey):
        fail(Exit.BAD_INPUT, f"party key {path} is not an Ed25519 key")
    return key


def _get(client: httpx.Client, url: str) -> Any:
    """GET as JSON; unreachable or not JSON is exit 3, the API's 404/422 is bad input (2)."""
    import httpx  # not at start-up: httpx

    try:
        r = client.get(url)
    except httpx.HTTPError as exc:
        fail(Exit.UNREACHABLE, f"cannot reach the API at {url}: {exc}")
    try:
        doc = r.json()
    except ValueError:
        fail(Exit.UNREACHABLE, f"{url} answered {r.status_code} with something that is not JSON: {r.text[:80]!r}")
    if r.status_code in (404, 422) and isinstance(doc, dict) and isinstance(doc.get("detail"), str):
        fail(Exit.BAD_INPUT, f"{url}: {doc['detail']}")
    if r.status_code in (401, 403) and isinstance(doc, dict) and isinstance(doc.get("detail"), str):
        fail(Exit.BAD_INPUT, f"{url}: {doc['detail']} (give it with --token or PACKPROOF_TOKEN)")
    if r.status_code != 200:
        fail(Exit.UNREACHABLE, f"{url} answered {r.status_code}: {r.text[:200]}")
    return doc


def _heads(client: httpx.Client, base: str, packs: list[str], *, new: bool = False) -> dict[str, str | None]:
    """Each pack's `prev`: the hash of its latest accepted event (None for a pack with none yet)."""
    heads: dict[str, str | None] = {}
    for serial in packs:
        if new:
            heads[serial] = None
            continue
        doc = _get(client, f"{base}/packs/{serial}/custody")
        heads[serial] = doc.get("head") if isinstance(doc, dict) else None
    return heads


def _next_seq(client: httpx.Client, base: str, party: str) -> int:
    doc = _get(client, f"{base}/parties/{party}")
    seq = doc.get("next_seq") if isinstance(doc, dict) else None
    if type(seq) is not int:
        fail(Exit.UNREACHABLE, f"{base}/parties/{party} did not answer a next_seq")
    return seq


def _now() -> str:
    from packproof.timefmt import rfc3339  # not at start-up: datetime formatting only

    return rfc3339()


def _build(api: str, party: str, kind: str, packs: list[str], at: str, shipment: str | None, ts: str | None,
           fields: dict[str, Any], *, new: bool = False) -> tuple[str, dict[str, Any]]:
    """The unsigned event body, with `prev` and the event id read from the API."""
    base = api.rstrip("/")
    serials = sorted(set(packs))
    place = _place(at)  # bad input is named before the API is asked anything
    with _client() as client:
        heads = _heads(client, base, serials, new=new)
        seq = _next_seq(client, base, party)
    body: dict[str, Any] = {"v": 1, "kind": kind, "event_id": f"{party}:{seq}", "actor": party, "ts": ts or _now(),
                            "packs": serials, "location": place, "prev": heads, **fields}
    if shipment is not None:
        body["shipment_id"] = shipment
    return base, body


def _sign(body: dict[str, Any], key_file: Path, *, counter: bool = False) -> dict[str, Any]:
    from packproof.custody import countersign, sign_event  # not at start-up: pydantic models

    key = _load_key(key_file)
    try:
        return countersign(body, key) if counter else sign_event(body, key)
    except InvalidCustodyEvent as exc:
        fail(Exit.BAD_INPUT, f"not a valid {body.get('kind')} event: {exc}")


def submit(base: str, event: dict[str, Any]) -> dict[str, Any]:
    """POST the signed event; 201 prints its id and hash. A refusal exits 1 with the rule it broke."""
    import httpx  # not at start-up: httpx

    url = f"{base}/custody/events"
    try:
        with _client() as client:
            r = client.post(url, content=json.dumps(event).encode(), headers={"content-type": "application/json"})
    except httpx.HTTPError as exc:
        fail(Exit.UNREACHABLE, f"cannot reach the API at {url}: {exc}")
    try:
        doc = r.json()
    except ValueError:
        fail(Exit.UNREACHABLE, f"{url} answered {r.status_code} with something that is not JSON: {r.text[:80]!r}")
    if r.status_code == 201 and isinstance(doc, dict):
        out.print(f"accepted {doc.get('event_id')} (hash {doc.get('hash')})", highlight=False)
        return doc
    detail = doc.get("detail") if isinstance(doc, dict) else None
    code = doc.get("code") if isinstance(doc, dict) else None
    if r.status_code in (403, 409) and isinstance(detail, str):
        fail(Exit.INVALID, f"refused ({code}): {detail}")
    if r.status_code == 422 and isinstance(detail, str):
        fail(Exit.BAD_INPUT, f"refused as malformed: {detail}")
    fail(Exit.UNREACHABLE, f"{url} answered {r.status_code}: {r.text[:200]}")


def _post(api: str, party: str, key: Path, kind: str, packs: list[str], at: str, shipment: str | None,
          ts: str | None, fields: dict[str, Any], *, new: bool = False) -> None:
    base, body = _build(api, party, kind, packs, at, shipment, ts, fields, new=new)
    submit(base, _sign(body, key))


@custody_app.command()
def register(
    serial: Annotated[str, typer.Argument(help="The new pack's serial.")],
    party: PartyOpt, party_key: KeyOpt, api: ApiOpt, at: AtOpt,
    model: Annotated[str, typer.Option(help="Pack model.")],
    chemistry: Annotated[str, typer.Option(help="Cell chemistry, e.g. NMC811.")],
    rated_wh: Annotated[float, typer.Option(help="Rated energy, Wh.")],
    mass_kg: Annotated[float, typer.Option(help="Mass, kg.")],
    un38_3: Annotated[Path, typer.Option("--un38-3", help="JSON file: the UN 38.3 test summary {report_id, lab, "
                                                          "date, manual_revision, results {T1..T8}}.")],
    profile: Annotated[str, typer.Option(help="The UN 38.3 profile its envelope checks use.")] = "un38.3-cell",
    tracker: Annotated[str | None, typer.Option(help="The device id of the pack's sensor.")] = None,
    cell_lot: Annotated[list[str] | None, typer.Option(help="Hash of a lot-registered event it is built from.")]
    = None,
    shipment: ShipmentOpt = None, ts: TsOpt = None,
) -> None:
    """`pack-registered` by its manufacturer: ownership starts with it."""
    try:
        summary = json.loads(un38_3.read_text())
    except (OSError, ValueError) as exc:
        fail(Exit.BAD_INPUT, f"--un38-3 {un38_3}: cannot read a JSON summary: {exc}")
    fields: dict[str, Any] = {"serial": serial, "model": model, "chemistry": chemistry, "rated_wh": rated_wh,
                              "mass_kg": mass_kg, "un38_3": summary, "profile": profile,
                              "cell_lots": sorted(set(cell_lot or []))}
    if tracker is not None:
        fields["tracker"] = tracker
    _post(api, party, party_key, "pack-registered", [serial], at, shipment, ts, fields, new=True)


@custody_app.command()
def offer(packs: Packs, party: PartyOpt, party_key: KeyOpt, api: ApiOpt, at: AtOpt,
          to: Annotated[str, typer.Option(help="The party offered ownership.")],
          shipment: ShipmentOpt = None, ts: TsOpt = None) -> None:
    """`ownership-offered` by the owner; nothing moves until `to` accepts."""
    _post(api, party, party_key, "ownership-offered", packs, at, shipment, ts, {"to": to})


@custody_app.command()
def accept(packs: Packs, party: PartyOpt, party_key: KeyOpt, api: ApiOpt, at: AtOpt,
           offer: Annotated[str, typer.Option(help="The event id of the offer accepted (party:seq).")],
           shipment: ShipmentOpt = None, ts: TsOpt = None) -> None:
    """`ownership-accepted` by the party offered: ownership moves now."""
    _post(api, party, party_key, "ownership-accepted", packs, at, shipment, ts, {"offer": offer})


@custody_app.command()
def withdraw(packs: Packs, party: PartyOpt, party_key: KeyOpt, api: ApiOpt, at: AtOpt,
             offer: Annotated[str, typer.Option(help="The event id of the pending offer withdrawn (party:seq).")],
             shipment: ShipmentOpt = None, ts: TsOpt = None) -> None:
    """`ownership-withdrawn` by the owner: its pending offer lapses, and the packs may be offered again."""
    _post(api, party, party_key, "ownership-withdrawn", packs, at, shipment, ts, {"offer": offer})


@custody_app.command("register-lot")
def register_lot(
    serial: Annotated[str, typer.Argument(help="The new cell lot's serial.")],
    party: PartyOpt, party_key: KeyOpt, api: ApiOpt, at: AtOpt,
    cell_model: Annotated[str, typer.Option(help="Cell model, e.g. 'NMC 21700'.")],
    chemistry: Annotated[str, typer.Option(help="Cell chemistry, e.g. NMC811.")],
    cells: Annotated[int, typer.Option(help="How many cells the lot holds.", min=1)],
    shipment: ShipmentOpt = None, ts: TsOpt = None,
) -> None:
    """`lot-registered` by a cell supplier (role manufacturer); a pack built from it names the hash printed
    (`register --cell-lot HASH`)."""
    _post(api, party, party_key, "lot-registered", [serial], at, shipment, ts,
          {"serial": serial, "cell_model": cell_model, "chemistry": chemistry, "cells": cells}, new=True)


@custody_app.command()
def assign(packs: Packs, party: PartyOpt, party_key: KeyOpt, api: ApiOpt, at: AtOpt,
           transporter: Annotated[str, typer.Option(help="The carrier made responsible.")],
           consignee: Annotated[str | None, typer.Option(
               help="The receiver the carrier may deliver to besides the owner (the rules' `consignee`).")] = None,
           shipment: ShipmentOpt = None, ts: TsOpt = None) -> None:
    """`transporter-assigned` by the owner."""
    fields = {"transporter": transporter, **({"consignee": consignee} if consignee is not None else {})}
    _post(api, party, party_key, "transporter-assigned", packs, at, shipment, ts, fields)


@custody_app.command()
def release(packs: Packs, party: PartyOpt, party_key: KeyOpt, api: ApiOpt, at: AtOpt,
            shipment: ShipmentOpt = None, ts: TsOpt = None) -> None:
    """`transporter-released` by the owner."""
    _post(api, party, party_key, "transporter-released", packs, at, shipment, ts, {})


@custody_app.command()
def pickup(packs: Packs, party: PartyOpt, party_key: KeyOpt, api: ApiOpt, at: AtOpt,
           shipment: ShipmentOpt = None, ts: TsOpt = None) -> None:
    """`picked-up` by the assigned carrier."""
    _post(api, party, party_key, "picked-up", packs, at, shipment, ts, {})


@custody_app.command()
def handover(packs: Packs, party: PartyOpt, party_key: KeyOpt, api: ApiOpt, at: AtOpt,
             to: Annotated[str, typer.Option(help="The next carrier, who countersigns.")],
             out_file: Annotated[Path, typer.Option("--out", help="Write the half-signed event here, for `to`.")],
             shipment: ShipmentOpt = None, ts: TsOpt = None) -> None:
    """`handed-over`, first half: signed by the carrier handing over, written for the next carrier to countersign.

    `prev` and the event id are fixed now: an event accepted for these packs in between makes it
    refused (wrong prev), and the handover must be signed again.
    """
    _, body = _build(api, party, "handed-over", packs, at, shipment, ts, {"to": to})
    signed = _sign(body, party_key)  # the countersig, added by `to`, is over the same bytes
    try:
        out_file.write_text(json.dumps(signed, indent=1) + "\n")
    except OSError as exc:
        fail(Exit.BAD_INPUT, f"cannot write {out_file}: {exc.strerror or exc}")
    out.print(f"handover {signed['event_id']} signed by {party}, written to {out_file}: {to} countersigns it with "
              f"`packproof custody countersign {out_file} --party-key ...`", highlight=False)


@custody_app.command()
def countersign(event_file: Annotated[Path, typer.Argument(help="The half-signed handover (`handover --out`).")],
                party_key: KeyOpt, api: ApiOpt) -> None:
    """`handed-over`, second half: the next carrier checks it is the `to`, sees what it signs, countersigns
    the same bytes and submits it.

    The key must be `to`'s own (its key at its next seq, from GET /parties/{to}), and the first
    signature must hold: a carrier countersigns only a handover to itself, from the carrier that
    signed it.
    """
    from packproof.crypto import b64, key_id, public_key_bytes, signature_holds, unb64  # not at start-up: cryptography
    from packproof.custody import signing_bytes  # not at start-up: pydantic models

    try:
        body = json.loads(event_file.read_text())
    except (OSError, ValueError) as exc:
        fail(Exit.BAD_INPUT, f"cannot read the handover {event_file}: {exc}")
    if not isinstance(body, dict) or body.get("kind") != "handed-over":
        fail(Exit.BAD_INPUT, f"{event_file} is not a handed-over event")
    to = body.get("to")
    if not isinstance(to, str):
        fail(Exit.BAD_INPUT, f"{event_file} names no `to`: nobody is to countersign it")
    key = _load_key(party_key)
    base = api.rstrip("/")
    with _client() as client:
        signer = _get(client, f"{base}/parties/{to}")
        actor = _get(client, f"{base}/parties/{body.get('actor')}") if isinstance(body.get("actor"), str) else None
    mine = b64(public_key_bytes(key))
    next_seq = signer.get("next_seq") if isinstance(signer, dict) else None
    theirs = _key_at(signer, next_seq) if isinstance(next_seq, int) else None
    if mine != theirs:
        fail(Exit.BAD_INPUT, f"{party_key} is not the key of {to}, whom this handover is to (key "
                             f"{key_id(public_key_bytes(key))}): only {to} countersigns it")
    try:
        seq = int(str(body.get("event_id", "")).rpartition(":")[2])
        holds = signature_holds(unb64(_key_at(actor, seq) or ""), unb64(str(body.get("sig", ""))),
                                signing_bytes(body)) if isinstance(actor, dict) else False
    except (ValueError, TypeError):  # an event id with no seq, a key or sig that is no base64, no JSON value
        holds = False
    if not holds:
        fail(Exit.BAD_INPUT, f"{event_file}: the signature of {body.get('actor')} does not hold (changed since it "
                             "was signed, or not signed by it): not countersigned")
    out.print(f"countersigning {_summary(body)}", highlight=False)
    submit(base, _sign(body, party_key, counter=True))


def _summary(body: dict[str, Any]) -> str:
    """What a handover says, in one line: who hands which packs to whom, when and where."""
    packs = body.get("packs")
    found = body.get("location")
    place: dict[str, Any] = found if isinstance(found, dict) else {}
    where = f"{place.get('name') or ''} ({place.get('lat')}, {place.get('lon')})".strip()
    shipment = f", shipment {body['shipment_id']}" if isinstance(body.get("shipment_id"), str) else ""
    return (f"{body.get('event_id')}: {body.get('actor')} hands "
            f"{', '.join(map(str, packs)) if isinstance(packs, list) else packs} over to {body.get('to')} at "
            f"{body.get('ts')}, {where}{shipment}")


def _key_at(party: dict[str, Any], seq: int) -> str | None:
    """A party document's (GET /parties/{id}) key in force at event `seq`: the last one valid from at or below it."""
    keys = [k for k in party.get("keys", []) if isinstance(k, dict) and int(k.get("valid_from_seq", 0)) <= seq]
    return str(keys[-1]["public_key"]) if keys else None


@custody_app.command()
def location(packs: Packs, party: PartyOpt, party_key: KeyOpt, api: ApiOpt, at: AtOpt,
             shipment: ShipmentOpt = None, ts: TsOpt = None) -> None:
    """`location` by the carrier holding the packs."""
    _post(api, party, party_key, "location", packs, at, shipment, ts, {})


@custody_app.command()
def deliver(packs: Packs, party: PartyOpt, party_key: KeyOpt, api: ApiOpt, at: AtOpt,
            to: Annotated[str, typer.Option(help="The receiver.")],
            shipment: ShipmentOpt = None, ts: TsOpt = None) -> None:
    """`delivered` by the carrier holding the packs."""
    _post(api, party, party_key, "delivered", packs, at, shipment, ts, {"to": to})


@custody_app.command()
def receive(packs: Packs, party: PartyOpt, party_key: KeyOpt, api: ApiOpt, at: AtOpt,
            result: Annotated[str, typer.Option(help="accepted, accepted-with-remarks or rejected.")],
            remarks: Annotated[str | None, typer.Option(help="What was found (needed with remarks).")] = None,
            shipment: ShipmentOpt = None, ts: TsOpt = None) -> None:
    """`received` by the receiver, with its inspection result."""
    fields: dict[str, Any] = {"result": result}
    if remarks is not None:
        fields["remarks"] = remarks
    _post(api, party, party_key, "received", packs, at, shipment, ts, fields)


@custody_app.command()
def inspect(packs: Packs, party: PartyOpt, party_key: KeyOpt, api: ApiOpt, at: AtOpt,
            finding: Annotated[str, typer.Option(help="What the inspector found.")],
            severity: Annotated[str | None, typer.Option(help="info, minor, major or critical.")] = None,
            shipment: ShipmentOpt = None, ts: TsOpt = None) -> None:
    """`inspected` by an inspector: a finding about the packs at a place and time."""
    fields: dict[str, Any] = {"finding": finding}
    if severity is not None:
        fields["severity"] = severity
    _post(api, party, party_key, "inspected", packs, at, shipment, ts, fields)


@custody_app.command()
def show(serial: Annotated[str, typer.Argument(help="The pack serial.")], api: ApiOpt,
         as_json: Annotated[bool, typer.Option("--json", help="The document GET /packs/{serial}/custody serves.")]
         = False) -> None:
    """A pack's custody: each accepted event, and who owned and carried it when."""
    with _client() as client:
        doc = _get(client, f"{api.rstrip('/')}/packs/{serial}/custody")
    if as_json:
        out.print_json(json.dumps(doc))
        return
    if not isinstance(doc, dict) or not isinstance(doc.get("events"), list):
        fail(Exit.UNREACHABLE, "the API did not answer a pack's custody document")
    out.print(f"pack {serial}: owner {doc.get('owner') or '-'}, held by {doc.get('holder') or '-'}, transporter "
              f"{doc.get('transporter') or '-'}, {len(doc['events'])} event(s), head {doc.get('head')}",
              highlight=False)
    for e in doc["events"]:
        sealed = f"block {e['block_height']}" if e.get("block_height") is not None else "not sealed yet"
        out.print(f"  {e['ts']} (received {e.get('received_at') or '-'})  {e['event_id']:24} {e['kind']:22} owner "
                  f"{e.get('owner') or '-'}, held by {e.get('holder') or '-'} ({sealed})", highlight=False)
    for name in ("owners", "carriers"):
        for i in doc.get(name, []):
            out.print(f"  {name[:-1]} {i['party']}: {i['from']} .. {i.get('to') or 'now'}", highlight=False)
