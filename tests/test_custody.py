"""Custody end to end (issue 15): signed events through a real `packproof api`, sealed by a real
ingestor's sealer, on SQLite and PostgreSQL.

A pack's whole journey is driven by `packproof custody ...` (each party signing with its own key
file); the API refuses what the rules forbid with the rule named (and keeps the refusal), settles
two racing transfers with exactly one winner, refuses replays, wrong `prev` and revoked parties,
and never answers 500 to any body. An accepted event is proven by `packproof verify EVENT_ID` and
by an independent check of its bundle written here from the RFCs (hashlib and cryptography only);
tampering with the custody tables is found by `packproof audit`; excursions on the condition
report name who owned and who carried the pack, both sides during a handover.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from packproof.custody import countersign, sign_event
from packproof.paths import DataDir
from packproof.records import Excursion, IngestBatch
from tests.conftest import Db, Pipeline, cli, get_json, wait_for
from tests.storeutil import write_batch

UN = {"report_id": "TR-2291", "lab": "TUV Rheinland", "date": "2025-06-03", "manual_revision": "Rev. 8 Amend. 1",
      "results": {f"T{i}": "pass" for i in range(1, 9)}}
AT = "50.0331,8.5706,FRA cargo terminal"  # non-integral degrees: Python's float text is RFC 8785's too
PARTIES = {"maker": "manufacturer", "road": "carrier", "air": "carrier", "plant": "receiver", "insp": "inspector"}
SHIPMENT = "SHP-C"


def ts(hh: int, mm: int = 0) -> str:
    return f"2026-03-02T{hh:02d}:{mm:02d}:00.000Z"


def key_of(keys: Path, party: str) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key((keys / f"{party}.key").read_bytes(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    return key


def run(*args: str) -> str:
    r = cli(*args)
    assert r.returncode == 0, (args, r.stdout + r.stderr)
    return r.stdout


def custody(api: str, keys: Path, party: str, command: str, *args: str) -> str:
    return run("custody", command, *args, "--party", party, "--party-key", str(keys / f"{party}.key"), "--api", api,
               "--at", AT)


def post(api: str, event: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{api}/custody/events", content=json.dumps(event).encode(), timeout=30)


def head(api: str, serial: str) -> str:
    return str(get_json(f"{api}/packs/{serial}/custody")["head"])


def next_seq(api: str, party: str) -> int:
    return int(get_json(f"{api}/parties/{party}")["next_seq"])


def event(api: str, party: str, kind: str, packs: list[str], at: str, **fields: Any) -> dict[str, Any]:
    return {"v": 1, "kind": kind, "event_id": f"{party}:{next_seq(api, party)}", "actor": party, "ts": at,
            "packs": packs, "shipment_id": SHIPMENT, "location": {"lat": 53.63, "lon": 9.99},
            "prev": {p: head(api, p) for p in packs}, **fields}


def register(api: str, keys: Path, serial: str, tracker: str | None = None) -> None:
    body = {"v": 1, "kind": "pack-registered", "event_id": f"maker:{next_seq(api, 'maker')}", "actor": "maker",
            "ts": ts(9), "packs": [serial], "shipment_id": SHIPMENT, "location": {"lat": 52.1, "lon": 11.6},
            "prev": {serial: None}, "serial": serial, "model": "PX-80", "chemistry": "NMC811", "rated_wh": 80000.5,
            "mass_kg": 512.25, "un38_3": UN, "profile": "un38.3-large", "cell_lots": [],
            **({"tracker": tracker} if tracker else {})}
    r = post(api, sign_event(body, key_of(keys, "maker")))
    assert r.status_code == 201, r.text


@pytest.fixture
def api_parties(tmp_path: Path, pipeline_services: Pipeline) -> tuple[str, Path, Pipeline]:
    api = pipeline_services.start_api(tmp_path)
    keys = tmp_path / "keys"
    for party, role in PARTIES.items():
        run("parties", "add", party.title(), "--id", party, "--role", role, "--key-out", str(keys),
            "--data-dir", str(pipeline_services.data))
    return api, keys, pipeline_services


# ---- an independent check of a custody proof bundle: RFC 6962/9162, RFC 8785 (ASCII subset), Ed25519 ----


def _jcs(obj: Any) -> bytes:
    """RFC 8785 for the values these documents hold (ASCII text, integers, non-integral floats)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _root(index: int, size: int, leaf: bytes, path: list[bytes]) -> bytes:
    """RFC 9162 §2.1.3.2: the root an inclusion proof gives."""
    fn, sn, r = index, size - 1, hashlib.sha256(b"\x00" + leaf).digest()
    for p in path:
        if sn == 0:
            raise AssertionError("audit path longer than the tree")
        if fn & 1 or fn == sn:
            r = hashlib.sha256(b"\x01" + p + r).digest()
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = hashlib.sha256(b"\x01" + r + p).digest()
        fn, sn = fn >> 1, sn >> 1
    assert sn == 0, "audit path shorter than the tree"
    return r


def independent_check(bundle: dict[str, Any], ledger_key: bytes) -> dict[str, Any]:
    """Every link of a custody bundle, with no packproof code: returns the proven event."""
    assert bundle["format"] == "packproof-custody-proof/1"
    for sealed in [bundle["event"], *bundle["keys"]]:
        header = sealed["block"]["header"]
        leaf = sealed["leaf"].encode()
        # A v2 block (issue 16) proves its leaves in the one log tree, at the block's log size and root.
        root = header["log_root"] if "log_size" in header else header["merkle_root"]
        assert "log_size" not in header or sealed["tree_size"] == header["log_size"]
        assert _root(sealed["leaf_index"], sealed["tree_size"], leaf,
                     [bytes.fromhex(h) for h in sealed["audit_path"]]).hex() == root, \
            f"leaf {sealed['leaf_index']}: its audit path does not reach block {header['height']}'s root"
        digest = hashlib.sha256(_jcs(header)).digest()
        assert digest.hex() == sealed["block"]["hash"]
        Ed25519PublicKey.from_public_bytes(ledger_key).verify(base64.b64decode(sealed["block"]["signature"]), digest)
    record = json.loads(bundle["event"]["leaf"])
    assert record["record"] == "custody-event" and _jcs(record) == bundle["event"]["leaf"].encode()
    ev = record["event"]
    signed = _jcs({k: v for k, v in ev.items() if k not in ("sig", "countersig")})
    keys = [json.loads(k["leaf"]) for k in bundle["keys"]]
    assert keys[0]["party_id"] == ev["actor"] and keys[0]["valid_from_seq"] <= int(ev["event_id"].split(":")[1])
    Ed25519PublicKey.from_public_bytes(base64.b64decode(keys[0]["public_key"])).verify(base64.b64decode(ev["sig"]),
                                                                                        signed)
    if ev["kind"] == "handed-over":
        assert keys[1]["party_id"] == ev["to"]
        Ed25519PublicKey.from_public_bytes(base64.b64decode(keys[1]["public_key"])).verify(
            base64.b64decode(ev["countersig"]), signed)
    for k in bundle["keys"]:  # each key record was sealed before the event
        assert (k["block"]["header"]["height"], k["leaf_index"]) < (bundle["event"]["block"]["header"]["height"],
                                                                    bundle["event"]["leaf_index"])
    return dict(ev)


# ---- the tests -----------------------------------------------------------------------------------


def test_a_journey_by_the_cli_is_sealed_proven_attributed_and_audited(
        api_parties: tuple[str, Path, Pipeline], tmp_path: Path) -> None:
    api, keys, pipeline = api_parties
    data = pipeline.data
    un = tmp_path / "un38_3.json"
    un.write_text(json.dumps(UN))
    asyncio.run(_register_devices(DataDir(data, store_url=pipeline.store), {"dev-1": SHIPMENT}))
    out = custody(api, keys, "maker", "register", "P-1", "--model", "PX-80", "--chemistry", "NMC811",
                  "--rated-wh", "80000.5", "--mass-kg", "512.25", "--un38-3", str(un), "--profile", "un38.3-large",
                  "--tracker", "dev-1", "--shipment", SHIPMENT, "--ts", ts(10))
    assert "accepted maker:1" in out
    custody(api, keys, "maker", "assign", "P-1", "--transporter", "road", "--shipment", SHIPMENT, "--ts", ts(10, 5))

    # A rule broken: refused with the rule named, exit 1, and kept with its reason.
    r = cli("custody", "assign", "P-1", "--transporter", "air", "--party", "road", "--party-key",
            str(keys / "road.key"), "--api", api, "--at", AT)
    assert r.returncode == 1 and "refused (forbidden): road is not the current owner of pack P-1" in r.stderr, r.stderr
    refused = get_json(f"{api}/custody/refused?actor=road")["items"]
    assert refused[0]["code"] == "forbidden" and "not the current owner of pack P-1" in refused[0]["reason"]

    custody(api, keys, "road", "pickup", "P-1", "--shipment", SHIPMENT, "--ts", ts(10, 10))
    custody(api, keys, "maker", "assign", "P-1", "--transporter", "air", "--shipment", SHIPMENT, "--ts", ts(11))
    half = tmp_path / "handover.json"
    custody(api, keys, "road", "handover", "P-1", "--to", "air", "--out", str(half), "--shipment", SHIPMENT,
            "--ts", ts(12))
    r = cli("custody", "countersign", str(half), "--party-key", str(keys / "road.key"), "--api", api)
    assert r.returncode == 2 and "is not the key of air, whom this handover is to" in r.stderr, r.stdout + r.stderr
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps({**json.loads(half.read_text()), "ts": ts(12, 30)}))  # re-dated after signing
    r = cli("custody", "countersign", str(tampered), "--party-key", str(keys / "air.key"), "--api", api)
    assert r.returncode == 2 and "the signature of road does not hold" in r.stderr, r.stdout + r.stderr
    out = run("custody", "countersign", str(half), "--party-key", str(keys / "air.key"), "--api", api)
    assert f"countersigning road:2: road hands P-1 over to air at {ts(12)}, FRA cargo terminal" in out, out
    assert "accepted road:2" in out
    # Sold on the way: a carrier delivers only to the owner (or a consignee the owner named, review 15 1.8).
    custody(api, keys, "maker", "offer", "P-1", "--to", "plant", "--shipment", SHIPMENT, "--ts", ts(13, 20))
    custody(api, keys, "plant", "accept", "P-1", "--offer", "maker:4", "--shipment", SHIPMENT, "--ts", ts(13, 30))
    custody(api, keys, "air", "deliver", "P-1", "--to", "plant", "--shipment", SHIPMENT, "--ts", ts(14))
    custody(api, keys, "plant", "receive", "P-1", "--result", "accepted-with-remarks", "--remarks", "dented corner",
            "--shipment", SHIPMENT, "--ts", ts(14, 30))
    custody(api, keys, "insp", "inspect", "P-1", "--finding", "casing deformed at one corner", "--severity", "minor",
            "--shipment", SHIPMENT, "--ts", ts(15))

    doc = get_json(f"{api}/packs/P-1/custody")
    assert [e["kind"] for e in doc["events"]] == ["pack-registered", "transporter-assigned", "picked-up",
                                                  "transporter-assigned", "handed-over", "ownership-offered",
                                                  "ownership-accepted", "delivered", "received", "inspected"]
    assert (doc["owner"], doc["holder"]) == ("plant", "plant")
    assert [(c["party"], c["from"], c["to"]) for c in doc["carriers"]] == [("road", ts(10, 10), ts(12)),
                                                                           ("air", ts(12), ts(14))]
    shown = run("custody", "show", "P-1", "--api", api)
    assert "handed-over" in shown and "carrier road: " + ts(10, 10) in shown
    assert [e["event_id"] for e in get_json(f"{api}/shipments/{SHIPMENT}/custody")["events"]][:2] == ["maker:1",
                                                                                                       "maker:2"]

    # Proven: by `packproof verify` against the API, and by the independent check of its bundle.
    wait_for(lambda: get_json(f"{api}/custody/events/road:2")["block_height"] is not None, what="handover sealed")
    r = cli("verify", "road:2", "--api", api, "--ledger-key", str(data / "ledger.pub"))
    assert r.returncode == 2 and "/readings/road:2/proof" in r.stderr, r.stdout + r.stderr  # an id is a reading's
    r = cli("verify", "road:2", "--custody", "--api", api, "--ledger-key", str(data / "ledger.pub"))
    assert r.returncode == 0 and "proof holds" in r.stdout and "countersigned by air" in r.stdout, r.stdout + r.stderr
    bundle = get_json(f"{api}/custody/events/road:2/proof")
    ledger_key = base64.b64decode((data / "ledger.pub").read_text().strip())
    assert independent_check(bundle, ledger_key)["to"] == "air"
    bundle["event"]["leaf"] = bundle["event"]["leaf"].replace('"to":"air"', '"to":"road"')
    saved = tmp_path / "forged.json"
    saved.write_text(json.dumps(bundle))
    r = cli("verify", "--bundle", str(saved))
    assert r.returncode == 1 and "FAIL" in r.stdout, r.stdout + r.stderr
    with pytest.raises(AssertionError, match="its audit path does not reach block"):  # refused here too
        independent_check(bundle, ledger_key)

    # Attribution: excursions of the pack's tracker name who owned and who carried it.
    asyncio.run(_excursions(DataDir(data, store_url=pipeline.store)))
    cond = get_json(f"{api}/shipments/{SHIPMENT}/condition")
    by_test = {e["test"]: e["custody"] for e in cond["excursions"]}
    assert by_test["T.4"] == {"pack": "P-1", "owners": ["maker"], "carriers": ["road", "air"], "changes": []}
    assert by_test["T.2"]["carriers"] == ["road"] and by_test["T.2"]["changes"] == [
        {"role": "carrier", "party": "air", "event_id": "road:2", "ts": ts(12)}]
    text = run("condition", SHIPMENT, "--data-dir", str(data))
    assert "pack P-1: owner maker, carrier road / air  (during a handover: both sides named)" in text, text

    # Audited: whole, then each kind of tampering named.
    wait_for(lambda: all(e["block_height"] is not None for e in get_json(f"{api}/packs/P-1/custody")["events"]),
             what="all sealed")
    r = cli("audit", "--data-dir", str(data))
    assert r.returncode == 0, r.stdout + r.stderr
    db = Db(pipeline.store)
    db.execute("UPDATE custody_packs SET state = replace(state, '\"owner\":\"plant\"', '\"owner\":\"road\"') "
               "WHERE serial = 'P-1'")
    edited = ("convert_to(replace(convert_from(body, 'UTF8'), 'dented corner', 'no damage'), 'UTF8')"
              if pipeline.store.startswith("postgresql") else "replace(body, 'dented corner', 'no damage')")
    db.execute(f"UPDATE custody_events SET body = {edited} WHERE event_id = 'plant:2'")
    r = cli("audit", "--data-dir", str(data))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "pack P-1: custody_packs holds a state its sealed events do not give (owner 'road' held" in r.stdout
    assert "custody event plant:2: its stored body differs from its sealed leaf" in r.stdout


async def _register_devices(dirs: DataDir, devices: dict[str, str]) -> None:
    """Trackers a pack may name (device id -> shipment): registered and sealed like any other (the store is
    opened with the data directory's intake key)."""
    store = await dirs.open_writer()
    try:
        await store.register({s: "un38.3-large" for s in devices.values()}, [(d, s, None) for d, s in devices.items()])
    finally:
        await store.close()


async def _excursions(dirs: DataDir) -> None:
    """A shock two minutes after the handover, and a heat excursion from before it to after it."""
    store = await dirs.open_writer()
    try:
        async with store.transaction("test excursions"):
            first = await store.next_excursion_id()
        await write_batch(store, IngestBatch(excursions=[
            Excursion(first, "dev-1", SHIPMENT, "T.4", "shock.peak_g", "violation", ts(12, 2), ts(12, 2), 40, 40,
                      80.0, 50.0, "shock above 50 g", 1, False),
            Excursion(first + 1, "dev-1", SHIPMENT, "T.2", "temperature_c", "violation", ts(10, 30), ts(13), 20, 30,
                      66.0, 60.0, "above 60 C", 11, False)]))
    finally:
        await store.close()


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_a_tracker_is_claimed_once_by_a_pack_of_its_own_shipment(api_parties: tuple[str, Path, Pipeline]) -> None:
    """Review 1.1: another manufacturer registering a pack with someone else's tracker would take over the
    attribution of that device's excursions. Refused as a conflict, as are an unregistered tracker and
    one of another shipment; the first claim stays the one the condition report reads."""
    api, keys, pipeline = api_parties
    run("parties", "add", "Mallory", "--id", "mallory", "--role", "manufacturer", "--key-out", str(keys),
        "--data-dir", str(pipeline.data))
    asyncio.run(_register_devices(DataDir(pipeline.data, store_url=pipeline.store),
                                  {"dev-1": SHIPMENT, "dev-9": "SHP-OTHER"}))
    register(api, keys, "P-1", tracker="dev-1")

    def claim(serial: str, tracker: str) -> dict[str, Any]:
        body = {"v": 1, "kind": "pack-registered", "event_id": f"mallory:{next_seq(api, 'mallory')}",
                "actor": "mallory", "ts": ts(9), "packs": [serial], "shipment_id": SHIPMENT,
                "location": {"lat": 52.1, "lon": 11.6}, "prev": {serial: None}, "serial": serial, "model": "PX-80",
                "chemistry": "NMC811", "rated_wh": 80000.5, "mass_kg": 512.25, "un38_3": UN,
                "profile": "un38.3-large", "cell_lots": [], "tracker": tracker}
        r = post(api, sign_event(body, key_of(keys, "mallory")))
        assert r.status_code == 409, r.text
        return dict(r.json())

    taken = claim("EVIL", "dev-1")
    assert taken["code"] == "conflict" and "already the tracker of pack P-1" in taken["detail"], taken
    assert "not a registered device" in claim("EVIL", "dev-404")["detail"]
    other = claim("EVIL", "dev-9")
    assert "registered to shipment SHP-OTHER, the event names shipment SHP-C" in other["detail"], other
    kept = get_json(f"{api}/custody/refused?actor=mallory")["items"]
    assert [i["code"] for i in kept] == ["conflict"] * 3
    assert get_json(f"{api}/packs/P-1/custody")["events"][0]["event"]["tracker"] == "dev-1"
    r = httpx.get(f"{api}/packs/EVIL/custody", timeout=10)
    assert r.status_code == 404, r.text

    # The CLI's withdraw and register-lot; against an API with a read token, --token / PACKPROOF_TOKEN.
    register(api, keys, "P-5")
    custody(api, keys, "maker", "offer", "P-5", "--to", "plant")
    offered = get_json(f"{api}/packs/P-5/custody")["events"][-1]["event_id"]
    assert "accepted" in custody(api, keys, "maker", "withdraw", "P-5", "--offer", offered)
    assert get_json(f"{api}/packs/P-5/custody")["events"][-1]["kind"] == "ownership-withdrawn"
    assert "accepted" in custody(api, keys, "maker", "register-lot", "L-1", "--cell-model", "NMC 21700",
                                 "--chemistry", "NMC811", "--cells", "4416")
    assert get_json(f"{api}/packs/L-1/custody")["events"][0]["kind"] == "lot-registered"
    from packproof.net import free_port
    from tests.conftest import Service

    token_file = pipeline.data / "read.token"
    token_file.write_text("read-token-0123456789\n")
    port = free_port()
    guarded = Service("api", "--data-dir", str(pipeline.data), "--port", str(port), "--read-token-file",
                      str(token_file), log=pipeline.data / "api-guarded.log")
    pipeline.services.append(guarded)
    guarded.wait_port(port)
    locked = f"http://127.0.0.1:{port}"
    r = cli("custody", "show", "P-5", "--api", locked)
    assert r.returncode == 2 and "requires a bearer token" in r.stderr and "--token" in r.stderr, r.stderr
    r = cli("custody", "show", "P-5", "--api", locked, env={"PACKPROOF_TOKEN": "read-token-0123456789"})
    assert r.returncode == 0 and "ownership-withdrawn" in r.stdout, r.stdout + r.stderr
    r = cli("custody", "--token", "read-token-0123456789", "location", "P-5", "--party", "road", "--party-key",
            str(keys / "road.key"), "--api", locked, "--at", AT)
    assert r.returncode == 1 and "refused (conflict): P-5 is not in transit" in r.stderr, r.stderr  # read, signed

    # The shipment's custody is its packs' events, also those that do not name it.
    unnamed = event(api, "maker", "transporter-assigned", ["P-1"], ts(10), transporter="road")
    del unnamed["shipment_id"]
    assert post(api, sign_event(unnamed, key_of(keys, "maker"))).status_code == 201
    listed = get_json(f"{api}/shipments/{SHIPMENT}/custody")["events"]
    assert [(e["event_id"], e["shipment_id"]) for e in listed] == [
        ("maker:1", SHIPMENT), ("maker:2", SHIPMENT), ("maker:3", None), ("maker:4", None), ("maker:6", None)]
    assert get_json(f"{api}/shipments/SHP-OTHER/custody")["events"] == []


def test_racing_replayed_wrong_prev_and_revoked_events_are_refused(api_parties: tuple[str, Path, Pipeline]) -> None:
    api, keys, pipeline = api_parties
    register(api, keys, "P-2")
    maker = key_of(keys, "maker")

    # Two parties racing on one pack, both naming the same prev (its head now): the owner assigning a carrier
    # and an inspector recording a finding. Each is valid alone; whichever commits first wins, the other now names a
    # stale head and is refused as wrong-prev. Run several times: either may win, never both.
    for n in range(4):
        carrier = "air" if get_json(f"{api}/packs/P-2/custody")["transporter"] == "road" else "road"
        racers = [sign_event(event(api, "maker", "transporter-assigned", ["P-2"], ts(10, n), transporter=carrier),
                             maker),
                  sign_event(event(api, "insp", "inspected", ["P-2"], ts(10, n), finding=f"round {n}"),
                             key_of(keys, "insp"))]
        answers: dict[str, httpx.Response] = {}
        gate = threading.Barrier(2)

        def send(e: dict[str, Any], gate: threading.Barrier, answers: dict[str, httpx.Response]) -> None:
            gate.wait()
            answers[e["actor"]] = post(api, e)

        threads = [threading.Thread(target=send, args=(e, gate, answers)) for e in racers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(r.status_code for r in answers.values()) == [201, 409], [r.text for r in answers.values()]
        winner = next(e for e in racers if answers[e["actor"]].status_code == 201)
        loser = next(r for r in answers.values() if r.status_code == 409).json()
        assert loser["code"] == "wrong-prev" and "P-2" in loser["detail"], loser
        assert head(api, "P-2") == answers[winner["actor"]].json()["hash"]

    # Replay: the same event again.
    r = post(api, winner)
    assert r.status_code == 409 and r.json()["code"] == "replay", r.text

    # Wrong prev: a stale head.
    stale = event(api, "maker", "transporter-assigned", ["P-2"], ts(11), transporter="road")
    stale["prev"] = {"P-2": "00" * 32}
    r = post(api, sign_event(stale, maker))
    assert r.status_code == 409 and r.json()["code"] == "wrong-prev" and "P-2" in r.json()["detail"], r.text

    # A revoked party can do nothing more.
    run("parties", "revoke", "maker", "--reason", "key leaked", "--data-dir", str(pipeline.data))
    r = post(api, sign_event(event(api, "maker", "transporter-assigned", ["P-2"], ts(12), transporter="road"), maker))
    assert r.status_code == 403 and r.json()["code"] == "revoked", r.text

    # A countersig by the wrong key is a bad signature.
    register_ok = post(api, countersign(sign_event(
        event(api, "road", "handed-over", ["P-2"], ts(13), to="air"), key_of(keys, "road")), key_of(keys, "road")))
    assert register_ok.status_code == 403 and register_ok.json()["code"] == "bad-signature", register_ok.text

    codes_kept = {i["code"] for i in get_json(f"{api}/custody/refused?limit=50")["items"]}
    assert {"replay", "wrong-prev", "revoked", "bad-signature"} <= codes_kept


JSONISH = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                       lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                                   max_size=5), max_leaves=20)


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_no_body_gives_500(api_parties: tuple[str, Path, Pipeline]) -> None:
    api, keys, _ = api_parties
    good = sign_event({"v": 1, "kind": "location", "event_id": "road:1", "actor": "road", "ts": ts(1),
                       "packs": ["X"], "location": {"lat": 1.5, "lon": 2.5}, "prev": {"X": None}},
                      key_of(keys, "road"))
    fixed = [b"", b"{", b"[]", b"null", b"\xff\xfe", b"[" * 100_000, b"{}" * 40_000, json.dumps(good).encode()[:-1],
             json.dumps({**good, "extra": 1}).encode(), json.dumps({**good, "ts": "yesterday"}).encode(),
             json.dumps({**good, "location": {"lat": 1e400, "lon": 0}}).encode().replace(b"inf", b"1e400"),
             b'{"kind": "location", "kind": "location"}', b"NaN", b"x" * 70_000]
    with httpx.Client(timeout=30) as client:
        for body in fixed:
            r = client.post(f"{api}/custody/events", content=body)
            assert r.status_code in (403, 409, 422), (body[:60], r.status_code, r.text[:200])
            assert set(r.json()) == {"detail", "code"}

        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
        @given(st.dictionaries(st.sampled_from(sorted(good)), JSONISH, max_size=6))
        def fuzz(changes: dict[str, Any]) -> None:
            r = client.post(f"{api}/custody/events", content=json.dumps({**good, **changes}).encode())
            assert r.status_code in (201, 403, 409, 422), (changes, r.status_code, r.text[:200])

        fuzz()


def test_notifications_follow_accepted_events(tmp_path: Path, pipeline_services: Pipeline) -> None:
    """`packproof api --notify` publishes each accepted event, retained, on the shipment's custody topic."""
    import paho.mqtt.client as mqtt

    from packproof.net import free_port
    from tests.conftest import Service

    port = free_port()
    api_service = Service("api", "--data-dir", str(pipeline_services.data), "--port", str(port), "--notify",
                          "--mqtt-port", str(pipeline_services.mqtt), log=tmp_path / "api-notify.log")
    pipeline_services.services.append(api_service)
    api_service.wait_port(port)
    api, keys = f"http://127.0.0.1:{port}", tmp_path / "keys"
    for party, role in (("maker", "manufacturer"),):
        run("parties", "add", party, "--id", party, "--role", role, "--key-out", str(keys),
            "--data-dir", str(pipeline_services.data))
    register(api, keys, "P-9")
    got: list[dict[str, Any]] = []
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="custody-follower")
    sub.on_message = lambda c, u, m: got.append({"topic": m.topic, "retain": m.retain, **json.loads(m.payload)})
    sub.connect("127.0.0.1", pipeline_services.mqtt)
    sub.subscribe(f"packproof/v1/{SHIPMENT}/custody", qos=1)
    sub.loop_start()
    try:
        wait_for(lambda: bool(got), what="the retained notification")
        assert got[0]["retain"] and got[0]["event_id"] == "maker:1" and got[0]["event"]["serial"] == "P-9"
        r = post(api, sign_event(event(api, "maker", "inspected", ["P-9"], ts(10, 2), finding="x"),
                                 key_of(keys, "maker")))
        assert r.status_code == 403  # maker is no inspector: refused, and nothing is announced
        r = post(api, sign_event(event(api, "maker", "ownership-offered", ["P-9"], ts(10, 3), to="maker-2"),
                                 key_of(keys, "maker")))
        assert r.status_code == 403 and r.json()["code"] == "unknown-party"
        time.sleep(0.5)
        assert len(got) == 1
    finally:
        sub.loop_stop()
        sub.disconnect()

    # A broker that is down fails nothing: the event is accepted, the notification dropped.
    port = free_port()
    dark = Service("api", "--data-dir", str(pipeline_services.data), "--port", str(port), "--notify",
                   "--mqtt-port", str(free_port()), log=tmp_path / "api-dark.log")
    pipeline_services.services.append(dark)
    dark.wait_port(port)
    r = post(f"http://127.0.0.1:{port}", sign_event(event(api, "maker", "transporter-released", ["P-9"], ts(10, 4)),
                                                    key_of(keys, "maker")))
    assert r.status_code == 409 and r.json()["code"] == "conflict", r.text  # refused by the rules, not by the broker
    register(f"http://127.0.0.1:{port}", keys, "P-10")  # accepted (201) with no broker to tell
    wait_for(lambda: "custody notification for maker:2 not published" in dark.output(), what="the dropped notice")
    r = post(f"http://127.0.0.1:{port}", sign_event(event(api, "maker", "ownership-offered", ["P-9"], ts(10, 5),
                                                          to="plant-x"), key_of(keys, "maker")))
    assert r.status_code == 403 and r.json()["code"] == "unknown-party", r.text
    r = post(f"http://127.0.0.1:{port}", sign_event(event(api, "maker", "location", ["P-9"], ts(10, 6)),
                                                    key_of(keys, "maker")))
    assert r.status_code == 403 and "role carrier" in r.json()["detail"], r.text


def test_cli_errors_are_one_line_with_their_exit_code(tmp_path: Path) -> None:
    """Unreachable API 3; bad input 2 (a place that is no place, a file that is no handover, a key that is
    no key, a custody bundle missing a field); never a traceback."""
    from packproof.crypto import new_private_key, write_private_key
    from packproof.net import free_port

    key = tmp_path / "k.key"
    write_private_key(key, new_private_key())
    (tmp_path / "not-a-key").write_text("hello")
    (tmp_path / "h.json").write_text(json.dumps({"kind": "location"}))
    (tmp_path / "b.json").write_text(json.dumps({"format": "packproof-custody-proof/1", "event": {}}))
    dead = f"http://127.0.0.1:{free_port()}"
    cases = [
        (("custody", "pickup", "P", "--party", "road", "--party-key", str(key), "--api", dead, "--at", "1,2"), 3,
         "cannot reach the API"),
        (("custody", "pickup", "P", "--party", "road", "--party-key", str(key), "--api", dead, "--at", "north"), 2,
         "--at 'north': expected LAT,LON"),  # bad input is named before the API is asked
        (("custody", "countersign", str(tmp_path / "h.json"), "--party-key", str(key), "--api", dead), 2,
         "is not a handed-over event"),
        (("custody", "countersign", str(tmp_path / "nope.json"), "--party-key", str(key), "--api", dead), 2,
         "cannot read the handover"),
        (("custody", "show", "P", "--api", dead), 3, "cannot reach the API"),
        (("verify", "--bundle", str(tmp_path / "b.json")), 2, "custody proof bundle: field"),
    ]
    for args, code, said in cases:
        r = cli(*args)
        assert r.returncode == code and said in r.stderr and "Traceback" not in r.stderr, (args, r.stdout + r.stderr)
    body = {"v": 1, "kind": "location", "event_id": "road:1", "actor": "road", "ts": ts(1), "packs": ["P"],
            "location": {"lat": 1.5, "lon": 2.5}, "prev": {"P": None}}
    half = tmp_path / "ho.json"
    half.write_text(json.dumps({**body, "kind": "handed-over", "to": "air"}))
    r = cli("custody", "countersign", str(half), "--party-key", str(tmp_path / "not-a-key"), "--api", dead)
    assert r.returncode == 2 and "is not an unencrypted PEM private key" in r.stderr, r.stderr


def test_each_notifier_connects_under_its_own_client_id() -> None:
    """Two API processes publishing custody notifications must not share an MQTT client id (the broker
    would drop one each time the other connects, MQTT 3.1.1 §3.1.4); ids stay within the 23 bytes every
    broker accepts (§3.1.3.1)."""
    from packproof.api.notify import MqttTarget

    ids = {MqttTarget("127.0.0.1", 1883).client_id for _ in range(50)}
    assert len(ids) == 50 and all(0 < len(i.encode()) <= 23 for i in ids), ids


async def test_a_key_rotation_never_reaches_back_over_accepted_events(store_url: str) -> None:
    """Review 1.2: `maker:1` and `maker:2` accepted, a rotation from seq 2 would make `maker:2` verify with a
    key that never signed it (and the audit fail for good): refused, inside the rotation's transaction. The
    default start is the party's next event, read in that same transaction."""
    from packproof.api.routes.custody import accept_event
    from packproof.crypto import private_key_from_seed, public_key_bytes
    from packproof.errors import ConfigError
    from packproof.intake import IntakeKey
    from packproof.store import Store

    maker = private_key_from_seed(b"maker")
    store = await Store.open(store_url, intake_key=IntakeKey(b"i" * 32))
    try:
        await store.add_party("maker", "Maker", ["manufacturer"], public_key_bytes(maker))
        for seq, serial in ((1, "P-1"), (2, "P-2")):
            body = {"v": 1, "kind": "pack-registered", "event_id": f"maker:{seq}", "actor": "maker", "ts": ts(9),
                    "packs": [serial], "location": {"lat": 52.1, "lon": 11.6}, "prev": {serial: None},
                    "serial": serial, "model": "PX-80", "chemistry": "NMC811", "rated_wh": 80000.5,
                    "mass_kg": 512.25, "un38_3": UN, "profile": "un38.3-large", "cell_lots": []}
            decision = await accept_event(store, json.dumps(sign_event(body, maker)).encode())
            assert decision.event is not None, decision.reason
        new = public_key_bytes(private_key_from_seed(b"maker-2"))
        with pytest.raises(ConfigError, match="must start after event seq 2, its last accepted event"):
            await store.rotate_party_key("maker", new, 2)
        assert await store.rotate_party_key("maker", new) == 3
        party = await store.party("maker")
        assert party is not None and [k.valid_from_seq for k in party.keys] == [1, 3]
    finally:
        await store.close()


async def test_refusals_nobody_signed_are_counted_and_kept_in_a_ring(store_url: str) -> None:
    """Review 1.7: anyone may post, so a malformed body, an unknown actor or a bad signature is counted and
    only the latest N are kept (here N = 5); a refusal of a known party's validly signed event is kept
    whole, however many anonymous ones follow."""
    from packproof.api.routes.custody import accept_event
    from packproof.crypto import private_key_from_seed, public_key_bytes
    from packproof.intake import IntakeKey
    from packproof.store import Store

    maker, stranger = private_key_from_seed(b"maker"), private_key_from_seed(b"stranger")
    store = await Store.open(store_url, intake_key=IntakeKey(b"i" * 32))
    store.custody_refused_ring = 5
    try:
        await store.add_party("maker", "Maker", ["manufacturer"], public_key_bytes(maker))
        located = {"v": 1, "kind": "location", "event_id": "maker:1", "actor": "maker", "ts": ts(9),
                   "packs": ["P-1"], "location": {"lat": 52.1, "lon": 11.6, "name": "x" * 200}, "prev": {"P-1": None}}
        forbidden = json.dumps(sign_event(located, maker)).encode()
        assert (await accept_event(store, forbidden)).code == "forbidden"  # a maker is no carrier
        for n in range(12):
            assert (await accept_event(store, b'{"n": %d}' % n)).code == "malformed"
        unknown = sign_event({**located, "actor": "ghost", "event_id": "ghost:1"}, stranger)
        assert (await accept_event(store, json.dumps(unknown).encode())).code == "unknown-party"
        forged = sign_event(located, stranger)
        assert (await accept_event(store, json.dumps(forged).encode())).code == "bad-signature"
        rows = await store.custody_refused(actor=None, before_id=None, limit=100, body_max=10**6)
        assert [r.code for r in rows] == ["bad-signature", "unknown-party", "malformed", "malformed", "malformed",
                                          "forbidden"]
        assert [r.body for r in rows[2:5]] == [b'{"n": 11}', b'{"n": 10}', b'{"n": 9}']
        assert rows[-1].body == forbidden
        counters = await store.counters()
        assert (counters["custody_refused:malformed"], counters["custody_refused:unknown-party"],
                counters["custody_refused:bad-signature"], counters["custody_refused:forbidden"]) == (12, 1, 1, 1)
    finally:
        await store.close()


async def test_an_event_dated_ahead_of_the_api_or_before_any_pack_is_refused(store_url: str) -> None:
    """Review 1.3: a party may not date its event ahead of the API's clock by more than the readings'
    `max_clock_ahead` (the same rule, edge/decode.py), nor before `earliest_ts`; an accepted event keeps
    when the API received it beside the `ts` its party claims."""
    from packproof.api.routes.custody import accept_event
    from packproof.crypto import private_key_from_seed, public_key_bytes
    from packproof.edge.decode import Plausibility
    from packproof.intake import IntakeKey
    from packproof.store import Store
    from packproof.timefmt import epoch_of, rfc3339

    maker = private_key_from_seed(b"maker")
    now = epoch_of(ts(9))
    limits = Plausibility(max_clock_ahead_s=60.0)
    store = await Store.open(store_url, intake_key=IntakeKey(b"i" * 32))

    def registered(at: str, serial: str = "P-1") -> bytes:
        body = {"v": 1, "kind": "pack-registered", "event_id": "maker:1", "actor": "maker", "ts": at,
                "packs": [serial], "location": {"lat": 52.1, "lon": 11.6}, "prev": {serial: None}, "serial": serial,
                "model": "PX-80", "chemistry": "NMC811", "rated_wh": 80000.5, "mass_kg": 512.25, "un38_3": UN,
                "profile": "un38.3-large", "cell_lots": []}
        return json.dumps(sign_event(body, maker)).encode()

    try:
        await store.add_party("maker", "Maker", ["manufacturer"], public_key_bytes(maker))
        for at, why in (("9999-12-31T23:59:59.999Z", "ahead of the API's clock"), (rfc3339(now + 61), "61 s ahead"),
                        ("0001-01-01T00:00:00.000Z", "before 2020-01-01T00:00:00Z")):
            d = await accept_event(store, registered(at), now=now, limits=limits)
            assert d.code == "out-of-order" and why in d.reason, (at, d)
        d = await accept_event(store, registered(rfc3339(now + 59)), now=now, limits=limits)
        assert d.event is not None and d.event.received_at == now, d
        e = await store.custody_event("maker:1")
        assert e is not None and e.received_at == now and e.ts == rfc3339(now + 59)
        assert [r.code for r in await store.custody_refused(actor="maker", before_id=None, limit=10,
                                                            body_max=10**6)] == ["out-of-order"] * 3
    finally:
        await store.close()


def test_the_handover_window_is_the_setting_else_the_data_dirs_else_five_minutes(tmp_path: Path) -> None:
    """`api` and `condition` agree with what `packproof run` wrote for its simulated time, unless told."""
    from packproof.app.config import load
    from packproof.app.services import handover_window_of
    from packproof.errors import ConfigError

    dirs = DataDir(tmp_path)
    assert handover_window_of(load(), dirs) == 300.0
    dirs.handover_window.write_text("2.5\n")
    assert handover_window_of(load(), dirs) == 2.5
    assert handover_window_of(load({"api.handover_window_s": 60.0}), dirs) == 60.0
    dirs.handover_window.write_text("soon\n")
    with pytest.raises(ConfigError, match="expected the handover window in seconds"):
        handover_window_of(load(), dirs)
