"""Witnesses and the monitor with everything real: `packproof broker`, `packproof ingest` (with its
sealer asking two `packproof witness` processes), `packproof api`, `packproof simulate`,
`packproof verify` and `packproof monitor`, each its own process on free ports.

* the checkpoint GET /checkpoint serves carries both witnesses' cosignatures, which verify (ours
  and tlog-scales'), and `verify --witness ... --min-witnesses 2` accepts a reading's proof;
* a witness killed: sealing goes on, the other witness keeps cosigning, /health says the
  checkpoint is late for the dead one, and `verify --min-witnesses 2` names it missing;
* a split view: the operator signs a second checkpoint of the sealed size with another root;
  a witness refuses it (409) and a monitor that saw the first alarms on the second;
* a rollback: the store's latest checkpoints removed; the monitor alarms.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from tlog_scales import signing, tlog

from packproof.anchor.cosignature import tally
from packproof.anchor.merkle import leaf_hash
from packproof.anchor.note import SignerKey, parse_note
from packproof.anchor.tlog import default_origin, log_verifier
from packproof.anchor.tlog_checkpoint import Checkpoint, parse_checkpoint, sign_checkpoint
from packproof.anchor.witness import request_body
from packproof.crypto import key_id, load_or_create_ledger_key, public_key_bytes
from packproof.net import free_port, port_in_use
from tests.conftest import Service, cli, get_json, wait_for
from tests.test_witness import RunningWitness

pytestmark = pytest.mark.e2e


def _sealed(url: str) -> int:
    return sum(get_json(f"{url}/shipments/{s['shipment_id']}/condition")["sealed"]
               for s in get_json(f"{url}/shipments")["shipments"])


def _simulate(mqtt: int, data: Path, count: int, seed: int) -> None:
    r = cli("simulate", "--mqtt-port", str(mqtt), "--data-dir", str(data), "--shipments", "2", "--packs", "2",
            "--count", str(count), "--rate", "40", "--seed", str(seed), "--unsigned-shipments", "0")
    assert r.returncode == 0, r.stdout + r.stderr


def test_witnessed_log_end_to_end(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    key = load_or_create_ledger_key(data / "ledger.key")
    pub = public_key_bytes(key)
    origin = default_origin(key_id(pub))
    log_vkey = log_verifier(origin, pub)
    services: list[Service] = []
    web: subprocess.Popen[bytes] | None = None
    witnesses = [RunningWitness(tmp_path, f"witness.example/w{i}", log=str(log_vkey)).start() for i in (1, 2)]
    try:
        wkeys = [w.vkey for w in witnesses]
        mqtt, api = free_port(), free_port()
        broker = Service("broker", "--port", str(mqtt), log=tmp_path / "broker.log")
        services.append(broker)
        broker.wait_port(mqtt)
        ingest = Service("ingest", "--data-dir", str(data), "--store", f"sqlite:///{data / 'packproof.db'}",
                         "--mqtt-port", str(mqtt), "--seal-interval", "0.3",
                         *[a for w in witnesses for a in ("--witness", f"{w.url} {w.vkey}")],
                         "--witness-timeout", "2", "--witness-late-after", "2", log=tmp_path / "ingest.log")
        services.append(ingest)
        ingest.wait_output("ingesting from")
        _simulate(mqtt, data, 20, 1)
        server = Service("api", "--data-dir", str(data), "--store", f"sqlite:///{data / 'packproof.db'}",
                         "--port", str(api), log=tmp_path / "api.log")
        services.append(server)
        server.wait_port(api)
        url = f"http://127.0.0.1:{api}"
        wait_for(lambda: _sealed(url) == 80, 30, "80 readings sealed")

        def cosigned_by(n: int) -> bool:
            note = httpx.get(f"{url}/checkpoint", timeout=5).content
            return len(tally(note, wkeys).valid) == n

        wait_for(lambda: cosigned_by(2), 30, "the served checkpoint cosigned by both witnesses")
        note = httpx.get(f"{url}/checkpoint", timeout=5).text
        theirs = tlog.Checkpoint.from_text(note)
        for v in (str(log_vkey), *map(str, wkeys)):
            theirs.verify(signing.Vkey.from_string(v))  # raises if not

        ok = cli("verify", _a_reading(url), "--api", url, "--witness", str(wkeys[0]), "--witness", str(wkeys[1]),
                 "--min-witnesses", "2")
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert "2 of 2 witnesses cosigned" in ok.stdout

        state = tmp_path / "monitor.json"
        mon = cli("monitor", "--api", url, "--state", str(state), "--log-key", str(log_vkey), "--once")
        assert mon.returncode == 0, mon.stdout + mon.stderr
        # the same from the static tiles directory, served by a plain web server
        web_port = free_port()
        web = subprocess.Popen([sys.executable, "-m", "http.server", str(web_port), "--bind", "127.0.0.1",
                                "--directory", str(data / "tiles")], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        wait_for(lambda: port_in_use("127.0.0.1", web_port), 10, "the static web server")
        tiles_state = tmp_path / "tiles-monitor.json"
        tiles_url = f"http://127.0.0.1:{web_port}"
        mon = cli("monitor", "--tiles", tiles_url, "--state", str(tiles_state), "--log-key", str(log_vkey), "--once")
        assert mon.returncode == 0, mon.stdout + mon.stderr

        # one witness dies: sealing goes on, the other keeps cosigning, the dead one is named
        assert witnesses[1].service is not None
        witnesses[1].service.kill()
        before = _sealed(url)
        _simulate(mqtt, data, 10, 2)
        wait_for(lambda: _sealed(url) == before + 40, 30, "sealing continues with a witness down")
        size = parse_checkpoint(parse_note(httpx.get(f"{url}/checkpoint").content).text).size

        def w1_caught_up() -> bool:
            served = httpx.get(f"{url}/checkpoint", timeout=5).content
            t = tally(served, wkeys)
            return t.valid == (str(wkeys[0]),) and parse_checkpoint(parse_note(served).text).size == size

        wait_for(w1_caught_up, 30, "the live witness cosigns the newest checkpoint")

        def late_named() -> bool:
            return any(f"not cosigned by witness {wkeys[1]}" in p for p in get_json(f"{url}/health")["problems"])

        wait_for(late_named, 30, "/health naming the late witness")
        bad = cli("verify", _a_reading(url), "--api", url, "--witness", str(wkeys[0]), "--witness", str(wkeys[1]),
                  "--min-witnesses", "2")
        assert bad.returncode == 1 and f"missing: {wkeys[1]}" in bad.stderr, bad.stdout + bad.stderr
        one = cli("verify", _a_reading(url), "--api", url, "--witness", str(wkeys[0]), "--witness", str(wkeys[1]),
                  "--min-witnesses", "1")
        assert one.returncode == 0, one.stdout + one.stderr
        mon = cli("monitor", "--api", url, "--state", str(state), "--log-key", str(log_vkey), "--once")
        assert mon.returncode == 0 and "consistent" in mon.stdout, mon.stdout + mon.stderr
        mon = cli("monitor", "--tiles", tiles_url, "--state", str(tiles_state), "--log-key", str(log_vkey), "--once")
        assert mon.returncode == 0 and "from size" in mon.stdout, mon.stdout + mon.stderr

        # a split view: the sealer stops; the operator signs a second checkpoint of the sealed size
        ingest.stop()
        services.remove(ingest)
        latest = parse_checkpoint(parse_note(httpx.get(f"{url}/checkpoint").content).text)
        mon = cli("monitor", "--api", url, "--state", str(state), "--log-key", str(log_vkey), "--once")
        assert mon.returncode == 0, mon.stdout + mon.stderr
        forged_root = leaf_hash(b"another history")
        signer = SignerKey.from_private_key(origin, key)
        forged = sign_checkpoint(Checkpoint(origin, latest.size, forged_root), [signer])
        refused = witnesses[0].post(request_body(latest.size, [], forged))
        assert refused.status_code == 409 and refused.text == f"{latest.size}\n"
        db = sqlite3.connect(data / "packproof.db")
        db.execute("UPDATE checkpoints SET root = ?, note = ? WHERE size = ?", (forged_root, forged.decode(),
                                                                              latest.size))
        db.commit()
        mon = cli("monitor", "--api", url, "--state", str(state), "--log-key", str(log_vkey), "--once")
        assert mon.returncode == 1 and "FORK" in mon.stderr and f"size {latest.size}" in mon.stderr, mon.stderr

        # a rollback: the newest checkpoints removed, the log serves an older head
        rolled = tmp_path / "rolled.json"
        db.execute("DELETE FROM checkpoints WHERE size = ?", (latest.size,))
        db.commit()
        db.close()
        older = parse_checkpoint(parse_note(httpx.get(f"{url}/checkpoint").content).text)
        assert older.size < latest.size
        # a monitor that saw the honest head before the split (its state from before the fork) alarms
        rolled.write_text((tmp_path / "monitor.json").read_text())
        mon = cli("monitor", "--api", url, "--state", str(rolled), "--log-key", str(log_vkey), "--once")
        assert mon.returncode == 1 and "ROLLBACK" in mon.stderr and f"size {older.size}" in mon.stderr, mon.stderr
    finally:
        if web is not None:
            web.terminate()
            web.wait()
        for s in reversed(services):
            s.stop()
        for w in witnesses:
            if w.service is not None and w.service.proc.poll() is None:
                w.service.stop()


def _a_reading(url: str) -> str:
    shipment = get_json(f"{url}/shipments")["shipments"][0]["shipment_id"]
    page = get_json(f"{url}/shipments/{shipment}/readings?limit=1000")
    return str(page["readings"][-1]["reading_id"])
