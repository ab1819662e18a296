"""The whole pipeline as users run it: real processes, a real broker, real proofs.

`packproof broker`, `packproof ingest` and `packproof api` run as subprocesses on free
ports; `packproof simulate` publishes a mixed fleet; the CLI verifies proofs against
the API, offline from a saved bundle, and after tampering with the store and the ledger.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from packproof.net import free_port
from packproof.simulators.scenarios import MIXED_FLEET
from tests.conftest import Db, Service, cli, get_json, pg_schema, publish_all, wait_for

pytestmark = pytest.mark.e2e

PACKS = 2
COUNT = 30

EXPECTED_TEST = {"hot-container": "T.2", "rough-road": "T.3", "drop": "T.4", "unpressurised-air": "T.1"}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def pipeline(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:  # type: ignore[type-arg]
    """One pipeline per store engine for the module; the tampering test runs last, as it breaks the data."""
    tmp_path = tmp_path_factory.mktemp("e2e")
    services: list[Service] = []
    with ExitStack() as stack:
        store = (f"sqlite:///{tmp_path / 'data' / 'packproof.db'}" if request.param == "sqlite"
                 else stack.enter_context(pg_schema()))
        mp = stack.enter_context(pytest.MonkeyPatch.context())
        mp.setenv("PACKPROOF_STORE", store)  # every packproof command of the module uses it
        try:
            yield from _start(tmp_path, services, store)
        finally:
            for s in reversed(services):
                s.stop()


def _start(tmp_path: Path, services: list[Service], store: str) -> Iterator[dict]:  # type: ignore[type-arg]
    data = tmp_path / "data"
    mqtt, api = free_port(), free_port()
    broker = Service("broker", "--port", str(mqtt), log=tmp_path / "broker.log")
    services.append(broker)
    broker.wait_port(mqtt)
    ingest = Service("ingest", "--data-dir", str(data), "--mqtt-port", str(mqtt), "--seal-interval", "0.3",
                     log=tmp_path / "ingest.log")
    services.append(ingest)
    ingest.wait_output("ingesting from")
    shipments = len(MIXED_FLEET)
    sim = cli("simulate", "--mqtt-port", str(mqtt), "--data-dir", str(data), "--shipments", str(shipments),
              "--packs", str(PACKS), "--count", str(COUNT), "--rate", "20", "--unsigned-shipments", "1")
    assert sim.returncode == 0, sim.stdout + sim.stderr
    api_svc = Service("api", "--data-dir", str(data), "--port", str(api), log=tmp_path / "api.log")
    services.append(api_svc)
    api_svc.wait_port(api)
    url = f"http://127.0.0.1:{api}"
    total = shipments * PACKS * COUNT

    def all_sealed() -> bool:
        shipments_doc = get_json(f"{url}/shipments")["shipments"]
        sealed = sum(get_json(f"{url}/shipments/{s['shipment_id']}/condition")["sealed"] for s in shipments_doc)
        return sealed == total

    wait_for(all_sealed, 30, f"all {total} readings sealed")
    yield {"url": url, "data": data, "total": total, "ingest": ingest, "mqtt": mqtt, "store": store}


def test_condition_shows_each_excursion_kind(pipeline: dict) -> None:  # type: ignore[type-arg]
    url = pipeline["url"]
    shipments = get_json(f"{url}/shipments")["shipments"]
    assert len(shipments) == len(MIXED_FLEET)
    for i, scenario in enumerate(MIXED_FLEET):
        sid = shipments[i]["shipment_id"]
        cond = get_json(f"{url}/shipments/{sid}/condition")
        assert cond["readings"] == PACKS * COUNT == cond["sealed"]
        assert all(p["readings"] == COUNT and p["last_seq"] == COUNT - 1 for p in cond["packs"])
        assert all(p["acked_seq"] == COUNT - 1 and p["missing"] == 0 == p["unsealed"] for p in cond["packs"])
        assert cond["missing"] == 0 == cond["unsealed"]
        violated_tests = {e["test"] for e in cond["excursions"] if e["severity"] == "violation"}
        if scenario in EXPECTED_TEST:
            assert cond["status"] == "violated", (scenario, cond)
            assert EXPECTED_TEST[scenario] in violated_tests, (scenario, cond["excursions"])
            exc = next(e for e in cond["excursions"] if e["test"] == EXPECTED_TEST[scenario])
            assert exc["start"] <= exc["end"] and exc["readings"] >= 1 and exc["limit_crossed"]
        else:
            assert cond["status"] in ("ok", "warning"), (scenario, cond["excursions"])
            assert not violated_tests


def test_cli_verifies_proofs_against_the_api(pipeline: dict, tmp_path: Path) -> None:  # type: ignore[type-arg]
    url, data = pipeline["url"], pipeline["data"]
    sid = get_json(f"{url}/shipments")["shipments"][0]["shipment_id"]
    device = get_json(f"{url}/shipments/{sid}")["devices"][0]
    bundle = tmp_path / "proof.json"
    for seq in (0, COUNT // 2, COUNT - 1):
        r = cli("verify", f"{device}:{seq}", "--api", url, "--ledger-key", str(data / "ledger.pub"),
                "--save", str(bundle))
        assert r.returncode == 0, r.stdout + r.stderr
        for check in ("reading", "reading id", "registry record", "device signature", "merkle path",
                      "registry merkle path", "block hash", "block signature", "block in chain"):
            assert f"ok   {check}" in r.stdout, r.stdout
        assert "proof holds" in r.stdout

    # Offline, from the saved bundle, pinned to the ledger key and checked against the ledger file.
    r = cli("verify", "--bundle", str(bundle), "--ledger-key", str(data / "ledger.pub"),
            "--ledger", str(data / "ledger.jsonl"))
    assert r.returncode == 0, r.stdout + r.stderr

    # A corrupted bundle is an invalid proof (1), not bad input.
    doc = json.loads(bundle.read_text())
    proof = doc["reading"]
    proof["audit_path"][0] = "00" * 32 if proof["audit_path"] else proof["audit_path"]
    proof["leaf_index"] = (proof["leaf_index"] + 1) % proof["tree_size"]
    bundle.write_text(json.dumps(doc))
    r = cli("verify", "--bundle", str(bundle))
    assert r.returncode == 1 and "FAIL merkle path" in r.stdout, r.stdout + r.stderr

    # The whole chain holds.
    r = cli("ledger", "verify", "--data-dir", str(data))
    assert r.returncode == 0 and "ledger holds" in r.stdout, r.stdout + r.stderr


def test_unsigned_tracker_says_where_trust_begins(pipeline: dict) -> None:  # type: ignore[type-arg]
    url = pipeline["url"]
    sid = get_json(f"{url}/shipments")["shipments"][-1]["shipment_id"]  # the unsigned shipment
    cond = get_json(f"{url}/shipments/{sid}/condition")
    assert {p["trust"] for p in cond["packs"]} == {"ingestor"}
    r = cli("verify", f"{cond['packs'][0]['device_id']}:3", "--api", url)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "skip device signature" in r.stdout and "trust for this reading begins at the ingestor" in r.stdout


def test_cli_exit_codes_for_bad_input_and_unreachable_api(pipeline: dict) -> None:  # type: ignore[type-arg]
    r = cli("verify", "no-such-device:1", "--api", pipeline["url"])
    assert r.returncode == 2 and "is not stored" in r.stderr, r.stdout + r.stderr
    r = cli("verify", "not-a-reading-id", "--api", pipeline["url"])
    assert r.returncode == 2 and "device_id>:<seq>" in r.stderr, r.stdout + r.stderr
    r = cli("verify", "x:1", "--api", f"http://127.0.0.1:{free_port()}")
    assert r.returncode == 3 and "cannot reach the API" in r.stderr, r.stdout + r.stderr


def test_api_answers_bad_requests_with_json_not_500(pipeline: dict) -> None:  # type: ignore[type-arg]
    url = pipeline["url"]
    for path, status, text in [
        ("/shipments/NOPE/condition", 404, "shipment 'NOPE' is not known"),
        ("/shipments/NOPE/readings", 404, "is not known"),
        ("/readings/ghost:1", 404, "reading 'ghost:1' is not stored"),
        ("/readings/ghost:1/proof", 404, "is not stored"),
        ("/readings/no-colon/proof", 422, "not of the form <device_id>:<seq>"),
        ("/ledger/blocks/999999", 404, "block 999999 does not exist"),
        ("/ledger/blocks/-1", 422, "height must be between 0 and"),
        ("/ledger/blocks/abc", 422, "integer"),
        ("/shipments?limit=0", 422, "greater than or equal to 1"),
        ("/shipments?limit=abc", 422, "integer"),
    ]:
        r = httpx.get(url + path, timeout=10)
        assert r.status_code == status, (path, r.status_code, r.text)
        assert text in json.dumps(r.json()), (path, r.text)


def test_api_reads_pages_metrics_and_health(pipeline: dict) -> None:  # type: ignore[type-arg]
    url = pipeline["url"]
    sid = get_json(f"{url}/shipments")["shipments"][2]["shipment_id"]
    seen, after = [], 0
    while True:
        page = get_json(f"{url}/shipments/{sid}/readings?limit=7&after={after}")
        seen += [r["reading_id"] for r in page["readings"]]
        assert all(r["block_height"] is not None and r["leaf_index"] is not None for r in page["readings"])
        if page["next_after"] is None:
            break
        after = page["next_after"]
    assert len(seen) == len(set(seen)) == PACKS * COUNT
    head = get_json(f"{url}/ledger/head")
    assert head["height"] >= 0 and len(head["hash"]) == 64
    health = get_json(f"{url}/health")
    assert {k: health[k] for k in ("status", "readings", "blocks", "disk_full")} == {
        "status": "ok", "readings": pipeline["total"], "blocks": head["height"] + 1, "disk_full": []}
    assert health["problems"] == []
    metrics = httpx.get(f"{url}/metrics", timeout=10).text
    assert f"packproof_readings_accepted_total {float(pipeline['total'])}" in metrics
    assert f"packproof_ledger_height {float(head['height'])}" in metrics


def test_quarantine_is_visible_filterable_and_counted(pipeline: dict) -> None:  # type: ignore[type-arg]
    url = pipeline["url"]
    sid = get_json(f"{url}/shipments")["shipments"][0]["shipment_id"]
    device = get_json(f"{url}/shipments/{sid}")["devices"][0]
    publish_all(pipeline["mqtt"], [
        (f"packproof/v1/{sid}/{device}/telemetry", b"not json"),
        ("packproof/v1/SHP-X/ghost/telemetry", b'{"v": 1}'),
        (f"packproof/v1/{sid}/{device}/telemetry", b"\xff\xfe"),
    ])
    page = wait_for(lambda: (p := get_json(f"{url}/quarantine")) and len(p["items"]) >= 3 and p, 20, "quarantine")
    assert [i["reason_code"] for i in page["items"]] == ["malformed_json", "invalid_schema", "malformed_json"]
    bad_json = get_json(f"{url}/quarantine?reason=malformed_json&device_id={device}")["items"]
    assert [i["payload_text"] for i in bad_json] == [None, "not json"]
    assert bad_json[0]["payload_b64"] == "//4="
    assert get_json(f"{url}/quarantine?device_id=ghost")["items"][0]["reason"].startswith("invalid reading: missing")
    first = get_json(f"{url}/quarantine?limit=1")
    assert len(first["items"]) == 1 and first["next_before"] is not None
    assert get_json(f"{url}/quarantine?limit=5&before={first['next_before']}")["items"][0]["reason_code"] == (
        "invalid_schema")
    metrics = httpx.get(f"{url}/metrics", timeout=10).text
    assert 'packproof_quarantined_total{reason="malformed_json"} 2.0' in metrics


def test_tampering_is_found_and_named(pipeline: dict) -> None:  # type: ignore[type-arg]
    url, data = pipeline["url"], pipeline["data"]
    sid = get_json(f"{url}/shipments")["shipments"][1]["shipment_id"]
    device = get_json(f"{url}/shipments/{sid}")["devices"][0]

    # One stored reading altered in the off-chain store: its temperature made nicer.
    db = Db(pipeline["store"])
    (body,) = db.execute("SELECT body FROM readings WHERE device_id=? AND seq=5", (device,)).fetchone()  # type: ignore[misc]
    reading = json.loads(body)
    forged = body.replace(f'"temperature_c":{json.dumps(reading["temperature_c"])}'.encode(), b'"temperature_c":20.5')
    assert forged != body
    db.execute("UPDATE readings SET body=? WHERE device_id=? AND seq=5", (forged, device))
    r = cli("verify", f"{device}:5", "--api", url)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "FAIL device signature" in r.stdout and "FAIL merkle path" in r.stdout

    # One ledger line edited: the Merkle root of the block holding device:0 replaced.
    height = get_json(f"{url}/readings/{device}:0")["block_height"]
    ledger = data / "ledger.jsonl"
    lines = ledger.read_text().splitlines(keepends=True)
    line = json.loads(lines[height])
    line["header"]["merkle_root"] = "ab" * 32
    lines[height] = json.dumps(line) + "\n"
    ledger.write_text("".join(lines))
    r = cli("ledger", "verify", "--data-dir", str(data))
    assert r.returncode == 1 and f"block {height}" in r.stderr, r.stdout + r.stderr
    r = cli("verify", f"{device}:0", "--api", url, "--ledger", str(ledger))
    assert r.returncode == 1 and "FAIL block in chain" in r.stdout, r.stdout + r.stderr
